"""Flow ids (flowId, IPFIX 148; issue 20): every record of every output
carries its flow's id, the same in each active-timeout record of a flow and
new for each flow, as the collectors read them. The expectations are worked
out here from the records' own keys, times and end reasons, not from
flowfold's code."""

import glob
import json
import os
import signal
import socket
import subprocess
import unittest

from harness import (Nfcapd, TempDirTest, flowgen, free_udp_port, need, norm_addr, parse_ipfix_stream,
                     raise_socket_buffer_limit, run_flowfold, stats_of, udp_socket_state, wait_for)
from test_biflow import DEBIAN_PYTHON, reverse_key
from test_collectors import write_udp_pcap

# python3-ipfix (RFC 5103 names): key, flowId and reverseFlowId of every biflow record.
BIFLOW_READER = r"""
import json, sys
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
                          r["destinationTransportPort"], r["vlanId"], r["flowId"], r["reverseFlowId"],
                          r["reversePacketDeltaCount"]]))
"""

# test_direction's conservation profile: 200k packets over 120 s, flows of
# every length (a Pareto tail of long ones), a quarter IPv6, a fifth tagged.
PROFILE = ("-n", "200000", "-c", "5000", "-d", "120", "-S", "128", "-s", "11")
ACTIVE = ("--active-timeout", "2")  # long flows give many records each
IDLE_MS = 15_000  # the default idle timeout


def u(b):
    return int.from_bytes(b, "big")


def ipfix_records(path):
    """(key, start, end, end_reason, flow id) of every record of an IPFIX file, read without libfixbuf."""
    with open(path, "rb") as f:
        records, _ = parse_ipfix_stream(f.read())
    out = []
    for r in records:
        if 8 in r:
            sa, da = norm_addr(".".join(str(b) for b in r[8])), norm_addr(".".join(str(b) for b in r[12]))
        else:
            sa, da = norm_addr(r[27].hex(":", 2)), norm_addr(r[28].hex(":", 2))
        key = (u(r[4]), sa, u(r[7]), da, u(r[11]), u(r[58]), u(r[245]), u(r[10]))
        out.append((key, u(r[152]), u(r[153]), u(r[136]), u(r[148]) if 148 in r else None))
    return out


