"""A UDP collector that is not there: what was lost is counted, or said.

A datagram the kernel accepted may still never reach the collector. Where
flowfold can know, it counts exactly: for a collector on this host the
socket table says whether anything listens on its port, and when nothing
does, no datagram is sent and every record is counted in dropped=. For a
remote collector, the ICMP port unreachables its host sends back are counted
(refused=); which datagrams they were about, a UDP sender is not told, so
the records cannot be counted, and the warning says so. Either way the exit
status is 5. The truth here: the records the flow cache made (the stats
line's own first section, and a JSON run of the same capture).

    cd tests/integration && python3 -m unittest -v test_udp_loss
"""

import os
import socket
import subprocess
import unittest

from harness import FLOWFOLD, TempDirTest, check_counters_documented, flowgen, free_udp_port, run_flowfold
from netns import VethPair, require_netns

EXIT_EXPORT_LOSS = 5
SHORT = ("-n", "12", "-c", "3", "-d", "5", "-S", "128", "-s", "9")        # a handful of flows
LARGE = ("-n", "300000", "-c", "100000", "-d", "60", "-S", "128", "-s", "11")  # over 100 k flows


def sections(stderr):
    """The stats line as [{name: value}, ...]: the cache's, then each exporter's."""
    for line in stderr.splitlines():
        if "stats:" in line:
            parts = line.split("stats:", 1)[1].split(" | ")
            return [{k: int(v) for k, v in (i.split("=") for i in part.split() if "=" in i)} for part in parts]
    raise AssertionError("no stats line in:\n" + stderr)


def closed_udp_port(address="127.0.0.1"):
    """A port that was just free on `address` (nobody binds it afterwards here)."""
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LocalCollectorDown(TempDirTest):

    def records_made(self, pcap):
        out = self.path("truth-%s.json" % os.path.basename(pcap))
        if os.path.exists(out):
            os.unlink(out)  # a JSON output is appended to
        run_flowfold("-r", pcap, "--json=" + out)
        with open(out) as f:
            return sum(1 for _ in f)

    def check(self, profile, name, version, address="127.0.0.1"):
        pcap, _ = flowgen(name, *profile)
        records = self.records_made(pcap)
        target = ("[%s]:%d" if ":" in address else "%s:%d") % (address, closed_udp_port(address))
        proc = subprocess.run([FLOWFOLD, "-r", pcap, "-n", target, "-v", version],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, EXIT_EXPORT_LOSS, proc.stderr)
        cache, exporter = sections(proc.stderr)[:2]
        self.assertEqual(cache["records"], records)
        self.assertEqual(exporter.get("dropped"), records, proc.stderr)
        self.assertEqual(exporter["records"], 0, proc.stderr)
        self.assertIn("nothing on this host listens", proc.stderr)
        self.assertIn("lost %d records" % records, proc.stderr)
        check_counters_documented(self, proc.stderr)  # errors=, dropped= as the README names them

    def test_a_short_capture_to_a_collector_that_is_down_is_exit_5_with_every_record_counted(self):
        for version in ("10", "9"):
            with self.subTest(version=version):
                self.check(SHORT, "it-udp-loss-short", version)

    def test_over_100k_flows_to_a_collector_that_is_down_are_all_counted_lost(self):
        for version in ("10", "9"):
            with self.subTest(version=version):
                self.check(LARGE, "it-udp-loss-large", version)

    def test_ipv6_loopback_too(self):
        self.check(SHORT, "it-udp-loss-short", "10", "::1")


class RemoteCollectorDown(TempDirTest):
    """flowfold in namespace b, the collector's address in namespace a, where
    nothing listens: a's kernel answers with ICMP port unreachable."""

    def setUp(self):
        super().setUp()
        require_netns()
        self.pair = VethPair("ffudpl").__enter__()
        self.addCleanup(self.pair.__exit__, None, None, None)

    def test_a_short_capture_to_a_remote_collector_that_is_down_is_exit_5_and_says_why(self):
        pcap, _ = flowgen("it-udp-loss-short", *SHORT)
        for version in ("10", "9"):
            with self.subTest(version=version):
                target = "%s:%d" % (self.pair.addr_a, free_udp_port())
                r = self.pair.run_in("b", [FLOWFOLD, "-r", pcap, "-n", target, "-v", version], check=False)
                self.assertEqual(r.returncode, EXIT_EXPORT_LOSS, r.stderr)
                exporter = sections(r.stderr)[1]
                self.assertGreaterEqual(exporter.get("refused", 0), 1, r.stderr)
                self.assertIn("refused datagrams", r.stderr)
                self.assertIn("cannot be counted", r.stderr)
                check_counters_documented(self, r.stderr)  # refused= as the README names it

    def test_a_remote_collector_that_listens_gets_everything_with_exit_0(self):
        pcap, _ = flowgen("it-udp-loss-short", *SHORT)
        port = free_udp_port()
        listener = self.pair.udp_listener("a", port, count=1000, idle_limit=3.0)
        r = self.pair.run_in("b", [FLOWFOLD, "-r", pcap, "-n", "%s:%d" % (self.pair.addr_a, port)], check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        exporter = sections(r.stderr)[1]
        self.assertNotIn("refused", exporter)
        self.assertEqual(listener.result()["received"], exporter["messages"])


if __name__ == "__main__":
    unittest.main()
