"""VLAN tags and MPLS label stacks at the real collectors: what nfcapd/nfdump,
nfacctd and tshark each display for a hand-built capture and for real ones.

What each shows (nfdump 1.7.1, pmacct 1.7.7, Wireshark 4.0, checked here):
  - outer tag, vlanId / SRC_VLAN (58): nfdump "src vlan" (%svln), nfacctd
    "vlan", tshark cflow.vlanid;
  - inner tag, postVlanId / DST_VLAN (59): nfdump "dst vlan" (%dvln), tshark
    cflow.post_vlanid, nfacctd through a custom primitive (field_type=59);
    dot1qCustomerVlanId (245, IPFIX only): tshark cflow.dot1q_customer_vlan_id,
    nfacctd through a custom primitive; nfdump 1.7.1 ignores it (and 243/254
    in IPFIX);
  - MPLS label stack entries, mplsTopLabelStackSection / mplsLabelStackSection2
    and 3 (IPFIX 70-72) or MPLS_LABEL_1..3 (v9 70-72): nfdump %mpls1..%mpls3 as
    "label-TC-S" ("0-0-0" where the stack does not reach); tshark
    cflow.mpls_label, cflow.mpls_exp, cflow.mpls_bos (one occurrence per entry,
    three per record); nfacctd mpls_label_top, mpls_label_bottom and
    mpls_stack_depth."""

import json
import random
import re
import os
import signal
import struct
import time
import subprocess
import unittest

from harness import REPO, Nfcapd, TempDirTest, free_udp_port, need, run_flowfold, udp_socket_state, wait_for
from test_collectors import write_udp_pcap

PCAPS = os.path.join(REPO, "tests", "data", "pcaps")
MAC = bytes.fromhex("66778899aabb001122334455")


def ipv4_udp(src, dst, sport, dport, payload=b"x" * 20):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(src), bytes(dst))
    return ip + udp


def tagged(tags, ethertype=0x0800):
    """An Ethernet header with 802.1ad/802.1Q tags, outermost first."""
    b = MAC
    for i, vid in enumerate(tags):
        b += struct.pack("!HH", 0x88A8 if i == 0 and len(tags) > 1 else 0x8100, (3 << 13) | vid)
    return b + struct.pack("!H", ethertype)


def mpls(stack):
    """An Ethernet header and an MPLS label stack [(label, tc, ttl)], top first."""
    b = MAC + struct.pack("!H", 0x8847)
    for i, (label, tc, ttl) in enumerate(stack):
        b += struct.pack("!I", label << 12 | tc << 9 | (i == len(stack) - 1) << 8 | ttl)
    return b


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i // 10, 0, len(frame), len(frame)) + frame)


# Flows of the hand-built capture by source port: (outer tag, inner tag).
VLANS = {1001: (100, 200), 1002: (4094, 1), 1003: (7, 0), 1004: (0, 0)}


def hand_built(path):
    frames = []
    for _ in range(3):
        frames.append(tagged([100, 200]) + ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1001, 53))
        frames.append(tagged([4094, 1, 5]) + ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1002, 53))  # third tag skipped
        frames.append(tagged([7]) + ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1003, 53))
        frames.append(MAC + b"\x08\x00" + ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1004, 53))
    write_pcap(path, frames)


def rows_of(outdir):
    """The rows nfacctd's print plugin wrote (CSV files, a header line each)."""
    rows = []
    for name in sorted(os.listdir(outdir)):
        header = None
        for line in open(os.path.join(outdir, name)):
            cols = line.strip().split(",")
            if "PACKETS" in cols:
                header = cols
            elif header and len(cols) == len(header):
                rows.append(dict(zip(header, cols)))
    return rows


