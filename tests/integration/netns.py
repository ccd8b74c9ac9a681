"""Two private network namespaces joined by a veth pair, for live-capture tests.

    with VethPair("ffcap") as pair:
        pair.popen_in("a", [FLOWFOLD, "-i", pair.if_a, ...])
        pair.send_udp("a", pair.addr_b, 9999, count=10, size=100)

Everything happens inside the two namespaces: the veth pair is created in
namespace a with its peer moved straight into namespace b, addresses
(10.200.X.1/30 and .2) and neighbour entries exist only there, and nothing is
added to, or routed through, the namespace the tests run in. Leaving the
`with` block (also on an exception) kills what still runs inside the
namespaces and deletes them, which destroys the veth pair with them.
Namespaces left by a run that was killed are removed by the next run that
uses the same prefix (their names carry the pid).

By default the link is quiet and its packets are what the test sent: IPv6 is
off (no router solicitations, MLD reports or DAD), neighbours are static (no
ARP), and segmentation/receive offloads are off (the capture sees wire-sized
TCP segments, not 64 KB GSO/GRO aggregates).

Python standard library only. Skips (unittest.SkipTest) when not root or
when `ip netns` is unavailable.
"""

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

# How long a helper waits for a condition or a program before failing.
WAIT_LIMIT_S = 30.0

_pair_counter = itertools.count()


def require_netns():
    """Raises unittest.SkipTest unless network namespaces can be used here."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (network namespaces)")
    if shutil.which("ip") is None:
        raise unittest.SkipTest("iproute2 (ip) is not installed")
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if r.returncode != 0:
        raise unittest.SkipTest("ip netns is unavailable: " + r.stderr.strip())


def list_netns():
    """Names of the named network namespaces (ip netns list)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_processes(ns):
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for word in r.stdout.split():
        try:
            os.kill(int(word), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def _delete_netns(ns):
    _kill_netns_processes(ns)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def cleanup_stale(name_prefix):
    """Deletes namespaces of this prefix left behind by a process that is gone."""
    pattern = re.compile(re.escape(name_prefix) + r"-(\d+)-\d+-[ab]$")
    for ns in list_netns():
        m = pattern.match(ns)
        if m and not _pid_alive(int(m.group(1))):
            _delete_netns(ns)


def _wait_for(condition, what, limit=WAIT_LIMIT_S, interval=0.01):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


# ------------------------------------------------- programs run inside a namespace
# Each prints one line when it is ready (socket bound) and one JSON line with
# its result, so the caller waits on output, never on a guess.

_UDP_LISTEN = r"""
import json, socket, sys
addr, port, count, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((addr, port))
s.settimeout(idle)
print("ready", flush=True)
sizes, sources = [], set()
try:
    while len(sizes) < count:
        data, src = s.recvfrom(65535)
        sizes.append(len(data))
        sources.add("%s:%d" % (src[0], src[1]))
except socket.timeout:
    pass
print(json.dumps({"received": len(sizes), "bytes": sum(sizes), "sizes": sizes, "sources": sorted(sources)}), flush=True)
"""

_UDP_SEND = r"""
import json, socket, sys
addr, port, count, size, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
payload = bytes(size)
for _ in range(count):
    s.sendto(payload, (addr, port))
print(json.dumps({"sent": count, "source_port": s.getsockname()[1]}), flush=True)
"""

_TCP_SERVE = r"""
import json, socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(1)
print("ready", flush=True)
c, peer = s.accept()
total = 0
while True:
    data = c.recv(1 << 16)
    if not data:
        break
    total += len(data)
c.close()
print(json.dumps({"received": total, "peer": "%s:%d" % (peer[0], peer[1])}), flush=True)
"""

_TCP_SEND = r"""
import json, socket, sys
addr, port, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = socket.create_connection((addr, port), timeout=30)
chunk = bytes(1 << 16)
left = nbytes
while left > 0:
    n = c.send(chunk[:min(left, len(chunk))])
    left -= n
local_port = c.getsockname()[1]
c.shutdown(socket.SHUT_WR)
while c.recv(1 << 16):
    pass
c.close()
print(json.dumps({"sent": nbytes, "source_port": local_port}), flush=True)
"""

_PING = r"""
import json, os, select, socket, struct, sys, time
addr, count, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
replies = 0
for seq in range(1, count + 1):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"flowfold"
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    s.sendto(body, (addr, 0))
    deadline = time.monotonic() + limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        packet, src = s.recvfrom(65535)
        icmp = packet[(packet[0] & 0x0F) * 4:]
        t, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        if src[0] == addr and t == 0 and rid == ident and rseq == seq:
            replies += 1
            break
print(json.dumps({"sent": count, "replies": replies}), flush=True)
"""

# Legacy ethtool ioctls (ETHTOOL_STSO/SGSO/SGRO): no ethtool binary needed.
_OFFLOADS = r"""
import ctypes, fcntl, socket, struct, sys
SIOCETHTOOL = 0x8946
SET = {"tso": 0x1F, "gso": 0x24, "gro": 0x2C}
ifname, enabled = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for feature in ("tso", "gso", "gro"):
    value = (ctypes.c_uint32 * 2)(SET[feature], enabled)
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
"""


class Listener:
    """A program started in a namespace that reports one JSON line at the end."""

    def __init__(self, proc, what):
        self.proc = proc
        self.what = what

    def wait_ready(self):
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            err = self.proc.stderr.read()
            raise AssertionError("%s did not start: %r %s" % (self.what, line, err.strip()))

    def result(self, timeout=WAIT_LIMIT_S):
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (self.what, self.proc.returncode, err.strip()))
        return json.loads(out.strip().splitlines()[-1])


