#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets into OUT_DIR (default
# ./fuzz-seeds), one subdirectory per target:
#   fuzz_decoder             every packet of tests/data/pcaps and examples/captures
#                            (up to 200 per file) as "link byte, length byte,
#                            frame", plus multi-frame seeds (consecutive packets
#                            joined by the target's separator) so the fragment
#                            table sees first and later fragments together
#   fuzz_config              the shipped YAML configurations and hand-written ones
#   fuzz_netflow9_roundtrip, fuzz_ipfix_roundtrip, fuzz_flowcache, fuzz_biflow_pairer,
#   fuzz_ring_files
#                            byte strings the targets turn into records and
#                            operations: fixed patterns, deterministic
#                            pseudo-random blobs, and slices of real packets;
#                            fuzz_ring_files also the real ring files of
#                            tests/fuzz/seeds/fuzz_ring_files (an index and a
#                            flow log of a recorded capture, after the target's
#                            mode byte), so the queries of a whole index are reached
#   fuzz_filter_paths        filters compiled by tcpdump -dd (when tcpdump is
#                            there), for every kind of packet
# Every file of tests/fuzz/seeds/TARGET is copied as it is.
# Deterministic: the same tree gives the same seeds. Needs python3 only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-fuzz-seeds}"
mkdir -p "$out"

python3 - "$repo" "$out" <<'PY'
import hashlib, os, random, struct, sys

repo, out = sys.argv[1], sys.argv[2]

def write(target, data, name=None):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- fuzz_decoder -----------------------------------------------------------
# Index of each pcap LINKTYPE in fuzz_decoder.cc's kLinkTypes table.
LINK_INDEX = {1: 0, 113: 1, 276: 2, 12: 3, 14: 3, 101: 4, 228: 5, 229: 6, 0: 7, 108: 8}
SEPARATOR = bytes([0xF0, 0x0D, 0xFA, 0xCE])

