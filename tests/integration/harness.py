"""Shared helpers for flowfold's integration tests.

Everything here drives real programs: flowgen (ground truth), flowfold, a
private nfcapd on a loopback port, nfdump, tshark, ipfixDump. Waits are on
observable conditions (a socket appearing in /proc/net/udp, its receive queue
draining), never on fixed sleeps.
"""

import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FLOWFOLD = os.environ.get("FLOWFOLD_BIN", os.path.join(REPO, "build", "probe", "flowfold"))
FLOWGEN_SRC = os.environ.get("FLOWGEN_SRC", os.path.join(REPO, "tests", "tools", "flowgen.c"))
CACHE_DIR = os.environ.get("FLOWFOLD_TEST_CACHE", os.path.join(tempfile.gettempdir(), "flowfold-test-cache"))

# How long any wait for a condition may take before the test fails.
WAIT_LIMIT_S = 60.0


def wait_for(condition, what, limit=WAIT_LIMIT_S, interval=0.01):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def need(*programs):
    """Skip the test when a real tool it needs is not installed."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise unittest.SkipTest("not installed: " + ", ".join(missing) + " (run scripts/install-deps.sh)")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpCollector:
    """A TCP collector on loopback that keeps every byte of one connection:
    `with TcpCollector() as c:` run the exporter to 127.0.0.1:c.port, then
    c.received (after the block: the connection has ended, or 60 s passed)."""

    def __enter__(self):
        self.port = free_tcp_port()
        self.received = bytearray()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()
        return self

    def _collect(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    return
                self.received.extend(chunk)

    def __exit__(self, *exc):
        self.thread.join(timeout=60)
        self.server.close()
        return False


# ---------------------------------------------------------------- flowgen

def flowgen_binary():
    os.makedirs(CACHE_DIR, exist_ok=True)
    exe = os.path.join(CACHE_DIR, "flowgen")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(FLOWGEN_SRC):
        subprocess.run(["cc", "-O2", "-o", exe + ".tmp", FLOWGEN_SRC, "-lm"], check=True)
        os.replace(exe + ".tmp", exe)
    return exe


def flowgen(name, *args):
    """Generates (once, cached) a capture and its truth file; returns both paths."""
    pcap = os.path.join(CACHE_DIR, name + ".pcap")
    truth = os.path.join(CACHE_DIR, name + ".tsv")
    if not (os.path.exists(pcap) and os.path.exists(truth)):
        subprocess.run([flowgen_binary(), "-o", pcap + ".tmp", "-t", truth + ".tmp", *args], check=True)
        os.replace(pcap + ".tmp", pcap)
        os.replace(truth + ".tmp", truth)
    return pcap, truth


def norm_addr(text):
    return str(ipaddress.ip_address(text.strip()))


def read_truth(path):
    """flowgen truth: proto src sport dst dport vlan packets ip_bytes -> {key: [packets, bytes]}."""
    truth = {}
    with open(path) as f:
        for line in f:
            proto, src, sport, dst, dport, vlan, pkts, byts = line.split("\t")
            key = (int(proto), norm_addr(src), int(sport), norm_addr(dst), int(dport), int(vlan))
            truth[key] = [int(pkts), int(byts)]
    return truth


def totals(flows):
    return (len(flows), sum(v[0] for v in flows.values()), sum(v[1] for v in flows.values()))


def add_flow(acc, key, packets, octets):
    entry = acc.setdefault(key, [0, 0])
    entry[0] += packets
    entry[1] += octets


# ---------------------------------------------------------------- flowfold

def run_flowfold(*args, check=True, stdin=None, timeout=600):
    proc = subprocess.run([FLOWFOLD, *args], capture_output=True, text=True, stdin=stdin, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("flowfold %s exited %d:\n%s" % (" ".join(args), proc.returncode, proc.stderr))
    return proc


def stats_of(stderr):
    """Parses flowfold's final 'stats:' line into {name: value} (first section only)."""
    for line in stderr.splitlines():
        if "stats:" in line:
            head = line.split("stats:", 1)[1].split("|")[0]
            return {k: int(v) for k, v in (item.split("=") for item in head.split())}
    raise AssertionError("no stats line in:\n" + stderr)


# ---------------------------------------------------------------- the counter table

README = os.path.join(REPO, "README.md")