class VethPair:
    """Two namespaces, a and b, joined by a veth pair (see the module text).

    Attributes once entered: ns_a, ns_b (namespace names), if_a, if_b
    (interface names, each inside its namespace), addr_a, addr_b (IPv4),
    addr6_a, addr6_b (IPv6, or None), mac_a, mac_b, prefix_len.
    Methods taking a namespace accept "a", "b" or the full name.
    """

    def __init__(self, name_prefix="ff", ipv6=False, offloads=False, static_neighbours=True, mtu=None):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", name_prefix):
            raise ValueError("name_prefix: 1 to 12 lower-case letters and digits, starting with a letter")
        self.name_prefix = name_prefix
        self.ipv6 = ipv6
        self.offloads = offloads
        self.static_neighbours = static_neighbours
        self.mtu = mtu
        pid = os.getpid()
        n = next(_pair_counter)
        self.ns_a = "%s-%d-%d-a" % (name_prefix, pid, n)
        self.ns_b = "%s-%d-%d-b" % (name_prefix, pid, n)
        self.if_a = name_prefix + "-a"
        self.if_b = name_prefix + "-b"
        x = (pid + n) % 256
        self.prefix_len = 30
        self.addr_a = "10.200.%d.1" % x
        self.addr_b = "10.200.%d.2" % x
        self.addr6_a = "fd00:200:%x::1" % x if ipv6 else None
        self.addr6_b = "fd00:200:%x::2" % x if ipv6 else None
        self.mac_a = self.mac_b = None
        self._created = []
        self._procs = []

    # ------------------------------------------------------------ lifecycle

    def __enter__(self):
        require_netns()
        cleanup_stale(self.name_prefix)
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, *exc):
        self._teardown()
        return False

    def _ip(self, *args):
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def _sysctl(self, ns, key, value):
        path = "/proc/sys/" + key.replace(".", "/")
        self.run_in(ns, ["sh", "-c", 'echo %s > "$0"' % value, path])

    def _setup(self):
        for ns in (self.ns_a, self.ns_b):
            self._ip("netns", "add", ns)
            self._created.append(ns)
            if self.ipv6:
                for conf in ("all", "default"):
                    self._sysctl(ns, "net.ipv6.conf.%s.accept_dad" % conf, 0)
                    self._sysctl(ns, "net.ipv6.conf.%s.router_solicitations" % conf, 0)
            else:
                for conf in ("all", "default"):
                    self._sysctl(ns, "net.ipv6.conf.%s.disable_ipv6" % conf, 1)
            self._ip("-n", ns, "link", "set", "lo", "up")
        # Created inside a, the peer moved straight into b: never in our namespace.
        self._ip("-n", self.ns_a, "link", "add", self.if_a, "type", "veth",
                 "peer", "name", self.if_b, "netns", self.ns_b)
        ends = ((self.ns_a, self.if_a, self.addr_a, self.addr6_a), (self.ns_b, self.if_b, self.addr_b, self.addr6_b))
        for ns, ifname, addr, addr6 in ends:
            if self.mtu:
                self._ip("-n", ns, "link", "set", ifname, "mtu", str(self.mtu))
            if not self.offloads:
                self.run_in(ns, [sys.executable, "-c", _OFFLOADS, ifname, "0"])
            self._ip("-n", ns, "addr", "add", "%s/%d" % (addr, self.prefix_len), "dev", ifname)
            if addr6:
                self._ip("-n", ns, "addr", "add", addr6 + "/64", "dev", ifname, "nodad")
        self.mac_a = self._link(self.ns_a, self.if_a)["address"]
        self.mac_b = self._link(self.ns_b, self.if_b)["address"]
        if self.static_neighbours:
            pairs = ((self.ns_a, self.if_a, self.addr_b, self.addr6_b, self.mac_b),
                     (self.ns_b, self.if_b, self.addr_a, self.addr6_a, self.mac_a))
            for ns, ifname, peer, peer6, mac in pairs:
                self._ip("-n", ns, "neigh", "replace", peer, "lladdr", mac, "dev", ifname, "nud", "permanent")
                if peer6:
                    self._ip("-n", ns, "neigh", "replace", peer6, "lladdr", mac, "dev", ifname, "nud", "permanent")
        for ns, ifname, _, _ in ends:
            self._ip("-n", ns, "link", "set", ifname, "up")
        for ns, ifname, _, _ in ends:
            _wait_for(lambda: self._link(ns, ifname).get("operstate") == "UP", "%s in %s to be up" % (ifname, ns))

    def _link(self, ns, ifname):
        r = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", ifname],
                           check=True, capture_output=True, text=True)
        return json.loads(r.stdout)[0]

    def _teardown(self):
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream:
                    stream.close()
        self._procs = []
        for ns in reversed(self._created):
            _delete_netns(ns)
        self._created = []

    # ------------------------------------------------------------ running programs

    def ns(self, which):
        """The namespace name for "a", "b" or a full name."""
        return {"a": self.ns_a, "b": self.ns_b}.get(which, which)

    def run_in(self, ns, argv, check=True, timeout=WAIT_LIMIT_S, **kwargs):
        """subprocess.run inside a namespace; output captured as text unless given."""
        kwargs.setdefault("capture_output", "stdout" not in kwargs and "stderr" not in kwargs)
        kwargs.setdefault("text", True)
        r = subprocess.run(["ip", "netns", "exec", self.ns(ns), *argv], timeout=timeout, **kwargs)
        if check and r.returncode != 0:
            raise AssertionError("in %s: %s exited %d: %s" % (self.ns(ns), " ".join(map(str, argv)),
                                                                r.returncode, (r.stderr or "").strip()))
        return r

    def popen_in(self, ns, argv, **kwargs):
        """subprocess.Popen inside a namespace; stopped (if still running) on exit."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(ns), *argv], **kwargs)
        self._procs.append(p)
        return p

    def _python_in(self, ns, script, *args):
        return self.popen_in(ns, [sys.executable, "-c", script, *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # ------------------------------------------------------------ traffic

    def peer_addr(self, ns, ipv6=False):
        """The address of the other end as seen from `ns`."""
        if self.ns(ns) == self.ns_a:
            return self.addr6_b if ipv6 else self.addr_b
        return self.addr6_a if ipv6 else self.addr_a

    def ping(self, from_ns, to_addr=None, count=1, limit=5.0):
        """ICMP echo from a namespace; returns the number of replies."""
        to_addr = to_addr or self.peer_addr(from_ns)
        r = self.run_in(from_ns, [sys.executable, "-c", _PING, to_addr, str(count), str(limit)])
        return json.loads(r.stdout)["replies"]

    def udp_listener(self, ns, port, count, addr=None, idle_limit=10.0):
        """Starts a UDP receiver in `ns` (bound once this returns) that stops after
        `count` datagrams or `idle_limit` seconds without one. .result() gives
        {"received", "bytes", "sizes", "sources"}."""
        addr = addr or (self.addr_a if self.ns(ns) == self.ns_a else self.addr_b)
        listener = Listener(self._python_in(ns, _UDP_LISTEN, addr, port, count, idle_limit),
                            "UDP listener on %s:%d" % (addr, port))
        listener.wait_ready()
        return listener

    def send_udp(self, from_ns, to_addr, port, count, size, source_port=0):
        """Sends `count` datagrams of `size` payload bytes; returns {"sent", "source_port"}."""
        r = self.run_in(from_ns, [sys.executable, "-c", _UDP_SEND, to_addr, str(port), str(count), str(size),
                                  str(source_port)])
        return json.loads(r.stdout)

    def tcp_transfer(self, nbytes, port=5001, server_ns="b", client_ns="a", server_addr=None):
        """One TCP connection from client_ns to server_ns carrying `nbytes`
        (python on both ends). Returns {"sent", "received", "source_port"}."""
        server_addr = server_addr or (self.addr_b if self.ns(server_ns) == self.ns_b else self.addr_a)
        server = Listener(self._python_in(server_ns, _TCP_SERVE, server_addr, port),
                          "TCP server on %s:%d" % (server_addr, port))
        server.wait_ready()
        r = self.run_in(client_ns, [sys.executable, "-c", _TCP_SEND, server_addr, str(port), str(nbytes)])
        client = json.loads(r.stdout)
        got = server.result()
        return {"sent": client["sent"], "received": got["received"], "source_port": client["source_port"]}
