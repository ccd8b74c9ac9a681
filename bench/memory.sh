#!/usr/bin/env bash
# bench/memory.sh: flowfold's peak resident memory against the number of
# concurrent flows. See bench/README.md, section "Memory".
#
#   bench/memory.sh                    # 10M profile (~1.3 GB capture, deleted afterwards)
#   bench/memory.sh --profile 1m       # 1M concurrent flows (~135 MB capture)
#   bench/memory.sh --profile all      # both
#   KEEP=1 bench/memory.sh             # keep the captures for another run
#
# For each profile: flowgen writes a capture with -c N concurrent flows;
# flowfold reads it with timeouts long enough that no flow leaves the cache
# before the end (-t idle=3600 -t active=3600 over a 600 s capture, -m 12M),
# under GNU time (%M = peak RSS). A tiny capture gives the fixed cost (binary,
# libraries, buffers). Bytes per concurrent flow = (peak RSS - tiny RSS) /
# flows_peak, where flows_peak is flowfold's own count of the most flows held.
# A sampler reads /proc/PID/status and the capture's file offset every
# SAMPLE_INTERVAL s, to tell the memory of the cache while the file is read
# from the extra memory of the end-of-input flush.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
FLOWFOLD_BIN=${FLOWFOLD_BIN:-$BUILD/probe/flowfold}
FLOWGEN_SRC=${FLOWGEN_SRC:-$REPO/tests/tools/flowgen.c}
WORKDIR=${MEMORY_WORKDIR:-/tmp/flowfold-memory}
KEEP=${KEEP:-0}
MAX_FLOWS=${MAX_FLOWS:-12000000}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-0.02}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
PROFILE=10m

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --profile 1m|10m|all  --workdir DIR  --no-results"
  echo "env: BUILD FLOWFOLD_BIN FLOWGEN_SRC MEMORY_WORKDIR KEEP MAX_FLOWS SAMPLE_INTERVAL RESULTS_DIR"
}

WRITE_RESULTS=1
while [ $# -gt 0 ]; do
  case $1 in
    --profile) PROFILE=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --no-results) WRITE_RESULTS=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "memory.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

case $PROFILE in
  1m) PROFILES="1m" ;;
  10m) PROFILES="10m" ;;
  all) PROFILES="1m 10m" ;;
  *) echo "memory.sh: --profile must be 1m, 10m or all" >&2; exit 2 ;;
esac

flowgen_args() {
  case $1 in
    tiny) echo "-n 1000 -c 100 -d 600 -S 96 -s 9" ;;
    1m) echo "-n 1200000 -c 1000000 -d 600 -S 96 -s 9" ;;
    10m) echo "-n 12000000 -c 10000000 -d 600 -S 96 -s 9" ;;
  esac
}
packets_of() { flowgen_args "$1" | awk '{print $2}'; }

