#!/usr/bin/env bash
# bench/stenographer.sh — flowfold's packet recorder against stenographer 1.0.1
# (Debian 12), on the same traffic: a flowgen capture replayed with tcpreplay
# through a veth pair between two network namespaces, the recorder listening
# on the far end. For each recorder it measures:
#
#   1. CPU per packet: the recorder's process CPU (user + sys from /proc/PID/stat)
#      from just before the replay until it is idle again, over packets captured.
#      flowfold is also run without --record on the same replay (the recording's
#      own cost is the difference). For stenographer the writer (stenotype) is
#      the recorder; the server (stenographer, which also answers the queries
#      of step 4) is reported beside it.
#   2. packets kept: read back from the recorder (all of them) against sent;
#   3. bytes on disk per packet (packet files) and the index as % of them;
#   4. time to queryable: from the end of the replay until a query for a flow
#      sent near the end returns all its packets (polled every 100 ms);
#   5. query latency for that flow's 5-tuple, warm (repeated) and cold (page
#      cache dropped first), and whether the output holds the same frames as
#      `tcpdump -r CAPTURE FILTER` (frame bytes compared, not timestamps);
#   6. a stop right after a replay (SIGTERM, as systemd stops a unit): packets
#      readable afterwards.
#
#   sudo FLOWFOLD_BIN=build-rel/probe/flowfold bench/stenographer.sh [options]
#
#   --runs N        measured runs of each recorder (default 3; medians are shown)
#   --stop-runs N   stop-after-replay runs of each recorder (default 1)
#   --rate PPS      tcpreplay -p (default 100000 packets a second)
#   --packets N     flowgen packets (default 1000000)
#   --workdir DIR   default /tmp/ffst-steno-bench (capture, rings, logs)
#   --install       apt-get install the packages it needs first
#
# Needs root (namespaces, drop_caches, starting stenographer as its user), and
# on Debian 12: apt-get install -y stenographer tcpreplay tcpdump jq curl gcc
# (stenographer's postinst creates the certificates in /etc/stenographer/certs;
# when they are missing the script runs stenokeys.sh). The namespaces and veth
# names start with "ffst"; they are removed at the end, as is everything the
# script started.
set -euo pipefail

runs=3
stop_runs=1
rate=100000
packets=1000000
work=/tmp/ffst-steno-bench
install=0
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --stop-runs) stop_runs=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --packets) packets=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --install) install=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
FLOWFOLD_BIN=${FLOWFOLD_BIN:-$repo/build-rel/probe/flowfold}
FLOWGEN_SRC=${FLOWGEN_SRC:-$repo/../shared/tools/flowgen.c}
# flowgen arguments: 1M packets, 20k concurrent flows, 60 s of traffic, frames
# cut to 128 bytes (the capture's snap length: 91.7 bytes a frame on average,
# so tcpreplay sends 91.7-byte frames), no 802.1Q tags (stenographer drops
# them), 25 % IPv6 (flowgen's default).
FLOWGEN_ARGS=${FLOWGEN_ARGS:--c 20000 -d 60 -S 128 -s 11 -v 0}
STENO_PORT=${STENO_PORT:-39123}
# stenotype: 64 blocks of 1 MiB (the same 64 MiB as flowfold's capture buffer;
# the default 2048 costs seconds to start), aiops must not exceed blocks;
# files rotate after 10 s (default 60) so that packets become queryable sooner;
# no watchdogs (an idle interface trips them after 2 x fileage_sec).
STENO_FLAGS=${STENO_FLAGS:---blocks=64 --aiops=32 --fileage_sec=10 --no_watchdogs}
PY=/usr/bin/python3

ns_s=ffst-snd ns_r=ffst-rcv if_s=ffst-s0 if_r=ffst-r0

