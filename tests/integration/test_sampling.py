"""Packet sampling 1:N (issue 21): `--sampling N` meters one packet in N.

The expectations come from tshark: it lists every packet of a flowgen
capture (key and IP length, in capture order), and the test picks the
packets the sampler must select by their position. Count mode is exact per
key; random mode is checked against the statistical bound of a Bernoulli
selection. The per-packet list itself is checked against flowgen's truth
(every packet: the same sums per key) so that an error in reading tshark's
output cannot hide one in flowfold."""

import math
import subprocess
import unittest

from harness import (TempDirTest, add_flow, check_counters_documented, flowgen, ipfix_flows, need, norm_addr,
                     parse_ipfix_stream, read_truth, run_flowfold, stats_of)

# test_direction's profile: flows of every length, a quarter IPv6, a fifth tagged.
PROFILE = ("-n", "200000", "-c", "5000", "-d", "120", "-S", "128", "-s", "11")
# Random sampling's totals: more packets, so that the bound says something at 1:1000.
RANDOM_PROFILE = ("-n", "600000", "-c", "20000", "-d", "300", "-S", "128", "-s", "12")

FIELDS = ["frame.time_epoch", "vlan.id", "ip.proto", "ipv6.nxt", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport",
          "udp.srcport", "tcp.dstport", "udp.dstport", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
          "ip.len", "ipv6.plen"]

_packets_cache = {}


def tshark_packets(pcap):
    """[(key, ip_bytes, time in ms)] of every packet of a flowgen capture, in
    order, keyed as flowgen's truth (the time cut to the millisecond, as
    flowfold's clock)."""
    if pcap in _packets_cache:
        return _packets_cache[pcap]
    need("tshark")
    args = ["tshark", "-r", pcap, "-T", "fields", "-E", "separator=/t"]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    packets = []
    for line in out.splitlines():
        c = dict(zip(FIELDS, line.split("\t")))
        first = lambda *names: next((c[n].split(",")[0] for n in names if c.get(n)), "")
        proto = int(first("ip.proto", "ipv6.nxt"))
        src, dst = norm_addr(first("ip.src", "ipv6.src")), norm_addr(first("ip.dst", "ipv6.dst"))
        if proto in (1, 58):
            sport, dport = 0, int(first("icmp.type", "icmpv6.type")) * 256 + int(first("icmp.code", "icmpv6.code"))
        else:
            sport, dport = int(first("tcp.srcport", "udp.srcport")), int(first("tcp.dstport", "udp.dstport"))
        vlan = int(first("vlan.id") or 0)
        size = int(c["ip.len"]) if c.get("ip.len") else 40 + int(c["ipv6.plen"])
        seconds, _, fraction = c["frame.time_epoch"].partition(".")
        ts_ms = int(seconds) * 1000 + int((fraction + "000")[:3])
        packets.append(((proto, src, sport, dst, dport, vlan), size, ts_ms))
    _packets_cache[pcap] = packets
    return packets


def sum_per_key(packets):
    flows = {}
    for key, size, _ in packets:
        add_flow(flows, key, 1, size)
    return flows


