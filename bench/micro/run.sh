#!/usr/bin/env bash
# bench/micro/run.sh: runs flowfold_micro (Google Benchmark) with repetitions
# and writes the medians, in ns per item, with the machine description to
# bench/results/<date>-<time>-micro-<host>.md (a run never replaces an earlier one). See bench/README.md, "Micro-benchmarks".
#
#   BUILD=/work/build-bench bench/micro/run.sh                        # everything, 5 repetitions
#   BUILD=/work/build-bench bench/micro/run.sh --benchmark_filter=FlowCache
#   REPS=3 NO_RESULTS=1 bench/micro/run.sh                            # print only
#
# Extra arguments go to flowfold_micro. Environment: BUILD (default $REPO/build),
# REPS (5), RESULTS_DIR (bench/results), NO_RESULTS=1 (do not write a file),
# FLOWFOLD_BENCH_PCAP (the decoder mix's capture; default: flowgen into /tmp).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$REPO/build}
BIN=${FLOWFOLD_MICRO:-$BUILD/bench/flowfold_micro}
REPS=${REPS:-5}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}

if [ ! -x "$BIN" ]; then
  echo "run.sh: no $BIN; build it with" >&2
  echo "  cmake -S $REPO -B $BUILD -DCMAKE_BUILD_TYPE=Release -DFLOWFOLD_BUILD_BENCH=ON && cmake --build $BUILD --target flowfold_micro" >&2
  exit 1
fi

json=$(mktemp /tmp/flowfold-micro-XXXXXX.json)
trap 'rm -f "$json"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
"$BIN" --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
  --benchmark_out="$json" --benchmark_out_format=json "$@"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null | head -1)
compiler_version=$("${compiler:-c++}" --version 2>/dev/null | head -1)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null | head -1)
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cpus=$(lscpu | sed -n 's/^CPU(s): *//p' | head -1)
per_core=$(lscpu | sed -n 's/^Thread(s) per core: *//p' | head -1)
caches=$(lscpu | sed -n 's/^\(L[123][di]\{0,1\}\) cache: *\(.*\)/\1 \2/p' | paste -sd, - | sed 's/,/, /g')
hypervisor=$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)
libbenchmark=$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?')
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$REPO" diff --quiet 2>/dev/null || commit="$commit + local changes"

report=$(
  JSON=$json CPU_MODEL=$cpu_model CPUS=$cpus PER_CORE=$per_core CACHES=$caches HYPERVISOR=$hypervisor \
  KERNEL=$(uname -r) COMPILER="$compiler_version" BUILD_TYPE=$build_type LIBBENCHMARK=$libbenchmark \
  COMMIT=$commit REPS=$REPS LOAD_START=$load_start LOAD_END=$load_end HOST=$(hostname) \
  MEM_GIB=$(free -g | awk '/^Mem:/ {print $2}') ARGS="$*" python3 - <<'EOF'
import json, os, re, time

e = os.environ
data = json.load(open(e["JSON"]))

what = {
    "BM_DecodeEthIpv4Tcp": "decode(): Ethernet / IPv4 / TCP, same frame each time",
    "BM_DecodeVlanIpv6Udp": "decode(): 802.1Q / IPv6 / UDP",
    "BM_DecodeQinqMplsIpv4Tcp": "decode(): 802.1ad + 802.1Q / 2 MPLS labels / IPv4 / TCP",
    "BM_DecodeFlowgenMix": "decode(): first 100k packets of a flowgen capture, in order",
    "BM_HashFlowKey": "hashFlowKey(), 1024 mixed IPv4/IPv6 keys",
    "BM_FlowCacheHarness": "the hit loop without the table (next index, key, hash): included in the rows below",
    "BM_FlowCacheHit": "update() of an existing flow, random order, plain",
    "BM_FlowCacheHitRing": "same through the pipeline's 16-deep ring, no prefetch",
    "BM_FlowCacheHitRingPrefetch": "same ring with prefetchSlot / prefetchEntry (8 later) / update (15 later)",
    "BM_FlowCacheInsert": "update() of a new flow, N active, entries recycled by idle expiry",
    "BM_FlowCacheExpire": "expire() of N flows all due, per flow (4096 a call)",
    "BM_FlowCacheReplay": "the table alone on a capture's packets, driven as the pipeline drives it (FLOWFOLD_BENCH_REPLAY_PCAP)",
    "BM_Netflow9Encode": "netflow9::encode(), 1400-byte datagrams, per record",
    "BM_IpfixDirectEncode": "IPFIX direct encoder incl. record conversion, 1400-byte messages",
    "BM_IpfixFixbufEncode": "IPFIX libfixbuf encoder (fBufAppend), same",
    "BM_FormatText": "formatFlowText(), per record",
    "BM_FormatJson": "formatFlowJson(), per record",
}

rows = {}
order = []
for b in data["benchmarks"]:
    name = b["run_name"]
    if name not in rows:
        rows[name] = {}
        order.append(name)
    if b.get("run_type") == "aggregate":
        rows[name][b["aggregate_name"]] = b
    else:  # REPS=1: no aggregates, the single run stands for the median
        rows[name].setdefault("median", b)

def fmt(x):
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"

def to_ns(value, unit):
    return value * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]

