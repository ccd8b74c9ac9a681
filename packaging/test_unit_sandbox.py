#!/usr/bin/python3
"""The installed flowfold run as its systemd unit runs it, with every exporter
type in turn, each checked against the packaged sample capture's truth.

"As the unit runs it" is read from the INSTALLED unit file
(/lib/systemd/system/flowfold.service, or $FLOWFOLD_UNIT), not from a copy:

 * filesystem: ProtectSystem=strict + the unit's writable paths. In a new
   mount namespace (unshare --mount --propagation private) every mount but
   /proc, /sys and /dev is remounted read-only (bind,ro), then
   /var/lib/<StateDirectory>, /var/log/<LogsDirectory> (made beforehand,
   owned by User:Group with the unit's *DirectoryMode, as systemd makes them)
   and each existing ReadWritePaths entry ('-' = optional) are bind-mounted
   onto themselves read-write; PrivateTmp=yes puts fresh tmpfs on /tmp and
   /var/tmp. The layout is verified (statvfs) before flowfold starts.
 * process: setpriv --reuid=User --regid=Group --init-groups with
   AmbientCapabilities as the inheritable and ambient sets,
   CapabilityBoundingSet as the bounding set, NoNewPrivileges, the unit's
   UMask and WorkingDirectory, and a clean environment.

Cases (each against /usr/share/doc/flowfold/examples/captures/sample.pcap,
compared per flow key with the repository's examples/captures/sample.truth.tsv):
  check-config   the unit's ExecStartPre (the ExecStart configuration) passes
  ipfix-udp      a real nfcapd on 127.0.0.1, read back with nfdump
  netflow9-udp   the same with NetFlow v9
  ipfix-tcp      a TCP collector here; the stream decoded by harness.parse_ipfix_stream
  ipfix-file     /var/log/flowfold (LogsDirectory=), decoded the same way
  text, json     /var/log/flowfold, every line parsed
  read-only      a directory the flowfold user may write outside the sandbox
                 (checked by the same run without the namespace) is refused
                 inside it: exit 1, "Read-only file system"
  mysql          a real MariaDB (tests/integration/mariadb.py), the sink's
                 DEFAULT spool (/var/spool/flowfold/mysql/...); rows summed
                 per key with the mariadb client

Needs root, the installed package, nfcapd/nfdump and mariadb-server.
Exits 1 when any case fails. Usage: /usr/bin/python3 packaging/test_unit_sandbox.py
"""

import json
import os
import pwd
import grp
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

UNIT = os.environ.get("FLOWFOLD_UNIT", "/lib/systemd/system/flowfold.service")
FLOWFOLD = "/usr/sbin/flowfold"
CAPTURES = "/usr/share/doc/flowfold/examples/captures"
SAMPLE = os.path.join(CAPTURES, "sample.pcap")
# The truth is not packaged (packaging/CMakeLists.txt excludes *.truth.tsv): the
# repository's copy, the truth of the very capture the package installs.
TRUTH = os.path.join(HERE, "..", "examples", "captures", "sample.truth.tsv")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
API_FS = ("/proc", "/sys", "/dev")  # ProtectSystem=strict leaves these alone
RUN_TIMEOUT_S = 300


# ---------------------------------------------------------------- the unit file

def read_unit(path):
    """[Service] of a unit file: {key: [values in order]} (continuation lines joined)."""
    service, section, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                key, value = line.split("=", 1)
                service.setdefault(key.strip(), []).append(value.strip())
    return service


def last(service, key, default=None):
    return service[key][-1] if service.get(key) else default


def yes(value):
    return str(value).lower() in ("1", "yes", "true", "on")


def caps_list(values):
    """'CAP_NET_RAW CAP_SETPCAP' lines -> ['net_raw', 'setpcap'] (an empty assignment resets)."""
    caps = []
    for v in values:
        if not v:
            caps = []
            continue
        if v.startswith("~"):
            raise AssertionError("inverted capability sets (%r) are not modelled by this test" % v)
        caps += [c.lower().removeprefix("cap_") for c in v.split()]
    return caps


def exec_argv(line):
    """ExecStart= value without its special prefixes (-@:+!)."""
    return shlex.split(line.lstrip("-@:+!"))