# The README's families that only a mysql exporter has (documented_counters fills it).
MYSQL_FAMILIES = set()


def documented_counters(readme=None):
    """The README's counter table (between <!-- counters: begin/end -->) as
    (head_keys, exporter_keys, series): the stats-line keys of the head and
    of an exporter's part, and [(family, label, value, names)] for every
    Prometheus name in it: label None for a family without one, value None
    when the label is free ({exporter}, {interface}) or, for {reason}, one
    of the row's stats keys `names`. 'sum of' entries name no series. Rows
    of one kind of exporter ("exporter (mysql, ...)") are exporter keys; their
    families are listed in MYSQL_FAMILIES as well."""
    with open(readme or README) as f:
        text = f.read()
    table = text.split("<!-- counters: begin -->", 1)[1].split("<!-- counters: end -->", 1)[0]
    head, exporter, series = set(), set(), []
    for row in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        names = re.findall(r"`([a-z0-9_]+)`", cells[0])
        (exporter if cells[0].startswith("exporter") else head).update(names)
        if cells[1].startswith("sum of"):
            continue
        for family, labels in re.findall(r"`(flowfold_[a-z_]+)(\{[^}]*\})?`", cells[1]):
            if cells[0].startswith("exporter (mysql"):
                MYSQL_FAMILIES.add(family)
            m = re.fullmatch(r'\{(\w+)(?:="([^"]*)")?\}', labels) if labels else None
            series.append((family, m.group(1) if m else None, m.group(2) if m else None, names))
    return head, exporter, series


def stats_sections(stderr):
    """The last stats line as [(title, {key: value})]: 'stats', each exporter, 'cpu_ms'."""
    line = [l for l in stderr.splitlines() if "stats:" in l][-1]
    out = []
    for part in ("stats:" + line.split("stats:", 1)[1]).split(" | "):
        title, _, rest = part.partition(": ")
        out.append((title, {k: int(v) for k, v in (item.split("=") for item in rest.split())}))
    return out


def check_counters_documented(test, stderr, metrics=None):
    """Every key of flowfold's stats line and every flowfold_* series of its
    metrics is in the README's counter table, under that name; and every
    family and fixed series the table lists is in the metrics (when given)."""
    head, exporter, series = documented_counters()
    sections = stats_sections(stderr)
    for key in sections[0][1]:
        test.assertIn(key, head, "stats line key %s is not in README.md's counter table" % key)
    for title, keys in sections[1:-1]:
        for key in keys:
            test.assertIn(key, exporter, "%s: stats line key %s is not in README.md's counter table" % (title, key))
    test.assertEqual(sections[-1][0], "cpu_ms")
    if metrics is None:
        return
    seen = set()
    for line in metrics.splitlines():
        if not line.startswith("flowfold_"):
            continue
        m = re.fullmatch(r'(\w+)(?:\{(\w+)="([^"]*)"\})? \S+', line)
        test.assertIsNotNone(m, line)
        family, label, value = m.groups()
        matches = [(f, l, v, n) for (f, l, v, n) in series if f == family and l == label and
                   (v == value or (v is None and (label != "reason" or value in n)))]
        test.assertEqual(len(matches), 1, "%s: documented %d times in README.md's counter table" % (line, len(matches)))
        seen.add((family, label, value))
    for family, label, value, names in series:
        if family.startswith("flowfold_recorder_") and not any(f.startswith("flowfold_recorder_") for f, _, _ in seen):
            continue  # the recorder's families exist only while recording
        if family.startswith("flowfold_dpi_") and not any(f.startswith("flowfold_dpi_") for f, _, _ in seen):
            continue  # DPI's families exist only with dpi on
        if family in MYSQL_FAMILIES and not any(f in MYSQL_FAMILIES for f, _, _ in seen):
            continue  # a mysql exporter's, and the run has none
        if value is not None:
            test.assertIn((family, label, value), seen, "README.md lists %s{%s=%s}: not in the metrics" % (family, label, value))
        elif label == "reason":
            for name in names:
                test.assertIn((family, label, name), seen, "README.md lists %s{reason=%s}: not in the metrics" % (family, name))
        else:
            test.assertTrue(any(f == family for f, _, _ in seen), "README.md lists %s: not in the metrics" % family)


# ---------------------------------------------------------------- kernel counters