[ -x "$FLOWFOLD_BIN" ] || { echo "memory.sh: no flowfold binary at $FLOWFOLD_BIN (set BUILD or FLOWFOLD_BIN)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "memory.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
mkdir -p "$WORKDIR"

log() { echo "[memory.sh] $*" >&2; }

# ---------------------------------------------------------------- tools

FLOWGEN=$WORKDIR/flowgen
if [ ! -x "$FLOWGEN" ] || [ "$FLOWGEN_SRC" -nt "$FLOWGEN" ]; then
  log "building flowgen from $FLOWGEN_SRC"
  cc -O2 -o "$FLOWGEN" "$FLOWGEN_SRC" -lm
fi

# FlowCache::entryBytes() and sizeof(FlowRecord), from the library itself.
ENTRY_BYTES=128
RECORD_BYTES=104
SIZES_SRC=$WORKDIR/sizes.cc
cat > "$SIZES_SRC" <<'EOF'
#include <cstdio>
#include "flowfold/flowcache/flow_cache.h"
int main() { std::printf("%zu %zu\n", flowfold::FlowCache::entryBytes(), sizeof(flowfold::FlowRecord)); }
EOF
if [ -f "$BUILD/flowcache/libflowfold_flowcache.a" ] &&
   g++ -std=c++20 -O1 -I"$REPO/flowcache/include" -o "$WORKDIR/sizes" "$SIZES_SRC" \
       "$BUILD/flowcache/libflowfold_flowcache.a" 2>/dev/null; then
  read -r ENTRY_BYTES RECORD_BYTES < <("$WORKDIR/sizes")
  SIZES_FROM="FlowCache::entryBytes() and sizeof(FlowRecord) from $BUILD/flowcache"
else
  SIZES_FROM="assumed (could not build against $BUILD/flowcache/libflowfold_flowcache.a)"
fi

# ---------------------------------------------------------------- captures

capture_for() {  # profile -> path, generated unless present with the same arguments
  local p=$1 args pcap
  args=$(flowgen_args "$p")
  pcap=$WORKDIR/$p.pcap
  if [ -s "$pcap" ] && [ "$(cat "$pcap.args" 2>/dev/null)" = "$args" ] && [ "$pcap" -nt "$FLOWGEN" ]; then
    log "reusing $pcap"
  else
    local n need avail
    n=$(packets_of "$p")
    need=$(( n * (16 + 96) + 24 ))            # pcap record header + 96-byte snap
    avail=$(df -B1 --output=avail "$WORKDIR" | tail -1 | tr -d ' ')
    if [ "$avail" -lt $(( need + need / 10 + (1 << 30) )) ]; then
      echo "memory.sh: $p needs ~$(( need >> 20 )) MiB in $WORKDIR, only $(( avail >> 20 )) MiB free" >&2
      exit 1
    fi
    log "generating $pcap ($args, ~$(( need >> 20 )) MiB)"
    rm -f "$pcap" "$pcap.args"
    # shellcheck disable=SC2086
    "$FLOWGEN" -o "$pcap" $args >&2
    echo "$args" > "$pcap.args"
  fi
  echo "$pcap"
}

# ---------------------------------------------------------------- one run

# Sets RUN_RSS_KB, RUN_READ_KB, RUN_INGEST_KB, RUN_INGEST_AT, RUN_STATS, RUN_WALL, RUN_CPU.
measure() {
  local pcap=$1 dir=$2
  mkdir -p "$dir"
  local size real
  size=$(stat -c %s "$pcap")
  real=$(readlink -f "$pcap")
  /usr/bin/time -f '%M %e %U %S' -o "$dir/time.txt" \
    "$FLOWFOLD_BIN" -r "$pcap" --ipfix-file /dev/null -m "$MAX_FLOWS" -t idle=3600 -t active=3600 \
    2> "$dir/stderr.log" &
  local tpid=$! fpid=""
  for _ in $(seq 100); do
    fpid=$(pgrep -P "$tpid" || true)
    [ -n "$fpid" ] && break
    sleep 0.01
  done
  # Sampler (no forks but sleep, so it can sample often): time, VmRSS kB,
  # VmHWM kB, offset of the capture's descriptor ("eof" at the end or once closed).
  : > "$dir/samples.tsv"
  if [ -n "$fpid" ]; then
    local fd="" pos rss hwm k v _rest
    while [ -r "/proc/$fpid/status" ]; do
      rss="" hwm=""
      { while read -r k v _rest; do
          case $k in VmRSS:) rss=$v ;; VmHWM:) hwm=$v ;; esac
        done < "/proc/$fpid/status"; } 2>/dev/null || true
      [ -n "$rss" ] || break
      if [ -z "$fd" ]; then
        # libpcap opens the file first and checks it; flowfold's own reader
        # opens it again and reads it: the highest descriptor is the one that moves.
        for k in /proc/"$fpid"/fd/*; do
          if [ "$k" -ef "$real" ] && { [ -z "$fd" ] || [ "${k##*/}" -gt "$fd" ]; }; then fd=${k##*/}; fi
        done
      fi
      pos=eof
      if [ -n "$fd" ] && [ "/proc/$fpid/fd/$fd" -ef "$real" ]; then
        { while read -r k v _rest; do
            [ "$k" = pos: ] && pos=$v
          done < "/proc/$fpid/fdinfo/$fd"; } 2>/dev/null || true
        [ "$pos" != eof ] && [ "$pos" -ge "$size" ] && pos=eof
      fi
      echo "$EPOCHREALTIME $rss $hwm $pos" >> "$dir/samples.tsv"
      sleep "$SAMPLE_INTERVAL"
    done
  fi
  local rc=0
  wait "$tpid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "memory.sh: flowfold exited with status $rc; see $dir/stderr.log" >&2
    tail -5 "$dir/stderr.log" >&2
    exit 1
  fi
  read -r RUN_RSS_KB RUN_WALL user sys < "$dir/time.txt"
  RUN_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
  RUN_STATS=$(grep -o 'stats:.*' "$dir/stderr.log" | tail -1)
  # The last sample taken while the file was still being read: the cache's
  # memory before the end-of-input flush (VmRSS then), and the most it took
  # until then (VmHWM then: includes the hash table's last doubling, when the
  # old and the new table are both allocated).
  RUN_READ_KB=$(awk '$4 != "eof" {r = $2} END {print r + 0}' "$dir/samples.tsv")
  RUN_INGEST_KB=$(awk '$4 != "eof" {h = $3} END {print h + 0}' "$dir/samples.tsv")
  # How far into the file that sample was, in percent.
  RUN_INGEST_AT=$(awk -v size="$size" '$4 != "eof" {p = $4} END {printf "%.1f", 100 * p / size}' "$dir/samples.tsv")
}

