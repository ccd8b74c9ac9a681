"""Options records (issue 21): what a collector can check about the exporter.

Each IPFIX exporter sends its statistics (templates 264 and 265) after the
templates of a session and at the end, and with sampling the rate (266 and
267); NetFlow v9 sends TOTAL_*_EXP and SAMPLING_INTERVAL/ALGORITHM options.
The expectations are computed here: the final statistics against the stream
itself (its messages, octets and flow records, counted by this test's own
reader) and against the stats line; the sampling rate against what nfdump
and nfacctd do with it (scale the counts of every Nth packet, which tshark
lists), and against tshark's and python3-ipfix's own decoding."""

import os
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import (Nfcapd, TempDirTest, add_flow, flowgen, free_tcp_port, free_udp_port, need, nfacctd_csv_totals,
                     parse_ipfix_stream, run_flowfold, stats_of, stats_sections, udp_socket_state, wait_for)
from test_biflow import DEBIAN_PYTHON
from test_collectors import write_udp_pcap
from test_sampling import PROFILE, sum_per_key, tshark_packets

ARP_FRAMES = 50  # frames the metering process cannot meter: ignoredPacketTotalCount

PYTHON_IPFIX_OPTIONS = r"""
import json, sys
import ipfix.ie, ipfix.reader
ipfix.ie.use_iana_default()
with open(sys.argv[1], "rb") as f:
    for r in ipfix.reader.from_stream(f).namedict_iterator():
        if "protocolIdentifier" in r:
            continue
        print(json.dumps({k: (v if isinstance(v, int) else str(v)) for k, v in r.items()}))
"""


def u(b):
    return int.from_bytes(b, "big")


