"""The files flowfold writes (--ipfix-file, --text, --json): nothing written is
ever destroyed (a reload or a restart appends), a full disk leaves only whole
records and counts exactly what it lost, a planted symbolic link is refused,
and '-' is standard output. What is in a file is judged by readers that are
not flowfold: the harness's own IPFIX decoder, ipfixDump, Python's json."""

import json
import os
import re
import signal
import subprocess
import time
import unittest

from harness import (FLOWFOLD, TempDirTest, flowgen, ipfix_flows, need, parse_ipfix_stream, read_truth,
                     run_flowfold, stats_of, wait_for)

# 30 s of traffic, 8,000-odd flow records: a few MB as JSON.
PROFILE = ("-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")

# A whole line of --text output: both times, the endpoints, ..., the end reason, the flow id.
TEXT_LINE = re.compile(r"^\S+Z \S+Z proto \d+ \S+ -> \S+(?: icmp \d+\.\d+)? vlan \d+ pkts \d+ bytes \d+ flags \S{8} tos \d+ "
                       r"ttl \d+-\d+ end [a-z_]+ flow_id \d+$")


def exporter_section(stderr, name):
    """{key: value} of one exporter's section of the final stats line ("| json: records=..")."""
    for line in stderr.splitlines():
        if "stats:" in line:
            for part in line.split("|")[1:]:
                label, _, rest = part.strip().partition(": ")
                if label == name:
                    return {k: int(v) for k, v in (item.split("=") for item in rest.split())}
    raise AssertionError("no exporter %r in the stats line:\n%s" % (name, stderr))


# The exporter's options records (its statistics, the sampling rate).
OPTIONS_TEMPLATES = (264, 265, 266, 267)