class FlowIds(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, _ = flowgen("it-conservation", *PROFILE)

    def export_ipfix(self, name, *extra):
        path = self.path(name)
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", path, *ACTIVE, *extra)
        return ipfix_records(path), stats_of(proc.stderr)

    def check_ids(self, records, stats):
        """Each record has an id; an id is one key's; the records of one key,
        in time order, keep their id through active timeouts (reason 2) and
        change it exactly where a flow ended (any other reason)."""
        self.assertEqual(len(records), stats["records"])
        self.assertTrue(all(r[4] is not None and r[4] > 0 for r in records), "a record without flowId")
        key_of = {}
        for key, _, _, _, fid in records:
            self.assertEqual(key_of.setdefault(fid, key), key, "flow id %d on two keys" % fid)
        by_key = {}
        for r in records:
            by_key.setdefault(r[0], []).append(r)
        chained = 0
        for key, recs in by_key.items():
            recs.sort(key=lambda r: (r[1], r[2]))
            for prev, nxt in zip(recs, recs[1:]):
                if prev[3] == 2 and nxt[1] - prev[2] < IDLE_MS:
                    # Active timeout, and the next packet came within the idle
                    # timeout: the same flow goes on, its next record follows on.
                    self.assertEqual(nxt[4], prev[4], (key, prev, nxt))
                    self.assertGreaterEqual(nxt[1], prev[2], (key, prev, nxt))
                    chained += 1
                elif prev[3] != 2:
                    # The flow ended: the next flow of this key is a new one, created later.
                    self.assertGreater(nxt[4], prev[4], (key, prev, nxt))
                else:
                    # Active timeout, then silence past the idle timeout: the
                    # flow may have idled out after an empty interval (no
                    # record for it), or been folded into before expiry came
                    # round. Either way no id goes back in time.
                    self.assertGreaterEqual(nxt[4], prev[4], (key, prev, nxt))
        # One id per flow the cache created, every one of them seen.
        self.assertEqual(len(key_of), stats["flows_created"])
        self.assertGreater(chained, 10000, "the capture has long flows split by the active timeout")
        return key_of

    def test_every_ipfix_record_carries_its_flows_id_through_active_timeouts(self):
        records, stats = self.export_ipfix("one.ipfix")
        ids = self.check_ids(records, stats)
        # Reading a file the base is 1: the flows are numbered 1..N.
        self.assertEqual(sorted(ids), list(range(1, stats["flows_created"] + 1)))
        # The same capture gives the same ids.
        again, _ = self.export_ipfix("two.ipfix")
        self.assertEqual(sorted(again), sorted(records))

    def test_workers_number_their_flows_apart(self):
        records, stats = self.export_ipfix("w.ipfix", "--workers", "2")
        ids = self.check_ids(records, stats)
        # Worker w's flows are 1 + w, 1 + w + 2, ...: both residues, each a run without gaps.
        for w in (0, 1):
            mine = sorted(i for i in ids if (i - 1) % 2 == w)
            self.assertGreater(len(mine), 1000)
            self.assertEqual(mine, list(range(1 + w, 1 + w + 2 * len(mine), 2)))

    def test_text_and_json_carry_the_same_ids_as_ipfix(self):
        path, text, js = self.path("t.ipfix"), self.path("out.txt"), self.path("out.json")
        run_flowfold("-r", self.pcap, *ACTIVE, "--ipfix-file", path, "--text=" + text, "--json=" + js)
        want = sorted((r[1], r[2], r[4]) for r in ipfix_records(path))
        got_json = []
        with open(js) as f:
            for line in f:
                o = json.loads(line)
                got_json.append((o["first_ms"], o["last_ms"], o["flow_id"]))
        self.assertEqual(sorted(got_json), want)
        with open(text) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), len(want))
        text_ids = sorted(int(line.split(" flow_id ")[1].split()[0]) for line in lines)
        self.assertEqual(text_ids, sorted(w[2] for w in want))

    def test_ipfixdump_names_flowid_in_every_record(self):
        need("ipfixDump")
        path = self.path("d.ipfix")
        proc = run_flowfold("-r", self.pcap, *ACTIVE, "--ipfix-file", path)
        out = subprocess.run(["ipfixDump", "-i", path], capture_output=True, text=True, check=True).stdout
        shown = [int(line.split(":")[1]) for line in out.splitlines() if line.strip().startswith("(148)")]
        self.assertTrue(all("flowId" in line for line in out.splitlines() if line.strip().startswith("(148)")))
        self.assertEqual(len(shown), stats_of(proc.stderr)["records"])
        self.assertEqual(sorted(shown), sorted(r[4] for r in ipfix_records(path)))

    def tshark_flow_ids(self, version):
        """flowfold -> UDP socket here -> a capture file -> tshark's cflow.flow_id per record."""
        need("tshark")
        # test_collectors' small capture: every datagram fits the socket buffer.
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        raise_socket_buffer_limit()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        text = self.path("v%d.json" % version)
        proc = run_flowfold("-r", pcap, *ACTIVE, "-n", "127.0.0.1:%d" % port, "-v", str(version),
                            "--json=" + text)
        messages = int(proc.stderr.split("messages=")[1].split()[0])
        sink.settimeout(10)
        datagrams = [sink.recv(65535) for _ in range(messages)]
        sink.close()
        cap = self.path("v%d.pcap" % version)
        write_udp_pcap(cap, datagrams, port)
        out = subprocess.run(["tshark", "-r", cap, "-d", "udp.port==%d,cflow" % port, "-T", "fields",
                              "-e", "cflow.flow_id", "-e", "cflow.packets"],
                             capture_output=True, text=True, check=True).stdout
        ids, records = [], 0
        for line in out.splitlines():
            fid, pk = line.split("\t")
            ids += [int(v) for v in fid.split(",") if v]
            records += len([v for v in pk.split(",") if v])
        with open(text) as f:
            want = sorted(json.loads(line)["flow_id"] for line in f)
        return sorted(ids), records, want

    def test_tshark_reads_the_flow_id_of_every_ipfix_record(self):
        ids, records, want = self.tshark_flow_ids(10)
        self.assertEqual(records, len(want))
        self.assertEqual(ids, want)

    def test_tshark_reads_the_flow_id_of_every_netflow9_record(self):
        ids, records, want = self.tshark_flow_ids(9)
        self.assertEqual(records, len(want))
        self.assertEqual(ids, want)

    def test_nfdump_shows_the_netflow9_flow_id_as_the_nsel_connection_id(self):
        # nfdump 1.7.1 reads NetFlow v9 field 148 as NSEL's connection id
        # (%nfc, 32 bits: the low half of the id); it has no element for
        # IPFIX flowId and shows 0 there.
        for version, shown in ((9, True), (10, False)):
            with self.subTest(version=version):
                nfcapd = Nfcapd(self.tmp, "nfcapd%d" % version)
                js = self.path("nf%d.json" % version)
                run_flowfold("-r", self.pcap, *ACTIVE, "-n", nfcapd.address, "-v", str(version), "--json=" + js)
                nfcapd.stop()
                self.assertEqual(nfcapd.sequence_errors(), 0)
                out = subprocess.run(["nfdump", "-R", nfcapd.dir, "-q", "-N", "-o", "fmt:%nfc"],
                                     capture_output=True, text=True, check=True).stdout
                got = sorted(int(v) for v in out.split())
                with open(js) as f:
                    want = sorted(json.loads(line)["flow_id"] & 0xFFFFFFFF if shown else 0 for line in f)
                self.assertEqual(got, want)

    def test_biflows_carry_the_initiators_id_forward_and_the_responders_reversed(self):
        need(DEBIAN_PYTHON)
        if subprocess.run([DEBIAN_PYTHON, "-c", "import ipfix"], capture_output=True).returncode != 0:
            raise unittest.SkipTest("python3-ipfix is not installed (scripts/install-deps.sh installs it)")
        bi, uni, config = self.path("bi.ipfix"), self.path("uni.ipfix"), self.path("biflow.yaml")
        with open(config, "w") as f:
            f.write("exporters:\n  - type: ipfix\n    path: %s\n    biflow: true\n"
                    "  - type: ipfix\n    path: %s\n" % (bi, uni))
        run_flowfold("-c", config, "-r", self.pcap, *ACTIVE)
        out = subprocess.run([DEBIAN_PYTHON, "-c", BIFLOW_READER, bi], capture_output=True, text=True,
                             check=True).stdout
        biflows = [json.loads(line) for line in out.splitlines()]
        # The uniflow export of the same run: which key each id is.
        key_of = {r[4]: (r[0][0], r[0][1], r[0][2], r[0][3], r[0][4], r[0][5]) for r in ipfix_records(uni)}
        halves = []
        for b in biflows:
            key = (b[0], norm_addr(b[1]), b[2], norm_addr(b[3]), b[4], b[5])
            fid, rid, rpk = b[6], b[7], b[8]
            self.assertEqual(key_of[fid], key, b)
            halves.append(fid)
            if rpk:  # a responder: its own flow, of the reverse key
                self.assertEqual(key_of[rid], reverse_key(key), b)
                halves.append(rid)
            else:
                self.assertEqual(rid, 0, b)
        self.assertGreater(sum(1 for b in biflows if b[8]), 1000)
        # Every uniflow record is one half of one biflow: the ids match record for record.
        self.assertEqual(sorted(halves), sorted(r[4] for r in ipfix_records(uni)))

    def nfacctd_flow_ids(self, version, pcap):
        """pmacct 1.7.7 has no flow id primitive; a custom one (aggregate_primitives) reads 148."""
        need("nfacctd")
        raise_socket_buffer_limit()
        port = free_udp_port()
        prims, conf = self.path("primitives.lst"), self.path("nfacctd%d.conf" % version)
        with open(prims, "w") as f:
            f.write("name=flow_id field_type=148 len=8 semantics=u_int\n")
        out = self.path("nfacctd%d-%%s.csv" % version)
        with open(conf, "w") as f:
            f.write("\n".join(["daemonize: false", "nfacctd_ip: 127.0.0.1", "nfacctd_port: %d" % port,
                               "nfacctd_pipe_size: %d" % (32 << 20), "plugins: print",
                               "aggregate_primitives: %s" % prims, "aggregate: proto, flow_id",
                               "print_output: csv", "print_refresh_time: 1", "print_output_file: %s" % out,
                               "print_output_file_append: true", "nfacctd_time_new: true", ""]))
        with open(self.path("nfacctd%d.log" % version), "w") as log:
            proc = subprocess.Popen(["nfacctd", "-f", conf], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        wait_for(lambda: udp_socket_state(port)[0] or proc.poll() is not None, "nfacctd to listen")
        js = self.path("nfacctd%d.json" % version)

        def received():
            ids = set()
            for name in glob.glob(out.replace("%s", "*")):
                with open(name) as f:
                    for line in f:
                        cols = line.strip().split(",")
                        if len(cols) == 4 and cols[1].isdigit():
                            ids.add(int(cols[1]))
            return ids
        try:
            # Paced: nfacctd decodes slower than flowfold sends.
            run_flowfold("-r", pcap, *ACTIVE, "-n", "127.0.0.1:%d" % port, "-v", str(version),
                         "--export-rate", "400", "--json=" + js)
            with open(js) as f:
                want = {json.loads(line)["flow_id"] for line in f}
            try:
                wait_for(lambda: received() == want or proc.poll() is not None, "nfacctd to print every flow id",
                         limit=30, interval=0.5)
            except AssertionError:
                pass  # the comparison below says what is missing
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # it does not stop on SIGTERM while its plugin runs
            proc.wait(timeout=30)
        return received(), want

    def test_nfacctd_reads_the_flow_id_with_a_custom_primitive(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        for version in (9, 10):
            with self.subTest(version=version):
                got, want = self.nfacctd_flow_ids(version, pcap)
                self.assertGreater(len(want), 1000)
                self.assertEqual(got, want)


if __name__ == "__main__":
    unittest.main()
