#!/usr/bin/python3
"""packaging/README.md's "First run, as an administrator", run command for
command under a real systemd, with upgrades N -> N+1 -> N+2 checked.

Run by packaging/test-package.sh as
    packaging/with-systemd.sh /usr/bin/python3 packaging/test_walkthrough.py DEB_N DEB_N+1 DEB_N+2
on a machine where flowfold is not installed (the flowfold account may exist:
purge keeps it, and the install must reuse it).

The README's `sh` blocks (each after a `<!-- walkthrough: NAME -->` line) are
run in order with bash -euo pipefail. Substitutions, and only these (each must
match): the .deb names (release 1 -> DEB_N, release 2 -> DEB_N+1), `eth0` ->
the host end of a veth pair, `mariadb ` at the start of a line -> the client of
a private MariaDB (tests/integration/mariadb.py), `port: 3306` -> its port.

Traffic: two flowgen captures (exact truth) replayed with tcpreplay from the
veth pair's other end, in a network namespace of its own. Checked between the
blocks, against flowgen's truth summed per flow key:
  * install: version N, the service neither enabled nor started, the
    account reused (same uid as before, when it existed);
  * start: active, its main process runs as the flowfold user;
  * first batch: the MySQL rows equal its truth once its flows went idle;
    the metrics' flowfold_packets_total equals the packets sent;
  * packets: `flowfold extract --flow-id` of the biggest flow's row gives
    exactly the replayed capture's frames with that row's key, as many as
    MySQL counts;
  * reload: same PID, "reloaded:" logged by it;
  * second batch, held in the cache (flowfold_flows_active > 0), then the
    upgrade: version N+1, a new main PID running the new /usr/sbin/flowfold
    (/proc/PID/exe is the installed file's inode, the old one's was replaced),
    the old PID logged "stopping on signal" and is gone, and MySQL holds both
    batches' truth exactly;
  * a stopped service stays stopped across the upgrade N+1 -> N+2;
  * remove (purge): nfdump reads both batches' truth exactly from nfcapd's
    files; /etc/flowfold and the enable link are gone, the account stays.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import (add_flow, flowgen, ipfix_flows, nfdump_flows, norm_addr, parse_ipfix_stream,  # noqa: E402
                     read_truth, totals)
from mariadb import MariaDB  # noqa: E402
from test_recorder import flow_key_of, records_of  # noqa: E402

README = os.path.join(HERE, "README.md")
VETH, PEER = "ffwt0", "ffwt1"
NETNS = "ffwt-src-%d" % os.getpid()
METRICS = "http://127.0.0.1:9108/metrics"
ENABLE_LINK = "/etc/systemd/system/multi-user.target.wants/flowfold.service"


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print("  ok: " + what, flush=True)


def sh(*args, check_rc=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise Failed("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout.strip()


def wait_for(cond, what, limit=60.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.25)
    raise Failed("timed out (%.0f s) waiting for %s" % (limit, what))


def readme_blocks():
    text = open(README).read()
    blocks = re.findall(r"<!-- walkthrough: ([a-z-]+) -->\n```sh\n(.*?)```", text, re.S)
    if not blocks:
        raise Failed("no walkthrough blocks in " + README)
    return blocks


def merge(*truths):
    out = {}
    for t in truths:
        for k, (p, b) in t.items():
            add_flow(out, k, p, b)
    return out


def same(got, want, where):
    if got != want:
        missing = [k for k in want if k not in got][:3]
        extra = [k for k in got if k not in want][:3]
        differ = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:3]
        raise Failed("%s: %s flows/packets/bytes, the truth %s; missing %s extra %s differ %s"
                     % (where, totals(got), totals(want), missing, extra, differ))
    print("  ok: %s equals the truth: %d flows, %d packets, %d bytes" % ((where,) + totals(want)), flush=True)


def ipfix_file_flows():
    """Flows of the IPFIX files the service rotates in its LogsDirectory, each file decoded alone."""
    records = []
    files = sorted(glob.glob("/var/log/flowfold/flows.*.ipfix"))
    check(files and all(re.search(r"/flows\.\d{12}\.ipfix$", f) for f in files),
          "rotated IPFIX files named by their start: %s" % ", ".join(os.path.basename(f) for f in files))
    for f in files:
        with open(f, "rb") as fh:
            records += parse_ipfix_stream(fh.read())[0]
    return ipfix_flows(records)


def metrics():
    try:
        text = urllib.request.urlopen(METRICS, timeout=5).read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(flowfold_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            values[m.group(1)] = values.get(m.group(1), 0) + float(m.group(3))
    return values


def main_pid():
    return int(sh("systemctl", "show", "-p", "MainPID", "--value", "flowfold.service"))


def active():
    return sh("systemctl", "is-active", "flowfold.service", check_rc=False)


def version():
    return sh("dpkg-query", "-W", "-f", "${Version}", "flowfold")


def check_extracted_flow(db, source, extracted):
    """The ring's packets of the flow the README picked (its flow_id, read here from MySQL
    again) are the frames of the replayed capture with that flow's key, in order, as many as
    its rows count."""
    with open("/tmp/flow-id") as f:
        flow_id = int(f.read().strip())
    rows = db.query("SELECT protocol, INET6_NTOA(src_ip), src_port, INET6_NTOA(dest_ip), dest_port, vlan, packets "
                    "FROM flowfold.flows WHERE flow_id = %d" % flow_id)
    check(rows, "MySQL has rows of flow_id %d" % flow_id)
    proto, src, sport, dst, dport, vlan = rows[0][:6]
    key = (int(proto), norm_addr(src), int(sport), norm_addr(dst), int(dport), int(vlan))
    counted = sum(int(r[6]) for r in rows)
    frames = [rec[16:] for _, rec in records_of(extracted)]
    want = [rec[16:] for _, rec in records_of(source)
            if (lambda k: k and (k[0], norm_addr(k[1]), k[2], norm_addr(k[3]), k[4], k[5]))(flow_key_of(rec[16:])) == key]
    check(len(frames) == counted and frames == want,
          "extract --flow-id %d: %d frames, those of the replayed capture with key %s (%d, as MySQL counts)"
          % (flow_id, len(frames), key, counted))


def main():
    debs = [os.path.abspath(d) for d in sys.argv[1:4]]
    if len(debs) != 3:
        print("usage: test_walkthrough.py DEB_N DEB_N+1 DEB_N+2")
        return 2
    vers = [sh("dpkg-deb", "-f", d, "Version") for d in debs]
    for a, b in zip(vers, vers[1:]):
        if subprocess.run(["dpkg", "--compare-versions", b, "gt", a]).returncode != 0:
            raise Failed("%s is not newer than %s" % (b, a))
    if not os.path.isdir("/run/systemd/system"):
        raise Failed("no systemd here: run me through packaging/with-systemd.sh")
    if subprocess.run(["dpkg", "-s", "flowfold"], capture_output=True).returncode == 0:
        raise Failed("flowfold is installed already")
    for p in ("/srv/flows", "/run/nfcapd-flowfold.pid"):
        if os.path.exists(p):
            raise Failed("%s exists: not a clean machine for the walkthrough" % p)
    uid_before = sh("id", "-u", "flowfold", check_rc=False) or None

    pcap1, truth1_path = flowgen("walkthrough-1", "-n", "3000", "-c", "300", "-s", "71")
    pcap2, truth2_path = flowgen("walkthrough-2", "-n", "3000", "-c", "300", "-s", "72")
    truth1, truth2 = read_truth(truth1_path), read_truth(truth2_path)
    both = merge(truth1, truth2)
    blocks = readme_blocks()
    names = [n for n, _ in blocks]
    want_names = ["install", "database", "configure", "start", "first-flows", "packets", "metrics", "reload",
                  "upgrade", "remove"]
    if names != want_names:
        raise Failed("README walkthrough blocks are %s, this test knows %s" % (names, want_names))

    # The capture link: VETH here, PEER in a namespace of its own; quiet (no
    # addresses, no IPv6).
    sh("ip", "netns", "add", NETNS)
    created_srv = False
    db = None
    try:
        sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", PEER, "netns", NETNS)
        sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % VETH)
        sh("ip", "netns", "exec", NETNS, "sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % PEER)
        for ns, dev in ((None, VETH), (NETNS, PEER)):
            pre = ["ip", "netns", "exec", ns] if ns else []
            sh(*pre, "ip", "link", "set", dev, "up")
        db = MariaDB()
        db.start()
        client = "mariadb --no-defaults -S %s -uroot " % db.socket

        def subst(name, body):
            rules = [(r"\./flowfold_[^ ]*-1_amd64\.deb", debs[0]), (r"\./flowfold_[^ ]*-2_amd64\.deb", debs[1]),
                     (r"\beth0\b", VETH), (r"(?m)^mariadb ", client), (r"port: 3306\b", "port: %d" % db.port)]
            for pattern, repl in rules:
                body, n = re.subn(pattern, repl, body)
                used.setdefault(pattern, 0)
                used[pattern] += n
            return body
        used = {}

        def run_block(name):
            body = subst(name, dict(blocks)[name])
            print("== README block %s" % name, flush=True)
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", body], capture_output=True, text=True, timeout=300)
            for line in (r.stdout + r.stderr).splitlines():
                if line.startswith("(Reading database ... ") and "files and directories" not in line:
                    continue
                print("  | " + line)
            if r.returncode != 0:
                raise Failed("README block %s exited %d" % (name, r.returncode))
            return r.stdout

        def replay(pcap, truth, before):
            want = before + totals(truth)[1]
            sh("ip", "netns", "exec", NETNS, "tcpreplay", "-q", "-t", "-i", PEER, pcap)
            wait_for(lambda: metrics().get("flowfold_packets_total", 0) >= want, "%d packets captured" % want, 30)
            got = metrics().get("flowfold_packets_total")
            check(got == want, "flowfold_packets_total = %d = the %d packets sent before + %d replayed"
                  % (got, before, want - before))
            return want

        def sql_flows():
            flows = {}
            for proto, src, sport, dst, dport, vlan, pkts, byts in db.query(
                    "SELECT protocol, INET6_NTOA(src_ip), src_port, INET6_NTOA(dest_ip), dest_port, vlan, "
                    "SUM(packets), SUM(bytes) FROM flowfold.flows "
                    "GROUP BY protocol, src_ip, src_port, dest_ip, dest_port, vlan"):
                add_flow(flows, (int(proto), norm_addr(src), int(sport), norm_addr(dst), int(dport), int(vlan)),
                         int(pkts), int(byts))
            return flows

        def sql_equals(want):
            try:
                return sql_flows() == want
            except Exception:
                return False

        run_block("install")
        created_srv = True
        check(version() == vers[0], "installed version %s" % vers[0])
        check(active() == "inactive", "installing neither starts the service")
        check(sh("systemctl", "is-enabled", "flowfold.service", check_rc=False) == "disabled", "nor enables it")
        uid = sh("id", "-u", "flowfold")
        check(uid_before in (None, uid), "the flowfold account (uid %s) %s" %
              (uid, "was reused" if uid_before else "was created"))
        run_block("database")
        run_block("configure")
        st = os.stat("/etc/flowfold/flowfold.yaml")
        check((st.st_uid, sh("id", "-gn", "flowfold"), st.st_mode & 0o777) == (0, "flowfold", 0o640)
              and st.st_gid == int(sh("id", "-g", "flowfold")), "the rewritten configuration is root:flowfold 0640")
        run_block("start")
        check(active() == "active", "systemctl enable --now: active")
        pid1 = main_pid()
        with open("/proc/%d/status" % pid1) as f:
            uids = re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()
        check(set(uids) == {uid}, "its main process %d runs as the flowfold user (uid %s)" % (pid1, uid))
        check(os.path.islink(ENABLE_LINK), "enabled (%s)" % ENABLE_LINK)
        wait_for(lambda: metrics(), "the metrics endpoint", 20)

        sent = replay(pcap1, truth1, 0)
        wait_for(lambda: sql_equals(truth1), "the first batch's flows in MySQL (idle_timeout 15 s)", 60)
        out = run_block("first-flows")
        check(re.search(r"\b%d\b" % len(truth1), out) is not None, "the README's count query shows %d flows"
              % len(truth1))
        same(sql_flows(), truth1, "MySQL after the first batch")
        for leftover in ("/tmp/flow-id", "/tmp/biggest-flow.pcap"):
            if os.path.exists(leftover):
                os.remove(leftover)
        time.sleep(2)  # the ring's flow log is written at least once a second: these flows are in it by now
        run_block("packets")
        check_extracted_flow(db, pcap1, "/tmp/biggest-flow.pcap")
        out = run_block("metrics")
        check("flowfold_packets_total %d" % sent in out, "the README's curl shows flowfold_packets_total %d" % sent)

        run_block("reload")
        check(active() == "active" and main_pid() == pid1, "reloaded, same PID %d" % pid1)
        wait_for(lambda: "reloaded:" in sh("journalctl", "-u", "flowfold", "_PID=%d" % pid1, "--no-pager", "-o", "cat"),
                 "the reload's log line")
        check(True, "PID %d logged its reload" % pid1)

        sent = replay(pcap2, truth2, sent)
        held = int(metrics().get("flowfold_flows_active", 0))
        check(held > 0, "before the upgrade the old process holds %d flows in its cache" % held)
        old_exe = os.stat("/proc/%d/exe" % pid1)
        run_block("upgrade")
        check(version() == vers[1], "upgraded to %s" % vers[1])
        check(active() == "active", "the service runs after the upgrade")
        pid2 = main_pid()
        check(pid2 != pid1 and not os.path.exists("/proc/%d" % pid1), "restarted: PID %d is gone, PID %d runs"
              % (pid1, pid2))
        new_exe, installed = os.stat("/proc/%d/exe" % pid2), os.stat("/usr/sbin/flowfold")
        check((new_exe.st_dev, new_exe.st_ino) == (installed.st_dev, installed.st_ino)
              and new_exe.st_ino != old_exe.st_ino,
              "PID %d runs the new /usr/sbin/flowfold (inode %d; the old process ran inode %d)"
              % (pid2, new_exe.st_ino, old_exe.st_ino))
        log = sh("journalctl", "-u", "flowfold", "_PID=%d" % pid1, "--no-pager", "-o", "cat")
        check("stopping on signal: exporting every flow before exit" in log, "PID %d flushed at its SIGTERM" % pid1)
        wait_for(lambda: sql_equals(both), "both batches in MySQL", 30)
        same(sql_flows(), both, "MySQL after the upgrade (the %d held flows included)" % held)
        same(ipfix_file_flows(), both, "the rotated IPFIX files in /var/log/flowfold, under the unit's sandbox")

        print("== not in the README: a stopped service stays stopped across an upgrade", flush=True)
        sh("systemctl", "stop", "flowfold.service")
        sh("apt-get", "install", "-y", "-qq", debs[2])
        check(version() == vers[2], "upgraded to %s" % vers[2])
        check(active() == "inactive" and main_pid() == 0, "the stopped service stayed stopped")
        sh("systemctl", "start", "flowfold.service")
        check(active() == "active", "started again with %s (PID %d)" % (vers[2], main_pid()))

        print("== not in the README: the .rpm's scriptlets (packaging/rpm) against this real systemd", flush=True)
        rpm = os.path.join(HERE, "rpm")
        pid3 = main_pid()
        sh("sh", os.path.join(rpm, "preun"), "1")
        check(main_pid() == pid3, "%%preun 1 (upgrade) leaves PID %d running" % pid3)
        sh("sh", os.path.join(rpm, "postun"), "1")
        pid4 = main_pid()
        check(active() == "active" and pid4 not in (0, pid3), "%%postun 1 (upgrade) restarted it: PID %d -> %d"
              % (pid3, pid4))
        sh("sh", os.path.join(rpm, "preun"), "0")
        check(active() == "inactive", "%preun 0 (erase) stopped it")
        sh("sh", os.path.join(rpm, "postun"), "1")
        check(active() == "inactive", "%postun 1 (upgrade) leaves a stopped service stopped")
        sh("sh", os.path.join(rpm, "post"), "2")
        check(sh("id", "-u", "flowfold") == uid, "%post 2 reuses the account")
        sh("systemctl", "start", "flowfold.service")

        run_block("remove")
        check(subprocess.run(["dpkg", "-s", "flowfold"], capture_output=True).returncode != 0, "purged")
        flows, records = nfdump_flows("/srv/flows")
        same(flows, both, "nfcapd's files (%d records, read by nfdump)" % records)
        for p in ("/etc/flowfold", "/var/lib/flowfold", "/var/spool/flowfold", "/var/log/flowfold", ENABLE_LINK):
            check(not os.path.lexists(p), "%s is gone" % p)
        check(sh("id", "-u", "flowfold") == uid, "the flowfold account is kept (uid %s)" % uid)
        for pattern, n in used.items():
            if n == 0:
                raise Failed("the substitution %r matched nothing in the README" % pattern)
        print("test_walkthrough: passed (%d README blocks, %d commands)" %
              (len(blocks), sum(len([l for l in b.splitlines() if l.strip() and not l.startswith(" ")])
                                for _, b in blocks)))
        return 0
    finally:
        if subprocess.run(["dpkg", "-s", "flowfold"], capture_output=True).returncode == 0:
            subprocess.run(["apt-get", "purge", "-y", "-qq", "flowfold"], capture_output=True)
        if os.path.exists("/run/nfcapd-flowfold.pid"):
            subprocess.run(["sh", "-c", 'kill "$(cat /run/nfcapd-flowfold.pid)"'])
            time.sleep(1)
        if created_srv:
            shutil.rmtree("/srv/flows", ignore_errors=True)
        if db is not None:
            db.close()
        subprocess.run(["ip", "netns", "exec", NETNS, "ip", "link", "del", PEER], capture_output=True)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        print("test_walkthrough: FAIL: %s" % e, flush=True)
        sys.exit(1)