die() { echo "stenographer.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root"
if ((install)); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y stenographer tcpreplay tcpdump jq curl gcc
fi
for c in ip tcpreplay tcpdump stenoread stenocurl jq curl setpriv gcc; do
  command -v $c >/dev/null || die "$c is missing: apt-get install -y stenographer tcpreplay tcpdump jq curl gcc (or --install)"
done
[[ -x /usr/sbin/stenographer && -x /usr/sbin/stenotype ]] || die "stenographer is missing: apt-get install -y stenographer"
[[ -x $FLOWFOLD_BIN ]] || die "no flowfold binary at $FLOWFOLD_BIN (set FLOWFOLD_BIN)"
[[ -x $PY ]] || die "$PY is missing"
if [[ ! -e /etc/stenographer/certs/client_key.pem ]]; then
  keys=$(command -v stenokeys.sh || echo /usr/sbin/stenokeys.sh)
  [[ -x $keys ]] || die "no certificates in /etc/stenographer/certs and no stenokeys.sh"
  "$keys" stenographer stenographer
fi

mkdir -p "$work"
chmod 755 "$work"
log=$work/log
mkdir -p "$log"

# ------------------------------------------------------------------ helpers
now() { date +%s.%N; }
alive() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [[ -n $s && $s != Z ]]; }
cpu_us() { awk '{print $14, $15}' "/proc/$1/stat" 2>/dev/null || echo 0 0; }  # user and system ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
median() { sort -g | awk '{a[NR] = $1} END {if (!NR) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR) print lo "–" hi}'; }
sum_sizes() { local t=0 f; for f in "$@"; do [[ -f $f ]] && t=$((t + $(stat -c %s "$f"))); done; echo $t; }

cat >"$work/pcaptool.py" <<'EOF'
# count FILE...           packets in pcap files (usec or nsec), "-" = stdin
# frames FILE             md5 of every frame's bytes, one a line, in order
# target CAPTURE          a filter for one IPv4 TCP/UDP flow sent near the end
import hashlib, struct, sys

def packets(path):
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    head = f.read(24)
    if len(head) < 24:
        return
    magic = struct.unpack("<I", head[:4])[0]
    end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    while True:
        h = f.read(16)
        if len(h) < 16:
            return
        sec, frac, caplen, length = struct.unpack(end + "IIII", h)
        data = f.read(caplen)
        if len(data) < caplen:
            return
        yield data

cmd = sys.argv[1]
if cmd == "count":
    print(sum(sum(1 for _ in packets(p)) for p in sys.argv[2:]))
elif cmd == "frames":
    for d in packets(sys.argv[2]):
        print(hashlib.md5(d).hexdigest())
elif cmd == "target":
    count, last, n = {}, {}, 0
    for d in packets(sys.argv[2]):
        n += 1
        if len(d) < 38 or d[12:14] != b"\x08\x00" or d[23] not in (6, 17):
            continue
        ihl = (d[14] & 15) * 4
        if len(d) < 14 + ihl + 4:
            continue
        a, b = d[26:30], d[30:34]
        p, q = struct.unpack(">HH", d[14 + ihl:18 + ihl])
        k = tuple(sorted([(a, p), (b, q)]))
        count[k] = count.get(k, 0) + 1
        last[k] = n
    near_end = [k for k in count if last[k] > n * 0.995]
    k = max(near_end, key=lambda k: (count[k], last[k]))
    (a, p), (b, q) = k
    ip = lambda x: ".".join(str(c) for c in x)
    ports = "port %d" % p if p == q else "port %d and port %d" % (p, q)
    print("host %s and host %s and %s" % (ip(a), ip(b), ports))
EOF
pcaptool() { "$PY" "$work/pcaptool.py" "$@"; }

# ------------------------------------------------------------------ capture
cap=$work/capture.pcap
fgbin=$work/flowgen
stamp="$packets $FLOWGEN_ARGS $(md5sum <"$FLOWGEN_SRC")"
if [[ ! -s $cap || $(cat "$cap.args" 2>/dev/null) != "$stamp" ]]; then
  gcc -O2 -o "$fgbin" "$FLOWGEN_SRC" -lm
  # shellcheck disable=SC2086
  nice -n 10 "$fgbin" -o "$cap" -n "$packets" $FLOWGEN_ARGS
  echo "$stamp" >"$cap.args"
fi
sent_packets=$(pcaptool count "$cap")
cap_bytes=$(stat -c %s "$cap")
filter=$(pcaptool target "$cap")
rm -f "$work/reference.pcap"
tcpdump -r "$cap" -w "$work/reference.pcap" "$filter" 2>/dev/null
pcaptool frames "$work/reference.pcap" >"$work/reference.frames"
ref_packets=$(wc -l <"$work/reference.frames")
echo "capture: $cap ($sent_packets packets, $cap_bytes bytes; flowgen -n $packets $FLOWGEN_ARGS)"
echo "query:   '$filter' ($ref_packets packets in the capture)"