class Unit:
    def __init__(self, path):
        s = read_unit(path)
        self.path = path
        self.user = last(s, "User")
        self.group = last(s, "Group", self.user)
        if not self.user:
            raise AssertionError("%s has no User=" % path)
        self.ambient = caps_list(s.get("AmbientCapabilities", []))
        self.bounding = caps_list(s.get("CapabilityBoundingSet", [])) if "CapabilityBoundingSet" in s else None
        self.no_new_privs = yes(last(s, "NoNewPrivileges", "no"))
        self.protect_system = last(s, "ProtectSystem", "no")
        if self.protect_system != "strict":
            raise AssertionError("ProtectSystem=%s: this test models ProtectSystem=strict" % self.protect_system)
        self.private_tmp = yes(last(s, "PrivateTmp", "no"))
        self.umask = int(last(s, "UMask", "0022"), 8)
        self.workdir = last(s, "WorkingDirectory", "/").lstrip("-")
        # systemd makes these, owned by User:Group, with their *Mode (default 0755).
        self.made_dirs = []
        for key, base in (("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log")):
            mode = int(last(s, key + "Mode", "0755"), 8)
            for v in s.get(key, []):
                self.made_dirs += [(os.path.join(base, d), mode) for d in v.split()]
        self.rw_paths = []  # (path, optional)
        for v in s.get("ReadWritePaths", []):
            for p in v.split():
                optional = p.startswith("-")
                self.rw_paths.append((p.lstrip("-+"), optional))
        starts = s.get("ExecStart", [])
        if not starts:
            raise AssertionError("%s has no ExecStart=" % path)
        self.exec_start = exec_argv(starts[-1])
        self.exec_start_pre = [exec_argv(v) for v in s.get("ExecStartPre", [])]
        argv = self.exec_start
        self.config = None
        for i, a in enumerate(argv):
            if a in ("-c", "--config") and i + 1 < len(argv):
                self.config = argv[i + 1]
            elif a.startswith("--config="):
                self.config = a.split("=", 1)[1]
        if argv[0] != FLOWFOLD:
            raise AssertionError("ExecStart runs %s, not %s" % (argv[0], FLOWFOLD))

    def prepare_dirs(self):
        """What systemd does before ExecStart for StateDirectory=/LogsDirectory=."""
        uid, gid = pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.group).gr_gid
        for d, mode in self.made_dirs:
            os.makedirs(d, exist_ok=True)
            os.chown(d, uid, gid)
            os.chmod(d, mode)

    def writable(self):
        paths = [d for d, _ in self.made_dirs]
        for p, optional in self.rw_paths:
            if os.path.exists(p):
                paths.append(p)
            elif not optional:
                raise AssertionError("ReadWritePaths=%s does not exist (systemd would fail the unit)" % p)
        return paths

    def setpriv(self):
        args = ["setpriv", "--reuid=" + self.user, "--regid=" + self.group, "--init-groups"]
        if self.ambient:
            caps = ",".join("+" + c for c in self.ambient)
            args += ["--inh-caps=" + caps, "--ambient-caps=" + caps]
        if self.bounding is not None:
            args.append("--bounding-set=-all" + "".join(",+" + c for c in self.bounding))
        if self.no_new_privs:
            args.append("--no-new-privs")
        return args + ["--"]


# ---------------------------------------------------------------- inside the namespace

