#!/usr/bin/env bash
# bench/extract.sh — how fast `flowfold extract` answers a query on a large
# ring, against what users do without an index: `tcpdump -r` of every segment
# of the ring with the same filter (the anchor).
#
# 1. The ring: flowgen captures of the `big` shape (-n 5000000 -c 100000
#    -d 300 -S 128), one seed per run (42, 43, ...: distinct flows in each
#    run, all starting at the same packet time), each recorded with
#    `flowfold -r CAPTURE --ipfix-file /dev/null --record RING` until the
#    ring's segments hold --size bytes. Every run opens segments of its own
#    (the sequence numbers in the names go on across runs); the script checks
#    that none is removed. Each capture is deleted once recorded.
# 2. The queries, picked from flowgen's truth files, not from flowfold: an
#    IPv4 TCP flow of the first (oldest) run, an IPv6 UDP flow of the last
#    (newest) one, both untagged with 10 to 1000 packets, asked as
#    'host A and host B and port P and port Q'; and an address no run uses
#    ('host 192.0.2.1 and port 9', nothing matches).
# 3. For each query, RUNS timed runs of each, medians (and min, max) of the
#    wall time in ms:
#      flowfold warm  flowfold extract --ring RING -w OUT FILTER, after one
#                     untimed run (the files it reads are in the page cache)
#      flowfold cold  the same, `sync; echo 3 > /proc/sys/vm/drop_caches`
#                     before each run (needs root)
#      tcpdump warm   tcpdump -Z root --time-stamp-precision=nano -r SEGMENT
#                     -w OUT.N FILTER for every segment of the ring in sequence
#                     order, the outputs joined into one file; after one untimed
#                     run (the whole ring in the page cache, if it fits in
#                     memory: the report gives the machine's memory)
#      tcpdump cold   the same after dropping the caches
#    The two outputs must hold the same packets: the bytes after the 24-byte
#    file header are compared (md5), and their packet counts printed.
#    flowfold's -v line gives the blocks and bytes it read.
#
#   bench/extract.sh [--size 10G] [--runs 5] [--ring DIR] [--workdir DIR]
#                    [--keep] [--reuse] [--no-cold]
#
#   --size SIZE    the ring's segments hold at least this (k/M/G/T, powers of 1024)
#   --runs N       timed runs of each measurement (5)
#   --ring DIR     the ring (/work/ring-bench); emptied first unless --reuse
#   --workdir DIR  captures, outputs and timings (/tmp/flowfold-extract-bench)
#   --keep         keep the ring at the end (deleted by default)
#   --reuse        use the ring in DIR as it is, with the queries the run that
#                  built it saved in it (queries.txt)
#   --no-cold      skip the cold measurements (no root needed)
#
# Environment: FLOWFOLD_BIN (default $REPO/build/probe/flowfold; use a
# Release build), FLOWGEN_SRC ($REPO/../shared/tools/flowgen.c), NICE (10:
# every command runs under `nice -n $NICE`). Needs tcpdump, capinfos, GNU
# time, and free disk for the ring plus one capture (~540 MB).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
size=10G runs=5 ring=/work/ring-bench workdir=/tmp/flowfold-extract-bench keep=0 reuse=0 cold=1
usage() { sed -n '/^#   bench\/extract.sh/,/^#   --no-cold/p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while (($#)); do
  case $1 in
    --size) size=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --ring) ring=${2:?}; shift 2 ;;
    --workdir) workdir=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    --reuse) reuse=1; shift ;;
    --no-cold) cold=0; shift ;;
    *) usage ;;
  esac
done
bin=${FLOWFOLD_BIN:-$repo/build/probe/flowfold}
flowgen_src=${FLOWGEN_SRC:-$repo/../shared/tools/flowgen.c}
nice=(nice -n "${NICE:-10}")
size_bytes=$(numfmt --from=iec "$size")
[[ -x $bin ]] || { echo "extract.sh: no flowfold binary at $bin (set FLOWFOLD_BIN)" >&2; exit 1; }
if ((cold)) && [[ $(id -u) != 0 ]]; then
  echo "extract.sh: dropping the page cache needs root (or give --no-cold)" >&2
  exit 1
fi
mkdir -p "$workdir"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
sum_sizes() { find "$ring" -maxdepth 1 -name "flowfold-*.$1" -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }

