#!/usr/bin/env bash
# The accounting tables' cost (flows/s with and without) and the query times
# of examples/accounting_queries.sql over a month of synthetic flows, in a
# private MariaDB (tests/integration/mariadb.py). See mysql_accounting_bench.py.
#
# Usage: bash bench/mysql_accounting_bench.sh [build-dir] [rows] [month-rows] [repeats]
#        (defaults: ./build, 2000000, 10000000, 3)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build}"
cmake --build "$build" --target mysql_bench >/dev/null
export MYSQL_BENCH_BIN="$build/tests/unit/mysql/mysql_bench"
python3 "$repo/tests/integration/mariadb.py" -- python3 "$repo/bench/mysql_accounting_bench.py" "${2:-2000000}" "${3:-10000000}" "${4:-3}"
