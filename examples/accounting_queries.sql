-- Reports on the accounting tables of flowfold's mysql exporter
-- (`accounting:` in examples/accounting.yaml; exporters/mysql/README.md,
-- "Accounting tables"), for the flow table `flows`:
--
--   mariadb netflow < examples/accounting_queries.sql
--
-- The tables hold per-interval (and per-day) sums, not flows: a report over
-- a month reads thousands of rows, not millions. Times are UTC; addresses
-- are text as INET6_NTOA writes them ('10.0.0.1', '2001:db8::1'). With
-- local_networks set, `host` rows are the local hosts only; `in` is what the
-- host received, `out` what it sent. bench/mysql_accounting_bench.sh times
-- each query over a month of synthetic traffic (README: "Accounting").
-- Each query is introduced by a "-- name:" line (tests/integration/
-- test_mysql_accounting.py runs this file and checks each answer against
-- the packets of a capture).

SET time_zone = '+00:00';
SET @day = UTC_DATE() - INTERVAL 1 DAY;             -- yesterday (UTC)
SET @from = UTC_DATE() - INTERVAL 30 DAY;           -- a time range [@from, @to) ...
SET @to = UTC_DATE() + INTERVAL 1 DAY;              -- ... up to the end of today
-- The address columns are ASCII text: a variable holding an address is
-- made ASCII too, or comparing it would convert the column and skip its
-- index (a literal, WHERE host = '10.0.0.1', needs nothing).
SET @host = CONVERT('10.0.0.1' USING ascii);        -- for the per-host queries
SET @peer = CONVERT('192.0.2.10' USING ascii);      -- and its peer, for the pair

-- name: top_talkers_day
-- The ten hosts that moved the most bytes on one UTC day (the daily table).
SELECT host,
       SUM(IF(direction = 'out', bytes, 0)) AS bytes_sent,
       SUM(IF(direction = 'in', bytes, 0)) AS bytes_received,
       SUM(bytes) AS bytes
FROM flows_acct_host_daily
WHERE day = @day
GROUP BY host
ORDER BY bytes DESC, host
LIMIT 10;

-- name: top_talkers_range
-- The same over any range of intervals, such as one hour (the interval table).
SELECT host,
       SUM(IF(direction = 'out', bytes, 0)) AS bytes_sent,
       SUM(IF(direction = 'in', bytes, 0)) AS bytes_received,
       SUM(bytes) AS bytes
FROM flows_acct_host
WHERE interval_start >= @from AND interval_start < @to
GROUP BY host
ORDER BY bytes DESC, host
LIMIT 10;

-- name: host_over_time
-- One host, interval by interval, both directions (idx_host_time).
SELECT interval_start,
       SUM(IF(direction = 'out', bytes, 0)) AS bytes_sent,
       SUM(IF(direction = 'in', bytes, 0)) AS bytes_received,
       SUM(packets) AS packets,
       SUM(flows) AS flows
FROM flows_acct_host
WHERE host = @host AND interval_start >= @from AND interval_start < @to
GROUP BY interval_start
ORDER BY interval_start;

-- name: host_per_day
-- One host, day by day (the daily table, idx_host_day).
SELECT day,
       SUM(IF(direction = 'out', bytes, 0)) AS bytes_sent,
       SUM(IF(direction = 'in', bytes, 0)) AS bytes_received
FROM flows_acct_host_daily
WHERE host = @host AND day >= DATE(@from) AND day < DATE(@to)
GROUP BY day
ORDER BY day;

-- name: usage_per_host
-- Every host's total over a range of days, biggest first: the month's bill.
SELECT host,
       SUM(IF(direction = 'out', bytes, 0)) AS bytes_sent,
       SUM(IF(direction = 'in', bytes, 0)) AS bytes_received,
       SUM(bytes) AS bytes
FROM flows_acct_host_daily
WHERE day >= DATE(@from) AND day < DATE(@to)
GROUP BY host
ORDER BY bytes DESC, host;

-- name: pair
-- Between two hosts, each way, in a range of intervals (idx_pair_time).
SELECT src_host, dest_host, SUM(packets) AS packets, SUM(bytes) AS bytes, SUM(flows) AS flows
FROM flows_acct_pair
WHERE ((src_host = @host AND dest_host = @peer) OR (src_host = @peer AND dest_host = @host))
  AND interval_start >= @from AND interval_start < @to
GROUP BY src_host, dest_host
ORDER BY src_host, dest_host;

-- name: top_services
-- The ten services (protocol and service port: TCP/UDP the lower port, ICMP
-- type*256+code) that moved the most bytes in a range of intervals.
SELECT protocol, port, SUM(packets) AS packets, SUM(bytes) AS bytes, SUM(flows) AS flows
FROM flows_acct_service
WHERE interval_start >= @from AND interval_start < @to
GROUP BY protocol, port
ORDER BY bytes DESC, protocol, port
LIMIT 10;
