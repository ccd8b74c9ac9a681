"""Rotated file outputs (rotate: / max_files: / max_age:), the way nfcapd users
expect them: one file per interval, named by the interval's UTC start, each
readable on its own, together exactly the capture's flows; the caps remove the
oldest of the rotation's own files and nothing else; a restart appends.

The expected names come from the capture's packet times, read here from the
pcap itself; the flows from flowgen's truth; the IPFIX files are read by
ipfixDump and by the harness's own decoder, each file alone."""

import calendar
import glob
import json
import os
import re
import struct
import subprocess
import time
import unittest

from harness import (TempDirTest, add_flow, flowgen, ipfix_flows, need, norm_addr, parse_ipfix_stream, read_truth,
                     run_flowfold)

# Ten minutes of traffic: five 2-minute intervals and a bit.
PROFILE = ("-n", "40000", "-c", "300", "-d", "600", "-s", "11")
INTERVAL_S = 120


def pcap_time_span(path):
    """(first, last) packet time in seconds, from the pcap's record headers."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    assert magic == 0xA1B2C3D4, hex(magic)  # flowgen writes little-endian microsecond pcap
    off, first, last = 24, None, None
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        t = sec + usec / 1e6
        first = t if first is None else first
        last = t
        off += 16 + incl
    return first, last


def stamp(start_s):
    return time.strftime("%Y%m%d%H%M", time.gmtime(start_s))


def start_of(path):
    """The interval start (UTC seconds) a rotated file's name carries."""
    m = re.search(r"\.(\d{12})\.[a-z]+$", path)
    assert m, path
    return calendar.timegm(time.strptime(m.group(1), "%Y%m%d%H%M"))


def json_flows(lines):
    flows = {}
    for line in lines:
        r = json.loads(line)
        key = (r["proto"], norm_addr(r["src"]), r["src_port"], norm_addr(r["dst"]), r["dst_port"], r["vlan"])
        add_flow(flows, key, r["packets"], r["bytes"])
    return flows


