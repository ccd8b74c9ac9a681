"""What privileges each thread of a live flowfold holds, read from
/proc/PID/task/*/status, in the two ways it is started: as root that switches
to `user:`, and as the systemd unit starts it (a plain user with the unit's
AmbientCapabilities and CapabilityBoundingSet, emulated with setpriv).

Once the capture is open, the capture threads ("ff-cap-*") keep CAP_NET_RAW
alone, to reopen the capture; every other thread (main, export, metrics) has
no capability; in every thread the ambient, inheritable and bounding sets are
empty and no_new_privs is set. The capture must still reopen after its
interface goes down and comes back, in promiscuous mode.

Runs in two private network namespaces joined by a veth pair (netns.py)."""

import json
import os
import re
import signal
import subprocess
import sys
import unittest

from harness import FLOWFOLD, TempDirTest, free_tcp_port, wait_for
from netns import VethPair, require_netns

CAP_NET_RAW = 13
UDP_PORT = 9999
UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "systemd",
                    "flowfold.service")

_SCRAPE = r"""
import sys, urllib.request
print(urllib.request.urlopen("http://[::1]:%s/metrics" % sys.argv[1], timeout=5).read().decode())
"""


def unit_capabilities(key):
    """The capabilities a key of the packaged unit lists, as setpriv names them."""
    with open(UNIT) as f:
        for line in f:
            if line.startswith(key + "="):
                return [c.lower().removeprefix("cap_") for c in line.split("=", 1)[1].split()]
    raise AssertionError("%s has no %s= line" % (UNIT, key))


def thread_privileges(pid):
    """{tid: {"comm", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Uid"}} from /proc."""
    threads = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                comm = f.read().strip()
            with open(base + "status") as f:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        t = {"comm": comm, "Uid": status["Uid"], "NoNewPrivs": int(status["NoNewPrivs"])}
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            t[key] = int(status[key], 16)
        threads[int(tid)] = t
    return threads