# ------------------------------------------------------------------ network
teardown_net() {
  ip netns pids $ns_r 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns pids $ns_s 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del $ns_s 2>/dev/null || true
  ip netns del $ns_r 2>/dev/null || true
}
setup_net() {
  teardown_net
  local n
  for n in $ns_s $ns_r; do
    ip netns add $n
    # No IPv6 (router solicitations, MLD) and no addresses: the link carries
    # only what tcpreplay sends.
    ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n $n link set lo up
  done
  ip -n $ns_s link add $if_s type veth peer name $if_r netns $ns_r
  ip -n $ns_s link set $if_s up
  ip -n $ns_r link set $if_r up
}
started=()
cleanup() {
  local p
  for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  teardown_net
  # stenographer leaves a /tmp/stenographerNNN directory of links per start
  for p in /tmp/stenographer*/PKT0; do
    [[ -L $p && $(readlink "$p") == "$work"/* ]] && rm -rf "$(dirname "$p")"
  done
  return 0
}
trap cleanup EXIT
setup_net

replay() {  # prints the packets tcpreplay sent
  local out
  out=$(ip netns exec $ns_s tcpreplay -i $if_s -p "$rate" "$cap" 2>&1)
  echo "$out" >>"$log/tcpreplay.log"
  grep -q "Failed packets: *0" <<<"$out" || echo "tcpreplay reported failures: $out" >&2
  awk '/Actual:/ {print $2; exit}' <<<"$out"
}
wait_idle() {  # waits until the processes given use < 0.02 s of CPU in a second (at most 60 s)
  local i a b p
  for ((i = 0; i < 60; i++)); do
    a=0; for p in "$@"; do a=$((a + $(cpu_ticks "$p"))); done
    sleep 1
    b=0; for p in "$@"; do b=$((b + $(cpu_ticks "$p"))); done
    ((b - a <= hz / 50)) && return 0
  done
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---------------------------------------------------------------- flowfold
ff_pid=
ff_start() {  # ff_start DIR record|norec
  local dir=$1 mode=$2 args=()
  rm -rf "$dir"; mkdir -p "$dir/ring"
  printf 'run_as_root: true\n' >"$dir/flowfold.yaml"
  [[ $mode == record ]] && args=(--record "$dir/ring")
  ip netns exec $ns_r "$FLOWFOLD_BIN" -c "$dir/flowfold.yaml" -i $if_r --ipfix-file /dev/null "${args[@]}" \
    >"$dir/flowfold.log" 2>&1 &
  ff_pid=$!
  started+=("$ff_pid")
  local i
  for ((i = 0; i < 300; i++)); do
    grep -qs "capturing on" "$dir/flowfold.log" && return 0
    kill -0 "$ff_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/flowfold.log" >&2; die "flowfold did not start"
}
ff_stop() {  # SIGTERM, wait; sets stop_took (seconds)
  local t0; t0=$(now)
  kill -TERM "$ff_pid"
  wait "$ff_pid" || echo "flowfold exited with status $?" >&2
  stop_took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
}
ff_query() {  # ff_query DIR OUT [FILTER]: a query of the ring into OUT
  rm -f "$2"
  "$FLOWFOLD_BIN" extract --ring "$1/ring" -w "$2" ${3:+"$3"} 2>>"$1/extract.log"
}
ff_stat() { grep -o "$2=[0-9]*" "$1/flowfold.log" | tail -1 | cut -d= -f2; }

# ------------------------------------------------------------ stenographer
st_pid= st_writer=
st_config() {  # st_config DIR
  local flags f
  flags=$(for f in $STENO_FLAGS; do printf '"%s",' "${f//\"/}"; done)
  cat >"$1/config" <<EOF
{"Threads":[{"PacketsDirectory":"$1/packets","IndexDirectory":"$1/index","MaxDirectoryFiles":30000,"DiskFreePercentage":10}],
 "StenotypePath":"/usr/sbin/stenotype","Interface":"$if_r","Port":$STENO_PORT,"Host":"127.0.0.1",
 "Flags":[${flags%,}],"CertPath":"/etc/stenographer/certs"}
EOF
}
st_start() {  # st_start DIR [keep]: start the server (which starts stenotype), wait for the writer
  local dir=$1 i
  if [[ ${2:-} != keep ]]; then
    rm -rf "$dir"; mkdir -p "$dir/packets" "$dir/index"
    st_config "$dir"
    chown -R stenographer:stenographer "$dir"
  fi
  (cd / && exec ip netns exec $ns_r setpriv --reuid=stenographer --regid=stenographer --init-groups \
    /usr/sbin/stenographer -config "$dir/config" -syslog=false) >>"$dir/stenographer.log" 2>&1 &
  st_pid=$!
  started+=("$st_pid")
  st_writer=
  for ((i = 0; i < 600; i++)); do
    st_writer=$(pgrep -P "$st_pid" -x stenotype || true)
    # stenotype opens its first (hidden) file once its capture is set up
    if [[ -n $st_writer ]] && compgen -G "$dir/packets/.*[0-9]" >/dev/null; then
      started+=("$st_writer"); return 0
    fi
    kill -0 "$st_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$dir/stenographer.log" >&2; die "stenographer did not start"
}
st_stop() {  # as systemd stops the unit: SIGTERM to both, SIGKILL after STENO_STOP_WAIT s; sets stop_took
  local t0 i killed=""; t0=$(now)
  kill -TERM "$st_pid" "$st_writer" 2>/dev/null || true
  for ((i = 0; i < ${STENO_STOP_WAIT:-30} * 10; i++)); do
    alive "$st_pid" || alive "$st_writer" || break
    sleep 0.1
  done
  if alive "$st_pid" || alive "$st_writer"; then
    killed=" (SIGKILL: $(alive "$st_pid" && echo -n "stenographer " || true)$(alive "$st_writer" && echo -n "stenotype " || true)still running)"
    kill -9 "$st_pid" "$st_writer" 2>/dev/null || true
  fi
  wait "$st_pid" 2>/dev/null || true
  stop_took=$(awk -v a="$t0" -v b="$(now)" -v k="$killed" 'BEGIN {printf "%.2f%s", b - a, k}')
}
st_query() {  # st_query DIR OUT QUERY
  rm -f "$2"
  ip netns exec $ns_r env STENOGRAPHER_CONFIG="$1/config" stenoread "$3" -w "$2" >/dev/null 2>>"$1/stenoread.log"
}
# everything it holds: a time query (stenographer has no "all")
st_query_all() { st_query "$1" "$2" "after 24h ago"; }

# ---------------------------------------------------------------- one run
results=$work/results.tsv
: >"$results"
put() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }  # recorder metric value

time_to_queryable() {  # KIND DIR t_end: polls the flow's query every 100 ms; prints
  # "END START": seconds from t_end to the end of the first poll that returned
  # every packet (what a user waits), and to the start of that poll
  local kind=$1 dir=$2 t_end=$3 out=$dir/poll.pcap n i t0
  for ((i = 0; i < 1200; i++)); do
    t0=$(now)
    if [[ $kind == flowfold ]]; then ff_query "$dir" "$out" "$filter" || true; else st_query "$dir" "$out" "$filter" || true; fi
    n=$(pcaptool count "$out" 2>/dev/null || echo 0)
    if ((n >= ref_packets)); then awk -v a="$t_end" -v b="$(now)" -v s="$t0" 'BEGIN {printf "%.2f %.2f\n", b - a, s - a}'; return; fi
    sleep 0.1
  done
  echo "timeout timeout"
}
same_frames() {  # same_frames FILE: "same" or what differs from the reference
  pcaptool frames "$1" >"$1.frames"
  if cmp -s "$1.frames" "$work/reference.frames"; then echo same
  elif cmp -s <(sort "$1.frames") <(sort "$work/reference.frames"); then echo "same frames, other order"
  else echo "differs: $(wc -l <"$1.frames") frames, $(comm -23 <(sort "$1.frames") <(sort "$work/reference.frames") | wc -l) not in the reference, $(comm -13 <(sort "$1.frames") <(sort "$work/reference.frames") | wc -l) missing"
  fi
}
query_latency() {  # query_latency KIND DIR NAME: warm x5 then cold x3
  local kind=$1 dir=$2 name=$3 i t0 t
  for ((i = 0; i < 8; i++)); do
    ((i >= 5)) && drop_caches
    t0=$(now)
    if [[ $kind == flowfold ]]; then ff_query "$dir" "$dir/q.pcap" "$filter"; else st_query "$dir" "$dir/q.pcap" "$filter"; fi
    t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')
    if ((i == 0)); then put "$name" query_output "$(same_frames "$dir/q.pcap")"; cp "$dir/q.pcap" "$dir/query.pcap"; fi
    # the first is the first query after the polls: warm as well
    if ((i < 5)); then put "$name" query_warm_s "$t"; else put "$name" query_cold_s "$t"; fi
  done
}

run_flowfold() {  # run_flowfold N record|norec
  local r=$1 mode=$2 dir name c0 c1 u0 u1 sent t_end tq cap_n
  dir=$work/run-$r-flowfold-$mode
  name=flowfold; [[ $mode == norec ]] && name=flowfold-norec
  ff_start "$dir" "$mode"
  sleep 1
  c0=$(cpu_ticks "$ff_pid"); u0=$(cpu_us "$ff_pid")
  sent=$(replay); t_end=$(now)
  put "$name" sent "$sent"
  if [[ $mode == record ]]; then
    tq=$(time_to_queryable flowfold "$dir" "$t_end")
    put "$name" queryable_s "${tq% *}"
    put "$name" queryable_poll_start_s "${tq#* }"
  fi
  wait_idle "$ff_pid"
  c1=$(cpu_ticks "$ff_pid"); u1=$(cpu_us "$ff_pid")
  put "$name" user_sys_s "$(echo $u0 $u1 | awk -v h="$hz" '{printf "%.2f/%.2f", ($3 - $1) / h, ($4 - $2) / h}')"
  put "$name" cpu_s "$(awk -v t=$((c1 - c0)) -v h="$hz" 'BEGIN {printf "%.2f", t / h}')"
  if [[ $mode == record ]]; then
    ff_query "$dir" "$dir/all.pcap"
    put "$name" kept "$(pcaptool count "$dir/all.pcap")"
    rm -f "$dir/all.pcap"
    query_latency flowfold "$dir" "$name"
  fi
  ff_stop; put "$name" stop_s "$stop_took"
  cap_n=$(ff_stat "$dir" captured)
  put "$name" captured "$cap_n"
  put "$name" capture_dropped "$(ff_stat "$dir" capture_dropped)"
  if [[ $mode == record ]]; then
    put "$name" recorder_packets "$(ff_stat "$dir" recorder_packets)"
    put "$name" recorder_dropped "$(ff_stat "$dir" recorder_dropped)"
    put "$name" packet_bytes "$(sum_sizes "$dir"/ring/*.pcap)"
    put "$name" index_bytes "$(sum_sizes "$dir"/ring/*.idx "$dir"/ring/*.flows)"
    put "$name" idx_bytes "$(sum_sizes "$dir"/ring/*.idx)"
    put "$name" flows_bytes "$(sum_sizes "$dir"/ring/*.flows)"
    put "$name" packet_files "$(ls "$dir"/ring/*.pcap | wc -l)"
    rm -rf "$dir/ring"
  fi
}

run_steno() {  # run_steno N
  local r=$1 dir c0 c1 s0 s1 u0 u1 sent t_end tq
  dir=$work/run-$r-stenographer
  st_start "$dir"
  sleep 1
  c0=$(cpu_ticks "$st_writer"); s0=$(cpu_ticks "$st_pid"); u0=$(cpu_us "$st_writer")
  sent=$(replay); t_end=$(now)
  put stenographer sent "$sent"
  tq=$(time_to_queryable stenographer "$dir" "$t_end")
  put stenographer queryable_s "${tq% *}"
  put stenographer queryable_poll_start_s "${tq#* }"
  wait_idle "$st_writer"
  c1=$(cpu_ticks "$st_writer"); s1=$(cpu_ticks "$st_pid"); u1=$(cpu_us "$st_writer")
  put stenographer user_sys_s "$(echo $u0 $u1 | awk -v h="$hz" '{printf "%.2f/%.2f", ($3 - $1) / h, ($4 - $2) / h}')"
  put stenographer cpu_s "$(awk -v t=$((c1 - c0)) -v h="$hz" 'BEGIN {printf "%.2f", t / h}')"
  put stenographer server_cpu_s "$(awk -v t=$((s1 - s0)) -v h="$hz" 'BEGIN {printf "%.2f", t / h}')"
  st_query_all "$dir" "$dir/all.pcap"
  put stenographer kept "$(pcaptool count "$dir/all.pcap")"
  rm -f "$dir/all.pcap"
  query_latency stenographer "$dir" stenographer
  st_stop; put stenographer stop_s "$stop_took"
  # packet files, without the empty ones of an idle link's rotations
  put stenographer packet_bytes "$(sum_sizes "$dir"/packets/[0-9]*)"
  put stenographer index_bytes "$(sum_sizes "$dir"/index/[0-9]*)"
  put stenographer packet_files "$(find "$dir/packets" -name '[0-9]*' -size +0 | wc -l)"
  rm -rf "$dir/packets" "$dir/index"
}

stop_flowfold() {  # SIGTERM right after the replay
  local r=$1 dir=$work/stop-$r-flowfold sent
  ff_start "$dir" record
  sent=$(replay)
  put flowfold stop_sent "$sent"
  ff_stop; put flowfold stop_after_replay_s "$stop_took"
  ff_query "$dir" "$dir/all.pcap"
  put flowfold stop_readable "$(pcaptool count "$dir/all.pcap")"
  rm -rf "$dir/ring" "$dir/all.pcap"
}
stop_steno() {
  local r=$1 dir=$work/stop-$r-stenographer sent a b i
  st_start "$dir"
  sent=$(replay)
  put stenographer stop_sent "$sent"
  st_stop; put stenographer stop_after_replay_s "$stop_took"
  # what the stop left (a name starting with "." is a file still open)
  ls -la --time-style=full-iso "$dir/packets" "$dir/index" >"$dir/files-after-stop.txt"
  # readable afterwards: start it again on the same directories (the link is
  # quiet) and ask for everything, until a rescan (15 s) changes nothing
  st_start "$dir" keep
  a=-1
  for ((i = 0; i < 12; i++)); do
    st_query_all "$dir" "$dir/all.pcap" || true
    b=$(pcaptool count "$dir/all.pcap" 2>/dev/null || echo 0)
    ((b == a && i >= 3)) && break
    a=$b
    sleep 8
  done
  put stenographer stop_readable "$b"
  st_stop
  rm -rf "$dir/packets" "$dir/index" "$dir/all.pcap"
}

for ((r = 1; r <= runs; r++)); do
  echo "run $r of $runs"
  run_flowfold "$r" norec
  run_flowfold "$r" record
  run_steno "$r"
done
for ((r = 1; r <= stop_runs; r++)); do
  echo "stop run $r of $stop_runs"
  stop_flowfold "$r"
  stop_steno "$r"
done

# ------------------------------------------------------------------ report
val() { awk -F'\t' -v r="$1" -v m="$2" '$1 == r && $2 == m {print $3}' "$results"; }
med() { val "$1" "$2" | median; }
rng() { val "$1" "$2" | range; }
mr() { local m; m=$(med "$1" "$2"); echo "$m ($(rng "$1" "$2"))"; }
per_packet() {  # per_packet REC METRIC SCALE: median over the runs of METRIC / kept * SCALE
  paste <(val "$1" "$2") <(val "$1" kept) | awk -v s="$3" '$2 > 0 {printf "%.1f\n", $1 / $2 * s}'
}
pp() { local v; v=$(per_packet "$@"); echo "$(median <<<"$v") ($(range <<<"$v"))"; }
ns_pkt_norec=$(paste <(val flowfold-norec cpu_s) <(val flowfold-norec sent) | awk '{printf "%.1f\n", $1 / $2 * 1e9}')
index_pct() { paste <(val "$1" index_bytes) <(val "$1" packet_bytes) | awk '$2 > 0 {printf "%.2f\n", $1 / $2 * 100}'; }

report=$work/report.md
{
  echo "## Recording against stenographer"
  echo
  echo "Command: \`$0 --runs $runs --stop-runs $stop_runs --rate $rate --packets $packets\` (FLOWFOLD_BIN=$FLOWFOLD_BIN)"
  echo
  echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r), $(df -T "$work" | awk 'NR == 2 {print $2}') on $(df "$work" | awk 'NR == 2 {print $1}')."
  echo "Versions: flowfold $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'), stenographer $(dpkg-query -W -f '${Version}' stenographer), tcpreplay $(dpkg-query -W -f '${Version}' tcpreplay), libpcap $(dpkg-query -W -f '${Version}' libpcap0.8 2>/dev/null)."
  echo "Traffic: \`flowgen -n $packets $FLOWGEN_ARGS\`: $sent_packets packets, $(awk -v b="$cap_bytes" -v n="$sent_packets" 'BEGIN {printf "%.1f", (b - 24) / n - 16}') bytes a frame on average, replayed at $rate packets/s (\`tcpreplay -p $rate\`) from one namespace into the other."
  echo "stenographer: stenotype flags $STENO_FLAGS, one thread, one directory. flowfold: \`-i IF --ipfix-file /dev/null --record DIR\` (defaults: 64 MiB capture buffer, 1 GiB segments)."
  echo "Query: \`$filter\` ($ref_packets packets in the capture)."
  echo
  echo "Medians of $runs runs (range in brackets); the query rows: of every query (5 warm and 3 cold a run)."
  echo
  echo "| | flowfold --record | stenographer |"
  echo "|---|---|---|"
  echo "| packets sent / captured / kept (read back) | $(med flowfold sent) / $(med flowfold captured) / $(mr flowfold kept) | $(med stenographer sent) / – / $(mr stenographer kept) |"
  echo "| recorder CPU s | $(mr flowfold cpu_s) (without --record: $(mr flowfold-norec cpu_s)) | stenotype $(mr stenographer cpu_s); server $(mr stenographer server_cpu_s) |"
  echo "| user/sys CPU s, run by run | $(val flowfold user_sys_s | paste -sd' ') (without --record: $(val flowfold-norec user_sys_s | paste -sd' ')) | stenotype $(val stenographer user_sys_s | paste -sd' ') |"
  echo "| CPU ns / packet | $(pp flowfold cpu_s 1e9) (without --record: $(median <<<"$ns_pkt_norec")) | stenotype $(pp stenographer cpu_s 1e9) |"
  echo "| recording's own CPU ns / packet | $(paste <(val flowfold cpu_s) <(val flowfold-norec cpu_s) <(val flowfold kept) | awk '{printf "%.1f\n", ($1 - $2) / $3 * 1e9}' | median) (with − without, run by run) | $(per_packet stenographer cpu_s 1e9 | median) (all of stenotype) |"
  echo "| packet files: bytes / packet | $(pp flowfold packet_bytes 1) | $(pp stenographer packet_bytes 1) |"
  echo "| index: % of packet files | $(index_pct flowfold | median) (.idx $(paste <(val flowfold idx_bytes) <(val flowfold packet_bytes) | awk '{printf "%.2f\n", $1 / $2 * 100}' | median) %, .flows $(paste <(val flowfold flows_bytes) <(val flowfold packet_bytes) | awk '{printf "%.2f\n", $1 / $2 * 100}' | median) %) | $(index_pct stenographer | median) |"
  echo "| time to queryable, s (end of the first poll with every packet) | $(mr flowfold queryable_s) | $(mr stenographer queryable_s) |"
  echo "| ... to the start of that poll, s | $(mr flowfold queryable_poll_start_s) | $(mr stenographer queryable_poll_start_s) |"
  echo "| query, warm, s | $(mr flowfold query_warm_s) | $(mr stenographer query_warm_s) |"
  echo "| query, cold, s | $(mr flowfold query_cold_s) | $(mr stenographer query_cold_s) |"
  echo "| query output vs \`tcpdump -r\` | $(val flowfold query_output | sort | uniq -c | awk '{$1 = $1 "x"; print}' | paste -sd';') | $(val stenographer query_output | sort | uniq -c | awk '{$1 = $1 "x"; print}' | paste -sd';') |"
  echo "| stop (SIGTERM) after a normal run, s | $(mr flowfold stop_s) | $(val stenographer stop_s | paste -sd' ') |"
  echo "| SIGTERM right after a replay: readable / sent | $(paste -d/ <(val flowfold stop_readable) <(val flowfold stop_sent) | paste -sd' ') (stop took $(val flowfold stop_after_replay_s | paste -sd' ') s) | $(paste -d/ <(val stenographer stop_readable) <(val stenographer stop_sent) | paste -sd' ') (stop took $(val stenographer stop_after_replay_s | paste -sd' ') s) |"
  echo
  echo "flowfold counters (median): capture_dropped $(med flowfold capture_dropped), recorder_dropped $(med flowfold recorder_dropped), recorder_packets $(med flowfold recorder_packets); without --record: captured $(med flowfold-norec captured), capture_dropped $(med flowfold-norec capture_dropped)."
} >"$report"
cat "$report"
echo
echo "every figure: $results; logs and configs: $work"