def ipfix_dump_ok(path):
    """(messages, data records, template records) as ipfixDump reads the file alone."""
    proc = subprocess.run(["ipfixDump", "--in", path], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    m = re.search(rb"File Stats: (\d+) Messages, (\d+) Data Records, (\d+) Template Records", proc.stdout)
    assert m, proc.stdout[-500:]
    return tuple(int(x) for x in m.groups())


class Rotation(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, truth_path = flowgen("it-rotation", *PROFILE)
        self.truth = read_truth(truth_path)
        first, last = pcap_time_span(self.pcap)
        # Every interval from the first packet's to the last one's has flows
        # ending in it (300 concurrent flows, 40,000 packets over 10 minutes),
        # and the last one also gets the flows flushed at the end.
        self.intervals = list(range(int(first) // INTERVAL_S * INTERVAL_S, int(last) + 1, INTERVAL_S))
        self.out = self.path("out")
        os.mkdir(self.out)

    def run_with(self, exporters, *extra):
        cfg = self.path("rotate.yaml")
        with open(cfg, "w") as f:
            f.write("exporters:\n" + exporters)
        return run_flowfold("-r", self.pcap, "-c", cfg, *extra)

    def files(self, ext):
        return sorted(glob.glob(os.path.join(self.out, "flows.*." + ext)))

    def test_one_file_per_interval_each_readable_alone_together_exact(self):
        need("ipfixDump")
        self.run_with("  - type: ipfix\n    path: %s/flows.ipfix\n    rotate: 2m\n"
                      "  - type: json\n    path: %s/flows.json\n    rotate: 2m\n"
                      "  - type: text\n    path: %s/flows.txt\n    rotate: 2m\n" % (self.out, self.out, self.out))
        for ext in ("ipfix", "json", "txt"):
            self.assertEqual([os.path.basename(p) for p in self.files(ext)],
                             ["flows.%s.%s" % (stamp(t), ext) for t in self.intervals])
        all_ipfix, all_json = [], []
        for path in self.files("ipfix"):
            start = start_of(path)
            messages, data_records, templates = ipfix_dump_ok(path)
            # IPv4 and IPv6, and the options templates of the statistics
            # (264, 265): every file starts with them.
            self.assertEqual(templates, 4, path)
            options = []
            with open(path, "rb") as f:
                records, headers = parse_ipfix_stream(f.read(), options)  # fails if data came before templates
            # Each file has the exporter's statistics after its templates.
            self.assertEqual([o["template"] for o in options[:2]], [264, 265], path)
            self.assertEqual(len(records) + len(options), data_records)
            self.assertEqual(len(headers), messages)
            for h in headers:  # exported within the file's interval
                self.assertTrue(start <= h["export_time"] < start + INTERVAL_S, (path, h))
            all_ipfix += records
        for path in self.files("json"):
            start = start_of(path)
            with open(path) as f:
                lines = f.read().splitlines()
            self.assertTrue(lines, path)
            for line in lines:  # a flow is exported after it ends, in the interval it is exported in
                self.assertLess(json.loads(line)["last_ms"], (start + INTERVAL_S) * 1000, path)
            all_json += lines
        self.assertFlowsEqual(ipfix_flows(all_ipfix), self.truth)
        self.assertFlowsEqual(json_flows(all_json), self.truth)
        text_lines = sum(len(open(p).read().splitlines()) for p in self.files("txt"))
        self.assertEqual(text_lines, len(all_json))
        # The same capture gives the same files, byte for byte (packet time, not the wall clock).
        before = {p: open(p, "rb").read() for p in self.files("ipfix")}
        for p in glob.glob(os.path.join(self.out, "*")):
            os.unlink(p)
        self.run_with("  - type: ipfix\n    path: %s/flows.ipfix\n    rotate: 2m\n" % self.out)
        self.assertEqual({p: open(p, "rb").read() for p in self.files("ipfix")}, before)

    def test_with_two_workers_the_files_are_the_same_intervals_and_the_flows_exact(self):
        # Each worker hands its batches over at the boundaries; a batch that
        # comes a moment late goes to the current file, never back.
        self.run_with("  - type: ipfix\n    path: %s/flows.ipfix\n    rotate: 2m\n" % self.out, "--workers", "2")
        self.assertEqual([os.path.basename(p) for p in self.files("ipfix")],
                         ["flows.%s.ipfix" % stamp(t) for t in self.intervals])
        records = []
        for path in self.files("ipfix"):
            with open(path, "rb") as f:
                records += parse_ipfix_stream(f.read())[0]
        self.assertFlowsEqual(ipfix_flows(records), self.truth)

    def test_max_files_keeps_the_newest_of_its_own_files_and_nothing_else_goes(self):
        # Files the caps must not touch: another rotation's, the plain path, a
        # name with a bad stamp, a link and a directory that carry a good one.
        bystanders = ["flows.ipfix", "other.202311142200.ipfix", "flows.202311142200.json", "flows.2023111422.ipfix"]
        for name in bystanders:
            with open(os.path.join(self.out, name), "w") as f:
                f.write("not flowfold's to remove\n")
        old = stamp(self.intervals[0] - 10 * INTERVAL_S)
        os.symlink(os.path.join(self.out, "flows.ipfix"), os.path.join(self.out, "flows.%s.ipfix" % old))
        os.mkdir(os.path.join(self.out, "flows.%s.ipfix" % stamp(self.intervals[0] - 11 * INTERVAL_S)))
        proc = self.run_with("  - type: ipfix\n    path: %s/flows.ipfix\n    rotate: 2m\n    max_files: 3\n" % self.out)
        kept = [os.path.basename(p) for p in self.files("ipfix")
                if re.search(r"\.\d{12}\.ipfix$", p) and os.path.isfile(p) and not os.path.islink(p)]
        self.assertEqual(kept, ["flows.%s.ipfix" % stamp(t) for t in self.intervals[-3:]])
        removed = re.findall(r"(flows\.\d{12}\.ipfix): removed \(more than max_files 3\)", proc.stderr)
        self.assertEqual(removed, ["flows.%s.ipfix" % stamp(t) for t in self.intervals[:-3]])
        for name in bystanders:
            with open(os.path.join(self.out, name)) as f:
                self.assertEqual(f.read(), "not flowfold's to remove\n")
        self.assertTrue(os.path.islink(os.path.join(self.out, "flows.%s.ipfix" % old)))

    def test_max_age_removes_files_whose_interval_ended_longer_ago(self):
        # Clock: packet time. At the last rotation (the last interval's start
        # T), files whose interval ended at or before T - 4m are removed: with
        # 2-minute intervals the last three files stay (T-4m..T-2m ends at T-2m).
        proc = self.run_with("  - type: json\n    path: %s/flows.json\n    rotate: 2m\n    max_age: 4m\n" % self.out)
        self.assertEqual([os.path.basename(p) for p in self.files("json")],
                         ["flows.%s.json" % stamp(t) for t in self.intervals[-3:]], proc.stderr)
        self.assertEqual(len(re.findall(r"removed \(older than max_age\)", proc.stderr)), len(self.intervals) - 3)

    def test_a_restart_appends_to_the_files_it_finds_and_truncates_nothing(self):
        need("ipfixDump")
        exporters = "  - type: ipfix\n    path: %s/flows.ipfix\n    rotate: 2m\n" % self.out
        self.run_with(exporters)
        first = {p: open(p, "rb").read() for p in self.files("ipfix")}
        self.run_with(exporters)
        twice = {k: [2 * v[0], 2 * v[1]] for k, v in self.truth.items()}
        records = []
        for path in self.files("ipfix"):
            with open(path, "rb") as f:
                data = f.read()
            self.assertTrue(data.startswith(first[path]), path)
            self.assertEqual(ipfix_dump_ok(path)[2], 8, path)  # two streams, each with its 4 templates (2 options)
            records += parse_ipfix_stream(data)[0]
        self.assertFlowsEqual(ipfix_flows(records), twice)

    def test_a_missing_directory_is_one_clear_error_before_anything_runs(self):
        cfg = self.path("rotate.yaml")
        with open(cfg, "w") as f:
            f.write("exporters:\n  - type: ipfix\n    path: %s/nope/flows.ipfix\n    rotate: 5m\n" % self.tmp)
        proc = run_flowfold("-r", self.pcap, "-c", cfg, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("%s/nope: the directory for the rotated files" % self.tmp, proc.stderr)
        self.assertIn("create it, writable by the user flowfold runs as", proc.stderr)

    def test_a_reload_after_logrotate_moved_the_json_file_starts_a_new_one(self):
        # What a logrotate postrotate 'systemctl reload flowfold' relies on.
        import signal
        from harness import FLOWFOLD, wait_for
        from netns import VethPair, require_netns
        require_netns()
        pair = VethPair("ffrot").__enter__()
        self.addCleanup(pair.__exit__, None, None, None)
        out, cfg, log_path = self.path("flows.json"), self.path("run.yaml"), self.path("flowfold.log")
        with open(cfg, "w") as f:
            f.write("run_as_root: true\nexporters:\n  - type: json\n    path: %s\n" % out)
        port = 9997
        log = open(log_path, "w")
        self.addCleanup(log.close)
        ff = pair.popen_in("b", [FLOWFOLD, "-c", cfg, "-i", pair.if_b, "-t", "idle=1", "udp port %d" % port],
                           stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: ff.poll() is None and (ff.kill(), ff.wait()))
        read_log = lambda: open(log_path).read()
        wait_for(lambda: "capturing on" in read_log() or ff.poll() is not None, "flowfold to start")
        self.assertIsNone(ff.poll(), read_log())
        lines_of = lambda p: open(p).read().splitlines() if os.path.exists(p) else []
        pair.send_udp("a", pair.addr_b, port, 5, 100, source_port=40021)
        wait_for(lambda: len(lines_of(out)) == 1, "the first flow to idle out", limit=20)
        os.rename(out, out + ".1")  # what logrotate does first
        ff.send_signal(signal.SIGHUP)  # its postrotate
        wait_for(lambda: "reloaded" in read_log(), "the reload")
        pair.send_udp("a", pair.addr_b, port, 7, 100, source_port=40022)
        try:
            wait_for(lambda: len(lines_of(out)) == 1, "the second flow to idle out", limit=20)
        finally:
            ff.send_signal(signal.SIGTERM)
            ff.wait(timeout=30)
        self.assertEqual(ff.returncode, 0, read_log())
        self.assertEqual([(r["src_port"], r["packets"]) for r in map(json.loads, lines_of(out + ".1"))], [(40021, 5)])
        self.assertEqual([(r["src_port"], r["packets"]) for r in map(json.loads, lines_of(out))], [(40022, 7)])


if __name__ == "__main__":
    unittest.main()