class Collectors(TempDirTest):
    """Runs flowfold on a capture into each collector and returns its view."""

    def nfdump(self, pcap, version, fmt):
        nfcapd = Nfcapd(self.tmp, "nfcapd-v%d" % version)
        run_flowfold("-r", pcap, "-n", nfcapd.address, "-v", str(version))
        nfcapd.stop()
        out = subprocess.run(["nfdump", "-R", nfcapd.dir, "-q", "-N", "-o", "fmt:" + fmt],
                             capture_output=True, text=True, check=True).stdout
        return sorted(tuple(c.strip() for c in line.split("|")) for line in out.splitlines() if line.strip())

    def nfacctd(self, pcap, version, aggregate, primitives, expect_packets):
        need("nfacctd")
        port = free_udp_port()
        prims = self.path("primitives.lst")
        with open(prims, "w") as f:
            f.write("\n".join(primitives) + "\n")
        outdir = self.path("nfacctd-v%d" % version)
        os.makedirs(outdir)
        conf = self.path("nfacctd.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "daemonize: false", "nfacctd_ip: 127.0.0.1", "nfacctd_port: %d" % port, "plugins: print",
                "aggregate: " + aggregate, "aggregate_primitives: " + prims, "print_output: csv",
                "print_refresh_time: 1", "print_output_file: " + outdir + "/%s.csv", "print_output_file_append: true",
                "nfacctd_time_new: true", ""]))
        with open(self.path("nfacctd.log"), "w") as log:
            proc = subprocess.Popen(["nfacctd", "-f", conf], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            # Listening is not enough: records that reach nfacctd before its
            # print plugin has started are lost, templates with them.
            def log():
                with open(self.path("nfacctd.log")) as f:
                    return f.read()
            wait_for(lambda: ("waiting for NetFlow" in log() and "cache entries" in log()) or proc.poll() is not None,
                     "nfacctd to start")
            time.sleep(1)
            run_flowfold("-r", pcap, "-n", "127.0.0.1:%d" % port, "-v", str(version))
            # Every flow folds into one row: wait for the packets of all of them.
            wait_for(lambda: sum(int(r["PACKETS"]) for r in rows_of(outdir)) >= expect_packets,
                     "nfacctd to print", limit=30, interval=0.5)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        return rows_of(outdir)

    def tshark(self, pcap, version, fields):
        rows = []
        for cols in self.tshark_raw(pcap, version, fields):
            # One row per record: the n-th value of each field (fields present in every record).
            for i in range(len(cols[0])):
                rows.append(tuple(c[i] if i < len(c) else "" for c in cols))
        return sorted(rows)

    def tshark_raw(self, pcap, version, fields):
        """Per exported datagram, every value of each field (all its occurrences)."""
        need("tshark")
        sink = __import__("socket").socket(__import__("socket").AF_INET, __import__("socket").SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        proc = run_flowfold("-r", pcap, "-n", "127.0.0.1:%d" % port, "-v", str(version))
        messages = int(proc.stderr.split("messages=")[1].split()[0])
        sink.settimeout(10)
        datagrams = [sink.recv(65535) for _ in range(messages)]
        sink.close()
        cap = self.path("export-v%d.pcap" % version)
        write_udp_pcap(cap, datagrams, port)
        return self.tshark_columns(cap, port, fields)

    @staticmethod
    def tshark_columns(cap, port, fields):
        out = subprocess.run(["tshark", "-r", cap, "-d", "udp.port==%d,cflow" % port, "-T", "fields",
                              "-E", "occurrence=a", "-E", "aggregator=|", *sum((["-e", f] for f in fields), [])],
                             capture_output=True, text=True, check=True).stdout
        return [[c.split("|") if c else [] for c in line.split("\t")] for line in out.splitlines()]


class VlanTagsAtCollectors(Collectors):

    def setUp(self):
        super().setUp()
        self.pcap = self.path("vlans.pcap")
        hand_built(self.pcap)

    def test_nfdump_shows_the_outer_tag_as_src_vlan_and_the_inner_as_dst_vlan(self):
        want = sorted((str(sp), str(o), str(i)) for sp, (o, i) in VLANS.items())
        for version in (10, 9):
            with self.subTest(version=version):
                self.assertEqual(self.nfdump(self.pcap, version, "%sp|%svln|%dvln"), want)

    def test_nfacctd_shows_the_outer_tag_as_vlan_and_the_inner_through_custom_primitives(self):
        for version in (10, 9):
            with self.subTest(version=version):
                prims = ["name=post_vlan field_type=59 len=2 semantics=u_int"]
                if version == 10:
                    prims.append("name=customer_vlan field_type=245 len=2 semantics=u_int")
                rows = self.nfacctd(self.pcap, version, "src_port, vlan, " + ", ".join(
                    p.split()[0].split("=")[1] for p in prims), prims, 12)
                got = sorted((int(r["SRC_PORT"]), int(r["VLAN"]), int(r["post_vlan"]),
                              int(r.get("customer_vlan", r["post_vlan"]))) for r in rows)
                self.assertEqual(got, sorted((sp, o, i, i) for sp, (o, i) in VLANS.items()))

    def test_tshark_shows_both_tags(self):
        got = self.tshark(self.pcap, 10, ["cflow.srcport", "cflow.vlanid", "cflow.post_vlanid",
                                          "cflow.dot1q_customer_vlan_id"])
        self.assertEqual(got, sorted((str(sp), str(o), str(i), str(i)) for sp, (o, i) in VLANS.items()))
        got = self.tshark(self.pcap, 9, ["cflow.srcport", "cflow.vlanid", "cflow.post_vlanid"])
        self.assertEqual(got, sorted((str(sp), str(o), str(i)) for sp, (o, i) in VLANS.items()))

    def test_a_real_qinqinq_capture_shows_its_outer_and_inner_tags(self):
        # zeek's vlan-qinqinq.pcap: tags 30 (802.1ad), 20, 10 on every frame,
        # as tshark reads them; flowfold keeps the first two.
        pcap = os.path.join(PCAPS, "zeek_zeek-vlan-qinqinq.pcap")
        tags = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "vlan.id"], capture_output=True,
                              text=True, check=True).stdout.split()
        self.assertEqual(set(tags), {"30,20,10"})
        self.assertEqual(set(r[1:] for r in self.nfdump(pcap, 10, "%sp|%svln|%dvln")), {("30", "20")})
        self.assertEqual(set(r[1:] for r in self.tshark(pcap, 10, ["cflow.srcport", "cflow.vlanid",
                                                                    "cflow.post_vlanid",
                                                                    "cflow.dot1q_customer_vlan_id"])),
                         {("30", "20", "20")})


