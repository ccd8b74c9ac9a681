"""cache.split_interval (issue 22, item 1's ground): no record spans a
multiple of the interval, so the sums per interval are exact.

The expectation comes from tshark's list of every packet with its time:
the packets and bytes of each key in each interval, which flowfold's records
grouped by their interval must equal, key by key; and each record's first and
last packet lie in one interval. Without the option a long flow's record
spans boundaries (the check that the test can fail)."""

import json
import unittest

from harness import TempDirTest, add_flow, flowgen, norm_addr, run_flowfold, stats_of
from test_sampling import PROFILE, tshark_packets

INTERVAL_MS = 10_000


def per_interval(packets):
    """{(key, interval): [packets, bytes]} of a tshark packet list."""
    out = {}
    for key, size, ts_ms in packets:
        add_flow(out, (key, ts_ms // INTERVAL_MS), 1, size)
    return out


class SplitInterval(TempDirTest):
    def records(self, *args):
        out = self.path("flows-%d.json" % len(args))
        proc = run_flowfold("-r", self.pcap, "--json=" + out, *args)
        with open(out) as f:
            return [json.loads(line) for line in f], stats_of(proc.stderr)

    @staticmethod
    def key(r):
        return (r["proto"], norm_addr(r["src"]), r["src_port"], norm_addr(r["dst"]), r["dst_port"], r["vlan"])

    def setUp(self):
        super().setUp()
        self.pcap, _ = flowgen("sampling", *PROFILE)

    def test_every_record_lies_in_one_interval_and_the_sums_per_interval_are_exact(self):
        want = per_interval(tshark_packets(self.pcap))
        records, stats = self.records("--split-interval", "%dms" % INTERVAL_MS)
        got = {}
        for r in records:
            self.assertEqual(r["first_ms"] // INTERVAL_MS, r["last_ms"] // INTERVAL_MS, r)
            add_flow(got, (self.key(r), r["first_ms"] // INTERVAL_MS), r["packets"], r["bytes"])
        self.assertEqual(len(got), len(want))
        self.assertFlowsEqual(got, want)
        # The splits are active-timeout records: counted there.
        self.assertGreater(stats["ended_active"], 0)

    def test_without_it_long_flows_span_intervals(self):
        records, stats = self.records()
        spanning = [r for r in records if r["first_ms"] // INTERVAL_MS != r["last_ms"] // INTERVAL_MS]
        self.assertTrue(spanning)


if __name__ == "__main__":
    unittest.main()
