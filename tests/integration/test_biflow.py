"""Biflows (RFC 5103) of an IPFIX exporter with `biflow: true`, read by
readers that share no code with flowfold: the Debian python3-ipfix reader
(python-ipfix, which knows RFC 5103's reverse elements), ipfixDump and tshark.

  - Folding each biflow's reverse half back into a flow of its own (the
    reverse key: ends swapped) gives flowgen's truth exactly, as the uniflow
    export of the same run does; records + biflows_paired = the cache's flows.
  - On real captures, where exactly one side of a TCP conversation sent a
    SYN without ACK (tshark says which), that side is the forward one."""

import json
import os
import struct
import subprocess
import unittest

from harness import (REPO, TempDirTest, add_flow, flowgen, need, read_truth, run_flowfold, stats_of,
                     stats_sections)
from test_collectors import write_udp_pcap

# The Debian interpreter, where python3-ipfix is installed (the tests' own
# interpreter may be another one).
DEBIAN_PYTHON = "/usr/bin/python3"
SHARED_PCAPS = os.path.join(os.path.dirname(REPO), "shared", "pcaps")
IN_REPO_PCAPS = os.path.join(REPO, "tests", "data", "pcaps")

# Reads an IPFIX file with python-ipfix, one JSON line per record: the key,
# the counters both ways, and what the checks below need.
READER = r"""
import ipaddress, json, sys
import ipfix.ie, ipfix.reader
ipfix.ie.use_iana_default()
ipfix.ie.use_5103_default()
with open(sys.argv[1], "rb") as f:
    for r in ipfix.reader.from_stream(f).namedict_iterator():
        src = r.get("sourceIPv4Address", r.get("sourceIPv6Address"))
        dst = r.get("destinationIPv4Address", r.get("destinationIPv6Address"))
        print(json.dumps([r["protocolIdentifier"], str(src), r["sourceTransportPort"], str(dst),
                          r["destinationTransportPort"], r["vlanId"], r["packetDeltaCount"], r["octetDeltaCount"],
                          r["reversePacketDeltaCount"], r["reverseOctetDeltaCount"], r["tcpControlBits"],
                          r["reverseTcpControlBits"], r["biflowDirection"], r["flowEndReason"]]))
"""

# ICMP requests and their replies (type), both ways, for the reverse key.
ICMP_REPLY = {1: {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}, 58: {128: 129, 129: 128}}


def reverse_key(key):
    proto, src, sport, dst, dport, vlan = key
    if proto in ICMP_REPLY:
        kind, code = divmod(dport, 256)
        return (proto, dst, 0, src, ICMP_REPLY[proto].get(kind, kind) * 256 + code, vlan)
    return (proto, dst, dport, src, sport, vlan)


