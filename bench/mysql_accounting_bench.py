#!/usr/bin/env python3
"""The MySQL sink's accounting tables: their cost in flows/s, and the time of
each query of examples/accounting_queries.sql over a month of traffic.

Runs inside tests/integration/mariadb.py (a private server; its socket in
FLOWFOLD_TEST_MYSQL_SOCKET); bench/mysql_accounting_bench.sh starts it:

  bash bench/mysql_accounting_bench.sh [build-dir] [rows] [month-rows] [repeats]

1. Write rate: the same synthetic flows (mysql_bench, office-network shape
   unless said) through the whole exporter, with accounting off and on,
   `repeats` runs of each configuration interleaved; the median flows/s.
2. A month: `month-rows` flows spread over 30 days through the exporter with
   accounting (5-minute interval, host, host_pair and service, local
   networks 10.0.0.0/16), then each documented query with parameters on
   that month, 7 times each; the server's own median time per query
   (SHOW PROFILES), so the client's start-up is not in it.
"""

import os
import re
import statistics
import subprocess
import sys
from datetime import datetime, timedelta, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERIES = os.path.join(REPO, "examples", "accounting_queries.sql")
SOCKET = os.environ["FLOWFOLD_TEST_MYSQL_SOCKET"]
BENCH = os.environ["MYSQL_BENCH_BIN"]
START = datetime.fromtimestamp(1_764_000_000, timezone.utc)  # mysql_bench's first flow: 2025-11-24 16:00


