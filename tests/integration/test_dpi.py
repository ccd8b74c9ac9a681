"""DPI (`dpi: true`, issue 23) against nDPI's own tool.

The peer is `ndpiReader -v 2` (libndpi-bin, the same nDPI 4.2 library
flowfold links): per conversation it prints the application (master.app),
the category and the server name it read. flowfold reads the same capture
with `--dpi --json` and timeouts long enough for one record per direction;
both directions of a conversation must carry ndpiReader's label. The
captures are nDPI's own test captures (../shared/pcaps, when present beside
the repository) and tests/data/pcaps. Every difference is listed in
EXPLAINED with its reason; any other fails the test.
"""

import collections
import glob
import ipaddress
import json
import os
import re
import shutil
import subprocess
import unittest

import tempfile

from harness import Nfcapd, REPO, check_counters_documented, need, parse_ipfix_stream, run_flowfold, stats_of

DATA = os.path.join(REPO, "tests", "data", "pcaps")
NDPI_PCAPS = os.path.join(os.path.dirname(REPO), "shared", "pcaps", "ntop_nDPI", "tests", "cfgs", "default", "pcap")

# ndpiReader opens IP-in-IP and IPv6-in-IP tunnels and labels the inner
# conversation (it does not open VXLAN): those captures are compared with
# --tunnels inner.
INNER = re.compile(r"(4in4|4in6|6in4|6in6)tunnel")

# (capture file name, protocol, {endpoint, endpoint}) -> why the labels differ.
EXT_LIMIT = ("more than 16 IPv6 extension headers: flowfold stops the walk there (protocol 43, ports 0, "
             "counted ipv6_ext_header_limit); ndpiReader walks the whole chain to the UDP ports")
LATER_FRAGMENTS = ("fragments after the first: flowfold gives them their datagram's ports (fragment table), "
                   "ndpiReader keys them with ports 0")
FUZZ = ("mutated DNS queries (a fuzzed capture): nDPI keeps the name of a different query of the "
        "conversation, or keys a mutated packet differently, depending on which it is fed")
EXPLAINED_FILES = {
    "the-tcpdump-group_libpcap-ipv6_ext_headers.pcap": EXT_LIMIT,
    "ip_fragmented_garbage.pcap": LATER_FRAGMENTS,
}
# The fuzzed capture: exactly these many of its conversations differ.
FUZZ_FILE, FUZZ_DIFFERENCES = "fuzz-2006-06-26-2594.pcap", 8

PROTOCOLS = {6: "TCP", 17: "UDP"}
LINE = re.compile(r"^\s+\d+\s+(TCP|UDP)\s+(\S+)\s+<?->\s+(\S+)\s+.*?\[proto: [^\]/]+/([^\]]+)\](.*)$")