def pcap_packets(path):
    """(linktype, [(caplen bytes, wirelen)]) of a classic pcap file; None for others."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return None
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None  # pcapng and anything else: skipped
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    packets, pos = [], 24
    while pos + 16 <= len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[pos:pos + 16])
        pos += 16
        if incl > len(data) - pos:
            break
        packets.append((data[pos:pos + incl], orig))
        pos += incl
    return linktype, packets

def length_byte(caplen, wirelen):
    if wirelen <= caplen:
        return 0
    return 0x40 | min(63, (wirelen - caplen + 976) // 977)  # mode 1: wirelen = caplen + n*977

pcap_dirs = [os.path.join(repo, "tests/data/pcaps"), os.path.join(repo, "examples/captures")]
frames_for_slices = []
for d in pcap_dirs:
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        if not name.endswith(".pcap"):
            continue
        parsed = pcap_packets(os.path.join(d, name))
        if not parsed or parsed[0] not in LINK_INDEX:
            continue
        linktype, packets = parsed
        link = LINK_INDEX[linktype]
        for frame, wirelen in packets[:200]:
            write("fuzz_decoder", bytes([link, length_byte(len(frame), wirelen)]) + frame)
            frames_for_slices.append(frame)
        # Runs of consecutive packets in one input (fragments meet their first).
        for start in range(0, min(len(packets), 64), 16):
            run = packets[start:start + 16]
            if len(run) > 1:
                write("fuzz_decoder", bytes([link, 0]) + SEPARATOR.join(f for f, _ in run))

# IPv6 extension-header chains (issue 19), raw IPv6 (index 6): each kind
# IANA lists, alone and all in one chain, ending in UDP, TCP, ICMPv6, ESP or
# No Next Header; the test captures hold few of them.
def ipv6_ext(kind, nxt):
    if kind == 44:
        return bytes([nxt, 0, 0, 0, 0, 0, 0, 42])
    if kind == 51:
        return bytes([nxt, 4]) + bytes(22)
    return bytes([nxt, 1, 1, 12]) + bytes(12)

IPV6_TAILS = {17: bytes.fromhex("04d20035000c0000deadbeef"),
              6: bytes.fromhex("c35001bb00000001000000005012721000000000"),
              58: bytes.fromhex("8000000000010001"), 50: bytes(24), 59: b""}
IPV6_KINDS = [0, 43, 44, 51, 60, 135, 139, 140, 253, 254]
for kinds in [[k] for k in IPV6_KINDS] + [IPV6_KINDS]:
    for last, tail in IPV6_TAILS.items():
        chain = b"".join(ipv6_ext(k, kinds[i + 1] if i + 1 < len(kinds) else last)
                         for i, k in enumerate(kinds))
        body = chain + tail
        packet = (bytes([0x60, 0, 0, 0]) + struct.pack(">HBB", len(body), kinds[0], 64) +
                  bytes.fromhex("20010db8" + "00" * 11 + "01") +
                  bytes.fromhex("20010db8" + "00" * 11 + "02") + body)
        write("fuzz_decoder", bytes([6, 0]) + packet)

# ---- fuzz_config --------------------------------------------------------------
for rel in ("examples/flowfold.yaml", "packaging/flowfold.yaml"):
    p = os.path.join(repo, rel)
    if os.path.exists(p):
        with open(p, "rb") as f:
            write("fuzz_config", f.read())

HAND_CONFIGS = [
    "",
    "input:\n  file: capture.pcap\nexporters:\n  - type: text\n",
    "input:\n  interface: [eth0, eth1]\n  snaplen: 128\n  promiscuous: no\n  buffer_size: 1048576\n"
    "exporters:\n  - type: netflow9\n    collector: 127.0.0.1:2055\n    mtu: 1400\n"
    "    template_refresh: 30s\n    template_refresh_packets: 10\n    rate_limit: 0\n",
    "input: {interface: default, filter: 'tcp port 443'}\n"
    "exporters:\n  - {type: ipfix, collector: '[::1]:4739', transport: tcp, observation_domain: 7, encoder: libfixbuf}\n",
    "exporters:\n  - type: ipfix\n    path: /tmp/flows.ipfix\n  - type: json\n    path: '-'\n",
    "cache:\n  max_flows: 1000\n  active_timeout: 2m\n  idle_timeout: 500ms\n",
    "cache: {active_timeout: 1h, idle_timeout: 0.5}\nlog: {level: debug, syslog: true, stats_interval: 5m}\n",
    "metrics:\n  listen: 127.0.0.1:9108\n  allow_remote: false\nuser: flowfold\ngroup: flowfold\nrun_as_root: false\n",
    "exporters:\n  - type: v9\n    collector: collector.example:9995\n    transport: udp\n",
    "a: &x {b: 1}\nc: *x\n",
    "exporters: [{type: ipfix, transport: file, path: out.ipfix, mtu: 65000}]\n",
    "%YAML 1.2\n---\ninput:\n  file: \"-\"\n...\n",
]
for i, text in enumerate(HAND_CONFIGS):
    write("fuzz_config", text.encode(), "hand-%02d" % i)

# ---- byte-driven targets --------------------------------------------------------
rng = random.Random(20240601)
for target in ("fuzz_netflow9_roundtrip", "fuzz_ipfix_roundtrip", "fuzz_flowcache", "fuzz_biflow_pairer", "fuzz_ring_files",
               "fuzz_dpi"):
    write(target, bytes(64), "zeros-64")
    write(target, b"\xff" * 256, "ones-256")
    write(target, bytes(range(256)) * 4, "ascending-1k")
    for n in (16, 100, 300, 1000, 3000, 8000):
        write(target, bytes(rng.getrandbits(8) for _ in range(n)), "random-%d" % n)
    # Real header bytes: addresses, ports and lengths as they occur.
    for i, frame in enumerate(frames_for_slices[:40:4]):
        write(target, frame[:2048], "frame-%02d" % i)

# ---- fuzz_filter_paths: filters people write, compiled by tcpdump -dd -------------
# Input: a byte of packet kind, a byte of instruction count (1 + b % 64), then
# per instruction u16 code (little-endian), jt, jf, u32 k (big-endian); then
# the bytes the packets are drawn from.
import shutil, subprocess
FILTERS = ["host 10.1.2.3", "host 10.1.2.3 and port 53", "src net 10.0.0.0/8 and udp", "port 53", "ip[8] = 54",
           "tcp[tcpflags] & tcp-syn != 0", "vlan and host 10.1.2.3", "host 2001:db8::1", "ip6 and udp port 53",
           "not host 10.1.2.3", "len > 100", "icmp[icmptype] = icmp-echo", "ip proto 47", "portrange 1000-2000",
           "host 10.1.2.3 or ip6 host 2001:db8::1", "udp[8:2] = 0x1234", "ip[6:2] & 0x1fff != 0"]
if shutil.which("tcpdump"):
    for i, text in enumerate(FILTERS):
        compiled = subprocess.run(["tcpdump", "-y", "EN10MB", "-dd", text], capture_output=True, text=True)
        insns = [tuple(int(x, 0) for x in line.strip(" {},").split(","))
                 for line in compiled.stdout.splitlines() if line.strip()]
        if compiled.returncode != 0 or not insns or len(insns) > 64:
            continue
        prog = b"".join(struct.pack("<HBB", c, jt, jf) + struct.pack(">I", k) for c, jt, jf, k in insns)
        for shape in range(16):
            write("fuzz_filter_paths", bytes([shape, len(insns) - 1]) + prog + bytes(rng.getrandbits(8) for _ in range(400)),
                  "filter-%02d-%02d" % (i, shape))
PY

for d in "$here"/seeds/*/; do
  mkdir -p "$out/$(basename "$d")"
  cp "$d"* "$out/$(basename "$d")/"
done

for d in "$out"/*/; do
  printf '%-28s %5d seeds\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"
done