class PrivilegesTest(TempDirTest):

    def setUp(self):
        super().setUp()
        require_netns()
        for tool in ("setpriv",):
            if subprocess.run(["which", tool], capture_output=True).returncode != 0:
                self.skipTest(tool + " is not installed")
        try:
            subprocess.run(["getent", "passwd", "nobody"], check=True, capture_output=True)
            subprocess.run(["getent", "group", "nogroup"], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            self.skipTest("no nobody:nogroup")
        # IPv6 on, so that the metrics endpoint can listen on [::1] in namespace b.
        self.pair = VethPair("ffprivs", ipv6=True).__enter__()
        self.addCleanup(self.pair.__exit__, None, None, None)
        os.chmod(self.tmp, 0o777)  # flowfold runs as nobody and writes here
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # ------------------------------------------------------------ helpers

    def start(self, launcher, config_text, out):
        cfg = self.path("flowfold.yaml")
        self.metrics_port = free_tcp_port()
        with open(cfg, "w") as f:
            f.write(config_text + "metrics:\n  listen: '[::1]:%d'\n" % self.metrics_port)
        os.chmod(cfg, 0o644)
        self.log_path = self.path("flowfold.log")
        log = open(self.log_path, "w")
        self.addCleanup(log.close)
        p = self.pair.popen_in("b", [*launcher, FLOWFOLD, "-c", cfg, "-i", self.pair.if_b, "--json=" + out,
                                     "udp port %d" % UDP_PORT], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        wait_for(lambda: "capturing on" in self.log() or p.poll() is not None, "flowfold to start capturing")
        self.assertIsNone(p.poll(), self.log())
        return p

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def decoded(self):
        r = self.pair.run_in("b", [sys.executable, "-c", _SCRAPE, str(self.metrics_port)])
        for line in r.stdout.splitlines():
            if line.startswith("flowfold_packets_decoded_total "):
                return int(line.split()[-1])
        return 0

    def send_udp(self, count):
        listener = self.pair.udp_listener("b", UDP_PORT, count)
        self.pair.send_udp("a", self.pair.addr_b, UDP_PORT, count, 100, source_port=40100)
        self.assertEqual(listener.result()["received"], count)

    def promiscuity(self):
        """How many holders keep the interface promiscuous (a packet socket's
        PACKET_MR_PROMISC membership counts here, not in the PROMISC flag)."""
        r = self.pair.run_in("b", ["ip", "-d", "-j", "link", "show", "dev", self.pair.if_b])
        return json.loads(r.stdout)[0]["promiscuity"]

    def check_threads(self, pid):
        threads = thread_privileges(pid)
        described = "\n".join("%d %-15s Prm=%x Eff=%x Inh=%x Bnd=%x Amb=%x NoNewPrivs=%d" % (
            tid, t["comm"], t["CapPrm"], t["CapEff"], t["CapInh"], t["CapBnd"], t["CapAmb"], t["NoNewPrivs"])
            for tid, t in sorted(threads.items()))
        for tid, t in threads.items():
            self.assertTrue(all(int(u) == 65534 for u in t["Uid"].split()), described)
            self.assertEqual(t["CapBnd"], 0, "bounding set not empty:\n" + described)
            self.assertEqual(t["CapAmb"], 0, "ambient set not empty:\n" + described)
            self.assertEqual(t["CapInh"], 0, "inheritable set not empty:\n" + described)
            self.assertEqual(t["NoNewPrivs"], 1, "no_new_privs not set:\n" + described)
            want = 1 << CAP_NET_RAW if t["comm"].startswith("ff-cap-") else 0
            self.assertEqual(t["CapPrm"], want, "permitted set of %s:\n%s" % (t["comm"], described))
            self.assertEqual(t["CapEff"], want, "effective set of %s:\n%s" % (t["comm"], described))
        # Named threads, so that the capture threads are told from the others.
        names = [t["comm"] for t in threads.values()]
        self.assertIn("ff-metrics", names, described)
        self.assertTrue(any(n.startswith("ff-cap-") for n in names), described)
        self.assertGreaterEqual(len(threads), 4, "main, export, metrics and capture threads:\n" + described)

    def run_and_check(self, launcher, config_text):
        out = self.path("flows.json")
        ff = self.start(launcher, config_text, out)
        self.check_threads(ff.pid)  # settled before "capturing on" is logged
        self.assertIn("every other thread none; bounding set empty; no_new_privs set", self.log())
        self.assertIn("metrics on http://[::1]:%d/metrics" % self.metrics_port, self.log())

        # The capture reopens with what the capture thread kept, in promiscuous mode.
        self.send_udp(10)
        wait_for(lambda: self.decoded() >= 10, "flowfold to decode 10 packets")
        self.pair.run_in("b", ["ip", "link", "set", self.pair.if_b, "down"])
        wait_for(lambda: "failed" in self.log(), "the interface-down warning")
        self.pair.run_in("b", ["ip", "link", "set", self.pair.if_b, "up"])
        wait_for(lambda: "resumed" in self.log(), "capture to resume: " + self.log())
        self.assertGreaterEqual(self.promiscuity(), 1, "the reopened capture is not promiscuous")
        self.assertNotIn("promiscuous mode not permitted", self.log())
        self.pair.run_in("a", ["ip", "link", "set", self.pair.if_a, "up"])
        self.send_udp(15)
        wait_for(lambda: self.decoded() >= 25, "flowfold to decode 25 packets")
        self.check_threads(ff.pid)  # the same after the reopen

        ff.send_signal(signal.SIGTERM)
        ff.wait(timeout=30)
        self.assertEqual(ff.returncode, 0, self.log())
        with open(out) as f:
            self.assertEqual(sum(json.loads(line)["packets"] for line in f), 25)

    # ------------------------------------------------------------ tests

    def test_as_root_with_user_only_the_capture_threads_keep_net_raw(self):
        self.run_and_check([], "user: nobody\n")

    def test_as_the_unit_starts_it_only_the_capture_threads_keep_net_raw(self):
        ambient = unit_capabilities("AmbientCapabilities")
        bounding = unit_capabilities("CapabilityBoundingSet")
        caps = ",".join("+" + c for c in ambient)
        self.run_and_check(["setpriv", "--reuid=nobody", "--regid=nogroup", "--init-groups",
                            "--inh-caps=-all," + caps, "--ambient-caps=-all," + caps,
                            "--bounding-set=-all," + ",".join("+" + c for c in bounding)], "")

    def test_with_only_net_raw_the_capture_opens_and_reopens_but_the_bounding_set_stays(self):
        # Without CAP_SETPCAP (file capabilities, a unit that does not grant it)
        # the bounding set cannot be emptied: flowfold says so and goes on.
        out = self.path("flows.json")
        ff = self.start(["setpriv", "--reuid=nobody", "--regid=nogroup", "--init-groups", "--inh-caps=-all,+net_raw",
                         "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw"], "", out)
        for t in thread_privileges(ff.pid).values():
            self.assertEqual(t["CapBnd"], 1 << CAP_NET_RAW, t)
            self.assertEqual(t["CapAmb"], 0, t)
            self.assertEqual(t["NoNewPrivs"], 1, t)
            self.assertEqual(t["CapEff"], (1 << CAP_NET_RAW) if t["comm"].startswith("ff-cap-") else 0, t)
        self.assertIn("bounding set as given (no CAP_SETPCAP to empty it)", self.log())
        self.pair.run_in("b", ["ip", "link", "set", self.pair.if_b, "down"])
        wait_for(lambda: "failed" in self.log(), "the interface-down warning")
        self.pair.run_in("b", ["ip", "link", "set", self.pair.if_b, "up"])
        wait_for(lambda: "resumed" in self.log(), "capture to resume: " + self.log())
        self.assertGreaterEqual(self.promiscuity(), 1, "the reopened capture is not promiscuous")
        self.assertNotIn("promiscuous mode not permitted", self.log())
        ff.send_signal(signal.SIGTERM)
        ff.wait(timeout=30)
        self.assertEqual(ff.returncode, 0, self.log())

    def test_an_exporter_that_cannot_start_ends_the_waiting_capture_threads_cleanly(self):
        # The capture threads start before the exporters: when one cannot
        # start, they must end and the exit status say so (1), not abort.
        cfg = self.path("flowfold.yaml")
        with open(cfg, "w") as f:
            f.write("user: nobody\n")
        r = self.pair.run_in("b", [FLOWFOLD, "-c", cfg, "-i", self.pair.if_b,
                                   "--ipfix-file=" + self.path("no-such-dir/out.ipfix")], check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn("terminate", r.stderr)


if __name__ == "__main__":
    unittest.main()