# ---------------------------------------------------------------- 1. the ring

if ((reuse)); then
  [[ -s $ring/queries.txt ]] || { echo "extract.sh: --reuse: no $ring/queries.txt (build the ring without --reuse first)" >&2; exit 1; }
else
  flowgen=$workdir/flowgen
  if [[ ! -x $flowgen || $flowgen_src -nt $flowgen ]]; then
    cc -O2 -o "$flowgen" "$flowgen_src" -lm
  fi
  rm -rf "$ring"
  mkdir -p "$ring"
  : >"$ring/runs.txt"
  run=0
  while (($(sum_sizes pcap) < size_bytes)); do
    seed=$((42 + run))
    cap=$workdir/ring-src.pcap truth=$workdir/ring-src.tsv
    "${nice[@]}" "$flowgen" -n 5000000 -c 100000 -d 300 -S 128 -s "$seed" -o "$cap" -t "$truth" >/dev/null
    # The query targets, from the truth file (proto src sport dst dport vlan packets bytes).
    if ((run == 0)); then
      awk -F'\t' '$1 == 6 && $2 !~ /:/ && $6 == 0 && $7 >= 10 && $7 <= 1000 {
          printf "oldest\thost %s and host %s and port %s and port %s\n", $2, $4, $3, $5; exit }' "$truth" >"$workdir/oldest.q"
    fi
    awk -F'\t' '$1 == 17 && $2 ~ /:/ && $6 == 0 && $7 >= 10 && $7 <= 1000 {
        printf "newest\thost %s and host %s and port %s and port %s\n", $2, $4, $3, $5; exit }' "$truth" >"$workdir/newest.q"
    before=$(find "$ring" -maxdepth 1 -name 'flowfold-*.pcap' | wc -l)
    # A cap far above the target: the ring must not remove anything.
    "${nice[@]}" "$bin" -r "$cap" --ipfix-file /dev/null --record "$ring" --record-size $((size_bytes * 4)) 2>"$workdir/record.log"
    after=$(find "$ring" -maxdepth 1 -name 'flowfold-*.pcap' | wc -l)
    if ((after <= before)); then
      echo "extract.sh: run $run (seed $seed) added no segment ($before before, $after after): see $workdir/record.log" >&2
      exit 1
    fi
    echo "run $run seed $seed: $((after - before)) segment(s), ring now $(sum_sizes pcap) bytes" | tee -a "$ring/runs.txt"
    rm -f "$cap" "$truth"
    run=$((run + 1))
  done
  first_seq=$(find "$ring" -maxdepth 1 -name 'flowfold-*.pcap' -printf '%f\n' | sort | head -1)
  [[ $first_seq == flowfold-000000000001-* ]] || { echo "extract.sh: the ring's first segment is gone ($first_seq)" >&2; exit 1; }
  { cat "$workdir/oldest.q" "$workdir/newest.q"; printf 'absent\thost 192.0.2.1 and port 9\n'; } >"$ring/queries.txt"
fi

segments=$(find "$ring" -maxdepth 1 -name 'flowfold-*.pcap' | wc -l)
pcap_total=$(sum_sizes pcap)
idx_total=$(sum_sizes idx)
find "$ring" -maxdepth 1 -name 'flowfold-*.pcap' | sort >"$workdir/segments.list"

# ---------------------------------------------------------------- 2.-3. the queries

