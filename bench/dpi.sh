#!/usr/bin/env bash
# What DPI costs (issue 23): CPU seconds (user + system) of flowfold reading a
# capture without and with --dpi, and of ndpiReader (libndpi-bin, the same
# nDPI library) over the same file, the anchor. Runs are interleaved
# (flowfold, flowfold --dpi, ndpiReader, again) so that drift hits all three
# alike; medians are printed.
#
# Usage: bash bench/dpi.sh [build-dir] [runs] [capture...]
#   defaults: ./build, 5, the flowgen profiles big and ent (made in $TMPDIR)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build}"
runs="${2:-5}"
shift $(( $# > 2 ? 2 : $# ))
flowfold="$build/probe/flowfold"
tmp="${TMPDIR:-/tmp}"
captures=("$@")
if [ ${#captures[@]} -eq 0 ]; then
  flowgen="$tmp/flowfold-bench-flowgen"
  src="$repo/tests/tools/flowgen.c"
  [ -f "$src" ] || src="$repo/../shared/tools/flowgen.c"
  [ -x "$flowgen" ] || cc -O2 -o "$flowgen" "$src" -lm
  [ -f "$tmp/dpi-big.pcap" ] || "$flowgen" -o "$tmp/dpi-big.pcap" -n 5000000 -c 100000 -d 300 -S 128 -s 42 >/dev/null
  [ -f "$tmp/dpi-ent.pcap" ] || "$flowgen" -o "$tmp/dpi-ent.pcap" -n 5000000 -c 20000 -d 300 -S 128 -s 43 -a 1.1 -m 4 >/dev/null
  captures=("$tmp/dpi-big.pcap" "$tmp/dpi-ent.pcap")
fi

cpu() {  # CPU seconds (user + sys) of a command
  /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.2f\n", $1 + $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

printf "| capture | flowfold (s) | flowfold --dpi (s) | ndpiReader (s) | --dpi / flowfold | ndpiReader / --dpi |\n"
printf "|---|---|---|---|---|---|\n"
for cap in "${captures[@]}"; do
  plain=() dpi=() anchor=()
  for _ in $(seq "$runs"); do
    plain+=("$(cpu "$flowfold" -r "$cap" --ipfix-file /dev/null)")
    dpi+=("$(cpu "$flowfold" -r "$cap" --dpi --ipfix-file /dev/null)")
    anchor+=("$(cpu ndpiReader -i "$cap" -q)")
  done
  p=$(printf "%s\n" "${plain[@]}" | median)
  d=$(printf "%s\n" "${dpi[@]}" | median)
  a=$(printf "%s\n" "${anchor[@]}" | median)
  printf "| %s | %s | %s | %s | %.2f | %.2f |\n" "$(basename "$cap")" "$p" "$d" "$a" \
    "$(echo "$d / $p" | bc -l)" "$(echo "$a / $d" | bc -l)"
done