lines = []
lines.append("| benchmark | what | ns per item (median, CPU) | ns per item (median, wall) | CV (CPU) | items/s (median) | counters |")
lines.append("|---|---|---|---|---|---|---|")
for name in order:
    agg = rows[name]
    med = agg.get("median")
    if med is None:
        continue
    if med.get("error_occurred"):
        lines.append(f"| `{name}` | error: {med.get('error_message', '')} | | | | | |")
        continue
    ips = med.get("items_per_second")
    base = re.sub(r"/.*", "", name)
    label = what.get(base, "")
    if ips:
        cpu_ns = 1e9 / ips
        items_per_iter = ips * to_ns(med["cpu_time"], med["time_unit"]) / 1e9
        wall_ns = to_ns(med["real_time"], med["time_unit"]) / items_per_iter if items_per_iter else 0
    else:
        cpu_ns = wall_ns = 0
    cv = agg.get("cv")
    cv_s = f"{100 * cv['cpu_time']:.1f}%" if cv else ""
    skip = {"items_per_second", "bytes_per_second", "name", "run_name", "run_type", "repetitions",
            "threads", "aggregate_name", "aggregate_unit", "iterations", "real_time", "cpu_time",
            "time_unit", "family_index", "per_family_instance_index", "repetition_index",
            "error_occurred", "error_message"}
    counters = ", ".join(f"{k}={v:g}" for k, v in med.items() if k not in skip and isinstance(v, (int, float)))
    lines.append(f"| `{name}` | {label} | **{fmt(cpu_ns)}** | {fmt(wall_ns)} | {cv_s} | {ips:,.0f} | {counters} |")

ctx = data["context"]
out = []
out.append("# flowfold micro-benchmarks")
out.append("")
out.append(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, host: {e['HOST']}")
out.append(f"- machine: {e['CPU_MODEL']}, {e['CPUS']} CPUs ({e['PER_CORE']} thread(s) per core"
           + (f", {e['HYPERVISOR']} guest" if e["HYPERVISOR"] else "") + f"), {e['MEM_GIB']} GiB RAM; {e['CACHES']}")
out.append(f"- kernel {e['KERNEL']}; compiler {e['COMPILER']}, CMAKE_BUILD_TYPE={e['BUILD_TYPE']}; "
           f"Google Benchmark {e['LIBBENCHMARK']} (Debian; its \"built as DEBUG\" warning concerns the library, not flowfold)")
command = f"flowfold_micro --benchmark_repetitions={e['REPS']} --benchmark_report_aggregates_only=true {e['ARGS']}"
out.append(f"- source {e['COMMIT']}; `{command.rstrip()}`")
out.append(f"- load average at the start {e['LOAD_START']}, at the end {e['LOAD_END']}. **The machine is shared and "
           "noisy**: other jobs ran during the measurement. Trust ratios between rows more than absolute values.")
out.append("")
out.append("ns per item = 1e9 / the median of items_per_second over the repetitions (CPU time of the benchmark "
           "thread, Google Benchmark's default). The wall column is the median real time per item: where it "
           "is much larger than the CPU column, the benchmark shared its core. CV = coefficient of variation of "
           "the CPU time over the repetitions. An item is a packet (decoder, flow table), a key (hash), a flow "
           "(expire) or a record (encoders).")
out.append("")
out.extend(lines)
print("\n".join(out))
EOF
)

echo
echo "$report"
if [ "${NO_RESULTS:-0}" != 1 ]; then
  mkdir -p "$RESULTS_DIR"
  out=$RESULTS_DIR/$(date -u +%Y-%m-%d-%H%M%S)-micro-$(hostname -s).md
  echo "$report" > "$out"
  echo "run.sh: wrote $out" >&2
fi