stat_of() { { echo "$RUN_STATS" | grep -o "\b$1=[0-9]*" || true; } | head -1 | cut -d= -f2; }

# Hash table slots at flows_peak: starts at 4096, doubles when (active + 1) * 4
# would exceed 3 * size, never beyond bit_ceil(4/3 * max_flows) (FlowCache).
table_slots() {
  local peak=$1 s=4096 max=1
  while [ "$max" -lt $(( (4 * MAX_FLOWS + 2) / 3 )) ]; do max=$(( max * 2 )); done
  while [ $(( peak * 4 )) -gt $(( s * 3 )) ] && [ "$s" -lt "$max" ]; do s=$(( s * 2 )); done
  echo "$s"
}

mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }   # kB -> MiB

# ---------------------------------------------------------------- main

log "load: $(uptime)"
TINY_PCAP=$(capture_for tiny)
measure "$TINY_PCAP" "$WORKDIR/runs/tiny"
TINY_KB=$RUN_RSS_KB
log "tiny: peak RSS $(mb "$TINY_KB") MiB"

ROWS=""
BREAKDOWN=""
for p in $PROFILES; do
  pcap=$(capture_for "$p")
  pcap_bytes=$(stat -c %s "$pcap")
  log "running flowfold on $pcap"
  measure "$pcap" "$WORKDIR/runs/$p"
  peak=$(stat_of flows_peak)
  if [ -z "$peak" ] || [ "$peak" -eq 0 ]; then
    echo "memory.sh: no flows_peak in flowfold's stats line (a binary older than the peak counter?): $RUN_STATS" >&2
    exit 1
  fi
  created=$(stat_of flows_created)
  evicted=$(stat_of evicted); evicted=${evicted:-0}
  packets=$(stat_of packets)
  per_flow=$(( (RUN_RSS_KB - TINY_KB) * 1024 / peak ))
  per_flow_read=$(( (RUN_READ_KB - TINY_KB) * 1024 / peak ))
  per_flow_ingest=$(( (RUN_INGEST_KB - TINY_KB) * 1024 / peak ))
  slots=$(table_slots "$peak")
  table_bytes=$(( slots * 8 ))
  table_per_flow=$(awk -v t="$table_bytes" -v p="$peak" 'BEGIN {printf "%.1f", t / p}')
  rest=$(awk -v i="$per_flow_read" -v e="$ENTRY_BYTES" -v t="$table_per_flow" 'BEGIN {printf "%.1f", i - e - t}')
  growth_per_flow=$(( per_flow_ingest - per_flow_read ))
  flush_per_flow=$(( per_flow - per_flow_read ))
  log "$p: flows_peak=$peak peak RSS $(mb "$RUN_RSS_KB") MiB ($per_flow B/flow); end of reading $(mb "$RUN_READ_KB") MiB ($per_flow_read B/flow), most while reading $(mb "$RUN_INGEST_KB") MiB ($per_flow_ingest B/flow)"
  ROWS+="| $p | \`$(flowgen_args "$p")\` | $packets | $created | $peak | $evicted | **$(mb "$RUN_RSS_KB")** | $(mb "$RUN_READ_KB") / $(mb "$RUN_INGEST_KB") (at $RUN_INGEST_AT% of the file) | **$per_flow** | $per_flow_read / $per_flow_ingest | $RUN_WALL | $RUN_CPU |"$'\n'
  BREAKDOWN+="| $p | $peak | $ENTRY_BYTES | $slots slots × 8 B = $(( table_bytes >> 20 )) MiB → $table_per_flow | $rest | **$per_flow_read** | +$growth_per_flow | +$flush_per_flow |"$'\n'
  if [ "$KEEP" != 1 ] && [ "$p" != tiny ]; then
    rm -f "$pcap" "$pcap.args"
    log "removed $pcap ($(( pcap_bytes >> 20 )) MiB; KEEP=1 keeps it)"
  fi
