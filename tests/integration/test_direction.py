"""local_networks: each flow's direction (flowDirection 61) at real collectors
and in every output, against flowgen's ground truth and the rules computed
here independently (egress: local source, remote destination; ingress: the
reverse; none otherwise)."""

import ipaddress
import json
import subprocess
import unittest

from harness import (Nfcapd, TempDirTest, add_flow, flowgen, ipfix_flows, need, norm_addr, parse_ipfix_stream,
                     read_truth, run_flowfold, stats_of)

# The conservation profile of test_collectors (a quarter IPv6, a fifth VLAN-tagged).
PROFILE = ("-n", "200000", "-c", "5000", "-d", "120", "-S", "128", "-s", "11")
# flowgen's clients are 10/8 and 2001:db8:0::/40 (servers 172.16/12 and
# 2001:db8:ff00::/40); 172.16.0.0/16 makes some server-side flows local too
# (local to local: no direction), a /32 and a /128 exercise host prefixes.
LOCAL = "10.0.0.0/8,2001:db8::/40,172.16.0.0/16,172.17.0.1/32,2001:db8:ff00::1/128"
NETS = [ipaddress.ip_network(n) for n in LOCAL.split(",")]


def local(addr):
    a = ipaddress.ip_address(addr)
    return any(a.version == n.version and a in n for n in NETS)


def expected_direction(sa, da):
    s, d = local(sa), local(da)
    return None if s == d else (1 if s else 0)


class Direction(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, truth_path = flowgen("it-conservation", *PROFILE)
        self.truth = read_truth(truth_path)

    def check_nfcapd(self, version):
        nfcapd = Nfcapd(self.tmp)
        proc = run_flowfold("-r", self.pcap, "-n", nfcapd.address, "-v", str(version), "--local-networks", LOCAL)
        nfcapd.stop()
        self.assertEqual(nfcapd.sequence_errors(), 0)
        out = subprocess.run(
            ["nfdump", "-R", nfcapd.dir, "-q", "-N", "-6", "-o", "fmt:%pr|%sa|%sp|%da|%dp|%svln|%pkt|%byt|%dir"],
            capture_output=True, text=True, check=True).stdout
        flows, counts = {}, {"E": 0, "I": 0}
        want = {"E": 0, "I": 0, None: 0}
        for line in out.splitlines():
            if not line.strip():
                continue
            proto, sa, sp, da, dp, vlan, pkts, byts, d = [c.strip() for c in line.split("|")]
            if "." in dp:
                t, c = dp.split(".")
                dp = int(t) * 256 + int(c)
            add_flow(flows, (int(proto), norm_addr(sa), int(sp), norm_addr(da), int(dp), int(vlan)),
                     int(pkts), int(byts))
            e = expected_direction(sa, da)
            want[{1: "E", 0: "I", None: None}[e]] += 1
            counts[d] += 1
            if e is not None:
                self.assertEqual(d, "E" if e == 1 else "I", line)
        # Conservation is exact with the option on.
        self.assertFlowsEqual(flows, self.truth)
        self.assertEqual(sum(counts.values()), stats_of(proc.stderr)["records"])
        # nfdump 1.7.1 shows a record without the element as ingress ("I"):
        # the records of templates 256/257 (no direction) count there.
        self.assertEqual(counts["E"], want["E"])
        self.assertEqual(counts["I"], want["I"] + want[None])
        self.assertGreater(want["E"], 1000)
        self.assertGreater(want["I"], 1000)
        self.assertGreater(want[None], 100)

    def test_ipfix_to_nfcapd_carries_the_direction_and_conserves_the_truth(self):
        self.check_nfcapd(10)

    def test_netflow9_to_nfcapd_carries_the_direction_and_conserves_the_truth(self):
        self.check_nfcapd(9)

    def test_ipfix_file_puts_exactly_the_directed_flows_in_258_and_259(self):
        for encoder in ("direct", "libfixbuf"):
            out = self.path("flows-%s.ipfix" % encoder)
            run_flowfold("-r", self.pcap, "--ipfix-file", out, "--ipfix-encoder", encoder, "--local-networks", LOCAL)
            with open(out, "rb") as f:
                data = f.read()
            if encoder == "direct":
                direct = data
            else:
                self.assertEqual(data, direct, "the two encoders differ")
        records, _ = parse_ipfix_stream(direct)
        self.assertFlowsEqual(ipfix_flows(records), self.truth)
        seen = {0: 0, 1: 0, None: 0}
        for r in records:
            if 8 in r:
                sa, da = str(ipaddress.IPv4Address(r[8])), str(ipaddress.IPv4Address(r[12]))
            else:
                sa, da = str(ipaddress.IPv6Address(r[27])), str(ipaddress.IPv6Address(r[28]))
            got = r[61][0] if 61 in r else None
            self.assertEqual(got, expected_direction(sa, da), (sa, da))
            seen[got] += 1
        self.assertTrue(all(v > 0 for v in seen.values()), seen)

    def test_json_and_text_name_the_direction_and_leave_it_out_unset(self):
        out = self.path("flows.json")
        run_flowfold("-r", self.pcap, "--json=" + out, "--text=" + self.path("flows.txt"), "--local-networks", LOCAL)
        flows = {}
        with open(out) as f:
            for line in f:
                j = json.loads(line)
                e = expected_direction(j["src"], j["dst"])
                self.assertEqual(j["direction"], {1: "egress", 0: "ingress", None: None}[e], line)
                add_flow(flows, (j["proto"], norm_addr(j["src"]), j["src_port"], norm_addr(j["dst"]), j["dst_port"],
                                 j["vlan"]), j["packets"], j["bytes"])
        self.assertFlowsEqual(flows, self.truth)
        with open(self.path("flows.txt")) as f:
            self.assertTrue(all(" direction " in line for line in f))
        plain = self.path("plain.json")
        run_flowfold("-r", self.pcap, "--json=" + plain)
        with open(plain) as f:
            self.assertNotIn("direction", f.read())

    def test_tshark_decodes_flow_direction(self):
        need("tshark")
        out = self.path("flows.ipfix")
        run_flowfold("-r", self.pcap, "--ipfix-file", out, "--local-networks", LOCAL)
        # tshark reads IPFIX from UDP captures: wrap the file's messages.
        from test_collectors import write_udp_pcap
        with open(out, "rb") as f:
            data = f.read()
        datagrams, off = [], 0
        while off < len(data):
            length = int.from_bytes(data[off + 2:off + 4], "big")
            datagrams.append(data[off:off + length])
            off += length
        pcap = self.path("ipfix.pcap")
        write_udp_pcap(pcap, datagrams[:20], 4739)
        fields = subprocess.run(["tshark", "-n", "-r", pcap, "-T", "fields", "-e", "cflow.direction"],
                                capture_output=True, text=True, check=True).stdout
        values = [v for line in fields.split() for v in line.split(",") if v]
        self.assertIn("0", values)
        self.assertIn("1", values)
        self.assertTrue(set(values) <= {"0", "1"}, set(values))

    def test_bad_local_networks_are_refused_with_their_place(self):
        cfg = self.path("bad.yaml")
        with open(cfg, "w") as f:
            f.write("local_networks:\n  - 10.0.0.0/8\n  - 10.1.2.3/16\nexporters:\n  - type: text\n")
        proc = run_flowfold("--check-config", cfg, check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(cfg + ":3:5: local_networks: '10.1.2.3/16' has host bits set below /16", proc.stderr)


if __name__ == "__main__":
    unittest.main()
