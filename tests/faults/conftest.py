# Fault-injection fixtures for integrationsd. Everything shared with the black-box suite
# (the private PostgreSQL cluster, JWT minting, HTTP helpers, the Service class with its
# clean-exit and sanitizer checks at teardown) is imported from tests/lib/integrationsd_test.py
# (`bb` below; pytest.ini puts tests/lib on sys.path); this file adds only what fault tests need:
#
#   redis_server         session Redis that restart() brings back on the SAME port
#   service              factory: service(db=..., nofile=64, wait_ready=True, **env) -> a started
#                        FaultService (nofile sets RLIMIT_NOFILE of the child before exec)
#   fresh_db             factory: fresh_db("name") -> a database of its own, public.users seeded
#   rss_mib(pid) cpu_seconds(pid) fd_count(pid)   /proc readings of the service
#   ASAN, rss_bound(mib)  whether the binary is an ASan build; an RSS bound scaled for it
#   Prober               a thread that keeps timing requests of a "normal client"
#   report(...)          a measured figure: printed and appended to $FAULTS_FIGURES_FILE
#
# Every loop in this suite is bounded in count and in time.
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time

import pytest

import integrationsd_test as bb  # tests/lib (pytest.ini): shared with the black-box suite

# Re-exported fixtures and hooks (pytest finds fixtures imported into a conftest).
from integrationsd_test import logdir, pg, tokens  # noqa: E402,F401
from integrationsd_test import pytest_configure  # noqa: E402,F401

# Re-exported helpers, so test modules import everything from here.
from integrationsd_test import (  # noqa: E402,F401
    Db, SANITIZER_MARKERS, free_port, http_request, new_key, parse_responses, raw_exchange,
    seed_users, tenant_hash, token_for, wait_until,
)