# Flows of the hand-built MPLS capture by source port: the stack as
# [(label, tc, ttl)], top first; 2005 has none. Stacks of depth 1 to 4: the
# fourth entry is not exported.
STACKS = {2001: [(100, 1, 64)],
          2002: [(200, 2, 64), (201, 3, 63)],
          2003: [(300, 4, 64), (301, 5, 63), (302, 6, 62)],
          2004: [(400, 7, 64), (401, 0, 63), (402, 1, 62), (403, 2, 61)],
          2005: []}


def exported_entries(stack):
    """The three exported entries [(label, tc, s)]: the top three of the stack,
    S set on the bottom one, (0, 0, 0) beyond the stack."""
    entries = [(label, tc, int(i == len(stack) - 1)) for i, (label, tc, _) in enumerate(stack)][:3]
    return entries + [(0, 0, 0)] * (3 - len(entries))


def mpls_hand_built(path):
    frames = []
    for _ in range(3):
        for sport, stack in STACKS.items():
            link = mpls(stack) if stack else MAC + b"\x08\x00"
            frames.append(link + ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], sport, 53))
    write_pcap(path, frames)


class MplsStacksAtCollectors(Collectors):

    def setUp(self):
        super().setUp()
        self.pcap = self.path("mpls.pcap")
        mpls_hand_built(self.pcap)

    def test_nfdump_shows_each_entry_as_label_tc_s(self):
        want = sorted((str(sp),) + tuple("%d-%d-%d" % e for e in exported_entries(st)) for sp, st in STACKS.items())
        for version in (10, 9):
            with self.subTest(version=version):
                self.assertEqual(self.nfdump(self.pcap, version, "%sp|%mpls1|%mpls2|%mpls3"), want)

    def test_tshark_shows_label_exp_and_bottom_of_each_entry(self):
        want = sorted((str(sp), tuple((str(l), str(tc), str(s)) for l, tc, s in exported_entries(st)))
                      for sp, st in STACKS.items())
        for version in (10, 9):
            with self.subTest(version=version):
                self.assertEqual(self.tshark_stacks(self.pcap, version), want)

    def test_nfacctd_shows_top_and_bottom_label_and_depth(self):
        for version in (10, 9):
            with self.subTest(version=version):
                rows = self.nfacctd(self.pcap, version, "src_port, mpls_label_top, mpls_label_bottom, "
                                    "mpls_stack_depth", [], 3 * len(STACKS))
                got = sorted((int(r["SRC_PORT"]), int(r["MPLS_LABEL_TOP"]), int(r["MPLS_LABEL_BOTTOM"]),
                              int(r["MPLS_STACK_DEPTH"])) for r in rows)
                self.assertEqual(got, sorted(self.pmacct_view(sp, st) for sp, st in STACKS.items()))

    def test_text_and_json_show_the_entries_with_one_worker_and_with_two(self):
        # --workers copies each decoded packet to a worker thread: the stack travels with it.
        for workers in ("1", "2"):
            with self.subTest(workers=workers):
                lines = run_flowfold("-r", self.pcap, "--workers", workers, "--json").stdout.splitlines()
                got = {}
                for line in lines:
                    flow = json.loads(line)
                    got[flow["src_port"]] = (flow["mpls_label"], [(e["label"], e["tc"], e["s"])
                                                                  for e in flow["mpls_labels"]])
                want = {}
                for sport, stack in STACKS.items():
                    # The entries present: none beyond the stack's depth.
                    want[sport] = (stack[0][0] if stack else 0, exported_entries(stack)[:len(stack)])
                self.assertEqual(got, want)
                text = run_flowfold("-r", self.pcap, "--workers", workers, "--text").stdout
                self.assertIn(":2003 -> 10.0.0.2:53 ", text)
                for line in text.splitlines():
                    sport = int(line.split(" -> ")[0].rsplit(":", 1)[1])
                    entries = exported_entries(STACKS[sport])[:len(STACKS[sport])]
                    tail = (" mpls " + ",".join("%d-%d-%d" % e for e in entries)) if entries else ""
                    self.assertRegex(line, re.escape(tail + " end forced flow_id ") + r"\d+$")

    def test_flows_with_mpls_stacks_count_exactly_what_was_sent(self):
        # 600 UDP flows of 1 to 9 packets of 1 to 300 payload bytes, each behind
        # a label stack of depth 0 to 5 (labels, TC and TTL at random), sent in
        # an interleaved order; the truth per key is counted here as the packets
        # are built. The same IP packets without MPLS give the same flows.
        rng = random.Random(19)
        frames, plain, truth = [], [], {}
        sends = []
        for n in range(600):
            src, dst = [10, 1, n // 256, n % 256], [192, 0, 2, rng.randrange(1, 255)]
            sport, dport = 1024 + n, rng.choice([53, 123, 443, 4789])
            stack = [(rng.randrange(16, 1 << 20), rng.randrange(8), rng.randrange(1, 256))
                     for _ in range(rng.randrange(6))]
            for _ in range(rng.randrange(1, 10)):
                sends.append((rng.random(), src, dst, sport, dport, stack, b"y" * rng.randrange(1, 301)))
        sends.sort()
        for _, src, dst, sport, dport, stack, payload in sends:
            ip = ipv4_udp(src, dst, sport, dport, payload)
            frames.append((mpls(stack) if stack else MAC + b"\x08\x00") + ip)
            plain.append(MAC + b"\x08\x00" + ip)
            key = (".".join(map(str, src)), sport, ".".join(map(str, dst)), dport)
            packets, octets = truth.get(key, (0, 0))
            truth[key] = (packets + 1, octets + len(ip))
        write_pcap(self.pcap, frames)
        plain_pcap = self.path("plain.pcap")
        write_pcap(plain_pcap, plain)
        for pcap in (self.pcap, plain_pcap):
            for workers in ("1", "2"):
                with self.subTest(capture=os.path.basename(pcap), workers=workers):
                    got = {}
                    for line in run_flowfold("-r", pcap, "--workers", workers, "--json").stdout.splitlines():
                        f = json.loads(line)
                        key = (f["src"], f["src_port"], f["dst"], f["dst_port"])
                        packets, octets = got.get(key, (0, 0))
                        got[key] = (packets + f["packets"], octets + f["bytes"])
                    self.assertEqual(got, truth)

    @staticmethod
    def pmacct_view(sport, stack):
        """pmacct 1.7.7: top = label of entry 1; bottom = label of the first
        exported entry with S set, else 0; depth = exported entries with a
        non-zero section (label, TC or S), as it walks 70..72."""
        entries = exported_entries(stack)
        bottom = next((l for l, _, s in entries if s), 0)
        depth = sum(1 for e in entries if e != (0, 0, 0))
        return (sport, entries[0][0], bottom, depth)

    def tshark_stacks(self, pcap, version):
        """[(source port, ((label, exp, bos) x 3))] of every record tshark dissects."""
        rows = self.tshark_raw(pcap, version, ["cflow.srcport", "cflow.mpls_label", "cflow.mpls_exp",
                                                "cflow.mpls_bos"])
        out = []
        for ports, labels, exps, bos in rows:
            self.assertEqual(len(labels), 3 * len(ports))
            for i, port in enumerate(ports):
                out.append((port, tuple(zip(labels[3 * i:3 * i + 3], exps[3 * i:3 * i + 3],
                                            [str(int(b in ("1", "True"))) for b in bos[3 * i:3 * i + 3]]))))
        return sorted(out)

    def test_a_real_mpls_capture_gives_each_flow_its_stack(self):
        # zeek's mixed-vlan-mpls.pcap: the stack of each flow's first frame as
        # tshark reads it, against nfdump's view of what flowfold exported.
        pcap = os.path.join(PCAPS, "zeek_zeek-mixed-vlan-mpls.pcap")
        out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "tcp.srcport",
                              "-e", "ip.dst", "-e", "tcp.dstport", "-e", "mpls.label", "-e", "mpls.exp",
                              "-e", "mpls.bottom"], capture_output=True, text=True, check=True).stdout
        want = {}
        for line in out.splitlines():
            src, sport, dst, dport, labels, exps, bottoms = line.split("\t")
            stack = list(zip(labels.split(","), exps.split(","), bottoms.split(","))) if labels else []
            entries = ["%s-%s-%s" % e for e in stack[:3]] + ["0-0-0"] * (3 - min(3, len(stack)))
            want.setdefault((src, sport, dst, dport), tuple(entries))
        self.assertIn(("29-6-1", "0-0-0", "0-0-0"), want.values())
        for version in (10, 9):
            with self.subTest(version=version):
                got = self.nfdump(pcap, version, "%sa|%sp|%da|%dp|%mpls1|%mpls2|%mpls3")
                self.assertEqual({r[:4]: r[4:] for r in got}, want)


if __name__ == "__main__":
    unittest.main()
