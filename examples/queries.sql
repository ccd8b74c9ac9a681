-- Accounting queries for the table flowfold's mysql exporter writes
-- (examples/accounting.yaml; schema in exporters/mysql/README.md).
--
--   mariadb netflow < examples/queries.sql
--
-- Times in the table are UTC (DATETIME(3)); the session is set to UTC so
-- NOW() and UTC_TIMESTAMP() agree. Every query works on a time range
-- [@from, @to) of first_time, which the time index (idx_first_time) or the
-- daily partitions serve. Addresses are stored as 4 or 16 bytes (src_ip,
-- dest_ip: compact, one column for IPv4 and IPv6) and read as text in the
-- generated columns src_addr and dest_addr: WHERE src_addr = '10.0.0.1'
-- finds a host, through the per-host indexes when configured.
-- Each query is introduced by a "-- name:" line (tests/integration/test_mysql.py
-- runs this file and checks each answer against the raw rows).

SET time_zone = '+00:00';
SET @from = UTC_DATE() - INTERVAL 7 DAY;   -- the last seven days ...
SET @to = UTC_DATE() + INTERVAL 1 DAY;     -- ... up to the end of today
SET @host = '10.0.0.1';                    -- for the per-host queries

-- name: per_host_daily
-- Per-host daily volume: bytes and packets each host sent and received per day.
SELECT day, INET6_NTOA(host) AS host,
       SUM(bytes_out) AS bytes_sent, SUM(bytes_in) AS bytes_received,
       SUM(packets_out) AS packets_sent, SUM(packets_in) AS packets_received
FROM (
  SELECT DATE(first_time) AS day, src_ip AS host, bytes AS bytes_out, 0 AS bytes_in,
         packets AS packets_out, 0 AS packets_in
  FROM flows WHERE first_time >= @from AND first_time < @to
  UNION ALL
  SELECT DATE(first_time), dest_ip, 0, bytes, 0, packets
  FROM flows WHERE first_time >= @from AND first_time < @to
) AS t
GROUP BY day, host
ORDER BY day, SUM(bytes_out) + SUM(bytes_in) DESC, host;

-- name: host_hourly
-- One host's traffic per hour, both directions (indexes src_ip and dest_ip, on
-- src_addr and dest_addr, make this cheap on big tables; without them it scans
-- the time range).
SELECT DATE_FORMAT(first_time, '%Y-%m-%d %H:00') AS hour,
       SUM(IF(src_addr = @host, bytes, 0)) AS bytes_sent,
       SUM(IF(dest_addr = @host, bytes, 0)) AS bytes_received,
       COUNT(*) AS flows
FROM flows
WHERE first_time >= @from AND first_time < @to
  AND (src_addr = @host OR dest_addr = @host)
GROUP BY hour
ORDER BY hour;

-- name: top_talkers
-- Top talkers: the ten sources that sent the most bytes in the range.
SELECT INET6_NTOA(src_ip) AS host, SUM(bytes) AS bytes, SUM(packets) AS packets, COUNT(*) AS flows
FROM flows
WHERE first_time >= @from AND first_time < @to
GROUP BY src_ip
ORDER BY bytes DESC, host
LIMIT 10;

-- name: top_conversations
-- Top conversations: host pairs by bytes, both directions added up.
SELECT INET6_NTOA(LEAST(src_ip, dest_ip)) AS host_a, INET6_NTOA(GREATEST(src_ip, dest_ip)) AS host_b,
       SUM(bytes) AS bytes, SUM(packets) AS packets, COUNT(*) AS flows
FROM flows
WHERE first_time >= @from AND first_time < @to
GROUP BY LEAST(src_ip, dest_ip), GREATEST(src_ip, dest_ip)
ORDER BY bytes DESC, host_a, host_b
LIMIT 10;

-- name: traffic_by_port
-- Traffic by port: TCP and UDP by destination port (the service, for flows
-- from clients to servers; replies count under the client's port).
SELECT ELT(FIELD(protocol, 6, 17), 'tcp', 'udp') AS proto, dest_port AS port,
       SUM(bytes) AS bytes, SUM(packets) AS packets, COUNT(*) AS flows
FROM flows
WHERE first_time >= @from AND first_time < @to AND protocol IN (6, 17)
GROUP BY protocol, dest_port
ORDER BY bytes DESC, proto, port
LIMIT 20;

-- name: by_protocol
-- Traffic by IP protocol and version.
SELECT ip_version, protocol, SUM(bytes) AS bytes, SUM(packets) AS packets, COUNT(*) AS flows
FROM flows
WHERE first_time >= @from AND first_time < @to
GROUP BY ip_version, protocol
ORDER BY ip_version, protocol;

-- Expiring old rows without partitions (partition: daily with
-- retention_days does this by dropping whole days). In small steps, so
-- the sink's inserts never wait long behind the delete; repeat until it
-- reports 0 rows (or run it from the event scheduler):
--
--   DELETE FROM flows WHERE first_time < UTC_TIMESTAMP() - INTERVAL 90 DAY LIMIT 10000;
--
-- With daily partitions, by hand:
--   SELECT PARTITION_NAME, TABLE_ROWS FROM information_schema.PARTITIONS
--     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'flows';
--   ALTER TABLE flows DROP PARTITION p20250101;