def address(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return address(host.strip("[]")), int(port)


def ndpi_reader(path):
    """{(protocol, frozenset(endpoints)): [(application, category, server name)]} as ndpiReader says."""
    out = subprocess.run(["ndpiReader", "-i", path, "-v", "2"], capture_output=True, text=True, check=True).stdout
    labels = collections.defaultdict(list)
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        protocol, a, b, application, rest = m.groups()
        category = re.search(r"\[cat: ([^\]/]+)/\d+\]", rest)
        server = re.search(r"\[Hostname/SNI: ([^\]]*)\]", rest)
        labels[(protocol, frozenset([endpoint(a), endpoint(b)]))].append(
            (application, category.group(1) if category else "Unspecified", server.group(1) if server else ""))
    return labels


def flowfold_labels(path, *extra):
    proc = run_flowfold("-r", path, "--dpi", "--json", "--idle-timeout", "1d", "--active-timeout", "7d",
                        "--tcp-end-timeout", "1d", *extra)
    labels = collections.defaultdict(set)
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        if r["proto"] not in PROTOCOLS:
            continue
        key = (PROTOCOLS[r["proto"]], frozenset([(address(r["src"]), r["src_port"]), (address(r["dst"]), r["dst_port"])]))
        labels[key].add((r["application"], r["category"], r["server_name"] or ""))
    return labels, proc


def differences(path):
    """The conversations whose labels differ: [(key, ndpiReader's, flowfold's)]."""
    extra = ("--tunnels", "inner") if INNER.search(os.path.basename(path)) else ()
    theirs = ndpi_reader(path)
    ours, _ = flowfold_labels(path, *extra)
    out = []
    for key, labels in theirs.items():
        if len(labels) != 1 or ours.get(key) != {labels[0]}:
            out.append((key, labels, ours.get(key)))
    return out, len(theirs)


@unittest.skipUnless(shutil.which("ndpiReader"), "ndpiReader (libndpi-bin) not installed")
class DpiAgreesWithNdpiReader(unittest.TestCase):
    def check(self, paths):
        self.assertTrue(paths)
        compared = 0
        for path in paths:
            name = os.path.basename(path)
            with self.subTest(capture=name):
                diff, count = differences(path)
                compared += count
                if name == FUZZ_FILE:
                    self.assertEqual(len(diff), FUZZ_DIFFERENCES, FUZZ + "\n" + repr(diff))
                    for key, theirs, _ in diff:
                        self.assertEqual(key[0], "UDP", key)
                elif name in EXPLAINED_FILES:
                    self.assertEqual(len(diff), 1, EXPLAINED_FILES[name] + "\n" + repr(diff))
                    self.assertIsNone(diff[0][2], "explained as keyed differently, yet flowfold has the key")
                else:
                    self.assertEqual(diff, [], "labels differ from ndpiReader's")
        return compared

    def test_the_repositorys_captures(self):
        compared = self.check(sorted(glob.glob(os.path.join(DATA, "*.pcap*"))))
        self.assertGreater(compared, 60)  # sites and KakaoTalk alone hold more

    @unittest.skipUnless(os.path.isdir(NDPI_PCAPS), "nDPI's test captures not beside the repository")
    def test_ndpis_own_test_captures(self):
        compared = self.check(sorted(glob.glob(os.path.join(NDPI_PCAPS, "*.pcap*"))))
        self.assertGreater(compared, 2000)


@unittest.skipUnless(shutil.which("ndpiReader"), "ndpiReader (libndpi-bin) not installed")
class DpiOutputs(unittest.TestCase):
    SITES = os.path.join(DATA, "ntop_nDPI-sites.pcapng")

    def test_text_lines_carry_the_label_and_both_directions_the_same(self):
        # Timeouts as in the comparison: with the defaults a conversation
        # idle for 15 s starts again as a new one, which nDPI meets mid-way.
        proc = run_flowfold("-r", self.SITES, "--dpi", "--text", "--idle-timeout", "1d", "--active-timeout", "7d",
                            "--tcp-end-timeout", "1d")
        theirs = ndpi_reader(self.SITES)
        lines = [l for l in proc.stdout.splitlines() if " app " in l]
        self.assertEqual(len(lines), len(proc.stdout.splitlines()), "every line of a DPI run has its label")
        by_key = collections.defaultdict(set)
        for line in lines:
            m = re.search(r" proto (6|17) (\S+) -> (\S+) .* app (\S+) category (\S+) server_name (\S+) guessed ([01])$",
                          line)
            if not m:
                continue
            proto, a, b, app, category, server, _ = m.groups()
            key = (PROTOCOLS[int(proto)], frozenset([endpoint(a), endpoint(b)]))
            by_key[key].add((app, category, "" if server == "-" else server))
        checked = 0
        for key, labels in theirs.items():
            if key in by_key and " " not in labels[0][2]:
                self.assertEqual(by_key[key], {labels[0]}, key)
                checked += 1
        self.assertGreater(checked, 40)

    def test_counters_add_up_and_are_documented(self):
        _, proc = flowfold_labels(self.SITES)
        stats = stats_of(proc.stderr)
        self.assertEqual(stats["dpi_failures"], 0)
        # Every conversation is settled (named, or its limit), guessed or failed, once.
        self.assertEqual(stats["dpi_settled"] + stats["dpi_guessed"] + stats["dpi_failures"],
                         stats["dpi_conversations"])
        self.assertLessEqual(stats["dpi_unknown"], stats["dpi_conversations"])
        self.assertLessEqual(stats["dpi_packets"], stats["decoded"])
        # ndpiReader's conversations are flowfold's (TCP and UDP at least).
        tcp_udp = len(ndpi_reader(self.SITES))
        self.assertGreaterEqual(stats["dpi_conversations"], tcp_udp)
        check_counters_documented(self, proc.stderr)

    def test_without_dpi_no_label_and_no_dpi_counters(self):
        proc = run_flowfold("-r", self.SITES, "--json")
        self.assertNotIn("application", proc.stdout)
        self.assertNotIn("dpi_", proc.stderr)

    def test_workers_with_a_file_are_refused_with_a_clear_message(self):
        proc = run_flowfold("-r", self.SITES, "--dpi", "--workers", "2", "--json", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("dpi reads a capture file with one worker", proc.stderr)


TIMEOUTS = ("--idle-timeout", "1d", "--active-timeout", "7d", "--tcp-end-timeout", "1d")
SERVER_NAME_FIELDS = {460: "HTTP", 188: "TLS/QUIC", 205: "DNS"}


def ipfix_labels(data):
    """{(protocol, frozenset(endpoints)): {(application, category, server name)}} from IPFIX records,
    with the applicationId's engine and the server name's field kept per record for the checks."""
    records, _ = parse_ipfix_stream(data)
    labels, engines, filed = collections.defaultdict(set), set(), []
    for r in records:
        if r[4][0] not in PROTOCOLS:
            continue
        if 8 in r:
            a, b = str(ipaddress.ip_address(r[8])), str(ipaddress.ip_address(r[12]))
        else:
            a, b = str(ipaddress.ip_address(r[27])), str(ipaddress.ip_address(r[28]))
        sp, dp = int.from_bytes(r[7], "big"), int.from_bytes(r[11], "big")
        key = (PROTOCOLS[r[4][0]], frozenset([(a, sp), (b, dp)]))
        servers = [(eid, r[eid].decode()) for eid in SERVER_NAME_FIELDS if r[eid]]
        labels[key].add((r[96].decode(), r[372].decode(), servers[0][1] if servers else ""))
        engines.add(r[95][0])
        filed.append((r[96].decode(), [eid for eid, _ in servers]))
    return labels, engines, filed


@unittest.skipUnless(shutil.which("ndpiReader"), "ndpiReader (libndpi-bin) not installed")
class DpiInIpfix(unittest.TestCase):
    """Labels in IPFIX (templates 268-271): read back by an independent
    parser and compared with ndpiReader; decoded by ipfixDump, tshark and
    nfcapd/nfdump without errors."""

    SITES = os.path.join(DATA, "ntop_nDPI-sites.pcapng")

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="flowfold-dpi-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ipfix = os.path.join(self.dir, "sites.ipfix")
        run_flowfold("-r", self.SITES, "--dpi", "--ipfix-file", self.ipfix, *TIMEOUTS)
        with open(self.ipfix, "rb") as f:
            self.data = f.read()

    def test_records_carry_ndpireaders_labels(self):
        labels, engines, filed = ipfix_labels(self.data)
        self.assertEqual(engines, {22}, "applicationId's classification engine is 22, ntop nDPI")
        theirs = ndpi_reader(self.SITES)
        checked = 0
        for key, want in theirs.items():
            if want[0][2] and "." not in want[0][2]:
                continue  # a server name that is not a host name (none here) would go nowhere
            self.assertEqual(labels.get(key), {want[0]}, key)
            checked += 1
        self.assertGreater(checked, 50)
        # Each server name is in the field of its protocol.
        for name, fields in filed:
            if fields:
                self.assertEqual(len(fields), 1, name)
                proto = name.split(".")[0]
                self.assertIn(proto, SERVER_NAME_FIELDS[fields[0]], (name, fields))

    def test_ipfixdump_reads_every_record_without_complaint(self):
        need("ipfixDump")
        proc = subprocess.run(["ipfixDump", "--in", self.ipfix], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotRegex(proc.stdout + proc.stderr, r"(?i)error|warn|malformed")
        self.assertIn("applicationName : (len: 10) TLS.TikTok", proc.stdout)
        self.assertIn("(35632/188)", proc.stdout)

    def test_tshark_decodes_the_application_elements(self):
        need("tshark")
        from test_collectors import write_udp_pcap
        datagrams, off = [], 0
        while off < len(self.data):
            length = int.from_bytes(self.data[off + 2:off + 4], "big")
            datagrams.append(self.data[off:off + length])
            off += length
        pcap = os.path.join(self.dir, "ipfix.pcap")
        write_udp_pcap(pcap, datagrams, 4739)
        fields = subprocess.run(["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=|",
                                 "-e", "cflow.appl_id.classification_engine_id", "-e", "cflow.appl_name",
                                 "-e", "cflow.application_category_name", "-e", "cflow.pie.ntop.ssl_server_name"],
                                capture_output=True, text=True, check=True).stdout
        engines, names, categories, snis = set(), [], [], []
        for line in fields.splitlines():
            e, n, c, sni = line.split("|")
            engines.update(v for v in e.split(",") if v)
            names += [v for v in n.split(",") if v]
            categories += [v for v in c.split(",") if v]
            snis += [v for v in sni.split(",") if v]
        self.assertEqual(engines, {"22"})
        records, _ = parse_ipfix_stream(self.data)
        self.assertEqual(sorted(names), sorted(r[96].decode() for r in records if 96 in r))
        self.assertEqual(len(categories), len(names))
        self.assertIn("www.badoo.com", snis)
        expert = subprocess.run(["tshark", "-n", "-r", pcap, "-q", "-z", "expert,error"],
                                capture_output=True, text=True, check=True).stdout
        self.assertNotIn("Malformed", expert)

    def test_nfdump_keeps_the_application_id(self):
        # nfdump 1.7.1 keeps applicationId (its NBAR extension) and drops the
        # names. It prints the 4 octets in its own NBAR reading (not as
        # engine..id), so what is checked is that it keeps one id per record
        # and tells the applications apart exactly as the records do.
        nfcapd = Nfcapd(self.dir)
        try:
            run_flowfold("-r", self.SITES, "--dpi", "-n", nfcapd.address, *TIMEOUTS)
        finally:
            nfcapd.stop()
        out = subprocess.run(["nfdump", "-R", nfcapd.dir, "-q", "-N", "-6", "-o", "fmt:%sa|%sp|%da|%dp|%nbid"],
                             capture_output=True, text=True, check=True).stdout
        theirs = {}
        for line in out.splitlines():
            if line.strip():
                sa, sp, da, dp, nbid = [c.strip() for c in line.split("|")]
                theirs[(address(sa), int(sp), address(da), int(dp))] = nbid
        records, _ = parse_ipfix_stream(self.data)
        ours = {}
        for r in records:
            a, b = (r[8], r[12]) if 8 in r else (r[27], r[28])
            ours[(str(ipaddress.ip_address(a)), int.from_bytes(r[7], "big"), str(ipaddress.ip_address(b)),
                  int.from_bytes(r[11], "big"))] = int.from_bytes(r[95], "big")
        self.assertEqual(set(theirs), set(ours))
        pairs = {(ours[k], theirs[k]) for k in ours}
        self.assertEqual(len(pairs), len({i for i, _ in pairs}), "one nfdump id per application")
        self.assertEqual(len(pairs), len({n for _, n in pairs}), "applications told apart")
        self.assertGreater(len(pairs), 30)

    def test_biflow_and_libfixbuf_are_refused_with_dpi(self):
        proc = run_flowfold("-r", self.SITES, "--dpi", "--ipfix-file", os.path.join(self.dir, "x.ipfix"),
                            "--ipfix-encoder", "libfixbuf", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("DPI labels go out with the direct encoder only", proc.stderr)
        cfg = os.path.join(self.dir, "biflow.yaml")
        with open(cfg, "w") as f:
            f.write("dpi: true\nexporters:\n  - type: ipfix\n    transport: file\n    path: %s\n    biflow: true\n"
                    % os.path.join(self.dir, "y.ipfix"))
        proc = run_flowfold("-c", cfg, "-r", self.SITES, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("biflow records do not carry DPI labels yet", proc.stderr)


from test_mysql import MysqlTest  # noqa: E402 (after the helpers above)


@unittest.skipUnless(shutil.which("ndpiReader"), "ndpiReader (libndpi-bin) not installed")
class DpiInMysql(MysqlTest):
    """The MySQL rows carry the labels: `application`, `category`,
    `server_name`, `app_guessed`, equal to ndpiReader's per conversation."""

    SITES = os.path.join(DATA, "ntop_nDPI-sites.pcapng")

    def test_rows_carry_ndpireaders_labels(self):
        dsn = "mysql://root@%s/%s?table=flows&spool_dir=%s" % (self.db.dsn_host, self.database, self.path("spool"))
        run_flowfold("-r", self.SITES, "--dpi", "--mysql", dsn, *TIMEOUTS)
        rows = self.db.query("SELECT protocol, INET6_NTOA(src_ip), src_port, INET6_NTOA(dest_ip), dest_port, "
                             "application, category, IFNULL(server_name, ''), app_guessed FROM %s.flows"
                             % self.database)
        self.assertTrue(rows)
        ours = collections.defaultdict(set)
        for proto, sa, sp, da, dp, app, cat, server, guessed in rows:
            self.assertIsNotNone(app)
            self.assertIn(guessed, ("0", "1"))
            if int(proto) in PROTOCOLS:
                ours[(PROTOCOLS[int(proto)], frozenset([(address(sa), int(sp)), (address(da), int(dp))]))].add(
                    (app, cat, server))
        theirs = ndpi_reader(self.SITES)
        for key, want in theirs.items():
            self.assertEqual(ours.get(key), {want[0]}, key)
        self.assertGreater(len(theirs), 50)


if __name__ == "__main__":
    unittest.main()
