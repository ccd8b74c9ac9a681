#!/usr/bin/env bash
# bench/run.sh — run flowfold and its peers over the same synthetic capture and
# compare speed (packets per CPU-second), memory and what a real nfcapd received
# against flowgen's ground truth. See bench/README.md.
#
#   bench/run.sh [--profile big|ent|small] [--runs N]
#                [--tools floor,flowfold,softflowd,pmacctd] [--workdir DIR]
# shellcheck disable=SC2016  # awk programs are single-quoted on purpose
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

PROFILE=big
RUNS=1
TOOLS=floor,flowfold,softflowd,pmacctd
WORK=${BENCH_WORKDIR:-/tmp/flowfold-bench}

FLOWGEN_SRC=${FLOWGEN_SRC:-$REPO/../shared/tools/flowgen.c}
BUILD=${BUILD:-$REPO/build}
FLOWFOLD_BIN=${FLOWFOLD_BIN:-$BUILD/probe/flowfold}
FLOWFOLD_ARGS=${FLOWFOLD_ARGS:-}
FLOWFOLD_VERSION=${FLOWFOLD_VERSION:-10}
SOFTFLOWD_ARGS=${SOFTFLOWD_ARGS:--m 262144}
SOFTFLOWD_POLL=${SOFTFLOWD_POLL:-0.05}
PMACCTD_CONF_EXTRA=${PMACCTD_CONF_EXTRA:-}
PORT_BASE=${BENCH_PORT_BASE:-39500}
NFCAPD_BUFFER=${NFCAPD_BUFFER:-67108864}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-3600}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}

usage() {
    cat <<EOF
usage: bench/run.sh [--profile big|ent|small] [--runs N] [--tools LIST] [--workdir DIR]

  --profile P   flowgen profile (default big):
                  big   -n 5000000 -c 100000 -d 300 -S 128 -s 42
                  ent   -n 5000000 -c 20000  -d 300 -S 128 -s 43 -a 1.1 -m 4
                  small -n 300000  -c 10000  -d 60  -S 128 -s 7
  --runs N      run each tool N times; the table shows medians (default 1)
  --tools LIST  comma-separated subset of floor,flowfold,softflowd,pmacctd
  --workdir D   where captures, collector output and logs go
                (default \$BENCH_WORKDIR or /tmp/flowfold-bench; captures are reused)

Environment: FLOWGEN_SRC, BUILD, FLOWFOLD_BIN, FLOWFOLD_ARGS, FLOWFOLD_VERSION (10),
SOFTFLOWD_ARGS ("-m 262144"), SOFTFLOWD_POLL (0.05 s), PMACCTD_CONF_EXTRA,
BENCH_PORT_BASE (39500), NFCAPD_BUFFER (67108864), PROBE_TIMEOUT (3600 s),
DRAIN_TIMEOUT (120 s).
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --profile) PROFILE=$2; shift 2 ;;
        --profile=*) PROFILE=${1#*=}; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --tools) TOOLS=$2; shift 2 ;;
        --tools=*) TOOLS=${1#*=}; shift ;;
        --workdir) WORK=$2; shift 2 ;;
        --workdir=*) WORK=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

case $PROFILE in
    big)   FLOWGEN_ARGS="-n 5000000 -c 100000 -d 300 -S 128 -s 42" ;;
    ent)   FLOWGEN_ARGS="-n 5000000 -c 20000 -d 300 -S 128 -s 43 -a 1.1 -m 4" ;;
    small) FLOWGEN_ARGS="-n 300000 -c 10000 -d 60 -S 128 -s 7" ;;
    *) echo "run.sh: unknown profile '$PROFILE' (big, ent, small)" >&2; exit 2 ;;
esac
case $RUNS in
    ''|*[!0-9]*|0) echo "run.sh: --runs needs a positive integer" >&2; exit 2 ;;
esac
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case $t in
        floor|flowfold|softflowd|pmacctd) ;;
        *) echo "run.sh: unknown tool '$t' (floor, flowfold, softflowd, pmacctd)" >&2; exit 2 ;;
    esac