# --------------------------------------------------------------------------- measurements

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid):
    """Resident set size (VmRSS) of `pid` in MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    """User + system CPU time consumed so far by `pid` (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(_CLK_TCK)  # utime, stime (fields 14, 15)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _detect_asan():
    if os.environ.get("INTEGRATIONSD_ASAN") in ("0", "1"):
        return os.environ["INTEGRATIONSD_ASAN"] == "1"
    try:
        out = subprocess.run(["ldd", bb.INTEGRATIONSD_BIN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10).stdout.decode(errors="replace")
        if "libasan" in out:
            return True
        out = subprocess.run(["nm", "-D", bb.INTEGRATIONSD_BIN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10).stdout.decode(errors="replace")
        return "__asan_init" in out
    except (OSError, subprocess.SubprocessError):
        return False


ASAN = _detect_asan()
ASAN_RSS_FACTOR = 4.0  # shadow memory, redzones and the quarantine of freed blocks


def rss_bound(mib):
    """An RSS limit in MiB, scaled for an ASan build."""
    return mib * ASAN_RSS_FACTOR if ASAN else mib


def report(name, value, unit="", bound=None):
    """Print a measured figure (shown by the run script) and append it to the figures file."""
    line = "FIGURE %s = %s%s%s" % (name, ("%.3f" % value) if isinstance(value, float) else value,
                                   (" " + unit) if unit else "",
                                   ("  (bound %s%s)" % (bound, (" " + unit) if unit else "")) if bound is not None else "")
    print(line)
    path = os.environ.get("FAULTS_FIGURES_FILE")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def raise_nofile(n):
    """Raise this process's RLIMIT_NOFILE soft limit to at least n (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def timed_request(port, method, path, timeout=10, **kw):
    """(status, data, seconds); status is None with data=repr(exception) on a transport error."""
    t0 = time.monotonic()
    try:
        st, _, data = http_request(port, method, path, timeout=timeout, **kw)
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e), time.monotonic() - t0
    return st, data, time.monotonic() - t0


def metric_value(port, name, labels=None):
    """Sum of the samples of metric `name` whose labels include `labels` (0.0 when absent)."""
    st, _, data = http_request(port, "GET", "/metrics", timeout=5)
    assert st == 200, data
    text = data.decode() if isinstance(data, bytes) else str(data)
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if labels and any(lab.get(k) != v for k, v in labels.items()):
            continue
        total += float(m.group(3))
    return total


class Prober(threading.Thread):
    """The "normal client": every `interval` s, GET `paths` in turn on a fresh connection
    and record (path, status, seconds). stop() ends it (bounded by `max_seconds`)."""

    def __init__(self, port, token, paths=("/healthz", "/api/llm-keys"), interval=0.1, max_seconds=120):
        super().__init__(daemon=True)
        self.port = port
        self.token = token
        self.paths = paths
        self.interval = interval
        self.max_seconds = max_seconds
        self.results = []
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self.halt.is_set() and time.monotonic() < deadline:
            path = self.paths[i % len(self.paths)]
            i += 1
            tok = self.token if path.startswith("/api/") else None
            st, data, dt = timed_request(self.port, "GET", path, timeout=10, token=tok)
            self.results.append((path, st, dt, data))
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(15)
        return self.results

    def check(self, limit=1.0, what="normal client"):
        """Every probe answered 200 within `limit` s; returns the slowest time."""
        assert self.results, "%s: no probe ran" % what
        bad = [(p, st, round(dt, 3)) for p, st, dt, _ in self.results if st != 200 or dt >= limit]
        assert not bad, "%s: %d of %d probes failed or took >= %.1f s: %s" % (
            what, len(bad), len(self.results), limit, bad[:10])
        return max(dt for _, _, dt, _ in self.results)


# --------------------------------------------------------------------------- Redis

class RestartableRedis(bb.RedisServer):
    """The black-box RedisServer, but start() after stop() reuses the same port, so the
    service (whose REDIS_URL is fixed) can reconnect to it."""

    def start(self):
        if self.port is None:
            return super().start()
        import redis
        self.proc = subprocess.Popen(
            [bb.REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.base,
             "--logfile", self.logfile, "--protected-mode", "no"],
            cwd=self.base, env=bb._clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping():
                    return
            except Exception:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not restart on port %d" % self.port)

    def restart_stopped(self):
        return self.start()


@pytest.fixture(scope="session")
def redis_server():
    srv = RestartableRedis()
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


# --------------------------------------------------------------------------- databases

_created_dbs = set()


@pytest.fixture
def fresh_db(pg):
    """Factory: fresh_db(name) creates (once) database `name` with public.users seeded."""
    def make(name):
        if name not in _created_dbs:
            pg.create_db(name)
            seed_users(pg, name)
            _created_dbs.add(name)
        return name
    return make


# --------------------------------------------------------------------------- the service

class FaultService(bb.Service):
    """bb.Service, plus an optional RLIMIT_NOFILE for the child (set before exec)."""

    nofile = None

    def start(self, timeout=15.0, wait_ready=True):
        if self.nofile is None:
            return super().start(timeout=timeout, wait_ready=wait_ready)
        limit = self.nofile

        class _Shim:  # bb's `subprocess`, with a Popen that sets the limit in the child
            def __getattr__(self, name):
                return getattr(subprocess, name)

            @staticmethod
            def Popen(*a, **kw):
                kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
                return subprocess.Popen(*a, **kw)

        # bb.Service.start starts the binary with subprocess.Popen: swap bb's module-level
        # name for the duration of that call only (nothing else in bb runs meanwhile).
        bb.subprocess = _Shim()
        try:
            return super().start(timeout=timeout, wait_ready=wait_ready)
        finally:
            bb.subprocess = subprocess

    @property
    def pid(self):
        return self.proc.pid


class FaultServiceFactory(bb.ServiceFactory):
    def __call__(self, db=bb.DEFAULT_DB, start=True, wait_ready=True, nofile=None, **env_overrides):
        env = bb.apply_overrides(bb.base_env(self.pg, self.redis.url, db=db), env_overrides)
        name = "%s-%d" % (self.label, len(self.services) + 1)
        svc = FaultService(env, self.logdir, name)
        svc.nofile = nofile
        self.services.append(svc)
        if start:
            svc.start(wait_ready=wait_ready)
        return svc


@pytest.fixture
def service(pg, redis_server, logdir, request):
    """Factory: service(db=..., nofile=None, wait_ready=True, **env_overrides) -> a started
    FaultService. Each is stopped with SIGTERM at teardown and must exit 0 with a
    sanitizer-clean log (bb.ServiceFactory.close)."""
    f = FaultServiceFactory(pg, redis_server, logdir, request.node.name.replace("/", "_")[:60])
    yield f
    f.close()


def assert_sanitizer_clean(svc):
    text = svc.log_text()
    for m in SANITIZER_MARKERS:
        assert m not in text, "sanitizer report in the log of %s:\n%s" % (svc.name, svc.describe())


def assert_alive(svc, when=""):
    assert svc.alive(), "integrationsd died %s (exit %s)\n%s" % (when, svc.proc.poll(), svc.describe())


def log_events(svc, msg_substr):
    """JSON log lines whose msg contains msg_substr."""
    out = []
    for ln in svc.log_lines():
        try:
            o = json.loads(ln)
        except ValueError:
            continue
        if msg_substr in str(o.get("msg", "")):
            out.append(o)
    return out
