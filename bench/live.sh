#!/usr/bin/env bash
# bench/live.sh — live capture: replay a synthetic capture with tcpreplay over a veth
# pair between two private network namespaces, at a list of increasing packet rates,
# into flowfold and softflowd in turn, and record what each probe's capture dropped.
# See bench/README.md, "Live capture".
#
#   bench/live.sh [--profile ent|big|small] [--packets N] [--rates LIST]
#                 [--tools flowfold,softflowd] [--workdir DIR]
# shellcheck disable=SC2016  # awk programs are single-quoted on purpose
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

PROFILE=ent
PACKETS=
RATES=100k,200k,300k,400k,500k,650k,800k,top
TOOLS=flowfold,softflowd
WORK=${BENCH_WORKDIR:-/tmp/flowfold-bench}

FLOWGEN_SRC=${FLOWGEN_SRC:-$REPO/../shared/tools/flowgen.c}
BUILD=${BUILD:-$REPO/build}
FLOWFOLD_BIN=${FLOWFOLD_BIN:-$BUILD/probe/flowfold}
FLOWFOLD_ARGS=${FLOWFOLD_ARGS:-}
FLOWFOLD_VERSION=${FLOWFOLD_VERSION:-10}
SOFTFLOWD_ARGS=${SOFTFLOWD_ARGS:--m 262144 -B 67108864}
TCPREPLAY_ARGS=${TCPREPLAY_ARGS:--K --no-flow-stats}
NFCAPD_BUFFER=${NFCAPD_BUFFER:-67108864}
FLUSH_FRAMES=${FLUSH_FRAMES:-4096}
SETTLE_TIMEOUT=${SETTLE_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-120}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}

# Inside namespace b (its own loopback, so fixed ports cannot collide with anything).
COLLECTOR_PORT=2055
METRICS_PORT=9464
NS_PREFIX=ffl

usage() {
    cat <<EOF
usage: bench/live.sh [--profile ent|big|small] [--packets N] [--rates LIST]
                     [--tools flowfold,softflowd] [--workdir DIR]

  --profile P   flowgen profile, as in run.sh (default ent:
                -n 5000000 -c 20000 -d 300 -S 128 -s 43 -a 1.1 -m 4)
  --packets N   generate N packets instead of the profile's -n (same other
                arguments; e.g. 1000000 for a quick run)
  --rates LIST  comma-separated tcpreplay rates in packets per second, in order;
                k and M suffixes; "top" = --topspeed (default $RATES)
  --tools LIST  comma-separated subset of flowfold,softflowd (default both)
  --workdir D   captures, configs, logs (default \$BENCH_WORKDIR or /tmp/flowfold-bench;
                captures are shared with run.sh and reused)

Environment: FLOWGEN_SRC, BUILD, FLOWFOLD_BIN, FLOWFOLD_ARGS, FLOWFOLD_VERSION (10),
SOFTFLOWD_ARGS ("-m 262144 -B 67108864"), TCPREPLAY_ARGS ("-K --no-flow-stats"), NFCAPD_BUFFER
(67108864), FLUSH_FRAMES (4096), SETTLE_TIMEOUT (60 s), STOP_TIMEOUT (120 s),
DRAIN_TIMEOUT (120 s).
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --profile) PROFILE=$2; shift 2 ;;
        --profile=*) PROFILE=${1#*=}; shift ;;
        --packets) PACKETS=$2; shift 2 ;;
        --packets=*) PACKETS=${1#*=}; shift ;;
        --rates) RATES=$2; shift 2 ;;
        --rates=*) RATES=${1#*=}; shift ;;
        --tools) TOOLS=$2; shift 2 ;;
        --tools=*) TOOLS=${1#*=}; shift ;;
        --workdir) WORK=$2; shift 2 ;;
        --workdir=*) WORK=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "live.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

case $PROFILE in
    big)   GEN_N=5000000; GEN_REST="-c 100000 -d 300 -S 128 -s 42" ;;
    ent)   GEN_N=5000000; GEN_REST="-c 20000 -d 300 -S 128 -s 43 -a 1.1 -m 4" ;;
    small) GEN_N=300000;  GEN_REST="-c 10000 -d 60 -S 128 -s 7" ;;
    *) echo "live.sh: unknown profile '$PROFILE' (ent, big, small)" >&2; exit 2 ;;