done

REPORT=$(cat <<EOF
# flowfold memory: peak RSS against concurrent flows

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host: $(hostname)
- machine: $(lscpu | awk -F: '/^Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r), THP $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')
- flowfold: \`$FLOWFOLD_BIN\` ($("$FLOWFOLD_BIN" --version 2>&1 | head -1)), source $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' + local changes')
- command: \`flowfold -r FILE --ipfix-file /dev/null -m $MAX_FLOWS -t idle=3600 -t active=3600\` under \`/usr/bin/time -f %M\`
- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (peak RSS does not depend on load; wall and CPU seconds do)
- tiny run (\`$(flowgen_args tiny)\`): peak RSS $(mb "$TINY_KB") MiB, the fixed cost subtracted below

| profile | flowgen | packets | flows created | flows_peak | evicted | peak RSS MiB | RSS MiB end of reading / most while reading | B/flow (peak) | B/flow end of reading / most while reading | wall s | CPU s |
|---|---|---|---|---|---|---|---|---|---|---|---|
$ROWS
B/flow = (RSS − tiny RSS) / flows_peak. "Peak" is GNU time's %M, which includes the end of
input: \`flushAll()\` hands the flows to the export stage in batches of \`FlowRecord\`s ($RECORD_BYTES B
a record) while the cache still holds the rest, and the export queue holds up to its bound of
batches; with fewer flows those buffers weigh more per flow. "End of reading" is VmRSS, "most while reading"
VmHWM, in the last /proc sample (every ${SAMPLE_INTERVAL}s or so) taken before the capture's file
offset reached its end: the cache alone. The two differ by the hash table's doublings, during
which the old and the new table are both allocated.

Breakdown per concurrent flow, bytes ($SIZES_FROM):

| profile | flows_peak | flow entry | hash table (load ≤ ¾, 8 B a slot) | rest | end of reading | table doubling (transient) | end-of-input flush (transient) |
|---|---|---|---|---|---|---|---|
$BREAKDOWN
The entry array is reserved for max_flows ($MAX_FLOWS × $ENTRY_BYTES B) but its pages are touched
only as entries are first used. The hash table size is computed from flows_peak (it starts
at 4096 slots and doubles), not measured; its share per flow lies between 10.7 and 21 B
depending on where flows_peak falls between two doublings. "rest" is what remains of the
end-of-reading figure: mostly the timer wheel (an 8-byte index and hash per flow in 2048 vectors grown by
doubling: about 8 B), plus huge-page rounding of the entry array and the export stage's buffers.
EOF
)

echo "$REPORT"
if [ "$WRITE_RESULTS" = 1 ]; then
  mkdir -p "$RESULTS_DIR"
  out=$RESULTS_DIR/$(date -u +%Y-%m-%d-%H%M%S)-memory-$(hostname -s).md
  echo "$REPORT" > "$out"
  log "wrote $out"
fi
