"""flowfold against real collectors: what nfcapd/nfdump, tshark and ipfixDump
receive must equal flowgen's ground truth, key by key."""

import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import (Nfcapd, TcpCollector, TempDirTest, add_flow, flowgen, free_tcp_port, free_udp_port, ipfix_flows,
                     need, nfacctd_csv_totals, norm_addr, parse_ipfix_stream, raise_socket_buffer_limit, read_truth, run_flowfold, stats_of,
                     totals, udp_rcvbuf_errors, udp_socket_state, wait_for, FLOWFOLD)
from netns import VethPair, require_netns

# 120 s of traffic: long flows cross the 60 s active timeout, short ones idle
# out, TCP ends on FIN/RST; a quarter IPv6, a fifth VLAN-tagged, snap length 128.
PROFILE = ("-n", "200000", "-c", "5000", "-d", "120", "-S", "128", "-s", "11")


class CollectorConservation(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, truth_path = flowgen("it-conservation", *PROFILE)
        self.truth = read_truth(truth_path)

    def export_to_nfcapd(self, version, *extra, every_end=True):
        nfcapd = Nfcapd(self.tmp)
        errors_before = udp_rcvbuf_errors()
        proc = run_flowfold("-r", self.pcap, "-n", nfcapd.address, "-v", str(version), *extra)
        nfcapd.stop()
        flows, records = nfcapd.flows()
        stats = stats_of(proc.stderr)
        # Nothing lost on the way: the kernel dropped no datagram, nfcapd saw
        # no gap in the sequence numbers, and every record arrived.
        self.assertEqual(udp_rcvbuf_errors() - errors_before, 0, "kernel dropped datagrams")
        self.assertEqual(nfcapd.socket_drops, 0)
        self.assertEqual(nfcapd.sequence_errors(), 0, open(nfcapd.log_path).read())
        self.assertEqual(records, stats["records"])
        self.assertFlowsEqual(flows, self.truth)
        self.assertEqual(stats["packets"], 200000)
        # The profile really exercises every way a flow ends (unless a small
        # cache evicts the flows before their timeouts).
        if every_end:
            self.assertGreater(stats["ended_active"], 0)
            self.assertGreater(stats["ended_idle"], 0)
        self.assertGreater(stats["ended_tcp"], 0)
        return stats

    def test_the_stats_line_splits_the_cpu_time_between_the_threads(self):
        # The per-thread figures (cpu_ms: packet=, export=) add up to no more
        # than the CPU time the kernel charged the whole process (wait4), and
        # to most of it: only start-up and exit run outside those threads.
        for workers in ("1", "2"):
            with self.subTest(workers=workers):
                proc = subprocess.Popen([FLOWFOLD, "-r", self.pcap, "--ipfix-file", self.path("cpu.ipfix"),
                                         "--workers", workers],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                stderr = proc.stderr.read()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.assertEqual(proc.returncode, 0, stderr)
                line = next(l for l in stderr.splitlines() if "stats:" in l)
                section = line.split("cpu_ms:", 1)[1].split("|")[0]
                cpu = {k: int(v) for k, v in (item.split("=") for item in section.split())}
                process_ms = (usage.ru_utime + usage.ru_stime) * 1000
                self.assertGreater(cpu["packet"], 0, line)
                self.assertLessEqual(cpu["packet"] + cpu["export"], process_ms + 2, line)
                self.assertGreaterEqual(cpu["packet"] + cpu["export"], process_ms * 0.5, line)

    def test_ipfix_over_udp_delivers_exactly_the_truth_to_nfcapd(self):
        self.export_to_nfcapd(10)

    def test_the_tcp_end_window_off_delivers_exactly_the_truth(self):
        # cache.tcp_end_timeout (issue 19): the default is on (the tests
        # above); off, the flow ends at the FIN/RST as before; a small cache
        # cuts windows short (reason 3, tcp_end_cut). Every packet is counted once.
        off = self.export_to_nfcapd(10, "-t", "tcp_end=0")
        self.assertEqual(off["tcp_end_cut"], 0)

    def test_tcp_end_windows_cut_short_by_a_small_cache_deliver_exactly_the_truth(self):
        cut = self.export_to_nfcapd(10, "-t", "tcp_end=5", "-m", "2000", every_end=False)
        self.assertGreater(cut["tcp_end_cut"], 0)
        self.assertGreater(cut["evicted"], 0)

    def test_two_workers_deliver_exactly_the_truth_over_ipfix(self):
        self.export_to_nfcapd(10, "--workers", "2")

    def test_two_workers_deliver_exactly_the_truth_over_netflow9(self):
        self.export_to_nfcapd(9, "--workers", "2")

    def test_ipfix_libfixbuf_encoder_delivers_exactly_the_truth_to_nfcapd(self):
        self.export_to_nfcapd(10, "--ipfix-encoder", "libfixbuf")

    def test_both_ipfix_encoders_write_identical_files(self):
        direct, fixbuf = self.path("direct.ipfix"), self.path("fixbuf.ipfix")
        run_flowfold("-r", self.pcap, "--ipfix-file", direct, "--ipfix-encoder", "direct")
        run_flowfold("-r", self.pcap, "--ipfix-file", fixbuf, "--ipfix-encoder", "libfixbuf")
        with open(direct, "rb") as a, open(fixbuf, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_netflow9_over_udp_delivers_exactly_the_truth_to_nfcapd(self):
        self.export_to_nfcapd(9)

    def test_several_exporters_at_once_each_receive_everything(self):
        v9, ipfix = Nfcapd(self.tmp, "v9"), Nfcapd(self.tmp, "ipfix")
        config = self.path("flowfold.yaml")
        with open(config, "w") as f:
            f.write("exporters:\n"
                    "  - type: netflow9\n    collector: %s\n    observation_domain: 7\n"
                    "  - type: ipfix\n    collector: %s\n    observation_domain: 9\n"
                    "  - type: json\n    path: %s\n" % (v9.address, ipfix.address, self.path("flows.json")))
        run_flowfold("-c", config, "-r", self.pcap)
        v9.stop()
        ipfix.stop()
        self.assertFlowsEqual(v9.flows()[0], self.truth)
        self.assertFlowsEqual(ipfix.flows()[0], self.truth)
        import json
        from harness import add_flow, norm_addr
        flows = {}
        with open(self.path("flows.json")) as f:
            for line in f:
                r = json.loads(line)
                add_flow(flows, (r["proto"], norm_addr(r["src"]), r["src_port"], norm_addr(r["dst"]),
                                 r["dst_port"], r["vlan"]), r["packets"], r["bytes"])
        self.assertFlowsEqual(flows, self.truth)

    def test_ipfix_file_reads_back_exactly_and_ipfixdump_accepts_it(self):
        out = self.path("flows.ipfix")
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", out, "--observation-domain", "42")
        options = []
        with open(out, "rb") as f:
            records, messages = parse_ipfix_stream(f.read(), options)
        self.assertFlowsEqual(ipfix_flows(records), self.truth)
        self.assertEqual(len(records), stats_of(proc.stderr)["records"])
        self.assertTrue(all(m["domain"] == 42 for m in messages))
        # The exporter's statistics (264, 265) after the templates and at the end.
        self.assertEqual([o["template"] for o in options], [264, 265, 264, 265])
        need("ipfixDump")
        dump = subprocess.run(["ipfixDump", "--stats", "-i", out], capture_output=True, text=True)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        full = subprocess.run(["ipfixDump", "-i", out], capture_output=True, text=True)
        self.assertEqual(full.returncode, 0, full.stderr)
        self.assertEqual(full.stdout.count("--- data record"), len(records) + len(options))

    def test_ipfix_over_tcp_delivers_exactly_the_truth(self):
        with TcpCollector() as collector:
            run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % collector.port, "-P", "tcp")
        records, _ = parse_ipfix_stream(bytes(collector.received))
        self.assertFlowsEqual(ipfix_flows(records), self.truth)


class PmacctCollector(TempDirTest):
    """pmacct's nfacctd reads a datagram into a fixed 10000-byte buffer and
    cuts the rest: the automatic datagram size to a loopback collector must
    stay under it (with 16384 it received 2 % of the packets)."""

    def setUp(self):
        super().setUp()
        need("nfacctd")
        self.pcap, truth_path = flowgen("it-conservation", *PROFILE)
        self.truth = read_truth(truth_path)

    def run_nfacctd(self, port):
        conf = self.path("nfacctd.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "daemonize: false",
                "nfacctd_ip: 127.0.0.1",
                "nfacctd_port: %d" % port,
                "nfacctd_pipe_size: %d" % (32 << 20),  # the socket's receive buffer
                "plugins: print",
                # Few keys per print interval: the print plugin's cache is small.
                "aggregate: proto, vlan",
                "print_output: csv",
                "print_num_protos: true",
                "print_refresh_time: 1",
                "print_output_file: %s" % self.path("nfacctd-%s.csv"),
                "print_output_file_append: true",
                "nfacctd_time_new: true",
                ""]))
        with open(self.path("nfacctd.log"), "w") as log:
            # Its own process group: nfacctd forks a process per plugin.
            proc = subprocess.Popen(["nfacctd", "-f", conf], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        wait_for(lambda: udp_socket_state(port)[0] or proc.poll() is not None, "nfacctd to listen")
        if proc.poll() is not None:
            raise AssertionError("nfacctd failed to start:\n" + open(self.path("nfacctd.log")).read())
        return proc

    def received(self):
        """What nfacctd printed, summed per (protocol, VLAN)."""
        return nfacctd_csv_totals(self.tmp, "nfacctd-")

    def test_nfacctd_on_loopback_receives_every_flow_with_the_automatic_datagram_size(self):
        port = free_udp_port()
        proc = self.run_nfacctd(port)
        try:
            # nfacctd decodes slower than flowfold sends: pace the export so
            # that what is measured is the datagram size, not its speed.
            run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % port, "-v", "10", "--export-rate", "400")
            want = {}
            for (proto, _src, _sport, _dst, _dport, vlan), (packets, octets) in self.truth.items():
                add_flow(want, (proto, vlan), packets, octets)
            try:
                wait_for(lambda: self.received() == want or proc.poll() is not None,
                         "nfacctd to print every packet", limit=30, interval=0.5)
            except AssertionError:
                pass  # the comparison below says what is missing
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # it does not stop on SIGTERM while its plugin runs
            proc.wait(timeout=30)
        self.assertFlowsEqual(self.received(), want)