esac
# The capture's name: the profile's own (shared with run.sh) unless --packets changes -n.
CAPTURE=$PROFILE
if [ -n "$PACKETS" ]; then
    case $PACKETS in ''|*[!0-9]*|0) echo "live.sh: --packets needs a positive integer" >&2; exit 2 ;; esac
    [ "$PACKETS" -eq "$GEN_N" ] || CAPTURE=$PROFILE-$PACKETS
    GEN_N=$PACKETS
fi
FLOWGEN_ARGS="-n $GEN_N $GEN_REST"

# Rates: "100k" -> 100000, "1.2M" -> 1200000, "top" stays.
RATE_LIST=()
IFS=, read -r -a _rates <<<"$RATES"
for r in "${_rates[@]}"; do
    case $r in
        top|topspeed) RATE_LIST+=(top) ;;
        *[0-9]k|*[0-9]K) RATE_LIST+=("$(awk -v x="${r%?}" 'BEGIN { printf "%d", x * 1000 }')") ;;
        *[0-9]M) RATE_LIST+=("$(awk -v x="${r%?}" 'BEGIN { printf "%d", x * 1000000 }')") ;;
        *[0-9]) RATE_LIST+=("$r") ;;
        *) echo "live.sh: bad rate '$r' (e.g. 250000, 250k, 1.2M, top)" >&2; exit 2 ;;
    esac
    case ${RATE_LIST[-1]} in top) ;; ''|*[!0-9]*|0) echo "live.sh: bad rate '$r'" >&2; exit 2 ;; esac
done
[ ${#RATE_LIST[@]} -gt 0 ] || { echo "live.sh: no rates" >&2; exit 2; }
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case $t in flowfold|softflowd) ;; *) echo "live.sh: unknown tool '$t' (flowfold, softflowd)" >&2; exit 2 ;; esac
done

log() { printf '[live] %s\n' "$*" >&2; }
die() { printf 'live.sh: %s\n' "$*" >&2; exit 1; }
has_tool() { local t; for t in "${TOOL_LIST[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
fmt_rate() { case $1 in top) echo top ;; *) awk -v r="$1" 'BEGIN { if (r % 1000 == 0) printf "%dk", r / 1000; else print r }' ;; esac; }

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, capture)"
NEED=(ip cc tcpreplay nfcapd nfdump curl)
has_tool softflowd && NEED+=(softflowd softflowctl)
for b in "${NEED[@]}"; do
    command -v "$b" >/dev/null || die "$b is missing (Debian: iproute2 build-essential tcpreplay nfdump softflowd curl)"
done
ip netns list >/dev/null 2>&1 || die "ip netns is unavailable"
[ -f "$FLOWGEN_SRC" ] || die "flowgen source not found at $FLOWGEN_SRC (set FLOWGEN_SRC)"
if has_tool flowfold; then
    [ -x "$FLOWFOLD_BIN" ] || die "no flowfold binary at $FLOWFOLD_BIN (build it, or set FLOWFOLD_BIN / BUILD)"
fi
AWK="awk"
command -v mawk >/dev/null && AWK=mawk
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$WORK/bin" "$WORK/live"
WORK=$(cd "$WORK" && pwd)

# ------------------------------------------------ namespaces and cleanup (always)
NS_A=$NS_PREFIX-$$-a
NS_B=$NS_PREFIX-$$-b
IF_A=$NS_PREFIX-a
IF_B=$NS_PREFIX-b
NS_MADE=()

ns_kill_all() { # every process left in one of our namespaces: we started them all
    local pid
    for pid in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
}
ns_delete() { ns_kill_all "$1"; ip netns del "$1" 2>/dev/null || true; }

cleanup() {
    local ns p
    for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null || true; done
    for ns in "${NS_MADE[@]}"; do ns_delete "$ns"; done
    NS_MADE=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Namespaces left behind by a run that was killed (-9): their pid is gone.
for ns in $(ip netns list | $AWK '{ print $1 }'); do
    case $ns in
        "$NS_PREFIX"-*-a|"$NS_PREFIX"-*-b)
            p=${ns#"$NS_PREFIX"-}; p=${p%-?}
            case $p in ''|*[!0-9]*) continue ;; esac
            if ! kill -0 "$p" 2>/dev/null; then log "removing stale namespace $ns"; ns_delete "$ns"; fi ;;
    esac
done