class SamplingTest(TempDirTest):
    def run_sampled(self, pcap, *args):
        """Runs flowfold over pcap into an IPFIX file; (flows per key, stats, options records)."""
        self.runs = getattr(self, "runs", 0) + 1
        out = self.path("out-%d.ipfix" % self.runs)  # --ipfix-file appends
        proc = run_flowfold("-r", pcap, "--ipfix-file", out, *args)
        check_counters_documented(self, proc.stderr)  # sampled_out= as the README names it
        with open(out, "rb") as f:
            records, _ = parse_ipfix_stream(f.read())
        return ipfix_flows(records), stats_of(proc.stderr)

    def test_tshark_list_is_flowgens_truth(self):
        pcap, truth = flowgen("sampling", *PROFILE)
        self.assertEqual(sum_per_key(tshark_packets(pcap)), read_truth(truth))

    def test_count_sampling_meters_every_nth_packet_exactly(self):
        pcap, _ = flowgen("sampling", *PROFILE)
        packets = tshark_packets(pcap)
        for n in (2, 7, 100):
            with self.subTest(n=n):
                want = sum_per_key(packets[::n])  # packets 1, n+1, 2n+1, ...
                got, stats = self.run_sampled(pcap, "--sampling", str(n))
                self.assertFlowsEqual(got, want)
                self.assertEqual(stats["packets"], len(packets[::n]))
                self.assertEqual(stats["packets"] + stats["sampled_out"], len(packets))

    def test_count_sampling_with_workers_is_the_same(self):
        pcap, _ = flowgen("sampling", *PROFILE)
        packets = tshark_packets(pcap)
        got, stats = self.run_sampled(pcap, "--sampling", "13", "--workers", "2")
        self.assertFlowsEqual(got, sum_per_key(packets[::13]))
        self.assertEqual(stats["sampled_out"], len(packets) - len(packets[::13]))

    def test_sampling_1_meters_every_packet(self):
        pcap, truth = flowgen("sampling", *PROFILE)
        got, stats = self.run_sampled(pcap, "--sampling", "1")
        self.assertFlowsEqual(got, read_truth(truth))
        self.assertNotIn("sampled_out", stats)

    def test_random_sampling_totals_within_the_statistical_bound(self):
        pcap, _ = flowgen("sampling-random", *RANDOM_PROFILE)
        packets = tshark_packets(pcap)
        total_packets = len(packets)
        total_bytes = sum(size for _, size, _ in packets)
        sum_sq = sum(size * size for _, size, _ in packets)
        truth = sum_per_key(packets)
        runs = []
        for n in (10, 100, 1000):
            with self.subTest(n=n):
                got, stats = self.run_sampled(pcap, "--sampling", str(n), "--sampling-mode", "random")
                p = 1.0 / n
                sampled_packets = sum(v[0] for v in got.values())
                sampled_bytes = sum(v[1] for v in got.values())
                # Each packet selected independently with probability p: the
                # renormalized count n*S has mean P and standard deviation
                # n*sqrt(P p (1-p)); the bytes, n*sqrt(p (1-p) sum(size^2)).
                # Five deviations: a false failure once in 1.7 million runs.
                sd_packets = n * math.sqrt(total_packets * p * (1 - p))
                sd_bytes = n * math.sqrt(p * (1 - p) * sum_sq)
                self.assertLess(abs(sampled_packets * n - total_packets), 5 * sd_packets,
                                "renormalized packets %d against %d" % (sampled_packets * n, total_packets))
                self.assertLess(abs(sampled_bytes * n - total_bytes), 5 * sd_bytes,
                                "renormalized bytes %d against %d" % (sampled_bytes * n, total_bytes))
                # Only real packets: no key nor count beyond the capture's.
                for key, (pk, by) in got.items():
                    self.assertIn(key, truth)
                    self.assertLessEqual(pk, truth[key][0])
                self.assertEqual(stats["packets"], sampled_packets)
                self.assertEqual(stats["packets"] + stats["sampled_out"], total_packets)
                runs.append(got)
        # Not every Nth packet in disguise: at 1:10 the count selector's
        # choice is one of 10 fixed sets; a random one matches it with
        # vanishing probability.
        self.assertNotEqual(runs[0], sum_per_key(packets[::10]))

    def test_sampling_settings_refused_with_their_place(self):
        pcap, _ = flowgen("sampling", *PROFILE)
        proc = run_flowfold("-r", pcap, "--sampling", "0", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--sampling", proc.stderr)
        config = self.path("bad.yaml")
        with open(config, "w") as f:
            f.write("sampling: 10\nsampling_mode: sometimes\n")
        proc = run_flowfold("-r", pcap, "-c", config, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("bad.yaml:2:", proc.stderr)
        self.assertIn("sampling mode 'sometimes'", proc.stderr)


if __name__ == "__main__":
    unittest.main()