def udp_rcvbuf_errors():
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def udp_socket_state(port):
    """(found, rx_queue bytes, drops) of the IPv4 UDP socket bound to port."""
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local_port = int(cols[1].split(":")[1], 16)
            if local_port == port:
                rx_queue = int(cols[4].split(":")[1], 16)
                return True, rx_queue, int(cols[-1])
    return False, 0, 0


def raise_socket_buffer_limit(size=64 << 20):
    """nfcapd's -B can only go as high as net.core.rmem_max allows."""
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            current = int(f.read())
        if current < size:
            with open("/proc/sys/net/core/rmem_max", "w") as f:
                f.write(str(size))
    except OSError:
        pass  # not root: nfcapd keeps its default buffer; pacing still protects it


# ---------------------------------------------------------------- nfcapd / nfdump

class Nfcapd:
    """A private nfcapd on 127.0.0.1:port writing into its own directory."""

    def __init__(self, workdir, name="nfcapd"):
        need("nfcapd", "nfdump")
        raise_socket_buffer_limit()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.port = free_udp_port()
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", self.dir, "-B", str(32 << 20), "-t", "3600"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: udp_socket_state(self.port)[0] or self.proc.poll() is not None, "nfcapd to listen")
        if self.proc.poll() is not None:
            raise AssertionError("nfcapd failed to start:\n" + open(self.log_path).read())

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        """Waits until nfcapd has read every queued datagram, then stops it (it writes its file on exit)."""
        if self.proc.poll() is None:
            wait_for(lambda: udp_socket_state(self.port)[1] == 0, "nfcapd to drain its socket")
            _, _, self.socket_drops = udp_socket_state(self.port)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()
        return open(self.log_path).read()

    def sequence_errors(self):
        text = open(self.log_path).read()
        total = 0
        for part in text.split("Sequence Errors:")[1:]:
            total += int(part.split(",")[0].strip())
        return total

    def flows(self):
        """Every record nfdump reads back, summed per flow key."""
        return nfdump_flows(self.dir)


def nfdump_flows(directory):
    """Every record nfdump reads back from an nfcapd directory, summed per
    flow key as flowgen's truth keys them; returns (flows, records)."""
    out = subprocess.run(
        ["nfdump", "-R", directory, "-q", "-N", "-6", "-o", "fmt:%pr|%sa|%sp|%da|%dp|%svln|%pkt|%byt"],
        capture_output=True, text=True, check=True).stdout
    flows, records = {}, 0
    for line in out.splitlines():
        if not line.strip():
            continue
        proto, sa, sp, da, dp, vlan, pkts, byts = [c.strip() for c in line.split("|")]
        if "." in dp:  # ICMP: nfdump prints type.code
            t, c = dp.split(".")
            dp = int(t) * 256 + int(c)
        add_flow(flows, (int(proto), norm_addr(sa), int(sp), norm_addr(da), int(dp), int(vlan)),
                 int(pkts), int(byts))
        records += 1
    return flows, records


def nfacctd_csv_totals(directory, prefix=""):
    """What nfacctd's print plugin wrote (CSV files in directory whose names
    start with prefix), summed per (protocol, VLAN): `aggregate: proto, vlan`."""
    flows = {}
    for name in sorted(os.listdir(directory)):
        if not (name.startswith(prefix) and name.endswith(".csv")):
            continue
        with open(os.path.join(directory, name)) as f:
            header = None
            for line in f:
                cols = line.strip().split(",")
                if "PACKETS" in cols:  # the header line
                    header = cols
                    continue
                if header is None or len(cols) != len(header):
                    continue
                row = dict(zip(header, cols))
                add_flow(flows, (int(row["PROTOCOL"]), int(row["VLAN"])), int(row["PACKETS"]), int(row["BYTES"]))
    return flows


# ---------------------------------------------------------------- an independent IPFIX reader

