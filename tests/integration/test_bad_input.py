"""Bad input gets one clear message, a documented exit status, and loses
nothing that was already read."""

import json
import os
import shutil
import struct
import subprocess
import unittest

from harness import FLOWFOLD, TempDirTest, add_flow, flowgen, norm_addr, read_truth, run_flowfold, stats_of, totals

# Exit statuses documented in the README.
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INPUT, EXIT_TRUNCATED = 0, 1, 2, 3, 4


def pcap_records(data):
    """(complete packets, IP octets) in a classic little-endian pcap, parsed here, not by flowfold."""
    off, count = 24, 0
    while off + 16 <= len(data):
        _, _, caplen, _ = struct.unpack_from("<IIII", data, off)
        if off + 16 + caplen > len(data):
            break
        off += 16 + caplen
        count += 1
    return count


def json_flows(path):
    flows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            add_flow(flows, (r["proto"], norm_addr(r["src"]), r["src_port"], norm_addr(r["dst"]), r["dst_port"],
                             r["vlan"]), r["packets"], r["bytes"])
    return flows


class BadCaptures(TempDirTest):

    def test_missing_file_is_an_input_error(self):
        proc = run_flowfold("-r", self.path("nope.pcap"), "--text", check=False)
        self.assertEqual(proc.returncode, EXIT_INPUT)
        self.assertIn("cannot read capture", proc.stderr)
        self.assertIn("nope.pcap", proc.stderr)
        self.assertEqual(proc.stderr.count("\n"), 1, "one clear line: " + proc.stderr)

    def test_file_that_is_not_a_capture_is_an_input_error(self):
        bogus = self.path("notes.pcap")
        with open(bogus, "w") as f:
            f.write("this is not a capture file, just some text that is long enough\n")
        proc = run_flowfold("-r", bogus, "--text", check=False)
        self.assertEqual(proc.returncode, EXIT_INPUT)
        self.assertIn("cannot read capture", proc.stderr)

    def test_empty_file_is_an_input_error(self):
        empty = self.path("empty.pcap")
        open(empty, "w").close()
        proc = run_flowfold("-r", empty, "--text", check=False)
        self.assertEqual(proc.returncode, EXIT_INPUT)

    def test_truncated_capture_exports_what_was_read_and_warns(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        with open(pcap, "rb") as f:
            data = f.read()
        cut = data[: len(data) * 2 // 3 + 7]  # ends in the middle of a record
        truncated = self.path("cut.pcap")
        with open(truncated, "wb") as f:
            f.write(cut)
        complete = pcap_records(cut)
        out = self.path("flows.json")
        proc = run_flowfold("-r", truncated, "--json=" + out, check=False)
        self.assertEqual(proc.returncode, EXIT_TRUNCATED, proc.stderr)
        self.assertIn("cut short", proc.stderr)
        flows = json_flows(out)
        self.assertEqual(totals(flows)[1], complete)
        self.assertEqual(stats_of(proc.stderr)["packets"], complete)

    def test_pcapng_and_stdin_give_the_same_flows_as_pcap(self):
        pcap, truth = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        want = read_truth(truth)
        out = self.path("a.json")
        run_flowfold("-r", pcap, "--json=" + out)
        self.assertFlowsEqual(json_flows(out), want)
        if shutil.which("editcap"):
            ng = self.path("same.pcapng.pcap")  # the extension lies: the format is read from the content
            subprocess.run(["editcap", "-F", "pcapng", pcap, ng], check=True)
            out_ng = self.path("ng.json")
            run_flowfold("-r", ng, "--json=" + out_ng)
            self.assertFlowsEqual(json_flows(out_ng), want)
        out_stdin = self.path("stdin.json")
        with open(pcap, "rb") as f:
            run_flowfold("-r", "-", "--json=" + out_stdin, stdin=f)
        self.assertFlowsEqual(json_flows(out_stdin), want)

    def test_a_capture_read_from_a_pipe_or_fifo_under_any_name_gives_every_flow(self):
        # Any path that is not a regular file is a stream: /dev/stdin on a
        # pipe, a FIFO, bash's <(...). Read twice, a stream loses its start.
        pcap, truth = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        want = read_truth(truth)
        packets = sum(v[0] for v in want.values())
        with self.subTest(path="/dev/stdin on a pipe"):
            out = self.path("devstdin.json")
            cat = subprocess.Popen(["cat", pcap], stdout=subprocess.PIPE)
            proc = run_flowfold("-r", "/dev/stdin", "--json=" + out, stdin=cat.stdout, check=False)
            cat.stdout.close()
            cat.wait()
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(stats_of(proc.stderr)["packets"], packets)
            self.assertFlowsEqual(json_flows(out), want)
        with self.subTest(path="a FIFO"):
            fifo = self.path("capture.fifo")
            os.mkfifo(fifo)
            out = self.path("fifo.json")
            writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", pcap, fifo])
            proc = run_flowfold("-r", fifo, "--json=" + out, check=False)
            writer.wait()
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(stats_of(proc.stderr)["packets"], packets)
            self.assertFlowsEqual(json_flows(out), want)
        with self.subTest(path="bash process substitution"):
            out = self.path("procsub.json")
            proc = subprocess.run(["bash", "-c", '"$1" -r <(cat "$2") --json="$3"', "bash", FLOWFOLD, pcap, out],
                                  capture_output=True, text=True, timeout=600)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertFlowsEqual(json_flows(out), want)

    def test_sigterm_exports_every_flow_read_so_far(self):
        import fcntl, signal, termios, time
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        with open(pcap, "rb") as f:
            data = f.read()
        # The first 300 whole packets, then the reader blocks on the open pipe.
        off = 24
        for _ in range(300):
            caplen = struct.unpack_from("<I", data, off + 8)[0]
            off += 16 + caplen
        out = self.path("flows.json")
        proc = subprocess.Popen([FLOWFOLD, "-r", "-", "--json=" + out], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=False)
        proc.stdin.write(data[:off])
        proc.stdin.flush()

        def unread():
            buf = bytearray(4)
            fcntl.ioctl(proc.stdin.fileno(), termios.FIONREAD, buf)
            return struct.unpack("i", bytes(buf))[0]
        deadline = time.monotonic() + 30
        while unread() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, EXIT_OK, err)
        self.assertIn(b"stopping on signal", err)
        self.assertEqual(totals(json_flows(out))[1], 300)

    def test_unsupported_link_type_warns_and_counts(self):
        path = self.path("usb.pcap")
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 189))  # DLT_USB_LINUX
            for i in range(3):
                f.write(struct.pack("<IIII", 1700000000 + i, 0, 8, 8) + b"\x00" * 8)
        proc = run_flowfold("-r", path, "--text", check=False)
        self.assertEqual(proc.returncode, EXIT_OK, proc.stderr)
        self.assertIn("not supported", proc.stderr)
        stats = stats_of(proc.stderr)
        self.assertEqual(stats["unsupported_link"], 3)
        self.assertEqual(stats["decoded"], 0)

    def test_bpf_filter_from_trailing_arguments(self):
        pcap, truth = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        out = self.path("udp.json")
        run_flowfold("-r", pcap, "--json=" + out, "udp", "or", "(vlan", "and", "udp)")
        want = {k: v for k, v in read_truth(truth).items() if k[0] == 17}
        self.assertFlowsEqual(json_flows(out), want)

    def test_bad_bpf_filter_is_reported(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        proc = run_flowfold("-r", pcap, "--text", "not", "a", "(filter", check=False)
        self.assertEqual(proc.returncode, EXIT_INPUT)
        self.assertIn("bad capture filter", proc.stderr)


class JournalPriorities(TempDirTest):
    """Under systemd stderr is the journal's stream, named in $JOURNAL_STREAM:
    each line then starts with its priority, so `journalctl -p err` finds the
    errors. A file plays the journal's stream here (its device and inode)."""

    def test_lines_on_the_journals_stream_start_with_their_priority(self):
        err_path = self.path("stderr")
        with open(err_path, "w") as err:
            st = os.fstat(err.fileno())
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            proc = subprocess.run([FLOWFOLD, "-r", self.path("missing.pcap"), "--text"], stdout=subprocess.DEVNULL,
                                  stderr=err, env=env, timeout=30)
        self.assertEqual(proc.returncode, 3)
        with open(err_path) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("<3>flowfold: error: "), lines[0])

    def test_elsewhere_lines_are_plain(self):
        proc = run_flowfold("-r", self.path("missing.pcap"), "--text", check=False)
        self.assertTrue(proc.stderr.startswith("flowfold: error: "), proc.stderr)


