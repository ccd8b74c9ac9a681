"""The MySQL sink's accounting tables (issue 22) in a real MariaDB.

The expectation is tshark's list of every packet of the capture with its
time: the packets and bytes of each host (as source: out, as destination:
in), each source/destination pair and each protocol/service port, summed per
interval and per UTC day, which the accounting tables must equal row by row,
flows that span intervals included (the capture's long flows last up to its
120 s, the interval here is 10 s). The tables' flow counts, and every sum,
must equal the same sums over the flow table's rows, which the collectors'
tests check against flowgen's truth. Exactly once: across a server that
stops in the middle of the run and a SIGKILL of flowfold mid-batch (the
sums gathered in memory then are counted again from the flow table).
"""

import ipaddress
import os
import re
import subprocess
import unittest
from datetime import datetime, timezone

from harness import FLOWFOLD, REPO, add_flow, check_counters_documented, flowgen, norm_addr, stats_of, wait_for
import test_mysql
from test_mysql import PROFILE, MysqlTest, flowfold_has_mysql, write_empty_pcap
from test_sampling import tshark_packets

INTERVAL_S = 10
QUERIES = os.path.join(REPO, "examples", "accounting_queries.sql")
DAY_S = 86400
LOCAL = "10.0.0.0/8"


def service_port(proto, sport, dport):
    """The documented rule: TCP/UDP/SCTP/UDP-Lite the lower port, ICMP type*256+code, else 0."""
    if proto in (6, 17, 132, 136):
        return min(sport, dport)
    return dport if proto in (1, 58) else 0


def sink_stats(stderr):
    """The mysql exporter's part of flowfold's final stats line: {name: value}."""
    for line in stderr.splitlines():
        if "stats:" in line:
            part = next(p for p in line.split(" | ") if p.startswith("mysql://"))
            return {k: int(v) for k, v in (item.split("=") for item in part.split(": ", 1)[1].split())}
    raise AssertionError("no stats line in:\n" + stderr)


def truth(packets, local=None):
    """{table: {row key: [packets, bytes]}} of a tshark packet list."""
    net = ipaddress.ip_network(local) if local else None
    is_local = lambda a: net is None or (ipaddress.ip_address(a).version == net.version and
                                         ipaddress.ip_address(a) in net)
    out = {"host": {}, "daily": {}, "pair": {}, "service": {}}
    for (proto, src, sport, dst, dport, _vlan), size, ts_ms in packets:
        start = ts_ms // 1000 // INTERVAL_S * INTERVAL_S
        day = ts_ms // 1000 // DAY_S * DAY_S
        for host, direction in ((src, "out"), (dst, "in")):
            if is_local(host):
                add_flow(out["host"], (start, host, direction), 1, size)
                add_flow(out["daily"], (day, host, direction), 1, size)
        add_flow(out["pair"], (start, src, dst), 1, size)
        add_flow(out["service"], (start, proto, service_port(proto, sport, dport)), 1, size)
    return out