class ExporterFaults(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, truth_path = flowgen("it-conservation", *PROFILE)
        self.truth = read_truth(truth_path)

    def test_a_collector_that_is_down_does_not_stop_the_others(self):
        nfcapd = Nfcapd(self.tmp)
        down = free_udp_port()  # nothing listens: every datagram draws an ICMP port unreachable
        proc = run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % down, "-n", nfcapd.address, check=False)
        nfcapd.stop()
        self.assertEqual(proc.returncode, 5, proc.stderr)
        self.assertFlowsEqual(nfcapd.flows()[0], self.truth)
        self.assertIn("Connection refused", proc.stderr)
        # One exporter line per failure would flood the log: it is rate-limited.
        self.assertLessEqual(proc.stderr.count("Connection refused"), 6, proc.stderr)

    def tcp_collector(self, port, listen_after=0.0, stall=0.0):
        """A TCP collector thread: binds at once, listens after `listen_after`
        seconds (connections are refused before), reads nothing for `stall`
        seconds after accepting, then reads until the exporter closes."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        received = bytearray()

        def collect():
            time.sleep(listen_after)
            server.listen(1)
            server.settimeout(60)
            conn, _ = server.accept()
            time.sleep(stall)
            with conn:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return
                    received.extend(chunk)

        t = threading.Thread(target=collect)
        t.start()
        self.addCleanup(server.close)
        return t, received

    def test_a_tcp_collector_that_starts_late_still_gets_every_flow(self):
        port = free_tcp_port()
        t, received = self.tcp_collector(port, listen_after=2.0)
        proc = run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % port, "-P", "tcp")
        t.join(timeout=60)
        self.assertIn("Connection refused", proc.stderr)
        self.assertIn("buffering", proc.stderr)
        records, messages = parse_ipfix_stream(bytes(received))
        self.assertFlowsEqual(ipfix_flows(records), self.truth)

    def test_a_tcp_collector_that_stalls_loses_nothing_within_the_buffer(self):
        port = free_tcp_port()
        t, received = self.tcp_collector(port, stall=7.0)
        proc = run_flowfold("-r", self.pcap, "-n", "127.0.0.1:%d" % port, "-P", "tcp")
        t.join(timeout=60)
        records, _ = parse_ipfix_stream(bytes(received))
        self.assertFlowsEqual(ipfix_flows(records), self.truth)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_a_full_disk_keeps_the_ipfix_file_valid_and_counts_what_was_lost(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root")
        mnt = self.path("small")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt], check=True)
        self.addCleanup(subprocess.run, ["umount", mnt])
        out = os.path.join(mnt, "flows.ipfix")
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", out, check=False)
        self.assertEqual(proc.returncode, 5, proc.stderr)
        self.assertIn("No space left on device", proc.stderr)
        self.assertIn("resumes by itself", proc.stderr)
        with open(out, "rb") as f:
            records, messages = parse_ipfix_stream(f.read())  # whole messages only: no torn tail
        header = proc.stderr.split("| ipfix file:")[1]
        dropped = int(header.split("dropped=")[1].split()[0])
        exported = int(header.split("records=")[1].split()[0])
        self.assertGreater(len(records), 0)
        self.assertGreater(dropped, 0)
        self.assertEqual(len(records), exported)
        self.assertEqual(exported + dropped, stats_of(proc.stderr)["records"])


class WiresharkDissection(TempDirTest):
    """tshark decodes every datagram flowfold sent, with no malformed packet
    and no expert error. The datagrams are received on a loopback socket and
    framed into a capture file (Ethernet/IPv4/UDP headers built here)."""

    def dissect_export(self, version):
        need("tshark")
        pcap, truth = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        _, want_packets, want_octets = totals(read_truth(truth))
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        proc = run_flowfold("-r", pcap, "-n", "127.0.0.1:%d" % port, "-v", str(version))
        messages = int(proc.stderr.split("messages=")[1].split()[0])
        sink.settimeout(10)
        datagrams = [sink.recv(65535) for _ in range(messages)]
        sink.close()
        cap = self.path("export.pcap")
        write_udp_pcap(cap, datagrams, port)
        decode = ["-d", "udp.port==%d,cflow" % port]
        verbose = subprocess.run(["tshark", "-r", cap, *decode, "-V"], capture_output=True, text=True)
        self.assertEqual(verbose.returncode, 0, verbose.stderr)
        self.assertNotIn("Malformed", verbose.stdout)
        expert = subprocess.run(["tshark", "-r", cap, *decode, "-q", "-z", "expert,error"],
                                capture_output=True, text=True)
        self.assertEqual(expert.returncode, 0, expert.stderr)
        self.assertNotIn("Malformed", expert.stdout)
        self.assertNotRegex(expert.stdout, r"Errors \(\d+\)")
        # tshark's own field extraction must find every record's counters.
        fields = subprocess.run(["tshark", "-r", cap, *decode, "-T", "fields", "-e", "cflow.packets",
                                 "-e", "cflow.octets"], capture_output=True, text=True, check=True).stdout
        packets = octets = 0
        for line in fields.splitlines():
            pk, oc = line.split("\t")
            packets += sum(int(v) for v in pk.split(",") if v)
            octets += sum(int(v) for v in oc.split(",") if v)
        self.assertEqual((packets, octets), (want_packets, want_octets))
        return verbose.stdout, messages

    def test_tshark_decodes_netflow9_export_without_errors(self):
        text, messages = self.dissect_export(9)
        self.assertEqual(text.count("Version: 9"), messages)

    def test_tshark_decodes_ipfix_export_without_errors(self):
        text, messages = self.dissect_export(10)
        self.assertEqual(text.count("Version: 10"), messages)


class ExportAcrossAVethLink(TempDirTest):
    """IPFIX over a real network device, not loopback: flowfold in namespace a,
    nfcapd on the far end of a veth pair in namespace b. Runs of equal-sized
    datagrams leave as one segmented (UDP GSO) send; where the kernel refuses
    that (datagrams longer than the link MTU, which must be fragmented),
    flowfold says so once and sends them one by one. Either way nfcapd must
    receive exactly the truth."""

    def setUp(self):
        super().setUp()
        require_netns()
        need("nfcapd", "nfdump")
        raise_socket_buffer_limit()
        self.pair = VethPair("ffgso").__enter__()
        self.addCleanup(self.pair.__exit__, None, None, None)
        self.pcap, truth_path = flowgen("it-conservation", *PROFILE)
        self.truth = read_truth(truth_path)

    def socket_line(self, port):
        r = self.pair.run_in("b", ["cat", "/proc/net/udp"], check=False)
        for line in r.stdout.splitlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port:
                return cols
        return None

    def export(self, *extra):
        collector = Nfcapd.__new__(Nfcapd)  # its nfdump reading, with a process in namespace b
        collector.dir = self.path("nfcapd")
        os.makedirs(collector.dir)
        port = free_udp_port()
        with open(self.path("nfcapd.log"), "w") as log:
            proc = self.pair.popen_in("b", ["nfcapd", "-b", self.pair.addr_b, "-p", str(port), "-w", collector.dir,
                                            "-B", str(32 << 20), "-t", "3600"], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.socket_line(port) is not None or proc.poll() is not None, "nfcapd to listen")
        if proc.poll() is not None:
            with open(self.path("nfcapd.log")) as log:
                self.fail("nfcapd did not start:\n" + log.read())
        run = self.pair.run_in("a", [FLOWFOLD, "-r", self.pcap, "-n", "%s:%d" % (self.pair.addr_b, port),
                                     "-v", "10", *extra], timeout=600)
        wait_for(lambda: int(self.socket_line(port)[4].split(":")[1], 16) == 0, "nfcapd to drain its socket")
        drops = int(self.socket_line(port)[-1])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        flows, records = collector.flows()
        stats = stats_of(run.stderr)
        self.assertEqual(drops, 0)
        self.assertEqual(records, stats["records"])
        self.assertFlowsEqual(flows, self.truth)
        return run.stderr

    def test_segmented_runs_cross_the_link_and_deliver_exactly_the_truth(self):
        log = self.export()  # not loopback: 1400-byte datagrams, runs of up to 46
        self.assertNotIn("refuses UDP segmentation offload", log)

    def test_datagrams_longer_than_the_link_mtu_fall_back_to_one_by_one_and_lose_nothing(self):
        log = self.export("--mtu", "8000")  # the veth's MTU is 1500: IP fragments
        self.assertIn("refuses UDP segmentation offload", log)
        self.assertEqual(log.count("refuses UDP segmentation offload"), 1, log)


def write_udp_pcap(path, datagrams, dport):
    """A classic pcap of Ethernet/IPv4/UDP frames carrying the given payloads."""
    import struct
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, payload in enumerate(datagrams):
            udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
            csum = sum(struct.unpack("!10H", ip))
            csum = (csum & 0xFFFF) + (csum >> 16)
            csum = (csum & 0xFFFF) + (csum >> 16)
            ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
            frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)


if __name__ == "__main__":
    unittest.main()
