"""Biflows (RFC 5103) of an IPFIX exporter with `biflow: true`, read by
readers that share no code with flowfold: the Debian python3-ipfix reader
(python-ipfix, which knows RFC 5103's reverse elements), ipfixDump and tshark.

  - Folding each biflow's reverse half back into a flow of its own (the
    reverse key: ends swapped) gives flowgen's truth exactly, as the uniflow
    export of the same run does; records + biflows_paired = the cache's flows.
  - Each half carries its own side's end reason (flowEndReason and
    reverseFlowEndReason): unfolded, the biflows are the uniflow export of
    the same run record for record, end reasons included.
  - With local_networks (templates 262/263) flowDirection is the
    initiator's, as the addresses say (computed here with ipaddress).
  - Over UDP and TCP the collector gets the same as the file.
  - On real captures, where exactly one side of a TCP conversation sent a
    SYN without ACK (tshark says which), that side is the forward one."""

import ipaddress
import json
import os
import socket
import struct
import subprocess
import unittest

from harness import (REPO, TcpCollector, parse_ipfix_stream, TempDirTest, add_flow, flowgen, free_udp_port, need, read_truth,
                     run_flowfold, stats_of, stats_sections)
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
        if "protocolIdentifier" not in r:
            continue  # an options record (the exporter's statistics)
        src = r.get("sourceIPv4Address", r.get("sourceIPv6Address"))
        dst = r.get("destinationIPv4Address", r.get("destinationIPv6Address"))
        print(json.dumps([r["protocolIdentifier"], str(src), r["sourceTransportPort"], str(dst),
                          r["destinationTransportPort"], r["vlanId"], r["packetDeltaCount"], r["octetDeltaCount"],
                          r["reversePacketDeltaCount"], r["reverseOctetDeltaCount"], r["tcpControlBits"],
                          r["reverseTcpControlBits"], r["biflowDirection"], r["flowEndReason"],
                          r["reverseFlowEndReason"], r.get("flowDirection")]))
"""

# The uniflow records of a file: key, packets, octets, flowEndReason.
UNIFLOW_READER = r"""
import json, sys
import ipfix.ie, ipfix.reader
ipfix.ie.use_iana_default()
with open(sys.argv[1], "rb") as f:
    for r in ipfix.reader.from_stream(f).namedict_iterator():
        if "protocolIdentifier" not in r:
            continue  # an options record (the exporter's statistics)
        src = r.get("sourceIPv4Address", r.get("sourceIPv6Address"))
        dst = r.get("destinationIPv4Address", r.get("destinationIPv6Address"))
        print(json.dumps([r["protocolIdentifier"], str(src), r["sourceTransportPort"], str(dst),
                          r["destinationTransportPort"], r["vlanId"], r["packetDeltaCount"], r["octetDeltaCount"],
                          r["flowEndReason"]]))
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


def read_uniflows(path):
    out = subprocess.run([DEBIAN_PYTHON, "-c", UNIFLOW_READER, path], capture_output=True, text=True,
                         check=True).stdout
    return sorted(tuple(json.loads(line)) for line in out.splitlines())