# timed LABEL OUT CMD...: one run, appends "wall_ms cpu_s" to $workdir/LABEL.t
timed() {
  local label=$1 out=$2
  shift 2
  rm -f "$out"
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -o "$workdir/time.tmp" -f "%U %S" "${nice[@]}" "$@" >/dev/null 2>"$workdir/$label.err"
  t1=$(date +%s%N)
  awk -v ms="$(((t1 - t0) / 1000))" '{printf "%.1f %.2f\n", ms / 1000, $1 + $2}' "$workdir/time.tmp" >>"$workdir/$label.t"
}
ff() { timed "$1" "$2" "$bin" extract -v --ring "$ring" -w "$2" "$3"; }
# The anchor: one tcpdump per segment, in sequence order, the outputs joined
# (not `tcpdump -V LIST`: tcpdump 4.99.3 writes the microseconds of the second
# and later files of the list as nanoseconds into a nanosecond file).
td() {
  timed "$1" "$2" bash -c 'out=$1 filter=$2 n=0
    while read -r f; do
      tcpdump -Z root --time-stamp-precision=nano -r "$f" -w "$out.$n" "$filter" || exit 1
      n=$((n + 1))
    done <"$3"
    { head -c 24 "$out.0"; for ((i = 0; i < n; i++)); do tail -c +25 "$out.$i"; done; } >"$out"
    rm -f "$out".*' _ "$2" "$3" "$workdir/segments.list"
}
packets_of() { capinfos -c -M "$1" | awk '/Number of packets/ {print $NF}'; }
body_md5() { tail -c +25 "$1" | md5sum | cut -d' ' -f1; }
stats() {  # median min max of the wall times
  local f=$workdir/$1.t
  printf '%s %s %s' "$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f1 "$f" | sort -n | head -1)" "$(cut -d' ' -f1 "$f" | sort -n | tail -1)"
}

report=$workdir/report.md
{
  echo "# flowfold extract against tcpdump -r, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB memory, $(uname -r)"
  echo "- ring: $ring, $segments segments, $pcap_total bytes of pcap ($(numfmt --to=iec "$pcap_total")), $idx_total bytes of index ($(awk -v i="$idx_total" -v p="$pcap_total" 'BEGIN {printf "%.2f", 100 * i / p}') % of the pcap)"
  echo "- flowfold: $bin ($("$bin" --version 2>&1 | head -1))"
  echo "- $(tcpdump --version 2>&1 | head -1), $(tcpdump --version 2>&1 | sed -n 2p)"
  echo "- $runs runs each, wall ms; under nice -n ${NICE:-10}"
  echo
} >"$report"

while IFS=$'\t' read -r name filter; do
  rm -f "$workdir"/"$name"-*.t
  ffo=$workdir/$name-ff.pcap tdo=$workdir/$name-td.pcap
  # Warm: one untimed run of each first.
  ff "$name-ff-first" "$ffo" "$filter"
  verbose=$(grep 'packets from' "$workdir/$name-ff-first.err" | sed 's/.*extract: //')
  for ((i = 0; i < runs; i++)); do ff "$name-ff-warm" "$ffo" "$filter"; done
  td "$name-td-first" "$tdo" "$filter"
  for ((i = 0; i < runs; i++)); do td "$name-td-warm" "$tdo" "$filter"; done
  if ((cold)); then
    for ((i = 0; i < runs; i++)); do drop_caches; ff "$name-ff-cold" "$ffo" "$filter"; done
    for ((i = 0; i < runs; i++)); do drop_caches; td "$name-td-cold" "$tdo" "$filter"; done
  fi
  ffp=$(packets_of "$ffo") tdp=$(packets_of "$tdo")
  if [[ $(body_md5 "$ffo") == "$(body_md5 "$tdo")" ]]; then same="identical packets"; else same="DIFFERENT packets (see $ffo and $tdo)"; fi
  {
    echo "## $name: \`$filter\`"
    echo
    echo "flowfold: $ffp packets, tcpdump: $tdp packets, $same. flowfold -v: $verbose"
    echo
    echo "| measurement | median ms | min | max | CPU s (median) |"
    echo "|---|---:|---:|---:|---:|"
    for m in ff-warm ff-cold td-warm td-cold; do
      [[ -s $workdir/$name-$m.t ]] || continue
      read -r med lo hi <<<"$(stats "$name-$m")"
      echo "| $m | $med | $lo | $hi | $(cut -d' ' -f2 "$workdir/$name-$m.t" | median) |"
    done
    echo
    for w in warm cold; do
      [[ -s $workdir/$name-ff-$w.t && -s $workdir/$name-td-$w.t ]] || continue
      echo "tcpdump / flowfold, $w: $(awk -v t="$(stats "$name-td-$w" | cut -d' ' -f1)" -v f="$(stats "$name-ff-$w" | cut -d' ' -f1)" 'BEGIN {printf "%.2f", t / f}')"
      echo
    done
  } >>"$report"
done <"$ring/queries.txt"

echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$report"
cat "$report"
if ((!keep)); then rm -rf "$ring"; fi