# Legacy ethtool ioctls (ETHTOOL_STSO/SGSO/SGRO), as tests/integration/netns.py does:
# no ethtool binary needed.
OFFLOADS_PY='
import ctypes, fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for cmd in (0x1F, 0x24, 0x2C):
    value = (ctypes.c_uint32 * 2)(cmd, 0)
    fcntl.ioctl(s.fileno(), 0x8946, struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(value)))
'

setup_netns() {
    local ns x
    for x in a b; do
        ns=$NS_PREFIX-$$-$x
        ip netns add "$ns"
        NS_MADE+=("$ns")
        ip netns exec "$ns" sh -c 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done'
        ip -n "$ns" link set lo up
    done
    # Created inside a with its peer moved straight into b: never in the root namespace.
    ip -n "$NS_A" link add "$IF_A" type veth peer name "$IF_B" netns "$NS_B"
    ip netns exec "$NS_A" python3 -c "$OFFLOADS_PY" "$IF_A"
    ip netns exec "$NS_B" python3 -c "$OFFLOADS_PY" "$IF_B"
    # No addresses: nothing in either namespace sends anything of its own on the link.
    ip -n "$NS_A" link set "$IF_A" up
    ip -n "$NS_B" link set "$IF_B" up
    for _ in $(seq 1 100); do
        [ "$(ip netns exec "$NS_B" cat "/sys/class/net/$IF_B/operstate")" = up ] && return 0
        sleep 0.05
    done
    die "$IF_B did not come up"
}

# ---------------------------------------------------------------------- build
if [ ! -x "$WORK/bin/flowgen" ] || [ "$FLOWGEN_SRC" -nt "$WORK/bin/flowgen" ]; then
    log "building flowgen"
    cc -O2 -o "$WORK/bin/flowgen" "$FLOWGEN_SRC" -lm
fi

# ------------------------------------------------------------------- captures
PCAP=$WORK/$CAPTURE.pcap
TRUTH=$WORK/$CAPTURE.tsv
STAMP=$WORK/$CAPTURE.args
if [ -f "$PCAP" ] && [ -f "$TRUTH" ] && [ -f "$STAMP" ] &&
   [ "$(cat "$STAMP")" = "$FLOWGEN_ARGS $(md5sum <"$FLOWGEN_SRC" | cut -d' ' -f1)" ]; then
    log "reusing $PCAP"
else
    log "generating $CAPTURE: flowgen $FLOWGEN_ARGS"
    rm -f "$STAMP"
    # shellcheck disable=SC2086
    "$WORK/bin/flowgen" -o "$PCAP" -t "$TRUTH" $FLOWGEN_ARGS
    echo "$FLOWGEN_ARGS $(md5sum <"$FLOWGEN_SRC" | cut -d' ' -f1)" >"$STAMP"
fi
read -r EXP_KEYS EXP_PACKETS < <($AWK -F'\t' '$1 != "" { n++; p += $7 } END { printf "%d %.0f\n", n, p }' "$TRUTH")
log "capture: $EXP_PACKETS packets, $EXP_KEYS flow keys"

# Flush train: non-IP frames (IEEE local experimental ethertype 0x88b5, locally
# administered MACs) sent after each replay. softflowd sets no pcap timeout, so the
# last partly filled TPACKET_V3 block of the replay is never handed to it on a quiet
# link (FIELD-NOTES, "Live capture"); these frames fill that block. Both probes
# ignore them as non-IP, so "processed" still counts only the replay's packets.
FLUSH=$WORK/live/flush-$FLUSH_FRAMES.pcap
if [ ! -s "$FLUSH" ]; then
    python3 - "$FLUSH_FRAMES" "$FLUSH.tmp" <<'EOF_PY'
import struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        frame = bytes.fromhex("020000000001" "020000000002" "88b5") + struct.pack(">I", i) + bytes(42)
        f.write(struct.pack("<IIII", 0, i, len(frame), len(frame)) + frame)
EOF_PY
    mv "$FLUSH.tmp" "$FLUSH"
fi

# ------------------------------------------------------------- socket buffer
RMEM_NOW=$(sysctl -n net.core.rmem_max 2>/dev/null || echo 0)
if [ "$RMEM_NOW" -lt "$NFCAPD_BUFFER" ]; then
    if sysctl -q -w net.core.rmem_max="$NFCAPD_BUFFER" >/dev/null 2>&1; then
        log "raised net.core.rmem_max from $RMEM_NOW to $NFCAPD_BUFFER"
    else
        log "WARNING: could not raise net.core.rmem_max ($RMEM_NOW); nfcapd may drop datagrams"
    fi