def read_biflows(path):
    need(DEBIAN_PYTHON)
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import ipfix"], capture_output=True)
    if probe.returncode != 0:
        raise unittest.SkipTest("python3-ipfix is not installed (scripts/install-deps.sh installs it)")
    out = subprocess.run([DEBIAN_PYTHON, "-c", READER, path], capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def fold_back(biflows):
    """Each biflow as the uniflow records it stands for, summed per truth key."""
    flows = {}
    for b in biflows:
        proto, src, sport, dst, dport, vlan, pk, oc, rpk, roc = b[:10]
        key = (proto, src, sport, dst, dport, vlan)
        add_flow(flows, key, pk, oc)
        if rpk:
            add_flow(flows, reverse_key(key), rpk, roc)
    return flows


def ipfix_messages(path):
    data, messages, off = open(path, "rb").read(), [], 0
    while off < len(data):
        length = struct.unpack_from("!H", data, off + 2)[0]
        messages.append(data[off:off + length])
        off += length
    return messages


class Biflows(TempDirTest):
    def export(self, pcap, *extra, workers=1):
        bi, uni = self.path("bi.ipfix"), self.path("uni.ipfix")
        for old in (bi, uni):  # flowfold appends to an IPFIX file
            if os.path.exists(old):
                os.remove(old)
        config = self.path("biflow.yaml")
        with open(config, "w") as f:
            f.write("exporters:\n"
                    "  - type: ipfix\n    path: %s\n    biflow: true\n%s"
                    "  - type: ipfix\n    path: %s\n" % (bi, "".join("    %s\n" % e for e in extra), uni))
        proc = run_flowfold("-c", config, "-r", pcap, "--workers", str(workers))
        return bi, uni, proc

    def test_folding_the_reverse_half_back_gives_flowgen_truth(self):
        pcap, truth_path = flowgen("it-biflow", "-n", "60000", "-c", "800", "-d", "40", "-S", "128", "-s", "11",
                                   "-6", "0.3")
        truth = read_truth(truth_path)
        for workers in (1, 2):
            with self.subTest(workers=workers):
                bi, _, proc = self.export(pcap, workers=workers)
                biflows = read_biflows(bi)
                self.assertFlowsEqual(fold_back(biflows), truth)
                paired = sum(1 for b in biflows if b[8] > 0)
                self.assertGreater(paired, len(biflows) // 4)  # flowgen's conversations have replies
                self.assertTrue(all(b[12] == 1 for b in biflows))  # biflowDirection: initiator
                exporter = next(d for title, d in stats_sections(proc.stderr) if "bi.ipfix" in title)
                self.assertEqual(exporter["records"], len(biflows))
                self.assertEqual(exporter.get("biflows_paired", 0), paired)
                # Every flow of the cache is in exactly one biflow.
                self.assertEqual(len(biflows) + paired, stats_of(proc.stderr)["records"])

    def test_the_syn_sender_is_the_initiator_in_real_captures(self):
        need("tshark")
        captures = [os.path.join(IN_REPO_PCAPS, "zeek_zeek-ipv6-http-atomic-frag.pcap"),
                    os.path.join(IN_REPO_PCAPS, "the-tcpdump-group_tcpdump-tcp-handshake-nano.pcap")]
        for rel in ("zeek_zeek/testing/btest/Traces/echo-connections.pcap",
                    "ntop_nDPI/tests/cfgs/default/pcap/alexa-app.pcapng",
                    "ntop_nDPI/tests/cfgs/default/pcap/sites.pcapng",
                    "OISF_suricata-verify/tests/http-range-multiflows/input.pcap"):
            if os.path.exists(os.path.join(SHARED_PCAPS, rel)):
                captures.append(os.path.join(SHARED_PCAPS, rel))
        checked = 0
        per_capture = {}
        for pcap in captures:
            with self.subTest(capture=os.path.basename(pcap)):
                fields = subprocess.run(
                    ["tshark", "-r", pcap, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
                     "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
                     "-e", "tcp.dstport"], capture_output=True, text=True, check=True).stdout
                syn_senders = set()
                for line in fields.splitlines():
                    s4, s6, sport, d4, d6, dport = line.split("\t")
                    # Tunnelled packets list the outer and inner addresses: the innermost is the flow's.
                    src, dst = (s4 or s6).split(",")[-1], (d4 or d6).split(",")[-1]
                    syn_senders.add((src, int(sport.split(",")[-1]), dst, int(dport.split(",")[-1])))
                bi, _, _ = self.export(pcap, "biflow_wait: 60s")
                for b in read_biflows(bi):
                    if b[0] != 6 or b[8] == 0:
                        continue
                    forward = (b[1], b[2], b[3], b[4])
                    reverse = (b[3], b[4], b[1], b[2])
                    if (forward in syn_senders) == (reverse in syn_senders):
                        continue  # no SYN seen, or both ways (a port reused the other way)
                    self.assertIn(forward, syn_senders, "biflow %s: the SYN came from %s" % (b[:5], reverse))
                    checked += 1
                    per_capture[pcap] = per_capture.get(pcap, 0) + 1
        # The repository's two captures decide a few conversations; those of
        # ../shared/pcaps (when present) many more.
        self.assertGreater(sum(n for p, n in per_capture.items() if p.startswith(IN_REPO_PCAPS)), 2)
        if len(captures) > 2:
            self.assertGreater(checked, 20, per_capture)

    def test_ipfixdump_and_tshark_read_the_reverse_elements(self):
        need("ipfixDump", "tshark")
        pcap, truth_path = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        truth = read_truth(truth_path)
        want_octets = sum(v[1] for v in truth.values())
        bi, _, proc = self.export(pcap)
        dump = subprocess.run(["ipfixDump", "--in", bi], capture_output=True, text=True)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        exporter = next(d for title, d in stats_sections(proc.stderr) if "bi.ipfix" in title)
        self.assertEqual(dump.stdout.count("reverseOctetDeltaCount :"), exporter["records"])
        self.assertEqual(dump.stdout.count("--- template record ---"), 2)  # 260 and 261, once
        # tshark: the messages in UDP datagrams; no error, and the octets of
        # both directions (tshark lists a record's reverse octets as a second
        # cflow.octets) add up to the truth.
        cap = self.path("bi.pcap")
        write_udp_pcap(cap, ipfix_messages(bi), 4739)
        decode = ["-d", "udp.port==4739,cflow"]
        verbose = subprocess.run(["tshark", "-r", cap, *decode, "-V"], capture_output=True, text=True)
        self.assertEqual(verbose.returncode, 0, verbose.stderr)
        self.assertNotIn("Malformed", verbose.stdout)
        self.assertIn("(Reverse Type 1 BYTES)", verbose.stdout)
        expert = subprocess.run(["tshark", "-r", cap, *decode, "-q", "-z", "expert,error"],
                                capture_output=True, text=True)
        self.assertNotRegex(expert.stdout, r"Errors \(\d+\)")
        octets = subprocess.run(["tshark", "-r", cap, *decode, "-T", "fields", "-e", "cflow.octets"],
                                capture_output=True, text=True, check=True).stdout
        self.assertEqual(sum(int(v) for line in octets.splitlines() for v in line.split(",") if v), want_octets)


if __name__ == "__main__":
    unittest.main()
