#!/usr/bin/env bash
# bench/record.sh — what the packet recorder costs: the same capture read with
# and without --record, and a plain copy of the same bytes to the same
# filesystem with dd (the disk's floor), RUNS times each, alternating, with the ring
# emptied and the page cache's dirty pages written back (sync) before each
# run. Prints the medians: CPU seconds (user + system), wall seconds, and
# the write bandwidth of the recording and of the copy.
#
#   bench/record.sh CAPTURE RING_DIR [RUNS]      (FLOWFOLD_BIN: the binary)
set -euo pipefail

capture=${1:?usage: bench/record.sh CAPTURE RING_DIR [RUNS]}
ring=${2:?usage: bench/record.sh CAPTURE RING_DIR [RUNS]}
runs=${3:-5}
bin=${FLOWFOLD_BIN:-$(dirname "$0")/../build/probe/flowfold}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
timed() {  # prints "cpu wall"
  /usr/bin/time -o "$ring.time" -f "%U %S %e" "$@" >/dev/null 2>&1
  awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$ring.time"
  rm -f "$ring.time"
}

: >"$ring.off"; : >"$ring.on"; : >"$ring.copy"
for ((i = 0; i < runs; i++)); do
  rm -rf "$ring"; mkdir -p "$ring"; sync
  timed "$bin" -r "$capture" --ipfix-file /dev/null >>"$ring.off"
  rm -rf "$ring"; mkdir -p "$ring"; sync
  timed "$bin" -r "$capture" --ipfix-file /dev/null --record "$ring" >>"$ring.on"
  recorded=$(du -cb "$ring"/flowfold-*.pcap | tail -1 | cut -f1)
  rm -rf "$ring"; mkdir -p "$ring"; sync
  # dd, not cp: cp copies in the kernel (copy_file_range), without the
  # user-space buffers a recorder writes from.
  timed dd if="$capture" of="$ring/copy.pcap" bs=4M >>"$ring.copy"
done
rm -rf "$ring"
copied=$(stat -c %s "$capture")
for what in off on copy; do
  cpu=$(cut -d' ' -f1 "$ring.$what" | median)
  wall=$(cut -d' ' -f2 "$ring.$what" | median)
  case $what in
    off) echo "without --record: cpu ${cpu} s, wall ${wall} s" ;;
    on) echo "with --record:    cpu ${cpu} s, wall ${wall} s, ${recorded} bytes written, $(awk -v b="$recorded" -v w="$wall" 'BEGIN {printf "%.0f", b / w / 1e6}') MB/s" ;;
    copy) echo "dd of the capture: cpu ${cpu} s, wall ${wall} s, $(awk -v b="$copied" -v w="$wall" 'BEGIN {printf "%.0f", b / w / 1e6}') MB/s" ;;
  esac
  rm -f "$ring.$what"
done
