#!/usr/bin/env bash
# The optimized build, with profile-guided optimization (GCC):
#  1. flowfold built instrumented (FLOWFOLD_PGO=generate);
#  2. run over two flowgen captures made here (not the bench's profiles:
#     other seeds and sizes), to an IPFIX file, with 1 and with 2 workers;
#  3. everything built again in the same directory with the profiles
#     (FLOWFOLD_PGO=use): -0.04 CPU s on the `big` bench profile to nfcapd.
# With clang, or FLOWFOLD_PGO=off in the environment: a plain optimized build.
#
# Usage: bash scripts/build.sh [build-dir] [extra cmake arguments...]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build}"
shift || true
cmake_args=("$@")
jobs="${FLOWFOLD_JOBS:-$(nproc)}"
configure() { cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" "$@" >/dev/null; }

if [ "${FLOWFOLD_PGO:-on}" = off ] || "${CXX:-c++}" --version 2>/dev/null | grep -qi clang; then
  configure -DFLOWFOLD_PGO=off
  cmake --build "$build" -j "$jobs"
  exit 0
fi

echo "== build.sh: 1/3 flowfold, instrumented for profile-guided optimization"
configure -DFLOWFOLD_PGO=generate
cmake --build "$build" -j "$jobs" --target flowfold

echo "== build.sh: 2/3 training runs over flowgen captures"
train="$build/pgo-train"
mkdir -p "$train"
cc -O2 -o "$train/flowgen" "$repo/tests/tools/flowgen.c" -lm
# Made afresh each time (a second or two): a capture cut short by an
# interrupted earlier build would otherwise be trained on.
"$train/flowgen" -o "$train/short.pcap" -t "$train/short.tsv" -n 1000000 -c 50000 -d 120 -S 128 -s 1001
"$train/flowgen" -o "$train/long.pcap" -t "$train/long.tsv" -n 500000 -c 5000 -d 120 -S 128 -s 1002 -a 1.1 -m 4
# Counts of an earlier training would add up with these.
find "$build" -name '*.gcda' -delete
"$build/probe/flowfold" -r "$train/short.pcap" --ipfix-file /dev/null 2>/dev/null
"$build/probe/flowfold" -r "$train/long.pcap" --ipfix-file /dev/null 2>/dev/null
"$build/probe/flowfold" -r "$train/short.pcap" --workers 2 --ipfix-file /dev/null 2>/dev/null

echo "== build.sh: 3/3 everything, with the profiles"
configure -DFLOWFOLD_PGO=use
cmake --build "$build" -j "$jobs"