def unescape_mountinfo(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def under(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def inside(spec_path):
    """Runs as root in the new mount namespace: lays out the filesystem, checks
    it, then becomes the unit's user and execs flowfold."""
    with open(spec_path) as f:
        spec = json.load(f)

    def sh(*args):
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write("sandbox: %s failed: %s\n" % (" ".join(args), r.stderr.strip()))
            sys.exit(125)

    seen = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = unescape_mountinfo(line.split()[4])
            if mp not in seen and not under(mp, API_FS):
                seen.append(mp)
    for mp in seen:
        sh("mount", "-o", "remount,bind,ro", mp)
    for p in spec["writable"]:
        sh("mount", "--bind", p, p)
        sh("mount", "-o", "remount,bind,rw", p)
    for t in spec["tmpfs"]:
        sh("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", t)

    # The layout, checked: read-only everywhere but the writable set.
    def read_only(p):
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    for p in ["/", "/etc", "/usr", "/var", "/run", "/var/cache"] + seen:
        if os.path.isdir(p) and not under(p, spec["writable"] + spec["tmpfs"] + list(API_FS)) and not read_only(p):
            sys.stderr.write("sandbox: %s is still writable\n" % p)
            sys.exit(125)
    for p in spec["writable"] + spec["tmpfs"]:
        if read_only(p):
            sys.stderr.write("sandbox: %s is read-only\n" % p)
            sys.exit(125)

    os.chdir(spec["cwd"])
    os.umask(spec["umask"])
    argv = spec["setpriv"] + spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


# ---------------------------------------------------------------- outside: the cases

class Sandbox:
    def __init__(self, unit, confdir):
        self.unit = unit
        self.confdir = confdir
        unit.prepare_dirs()
        self.spec = {
            "writable": unit.writable(),
            "tmpfs": ["/tmp", "/var/tmp"] if unit.private_tmp else [],
            "setpriv": unit.setpriv(),
            "cwd": unit.workdir,
            "umask": unit.umask,
            "env": {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"},
        }
        self.n = 0

    def run(self, argv, sandboxed=True):
        """flowfold ARGV as the unit runs it (sandboxed=False: the same user,
        capabilities and environment without the mount namespace)."""
        self.n += 1
        spec = dict(self.spec, argv=argv)
        if sandboxed:
            path = os.path.join(self.confdir, "spec-%d.json" % self.n)
            with open(path, "w") as f:
                json.dump(spec, f)
            cmd = ["unshare", "--mount", "--propagation", "private", "--",
                   "/usr/bin/python3", os.path.abspath(__file__), "--inside", path]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                  env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"})
        return subprocess.run(spec["setpriv"] + argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              env=spec["env"], cwd=spec["cwd"],
                              preexec_fn=lambda: os.umask(spec["umask"]))

    def config(self, name, exporter_yaml):
        path = os.path.join(self.confdir, name + ".yaml")
        with open(path, "w") as f:
            f.write("exporters:\n" + exporter_yaml)
        os.chmod(path, 0o644)
        return path

    def flowfold(self, name, exporter_yaml, sandboxed=True):
        return self.run([FLOWFOLD, "-c", self.config(name, exporter_yaml), "-r", SAMPLE], sandboxed)


class CaseFailed(Exception):
    pass


def check_exit(proc, want=0):
    if proc.returncode == 125:
        raise CaseFailed("the sandbox could not be built: " + proc.stderr.strip())
    if proc.returncode != want:
        raise CaseFailed("flowfold exited %d (want %d): %s" % (proc.returncode, want, proc.stderr.strip()[-1500:]))


def compare(got, want):
    from harness import totals
    if got == want:
        return "%d flows, %d packets, %d bytes as in the truth" % totals(want)
    missing = [k for k in want if k not in got][:3]
    extra = [k for k in got if k not in want][:3]
    differ = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:3]
    raise CaseFailed("flows differ: got %s keys/packets/bytes, want %s; missing %s extra %s differ %s" %
                     (totals(got), totals(want), missing, extra, differ))


def json_flows(path):
    from harness import add_flow, norm_addr
    flows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            add_flow(flows, (r["proto"], norm_addr(r["src"]), r["src_port"], norm_addr(r["dst"]), r["dst_port"],
                             r["vlan"]), r["packets"], r["bytes"])
    return flows


TEXT = re.compile(r"^\S+Z \S+Z proto (\d+) (\S+) -> (\S+)(?: icmp (\d+)\.(\d+))? vlan (\d+) pkts (\d+) bytes (\d+) ")


def endpoint(text):
    """'1.2.3.4:80' / '[::1]:80' -> (address, port); ICMP: no port."""
    m = re.match(r"^\[(.*)\]:(\d+)$", text) or re.match(r"^([^:]+):(\d+)$", text)
    return (m.group(1), int(m.group(2))) if m else (text, 0)


def text_flows(path):
    from harness import add_flow, norm_addr
    flows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            m = TEXT.match(line)
            if not m:
                raise CaseFailed("%s line %d is not a flow line: %r" % (path, n, line[:200]))
            proto, src, dst, itype, icode, vlan, pkts, byts = m.groups()
            (sa, sp), (da, dp) = endpoint(src), endpoint(dst)
            if itype is not None:
                dp = int(itype) * 256 + int(icode)
            add_flow(flows, (int(proto), norm_addr(sa), sp, norm_addr(da), dp, int(vlan)), int(pkts), int(byts))
    return flows


def owned_by_unit_user(path, unit):
    st = os.stat(path)
    if st.st_uid != pwd.getpwnam(unit.user).pw_uid:
        raise CaseFailed("%s is owned by uid %d, not %s" % (path, st.st_uid, unit.user))
    if st.st_mode & unit.umask:
        raise CaseFailed("%s has mode %o despite UMask=%04o" % (path, st.st_mode & 0o7777, unit.umask))


def main():
    if os.geteuid() != 0:
        print("test_unit_sandbox: needs root")
        return 1
    from harness import Nfcapd, free_tcp_port, ipfix_flows, parse_ipfix_stream, read_truth

    unit = Unit(UNIT)
    truth = read_truth(TRUTH)
    work = tempfile.mkdtemp(prefix="flowfold-unit-sandbox-")  # collectors' files; outside the sandbox
    # Configurations: readable by the unit's user, on a path that stays visible
    # (read-only) inside; /tmp is replaced there by PrivateTmp.
    confdir = tempfile.mkdtemp(prefix="flowfold-unit-sandbox-", dir="/run")
    os.chmod(confdir, 0o755)
    logs = [d for d, _ in unit.made_dirs if d.startswith("/var/log/")]
    # Without LogsDirectory= the documented home is still tried: flowfold's own
    # refusal (read-only) is then what fails the file cases.
    logdir = logs[0] if logs else "/var/log/flowfold"
    spool_root = "/var/spool/flowfold/mysql"
    spool_root_existed = os.path.exists(spool_root)
    probe_dir = "/var/cache/flowfold-unit-sandbox-probe"
    outputs = []
    print("unit %s: User=%s Group=%s ambient=%s bounding=%s NoNewPrivileges=%s ProtectSystem=%s PrivateTmp=%s "
          "UMask=%04o config=%s" % (unit.path, unit.user, unit.group, ",".join(unit.ambient),
                                    ",".join(unit.bounding or []), unit.no_new_privs, unit.protect_system,
                                    unit.private_tmp, unit.umask, unit.config))
    sb = Sandbox(unit, confdir)
    print("writable inside: %s; tmpfs: %s" % (" ".join(sb.spec["writable"]), " ".join(sb.spec["tmpfs"])))

    def case_check_config():
        if not unit.exec_start_pre:
            raise CaseFailed("the unit has no ExecStartPre to run")
        for argv in unit.exec_start_pre:
            check_exit(sb.run(argv))
        return "%s passes inside the sandbox" % " ".join(unit.exec_start_pre[0])

    def case_nfcapd(kind):
        def case():
            collector = Nfcapd(work, name="nfcapd-" + kind)
            try:
                proc = sb.flowfold(kind, "  - type: %s\n    collector: %s\n    transport: udp\n" %
                                   (kind, collector.address))
            finally:
                collector.stop()
            check_exit(proc)
            return compare(collector.flows()[0], truth) + " (nfdump)"
        return case

    def case_ipfix_tcp():
        port = free_tcp_port()
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(RUN_TIMEOUT_S)
        received = bytearray()

        def collect():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return
                    received.extend(chunk)
        t = threading.Thread(target=collect, daemon=True)
        t.start()
        try:
            proc = sb.flowfold("ipfix-tcp", "  - type: ipfix\n    collector: 127.0.0.1:%d\n    transport: tcp\n" % port)
            t.join(timeout=60)
        finally:
            server.close()
        check_exit(proc)
        if t.is_alive():
            raise CaseFailed("the TCP connection was not closed")
        records, _ = parse_ipfix_stream(bytes(received))
        return compare(ipfix_flows(records), truth) + " (%d bytes of stream)" % len(received)

    def file_case(name, suffix, exporter, reader):
        def case():
            path = os.path.join(logdir, "unit-sandbox-test." + suffix)
            outputs.append(path)
            if os.path.exists(path):
                os.unlink(path)
            check_exit(sb.flowfold(name, exporter % path))
            if not os.path.exists(path):
                raise CaseFailed("%s was not written" % path)
            owned_by_unit_user(path, unit)
            return compare(reader(path), truth) + " in " + path
        return case

    def read_ipfix_file(path):
        with open(path, "rb") as f:
            return ipfix_flows(parse_ipfix_stream(f.read())[0])

    def case_read_only():
        # A directory the unit's user may write: outside the sandbox the run
        # writes there (so a refusal inside is the sandbox's doing, not permissions).
        shutil.rmtree(probe_dir, ignore_errors=True)
        os.makedirs(probe_dir)
        os.chown(probe_dir, pwd.getpwnam(unit.user).pw_uid, grp.getgrnam(unit.group).gr_gid)
        path = os.path.join(probe_dir, "flows.json")
        exporter = "  - type: json\n    path: %s\n" % path
        check_exit(sb.flowfold("read-only-control", exporter, sandboxed=False))
        compare(json_flows(path), truth)
        os.unlink(path)
        proc = sb.flowfold("read-only", exporter)
        check_exit(proc, want=1)
        if "Read-only file system" not in proc.stderr or path not in proc.stderr:
            raise CaseFailed("exit 1 without a clear message naming %s and EROFS: %s" % (path, proc.stderr.strip()))
        if os.path.exists(path):
            raise CaseFailed("%s was created inside the sandbox" % path)
        msg = [l for l in proc.stderr.splitlines() if "Read-only file system" in l][0].strip()
        return "writable for %s outside (truth delivered), refused inside: %s" % (unit.user, msg)

    def case_mysql():
        from mariadb import MariaDB
        with MariaDB() as db:
            db.sql("CREATE DATABASE unit_sandbox")
            before = set(os.listdir(spool_root)) if os.path.isdir(spool_root) else set()
            proc = sb.flowfold("mysql", "  - type: mysql\n    host: 127.0.0.1\n    port: %d\n    user: root\n"
                               "    database: unit_sandbox\n    table: flows\n" % db.port)
            check_exit(proc)
            spools = sorted(set(os.listdir(spool_root)) - before) if os.path.isdir(spool_root) else []
            if not spools:
                raise CaseFailed("no spool appeared under the default %s" % spool_root)
            owned_by_unit_user(os.path.join(spool_root, spools[0]), unit)
            from harness import add_flow, norm_addr
            flows = {}
            for proto, src, sport, dst, dport, vlan, pkts, byts in db.query(
                    "SELECT protocol, INET6_NTOA(src_ip), src_port, INET6_NTOA(dest_ip), dest_port, vlan, "
                    "SUM(packets), SUM(bytes) FROM unit_sandbox.flows "
                    "GROUP BY protocol, src_ip, src_port, dest_ip, dest_port, vlan"):
                add_flow(flows, (int(proto), norm_addr(src), int(sport), norm_addr(dst), int(dport), int(vlan)),
                         int(pkts), int(byts))
            for s in spools:
                shutil.rmtree(os.path.join(spool_root, s), ignore_errors=True)
            return compare(flows, truth) + " (SQL SUM per key; spool %s/%s)" % (spool_root, spools[0])

    cases = [
        ("check-config", case_check_config),
        ("ipfix-udp", case_nfcapd("ipfix")),
        ("netflow9-udp", case_nfcapd("netflow9")),
        ("ipfix-tcp", case_ipfix_tcp),
        ("ipfix-file", file_case("ipfix-file", "ipfix", "  - type: ipfix\n    transport: file\n    path: %s\n",
                                 read_ipfix_file)),
        ("text", file_case("text", "txt", "  - type: text\n    path: %s\n", text_flows)),
        ("json", file_case("json", "json", "  - type: json\n    path: %s\n", json_flows)),
        ("read-only", case_read_only),
        ("mysql", case_mysql),
    ]
    only = os.environ.get("FLOWFOLD_UNIT_CASES")
    if only:
        cases = [c for c in cases if c[0] in only.split(",")]
    failed = 0
    try:
        for name, case in cases:
            start = time.monotonic()
            try:
                detail = case()
                print("PASS %-13s %5.1fs  %s" % (name, time.monotonic() - start, detail), flush=True)
            except CaseFailed as e:
                failed += 1
                print("FAIL %-13s %5.1fs  %s" % (name, time.monotonic() - start, e), flush=True)
            except Exception:
                failed += 1
                print("FAIL %-13s %5.1fs  %s" % (name, time.monotonic() - start,
                                                 traceback.format_exc().strip()), flush=True)
    finally:
        for p in outputs:
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(probe_dir, ignore_errors=True)
        if not spool_root_existed:
            shutil.rmtree(spool_root, ignore_errors=True)
        if not os.environ.get("FLOWFOLD_KEEP_TEST_DIRS"):
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(confdir, ignore_errors=True)
    print("test_unit_sandbox: %d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inside":
        inside(sys.argv[2])
    sys.exit(main())
