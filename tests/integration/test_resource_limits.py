"""Resource limits end to end: a flood of new flows keeps the cache at its
bound (evicting the least recently seen flow, counted) without losing a
packet, and timestamps that jump backwards and forwards do not break expiry.
Expected values come from flowgen's truth file and from the capture itself,
parsed here; the flows are read back with a real nfcapd/nfdump.

    cd tests/integration && python3 -m unittest -v test_resource_limits
"""

import struct
import unittest

from harness import Nfcapd, TempDirTest, check_counters_documented, flowgen, read_truth, run_flowfold, stats_of, totals

# Many short flows: ~40k keys over 100k packets, at most 2000 concurrent.
FLOOD = ("-n", "100000", "-c", "2000", "-d", "60", "-S", "128", "-s", "23")


def rewrite_timestamps(src, dst, shift_of):
    """Copies a little-endian classic pcap, moving packet i's timestamp by
    shift_of(i) seconds. Returns the number of packets."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    off, i = 24, 0
    while off + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, off)
        struct.pack_into("<I", data, off, sec + shift_of(i))
        off += 16 + caplen
        i += 1
    with open(dst, "wb") as f:
        f.write(data)
    return i


class ResourceLimits(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, truth = flowgen("it-flood", *FLOOD)
        self.truth = read_truth(truth)

    def test_a_flood_of_flows_stays_within_max_flows_and_every_packet_arrives(self):
        keys, packets, octets = totals(self.truth)
        self.assertGreater(keys, 20 * 500)  # far more flows than the cache may hold
        nfcapd = Nfcapd(self.tmp)
        proc = run_flowfold("-r", self.pcap, "-m", "500", "-n", nfcapd.address)
        nfcapd.stop()
        stats = stats_of(proc.stderr)
        self.assertLessEqual(stats["flows_peak"], 500)
        self.assertGreater(stats["evicted"], 0)
        # An evicted flow is exported (reason lack-of-resources), then a new
        # record starts if the key comes back: records >= keys, totals exact.
        flows, records = nfcapd.flows()
        self.assertEqual(records, stats["records"])
        self.assertEqual(set(flows), set(self.truth))
        self.assertEqual(flows, self.truth)
        self.assertGreater(records, keys)
        self.assertEqual(stats["flows_created"], stats["records"] - stats.get("ended_active", 0))
        check_counters_documented(self, proc.stderr)

    def test_timestamps_that_jump_backwards_and_forwards_lose_nothing(self):
        jumped = self.path("jumped.pcap")
        # First third as captured, the middle third an hour in the past, the
        # last third a day in the future.
        n = sum(v[0] for v in self.truth.values())
        count = rewrite_timestamps(self.pcap, jumped,
                                   lambda i: 0 if i < n // 3 else (-3600 if i < 2 * n // 3 else 86400))
        self.assertEqual(count, n)
        nfcapd = Nfcapd(self.tmp)
        proc = run_flowfold("-r", jumped, "-n", nfcapd.address, timeout=120)
        nfcapd.stop()
        stats = stats_of(proc.stderr)
        flows, records = nfcapd.flows()
        self.assertEqual(records, stats["records"])
        self.assertEqual(flows, self.truth)
        self.assertEqual(stats["flows_active"], 0)


if __name__ == "__main__":
    unittest.main()
