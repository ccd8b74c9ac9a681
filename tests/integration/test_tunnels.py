"""Tunnel modes end to end: flowfold over real tunnel captures with --json,
compared with tshark's own view of the inner packets (reassembly off: each
frame on its own; the innermost IPv4/IPv6 layer not inside an ICMP error)."""

import json
import os
import subprocess
import unittest

from harness import REPO, TempDirTest, add_flow, need, norm_addr, run_flowfold, stats_of

PCAPS = os.path.join(REPO, "tests", "data", "pcaps")
FIELDS = ["frame.protocols", "ip.src", "ip.dst", "ip.len", "ip.proto", "ip.id", "ip.flags.mf", "ip.frag_offset",
          "ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport",
          "udp.dstport", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code"]


def tshark_frames(path):
    cmd = ["tshark", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-r", path, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        yield dict(zip(FIELDS, [x.split("|") if x else [] for x in line.split("\t")]))


def ip_layer(v, layers, idx):
    """(proto, src, sport, dst, dport, ip length) of the IP layer at layers[idx]."""
    kind = layers[idx]
    n = layers[:idx + 1].count(kind) - 1
    if kind == "ip":
        src, dst, length, proto = v["ip.src"][n], v["ip.dst"][n], int(v["ip.len"][n]), int(v["ip.proto"][n])
    else:
        src, dst = v["ipv6.src"][n], v["ipv6.dst"][n]
        length, proto = 40 + int(v["ipv6.plen"][n]), int(v["ipv6.nxt"][n])
    sport = dport = 0
    after = layers[idx + 1] if idx + 1 < len(layers) else ""
    if after in ("tcp", "udp"):
        k = layers[:idx + 1].count(after)
        sport, dport = int(v[after + ".srcport"][k]), int(v[after + ".dstport"][k])
    elif after in ("icmp", "icmpv6"):
        dport = int(v[after + ".type"][0]) * 256 + int(v[after + ".code"][0])
    return (proto, norm_addr(src), sport, norm_addr(dst), dport), length


def tshark_flows(path, mode):
    """Flows per tshark: {(proto, src, sport, dst, dport): [packets, octets]}."""
    flows = {}
    first_fragments = {}  # (src, dst, id) -> ports, as flowfold's fragment table keeps them
    for v in tshark_frames(path):
        layers = v["frame.protocols"][0].split(":")
        cut = next((i for i, l in enumerate(layers) if l in ("icmp", "icmpv6")), len(layers))
        ips = [i for i, l in enumerate(layers[:cut]) if l in ("ip", "ipv6")]
        if not ips:
            continue
        outer_fragment = v["ip.flags.mf"][:1] == ["1"] or v["ip.frag_offset"][:1] not in ([], ["0"])
        outer = ip_layer(v, layers, ips[0])
        if outer_fragment and layers[ips[0]] == "ip":
            frag_id = (outer[0][1], outer[0][3], v["ip.id"][0])
            if v["ip.frag_offset"][0] == "0":
                first_fragments[frag_id] = (outer[0][2], outer[0][4])
            elif frag_id in first_fragments:
                sport, dport = first_fragments[frag_id]
                outer = ((outer[0][0], outer[0][1], sport, outer[0][3], dport), outer[1])
        inner = ip_layer(v, layers, ips[-1]) if len(ips) > 1 and not outer_fragment else None
        if mode in ("outer", "both") or inner is None:
            add_flow(flows, outer[0], 1, outer[1])
        if mode in ("inner", "both") and inner is not None:
            add_flow(flows, inner[0], 1, inner[1])
    return flows


def flowfold_flows(path):
    flows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            add_flow(flows, (r["proto"], norm_addr(r["src"]), r["src_port"], norm_addr(r["dst"]), r["dst_port"]),
                     r["packets"], r["bytes"])
    return flows


class TunnelModes(TempDirTest):

    def setUp(self):
        need("tshark")
        super().setUp()

    def check(self, capture, mode, *extra):
        path = os.path.join(PCAPS, capture)
        self.runs = getattr(self, "runs", 0) + 1
        out = self.path("flows-%d.json" % self.runs)  # the JSON exporter appends
        proc = run_flowfold("-r", path, "--json=" + out, "--tunnels", mode, *extra)
        got = flowfold_flows(out)
        self.assertFlowsEqual(got, tshark_flows(path, mode))
        return stats_of(proc.stderr), got

    def test_vxlan_inner_flows_match_tshark(self):
        stats, flows = self.check("OISF_suricata-verify-vxlan.pcap", "inner")
        self.assertEqual(stats["tunnel_vxlan"], 100)
        self.assertEqual(stats["tunnel_decapsulated"], 100)
        self.assertNotIn(17, {k[0] for k in flows if k[4] == 4789})  # no outer VXLAN flow left

    def test_vxlan_both_modes_keep_the_outer_bytes(self):
        _, outer = self.check("OISF_suricata-verify-vxlan.pcap", "outer")
        stats, both = self.check("OISF_suricata-verify-vxlan.pcap", "both")
        for key, value in outer.items():
            self.assertEqual(both[key], value)
        self.assertEqual(sum(v[0] for v in both.values()), 200)

    def test_vxlan_both_with_workers_matches_tshark(self):
        self.check("OISF_suricata-verify-vxlan.pcap", "both", "--workers", "3")

    def test_gre_geneve_and_ip_in_ip_inner_flows_match_tshark(self):
        for capture in ("OISF_suricata-verify-gre-sample.pcap", "the-tcpdump-group_tcpdump-geneve.pcap",
                        "zeek_zeek-geneve-many-options.pcap", "ntop_nDPI-6in4tunnel.pcap",
                        "ntop_nDPI-4in6tunnel.pcap", "ntop_nDPI-6in6tunnel.pcap"):
            with self.subTest(capture=capture):
                self.check(capture, "inner")

    def test_gtpu_fragmented_outer_datagrams_stay_outer(self):
        stats, _ = self.check("zeek_zeek-gtp1_gn_normal_incl_fragmentation.pcap", "inner")
        self.assertEqual(stats["tunnel_gtpu"], 32)
        self.assertEqual(stats["tunnel_outer_fragment"], 76)

    def test_tunnels_key_in_the_configuration_file(self):
        config = self.path("flowfold.yaml")
        with open(config, "w") as f:
            f.write("decoder:\n  tunnels: inner\n")
        out = self.path("flows.json")
        run_flowfold("-c", config, "-r", os.path.join(PCAPS, "OISF_suricata-verify-gre-sample.pcap"),
                     "--json=" + out)
        self.assertFlowsEqual(flowfold_flows(out),
                              tshark_flows(os.path.join(PCAPS, "OISF_suricata-verify-gre-sample.pcap"), "inner"))


if __name__ == "__main__":
    unittest.main()