fi

# ------------------------------------------------------------------- helpers
in_b() { ip netns exec "$NS_B" "$@"; }
in_a() { ip netns exec "$NS_A" "$@"; }

cpu_seconds() { # user + system CPU of a live pid, in seconds
    $AWK -v t="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo -
}

link_drops() { # packets the link itself lost: veth counters + softnet backlog drops (all CPUs)
    local rx tx sn=0 _c d _r
    rx=$(in_b cat "/sys/class/net/$IF_B/statistics/rx_dropped")
    tx=$(in_a cat "/sys/class/net/$IF_A/statistics/tx_dropped")
    while read -r _c d _r; do sn=$((sn + 16#$d)); done </proc/net/softnet_stat
    echo $((rx + tx + sn))
}

udp_rx_queue_b() { # bytes queued on the collector's socket in namespace b
    local hex q
    hex=$(printf '%04X' "$COLLECTOR_PORT")
    q=$(in_b cat /proc/net/udp | $AWK -v want="0100007F:$hex" '$2 == want { split($5, a, ":"); print a[2]; exit }')
    [ -n "$q" ] || { echo 0; return; }
    echo $((16#$q))
}

NFCAPD_PID=
start_nfcapd() { # dir
    mkdir -p "$1/flows"
    ip netns exec "$NS_B" nfcapd -w "$1/flows" -p "$COLLECTOR_PORT" -b 127.0.0.1 -B "$NFCAPD_BUFFER" -t 3600 >"$1/nfcapd.log" 2>&1 &
    NFCAPD_PID=$!
    local hex
    hex=$(printf '%04X' "$COLLECTOR_PORT")
    for _ in $(seq 1 100); do
        in_b cat /proc/net/udp | grep -q "0100007F:$hex " && return 0
        kill -0 "$NFCAPD_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$1/nfcapd.log" >&2
    die "nfcapd did not come up in $NS_B"
}

stop_nfcapd() { # dir -> writes the packets the collector stored to dir/stored
    local waited=0 zero=0 f total=0 n
    while [ "$zero" -lt 3 ] && [ "$waited" -lt $((DRAIN_TIMEOUT * 10)) ]; do
        if [ "$(udp_rx_queue_b)" -eq 0 ]; then zero=$((zero + 1)); else zero=0; fi
        sleep 0.1
        waited=$((waited + 1))
    done
    [ "$zero" -ge 3 ] || log "WARNING: nfcapd still had queued data after ${DRAIN_TIMEOUT}s"
    kill -TERM "$NFCAPD_PID" 2>/dev/null || true
    wait "$NFCAPD_PID" 2>/dev/null || true
    NFCAPD_PID=
    for f in "$1"/flows/nfcapd.*; do
        [ -f "$f" ] || continue
        n=$(nfdump -r "$f" -I 2>/dev/null | $AWK '/^Packets:/ { print $2; exit }')
        total=$((total + ${n:-0}))
    done
    echo "$total" >"$1/stored"
    # What the collector received per flow key, against the replayed capture's truth.
    { nfdump -R "$1/flows" -q -N -6 -o 'fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt' 2>"$1/nfdump.err" || true; } |
        tr -d ' ' | $AWK -f "$BENCH_DIR/compare.awk" "$TRUTH" - >"$1/compare" || true
}

# Per-probe hooks. start_<tool> dir: starts the probe in namespace b (PROBE_PID is the
# probe itself: `ip netns exec` execs it) and waits until it captures.
# processed_<tool>: IP packets it has handled so far. finish_<tool> dir: stops it and
# writes "received dropped processed" from its own final counters to dir/counters.
PROBE_PID=

start_flowfold() {
    local dir=$1
    printf 'run_as_root: true\nmetrics:\n  listen: 127.0.0.1:%s\n' "$METRICS_PORT" >"$dir/flowfold.yaml"
    # shellcheck disable=SC2086
    ip netns exec "$NS_B" "$FLOWFOLD_RUN" -c "$dir/flowfold.yaml" -i "$IF_B" -n "127.0.0.1:$COLLECTOR_PORT" \
        -v "$FLOWFOLD_VERSION" $FLOWFOLD_ARGS >"$dir/probe.log" 2>&1 &
    PROBE_PID=$!
    for _ in $(seq 1 200); do
        grep -q '^flowfold: capturing on' "$dir/probe.log" 2>/dev/null && processed_flowfold >/dev/null && return 0
        kill -0 "$PROBE_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$dir/probe.log" >&2
    die "flowfold did not start capturing on $IF_B"
}
processed_flowfold() {
    in_b curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" |
        $AWK '$1 == "flowfold_packets_decoded_total" { print $2; f = 1 } END { exit !f }'
}
finish_flowfold() {
    local dir=$1 waited=0
    kill -TERM "$PROBE_PID" 2>/dev/null || true
    while kill -0 "$PROBE_PID" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    if kill -0 "$PROBE_PID" 2>/dev/null; then
        log "WARNING: flowfold did not exit ${STOP_TIMEOUT}s after SIGTERM; killing it"
        kill -KILL "$PROBE_PID" 2>/dev/null || true
    fi
    wait "$PROBE_PID" 2>/dev/null || log "WARNING: flowfold exited with status $? (see $dir/probe.log)"
    # "flowfold: stats: captured=N capture_dropped=N packets=N decoded=N ..." (one
    # captured/capture_dropped pair per interface; there is one here)
    $AWK '/^flowfold: stats:/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (!(kv[1] in v)) v[kv[1]] = kv[2] }
        printf "%s %s %s\n", v["captured"], v["capture_dropped"], v["decoded"]; f = 1 }
        END { if (!f) print "- - -" }' "$dir/probe.log" >"$dir/counters"
}

start_softflowd() {
    local dir=$1
    rm -f "$dir/softflowd.ctl"
    # shellcheck disable=SC2086
    ip netns exec "$NS_B" softflowd -d -i "$IF_B" -n "127.0.0.1:$COLLECTOR_PORT" -v 9 -c "$dir/softflowd.ctl" \
        -p "$dir/softflowd.pid" $SOFTFLOWD_ARGS >"$dir/probe.log" 2>&1 &
    PROBE_PID=$!
    for _ in $(seq 1 200); do
        [ -S "$dir/softflowd.ctl" ] && processed_softflowd >/dev/null && return 0
        kill -0 "$PROBE_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$dir/probe.log" >&2
    die "softflowd did not open its control socket"
}
SF_CTL=
processed_softflowd() {
    in_b softflowctl -c "$SF_CTL" statistics 2>/dev/null |
        $AWK '/^Packets processed:/ { print $3; f = 1 } END { exit !f }'
}
finish_softflowd() {
    # SIGTERM does not flush softflowd in live mode: read its statistics (pcap_stats:
    # "Packets received by libpcap", "Packets dropped by libpcap"), then `shutdown`,
    # which expires and exports every flow.
    local dir=$1 waited=0
    in_b softflowctl -c "$SF_CTL" statistics >"$dir/softflowd.stats" 2>&1 || true
    in_b softflowctl -c "$SF_CTL" shutdown >>"$dir/softflowctl.log" 2>&1 || true
    while kill -0 "$PROBE_PID" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    if kill -0 "$PROBE_PID" 2>/dev/null; then
        log "WARNING: softflowd did not exit ${STOP_TIMEOUT}s after shutdown; killing it"
        kill -KILL "$PROBE_PID" 2>/dev/null || true
    fi
    # softflowd 1.1.0 exits with status 1 after a `shutdown` request.
    local rc=0
    wait "$PROBE_PID" 2>/dev/null || rc=$?
    if [ "$rc" -ne 0 ] && ! grep -q 'Shutting down on user request' "$dir/probe.log"; then
        log "WARNING: softflowd exited with status $rc (see $dir/probe.log)"
    fi
    $AWK -F': *' '
        /^Packets processed:/ { p = $2 }
        /^Packets received by libpcap:/ { r = $2 }
        /^Packets dropped by libpcap:/ { d = $2 }
        END { printf "%s %s %s\n", (r == "" ? "-" : r), (d == "" ? "-" : d), (p == "" ? "-" : p) }' "$dir/softflowd.stats" >"$dir/counters"
}

wait_settled() { # tool sent: until the probe has handled every packet, or its count stops moving
    local tool=$1 sent=$2 last=-1 same=0 n waited=0
    while [ "$waited" -lt $((SETTLE_TIMEOUT * 5)) ]; do
        n=$("processed_$tool" 2>/dev/null || echo -1)
        [ "$n" != -1 ] && [ "$n" -ge "$sent" ] && return 0
        if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; last=$n; fi
        [ "$same" -ge 5 ] && return 0
        sleep 0.2
        waited=$((waited + 1))
    done
    log "WARNING: $tool was still processing ${SETTLE_TIMEOUT}s after the replay"
}

replay() { # rate file log
    local rate=$1 file=$2 out=$3 speed limit
    if [ "$rate" = top ]; then speed=(--topspeed); limit=$((EXP_PACKETS / 50000 + 120))
    else speed=(--pps "$rate"); limit=$((EXP_PACKETS * 3 / rate + 120)); fi
    # In the background and waited for: bash runs the INT/TERM trap as soon as `wait`
    # is interrupted, whereas it would wait for a foreground command (and timeout(1)
    # puts tcpreplay in its own process group, out of reach of Ctrl-C).
    # shellcheck disable=SC2086
    timeout "$limit" ip netns exec "$NS_A" tcpreplay -i "$IF_A" "${speed[@]}" $TCPREPLAY_ARGS "$file" >"$out" 2>&1 &
    wait $!
}

# ------------------------------------------------------------------- the runs
setup_netns
log "namespaces $NS_A ($IF_A, tcpreplay) and $NS_B ($IF_B, probe + nfcapd on its loopback)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STAMP_NOW=$(date +%Y-%m-%d-%H%M%S)
RUNS_DIR=$WORK/live/$STAMP_NOW
mkdir -p "$RUNS_DIR"
ROWS=$RUNS_DIR/rows.tsv
: >"$ROWS"
if has_tool flowfold; then
    # Every run uses the same binary, even if the build tree is relinked meanwhile.
    FLOWFOLD_VER=$("$FLOWFOLD_BIN" --version 2>/dev/null | head -n 1 || echo -)
    cp "$FLOWFOLD_BIN" "$RUNS_DIR/flowfold"
    FLOWFOLD_RUN=$RUNS_DIR/flowfold
fi
FLUSH_SENT=0

for rate in "${RATE_LIST[@]}"; do
    for tool in "${TOOL_LIST[@]}"; do
        dir=$RUNS_DIR/$tool-$(fmt_rate "$rate")
        mkdir -p "$dir"
        SF_CTL=$dir/softflowd.ctl
        start_nfcapd "$dir"
        "start_$tool" "$dir"
        sleep 0.5
        cpu0=$(cpu_seconds "$PROBE_PID")
        drops0=$(link_drops)
        log "$tool at $(fmt_rate "$rate") pps: replaying $EXP_PACKETS packets"
        rc=0
        replay "$rate" "$PCAP" "$dir/tcpreplay.log" || rc=$?
        [ "$rc" -eq 0 ] || log "WARNING: tcpreplay exited with status $rc (see $dir/tcpreplay.log)"
        sent=$($AWK '/Successful packets:/ { print $3; exit }' "$dir/tcpreplay.log")
        failed=$($AWK '/Failed packets:/ { print $3; exit }' "$dir/tcpreplay.log")
        pps=$($AWK '/^Rated:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^pps/) { printf "%.0f", $i; exit } }' "$dir/tcpreplay.log")
        secs=$($AWK '/^Actual:/ { for (i = 1; i < NF; i++) if ($i == "in") { print $(i + 1); exit } }' "$dir/tcpreplay.log")
        sent=${sent:-0} failed=${failed:-0} pps=${pps:-0} secs=${secs:-0}
        wait_settled "$tool" "$sent"
        cpu1=$(cpu_seconds "$PROBE_PID")
        cpu=$($AWK -v a="$cpu0" -v b="$cpu1" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", b - a }')
        drops1=$(link_drops)
        # Flush train (see above), then let the probe take it.
        replay 100000 "$FLUSH" "$dir/flush.log" || log "WARNING: flush replay failed (see $dir/flush.log)"
        FLUSH_SENT=$($AWK '/Successful packets:/ { print $3; exit }' "$dir/flush.log")
        FLUSH_SENT=${FLUSH_SENT:-0}
        sleep 0.5
        "finish_$tool" "$dir"
        stop_nfcapd "$dir"
        read -r recv dropped processed <"$dir/counters"
        stored=$(cat "$dir/stored")
        # The probes' kernel counters include the flush frames.
        [ "$recv" = - ] || recv=$((recv - FLUSH_SENT))
        C_keys_exact=0 C_keys_packets_exact=0 C_truth_keys=-
        # compare.awk prints only name=number (or name=-) pairs
        # shellcheck disable=SC2046
        eval $(tr ' ' '\n' <"$dir/compare" | grep -E '^(keys_exact|keys_packets_exact|truth_keys)=([0-9]+|-)$' |
               sed 's/^/C_/')
        # Pass: the probe's capture lost nothing, and the collector holds every
        # flow key of the capture with exactly its packets. Bytes are shown
        # beside: the replayed frames are cut to the capture's snap length
        # while their IP headers keep the original length, which probes count
        # differently (flowfold the IP length, as the truth does; softflowd
        # what the frame carried): not a loss.
        ok=fail
        if [ "$dropped" = 0 ] && [ "$processed" = "$sent" ] && [ "$recv" = "$sent" ] && [ "$sent" -gt 0 ] &&
           [ "$sent" = "$EXP_PACKETS" ] && [ "$C_keys_packets_exact" = "$C_truth_keys" ]; then ok=pass; fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rate" "$pps" "$sent" "$failed" \
            "$recv" "$dropped" "$processed" "$((drops1 - drops0))" "$cpu" "$stored" "$ok" "$secs" \
            "$C_keys_packets_exact/$C_truth_keys" "$C_keys_exact/$C_truth_keys" >>"$ROWS"
        log "$tool at $(fmt_rate "$rate"): rated $pps pps, sent $sent, kernel received $recv, dropped $dropped, processed $processed, link drops $((drops1 - drops0)), cpu ${cpu}s, collector packets $stored, keys with exact packets $C_keys_packets_exact/$C_truth_keys (and bytes $C_keys_exact): $ok"
    done
done

# ------------------------------------------------------------------- the table
TABLE=$($AWK -F'\t' '
    function fr(r) { return r == "top" ? "top speed" : (r % 1000 ? r : r / 1000 "k") }
    function num(x) { return x == "-" ? "-" : sprintf("%d", x) }
    function per(c, n) { return (c == "-" || n + 0 == 0) ? "-" : sprintf("%.2f", c * 1e6 / n) }
    {
        printf "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            $1, fr($2), $3, num($4), num($6), num($7), num($8), num($9), $10, per($10, $4), num($11), $14, $15, $12
    }' "$ROWS")
SUMMARY=$($AWK -F'\t' '
    function fr(r) { return r == "top" ? "top speed" : (r % 1000 ? r : r / 1000 "k") }
    { t = $1; if (!(t in seen)) { seen[t] = 1; order[++n] = t; best[t] = -1 }
      runs[t]++
      if ($12 == "pass") { passed[t]++; if ($3 + 0 > best[t]) best[t] = $3 + 0 }
      else { f = sprintf("%d pps (target %s, %s dropped)", $3, fr($2), $7); sep = nfail[t]++ ? ", " : ""; fails[t] = fails[t] sep f } }
    END {
        for (i = 1; i <= n; i++) {
            t = order[i]
            s = sprintf("passed %d of %d rates", passed[t], runs[t])
            if (best[t] >= 0) s = s sprintf("; highest achieved rate with zero drops and every packet processed: %d pps", best[t])
            if (nfail[t]) s = s "; failed at " fails[t]
            else s = s " (the sender was the limit)"
            printf "- **%s**: %s\n", t, s
        }
    }' "$ROWS")

# ---------------------------------------------------------------- the record
pkgver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "not installed"; }
HOST=$(hostname -s 2>/dev/null || hostname)
mkdir -p "$BENCH_DIR/results"
OUT=$BENCH_DIR/results/$STAMP_NOW-live-$CAPTURE-$HOST.md
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
MEM=$($AWK '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FLOWFOLD_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo "no commit")
has_tool flowfold || FLOWFOLD_VER="not run"
HEADER='| probe | target pps | achieved pps | sent | kernel received | kernel dropped | processed | link drops | probe CPU s | CPU µs/packet | collector packets | keys with exact packets / expected | keys with exact packets and bytes | result |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|'

{
    echo "# flowfold live-capture benchmark: \`$CAPTURE\` on $HOST, $(date '+%Y-%m-%d %H:%M %Z')"
    echo
    echo "Capture: \`flowgen $FLOWGEN_ARGS\` — $EXP_PACKETS packets (frames cut to 128 bytes), $EXP_KEYS flow keys."
    echo "Replayed with tcpreplay from namespace a over a veth pair into namespace b, where the probe"
    echo "captures and exports to an nfcapd on b's loopback. One run per probe and rate."
    echo
    echo "$HEADER"
    echo "$TABLE"
    echo
    echo "$SUMMARY"
    echo
    echo "- achieved pps: tcpreplay's \"Rated\"; sent: its \"Successful packets\"."
    echo "- kernel received / dropped: the probe's pcap_stats (ps_recv, ps_drop) at the end, less the"
    echo "  $FLUSH_FRAMES non-IP flush frames sent after the replay. flowfold: its \`stats:\` line"
    echo "  (captured, capture_dropped); softflowd: \`softflowctl statistics\` (\"Packets received by"
    echo "  libpcap\", \"Packets dropped by libpcap\"). On Linux ps_recv includes the dropped packets."
    echo "- processed: IP packets the probe handled (flowfold \`decoded\`, softflowd \"Packets processed\")."
    echo "- link drops: veth rx/tx drops plus softnet backlog drops during the run (0 = every packet"
    echo "  reached the capture socket; softnet counts the whole host)."
    echo "- probe CPU s: user + system CPU of the probe (/proc/PID/stat) from just before the replay"
    echo "  until it had handled it; start-up, the flush frames and the final export are not counted."
    echo "  The clock ticks are 10 ms. CPU µs/packet = probe CPU s / sent."
    echo "- collector packets: the packet counts nfcapd stored (\`nfdump -I\`), after the probe exported"
    echo "  everything on exit."
    echo "- keys with exact packets: flow keys whose records at the collector sum to exactly the packets"
    echo "  of the capture's truth (bench/compare.awk: VLAN left out, ICMP ports folded); and bytes: the"
    echo "  same with the IP bytes too. The replayed frames are cut to the capture's snap length while"
    echo "  their IP headers keep the original length: flowfold counts the IP length (as the truth"
    echo "  does), softflowd what the frame carried, so its bytes differ without any loss."
    echo "- pass: the whole capture sent, zero kernel drops, kernel received = processed = sent, and"
    echo "  every key's packets exact at the collector (after the probe was stopped: its flush counts)."
    echo
    echo "## Machine"
    echo
    echo "- CPU: ${CPU_MODEL:-unknown}, $(nproc) logical CPUs; memory $MEM"
    # shellcheck disable=SC1091
    echo "- kernel: $(uname -srm); $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "- load average at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- packages: tcpreplay $(pkgver tcpreplay), softflowd $(pkgver softflowd), nfdump $(pkgver nfdump), libpcap $(pkgver libpcap0.8)"
    echo "- flowfold: $FLOWFOLD_VER (tree $FLOWFOLD_REV)"
    echo
    echo "## Command lines"
    echo
    echo "- link: \`ip -n A link add $IF_A type veth peer name $IF_B netns B\`; IPv6 off, TSO/GSO/GRO off, no addresses"
    echo "- sender (namespace a): \`tcpreplay -i $IF_A --pps RATE|--topspeed $TCPREPLAY_ARGS FILE\`, then \`tcpreplay -i $IF_A --pps 100000 $TCPREPLAY_ARGS FLUSH\` ($FLUSH_FRAMES frames, ethertype 0x88b5)"
    has_tool flowfold && echo "- flowfold ($FLOWFOLD_BIN, copied to the log dir): \`flowfold -c CFG -i $IF_B -n 127.0.0.1:$COLLECTOR_PORT -v $FLOWFOLD_VERSION${FLOWFOLD_ARGS:+ $FLOWFOLD_ARGS}\`, CFG = \`run_as_root: true\` + \`metrics: listen: 127.0.0.1:$METRICS_PORT\`; stopped with SIGTERM"
    has_tool softflowd && echo "- softflowd: \`softflowd -d -i $IF_B -n 127.0.0.1:$COLLECTOR_PORT -v 9 -c CTL -p PID $SOFTFLOWD_ARGS\`; \`softflowctl -c CTL statistics\`, then \`shutdown\`"
    echo "- collector (namespace b): \`nfcapd -w DIR -p $COLLECTOR_PORT -b 127.0.0.1 -B $NFCAPD_BUFFER -t 3600\`, one per run"
    echo
    echo "Logs: \`$RUNS_DIR\`."
} >"$OUT"

echo
echo "Capture $CAPTURE: $EXP_PACKETS packets, $EXP_KEYS keys"
echo
echo "$HEADER"
echo "$TABLE"
echo
echo "$SUMMARY"
echo
echo "Saved to ${OUT#"$REPO"/}"