done

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
has_tool() { local t; for t in "${TOOL_LIST[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

# ---------------------------------------------------------------- prerequisites
TIME_BIN=/usr/bin/time
[ -x "$TIME_BIN" ] || die "GNU time is missing: apt-get install time"
"$TIME_BIN" -f '%U' true >/dev/null 2>&1 || die "$TIME_BIN is not GNU time (needs -f)"
command -v cc >/dev/null || die "cc is missing"
NEED=(nfcapd nfdump)
has_tool softflowd && NEED+=(softflowd softflowctl)
has_tool pmacctd && NEED+=(pmacctd)
for b in "${NEED[@]}"; do
    command -v "$b" >/dev/null || die "$b is missing (Debian: nfdump, softflowd, pmacct)"
done
[ -f /usr/include/pcap/pcap.h ] || die "libpcap headers missing: apt-get install libpcap-dev"
[ -f "$FLOWGEN_SRC" ] || die "flowgen source not found at $FLOWGEN_SRC (set FLOWGEN_SRC)"
AWK="awk"
command -v mawk >/dev/null && AWK="mawk"

mkdir -p "$WORK/bin" "$WORK/runs"
WORK=$(cd "$WORK" && pwd)

# Children we start (nfcapd, probes) are this shell's background jobs: stop the
# ones still running if we are interrupted (timeout passes TERM on to its probe).
cleanup() {
    local p
    for p in $(jobs -p); do
        kill -TERM "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------- build
build_c() { # out src extra-libs...
    local out=$1 src=$2; shift 2
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
        log "building $(basename "$out")"
        cc -O2 -o "$out" "$src" "$@"
    fi
}
build_c "$WORK/bin/flowgen" "$FLOWGEN_SRC" -lm
build_c "$WORK/bin/pcap_floor" "$BENCH_DIR/pcap_floor.c" -lpcap

# ------------------------------------------------------------------- capture
PCAP=$WORK/$PROFILE.pcap
TRUTH=$WORK/$PROFILE.tsv
STAMP=$WORK/$PROFILE.args
if [ -f "$PCAP" ] && [ -f "$TRUTH" ] && [ -f "$STAMP" ] &&
   [ "$(cat "$STAMP")" = "$FLOWGEN_ARGS $(md5sum <"$FLOWGEN_SRC" | cut -d' ' -f1)" ]; then
    log "reusing $PCAP"
else
    log "generating $PROFILE: flowgen $FLOWGEN_ARGS"
    rm -f "$STAMP"
    # shellcheck disable=SC2086
    "$WORK/bin/flowgen" -o "$PCAP" -t "$TRUTH" $FLOWGEN_ARGS
    echo "$FLOWGEN_ARGS $(md5sum <"$FLOWGEN_SRC" | cut -d' ' -f1)" >"$STAMP"
fi
read -r EXP_KEYS EXP_PACKETS EXP_BYTES < <($AWK -F'\t' '
    $1 != "" { n++; p += $7; b += $8 } END { printf "%d %.0f %.0f\n", n, p, b }' "$TRUTH")
FILE_PACKETS=$EXP_PACKETS
log "truth: $EXP_KEYS keys, $EXP_PACKETS packets, $EXP_BYTES IP bytes"

# ------------------------------------------------------------- socket buffer
RMEM_WANT=$NFCAPD_BUFFER
RMEM_NOW=$(sysctl -n net.core.rmem_max 2>/dev/null || echo 0)
if [ "$RMEM_NOW" -lt "$RMEM_WANT" ]; then
    if sysctl -q -w net.core.rmem_max="$RMEM_WANT" >/dev/null 2>&1; then
        log "raised net.core.rmem_max from $RMEM_NOW to $RMEM_WANT"
    else
        log "WARNING: could not raise net.core.rmem_max ($RMEM_NOW); nfcapd may drop datagrams"
    fi
fi
RMEM_MAX=$(sysctl -n net.core.rmem_max 2>/dev/null || echo unknown)

# ------------------------------------------------------------------- helpers
udp_rcvbuf_errors() { # kernel-wide Udp RcvbufErrors (what `nstat -az UdpRcvbufErrors` shows)
    $AWK '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $(c["RcvbufErrors"]) }' /proc/net/snmp
}

udp_port_line() { # the /proc/net/udp line of a 127.0.0.1 listener on port $1
    local hex
    hex=$(printf '%04X' "$1")
    $AWK -v want="0100007F:$hex" '$2 == want' /proc/net/udp
}

udp_rx_queue() { # bytes waiting in that socket's receive queue
    local q
    q=$(udp_port_line "$1" | $AWK '{ split($5, a, ":"); print a[2]; exit }')
    [ -n "$q" ] || { echo 0; return; }
    echo $((16#$q))
}

port_free() { [ -z "$(udp_port_line "$1")" ]; }

NFCAPD_PID=
start_nfcapd() { # dir port
    local dir=$1 port=$2
    mkdir -p "$dir/flows"
    nfcapd -w "$dir/flows" -p "$port" -b 127.0.0.1 -B "$NFCAPD_BUFFER" -t 3600 \
        >"$dir/nfcapd.log" 2>&1 &
    NFCAPD_PID=$!
    for _ in $(seq 1 100); do
        [ -n "$(udp_port_line "$port")" ] && return 0
        kill -0 "$NFCAPD_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$dir/nfcapd.log" >&2
    die "nfcapd did not come up on 127.0.0.1:$port"
}

stop_nfcapd() { # port: wait until its socket queue is empty, then TERM (it flushes its file)
    local port=$1 waited=0 zero=0
    while [ "$zero" -lt 3 ] && [ "$waited" -lt $((DRAIN_TIMEOUT * 10)) ]; do
        if [ "$(udp_rx_queue "$port")" -eq 0 ]; then zero=$((zero + 1)); else zero=0; fi
        sleep 0.1
        waited=$((waited + 1))
    done
    [ "$zero" -ge 3 ] || log "WARNING: nfcapd on port $port still had queued data after ${DRAIN_TIMEOUT}s"
    kill -TERM "$NFCAPD_PID" 2>/dev/null || true
    wait "$NFCAPD_PID" 2>/dev/null || true
    NFCAPD_PID=
}

# Each run_<tool> runs the probe under GNU time (writing $dir/time) and returns
# non-zero when the probe could not be run at all.
run_floor() { # dir
    local dir=$1
    timeout "$PROBE_TIMEOUT" "$TIME_BIN" -o "$dir/time" -f '%U %S %e %M' \
        "$WORK/bin/pcap_floor" "$PCAP" >"$dir/probe.log" 2>&1
}

run_flowfold() { # dir port
    local dir=$1 port=$2 rc=0
    # shellcheck disable=SC2086
    timeout "$PROBE_TIMEOUT" "$TIME_BIN" -o "$dir/time" -f '%U %S %e %M' \
        "$FLOWFOLD_BIN" -r "$PCAP" -n "127.0.0.1:$port" -v "$FLOWFOLD_VERSION" -P udp $FLOWFOLD_ARGS \
        >"$dir/probe.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || log "WARNING: flowfold exited with status $rc (see $dir/probe.log)"
}

run_softflowd() { # dir port
    # softflowd 1.1.0 with -r: it waits on its control socket until start-gather, and
    # in file mode it reads one batch of max-flows (-m) packets each time its poll()
    # wakes (about once a second, or on a control-socket connection). We poll
    # `statistics` every $SOFTFLOWD_POLL s, which both keeps it busy and tells us when
    # "Packets processed" reaches the file's packet count; then `shutdown` (flushes all
    # flows). If it reaches end of file first it shuts down (and flushes) on its own.
    local dir=$1 port=$2 ctl=$1/softflowd.ctl tpid n rc=0
    rm -f "$ctl"
    # shellcheck disable=SC2086
    timeout "$PROBE_TIMEOUT" "$TIME_BIN" -o "$dir/time" -f '%U %S %e %M' \
        softflowd -d -r "$PCAP" -n "127.0.0.1:$port" -v 9 -c "$ctl" -p "$dir/softflowd.pid" \
        $SOFTFLOWD_ARGS >"$dir/probe.log" 2>&1 &
    tpid=$!
    for _ in $(seq 1 200); do
        [ -S "$ctl" ] && break
        kill -0 "$tpid" 2>/dev/null || break
        sleep 0.02
    done
    [ -S "$ctl" ] || { wait "$tpid" || true; log "softflowd did not open $ctl (see $dir/probe.log)"; return 1; }
    softflowctl -c "$ctl" start-gather >>"$dir/softflowctl.log" 2>&1 || true
    while kill -0 "$tpid" 2>/dev/null; do
        n=$(softflowctl -c "$ctl" statistics 2>/dev/null | $AWK '/^Packets processed:/ { print $3 }') || true
        if [ -n "$n" ] && [ "$n" -ge "$FILE_PACKETS" ]; then
            softflowctl -c "$ctl" shutdown >>"$dir/softflowctl.log" 2>&1 || true
            break
        fi
        sleep "$SOFTFLOWD_POLL"
    done
    wait "$tpid" || rc=$?
    [ "$rc" -eq 0 ] || log "WARNING: softflowd exited with status $rc (see $dir/probe.log)"
}

run_pmacctd() { # dir port
    # pmacctd reads the file with pcap_savefile and exits at its end (pcap_savefile_wait
    # false, the default); the nfprobe plugin flushes its cache when the core stops.
    local dir=$1 port=$2 rc=0
    {
        echo "daemonize: false"
        echo "pcap_savefile: $PCAP"
        echo "pcap_savefile_wait: false"
        echo "plugins: nfprobe[np]"
        echo "nfprobe_receiver[np]: 127.0.0.1:$port"
        echo "nfprobe_version[np]: 9"
        [ -z "$PMACCTD_CONF_EXTRA" ] || printf '%b\n' "$PMACCTD_CONF_EXTRA"
    } >"$dir/pmacctd.conf"
    timeout "$PROBE_TIMEOUT" "$TIME_BIN" -o "$dir/time" -f '%U %S %e %M' \
        pmacctd -f "$dir/pmacctd.conf" >"$dir/probe.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || log "WARNING: pmacctd exited with status $rc (see $dir/probe.log)"
}

# ------------------------------------------------------------------- the runs
ROWS=$WORK/rows-$PROFILE.tsv      # one line per run
: >"$ROWS"
SKIPPED=()
port=$PORT_BASE

RUN_LIST=()
for tool in "${TOOL_LIST[@]}"; do
    if [ "$tool" = flowfold ] && [ ! -x "$FLOWFOLD_BIN" ]; then
        log "SKIP flowfold: no binary at $FLOWFOLD_BIN (build it, or set FLOWFOLD_BIN / BUILD)"
        SKIPPED+=("flowfold (no binary at $FLOWFOLD_BIN)")
        continue
    fi
    RUN_LIST+=("$tool")
done

# Every tool reads the capture from the page cache: without this read first,
# whichever tool runs first pays for reading it from disk (seen as 0.5 to
# 1.6 s of system time in the floor's first run, which skewed its median).
log "reading $PCAP once into the page cache"
cat "$PCAP" >/dev/null

# Round robin (run 1 of every tool, then run 2, ...): a shared VM's speed drifts
# over minutes, and runs of one tool back to back would carry that drift into
# the comparison between tools.
for run in $(seq 1 "$RUNS"); do
    for tool in "${RUN_LIST[@]}"; do
        dir=$WORK/runs/$PROFILE-$tool-$run
        rm -rf "$dir"
        mkdir -p "$dir"
        where=
        if [ "$tool" != floor ]; then
            while ! port_free "$port"; do port=$((port + 1)); done
            start_nfcapd "$dir" "$port"
            where=" (collector 127.0.0.1:$port)"
        fi
        log "$tool run $run/$RUNS$where"
        err0=$(udp_rcvbuf_errors)
        ok=1
        "run_$tool" "$dir" "$port" || ok=0
        if [ "$tool" != floor ]; then
            stop_nfcapd "$port"
            port=$((port + 1))
        fi
        err1=$(udp_rcvbuf_errors)
        if [ "$ok" -eq 0 ] || [ ! -s "$dir/time" ]; then
            log "WARNING: $tool run $run produced no timing; skipped"
            SKIPPED+=("$tool run $run (failed; see $dir)")
            continue
        fi
        u=0 s=0 e=0 m=0
        read -r u s e m < <(tail -n 1 "$dir/time") || true
        if [ "$tool" = floor ]; then
            fp=$($AWK '/^packets/ { print $2 }' "$dir/probe.log")
            echo "records=- packets=${fp:-0} bytes=- truth_lines=$EXP_KEYS truth_keys=- keys_seen=- keys_exact=- keys_extra=-" >"$dir/compare"
            seqerr=-
        else
            log "$tool run $run: reading back the collector's files"
            { nfdump -R "$dir/flows" -q -N -6 -o 'fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt' 2>"$dir/nfdump.err" || true; } |
                tr -d ' ' | $AWK -f "$BENCH_DIR/compare.awk" "$TRUTH" - >"$dir/compare" || true
            seqerr=$($AWK '/Sequence Errors:/ { sub(/.*Sequence Errors: */, ""); sub(/,.*/, ""); s += $0 } END { print s + 0 }' "$dir/nfcapd.log")
        fi
        C_records=0 C_packets=0 C_bytes=0 C_truth_keys=0 C_keys_seen=0 C_keys_exact=0 C_keys_extra=0
        # compare.awk prints only name=number (or name=-) pairs
        # shellcheck disable=SC2046
        eval $(tr ' ' '\n' <"$dir/compare" | grep -E '^[a-z_]+=([0-9]+|-)$' | sed 's/^/C_/')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
            "$tool" "$run" "$u" "$s" "$e" "$m" "$C_records" "$C_packets" "$C_bytes" \
            "$C_keys_seen" "$C_keys_exact" "$C_keys_extra" "$((err1 - err0))" "$seqerr" "$C_truth_keys" >>"$ROWS"
        log "$tool run $run: cpu ${u}+${s}s wall ${e}s rss ${m}KB records $C_records packets $C_packets/$EXP_PACKETS bytes $C_bytes/$EXP_BYTES rcvbuf-errors $((err1 - err0))"
    done
done

# ------------------------------------------------------------------- the table
# Per tool: median Mpps/CPU-s, CPU and wall over the runs; peak RSS is the largest;
# what the collector received is from the worst run (fewest packets).
summarise() {
    $AWK -F'\t' -v P="$FILE_PACKETS" -v EK="$EXP_KEYS" -v EP="$EXP_PACKETS" -v EB="$EXP_BYTES" '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function num(x) { return x == "-" ? "-" : sprintf("%.0f", x) }
    function lost(e, r) { return r == "-" ? "-" : sprintf("%.0f", e - r) }
    {
        t = $1
        if (!(t in seen)) { seen[t] = 1; order[++nt] = t }
        cpu = $3 + $4
        mpps[t] = mpps[t] " " (cpu > 0 ? P / cpu / 1e6 : 0)
        cpus[t] = cpus[t] " " cpu
        wall[t] = wall[t] " " $5
        if ($6 > rss[t]) rss[t] = $6
        runs[t]++
        if (!(t in worst) || ($8 != "-" && $8 + 0 < wp[t])) {
            worst[t] = $0; wp[t] = ($8 == "-") ? 0 : $8 + 0
        }
    }
    END {
        print "| tool | runs | Mpps/CPU-s | CPU s | wall s | peak RSS MB | flows: records / keys expected | keys seen / expected | keys exact | packets recv / expected | bytes recv / expected | lost keys | lost packets | lost bytes | UdpRcvbufErrors | nfcapd seq. errors |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nt; i++) {
            t = order[i]
            split(worst[t], w, "\t")
            if (t == "floor") {
                printf "| %s | %d | %.2f | %.2f | %.2f | %.1f | - | - | - | %s / %s | - | - | %s | - | - | - |\n",
                    t, runs[t], median(mpps[t]), median(cpus[t]), median(wall[t]), rss[t] / 1024,
                    w[8], EP, lost(EP, w[8])
            } else {
                printf "| %s | %d | %.3f | %.2f | %.2f | %.1f | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s | %s | %s | %s | %s |\n",
                    t, runs[t], median(mpps[t]), median(cpus[t]), median(wall[t]), rss[t] / 1024,
                    num(w[7]), EK, num(w[10]), num(w[15]), num(w[11]), num(w[8]), EP, num(w[9]), EB,
                    lost(w[15], w[10]), lost(EP, w[8]), lost(EB, w[9]), w[13], w[14]
            }
        }
    }' "$ROWS"
}

TABLE=$(summarise)

# ---------------------------------------------------------------- the record
pkgver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "not installed"; }
HOST=$(hostname -s 2>/dev/null || hostname)
STAMP_NOW=$(date +%Y-%m-%d-%H%M%S)
mkdir -p "$BENCH_DIR/results"
OUT=$BENCH_DIR/results/$STAMP_NOW-$PROFILE-$HOST.md
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
CPUS=$(nproc)
MEM=$($AWK '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FLOWFOLD_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo "no commit")
FLOWFOLD_VER="not run"
if has_tool flowfold && [ -x "$FLOWFOLD_BIN" ]; then
    FLOWFOLD_VER=$("$FLOWFOLD_BIN" --version 2>/dev/null | head -n 1 || true)
    FLOWFOLD_VER=${FLOWFOLD_VER:--}
fi

{
    echo "# flowfold benchmark: profile \`$PROFILE\` on $HOST, $(date '+%Y-%m-%d %H:%M %Z')"
    echo
    echo "Capture: \`flowgen $FLOWGEN_ARGS\` — $FILE_PACKETS packets, $EXP_KEYS flow keys, $EXP_BYTES IP bytes; runs per tool: $RUNS."
    echo
    echo "$TABLE"
    echo
    if [ ${#SKIPPED[@]} -gt 0 ]; then
        echo "Skipped: $(IFS=';'; echo "${SKIPPED[*]}")."
        echo
    fi
    echo "Mpps/CPU-s = packets in the file / (user + system CPU of the probe, collector not counted);"
    echo "medians over the runs for Mpps, CPU and wall; peak RSS is the largest; the delivery columns"
    echo "are from the run that delivered the fewest packets. Keys are compared without VLAN, and"
    echo "without ports for ICMP/ICMPv6 (see bench/README.md)."
    echo
    echo "## Machine"
    echo
    echo "- CPU: ${CPU_MODEL:-unknown}, $CPUS logical CPUs; memory $MEM"
    # shellcheck disable=SC1091
    echo "- kernel: $(uname -srm); $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- net.core.rmem_max: $RMEM_MAX; nfcapd -B $NFCAPD_BUFFER"
    echo "- packages: softflowd $(pkgver softflowd), pmacct $(pkgver pmacct), nfdump $(pkgver nfdump), libpcap $(pkgver libpcap0.8)"
    echo "- flowfold: $FLOWFOLD_VER (tree $FLOWFOLD_REV)"
    echo
    echo "## Command lines"
    echo
    has_tool floor && echo "- floor: \`pcap_floor FILE\` (bench/pcap_floor.c, cc -O2)"
    has_tool flowfold && echo "- flowfold: \`$FLOWFOLD_BIN -r FILE -n 127.0.0.1:PORT -v $FLOWFOLD_VERSION -P udp${FLOWFOLD_ARGS:+ $FLOWFOLD_ARGS}\`"
    has_tool softflowd && echo "- softflowd: \`softflowd -d -r FILE -n 127.0.0.1:PORT -v 9 -c CTL -p PID $SOFTFLOWD_ARGS\`, then \`softflowctl start-gather\`, \`statistics\` every ${SOFTFLOWD_POLL}s, \`shutdown\` when all packets are processed"
    has_tool pmacctd && echo "- pmacctd: \`pmacctd -f CONF\`, CONF = pcap_savefile FILE, pcap_savefile_wait false, plugins nfprobe, nfprobe_version 9${PMACCTD_CONF_EXTRA:+, plus: $(printf '%b' "$PMACCTD_CONF_EXTRA" | tr '\n' ';')}"
    echo "- collector: \`nfcapd -w DIR -p PORT -b 127.0.0.1 -B $NFCAPD_BUFFER -t 3600\` (one per run); read back with \`nfdump -R DIR -q -N -6 -o 'fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt'\`"
    echo
    echo "## Runs"
    echo
    echo "| tool | run | user s | sys s | wall s | max RSS KB | records | packets | bytes | keys seen | keys exact | keys extra | UdpRcvbufErrors | seq. errors | keys expected |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    $AWK -F'\t' '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }' "$ROWS"
    if has_tool flowfold; then
        # Where flowfold's CPU went, from the end of its stats line
        # ("| cpu_ms: packet=N export=N"): the packet side (reading, decoding,
        # the flow table) and the export thread (encoding, sending).
        echo
        echo "## flowfold's CPU by thread (its stats line)"
        echo
        echo "| run | packet side s | export thread s |"
        echo "|---:|---:|---:|"
        for run in $(seq 1 "$RUNS"); do
            $AWK -v run="$run" '/cpu_ms:/ {
                    sub(/.*cpu_ms:/, "")
                    for (i = 1; i <= NF; i++) { split($i, kv, "="); ms[kv[1]] = kv[2] }
                    printf "| %s | %.3f | %.3f |\n", run, ms["packet"] / 1000, ms["export"] / 1000
                }' "$WORK/runs/$PROFILE-flowfold-$run/probe.log" 2>/dev/null | tail -n 1
        done
    fi
} >"$OUT"

echo
echo "Profile $PROFILE: $FILE_PACKETS packets, $EXP_KEYS keys, $EXP_BYTES IP bytes"
echo
echo "$TABLE"
[ ${#SKIPPED[@]} -eq 0 ] || { echo; echo "Skipped: $(IFS=';'; echo "${SKIPPED[*]}")"; }
echo
echo "Saved to ${OUT#"$REPO"/}"
