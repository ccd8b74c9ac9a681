#!/usr/bin/env bash
# Quick start: install dependencies, build flowfold, and run it on the bundled
# sample capture, exporting IPFIX to a private nfcapd on 127.0.0.1 and
# printing each flow. Then nfdump shows what the collector received.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="$repo/build"

bash "$repo/scripts/install-deps.sh"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target flowfold

work="$(mktemp -d /tmp/flowfold-quickstart.XXXXXX)"
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$work/collector"
nfcapd -b 127.0.0.1 -p "$port" -w "$work/collector" -t 3600 >"$work/nfcapd.log" 2>&1 &
nfcapd_pid=$!
trap 'kill $nfcapd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q ":$(printf '%04X' "$port") " /proc/net/udp && break; sleep 0.05; done

echo "== flowfold -r examples/captures/sample.pcap -n 127.0.0.1:$port --text"
"$build/probe/flowfold" -r "$repo/examples/captures/sample.pcap" -n "127.0.0.1:$port" --text="$work/flows.txt"
head -n 12 "$work/flows.txt"
echo "   ... $(wc -l <"$work/flows.txt") flows in all, one line each, in $work/flows.txt"

sleep 0.5  # let nfcapd read the last datagrams before it writes its file
kill -TERM "$nfcapd_pid"; wait "$nfcapd_pid" 2>/dev/null || true
trap - EXIT
echo
echo "== what the collector received (nfdump -R $work/collector -s proto)"
nfdump -R "$work/collector" -s proto -n 5 | head -n 9
echo
echo "Collector files are in $work/collector; read them with nfdump -R $work/collector"