def parse_ipfix_stream(data, options=None):
    """Decodes IPFIX messages (RFC 7011) back to back, without libfixbuf.

    Returns (records, messages): records are dicts of element id -> raw bytes
    (flow records: those of templates, set 2; an enterprise element under its
    number without the enterprise bit; a variable-length one, its value). Options records (templates of
    set 3, RFC 7011 section 3.4.2.2) go to `options` when a list is given,
    each a dict with "template" (its id) and "scope" (how many of its first
    fields are scope fields) besides the element ids. A template withdrawal
    (a template record with no fields) forgets the template.
    """
    templates, records, messages, off = {}, [], [], 0
    while off < len(data):
        if len(data) - off < 16:
            raise AssertionError("trailing %d bytes after the last message" % (len(data) - off))
        version, length, export_time, seq, domain = struct.unpack_from("!HHIII", data, off)
        if version != 10 or length < 16 or off + length > len(data):
            raise AssertionError("bad IPFIX message header at offset %d" % off)
        messages.append({"length": length, "sequence": seq, "domain": domain, "export_time": export_time,
                         "data_records": 0, "withdrawn": []})
        pos, end = off + 16, off + length
        while pos < end:
            set_id, set_len = struct.unpack_from("!HH", data, pos)
            if set_len < 4 or pos + set_len > end:
                raise AssertionError("bad set length at offset %d" % pos)
            body, body_end = pos + 4, pos + set_len
            if set_id in (2, 3):
                while body + 4 <= body_end:
                    tid, count = struct.unpack_from("!HH", data, body)
                    body += 4
                    if count == 0:  # withdrawal (RFC 7011 section 8.1)
                        templates.pop((domain, tid), None)
                        messages[-1]["withdrawn"].append(tid)
                        continue
                    scope = 0
                    if set_id == 3:
                        scope, = struct.unpack_from("!H", data, body)
                        body += 2
                    fields = []
                    for _ in range(count):
                        eid, flen = struct.unpack_from("!HH", data, body)
                        body += 4
                        if eid & 0x8000:
                            body += 4  # enterprise number
                        fields.append((eid & 0x7FFF, flen))
                    templates[(domain, tid)] = (fields, set_id == 3, scope)
            elif set_id >= 256:
                if (domain, set_id) not in templates:
                    raise AssertionError("data set %d before its template" % set_id)
                fields, is_options, scope = templates[(domain, set_id)]
                # Variable-length fields (length 65535, RFC 7011 section 7)
                # take at least their length octet.
                size = sum(1 if f[1] == 65535 else f[1] for f in fields)
                while body + size <= body_end:
                    rec = {}
                    for eid, flen in fields:
                        if flen == 65535:
                            flen = data[body]
                            body += 1
                            if flen == 255:
                                flen, = struct.unpack_from("!H", data, body)
                                body += 2
                        rec[eid] = data[body:body + flen]
                        body += flen
                    messages[-1]["data_records"] += 1
                    if not is_options:
                        records.append(rec)
                    elif options is not None:
                        rec["template"], rec["scope"] = set_id, scope
                        options.append(rec)
            pos = body_end
        off = end
    return records, messages


def ipfix_flows(records):
    """Sums packetDeltaCount (2) / octetDeltaCount (1) per truth-shaped key."""
    flows = {}
    u = lambda b: int.from_bytes(b, "big")
    for r in records:
        if 8 in r:
            sa, da = str(ipaddress.IPv4Address(r[8])), str(ipaddress.IPv4Address(r[12]))
        else:
            sa, da = str(ipaddress.IPv6Address(r[27])), str(ipaddress.IPv6Address(r[28]))
        key = (u(r[4]), sa, u(r[7]), da, u(r[11]), u(r[58]))
        add_flow(flows, key, u(r[2]), u(r[1]))
    return flows


class TempDirTest(unittest.TestCase):
    """A test with its own scratch directory, removed unless FLOWFOLD_KEEP_TEST_DIRS is set."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="flowfold-it-")
        # A cleanup, not tearDown(): cleanups run last-registered first, so
        # what a test registers later (unmounting a tmpfs inside the
        # directory, stopping a process writing there) is undone before the
        # directory goes.
        self.addCleanup(self._remove_tmp)

    def _remove_tmp(self):
        if not os.environ.get("FLOWFOLD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def assertFlowsEqual(self, got, want):
        """Exact per-key equality, with a readable summary of the first differences."""
        if got == want:
            return
        missing = [k for k in want if k not in got][:5]
        extra = [k for k in got if k not in want][:5]
        differ = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:5]
        self.fail("flows differ: got %s keys/packets/bytes, want %s\n missing %s\n extra %s\n differ %s" %
                  (totals(got), totals(want), missing, extra, differ))
