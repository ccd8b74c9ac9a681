"""collector_drops: what a collector on this host lost, as flowfold reports it.

A UDP collector whose socket buffer is full loses datagrams silently: every
send succeeds. For a collector on this host the kernel counts the drops per
socket, and flowfold reports them (one warning, `collector_drops=` in the
stats line). Here the collector is a socket of this test, read only after
flowfold has finished; the truth is counted here: the datagrams flowfold
sent (its `messages=`) minus those the socket holds afterwards.
"""

import socket
import subprocess
import unittest

from harness import FLOWFOLD, TempDirTest, flowgen

PROFILE = ("-n", "50000", "-c", "2000", "-d", "30", "-S", "128", "-s", "5")
WARNING = "the collector on this host dropped"
SO_RCVBUFFORCE = 33  # not in Python's socket module


def exporter_stats(stderr):
    """The first exporter's section of the stats line as {name: value}."""
    for line in stderr.splitlines():
        if "stats:" in line:
            section = line.split(" | ")[1]
            _, _, fields = section.partition(": ")
            return {k: int(v) for k, v in (item.split("=") for item in fields.split())}
    raise AssertionError("no stats line in:\n" + stderr)


class Collector:
    """A UDP socket on 127.0.0.1 (or ::1) that nobody reads until drain()."""

    def __init__(self, rcvbuf, address="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
        # SO_RCVBUFFORCE (root) passes net.core.rmem_max; the kernel doubles the value.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sock.bind((address, 0))
        self.port = self.sock.getsockname()[1]
        self.target = ("[%s]:%d" if ":" in address else "%s:%d") % (address, self.port)

    def drain(self):
        self.sock.setblocking(False)
        n = 0
        while True:
            try:
                self.sock.recv(70000)
            except BlockingIOError:
                return n
            n += 1

    def close(self):
        self.sock.close()


class CollectorDrops(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, _ = flowgen("it-collector-drops", *PROFILE)

    def run_flowfold(self, collector, version):
        proc = subprocess.run([FLOWFOLD, "-r", self.pcap, "-n", collector.target, "-v", version],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stderr

    def check_full_collector(self, version, address="127.0.0.1"):
        collector = Collector(1, address)  # the kernel's smallest buffer: one datagram fits
        try:
            stderr = self.run_flowfold(collector, version)
            received = collector.drain()
        finally:
            collector.close()
        stats = exporter_stats(stderr)
        self.assertGreater(stats["messages"], 10, stderr)
        self.assertLess(received, stats["messages"])
        self.assertEqual(stats.get("collector_drops"), stats["messages"] - received, stderr)
        warnings = [l for l in stderr.splitlines() if WARNING in l]
        self.assertEqual(len(warnings), 1, stderr)
        self.assertIn("nfcapd -B", warnings[0])

    def test_ipfix_counts_what_a_full_local_collector_dropped(self):
        self.check_full_collector("10")

    def test_netflow9_counts_what_a_full_local_collector_dropped(self):
        self.check_full_collector("9")

    def test_ipv6_loopback_collector_too(self):
        self.check_full_collector("10", "::1")

    def test_a_collector_with_room_gets_everything_and_no_warning(self):
        collector = Collector(64 << 20)
        if collector.rcvbuf < 16 << 20:
            collector.close()
            self.skipTest("a 16 MiB receive buffer needs root (SO_RCVBUFFORCE) or a larger net.core.rmem_max")
        try:
            stderr = self.run_flowfold(collector, "10")
            received = collector.drain()
        finally:
            collector.close()
        stats = exporter_stats(stderr)
        self.assertEqual(received, stats["messages"], stderr)
        self.assertNotIn("collector_drops", stats)
        self.assertNotIn(WARNING, stderr)


if __name__ == "__main__":
    unittest.main()