def unfold(biflows):
    """The uniflow records the biflows stand for: (key..., packets, octets, end reason), sorted."""
    records = []
    for b in biflows:
        key = tuple(b[:6])
        records.append((*key, b[6], b[7], b[13]))
        if b[8]:
            records.append((*reverse_key(key), b[8], b[9], b[14]))
    return sorted(records)


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
    def export(self, pcap, *extra, workers=1, extra_args=(), local_networks=None):
        bi, uni = self.path("bi.ipfix"), self.path("uni.ipfix")
        for old in (bi, uni):  # flowfold appends to an IPFIX file
            if os.path.exists(old):
                os.remove(old)
        config = self.path("biflow.yaml")
        with open(config, "w") as f:
            if local_networks:
                f.write("local_networks: [%s]\n" % ", ".join(local_networks))
            f.write("exporters:\n"
                    "  - type: ipfix\n    path: %s\n    biflow: true\n%s"
                    "  - type: ipfix\n    path: %s\n" % (bi, "".join("    %s\n" % e for e in extra if e), uni))
        proc = run_flowfold("-c", config, "-r", pcap, "--workers", str(workers), *extra_args)
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
                # One-sided records have no reverse side: reverseFlowEndReason 0.
                self.assertTrue(all(b[14] == 0 for b in biflows if b[8] == 0))
                exporter = next(d for title, d in stats_sections(proc.stderr) if "bi.ipfix" in title)
                self.assertEqual(exporter["records"], len(biflows))
                self.assertEqual(exporter.get("biflows_paired", 0), paired)
                # Every flow of the cache is in exactly one biflow.
                self.assertEqual(len(biflows) + paired, stats_of(proc.stderr)["records"])

    def test_each_side_keeps_its_end_reason_record_for_record_with_the_uniflow_export(self):
        pcap, _ = flowgen("it-biflow", "-n", "60000", "-c", "800", "-d", "40", "-S", "128", "-s", "11",
                          "-6", "0.3")
        for extra in ([], ["-t", "tcp_end=0"]):  # with the tcp_end window (3 on both sides) and without
            with self.subTest(extra=extra):
                bi, uni, _ = self.export(pcap, extra_args=extra)
                biflows = read_biflows(bi)
                uniflows = read_uniflows(uni)
                self.assertEqual(unfold(biflows), uniflows)
                reasons = {b[13] for b in biflows} | {b[14] for b in biflows if b[8]}
                self.assertIn(3, reasons)  # flowgen's TCP conversations end with FIN
                self.assertGreater(len(reasons), 1)

    def test_local_networks_give_the_initiators_direction_in_templates_262_and_263(self):
        pcap, truth_path = flowgen("it-biflow", "-n", "60000", "-c", "800", "-d", "40", "-S", "128", "-s", "11",
                                   "-6", "0.3")
        truth = read_truth(truth_path)
        biflows = read_biflows(self.export(pcap)[0])
        # Local: the first half of the initiators' source addresses of each family, so
        # that egress, ingress and no direction all occur.
        sources = sorted({b[1] for b in biflows}, key=lambda a: (":" in a, ipaddress.ip_address(a)))
        v4 = [a for a in sources if ":" not in a]
        v6 = [a for a in sources if ":" in a]
        local = [ipaddress.ip_network(v4[len(v4) // 2] + "/8", strict=False),
                 ipaddress.ip_network(v6[len(v6) // 2] + "/16", strict=False)]
        bi, _, _ = self.export(pcap, "", local_networks=[str(n) for n in local])
        biflows = read_biflows(bi)
        self.assertFlowsEqual(fold_back(biflows), truth)
        counts = {}
        for b in biflows:
            is_local = [any(ipaddress.ip_address(a) in n for n in local) for a in (b[1], b[3])]
            want = {(True, False): 1, (False, True): 0}.get(tuple(is_local))  # egress 1, ingress 0, else none
            self.assertEqual(b[15], want, "biflow %s" % (b[:5],))
            counts[want] = counts.get(want, 0) + 1
        self.assertTrue(all(counts.get(d, 0) > 0 for d in (0, 1, None)), counts)

    def test_a_collector_over_udp_or_tcp_gets_what_the_file_gets(self):
        pcap, truth_path = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        truth = read_truth(truth_path)
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                config = self.path("net.yaml")
                write_config = lambda port: open(config, "w").write(
                    "exporters:\n  - type: ipfix\n    collector: 127.0.0.1:%d\n    transport: %s\n"
                    "    biflow: true\n" % (port, transport))
                if transport == "udp":
                    received = bytearray()
                    port = free_udp_port()
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
                        sock.bind(("127.0.0.1", port))
                        write_config(port)
                        proc = run_flowfold("-c", config, "-r", pcap)
                        sock.settimeout(1)
                        try:
                            while True:  # every datagram is in the socket's buffer by now
                                received.extend(sock.recv(65535))
                        except socket.timeout:
                            pass
                else:
                    with TcpCollector() as collector:
                        write_config(collector.port)
                        proc = run_flowfold("-c", config, "-r", pcap)
                    received = collector.received
                    # The session ends with its templates withdrawn (RFC 7011
                    # section 8.1), which python3-ipfix 0.9.7 cannot read (it
                    # fails on a withdrawal of an options template): our own
                    # reader checks the withdrawal, python-ipfix the rest.
                    _, messages = parse_ipfix_stream(bytes(received))
                    self.assertTrue(messages[-1]["withdrawn"])
                    received = received[:len(received) - messages[-1]["length"]]
                stream = self.path("net.ipfix")
                with open(stream, "wb") as f:
                    f.write(received)
                biflows = read_biflows(stream)
                self.assertFlowsEqual(fold_back(biflows), truth)
                exporter = next(d for title, d in stats_sections(proc.stderr) if "127.0.0.1" in title)
                self.assertEqual(len(biflows), exporter["records"])

    def test_netflow9_refuses_biflow(self):
        config = self.path("v9.yaml")
        with open(config, "w") as f:
            f.write("exporters:\n  - type: netflow9\n    collector: 127.0.0.1:2055\n    biflow: true\n")
        proc = run_flowfold("-c", config, "-r", os.path.join(IN_REPO_PCAPS, "the-tcpdump-group_tcpdump-tcp-handshake-nano.pcap"),
                            check=False)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("v9.yaml:4:13", proc.stderr)
        self.assertIn("'biflow' is not a setting of a netflow9 exporter", proc.stderr)

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
