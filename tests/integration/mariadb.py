"""A private MariaDB server for tests and benchmarks.

    with MariaDB() as db:                   # mariadb-install-db + mariadbd on a private socket and port
        db.sql("CREATE DATABASE flows")
        rows = db.query("SELECT COUNT(*) FROM flows.flows")
        db.stop(); db.start()               # same data directory: a restart
        db.kill()                           # SIGKILL, as a crash

The data directory lives in a temporary directory and is removed on exit
(unless FLOWFOLD_KEEP_TEST_DIRS is set). A pristine, freshly installed data
directory is cached in FLOWFOLD_TEST_CACHE and copied for each server, which
turns the ~1 s install into a copy. Runs as root (--user=root); reads no
option files (--no-defaults). Waits are on the server answering, never on
fixed sleeps.

As a program it wraps a command with a server, for C++ tests and benches:

    python3 mariadb.py [--keep] -- COMMAND ARGS...

runs COMMAND with FLOWFOLD_TEST_MYSQL_SOCKET, FLOWFOLD_TEST_MYSQL_PORT and
FLOWFOLD_TEST_MYSQL_CTL (this script's path: `mariadb.py ctl stop|start`
lets the command stop, start, kill, pause and resume the very server it was
given; FLOWFOLD_TEST_MYSQL_STATE is what `ctl` needs to find the wrapper) set, and
exits with its status.

Python standard library only.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

CACHE_DIR = os.environ.get("FLOWFOLD_TEST_CACHE", os.path.join(tempfile.gettempdir(), "flowfold-test-cache"))
WAIT_LIMIT_S = 60.0


def _which(*names):
    for n in names:
        p = shutil.which(n) or (os.path.exists("/usr/sbin/" + n) and "/usr/sbin/" + n)
        if p:
            return p
    return None


def require_mariadb():
    """Raises unittest.SkipTest unless a MariaDB server and client are installed."""
    missing = [n for n in ("mariadbd", "mariadb-install-db", "mariadb") if _which(n) is None]
    if missing:
        raise unittest.SkipTest("not installed: " + ", ".join(missing) +
                                " (apt-get install mariadb-server mariadb-client)")


def _free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pristine_datadir():
    """A freshly installed data directory, made once and cached."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    pristine = os.path.join(CACHE_DIR, "mariadb-pristine")
    if os.path.isdir(pristine):
        return pristine
    tmp = tempfile.mkdtemp(prefix="mariadb-install-", dir=CACHE_DIR)
    data = os.path.join(tmp, "data")
    r = subprocess.run([_which("mariadb-install-db"), "--no-defaults", "--user=root", "--datadir=" + data,
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssertionError("mariadb-install-db failed:\n" + r.stdout + r.stderr)
    try:
        os.rename(data, pristine)
    except OSError:
        pass  # another run won the race; use its copy
    shutil.rmtree(tmp, ignore_errors=True)
    return pristine


class MariaDB:
    """mariadbd on 127.0.0.1:port and a private UNIX socket; root has no password."""

    def __init__(self, workdir=None, extra_args=()):
        require_mariadb()
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="flowfold-mariadb-")
        self.data = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.log_path = os.path.join(self.dir, "mariadbd.log")
        self.port = _free_tcp_port()
        self.extra_args = list(extra_args)
        self.proc = None
        shutil.copytree(_pristine_datadir(), self.data, symlinks=True)
        self.start()
        # The install's anonymous accounts (''@localhost) would shadow a
        # test's own users connecting over 127.0.0.1.
        self.sql("DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES")

    # ------------------------------------------------------------ lifecycle

    def start(self):
        if self.proc and self.proc.poll() is None:
            return
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [_which("mariadbd"), "--no-defaults", "--user=root", "--datadir=" + self.data,
             "--socket=" + self.socket, "--port=%d" % self.port, "--bind-address=127.0.0.1",
             "--pid-file=" + os.path.join(self.dir, "mariadbd.pid"), "--log-error=" + self.log_path,
             "--innodb-buffer-pool-size=256M", "--max-connections=200",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + WAIT_LIMIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mariadbd exited with %d:\n%s" % (self.proc.returncode, self.log_tail()))
            if self._answers():
                return
            time.sleep(0.05)
        raise AssertionError("mariadbd did not answer within %.0f s:\n%s" % (WAIT_LIMIT_S, self.log_tail()))

    def stop(self):
        """A clean shutdown (SIGTERM), waiting until the process has gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL: the server crashes; InnoDB recovers on the next start."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self):
        """SIGSTOP: the server hangs (connections stay open, nothing answers)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        self.stop()
        if self.own_dir and not os.environ.get("FLOWFOLD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------ SQL

    def _client(self, sql, database=None):
        args = [_which("mariadb"), "--no-defaults", "-S", self.socket, "-uroot", "--batch", "--skip-column-names",
                "--raw"]
        if database:
            args.append(database)
        # On stdin: a single argument may not exceed 128 KiB.
        return subprocess.run(args, input=sql, capture_output=True, text=True, check=False)

    def _answers(self):
        return os.path.exists(self.socket) and self._client("SELECT 1").returncode == 0

    def sql(self, sql, database=None):
        """Runs statements; raises AssertionError with the server's message on failure."""
        r = self._client(sql, database)
        if r.returncode != 0:
            raise AssertionError("SQL failed: %s\n%s" % (sql, r.stderr))
        return r.stdout

    def query(self, sql, database=None):
        """Rows as lists of strings (NULL as None)."""
        out = self.sql(sql, database)
        rows = []
        for line in out.splitlines():
            rows.append([None if c == "NULL" else c for c in line.split("\t")])
        return rows

    def scalar(self, sql, database=None):
        rows = self.query(sql, database)
        return rows[0][0] if rows else None

    @property
    def dsn_host(self):
        return "127.0.0.1:%d" % self.port


# ---------------------------------------------------------------- command wrapper

# `mariadb.py ctl ACTION` asks the wrapper (by signal) to act on its server.
_CTL_SIGNALS = {"stop": signal.SIGUSR1, "start": signal.SIGUSR2, "kill": signal.SIGHUP,
                "pause": signal.SIGRTMIN, "resume": signal.SIGRTMIN + 1}

def _line_count(path):
    with open(path) as f:
        return sum(1 for _ in f)


def _main(argv):
    keep = False
    if argv and argv[0] == "--keep":
        keep, argv = True, argv[1:]
    if argv and argv[0] == "ctl":
        # ctl stop|start|kill: talk to the server whose state file the
        # environment names (the wrapper below writes it).
        state = os.environ["FLOWFOLD_TEST_MYSQL_STATE"]
        with open(state) as f:
            pid = int(f.readline())
        # The wrapper acknowledges by appending a line once done; count the
        # lines before asking, so a quick answer is not missed.
        before = _line_count(state)
        os.kill(pid, _CTL_SIGNALS[argv[1]])
        deadline = time.monotonic() + WAIT_LIMIT_S
        while _line_count(state) == before:
            if time.monotonic() > deadline:
                print("mariadb.py ctl: no answer from the wrapper", file=sys.stderr)
                return 1
            time.sleep(0.01)
        return 0
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: mariadb.py [--keep] -- COMMAND ARGS...", file=sys.stderr)
        return 2
    try:
        require_mariadb()
    except unittest.SkipTest as e:
        print("mariadb.py: " + str(e), file=sys.stderr)
        return 77
    with MariaDB() as db:
        if keep:
            os.environ["FLOWFOLD_KEEP_TEST_DIRS"] = "1"
        state = os.path.join(db.dir, "wrapper.state")
        with open(state, "w") as f:
            f.write("%d\n" % os.getpid())

        def control(action):
            def handler(signum, frame):
                action()
                with open(state, "a") as f:
                    f.write("done\n")
            return handler
        actions = {"stop": db.stop, "start": db.start, "kill": db.kill, "pause": db.pause, "resume": db.resume}
        for name, signum in _CTL_SIGNALS.items():
            signal.signal(signum, control(actions[name]))
        env = dict(os.environ, FLOWFOLD_TEST_MYSQL_SOCKET=db.socket, FLOWFOLD_TEST_MYSQL_PORT=str(db.port),
                   FLOWFOLD_TEST_MYSQL_CTL=os.path.abspath(__file__), FLOWFOLD_TEST_MYSQL_STATE=state)
        proc = subprocess.Popen(argv, env=env)
        while True:
            try:
                return proc.wait()
            except InterruptedError:
                continue


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