def with_arp_frames(src, dst, count):
    """The capture src with `count` ARP requests appended (after its last packet)."""
    with open(src, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "flowgen writes little-endian classic pcap"
    pos, last_sec = 24, 0
    while pos < len(data):
        sec, _, incl, _ = struct.unpack_from("<IIII", data, pos)
        last_sec = sec
        pos += 16 + incl
    arp = (b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x06" +
           struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + b"\x02\x00\x00\x00\x00\x01" + bytes([10, 0, 0, 1]) +
           b"\x00" * 6 + bytes([10, 0, 0, 2]))
    with open(dst, "wb") as f:
        f.write(data)
        for i in range(count):
            f.write(struct.pack("<IIII", last_sec + 1, i, len(arp), len(arp)) + arp)


def options_of(data):
    """(flow records, messages, {template: [options records as {element: int}]}) of an IPFIX stream."""
    options = []
    records, messages = parse_ipfix_stream(data, options)
    by_template = {}
    for o in options:
        by_template.setdefault(o["template"], []).append(
            {k: u(v) for k, v in o.items() if k not in ("template", "scope")})
    return records, messages, by_template


def exporter_section(stderr, marker):
    return next(d for title, d in stats_sections(stderr) if marker in title)


class IpfixStatistics(TempDirTest):
    def setUp(self):
        super().setUp()
        pcap, _ = flowgen("sampling", *PROFILE)
        self.pcap = self.path("with-arp.pcap")
        with_arp_frames(pcap, self.pcap, ARP_FRAMES)

    def test_the_final_statistics_are_the_stream_and_the_stats_line(self):
        out = self.path("flows.ipfix")
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", out, "--observation-domain", "7")
        with open(out, "rb") as f:
            data = f.read()
        records, messages, opts = options_of(data)
        stats, exporter = stats_of(proc.stderr), exporter_section(proc.stderr, "ipfix file:")
        self.assertEqual(len(opts[264]), 2)  # after the templates, and at the end
        self.assertEqual(len(opts[265]), 2)
        self.assertNotIn(266, opts)  # no sampling, no selector
        first, final, reliability = opts[264][0], opts[264][-1], opts[265][-1]
        # The first report comes right after the templates, before any flow.
        self.assertEqual(first[42], 0)
        self.assertEqual(messages[1]["data_records"], 2)
        # The final one: every message before its own, counted by this test.
        self.assertEqual(final[149], 7)
        self.assertEqual(final[41], len(messages) - 1)
        self.assertEqual(final[40], len(data) - messages[-1]["length"])
        self.assertEqual(final[42], len(records))
        self.assertEqual(final[164], ARP_FRAMES)
        self.assertLessEqual(final[160], final[323])
        self.assertEqual(reliability[166], 0)
        # ... and the stats line's counters: the final message is the last one.
        self.assertEqual(final[42], exporter["records"])
        self.assertEqual(final[41], exporter["messages"] - 1)
        self.assertEqual(final[40], exporter["bytes"] - messages[-1]["length"])
        self.assertEqual(final[164], stats["skipped"])
        self.assertEqual(reliability[166], exporter.get("dropped", 0) + stats.get("queue_dropped_records", 0))
        # Options records count in the sequence numbers (RFC 7011 section 3.1).
        before = 0
        for m in messages:
            self.assertEqual(m["sequence"], before)
            before += m["data_records"]
        # python3-ipfix, an independent reader, decodes the same values by name.
        python_ipfix = subprocess.run([DEBIAN_PYTHON, "-c", PYTHON_IPFIX_OPTIONS, out], capture_output=True,
                                      text=True, check=True).stdout.splitlines()
        import json
        decoded = [json.loads(line) for line in python_ipfix]
        last = [d for d in decoded if "exportedMessageTotalCount" in d][-1]
        self.assertEqual((last["exportedMessageTotalCount"], last["exportedFlowRecordTotalCount"],
                          last["exportedOctetTotalCount"], last["ignoredPacketTotalCount"]),
                         (final[41], final[42], final[40], final[164]))
        self.assertEqual([d["notSentFlowTotalCount"] for d in decoded if "exportingProcessId" in d], [0, 0])
        # ipfixDump (libfixbuf) reads the options templates with their scope.
        need("ipfixDump")
        dump = subprocess.run(["ipfixDump", "-i", out], capture_output=True, text=True, check=True).stdout
        self.assertIn("(S) observationDomainId", dump)
        self.assertIn("(S) exportingProcessId", dump)
        self.assertIn("exportedFlowRecordTotalCount : %d" % final[42], dump)

    def test_a_collector_that_stalled_is_told_how_many_records_it_did_not_get(self):
        # A TCP collector that accepts and reads nothing for 8 s, with 1 MiB
        # of buffer: the oldest records are dropped (counted), the rest and
        # the final statistics arrive once it reads.
        port = free_tcp_port()
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        self.addCleanup(server.close)
        received = bytearray()

        def collect():
            server.settimeout(60)
            conn, _ = server.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            time.sleep(8)
            with conn:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return
                    received.extend(chunk)

        t = threading.Thread(target=collect)
        t.start()
        config = self.path("tcp.yaml")
        with open(config, "w") as f:
            f.write("exporters:\n  - type: ipfix\n    collector: 127.0.0.1:%d\n    transport: tcp\n"
                    "    tcp_buffer_mb: 1\n" % port)
        proc = run_flowfold("-c", config, "-r", self.pcap, check=False)
        t.join(timeout=90)
        self.assertEqual(proc.returncode, 5, proc.stderr)  # records were lost
        records, messages, opts = options_of(bytes(received))
        final, reliability = opts[264][-1], opts[265][-1]
        stats, exporter = stats_of(proc.stderr), exporter_section(proc.stderr, "tcp://")
        self.assertGreater(exporter["dropped"], 0)
        # What the collector got, what it was told it did not get, and the stats line.
        self.assertEqual(final[42], len(records))
        self.assertEqual(final[42], exporter["records"])
        self.assertEqual(reliability[166], exporter["dropped"])
        self.assertEqual(final[42] + reliability[166], stats["records"])  # every flow the cache emitted
        # The session ends with its templates withdrawn (RFC 7011 section 8.1).
        self.assertEqual(sorted(messages[-1]["withdrawn"]), [256, 257, 264, 265])
        self.assertEqual(final[41], exporter["messages"] - 2)  # before the final report and the withdrawal


class WhenOptionsGoOut(TempDirTest):
    """Pipeline time decides: a file run of flowgen's 120 s of traffic."""

    def setUp(self):
        super().setUp()
        self.pcap, _ = flowgen("sampling", *PROFILE)

    def test_options_interval_adds_periodic_reports_that_nfdump_counts_as_sequence_failures(self):
        config = self.path("periodic.yaml")
        nfcapd = Nfcapd(self.tmp)
        with open(config, "w") as f:
            f.write("exporters:\n  - type: ipfix\n    collector: %s\n    options_interval: 30\n"
                    "  - type: ipfix\n    path: %s\n    options_interval: 30\n" % (nfcapd.address, self.path("f.ipfix")))
        run_flowfold("-c", config, "-r", self.pcap)
        log = nfcapd.stop()
        with open(self.path("f.ipfix"), "rb") as f:
            records, messages, opts = options_of(f.read())
        times = [o[323] for o in opts[264]]
        self.assertEqual(times, sorted(times))
        # After the templates, then at least every 30 s of the capture's
        # time (checked when a batch or a tick comes), then at the end.
        periodic = opts[264][1:-1]
        self.assertGreaterEqual(len(periodic), 3)
        for before, after in zip(times, times[1:-1]):
            self.assertGreaterEqual(after - before, 30_000)
        # nfdump counts one sequence failure for each periodic report (it
        # advances its expected number by flow records only), none for the
        # first and the last: the README says so.
        self.assertEqual(nfcapd.sequence_errors(), len(periodic), log)

    def test_with_sampling_the_rate_follows_each_refresh_of_the_templates_by_time(self):
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sink.bind(("127.0.0.1", 0))
        config = self.path("refresh.yaml")
        with open(config, "w") as f:
            f.write("sampling: 4\nexporters:\n  - type: ipfix\n    collector: 127.0.0.1:%d\n"
                    "    template_refresh: 20\n    template_refresh_packets: 1000000\n" % sink.getsockname()[1])
        proc = run_flowfold("-c", config, "-r", self.pcap)
        messages = exporter_section(proc.stderr, "127.0.0.1")["messages"]
        sink.settimeout(10)
        stream = b"".join(sink.recv(65535) for _ in range(messages))
        sink.close()
        records, headers, opts = options_of(stream)
        template_messages = [i for i, m in enumerate(headers) if m["data_records"] == 0]
        # 120 s of traffic, refreshed after 20 s (checked when a batch comes).
        self.assertGreaterEqual(len(template_messages), 3)
        sent = [headers[i]["export_time"] for i in template_messages]
        for before, after in zip(sent, sent[1:]):
            self.assertGreaterEqual(after - before, 20)
        # Each template message is followed at once by the options records.
        for i in template_messages:
            self.assertEqual(headers[i + 1]["data_records"], 4, i)  # 264, 265, 266, 267
        self.assertEqual(len(opts[266]), len(template_messages) + 1)  # and the final report
        self.assertEqual({o[306] for o in opts[266]}, {3})
        self.assertEqual({(o[305], o[306]) for o in opts[267]}, {(1, 3)})


class SamplingAtCollectors(TempDirTest):
    """--sampling 10 (count): nfdump and nfacctd scale the records by the
    rate they read from the options, so what they report is ten times the
    packets and octets of every 10th packet, key by key."""

    N = 10

    def setUp(self):
        super().setUp()
        self.pcap, _ = flowgen("sampling", *PROFILE)
        self.sampled = sum_per_key(tshark_packets(self.pcap)[::self.N])

    def scaled(self):
        return {k: [self.N * v[0], self.N * v[1]] for k, v in self.sampled.items()}

    def test_nfdump_scales_every_flow_by_the_announced_rate(self):
        for version in ("10", "9"):
            with self.subTest(version=version):
                nfcapd = Nfcapd(self.tmp, "nfcapd-v" + version)
                proc = run_flowfold("-r", self.pcap, "-n", nfcapd.address, "-v", version, "--sampling", str(self.N))
                log = nfcapd.stop()
                flows, records = nfcapd.flows()
                self.assertEqual(records, stats_of(proc.stderr)["records"])
                self.assertFlowsEqual(flows, self.scaled())
                exporters = subprocess.run(["nfdump", "-E", nfcapd.dir + "/" + sorted(os.listdir(nfcapd.dir))[-1]],
                                           capture_output=True, text=True).stdout + log
                self.assertIn("Sampler", exporters)
                if version == "10":
                    # The options come right after the templates and at the end:
                    # nfdump counts no sequence failure for them.
                    self.assertEqual(nfcapd.sequence_errors(), 0, log)

    def test_nfacctd_renormalizes_by_the_announced_rate(self):
        need("nfacctd")
        want = {}
        for (proto, _s, _sp, _d, _dp, vlan), (packets, octets) in self.scaled().items():
            add_flow(want, (proto, vlan), packets, octets)
        for version in ("10", "9"):
            with self.subTest(version=version):
                port = free_udp_port()
                outdir = self.path("nfacctd-v" + version)
                os.makedirs(outdir)
                conf = self.path("nfacctd-v%s.conf" % version)
                with open(conf, "w") as f:
                    f.write("\n".join([
                        "daemonize: false", "nfacctd_ip: 127.0.0.1", "nfacctd_port: %d" % port,
                        "nfacctd_pipe_size: %d" % (32 << 20), "nfacctd_renormalize: true", "plugins: print",
                        "aggregate: proto, vlan", "print_output: csv", "print_num_protos: true",
                        "print_refresh_time: 1", "print_output_file: %s/%%s.csv" % outdir,
                        "print_output_file_append: true", "nfacctd_time_new: true", ""]))
                log = open(self.path("nfacctd-v%s.log" % version), "w")
                nfacctd = subprocess.Popen(["nfacctd", "-f", conf], stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
                try:
                    wait_for(lambda: udp_socket_state(port)[0] or nfacctd.poll() is not None, "nfacctd to listen")
                    run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % port, "-v", version,
                                 "--sampling", str(self.N), "--export-rate", "400")
                    try:
                        wait_for(lambda: nfacctd_csv_totals(outdir) == want or nfacctd.poll() is not None,
                                 "nfacctd to print every renormalized packet", limit=30, interval=0.5)
                    except AssertionError:
                        pass  # the comparison below says what differs
                finally:
                    os.killpg(nfacctd.pid, signal.SIGKILL)
                    nfacctd.wait(timeout=30)
                    log.close()
                self.assertFlowsEqual(nfacctd_csv_totals(outdir), want)

    def test_tshark_dissects_the_options_of_both_protocols(self):
        need("tshark")
        for version, fields in (("10", ["cflow.sampling_packet_interval", "cflow.sampling_packet_space",
                                        "cflow.selector_algorithm", "cflow.sampling_interval",
                                        "cflow.sampling_algorithm", "cflow.packetsexp", "cflow.flowsexp"]),
                                ("9", ["cflow.sampling_interval", "cflow.sampling_algorithm", "cflow.packetsexp",
                                       "cflow.flowsexp", "cflow.octetsexp"])):
            with self.subTest(version=version):
                sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
                sink.bind(("127.0.0.1", 0))
                port = sink.getsockname()[1]
                proc = run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % port, "-v", version,
                                    "--sampling", str(self.N), "--sampling-mode", "random")
                messages = exporter_section(proc.stderr, "127.0.0.1")["messages"]
                sink.settimeout(10)
                datagrams = [sink.recv(65535) for _ in range(messages)]
                sink.close()
                cap = self.path("export-v%s.pcap" % version)
                write_udp_pcap(cap, datagrams, port)
                decode = ["-d", "udp.port==%d,cflow" % port]
                verbose = subprocess.run(["tshark", "-r", cap, *decode, "-V"], capture_output=True, text=True)
                self.assertEqual(verbose.returncode, 0, verbose.stderr)
                self.assertNotIn("Malformed", verbose.stdout)
                self.assertNotIn("no template found", verbose.stdout)
                expert = subprocess.run(["tshark", "-r", cap, *decode, "-q", "-z", "expert,error"],
                                        capture_output=True, text=True, check=True).stdout
                self.assertNotRegex(expert, r"Errors \(\d+\)")
                args = ["tshark", "-r", cap, *decode, "-T", "fields", "-E", "occurrence=l"]
                for f in fields:
                    args += ["-e", f]
                rows = [l.split("\t") for l in subprocess.run(args, capture_output=True, text=True,
                                                              check=True).stdout.splitlines()]
                seen = {f: [r[i] for r in rows if r[i]] for i, f in enumerate(fields)}
                for f in fields:
                    self.assertTrue(seen[f], "tshark found no %s" % f)
                self.assertEqual(set(seen["cflow.sampling_interval"]), {str(self.N)})
                self.assertEqual(set(seen["cflow.sampling_algorithm"]), {"2"})  # random
                if version == "10":
                    self.assertEqual(set(seen["cflow.sampling_packet_space"]), {str(self.N - 1)})
                    self.assertEqual(set(seen["cflow.selector_algorithm"]), {"4"})  # uniform probabilistic
                # The last report's exported flows: the stats line's records.
                self.assertEqual(int(seen["cflow.flowsexp"][-1]),
                                 exporter_section(proc.stderr, "127.0.0.1")["records"])


if __name__ == "__main__":
    unittest.main()