def ipfix_dump_totals(path_or_stdin, data=None):
    """(messages, flow records) as ipfixDump reports them for a file or bytes
    on its stdin: its data records less those of the options templates."""
    args = ["ipfixDump", "--in", path_or_stdin]
    proc = subprocess.run(args, input=data, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    m = re.search(rb"File Stats: (\d+) Messages, (\d+) Data Records", proc.stdout)
    assert m, proc.stdout[-500:]
    options = sum(len(re.findall(rb"--- data record \d+ ---\nheader:\n\tcount: \d+\s+tid:\s+%d " % t, proc.stdout))
                  for t in OPTIONS_TEMPLATES)
    return int(m.group(1)), int(m.group(2)) - options


def slurp(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def record_key(proto, src, sport, dst, dport, packets, octets):
    return (proto, src, sport, dst, dport, packets, octets)


def ipfix_record_keys(records):
    import ipaddress
    u = lambda b: int.from_bytes(b, "big")
    keys = []
    for r in records:
        if 8 in r:
            sa, da = str(ipaddress.IPv4Address(r[8])), str(ipaddress.IPv4Address(r[12]))
        else:
            sa, da = str(ipaddress.IPv6Address(r[27])), str(ipaddress.IPv6Address(r[28]))
        keys.append(record_key(u(r[4]), sa, u(r[7]), da, u(r[11]), u(r[2]), u(r[1])))
    return keys


class FileOutputs(TempDirTest):

    def setUp(self):
        super().setUp()
        self.pcap, truth_path = flowgen("it-small", *PROFILE)
        self.truth = read_truth(truth_path)

    def read_ipfix(self, path):
        with open(path, "rb") as f:
            return parse_ipfix_stream(f.read())

    def small_disk(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root")
        mnt = self.path("small")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt], check=True)
        self.addCleanup(subprocess.run, ["umount", mnt])
        return mnt

    # ------------------------------------------------------------ nothing written is destroyed

    def test_a_restart_appends_a_second_ipfix_stream_that_readers_take_whole(self):
        need("ipfixDump")
        out = self.path("flows.ipfix")
        run_flowfold("-r", self.pcap, "--ipfix-file", out)
        first_size = os.path.getsize(out)
        with open(out, "rb") as f:
            first_run = f.read()
        run_flowfold("-r", self.pcap, "--ipfix-file", out)
        with open(out, "rb") as f:
            both = f.read()
        self.assertTrue(both.startswith(first_run), "the first run's messages were overwritten")
        self.assertGreater(len(both), first_size)
        records, messages = parse_ipfix_stream(both)
        twice = {k: [2 * v[0], 2 * v[1]] for k, v in self.truth.items()}
        self.assertFlowsEqual(ipfix_flows(records), twice)
        # The second run's stream is readable on its own: it starts with its
        # templates (the decoder refuses a data set before its template).
        second, _ = parse_ipfix_stream(both[len(first_run):])
        self.assertFlowsEqual(ipfix_flows(second), self.truth)
        _, dumped = ipfix_dump_totals(out)
        self.assertEqual(dumped, len(records))

    def test_a_message_torn_by_a_crash_is_cut_off_before_appending(self):
        # What a power loss can leave: the first part of a message at the end.
        # Appended after, the next stream would be unreadable from there on.
        need("ipfixDump")
        out = self.path("flows.ipfix")
        run_flowfold("-r", self.pcap, "--ipfix-file", out)
        with open(out, "rb") as f:
            first_run = f.read()
        # After the templates and the options records: a flow message, cut at 100 bytes.
        first_message_length = 0
        for _ in range(2):
            first_message_length += int.from_bytes(first_run[first_message_length + 2:first_message_length + 4], "big")
        torn = first_run[first_message_length:first_message_length + 100]
        self.assertEqual(torn[:2], b"\x00\x0a")
        with open(out, "ab") as f:
            f.write(torn)
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", out)
        self.assertIn("ended inside a message (100 bytes from byte %d on" % len(first_run), proc.stderr)
        with open(out, "rb") as f:
            both = f.read()
        self.assertTrue(both.startswith(first_run))
        records, _ = parse_ipfix_stream(both)
        twice = {k: [2 * v[0], 2 * v[1]] for k, v in self.truth.items()}
        self.assertFlowsEqual(ipfix_flows(records), twice)
        _, dumped = ipfix_dump_totals(out)
        self.assertEqual(dumped, len(records))

    def test_a_reload_appends_to_the_ipfix_file_and_keeps_what_was_written(self):
        need("ipfixDump")
        from netns import VethPair, require_netns
        require_netns()
        pair = VethPair("fffile").__enter__()
        self.addCleanup(pair.__exit__, None, None, None)
        out, cfg, log_path = self.path("live.ipfix"), self.path("run.yaml"), self.path("flowfold.log")
        with open(cfg, "w") as f:
            f.write("run_as_root: true\n")
        port = 9998
        log = open(log_path, "w")
        self.addCleanup(log.close)
        ff = pair.popen_in("b", [FLOWFOLD, "-c", cfg, "-i", pair.if_b, "-t", "idle=1", "--ipfix-file", out,
                                 "udp port %d" % port], stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: ff.poll() is None and (ff.kill(), ff.wait()))
        read_log = lambda: slurp(log_path, "r")
        wait_for(lambda: "capturing on" in read_log() or ff.poll() is not None, "flowfold to start")
        self.assertIsNone(ff.poll(), read_log())

        def records_by_source_port():
            if not os.path.exists(out):
                return {}
            per_port = {}
            for r in parse_ipfix_stream(slurp(out))[0]:
                sport = int.from_bytes(r[7], "big")
                per_port[sport] = per_port.get(sport, 0) + int.from_bytes(r[2], "big")
            return per_port

        pair.send_udp("a", pair.addr_b, port, 5, 100, source_port=40011)
        wait_for(lambda: records_by_source_port() == {40011: 5}, "the first flow to idle out", limit=20)
        written = slurp(out)
        ff.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in read_log(), "the reload")
        pair.send_udp("a", pair.addr_b, port, 7, 100, source_port=40012)
        try:
            wait_for(lambda: len(records_by_source_port()) >= 2, "the second flow to idle out", limit=20)
        finally:
            ff.send_signal(signal.SIGTERM)
            ff.wait(timeout=30)
        self.assertEqual(ff.returncode, 0, read_log())
        with open(out, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(written), "the reload destroyed what was written before it")
        self.assertEqual(records_by_source_port(), {40011: 5, 40012: 7})
        # The old exporter's last message (its final statistics, options
        # records in its own stream), then the new stream with its own templates.
        rest = data[len(written):]
        last_of_old = int.from_bytes(rest[2:4], "big")
        self.assertEqual({int.from_bytes(rest[16 + 0:18], "big")}, {264})  # the first set: statistics
        after, messages = parse_ipfix_stream(rest[last_of_old:])
        self.assertEqual(messages[0]["sequence"], 0)
        self.assertEqual([int.from_bytes(r[7], "big") for r in after], [40012])
        self.assertEqual(ipfix_dump_totals(out)[1], 2)

    def test_an_existing_file_that_is_not_ipfix_is_refused_and_left_alone(self):
        out = self.path("notes.txt")
        with open(out, "w") as f:
            f.write("not IPFIX at all\n")
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", out, check=False)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("does not start with an IPFIX message", proc.stderr)
        self.assertEqual(slurp(out, "r"), "not IPFIX at all\n")

    # ------------------------------------------------------------ full disk

    def check_full_disk(self, option, name, parse_line):
        mnt = self.small_disk()
        out = os.path.join(mnt, "flows")
        reference = self.path("reference.ipfix")  # every record, on a disk with room
        proc = run_flowfold("-r", self.pcap, option + "=" + out, "--ipfix-file", reference, check=False)
        self.assertEqual(proc.returncode, 5, proc.stderr)
        self.assertIn("No space left on device", proc.stderr)
        every_record = ipfix_record_keys(self.read_ipfix(reference)[0])
        with open(out) as f:
            text = f.read()
        self.assertTrue(text.endswith("\n"), "the file ends inside a line: %r" % text[-80:])
        lines = text.splitlines()
        in_file = [parse_line(line) for line in lines]  # each is a whole record, or this raises
        self.assertGreater(len(lines), 0)
        # Every line is one of the records, and only the records not in the file are counted as lost.
        remaining = list(every_record)
        for key in in_file:
            remaining.remove(key)
        section = exporter_section(proc.stderr, name)
        self.assertEqual(section["dropped"], len(every_record) - len(lines))
        self.assertEqual(section["records"], len(lines))

    def test_a_full_disk_leaves_only_whole_json_lines_and_counts_exactly_what_was_lost(self):
        def parse(line):
            r = json.loads(line)
            return record_key(r["proto"], r["src"], r["src_port"], r["dst"], r["dst_port"], r["packets"], r["bytes"])
        self.check_full_disk("--json", "json", parse)

    def test_a_full_disk_leaves_only_whole_text_lines_and_counts_exactly_what_was_lost(self):
        def parse(line):
            self.assertRegex(line, TEXT_LINE)
            f = line.split()
            proto = int(f[3])
            src, dst = f[4], f[6]
            if proto in (1, 58):  # "A -> B icmp T.C": the port fields are 0 and type*256+code
                t, c = f[8].split(".")
                sa, sp, da, dp = src, 0, dst, int(t) * 256 + int(c)
            else:
                sa, sp = src.rsplit(":", 1)
                da, dp = dst.rsplit(":", 1)
                sa, da, sp, dp = sa.strip("[]"), da.strip("[]"), int(sp), int(dp)
            pk, by = int(f[f.index("pkts") + 1]), int(f[f.index("bytes") + 1])
            return record_key(proto, sa, sp, da, dp, pk, by)
        self.check_full_disk("--text", "text", parse)

    # ------------------------------------------------------------ targets that cannot be cut back

    def test_a_target_that_cannot_be_truncated_does_not_flood_the_log(self):
        # /dev/full: every write fails. Nothing partial is ever written, so
        # there is nothing to cut off; the failures themselves are rate-limited.
        reference = self.path("reference.ipfix")
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", "/dev/full", "--json=/dev/full", "--text=/dev/full",
                            "--ipfix-file", reference, check=False)
        self.assertEqual(proc.returncode, 5, proc.stderr[-2000:])
        self.assertLessEqual(proc.stderr.count("cannot cut off"), 5)
        self.assertLess(len(proc.stderr.splitlines()), 40, proc.stderr[-3000:])
        reference_records, reference_messages = self.read_ipfix(reference)
        records = len(reference_records)
        # A failing file is tried once per message (and once more for its
        # templates), not once per record.
        self.assertLessEqual(exporter_section(proc.stderr, "ipfix file:/dev/full")["errors"],
                             2 * len(reference_messages))
        for name in ("json", "text", "ipfix file:/dev/full"):
            section = exporter_section(proc.stderr, name)
            self.assertEqual((section["records"], section["dropped"]), (0, records), name)

    # ------------------------------------------------------------ '-' is standard output

    def test_ipfix_file_dash_writes_the_stream_to_standard_output(self):
        need("ipfixDump")
        proc = subprocess.run([FLOWFOLD, "-r", self.pcap, "--ipfix-file", "-"], cwd=self.tmp,
                              capture_output=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(os.path.exists(self.path("-")), "created a file named '-'")
        records, _ = parse_ipfix_stream(proc.stdout)
        self.assertFlowsEqual(ipfix_flows(records), self.truth)
        # ipfixDump reads it from a pipe.
        pipeline = subprocess.run("%s -r %s --ipfix-file - | ipfixDump --in -" % (FLOWFOLD, self.pcap), shell=True,
                                  capture_output=True, timeout=600)
        self.assertEqual(pipeline.returncode, 0, pipeline.stderr)
        self.assertIn(b"Data Records", pipeline.stdout)
        self.assertEqual(ipfix_dump_totals("-", proc.stdout)[1], len(records))

    # ------------------------------------------------------------ symbolic links and modes

    def planted_link(self, name, target):
        """A world-writable sticky directory (like /tmp) holding `name` -> `target`."""
        shared = self.path("shared")
        os.makedirs(shared, exist_ok=True)
        os.chmod(shared, 0o1777)
        link = os.path.join(shared, name)
        os.symlink(target, link)
        return link

    def victim(self):
        victim = self.path("victim")
        with open(victim, "w") as f:
            f.write("precious root-owned data\n")
        os.chmod(victim, 0o600)
        return victim

    def test_a_symlink_planted_for_an_output_file_is_refused_and_its_target_left_alone(self):
        victim = self.victim()
        before = os.stat(victim)
        for option in ("--ipfix-file=", "--json=", "--text="):
            with self.subTest(option=option):
                link = self.planted_link("flows" + option.strip("-="), victim)
                proc = run_flowfold("-r", self.pcap, option + link, check=False)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertIn(link + " is a symbolic link", proc.stderr)
                self.assertIn("refusing to follow it", proc.stderr)
                with open(victim) as f:
                    self.assertEqual(f.read(), "precious root-owned data\n")
                after = os.stat(victim)
                self.assertEqual((after.st_size, after.st_mtime_ns, after.st_mode),
                                 (before.st_size, before.st_mtime_ns, before.st_mode))

    def test_a_dangling_symlink_creates_nothing(self):
        target = self.path("would-be-created")
        link = self.planted_link("flows.ipfix", target)
        proc = run_flowfold("-r", self.pcap, "--ipfix-file", link, check=False)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("symbolic link", proc.stderr)
        self.assertFalse(os.path.lexists(target))

    def test_a_symlink_to_a_device_or_a_pipe_is_still_written(self):
        # /dev/stdout is a link to /proc/self/fd/1: here, a pipe.
        proc = subprocess.run([FLOWFOLD, "-r", self.pcap, "--json=/dev/stdout"], capture_output=True, text=True,
                              timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertEqual(sum(json.loads(l)["packets"] for l in lines), sum(v[0] for v in self.truth.values()))
        # A link to /dev/null.
        link = self.planted_link("null", "/dev/null")
        run_flowfold("-r", self.pcap, "--ipfix-file", link)

    def test_output_files_are_created_0640_less_the_umask(self):
        old = os.umask(0o022)
        try:
            paths = [self.path(n) for n in ("f.ipfix", "f.json", "f.txt")]
            run_flowfold("-r", self.pcap, "--ipfix-file", paths[0], "--json=" + paths[1], "--text=" + paths[2])
        finally:
            os.umask(old)
        for p in paths:
            self.assertEqual(oct(os.stat(p).st_mode & 0o777), oct(0o640), p)


if __name__ == "__main__":
    unittest.main()