def mariadb(sql, database=None):
    args = ["mariadb", "--no-defaults", "-S", SOCKET, "-uroot", "-N", "-B"] + ([database] if database else [])
    r = subprocess.run(args, input=sql, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("SQL failed: %s\n%s" % (sql[:200], r.stderr))
    return [line.split("\t") for line in r.stdout.splitlines()]


def bench(database, rows, *args):
    mariadb("DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (database, database))
    out = subprocess.run([BENCH, "--socket", SOCKET, "--database", database, "--rows", str(rows),
                          "--method", "load_data", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("mysql_bench failed: %s" % out.stderr[-2000:])
    return dict(kv.split("=", 1) for kv in out.stdout.split())


ACCOUNTING = ["--accounting-interval", "5m"]
LOCAL = ["--local-networks", "10.0.0.0/16"]
WRITE_CONFIGS = [
    ("lan, accounting off", ["--shape", "lan"]),
    ("lan, host (local networks)", ["--shape", "lan", *ACCOUNTING, "--accounting-by", "host", *LOCAL]),
    ("lan, host,service (local networks)", ["--shape", "lan", *ACCOUNTING, "--accounting-by", "host,service", *LOCAL]),
    ("lan, host,host_pair,service (local networks)",
     ["--shape", "lan", *ACCOUNTING, "--accounting-by", "host,host_pair,service", *LOCAL]),
    ("lan, host (every address)", ["--shape", "lan", *ACCOUNTING, "--accounting-by", "host"]),
    ("random, accounting off", ["--shape", "random"]),
    ("random, host (every address)", ["--shape", "random", *ACCOUNTING, "--accounting-by", "host"]),
]


def write_rates(rows, repeats):
    results = {name: [] for name, _ in WRITE_CONFIGS}
    rows_written = {}
    for _ in range(repeats):
        for name, args in WRITE_CONFIGS:
            r = bench("bench", rows, *args)
            results[name].append(float(r["flows_per_s"]))
            rows_written[name] = r["accounting_rows"]
    print("\n## Write rate: %d flows per run, median of %d runs\n" % (rows, repeats))
    print("| flows and accounting | flows/s (median) | runs | accounting rows written |")
    print("|---|---|---|---|")
    for name, _ in WRITE_CONFIGS:
        runs = results[name]
        print("| %s | %.0f | %s | %s |" % (name, statistics.median(runs), ", ".join("%.0f" % v for v in runs),
                                          rows_written[name]))
    sys.stdout.flush()


def named_queries():
    with open(QUERIES) as f:
        text = f.read()
    out = {}
    for block in text.split("-- name: ")[1:]:
        name, body = block.split("\n", 1)
        out[name.strip()] = "\n".join(l for l in body.splitlines() if not l.startswith("--")).split(";")[0]
    return out


def time_query(database, sql, params, repeats=7):
    """The server's median duration of `sql` in ms, and its row count."""
    # Addresses as the example file sets them: ASCII, the columns' character set.
    value = lambda k, v: "CONVERT('%s' USING ascii)" % v if k in ("host", "peer") else "'%s'" % v
    sets = "SET time_zone = '+00:00'; " + " ".join("SET @%s = %s;" % (k, value(k, v)) for k, v in params.items())
    script = "SET profiling = 1; SET profiling_history_size = 100; %s\n" % sets
    script += ("%s;\n" % sql) * repeats + "SHOW PROFILES;\n"
    out = mariadb(script, database)
    profiles = [row for row in out if len(row) == 3 and row[0].isdigit() and row[2].lstrip().startswith("SELECT")]
    durations = [float(row[1]) * 1000 for row in profiles[-repeats:]]
    rows = len(mariadb(sets + sql + ";", database))
    return statistics.median(durations), rows


def month(rows):
    print("\n## A month of accounting: %d flows over 30 days\n" % rows)
    r = bench("month", rows, "--shape", "lan", "--days", "30", "--spool-max", "8G", *ACCOUNTING, "--accounting-by",
              "host,host_pair,service", *LOCAL)
    print("written: %s flows/s, %s accounting rows\n" % (r["flows_per_s"], r["accounting_rows"]))
    sizes = mariadb("SELECT TABLE_NAME, TABLE_ROWS, ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576) FROM "
                    "information_schema.TABLES WHERE TABLE_SCHEMA = 'month' AND TABLE_NAME LIKE 'flows%' AND "
                    "TABLE_TYPE = 'BASE TABLE' "
                    "ORDER BY TABLE_NAME")
    print("| table | rows (estimate) | MiB |\n|---|---|---|")
    for name, n, mib in sizes:
        print("| %s | %s | %s |" % (name, n, mib))
    day = (START + timedelta(days=15)).date()
    hour = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    host = "10.0.0.1"
    peer = mariadb("SELECT dest_host FROM flows_acct_pair WHERE src_host = '%s' AND interval_start >= '%s' AND "
                   "interval_start < '%s' GROUP BY dest_host ORDER BY SUM(bytes) DESC LIMIT 1"
                   % (host, hour, hour + timedelta(hours=1)), "month")[0][0]
    month_from, month_to = START.date(), (START + timedelta(days=31)).date()
    fmt = lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if isinstance(t, datetime) else t.isoformat()
    cases = [
        ("top_talkers_day", "one day", dict(day=day.isoformat())),
        ("top_talkers_range", "one hour", dict(**{"from": fmt(hour), "to": fmt(hour + timedelta(hours=1))})),
        ("top_talkers_range", "one day", dict(**{"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()})),
        ("host_over_time", "one day", dict(host=host, **{"from": day.isoformat(),
                                                          "to": (day + timedelta(days=1)).isoformat()})),
        ("host_over_time", "the month", dict(host=host, **{"from": month_from.isoformat(),
                                                            "to": month_to.isoformat()})),
        ("host_per_day", "the month", dict(host=host, **{"from": month_from.isoformat(), "to": month_to.isoformat()})),
        ("usage_per_host", "the month", dict(**{"from": month_from.isoformat(), "to": month_to.isoformat()})),
        ("pair", "one hour", dict(host=host, peer=peer, **{"from": fmt(hour), "to": fmt(hour + timedelta(hours=1))})),
        ("top_services", "one day", dict(**{"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()})),
    ]
    queries = named_queries()
    print("\n| query (examples/accounting_queries.sql) | range | rows returned | median ms (7 runs) |")
    print("|---|---|---|---|")
    for name, what, params in cases:
        ms, n = time_query("month", queries[name], params)
        print("| %s | %s | %d | %.1f |" % (name, what, n, ms))
    sys.stdout.flush()


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    month_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if rows > 0:
        write_rates(rows, repeats)
    if month_rows > 0:
        month(month_rows)


if __name__ == "__main__":
    main()
