"""flowfold reads classic pcap files itself (large reads, no per-packet
fread) and hands pcapng, standard input and filtered reads to libpcap. Both
paths must see the same packets: checked on captures built here in every
classic variant (little/big endian, micro/nanosecond) with the odd records
libpcap tolerates or rejects, against values computed here and against the
libpcap path (a BPF filter that matches everything forces it).

    cd tests/integration && python3 -m unittest -v test_pcap_reader
"""

import json
import os
import struct
import unittest

from harness import TempDirTest, run_flowfold, stats_of

EXIT_OK, EXIT_TRUNCATED = 0, 4
MATCH_ALL = "len >= 0"  # a filter: the read goes through libpcap


def udp_frame(sport, payload_len):
    """Ethernet + IPv4 + UDP 10.0.0.1:sport -> 10.0.0.2:53; returns (frame, ip_length)."""
    ip_len = 20 + 8 + payload_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    udp = struct.pack("!HHHH", sport, 53, 8 + payload_len, 0)
    eth = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0])
    return eth + ip + udp + bytes(payload_len), ip_len


def write_pcap(path, packets, big_endian=False, nanos=False, snaplen=65535, tail=b""):
    """packets: (sec, frac, frame, caplen_override or None)."""
    e = ">" if big_endian else "<"
    magic = 0xa1b23c4d if nanos else 0xa1b2c3d4
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, 1))
    for sec, frac, frame, caplen in packets:
        stored = len(frame)
        out += struct.pack(e + "IIII", sec, frac, stored if caplen is None else caplen, len(frame))
        out += frame
    out += tail
    with open(path, "wb") as f:
        f.write(out)


def read_json(path):
    with open(path) as f:
        return sorted((json.loads(line) for line in f), key=lambda r: (r["src_port"], r["first_ms"]))


class ClassicPcapReader(TempDirTest):

    def flows(self, pcap, *extra, expect=EXIT_OK):
        out = self.path("flows-%d.json" % len(os.listdir(self.tmp)))
        proc = run_flowfold("-r", pcap, "--json=" + out, *extra, check=False)
        self.assertEqual(proc.returncode, expect, proc.stderr)
        return read_json(out) if os.path.exists(out) else [], stats_of(proc.stderr), proc.stderr

    def assert_same_as_libpcap(self, pcap, expect=EXIT_OK):
        fast = self.flows(pcap, expect=expect)
        slow = self.flows(pcap, MATCH_ALL, expect=expect)
        self.assertEqual(fast[0], slow[0])
        self.assertEqual(fast[1]["packets"], slow[1]["packets"])
        return fast

    def test_every_classic_variant_gives_the_same_flows_with_exact_times(self):
        for big_endian in (False, True):
            for nanos in (False, True):
                with self.subTest(big_endian=big_endian, nanos=nanos):
                    frame1, len1 = udp_frame(1000, 10)
                    frame2, len2 = udp_frame(2000, 300)
                    scale = 1000 if nanos else 1
                    pcap = self.path("v-%d-%d.pcap" % (big_endian, nanos))
                    write_pcap(pcap, [(1_700_000_000, 123_456 * scale, frame1, None),
                                      (1_700_000_001, 999_999 * scale, frame2, None),
                                      (1_700_000_002, 1 * scale, frame1, None)],
                               big_endian=big_endian, nanos=nanos)
                    flows, stats, _ = self.assert_same_as_libpcap(pcap)
                    self.assertEqual(stats["packets"], 3)
                    self.assertEqual([(f["src_port"], f["packets"], f["bytes"], f["first_ms"], f["last_ms"])
                                      for f in flows],
                                     [(1000, 2, 2 * len1, 1_700_000_000_123, 1_700_000_002_000),
                                      (2000, 1, len2, 1_700_000_001_999, 1_700_000_001_999)])

    def test_a_record_longer_than_the_snap_length_is_cut_to_it_and_the_next_one_still_read(self):
        big, big_len = udp_frame(1000, 1000)
        small, small_len = udp_frame(2000, 10)
        pcap = self.path("snap.pcap")
        write_pcap(pcap, [(1_700_000_000, 0, big, None), (1_700_000_000, 5, small, None)], snaplen=100)
        flows, stats, _ = self.assert_same_as_libpcap(pcap)
        # Octets come from the IP header, not the bytes captured.
        self.assertEqual([(f["src_port"], f["bytes"]) for f in flows], [(1000, big_len), (2000, small_len)])

    def test_a_file_cut_in_a_record_or_a_header_exports_what_was_read(self):
        frame, ip_len = udp_frame(1000, 100)
        for name, tail in (("data", struct.pack("<IIII", 1_700_000_001, 0, len(frame), len(frame)) + frame[:30]),
                           ("header", b"\x01\x02\x03\x04\x05\x06\x07")):
            with self.subTest(cut=name):
                pcap = self.path("cut-%s.pcap" % name)
                write_pcap(pcap, [(1_700_000_000, 0, frame, None)] * 2, tail=tail)
                flows, stats, stderr = self.assert_same_as_libpcap(pcap, expect=EXIT_TRUNCATED)
                self.assertEqual(stats["packets"], 2)
                self.assertEqual([(f["packets"], f["bytes"]) for f in flows], [(2, 2 * ip_len)])
                self.assertIn("truncated dump file", stderr)

    def test_an_impossible_capture_length_ends_the_read_as_corrupt(self):
        frame, ip_len = udp_frame(1000, 20)
        pcap = self.path("bogus.pcap")
        write_pcap(pcap, [(1_700_000_000, 0, frame, None), (1_700_000_000, 0, frame, 300_000)])
        flows, stats, stderr = self.assert_same_as_libpcap(pcap, expect=EXIT_TRUNCATED)
        self.assertEqual(stats["packets"], 1)
        self.assertIn("invalid packet capture length", stderr)

    def test_an_invalid_fraction_of_a_second_is_ignored_the_same_way(self):
        frame, _ = udp_frame(1000, 20)
        pcap = self.path("frac.pcap")
        write_pcap(pcap, [(1_700_000_000, 2_147_483_648, frame, None), (1_700_000_001, 1_000_000_000, frame, None)],
                   nanos=True)
        flows, _, _ = self.assert_same_as_libpcap(pcap)
        self.assertEqual([(f["first_ms"], f["last_ms"]) for f in flows], [(1_700_000_000_000, 1_700_000_001_000)])


if __name__ == "__main__":
    unittest.main()
