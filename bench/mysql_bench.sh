#!/usr/bin/env bash
# Sustained flows/s of the MySQL sink into a private MariaDB (started and
# removed by tests/integration/mariadb.py), for each write method, index set,
# batch size and partitioning. Every run goes through the whole exporter
# (spool, sink thread, one transaction per batch with its bookkeeping row) and
# the clock stops when flush() has every row committed.
#
# Usage: bash bench/mysql_bench.sh [build-dir] [rows]     (defaults: ./build, 2000000)
# Prints one line per configuration; a Markdown table at the end.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build}"
rows="${2:-2000000}"

cmake --build "$build" --target mysql_bench >/dev/null
export MYSQL_BENCH_BIN="$build/tests/unit/mysql/mysql_bench" MYSQL_BENCH_ROWS="$rows"

python3 "$repo/tests/integration/mariadb.py" -- bash -c '
set -euo pipefail
sock="$FLOWFOLD_TEST_MYSQL_SOCKET"
results=()
run() {
  mariadb --no-defaults -S "$sock" -uroot -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench"
  line=$("$MYSQL_BENCH_BIN" --socket "$sock" --database bench --rows "$MYSQL_BENCH_ROWS" "$@" 2>/dev/null)
  echo "$line"
  results+=("$line")
}
# The per-host index as it was before the text columns: on the binary
# src_ip (the schema made by a run with no rows, then the index added).
run_binary_host_index() {
  mariadb --no-defaults -S "$sock" -uroot -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench"
  "$MYSQL_BENCH_BIN" --socket "$sock" --database bench --rows 0 --indexes time >/dev/null 2>&1
  mariadb --no-defaults -S "$sock" -uroot bench -e "ALTER TABLE flows ADD KEY idx_src_ip_time (src_ip, first_time)"
  line=$("$MYSQL_BENCH_BIN" --socket "$sock" --database bench --rows "$MYSQL_BENCH_ROWS" --method load_data \
         --indexes time 2>/dev/null)
  line=${line/indexes=time/indexes=time,binary-src_ip}
  echo "$line"
  results+=("$line")
}
run --method load_data --indexes none
run --method load_data --indexes time
run --method load_data --indexes time,src_ip
run_binary_host_index
run --method load_data --indexes time,src_ip,dest_ip
run --method insert --indexes none
run --method insert --indexes time
run --method load_data --indexes time --batch-size 1000
run --method load_data --indexes time --batch-size 50000
run --method load_data --indexes time --partition daily
echo
echo "| method | batch | indexes | partition | flows/s | export thread µs/flow |"
echo "|---|---|---|---|---|---|"
for l in "${results[@]}"; do
  declare -A f=()
  for kv in $l; do f[${kv%%=*}]=${kv#*=}; done
  echo "| ${f[method]} | ${f[batch]} | ${f[indexes]} | ${f[partition]} | ${f[flows_per_s]} | ${f[export_thread_us_per_flow]} |"
done
'