@unittest.skipUnless(flowfold_has_mysql(), "flowfold has no --mysql option")
class Accounting(MysqlTest):
    # FlowfoldToMysql's helpers (the class itself is not imported: its tests
    # would run again as this module's).
    dsn = test_mysql.FlowfoldToMysql.dsn
    flowfold = test_mysql.FlowfoldToMysql.flowfold
    spooled_records = test_mysql.FlowfoldToMysql.spooled_records

    def setUp(self):
        super().setUp()
        self.pcap, _ = flowgen("it-conservation", *PROFILE)
        self.spool = self.path("spool")
        self.empty = self.path("empty.pcap")
        write_empty_pcap(self.empty)

    def acct_dsn(self, **params):
        params.setdefault("accounting_interval", "%ds" % INTERVAL_S)
        params.setdefault("accounting_by", "host,host_pair,service")
        return self.dsn(**params)

    # ------------------------------------------------------------ readers

    def rows(self, sql):
        return self.db.query(sql, database=self.database)

    def table(self, name, time_column, key_columns):
        """{(seconds, *key): [packets, bytes]} and {(seconds, *key): flows} of an accounting table."""
        sums, flows = {}, {}
        for row in self.rows("SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', `%s`), %s, packets, bytes, flows FROM %s"
                             % (time_column, ", ".join(key_columns), name)):
            key = (int(row[0]),) + tuple(self.cell(c, v) for c, v in zip(key_columns, row[1:-3]))
            self.assertNotIn(key, sums, "two rows for one key in " + name)
            sums[key] = [int(row[-3]), int(row[-2])]
            flows[key] = int(row[-1])
        return sums, flows

    @staticmethod
    def cell(column, value):
        return norm_addr(value) if column.endswith("host") else int(value) if column in ("protocol", "port") else value

    def tables(self):
        return {
            "host": self.table("flows_acct_host", "interval_start", ["host", "direction"]),
            "daily": self.table("flows_acct_host_daily", "day", ["host", "direction"]),
            "pair": self.table("flows_acct_pair", "interval_start", ["src_host", "dest_host"]),
            "service": self.table("flows_acct_service", "interval_start", ["protocol", "port"]),
        }

    def flow_row_sums(self, local=None):
        """The same sums (with flow counts) over the flow table's rows, in SQL."""
        start = "TIMESTAMPDIFF(SECOND, '1970-01-01', first_time) DIV %d * %d" % (INTERVAL_S, INTERVAL_S)
        day = "TIMESTAMPDIFF(SECOND, '1970-01-01', first_time) DIV %d * %d" % (DAY_S, DAY_S)
        out = {"host": {}, "daily": {}, "pair": {}, "service": {}}
        net = ipaddress.ip_network(local) if local else None
        def add(table, key, p, b, n):
            entry = out[table].setdefault(key, [0, 0, 0])
            entry[0] += p
            entry[1] += b
            entry[2] += n
        for t, s, sport, d, dport, proto, p, b, n in self.rows(
                "SELECT %s, src_addr, src_port, dest_addr, dest_port, protocol, SUM(packets), SUM(bytes), COUNT(*) "
                "FROM flows GROUP BY 1, 2, 3, 4, 5, 6" % start):
            t, sport, dport, proto, p, b, n = map(int, (t, sport, dport, proto, p, b, n))
            s, d = norm_addr(s), norm_addr(d)
            for host, direction in ((s, "out"), (d, "in")):
                a = ipaddress.ip_address(host)
                if net is None or (a.version == net.version and a in net):
                    add("host", (t, host, direction), p, b, n)
                    add("daily", (t // DAY_S * DAY_S, host, direction), p, b, n)
            add("pair", (t, s, d), p, b, n)
            add("service", (t, proto, service_port(proto, sport, dport)), p, b, n)
        return out

    def assertAccountingExact(self, local=None):
        want = truth(tshark_packets(self.pcap), local)
        got = self.tables()
        from_rows = self.flow_row_sums(local)
        for name in want:
            sums, flows = got[name]
            with self.subTest(table=name):
                self.assertFlowsEqual(sums, want[name])
                self.assertEqual({k: v + [flows[k]] for k, v in sums.items()}, from_rows[name])
        return got

    # ------------------------------------------------------------ tests

    def test_every_table_equals_the_packets_per_interval_and_the_flow_rows(self):
        proc = self.flowfold(self.pcap, self.acct_dsn())
        self.assertIn("cache.split_interval set to 10s", proc.stderr)
        self.assertAccountingExact()
        # The sink's counters: one window (the run is short) wrote each row once.
        stats = sink_stats(proc.stderr)
        rows = sum(int(self.rows("SELECT COUNT(*) FROM " + t)[0][0]) for t in
                   ("flows_acct_host", "flows_acct_host_daily", "flows_acct_pair", "flows_acct_service"))
        if stats["accounting_windows"] == 1:
            self.assertEqual(stats["accounting_rows"], rows)
        else:
            self.assertGreater(stats["accounting_rows"], rows)
        self.assertNotIn("accounting_recounted", stats)  # 0: nothing to count again
        check_counters_documented(self, proc.stderr)  # the sink's numbers, as the README names them
        # Sums over the tables equal sums over the flow rows, in SQL too.
        totals = self.rows("SELECT SUM(packets), SUM(bytes), COUNT(*) FROM flows")[0]
        for table in ("flows_acct_pair", "flows_acct_service"):
            self.assertEqual(self.rows("SELECT SUM(packets), SUM(bytes), SUM(flows) FROM " + table)[0], totals)
        for direction in ("in", "out"):
            self.assertEqual(self.rows("SELECT SUM(packets), SUM(bytes), SUM(flows) FROM flows_acct_host WHERE "
                                       "direction = '%s'" % direction)[0], totals)
        # Flows that span intervals were there: flows with records in several.
        spanning = self.rows("SELECT COUNT(*) FROM (SELECT flow_id FROM flows GROUP BY flow_id "
                             "HAVING COUNT(DISTINCT TIMESTAMPDIFF(SECOND, '1970-01-01', first_time) DIV %d) > 1) s"
                             % INTERVAL_S)[0][0]
        self.assertGreater(int(spanning), 100)

    def test_with_local_networks_only_local_hosts_have_rows(self):
        proc = subprocess.run([FLOWFOLD, "-r", self.pcap, "--local-networks", LOCAL, "--mysql", self.acct_dsn()],
                              capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = self.assertAccountingExact(local=LOCAL)
        hosts = {key[1] for key in got["host"][0]}
        self.assertTrue(hosts)
        self.assertTrue(all(ipaddress.ip_address(h) in ipaddress.ip_network(LOCAL) for h in hosts))

    def test_seed_style_queries_read_text_addresses(self):
        self.flowfold(self.pcap, self.acct_dsn())
        packets = tshark_packets(self.pcap)
        (_, host, _, _, _, _), _, _ = next(p for p in packets if p[0][1].startswith("10."))
        want = sum(size for (_, src, _, _, _, _), size, _ in packets if src == host)
        self.assertEqual(int(self.rows("SELECT SUM(bytes) FROM flows_acct_host_daily WHERE host = '%s' AND "
                                       "direction = 'out'" % host)[0][0]), want)
        v6 = next(p[0][1] for p in packets if ":" in p[0][1])
        want6 = sum(size for (_, src, _, _, _, _), size, _ in packets if src == v6)
        self.assertEqual(int(self.rows("SELECT SUM(bytes) FROM flows_acct_host WHERE host = '%s' AND "
                                       "direction = 'out'" % v6)[0][0]), want6)
        plan = " ".join(str(c) for r in self.rows("EXPLAIN SELECT SUM(bytes) FROM flows_acct_host WHERE host = '%s'"
                                                  % host) for c in r)
        self.assertIn("idx_host_time", plan)

    def test_server_stopped_mid_run_then_restarted_counts_every_packet_once(self):
        proc = subprocess.Popen([FLOWFOLD, "-r", self.pcap, "--mysql", self.acct_dsn(batch_size="500")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self.count() > 0 or proc.poll() is not None, "the first rows")
        self.db.stop()
        err = proc.communicate(timeout=600)[1]
        self.assertEqual(proc.returncode, 0, err)
        self.db.start()
        self.assertLess(self.count(), stats_of(err)["records"], "everything was written before the server stopped")
        rerun = self.flowfold(self.empty, self.acct_dsn())
        self.assertEqual(self.count(), stats_of(err)["records"])
        # The sums of the records written before the server stopped were in
        # memory only: counted again from the flow table.
        self.assertIn("that were written to flows before the last stop or failure", rerun.stderr)
        self.assertAccountingExact()

    def test_sigkill_during_a_batch_then_rerun_counts_every_packet_once(self):
        # How many records the run makes (file mode is deterministic; the
        # accounting interval splits records at 10 s).
        records = stats_of(subprocess.run([FLOWFOLD, "-r", self.pcap, "--json=/dev/null", "--split-interval",
                                           "%ds" % INTERVAL_S], capture_output=True, text=True,
                                          check=True).stderr)["records"]
        proc = subprocess.Popen([FLOWFOLD, "-r", self.pcap, "--mysql", self.acct_dsn(batch_size="500")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: self.count() > 0 or proc.poll() is not None, "the first rows")
            self.assertIsNone(proc.poll(), "flowfold ended before it could be killed")
            # Frozen server: the sink is stuck inside a batch's transaction
            # while every record reaches the spool; then the process dies.
            self.db.pause()
            try:
                wait_for(lambda: self.spooled_records() == records, "every record in the spool")
                proc.kill()
                proc.wait()
            finally:
                self.db.resume()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.wait_for_sessions_to_end()
        at_kill = self.count()
        self.assertLess(at_kill, records)
        rerun = self.flowfold(self.empty, self.acct_dsn())
        # Those of the rows written before the kill whose sums were still in
        # memory are counted again from the flow table.
        recounted = re.search(r"counting (\d+) records in the accounting tables", rerun.stderr)
        self.assertTrue(recounted, rerun.stderr)
        self.assertTrue(0 < int(recounted.group(1)) <= at_kill, (recounted.group(1), at_kill))
        self.assertEqual(sink_stats(rerun.stderr)["accounting_recounted"], int(recounted.group(1)))
        self.assertEqual(self.count(), records)
        self.assertAccountingExact()

    def test_retention_deletes_old_accounting_rows_and_keeps_recent_ones(self):
        self.flowfold(self.pcap, self.acct_dsn())  # the capture's rows are from 2023
        tables = ("flows_acct_host", "flows_acct_host_daily", "flows_acct_pair", "flows_acct_service")
        old = sum(int(self.rows("SELECT COUNT(*) FROM " + t)[0][0]) for t in tables)
        self.assertGreater(old, 0)
        self.rows("INSERT INTO flows_acct_host VALUES (UTC_TIMESTAMP() - INTERVAL 1 DAY, '10.9.9.9', 'out', 1, 2, 3);"
                  "INSERT INTO flows_acct_host_daily VALUES (UTC_DATE() - INTERVAL 1 DAY, '10.9.9.9', 'out', 1, 2, 3)")
        proc = self.flowfold(self.empty, self.acct_dsn(accounting_retention_days="30"))
        self.assertIn("deleted %d accounting rows" % old, proc.stderr)
        for table in tables[:2]:
            self.assertEqual(self.rows("SELECT host FROM " + table), [["10.9.9.9"]])
        for table in tables[2:]:
            self.assertEqual(self.rows("SELECT COUNT(*) FROM " + table), [["0"]])
        self.assertGreater(self.count(), 0, "the flow rows are not the accounting retention's")

    def test_without_create_table_missing_tables_are_named_and_the_records_wait(self):
        self.flowfold(self.empty, self.dsn())  # the flow table, made without accounting
        proc = self.flowfold(self.pcap, self.acct_dsn(create_table="false", accounting_by="host"))
        lines = [l for l in proc.stderr.splitlines() if "accounting is on but create_table is off" in l]
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn("flows_acct_host, flows_acct_host_daily", lines[0])
        self.assertEqual(self.count(), 0)
        self.flowfold(self.empty, self.acct_dsn(accounting_by="host"))
        self.assertEqual(self.count(), stats_of(proc.stderr)["records"])

    def test_a_refused_accounting_statement_keeps_the_flows_and_is_counted_later(self):
        # A user without UPDATE: every upsert is refused by the server.
        self.db.sql("CREATE USER IF NOT EXISTS 'acct'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT, INSERT, DELETE, "
                    "CREATE, CREATE VIEW, ALTER, DROP ON %s.* TO 'acct'@'127.0.0.1'" % self.database)
        dsn = self.acct_dsn().replace("root@", "acct@")
        env = {"FLOWFOLD_MYSQL_PASSWORD": "pw"}
        proc = self.flowfold(self.pcap, dsn, env=env)
        self.assertEqual(self.count(), stats_of(proc.stderr)["records"], "the flow rows must go on")
        self.assertIn("the flow rows go on being written", proc.stderr)
        self.assertEqual(self.rows("SELECT COUNT(*) FROM flows_acct_host"), [["0"]])
        self.db.sql("GRANT UPDATE ON %s.* TO 'acct'@'127.0.0.1'" % self.database)
        rerun = self.flowfold(self.empty, dsn, env=env)
        self.assertIn("counting %d records in the accounting tables" % self.count(), rerun.stderr)
        self.assertAccountingExact()

    def test_a_split_interval_that_does_not_divide_the_accounting_interval_is_refused(self):
        proc = subprocess.run([FLOWFOLD, "-r", self.pcap, "--split-interval", "7s", "--mysql", self.acct_dsn()],
                              capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("the accounting interval 10s is not a multiple of cache.split_interval (7s)", proc.stderr)
        self.assertEqual(self.count(), 0)


def named_queries():
    """{name: SQL} of examples/accounting_queries.sql."""
    with open(QUERIES) as f:
        text = f.read()
    queries = {}
    for block in text.split("-- name: ")[1:]:
        name, body = block.split("\n", 1)
        code = "\n".join(l for l in body.splitlines() if not l.startswith("--"))
        queries[name.strip()] = code.split(";")[0] + ";"
    return queries


@unittest.skipUnless(flowfold_has_mysql(), "flowfold has no --mysql option")
class AccountingQueries(MysqlTest):
    """examples/accounting_queries.sql over the tables of the capture, each
    answer computed here from tshark's packets."""

    def setUp(self):
        super().setUp()
        pcap, _ = flowgen("it-conservation", *PROFILE)
        self.packets = tshark_packets(pcap)
        proc = subprocess.run([FLOWFOLD, "-r", pcap, "--mysql", "mysql://root@%s/%s?spool_dir=%s&accounting_interval=%ds"
                               "&accounting_by=host,host_pair,service" % (self.db.dsn_host, self.database,
                                                                          self.path("spool"), INTERVAL_S)],
                              capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        first_s = self.packets[0][2] // 1000
        self.day_s = first_s // DAY_S * DAY_S
        self.from_s = (first_s // INTERVAL_S + 2) * INTERVAL_S  # whole intervals inside the capture
        self.to_s = self.from_s + 6 * INTERVAL_S
        sent = {}
        for (_, src, _, _, _, _), size, _ in self.packets:
            if src.startswith("10."):
                sent[src] = sent.get(src, 0) + size
        self.host = max(sent, key=lambda h: (sent[h], h))
        peers = {}
        for (_, src, _, dst, _, _), size, ts in self.packets:
            if src == self.host and self.from_s <= ts // 1000 < self.to_s:
                peers[dst] = peers.get(dst, 0) + size
        self.peer = max(peers, key=lambda h: (peers[h], h)) if peers else "192.0.2.1"

    @staticmethod
    def text(seconds):
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    def run_query(self, name, from_s=None, to_s=None, explain=False):
        """`name` with @from, @to the test's range of intervals, or the days [from_s, to_s)."""
        prelude = ("SET time_zone = '+00:00'; SET @day = '%s', @from = '%s', @to = '%s', "
                   "@host = CONVERT('%s' USING ascii), @peer = CONVERT('%s' USING ascii);"
                   % (self.text(self.day_s)[:10], self.text(from_s or self.from_s), self.text(to_s or self.to_s),
                      self.host, self.peer))
        return self.db.query(prelude + ("EXPLAIN " if explain else "") + named_queries()[name], self.database)

    def in_range(self, from_s, to_s):
        return [p for p in self.packets if from_s <= p[2] // 1000 // INTERVAL_S * INTERVAL_S < to_s]

    @staticmethod
    def talkers(packets, limit=None):
        per = {}
        for (_, src, _, dst, _, _), size, _ in packets:
            per.setdefault(src, [0, 0])[0] += size
            per.setdefault(dst, [0, 0])[1] += size
        rows = sorted(([h, s, r, s + r] for h, (s, r) in per.items()), key=lambda x: (-x[3], x[0]))
        return rows[:limit] if limit else rows

    @staticmethod
    def ints(rows):
        """Rows whose first column is text (a host is normalised) and the others numbers."""
        first = lambda c: c if c[:4].isdigit() and c[4:5] == "-" else norm_addr(c)  # a date, or a host
        return [[first(r[0])] + [int(c) for c in r[1:]] for r in rows]

    def test_the_whole_file_runs(self):
        with open(QUERIES) as f:
            r = subprocess.run(["mariadb", "--no-defaults", "-S", self.db.socket, "-uroot", self.database],
                               stdin=f, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(named_queries()), {"top_talkers_day", "top_talkers_range", "host_over_time",
                                                "host_per_day", "usage_per_host", "pair", "top_services"})

    def test_top_talkers_and_usage_per_host(self):
        day = [p for p in self.packets if p[2] // 1000 // DAY_S * DAY_S == self.day_s]
        self.assertEqual(self.ints(self.run_query("top_talkers_day")), self.talkers(day, 10))
        self.assertEqual(self.ints(self.run_query("top_talkers_range")),
                         self.talkers(self.in_range(self.from_s, self.to_s), 10))
        self.assertEqual(self.ints(self.run_query("usage_per_host", self.day_s, self.day_s + DAY_S)), self.talkers(day))

    def test_one_host_over_time_and_per_day(self):
        want = {}
        for (_, src, _, dst, _, _), size, ts in self.in_range(self.from_s, self.to_s):
            e = want.setdefault(ts // 1000 // INTERVAL_S * INTERVAL_S, [0, 0, 0])
            if src == self.host:
                e[0] += size
                e[2] += 1
            if dst == self.host:
                e[1] += size
                e[2] += 1
        want = [[self.text(t)] + v for t, v in sorted(want.items()) if v[2]]
        got = [r[:4] for r in self.ints(self.run_query("host_over_time"))]
        self.assertEqual(got, want)
        self.assertTrue(got)
        sent = sum(size for (_, src, *_), size, _ in self.packets if src == self.host)
        received = sum(size for (_, _, _, dst, *_), size, _ in self.packets if dst == self.host)
        self.assertEqual(self.ints(self.run_query("host_per_day", self.day_s - DAY_S, self.day_s + 2 * DAY_S)),
                         [[self.text(self.day_s)[:10], sent, received]])

    def test_the_per_host_and_pair_queries_use_their_indexes(self):
        days = (self.day_s - DAY_S, self.day_s + 2 * DAY_S)
        for name, index, span in (("host_over_time", "idx_host_time", (None, None)),
                                  ("host_per_day", "idx_host_day", days), ("pair", "idx_pair_time", (None, None))):
            plan = self.run_query(name, *span, explain=True)
            self.assertIn(index, " ".join(str(c) for row in plan for c in row), (name, plan))

    def test_pair_and_top_services(self):
        want = {}
        for (_, src, _, dst, _, _), size, _ in self.in_range(self.from_s, self.to_s):
            if {src, dst} == {self.host, self.peer}:
                add_flow(want, (src, dst), 1, size)
        got = {(norm_addr(s), norm_addr(d)): [int(p), int(b)] for s, d, p, b, _f in self.run_query("pair")}
        self.assertEqual(got, want)
        self.assertTrue(got)
        services = {}
        for (proto, _, sport, _, dport, _), size, _ in self.in_range(self.from_s, self.to_s):
            add_flow(services, (proto, service_port(proto, sport, dport)), 1, size)
        top = sorted(services.items(), key=lambda kv: (-kv[1][1], kv[0]))[:10]
        got = [[int(p), int(port), int(pk), int(b)] for p, port, pk, b, _f in self.run_query("top_services")]
        self.assertEqual(got, [[k[0], k[1], v[0], v[1]] for k, v in top])


if __name__ == "__main__":
    unittest.main()
