"""The packet recorder (issue 20), recording capture files: what it writes is
what was read, byte for byte and in order, as tcpdump reads both; the ring's
bounds (max_size, min_free, max_age), several directories, a segment cut by
a crash, and bad directories.

tcpdump prints each packet with its nanosecond timestamp and every byte
(-x); a recording is right when the tcpdump text of its segments, in
sequence order, is the tcpdump text of the source (or of its last packets,
when the oldest segments were removed)."""

import glob
import json
import time
import os
import re
import signal
import struct
import subprocess
import unittest

from harness import FLOWFOLD, TempDirTest, check_counters_documented, flowgen, need, run_flowfold, stats_of

SEGMENT = re.compile(r"^flowfold-(\d{12})-([A-Za-z0-9_.]+)-(\d+)\.pcap$")


def packets_of(path, bpf=None):
    """tcpdump's text of a capture, one string per packet (timestamp, summary and bytes;
    -S: absolute TCP sequence numbers, so a segment reads as it does in the source),
    of the packets `bpf` matches when given."""
    out = subprocess.run(["tcpdump", "-r", path, "-nn", "-S", "-x", "--time-stamp-precision=nano"] +
                         ([bpf] if bpf else []), capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError("tcpdump cannot read %s: %s" % (path, out.stderr))
    packets = []
    for line in out.stdout.splitlines():
        if line.startswith("\t"):
            packets[-1] += line + "\n"
        else:
            packets.append(line + "\n")
    return packets


def first_and_last_seconds(path):
    """The seconds of a pcap file's first and last packets, read from its record headers."""
    with open(path, "rb") as f:
        data = f.read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, first, last = 24, None, None
    while off + 16 <= len(data):
        sec, _, caplen, _ = struct.unpack_from(endian + "IIII", data, off)
        first = sec if first is None else first
        last = sec
        off += 16 + caplen
    return first, last


def packets_of_partial(path):
    """packets_of() for a file still being written (its last packet may be cut)."""
    out = subprocess.run(["tcpdump", "-r", path, "-nn"], capture_output=True, text=True)
    return out.stdout.splitlines()


def seconds_of_day(packet):
    """The time of a packet of packets_of(), in seconds since midnight."""
    h, m, sec = packet.split(" ", 1)[0].split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def segments(*directories):
    """The ring's segments, oldest first: [(sequence, stream, start_s, path)]."""
    found = []
    for d in directories:
        for name in os.listdir(d):
            m = SEGMENT.match(name)
            if m:
                found.append((int(m.group(1)), m.group(2), int(m.group(3)), os.path.join(d, name)))
    return sorted(found)


def recorded(*directories):
    packets = []
    for _, _, _, path in segments(*directories):
        packets += packets_of(path)
    return packets


class Recording(TempDirTest):
    def setUp(self):
        super().setUp()
        need("tcpdump")
        self.pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        self.source = packets_of(self.pcap)

    def ring(self, name="ring"):
        path = self.path(name)
        os.makedirs(path, exist_ok=True)
        return path

    def record(self, *args, config=None, check=True):
        extra = []
        if config is not None:
            conf = self.path("recorder.yaml")
            with open(conf, "w") as f:
                f.write(config)
            extra = ["-c", conf]
        return run_flowfold("-r", self.pcap, "--text=/dev/null", *extra, *args, check=check)

    def test_the_ring_holds_every_packet_read_byte_for_byte_in_order(self):
        for workers in (1, 2):
            with self.subTest(workers=workers):
                ring = self.ring("ring%d" % workers)
                proc = self.record("--record", ring, "--workers", str(workers))
                self.assertEqual(recorded(ring), self.source)
                stats = stats_of(proc.stderr)
                self.assertEqual(stats["recorder_packets"], len(self.source))
                self.assertEqual(stats["recorder_dropped"], 0)
                self.assertEqual(stats["recorder_segments"], 1)
                self.assertEqual(stats["recorder_bytes"], os.path.getsize(segments(ring)[0][3]) - 24)
                check_counters_documented(self, proc.stderr)

    def test_segments_rotate_and_a_second_run_continues_the_sequence(self):
        ring = self.ring()
        config = "recorder:\n  directory: %s\n  segment_size: 256k\n" % ring
        self.record(config=config)
        first = segments(ring)
        self.assertGreater(len(first), 3)
        self.assertEqual([s[0] for s in first], list(range(1, len(first) + 1)))
        self.assertTrue(all(os.path.getsize(s[3]) <= 256 * 1024 for s in first))
        # Each segment's name carries the second of its first packet.
        for _, stream, start_s, path in first:
            self.assertEqual(stream, "file")
            self.assertEqual(start_s, first_and_last_seconds(path)[0], path)
        self.assertEqual(recorded(ring), self.source)
        # A second run adds segments after the first run's, and keeps them.
        self.record(config=config)
        both = segments(ring)
        self.assertEqual([s[0] for s in both], list(range(1, 2 * len(first) + 1)))
        self.assertEqual(recorded(ring), self.source + self.source)

    def test_max_size_keeps_the_newest_segments_within_the_cap(self):
        ring = self.ring()
        proc = self.record(config="recorder:\n  directory: %s\n  segment_size: 256k\n  max_size: 2M\n" % ring)
        kept = segments(ring)
        # Everything the ring holds counts: segments, their indexes and the flow log.
        total = sum(os.path.getsize(os.path.join(ring, f)) for f in os.listdir(ring))
        self.assertLessEqual(total, 2 << 20)
        self.assertGreaterEqual(len(kept), 3)
        stats = stats_of(proc.stderr)
        self.assertEqual(stats["recorder_segments_removed"], stats["recorder_segments"] - len(kept))
        self.assertEqual(kept[0][0], stats["recorder_segments_removed"] + 1)  # the oldest went first
        tail = recorded(ring)
        self.assertEqual(tail, self.source[len(self.source) - len(tail):])

    def test_max_age_removes_segments_older_than_the_limit_on_the_capture_clock(self):
        ring = self.ring()
        proc = self.record(config="recorder:\n  directory: %s\n  segment_size: 128k\n  max_age: 10s\n" % ring)
        kept = segments(ring)
        stats = stats_of(proc.stderr)
        self.assertGreater(stats["recorder_segments_removed"], 0)
        self.assertEqual(len(kept), stats["recorder_segments"] - stats["recorder_segments_removed"])
        # The clock is the capture's: its last packet. A segment ended when
        # the next began; those kept ended at most 10 s before that clock.
        horizon_s = first_and_last_seconds(self.pcap)[1] - 10
        for older, newer in zip(kept, kept[1:]):
            self.assertGreaterEqual(newer[2], horizon_s, older[3])
        self.assertLess(kept[0][2], horizon_s + 10)
        tail = recorded(ring)
        self.assertEqual(tail, self.source[len(self.source) - len(tail):])

    def test_several_directories_are_written_in_turn(self):
        a, b = self.ring("disk-a"), self.ring("disk-b")
        self.record(config="recorder:\n  directory: [%s, %s]\n  segment_size: 256k\n" % (a, b))
        ring = segments(a, b)
        self.assertGreater(len(ring), 3)
        for sequence, _, _, path in ring:
            self.assertEqual(os.path.dirname(path), a if sequence % 2 == 1 else b)
        self.assertEqual(recorded(a, b), self.source)

    def test_min_free_keeps_free_space_on_a_small_filesystem(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        mount = self.ring("tmpfs")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mount], check=True)
        try:
            proc = self.record(config="recorder:\n  directory: %s\n  segment_size: 256k\n  min_free: 50%%\n" % mount)
            st = os.statvfs(mount)
            # Free space stays above half, give or take the segment being written.
            self.assertGreater(st.f_bavail * st.f_frsize, 2 * 1024 * 1024 - 256 * 1024 - 8192)
            stats = stats_of(proc.stderr)
            self.assertGreater(stats["recorder_segments_removed"], 0)
            self.assertEqual(stats["recorder_dropped"], 0)
            tail = recorded(mount)
            self.assertEqual(tail, self.source[len(self.source) - len(tail):])
        finally:
            subprocess.run(["umount", mount], check=False)

    def test_a_full_disk_stops_recording_with_one_message_and_the_flows_go_on(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        mount = self.ring("full")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mount], check=True)
        try:
            flows = run_flowfold("-r", self.pcap, "--text=/dev/null").stderr
            proc = self.record(config="recorder:\n  directory: %s\n  min_free: 1k\n" % mount, check=False)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertEqual(proc.stderr.count("recording stopped"), 1, proc.stderr)
            stats = stats_of(proc.stderr)
            self.assertEqual(stats["records"], stats_of(flows)["records"])  # the flows are all there
            self.assertEqual(stats["recorder_packets"] + stats["recorder_dropped"], len(self.source))
            self.assertGreater(stats["recorder_dropped"], 0)
            # What was written is readable.
            packets_of(segments(mount)[0][3])
        finally:
            subprocess.run(["umount", mount], check=False)

    def test_a_segment_cut_by_a_crash_is_trimmed_to_its_last_whole_packet(self):
        ring = self.ring()
        config = "recorder:\n  directory: %s\n  segment_size: 256k\n" % ring
        self.record(config=config)
        newest = segments(ring)[-1][3]
        size = os.path.getsize(newest)
        whole = packets_of(newest)[:-1]  # all but the packet about to be cut
        with open(newest, "r+b") as f:
            f.truncate(size - 7)  # the middle of the last packet
        proc = self.record(config=config)
        self.assertIn("trimmed", proc.stderr)
        self.assertEqual(packets_of(newest), whole)  # the file now ends at its last whole packet
        self.assertLess(os.path.getsize(newest), size - 7)
        cut = subprocess.run(["tcpdump", "-r", newest, "-nn"], capture_output=True, text=True)
        self.assertNotIn("truncated", cut.stderr)

    def test_foreign_files_and_links_in_the_ring_are_left_alone(self):
        ring = self.ring()
        victim = self.path("victim")
        with open(victim, "w") as f:
            f.write("keep me\n")
        foreign = os.path.join(ring, "notes.txt")
        with open(foreign, "w") as f:
            f.write("mine\n")
        planted = os.path.join(ring, "flowfold-000000000001-file-1700000000.pcap")
        os.symlink(victim, planted)
        self.record(config="recorder:\n  directory: %s\n  segment_size: 256k\n  max_size: 1M\n" % ring)
        self.assertTrue(os.path.islink(planted))
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me\n")
        with open(foreign) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_bad_directories_get_one_clear_message(self):
        missing = self.path("no-such-dir")
        proc = self.record("--record", missing, check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("recorder: directory %s: No such file or directory" % missing, proc.stderr)
        afile = self.path("a-file")
        open(afile, "w").close()
        proc = self.record("--record", afile, check=False)
        self.assertIn("is not a directory", proc.stderr)
        proc = self.record("--record", self.ring(), "--record-size", "1x", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--record-size", proc.stderr)
        conf = self.path("bad.yaml")
        with open(conf, "w") as f:
            f.write("recorder:\n  directory: %s\n  min_free: 120%%\n" % self.ring())
        proc = run_flowfold("-c", conf, "-r", self.pcap, "--text=/dev/null", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertRegex(proc.stderr, r"bad.yaml:3:13: 'min_free'")


def tcpdump_filtered(path, bpf):
    return packets_of(path, bpf)


def records_of(path):
    """A pcap file's records as (ts_ns, bytes of header and data), read here."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nanos = struct.unpack_from(endian + "I", data)[0] == 0xA1B23C4D
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(endian + "IIII", data, off)
        out.append((sec * 10**9 + (frac if nanos else frac * 1000), data[off:off + 16 + caplen]))
        off += 16 + caplen
    return out


def write_pcap_ns(path, records, linktype=1):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for ts, rec in records:
            f.write(struct.pack("<II", ts // 10**9, ts % 10**9) + rec[8:])


class Extraction(TempDirTest):
    """flowfold extract against tcpdump -r of the source with the same filter."""

    @classmethod
    def setUpClass(cls):
        need("tcpdump")
        cls.pcap, _ = flowgen("it-extract", "-n", "60000", "-c", "2000", "-d", "60", "-S", "128", "-s", "21",
                              "-v", "0.2", "-6", "0.3")

    def setUp(self):
        super().setUp()
        self.ring = self.path("ring")
        os.makedirs(self.ring)
        run_flowfold("-r", self.pcap, "--text=/dev/null", "-c", self.config("segment_size: 512k"))

    def config(self, extra):
        conf = self.path("rec.yaml")
        with open(conf, "w") as f:
            f.write("recorder:\n  directory: %s\n  %s\n" % (self.ring, extra))
        return conf

    def extract(self, *args, check=True):
        out = self.path("out-%d.pcap" % len(os.listdir(self.tmp)))
        proc = run_flowfold("extract", "--ring", self.ring, "-w", out, "-v", *args, check=check)
        return out, proc

    def blocks_read(self, proc):
        m = re.search(r"(\d+) of (\d+) indexed blocks read", proc.stderr)
        return int(m.group(1)), int(m.group(2))

    def test_a_filter_gives_what_tcpdump_gives_reading_only_the_blocks_it_needs(self):
        source = records_of(self.pcap)
        # A flow of the capture, picked from its middle, and an address of it.
        import ipaddress
        frame = source[len(source) // 2][1][16:]
        offset = 14 + (4 if frame[12:14] == b"\x81\x00" else 0)
        if frame[offset - 2:offset] == b"\x86\xdd":
            src = str(ipaddress.IPv6Address(frame[offset + 8:offset + 24]))
        else:
            src = str(ipaddress.IPv4Address(frame[offset + 12:offset + 16]))
        for bpf in ("host %s" % src, "tcp and port 25", "udp port 53 or icmp", "net 10.100.0.0/16", "vlan and tcp",
                    "ip6 and tcp", "tcp[tcpflags] & tcp-syn != 0"):
            with self.subTest(filter=bpf):
                out, proc = self.extract(bpf)
                want = tcpdump_filtered(self.pcap, bpf)
                self.assertEqual(packets_of(out), want)
                read, total = self.blocks_read(proc)
                if bpf.startswith("host"):  # one host's flows: not in every block
                    self.assertLess(read, total, proc.stderr)

    def flow_addresses(self, want_v6, want_vlan):
        """(src, dst, sport, dport, protocol) of a TCP or UDP packet of the capture, read here."""
        import ipaddress
        for _, rec in records_of(self.pcap):
            frame = rec[16:]
            vlan = frame[12:14] == b"\x81\x00"
            if vlan != want_vlan:
                continue
            off = 14 + (4 if vlan else 0)
            v6 = frame[off - 2:off] == b"\x86\xdd"
            if v6 != want_v6:
                continue
            if v6:
                proto, src, dst, l4 = frame[off + 6], frame[off + 8:off + 24], frame[off + 24:off + 40], off + 40
                src, dst = str(ipaddress.IPv6Address(src)), str(ipaddress.IPv6Address(dst))
            else:
                proto, l4 = frame[off + 9], off + 4 * (frame[off] & 15)
                src, dst = str(ipaddress.IPv4Address(frame[off + 12:off + 16])), str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
            if proto in (6, 17) and frame[off + 6:off + 8] in (b"\x00\x00", b"\x40\x00") or v6 and proto in (6, 17):
                sport, dport = struct.unpack_from(">HH", frame, l4)
                return src, dst, sport, dport, proto
        self.skipTest("no such packet in the capture")

    def test_filters_on_addresses_give_what_tcpdump_gives(self):
        # Filters that test an address on every path are answered from the
        # flows whose addresses pass those tests (probe/filter_anchors.h);
        # the others ask every flow. Both must give tcpdump's packets.
        a, b, ap, bp, aproto = self.flow_addresses(False, False)
        v6, v6b, _, _, _ = self.flow_addresses(True, False)
        va, _, _, _, _ = self.flow_addresses(False, True)
        net24 = a.rsplit(".", 1)[0] + ".0/24"
        net16 = ".".join(b.split(".")[:2]) + ".0.0/16"
        anchored = ["host %s and host %s and port %d and port %d" % (a, b, ap, bp), "src host %s or dst host %s" % (b, a),
                    "host %s" % v6, "ip6 host %s and ip6 host %s" % (v6, v6b), "vlan and host %s" % va,
                    "net %s and not %s" % (net24, "tcp" if aproto == 6 else "udp"), "net %s" % net24,
                    "(host %s and udp) or (host %s and tcp)" % (a, b), "dst net %s" % net16,
                    "host %s or host %s or vlan and host %s" % (a, v6, va), "host 192.0.2.77"]
        unanchored = ["host %s or port %d" % (a, bp), "not host %s and udp" % a, "host %s and not host %s or icmp" % (a, b)]
        for bpf in anchored + unanchored:
            with self.subTest(filter=bpf):
                out, proc = self.extract(bpf)
                self.assertEqual(packets_of(out), tcpdump_filtered(self.pcap, bpf))
                read, total = self.blocks_read(proc)
                if bpf in anchored:  # a few hosts' flows: not in every block
                    self.assertLess(read, total, proc.stderr)

    def test_a_host_filter_gives_the_hosts_packets_of_no_flow_too(self):
        # ARP frames make no flow (the index lists them under the all-zero
        # key); 'host' matches ARP's addresses, as tcpdump's does.
        def ether(ethertype, payload):
            return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", ethertype) + payload

        def arp(spa, tpa):
            return ether(0x0806, struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + b"\x02" * 6 + bytes(spa) + b"\x00" * 6 +
                         bytes(tpa))

        def udp(src, dst):
            ip = struct.pack(">BBHHHBBH", 0x45, 0, 28, 0, 0, 64, 17, 0) + bytes(src) + bytes(dst)
            return ether(0x0800, ip + struct.pack(">HHHH", 1000, 53, 8, 0))

        frames = [arp([10, 1, 2, 3], [10, 1, 2, 4]), udp([10, 9, 9, 9], [10, 1, 2, 4]), udp([10, 1, 2, 3], [10, 1, 2, 4]),
                  arp([10, 9, 9, 9], [10, 1, 2, 3])]
        source = self.path("arp.pcap")
        write_pcap_ns(source, [(10**18 + i * 10**6, struct.pack("<IIII", 0, 0, len(f), len(f)) + f)
                               for i, f in enumerate(frames)])
        ring = self.path("arp-ring")
        os.makedirs(ring)
        conf = self.path("arp.yaml")
        with open(conf, "w") as f:
            f.write("recorder:\n  directory: %s\n" % ring)
        run_flowfold("-r", source, "--text=/dev/null", "-c", conf)
        for bpf in ("host 10.1.2.3", "host 10.9.9.9 and udp", "arp and host 10.9.9.9"):
            with self.subTest(filter=bpf):
                out = self.path("arp-out-%d.pcap" % len(os.listdir(self.tmp)))
                run_flowfold("extract", "--ring", ring, "-w", out, bpf)
                want = tcpdump_filtered(source, bpf)
                self.assertTrue(want)
                self.assertEqual(packets_of(out), want)

    def test_filters_on_fields_no_index_holds_give_what_tcpdump_gives(self):
        # TTL, TOS, flags, fragment offsets and lengths are in no flow key:
        # a flow may have packets that match whatever its key says, so its
        # blocks are read and the filter run on each packet.
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pcaps")
        for name in ("ntop_nDPI-dns_fragmented.pcap", "OISF_suricata-verify-gre-sample.pcap",
                     "zeek_zeek-mixed-vlan-mpls.pcap"):
            source = os.path.join(data, name)
            ring = self.path("ring-" + name)
            os.makedirs(ring)
            run_flowfold("-r", source, "--record", ring, "--text=/dev/null")
            ttls = sorted(set(int(t) for t in re.findall(r"ttl (\d+)", subprocess.run(
                ["tcpdump", "-r", source, "-nn", "-v"], capture_output=True, text=True).stdout)))
            filters = ["ip[8] = %d" % t for t in ttls] + [
                "ip[6:2] & 0x4000 != 0", "ip[6:2] & 0x1fff != 0", "ip[1] != 0", "len > 200", "udp and ip[8] < 64",
                "ip[4:2] = 0", "vlan and ip[8] = %d" % ttls[-1]]
            for bpf in filters:
                with self.subTest(capture=name, filter=bpf):
                    out = self.path("f-out-%d.pcap" % len(os.listdir(self.tmp)))
                    run_flowfold("extract", "--ring", ring, "-w", out, bpf)
                    self.assertEqual(packets_of(out), tcpdump_filtered(source, bpf))

    def test_a_loopback_capture_comes_out_with_its_own_link_type(self):
        # DLT_NULL is link type 0: the output's header says so, and tcpdump
        # reads the same packets from it as from the source.
        def loopback(src, dst):
            ip = struct.pack(">BBHHHBBH", 0x45, 0, 28, 0, 0, 64, 17, 0) + bytes(src) + bytes(dst)
            return struct.pack("<I", 2) + ip + struct.pack(">HHHH", 1000, 53, 8, 0)  # AF_INET, host order

        frames = [loopback([127, 0, 0, 1], [127, 0, 0, 2]), loopback([127, 0, 0, 3], [127, 0, 0, 1])]
        source = self.path("null.pcap")
        write_pcap_ns(source, [(10**18 + i * 10**6, struct.pack("<IIII", 0, 0, len(f), len(f)) + f)
                               for i, f in enumerate(frames)], linktype=0)
        ring = self.path("null-ring")
        os.makedirs(ring)
        run_flowfold("-r", source, "--record", ring, "--text=/dev/null")
        for bpf in ("host 127.0.0.3", "udp"):
            with self.subTest(filter=bpf):
                out = self.path("null-out-%d.pcap" % len(os.listdir(self.tmp)))
                run_flowfold("extract", "--ring", ring, "-w", out, bpf)
                with open(out, "rb") as f:
                    self.assertEqual(struct.unpack_from("<I", f.read(24), 20)[0], 0)
                want = tcpdump_filtered(source, bpf)
                self.assertTrue(want)
                self.assertEqual(packets_of(out), want)

    def test_a_time_range_gives_exactly_its_packets_in_order(self):
        source = records_of(self.pcap)
        lo, hi = source[len(source) // 3][0], source[2 * len(source) // 3][0]
        reference = self.path("reference.pcap")
        write_pcap_ns(reference, [r for r in source if lo <= r[0] <= hi])
        out, proc = self.extract("--from", "%d.%09d" % divmod(lo, 10**9), "--to", "%d.%09d" % divmod(hi, 10**9))
        self.assertEqual(packets_of(out), packets_of(reference))
        read, total = self.blocks_read(proc)
        self.assertLess(read, total)
        # The same range written as UTC dates (whole seconds: a wider range).
        utc = lambda ns, f: time.strftime(f, time.gmtime(ns // 10**9))
        out, _ = self.extract("--from", utc(lo, "%Y-%m-%dT%H:%M:%SZ"), "--to", utc(hi, "%Y-%m-%d %H:%M:%S") + ".999999999")
        lo_s = lo // 10**9 * 10**9
        write_pcap_ns(reference + "2", [r for r in source if lo_s <= r[0] <= hi // 10**9 * 10**9 + 999999999])
        self.assertEqual(packets_of(out), packets_of(reference + "2"))

    def test_a_payload_filter_reads_the_range_through_and_says_so(self):
        bpf = "tcp[40:2] = 0"
        out, proc = self.extract(bpf)
        self.assertEqual(packets_of(out), tcpdump_filtered(self.pcap, bpf))
        self.assertIn("were read through", proc.stderr)

    def test_standard_output_pipes_into_tcpdump(self):
        bpf = "tcp and port 80"
        extract = subprocess.Popen([FLOWFOLD, "extract", "--ring", self.ring, "-w", "-", bpf], stdout=subprocess.PIPE)
        dump = subprocess.run(["tcpdump", "-r", "-", "-nn", "-S", "-x", "--time-stamp-precision=nano"],
                              stdin=extract.stdout, capture_output=True, text=True)
        extract.stdout.close()
        self.assertEqual(extract.wait(), 0)
        self.assertEqual(dump.stdout, "".join(tcpdump_filtered(self.pcap, bpf)))

    def test_an_index_missing_or_cut_still_gives_every_packet(self):
        bpf = "udp"
        want = tcpdump_filtered(self.pcap, bpf)
        idx = sorted(glob.glob(os.path.join(self.ring, "*.idx")))
        os.remove(idx[0])
        with open(idx[1], "r+b") as f:
            f.truncate(os.path.getsize(idx[1]) - 100)
        with open(idx[2], "r+b") as f:
            f.seek(16)
            f.write(b"XXXX")
        out, proc = self.extract(bpf)
        self.assertEqual(packets_of(out), want)
        self.assertIn("not indexed", proc.stderr)
        self.assertIn("damaged block", proc.stderr)

    def test_bad_requests_get_one_clear_message_and_a_documented_status(self):
        _, proc = self.extract("--from", "2026-12-07T04:00:00Z", "--to", "2026-12-07T03:00:00Z", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--from is after --to", proc.stderr)
        _, proc = self.extract("--from", "yesterday", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("is not a time", proc.stderr)
        _, proc = self.extract("port eighty", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("bad filter", proc.stderr)
        proc = run_flowfold("extract", "--ring", self.path("nowhere"), "-w", self.path("x.pcap"), check=False)
        self.assertEqual(proc.returncode, 3)
        self.assertIn("cannot read the ring directory", proc.stderr)
        existing = self.path("exists.pcap")
        open(existing, "w").close()
        proc = run_flowfold("extract", "--ring", self.ring, "-w", existing, check=False)
        self.assertEqual(proc.returncode, 4)
        self.assertIn("nothing is overwritten", proc.stderr)
        self.assertEqual(os.path.getsize(existing), 0)
        proc = run_flowfold("extract", "--ring", self.ring, check=False)
        self.assertEqual(proc.returncode, 2)


def flow_key_of(frame):
    """(proto, src, sport, dst, dport, vlan) of an Ethernet frame as flowgen builds them
    (802.1Q tags, IPv4 or IPv6, TCP/UDP ports, ICMP type and code as dst_port), parsed here
    without flowfold; None for anything else."""
    import ipaddress
    off, vlan = 12, 0
    ethertype = struct.unpack_from("!H", frame, off)[0]
    while ethertype in (0x8100, 0x88A8):
        if vlan == 0:
            vlan = struct.unpack_from("!H", frame, off + 2)[0] & 0x0FFF
        off += 4
        ethertype = struct.unpack_from("!H", frame, off)[0]
    off += 2
    if ethertype == 0x0800:
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        src, dst = str(ipaddress.IPv4Address(frame[off + 12:off + 16])), str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
        l4 = off + ihl
    elif ethertype == 0x86DD:
        proto = frame[off + 6]
        src, dst = str(ipaddress.IPv6Address(frame[off + 8:off + 24])), str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
        l4 = off + 40
    else:
        return None
    if proto in (6, 17) and len(frame) >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", frame, l4)
    elif proto in (1, 58) and len(frame) >= l4 + 2:
        sport, dport = 0, frame[l4] * 256 + frame[l4 + 1]
    else:
        sport = dport = 0
    return (proto, src, sport, dst, dport, vlan)


class FlowIdExtraction(TempDirTest):
    """flowfold extract --flow-id N: the packets of the flow a record names. The reference is
    the source capture's packets with that record's key (parsed here) in the time its records
    span, and their number is the sum of the records' packet counts."""

    @classmethod
    def setUpClass(cls):
        need("tcpdump")
        # Active timeout 5 s: long flows are several records with one flow id.
        cls.pcap, _ = flowgen("it-extract", "-n", "60000", "-c", "2000", "-d", "60", "-S", "128", "-s", "21",
                              "-v", "0.2", "-6", "0.3")
        cls.source = [(ts, rec, flow_key_of(rec[16:])) for ts, rec in records_of(cls.pcap)]

    @staticmethod
    def packets(path):
        """(ts_ns, caplen, len and bytes) of each packet: the source is in microseconds, the ring in nanoseconds."""
        return [(ts, rec[8:]) for ts, rec in records_of(path)]

    def setUp(self):
        super().setUp()
        self.ring = self.path("ring")
        os.makedirs(self.ring)
        self.records = self.record()

    def record(self, *extra):
        out = self.path("flows-%d.json" % len(os.listdir(self.tmp)))
        conf = self.path("rec.yaml")
        with open(conf, "w") as f:
            f.write("recorder:\n  directory: %s\n  segment_size: 512k\n%s" % (self.ring, "".join(extra)))
        run_flowfold("-r", self.pcap, "--json=" + out, "--active-timeout", "5", "-c", conf)
        by_id = {}
        with open(out) as f:
            for line in f:
                r = json.loads(line)
                by_id.setdefault(r["flow_id"], []).append(r)
        return by_id

    @staticmethod
    def key_of(record):
        return (record["proto"], record["src"], record["src_port"], record["dst"], record["dst_port"], record["vlan"])

    def reference(self, records):
        key = self.key_of(records[0])
        lo = min(r["first_ms"] for r in records) * 10**6
        hi = max(r["last_ms"] for r in records) * 10**6 + 999999
        return [(ts, rec[8:]) for ts, rec, k in self.source if k == key and lo <= ts <= hi]

    def unambiguous(self, by_id):
        """Ids whose key no other flow of the run has in the same millisecond span."""
        spans = {}
        for fid, records in by_id.items():
            spans.setdefault(self.key_of(records[0]), []).append(
                (fid, min(r["first_ms"] for r in records), max(r["last_ms"] for r in records)))
        good = []
        for key, flows in spans.items():
            for fid, lo, hi in flows:
                if all(other == fid or ohi < lo or olo > hi for other, olo, ohi in flows):
                    good.append(fid)
        return sorted(good)

    def extract(self, *args, check=True):
        out = self.path("out-%d.pcap" % len(os.listdir(self.tmp)))
        proc = run_flowfold("extract", "--ring", self.ring, "-w", out, "-v", *args, check=check)
        return out, proc

    def test_each_flow_id_gives_exactly_its_packets(self):
        import random
        ids = self.unambiguous(self.records)
        rng = random.Random(7)
        several = [i for i in ids if len(self.records[i]) > 1]
        v6 = [i for i in ids if ":" in self.records[i][0]["src"]]
        tagged = [i for i in ids if self.records[i][0]["vlan"] != 0]
        self.assertTrue(several and v6 and tagged, "the capture lacks a kind of flow this test needs")
        picked = sorted(set(rng.sample(ids, 25) + rng.sample(several, 5) + rng.sample(v6, 5) + rng.sample(tagged, 5)))
        for fid in picked:
            with self.subTest(flow_id=fid):
                want = self.reference(self.records[fid])
                self.assertEqual(len(want), sum(r["packets"] for r in self.records[fid]))
                out, proc = self.extract("--flow-id", str(fid))
                self.assertEqual(self.packets(out), want)
                # Only the segments of the flow's time are read.
                visited = int(re.search(r"from (\d+) segments", proc.stderr).group(1))
                self.assertLess(visited, len(segments(self.ring)))

    def test_address_filters_pass_over_the_segments_without_the_addresses(self):
        # Every closed segment has its address filter; the open one, none
        # (a file run closes its last segment too).
        segs = segments(self.ring)
        filters = glob.glob(os.path.join(self.ring, "*.adf"))
        self.assertEqual(len(filters), len(segs))
        # A 5-tuple of one flow, an address no flow has, and a net (no whole
        # address word: the filters cannot answer and every index is read):
        # the packets tcpdump finds in the source, in order.
        ids = self.unambiguous(self.records)
        r = self.records[ids[len(ids) // 2]][0]
        five = "host %s and host %s and port %d and port %d" % (r["src"], r["dst"], r["src_port"], r["dst_port"])
        for bpf, passed_some in ((five, True), ("host 192.0.2.1 and port 9", True), ("net 10.100.0.0/16", False)):
            with self.subTest(filter=bpf):
                out, proc = self.extract(bpf)
                self.assertEqual(packets_of(out), tcpdump_filtered(self.pcap, bpf))
                passed = int(re.search(r"(\d+) segments passed over by their address filter", proc.stderr).group(1))
                if passed_some:
                    self.assertGreater(passed, len(segs) // 2, proc.stderr)
                else:
                    self.assertEqual(passed, 0, proc.stderr)
        # A damaged filter is not used: the segment's index answers.
        with open(sorted(filters)[0], "r+b") as f:
            f.truncate(100)
        out, proc = self.extract("host 192.0.2.1 and port 9")
        passed = int(re.search(r"(\d+) segments passed over", proc.stderr).group(1))
        self.assertEqual(passed, len(segs) - 1)
        # A segment removed from the ring takes its filter with it (the ring's bounds).
        self.assertTrue(all(os.path.exists(f[:-4] + ".pcap") for f in filters))

    def test_several_ids_and_a_filter_combine(self):
        ids = self.unambiguous(self.records)[:3]
        out, _ = self.extract("--flow-id", "%d,%d" % (ids[0], ids[1]), "--flow-id", str(ids[2]))
        want = sorted(sum((self.reference(self.records[i]) for i in ids), []), key=lambda r: r[0])
        self.assertEqual(sorted(self.packets(out), key=lambda r: r[0]), want)
        # A filter narrows further (the first flow's source address only).
        src = self.records[ids[0]][0]["src"]
        out, _ = self.extract("--flow-id", "%d,%d" % (ids[0], ids[1]), "src host " + src)
        want = [r for r in sorted(self.reference(self.records[ids[0]]) + self.reference(self.records[ids[1]]),
                                  key=lambda r: r[0]) if flow_key_of(r[1][8:])[1] == src]
        self.assertEqual(self.packets(out), want)

    def test_flows_in_tunnels_and_fragments_give_as_many_packets_as_their_records_count(self):
        # Real captures of tunnels (GRE, VXLAN, Geneve, IP in IP) and IP
        # fragments: the packets extracted for each flow id are as many as
        # the flow cache counted in its records (the extraction decodes them
        # again, and sets aside the packets that do not hold both addresses).
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pcaps")
        names = ["OISF_suricata-verify-gre-sample.pcap", "OISF_suricata-verify-vxlan.pcap", "ntop_nDPI-4in6tunnel.pcap",
                 "ntop_nDPI-6in4tunnel.pcap", "ntop_nDPI-dns_fragmented.pcap", "the-tcpdump-group_tcpdump-geneve.pcap",
                 "zeek_zeek-gtp1_gn_normal_incl_fragmentation.pcap"]
        checked = 0
        for name in names:
            with self.subTest(capture=name):
                ring = self.path("ring-" + name)
                os.makedirs(ring)
                flows = self.path(name + ".json")
                run_flowfold("-r", os.path.join(data, name), "--record", ring, "--json=" + flows)
                by_id = {}
                with open(flows) as f:
                    for line in f:
                        r = json.loads(line)
                        by_id.setdefault(r["flow_id"], []).append(r)
                for fid in self.unambiguous(by_id):
                    out = self.path("out-%d.pcap" % len(os.listdir(self.tmp)))
                    run_flowfold("extract", "--ring", ring, "-w", out, "--flow-id", str(fid))
                    self.assertEqual(len(records_of(out)), sum(r["packets"] for r in by_id[fid]),
                                     "flow id %d of %s" % (fid, name))
                    checked += 1
        self.assertGreater(checked, 50)

    def test_a_second_run_into_the_ring_numbers_on_and_its_ids_give_its_packets_once(self):
        second = self.record()
        self.assertGreater(min(second), max(self.records))
        for fid in (self.unambiguous(second)[5], max(self.unambiguous(self.records))):
            records = second.get(fid) or self.records[fid]
            out, _ = self.extract("--flow-id", str(fid))
            self.assertEqual(self.packets(out), self.reference(records))

    def test_an_unknown_id_gets_one_clear_message_and_status_1(self):
        missing = max(self.records) + 1000
        out, proc = self.extract("--flow-id", str(missing), check=False)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("flow id %d is not in the ring" % missing, proc.stderr)
        self.assertFalse(os.path.exists(out))
        _, proc = self.extract("--flow-id", "12x", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("is not a flow id", proc.stderr)

    def test_flow_logs_go_with_the_segments_their_packets_were_in(self):
        first_ids = self.unambiguous(self.records)
        logs = lambda: sorted(f for f in os.listdir(self.ring) if f.endswith(".flows"))
        self.assertEqual(len(logs()), 1)
        size = sum(os.path.getsize(os.path.join(self.ring, f)) for f in os.listdir(self.ring))
        # Two more runs with a cap of about one run: the first run's segments go, and its log.
        for _ in range(2):
            last = self.record("  max_size: %d\n" % (size + size // 4))
        self.assertNotIn("flowfold-flows-000000000001.flows", logs())
        self.assertIn("flowfold-flows-000000000003.flows", logs())
        fid = self.unambiguous(last)[0]
        out, _ = self.extract("--flow-id", str(fid))
        self.assertEqual(self.packets(out), self.reference(last[fid]))
        _, proc = self.extract("--flow-id", str(first_ids[0]), check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("is not in the ring", proc.stderr)


class TunnelledRings(TempDirTest):
    """A filter sees a tunnelled packet's outer headers, as tcpdump does,
    whatever keys the flows got (--tunnels outer, inner or both): a ring
    recorded with `inner` indexes the outer keys too, or a filter on the
    outer addresses would find nothing."""

    def test_filters_on_outer_headers_give_what_tcpdump_gives_in_every_tunnel_mode(self):
        need("tcpdump", "tshark")
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pcaps")
        checked = 0
        for name in ("OISF_suricata-verify-gre-sample.pcap", "OISF_suricata-verify-vxlan.pcap",
                     "the-tcpdump-group_tcpdump-geneve.pcap", "ntop_nDPI-6in4tunnel.pcap"):
            pcap = os.path.join(data, name)
            fields = subprocess.run(["tshark", "-r", pcap, "-c", "1", "-T", "fields", "-e", "ip.src", "-e", "ipv6.src"],
                                    capture_output=True, text=True, check=True).stdout.strip().split("\t")
            outer = next(f for f in fields if f).split(",")[0]  # tshark lists the outer address first
            for mode in ("outer", "inner", "both"):
                ring = self.path("ring-%s-%s" % (mode, name))
                os.makedirs(ring)
                run_flowfold("-r", pcap, "--tunnels", mode, "--record", ring, "--ipfix-file", "/dev/null")
                for bpf in ("host " + outer, "host %s and not tcp" % outer, "host 192.0.2.99"):
                    with self.subTest(capture=name, mode=mode, filter=bpf):
                        out = self.path("out-%d.pcap" % len(os.listdir(self.tmp)))
                        run_flowfold("extract", "--ring", ring, "-w", out, bpf)
                        want = tcpdump_filtered(pcap, bpf)
                        self.assertEqual(packets_of(out), want)
                        checked += len(want)
        self.assertGreater(checked, 100)


class FramesLaidOutOtherwise(TempDirTest):
    """extract asks a filter about a flow with a packet rebuilt from its key
    (Ethernet, its VLAN tags, IP, its protocol). Frames laid out otherwise
    (PPPoE, MPLS, a third VLAN tag, IPv6 extension headers) are seen by the
    filter at other offsets: the index also lists them under the all-zero
    key, so that they are read and filtered as they are, never set aside by
    the rebuilt packet's verdict. Before, 'not host A' gave nothing of a
    PPPoE capture."""

    def test_filters_give_what_tcpdump_gives_on_frames_unlike_the_rebuilt_packet(self):
        need("tcpdump", "tshark")
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pcaps")
        checked = 0
        captures = [os.path.join(data, name) for name in (
            "zeek_zeek-pppoe.pcap", "zeek_zeek-mixed-vlan-mpls.pcap", "the-tcpdump-group_libpcap-ipv6_ext_headers.pcap",
            "zeek_zeek-vlan-qinqinq.pcap", "the-tcpdump-group_tcpdump-802.1ad_QinQ.pcap")]
        # Where ../shared is beside the repository: a PPPoE session whose 'not host' found nothing before.
        shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "pcaps",
                              "OISF_suricata-verify", "tests", "bug-4810", "pppoe-session-http.pcap")
        if os.path.exists(shared):
            captures.append(shared)
        # QinQ with 0x8100 as the outer tag's type (the rebuilt packet has 0x88a8), built here.
        qinq = self.path("qinq-8100-8100.pcap")
        frames = []
        for i in range(40):
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, i, 0, 64, 17, 0, bytes([10, 0, 0, 1 + i % 3]),
                             bytes([10, 0, 0, 9])) + struct.pack("!HHHH", 1000 + i % 5, 53, 8, 0)
            frames.append(bytes(12) + struct.pack("!HHHH", 0x8100, 100, 0x8100, 200) + b"\x08\x00" + ip)
        with open(qinq, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for i, frame in enumerate(frames):
                f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)
        captures.append(qinq)
        for pcap in captures:
            name = os.path.basename(pcap)
            fields = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "ipv6.src"],
                                    capture_output=True, text=True, check=True).stdout.split()
            address = next((f.split(",")[-1] for f in fields if f), "192.0.2.1")
            ring = self.path("ring-" + name)
            os.makedirs(ring)
            conf = self.path("rec-%s.yaml" % name)
            with open(conf, "w") as f:
                f.write("recorder:\n  directory: %s\n  segment_size: 64k\n" % ring)
            run_flowfold("-r", pcap, "-c", conf, "--ipfix-file", "/dev/null")
            for bpf in ("not host " + address, "host " + address, "ip6[6] == 0", "ip6[6] == 43", "mpls", "pppoes",
                        "vlan", "not tcp", "ip[9] == 6", "ether[12:2] = 0x8100 and vlan and vlan and host " + address):
                with self.subTest(capture=name, filter=bpf):
                    out = self.path("out-%d.pcap" % len(os.listdir(self.tmp)))
                    run_flowfold("extract", "--ring", ring, "-w", out, bpf)
                    want = tcpdump_filtered(pcap, bpf)
                    self.assertEqual(packets_of(out), want)
                    checked += len(want)
        self.assertGreater(checked, 200)


class LiveRecording(TempDirTest):
    """Recording a live capture through a veth pair between two namespaces:
    the ring holds exactly what a tcpdump on the same interface wrote (the
    kernel stamps each packet once, so both see the same nanoseconds), and a
    stop loses none of it."""

    def setUp(self):
        super().setUp()
        from netns import VethPair, require_netns
        require_netns()
        need("tcpdump")
        self.pair = VethPair("ffrec").__enter__()
        self.addCleanup(self.pair.__exit__, None, None, None)
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_the_ring_holds_what_tcpdump_captured_on_the_same_interface(self):
        from harness import FLOWFOLD, wait_for
        ring = self.path("ring")
        os.makedirs(ring)
        reference = self.path("tcpdump.pcap")
        port = 9911
        bpf = "udp port %d or icmp or tcp port 5001" % port
        dump_log = open(self.path("tcpdump.log"), "w")
        dump = self.pair.popen_in("b", ["tcpdump", "-i", self.pair.if_b, "-s", "0", "-B", "65536", "-U", "-w", reference,
                                        "--time-stamp-precision=nano", bpf], stdout=dump_log, stderr=subprocess.STDOUT)
        self.procs.append(dump)
        wait_for(lambda: "listening on" in open(self.path("tcpdump.log")).read(), "tcpdump to listen")
        config = self.path("live.yaml")
        with open(config, "w") as f:
            f.write("run_as_root: true\nrecorder:\n  directory: %s\n  segment_size: 256k\n" % ring)
        log_path = self.path("flowfold.log")
        log = open(log_path, "w")
        ff = self.pair.popen_in("b", [FLOWFOLD, "-c", config, "-i", self.pair.if_b, "--text=/dev/null", bpf],
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(ff)
        wait_for(lambda: "capturing on" in open(log_path).read() or ff.poll() is not None, "flowfold to capture")
        listener = self.pair.udp_listener("b", port, 200)
        self.pair.send_udp("a", self.pair.addr_b, port, 200, 300, source_port=40100)
        self.assertEqual(listener.result()["received"], 200)
        self.pair.ping("a", count=3)
        self.assertEqual(self.pair.tcp_transfer(300000, port=5001)["received"], 300000)
        ff.send_signal(signal.SIGTERM)
        ff.wait(timeout=30)
        with open(log_path) as f:
            out = f.read()
        self.assertEqual(ff.returncode, 0, out)
        # tcpdump drops what its socket still holds when it is stopped: let
        # it write every packet flowfold recorded first.
        recorded_packets = stats_of(out)["recorder_packets"]
        wait_for(lambda: len(packets_of_partial(reference)) >= recorded_packets, "tcpdump to catch up")
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=30)
        with open(self.path("tcpdump.log")) as f:
            self.assertRegex(f.read(), r"(?m)^0 packets dropped by kernel")
        # Each socket stamps a packet when it takes it (a veth packet carries
        # no timestamp of its own): the times agree to the microsecond or so,
        # not to the nanosecond; everything else is the same, byte for byte.
        want = packets_of(reference)
        got = recorded(ring)
        self.assertGreater(len(want), 200 + 6 + 100)
        self.assertEqual([p.split(" ", 1)[1] for p in got], [p.split(" ", 1)[1] for p in want])
        for g, w in zip(got, want):
            self.assertLess(abs(seconds_of_day(g) - seconds_of_day(w)), 0.01, (g[:40], w[:40]))
        self.assertGreater(len(segments(ring)), 1)
        # The stream is the interface, without the "-" that separates the name's parts.
        self.assertTrue(all(s[1] == self.pair.if_b.replace("-", "") for s in segments(ring)), segments(ring))
        stats = stats_of(out)
        self.assertEqual(stats["recorder_packets"], len(want))
        self.assertEqual(stats["recorder_dropped"], 0)


if __name__ == "__main__":
    unittest.main()