class BadConfiguration(TempDirTest):

    def write(self, text):
        path = self.path("flowfold.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def check_error(self, text, where, words):
        path = self.write(text)
        proc = run_flowfold("-c", path, "--check-config", check=False)
        self.assertEqual(proc.returncode, EXIT_USAGE, proc.stderr)
        self.assertIn("%s:%s:" % (path, where), proc.stderr)
        for w in words:
            self.assertIn(w, proc.stderr)
        self.assertEqual(proc.stderr.count("\n"), 1, "one clear line: " + proc.stderr)

    def test_unknown_key_names_file_line_and_column(self):
        self.check_error("cache:\n  max_flows: 10\n  idle_timout: 5\nexporters:\n  - type: text\n",
                         "3:3", ["unknown key 'idle_timout'", "idle_timeout"])

    def test_out_of_range_value_names_file_line_and_column(self):
        self.check_error("cache:\n  max_flows: 0\nexporters:\n  - type: text\n", "2:14", ["max_flows", "out of range"])

    def test_bad_value_type_names_file_line_and_column(self):
        self.check_error("exporters:\n  - type: ipfix\n    collector: 127.0.0.1:4739\n    mtu: big\n",
                         "4:10", ["mtu", "whole number"])

    def test_yaml_syntax_error_names_file_line_and_column(self):
        self.check_error("cache:\n  max_flows: [1, 2\nexporters: []\n", "3:10", ["YAML syntax error"])

    def test_unknown_exporter_type(self):
        self.check_error("exporters:\n  - type: sflow\n", "2:11", ["unknown exporter type 'sflow'"])

    def test_collector_without_port(self):
        self.check_error("exporters:\n  - type: netflow9\n    collector: 127.0.0.1\n", "3:16", ["HOST:PORT"])

    def test_valid_config_checks_ok(self):
        path = self.write("input:\n  file: x.pcap\ncache:\n  active_timeout: 2m\n  idle_timeout: 500ms\n"
                          "exporters:\n  - type: ipfix\n    collector: '[::1]:4739'\n    transport: tcp\n"
                          "  - type: netflow9\n    collector: 127.0.0.1:2055\n  - type: json\n")
        proc = run_flowfold("-c", path, "--check-config", check=False)
        self.assertEqual(proc.returncode, EXIT_OK, proc.stderr)
        self.assertIn("configuration OK (3 exporters)", proc.stdout)
        self.assertIn("ipfix tcp [::1]:4739", proc.stdout)  # an IPv6 host in brackets

    def test_missing_config_file(self):
        proc = run_flowfold("-c", self.path("absent.yaml"), "--check-config", check=False)
        self.assertEqual(proc.returncode, EXIT_USAGE)
        self.assertIn("cannot read configuration", proc.stderr)

    def test_bad_command_line(self):
        for args, words in [(["-v", "5", "-r", "x", "--text"], "-v takes 9"),
                            (["-r", "x", "-n", "localhost", ], "HOST:PORT"),
                            (["-r", "x", "--text", "-t", "idle=soon"], "duration"),
                            (["-r", "x", "--bogus"], "unknown option"),
                            (["-r", "x"], "no exporter"),
                            (["-r", "x", "-i", "lo", "--text"], "choose one")]:
            proc = run_flowfold(*args, check=False)
            self.assertEqual(proc.returncode, EXIT_USAGE, (args, proc.stderr))
            self.assertIn(words, proc.stderr)

    def test_unreachable_collector_name_is_a_clear_runtime_error(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        proc = run_flowfold("-r", pcap, "-n", "no-such-host.invalid:2055", "-v", "9", check=False)
        self.assertEqual(proc.returncode, EXIT_RUNTIME)
        self.assertIn("no-such-host.invalid", proc.stderr)

    # Issue 16, item 10: a long option without its value printed a raw byte ("-\xEF").
    def test_missing_value_names_the_long_option(self):
        for option in ["--mtu", "--workers", "--ipfix-file", "--log-level", "--tunnels"]:
            proc = subprocess.run([FLOWFOLD, "-r", "x", "--text", option], capture_output=True, timeout=30)
            self.assertEqual(proc.returncode, EXIT_USAGE, (option, proc.stderr))
            self.assertTrue(proc.stderr.isascii(), (option, proc.stderr))
            self.assertIn(("%s needs a value" % option).encode(), proc.stderr)

    # Issue 16, item 11: -r '' captured live on the default interface (it
    # never ended on its own), -c '' was ignored. Both are bad command lines.
    def test_empty_values_are_a_bad_command_line(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        for args, words in [(["-r", "", "--text"], "-r needs a value, not an empty string"),
                            (["-c", "", "-r", pcap, "--text"], "-c needs a value, not an empty string"),
                            (["-i", "", "--text"], "-i needs a value, not an empty string"),
                            (["-r", pcap, "-n", ""], "-n needs a value, not an empty string"),
                            (["-r", pcap, "--json="], "--json= needs a file name")]:
            proc = run_flowfold(*args, check=False, timeout=30)
            self.assertEqual(proc.returncode, EXIT_USAGE, (args, proc.stderr))
            self.assertIn(words, proc.stderr)
            self.assertEqual(proc.stderr.count("\n"), 1, "one clear line: " + proc.stderr)

    # Issue 16, item 12: --check-config accepted these and the run refused
    # them with exit 1 after opening the capture. Now both say exit 2 first.
    def test_check_config_finds_what_the_run_would_refuse(self):
        cases = [("metrics:\n  listen: 0.0.0.0:9108\n", "2:11", "not a loopback address"),
                 ("metrics:\n  listen: localhost:9108\n", "2:11", "needs an IP address"),
                 ("user: root\n", "1:7", "is root"),
                 ("user: flowfold-no-such-user\n", "1:7", "no such user")]
        for text, where, words in cases:
            path = self.write(text + "exporters:\n  - type: json\n    path: %s\n" % self.path("out.json"))
            for args in (["--check-config"], ["-i", "lo"]):
                proc = run_flowfold("-c", path, *args, check=False, timeout=30)
                self.assertEqual(proc.returncode, EXIT_USAGE, (text, args, proc.stderr))
                self.assertIn("%s:%s: " % (path, where), proc.stderr)
                self.assertIn(words, proc.stderr)
                self.assertNotIn("capturing on", proc.stderr, "refused before the capture opened")

    def test_metrics_listen_with_a_capture_file_is_a_warning(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        path = self.write("metrics:\n  listen: 127.0.0.1:9108\n")
        proc = run_flowfold("-c", path, "-r", pcap, "--json=" + self.path("out.json"), check=False)
        self.assertEqual(proc.returncode, EXIT_OK, proc.stderr)
        self.assertIn("%s:2:11: metrics.listen is ignored when reading a capture file (-r or input.file)" % path, proc.stderr)

    # Issue 16, item 14.
    def test_duplicate_key_names_the_second_one(self):
        self.check_error("exporters:\n  - type: json\nexporters:\n  - type: text\n", "3:1",
                         ["duplicate key 'exporters'", "first at line 1, column 1"])

    def test_sub_second_stats_interval_is_an_error(self):
        self.check_error("log:\n  stats_interval: 500ms\nexporters:\n  - type: text\n", "2:19",
                         ["stats_interval", "whole number of seconds"])

    def test_hexadecimal_duration_is_an_error(self):
        self.check_error("cache:\n  idle_timeout: 0x10\nexporters:\n  - type: text\n", "2:17",
                         ["idle_timeout", "not '0x10'"])

    # Issue 16, item 15: -m 3 --workers 8 kept 8 flows, each worker rounding its share up.
    def test_max_flows_is_a_bound_for_the_whole_probe(self):
        pcap, _ = flowgen("it-small", "-n", "20000", "-c", "500", "-d", "30", "-S", "128", "-s", "5")
        proc = run_flowfold("-r", pcap, "-m", "3", "--workers", "8", "--text", check=False)
        self.assertEqual(proc.returncode, EXIT_USAGE, proc.stderr)
        self.assertIn("cannot be shared among 8 flow caches", proc.stderr)
        # 5 flows over 2 workers: 2 each (3 each, 6 in all, before). The
        # capture has 500 flows at once, so every cache fills.
        proc = run_flowfold("-r", pcap, "-m", "5", "--workers", "2", "--json=" + self.path("out.json"))
        stats = stats_of(proc.stderr)
        self.assertGreater(stats["evicted"], 0)
        self.assertLessEqual(stats["flows_peak"], 5)

    def test_help_and_version(self):
        self.assertIn("Usage: flowfold", run_flowfold("--help").stdout)
        self.assertRegex(run_flowfold("--version").stdout, r"^flowfold \d+\.\d+\.\d+")


if __name__ == "__main__":
    unittest.main()
