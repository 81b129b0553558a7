# High-availability fixtures for the fault suite: PostgreSQL primary/standby pairs on
# loopback addresses (127.0.0.2, 127.0.0.3: Linux routes all of 127/8 to lo), a writer
# load, and the bookkeeping shared by tests/faults/test_failover_pg.py.
#
#   HaCluster(addr, port)   a small private cluster listening on addr:port only
#       .init_primary()     initdb, replication allowed, synchronous_commit on
#       .init_standby(p)    pg_basebackup -R from primary p (no sync names copied)
#       .make_sync_for(s)   ALTER SYSTEM synchronous_standby_names = '*', wait for s as sync
#       .promote()          pg_ctl promote -w
#       .follow(p)          turn a stopped (old) primary into a standby of p and start it
#   Writer                  a thread POSTing LLM keys on fresh connections, recording
#                           (t0, t1, status, data, key)
#
# Every wait is bounded in time.
import os
import pwd
import threading
import time

import psycopg2

import integrationsd_test as bb
from conftest import new_key, seed_users, timed_request, wait_until  # noqa: F401 (re-exported)

UNAVAILABLE = {"message": "Service Unavailable", "error": "database unavailable"}


def addr_port_free(addr, port):
    import socket
    s = socket.socket()
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def shared_port(addrs):
    """A port free on every address in addrs."""
    for _ in range(50):
        p = bb.free_port()
        if all(addr_port_free(a, p) for a in addrs):
            return p
    raise RuntimeError("no port free on %s" % (addrs,))


class HaCluster(bb.PgCluster):
    def __init__(self, addr, port):
        super().__init__()
        self.addr = addr
        self.port = port

    def _small(self):
        self._append_conf([
            "listen_addresses = '%s'" % self.addr,
            "port = %d" % self.port,
            "unix_socket_directories = '%s'" % self.base,
            "shared_buffers = 16MB",
            "max_connections = 40",
            "wal_level = replica",
            "max_wal_senders = 5",
            "wal_keep_size = 64MB",
            "hot_standby = on",
            # acknowledged commits must be on the standby too (synchronous replication)
            "synchronous_commit = on",
            "wal_receiver_status_interval = 1s",
        ])

    def init_primary(self):
        self.init()
        with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
            f.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")
        self._small()

    def init_standby(self, primary):
        self._cmd([os.path.join(bb.PG_BINDIR, "pg_basebackup"), "-h", primary.addr, "-p", str(primary.port),
                   "-U", "postgres", "-D", self.datadir, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
                  timeout=120)
        self._small()

    def dsn(self, dbname="postgres"):
        return "postgres://postgres@%s:%d/%s" % (self.addr, self.port, dbname)

    def sql(self, q, params=None, dbname="postgres"):
        c = psycopg2.connect(self.dsn(dbname), connect_timeout=5)
        c.autocommit = True
        try:
            with c.cursor() as cur:
                cur.execute(q, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def make_sync_for(self, timeout=30):
        self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.sql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.sql("SELECT sync_state FROM pg_stat_replication")
            if rows and any(r[0] == "sync" for r in rows):
                return
            time.sleep(0.1)
        raise AssertionError("standby not synchronous after %d s:\n%s" % (timeout, self.log_tail()))

    def promote(self):
        self._cmd([os.path.join(bb.PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-w", "-t", "30", "promote"])

    def follow(self, primary):
        """Start this (stopped) old primary as a standby of `primary`."""
        sig = os.path.join(self.datadir, "standby.signal")
        open(sig, "w").close()
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(sig, pw.pw_uid, pw.pw_gid)
        self._append_conf(["primary_conninfo = 'host=%s port=%d user=postgres application_name=old_primary'"
                           % (primary.addr, primary.port)])
        self.start()

    def in_recovery(self):
        return self.sql("SELECT pg_is_in_recovery()")[0][0]


def make_pair(db_name):
    """A primary on 127.0.0.2 and a synchronous streaming standby on 127.0.0.3, same port,
    both holding database db_name with public.users seeded."""
    port = shared_port(["127.0.0.2", "127.0.0.3"])
    a = HaCluster("127.0.0.2", port)
    b = HaCluster("127.0.0.3", port)
    a.init_primary()
    a.start()
    a.create_db(db_name)
    seed_users(a, db_name)
    b.init_standby(a)
    b.start()
    a.make_sync_for()
    return a, b


class Writer(threading.Thread):
    """POST /api/llm-keys (or GET) in a loop on fresh connections."""

    def __init__(self, svc, token, method="POST", max_seconds=60, pause=0.02):
        super().__init__(daemon=True)
        self.svc = svc
        self.token = token
        self.method = method
        self.max_seconds = max_seconds
        self.pause = pause
        self.results = []
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic()
            key = None
            if self.method == "POST":
                key = new_key("sk-ha-")
                st, data, _ = timed_request(self.svc.port, "POST", "/api/llm-keys", timeout=10, token=self.token,
                                            body={"name": "OpenAI", "key": key, "model": "gpt-4o"})
            else:
                st, data, _ = timed_request(self.svc.port, "GET", "/api/llm-keys", timeout=10, token=self.token)
            self.results.append((t0, time.monotonic(), st, data, key))
            self.halt.wait(self.pause)


def stop_writers(writers, timeout=20):
    """Halt every writer, then wait for each (they finish their request in flight)."""
    for w in writers:
        w.halt.set()
    for w in writers:
        w.join(timeout)


def first_ok_after(writers, t, method="POST"):
    """End time of the first 2xx answer of `method` to a request started after t."""
    ts = [t1 for w in writers if w.method == method for t0, t1, st, _, _ in w.results
          if t0 >= t and st is not None and 200 <= st < 300]
    return min(ts) if ts else None


def classify(writers, fast_s):
    """(acked ids, counts, slowest 503, problems) over every answer of the writers."""
    acked, problems = {}, []
    counts = {"2xx": 0, "503": 0}
    slowest = 0.0
    for w in writers:
        for t0, t1, st, data, key in w.results:
            dt = t1 - t0
            if st is None:
                problems.append("%s: transport error %s after %.2f s" % (w.method, data, dt))
            elif st == 503:
                counts["503"] += 1
                slowest = max(slowest, dt)
                if data != UNAVAILABLE:
                    problems.append("%s: 503 with body %r" % (w.method, data))
                if dt >= fast_s:
                    problems.append("%s: 503 after %.2f s" % (w.method, dt))
            elif 200 <= st < 300:
                counts["2xx"] += 1
                if w.method == "POST":
                    acked[data["data"]["id"]] = key
            else:
                problems.append("%s: unexpected %s %r" % (w.method, st, data))
    return acked, counts, slowest, problems


