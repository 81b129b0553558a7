# integrationsd_test: the helpers and fixtures the black-box, fault and package suites share
# (as pgbouncer's test/utils.py): a private PostgreSQL 15 cluster, a private redis-server, a
# factory that runs the real binary against them (clean SIGTERM exit and a sanitizer-clean log
# are asserted at teardown), JWT minting, HTTP clients (http.client and a raw socket) and a
# psycopg2 helper for the service's database. Each suite's pytest.ini puts tests/lib and tests/
# (for tests/fakes) on sys.path; its conftest.py imports the fixtures it uses from here.
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2
import psycopg2.extras
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
INTEGRATIONSD_BIN = os.environ.get("INTEGRATIONSD_BIN") or os.path.join(TOP_SRCDIR, "src", "integrationsd")
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

# Secrets of the test environment (never expected in any log line or response).
JWT_SECRET = "itest-jwt-secret-" + "7c1f0e9a4b3d2c18e6f5a4b3c2d1e0f9" + "-utf8-\u00e9"
ENCRYPTION_KEY = "itest-encryption-key-0123456789a"  # exactly 32 characters: no padding, no cut
ENCRYPTION_PASSWORD = "itest-encryption-password-5b2e"
FRONTEND_URL = "http://app.example.test"
assert len(ENCRYPTION_KEY) == 32

DEFAULT_DB = "itest"
# OUTBOUND_DENY_CIDRS of the tests: the default without loopback.
TEST_DENY_CIDRS = "169.254.0.0/16,fe80::/10,100.100.100.200/32,fd00:ec2::254/128"
NOUSERS_DB = "itest_nousers"

# public.users rows: (id, organization_id, role_id); roles 1 Admin, 2 Reviewer, 3 Editor, 4 Auditor.
USERS = [
    (1, 1, 1),  # org 1 Admin
    (2, 1, 3),  # org 1 Editor
    (3, 2, 1),  # org 2 Admin
    (4, 1, 2),  # org 1 Reviewer
    (5, 10, 1),  # org 10 Admin: a tenant no other test writes to
    (6, 1, 4),  # org 1 Auditor
]

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# Every token and plaintext key handed to a service, so log hygiene can be checked.
SEEN_TOKENS = []
SEEN_KEYS = []

_CLEANUPS = []


def _atexit_cleanup():
    for fn in reversed(_CLEANUPS):
        try:
            fn()
        except Exception:
            pass


atexit.register(_atexit_cleanup)


def pytest_configure(config):
    # Turn SIGTERM (e.g. a make check timeout) into a normal interpreter exit so that the
    # atexit hooks stop PostgreSQL, Redis and any service still running.
    def _term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    try:
        signal.signal(signal.SIGTERM, _term)
    except ValueError:
        pass


# --------------------------------------------------------------------------- utilities

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tenant_hash(org_id):
    b64 = base64.b64encode(hashlib.sha256(str(org_id).encode()).digest()).decode()
    return re.sub(r"[^A-Za-z0-9]", "", b64)[:10]


assert tenant_hash(1) == "a4ayc80OGd"
assert tenant_hash(2) == "1HNeOiZeFu"
assert tenant_hash(10) == "SkTcFTZCBK"


def now_ms():
    return int(time.time() * 1000)


def new_key(prefix="sk-test-"):
    """A unique plaintext API key, remembered for the log hygiene checks."""
    k = prefix + secrets.token_hex(12)
    SEEN_KEYS.append(k)
    return k


def remember_key(k):
    SEEN_KEYS.append(k)
    return k


def mask(k):
    return "****..." + k[-4:]


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint_jwt(payload, secret=None, alg="HS256", header=None, raw_payload=None):
    """Build a JWT. alg HS256/HS384/HS512 sign with that hash; "none" leaves the signature
    empty; any other alg name is signed with HS256. `header` replaces the whole header,
    `raw_payload` (bytes) replaces the encoded payload."""
    if secret is None:
        secret = JWT_SECRET
    if header is None:
        header = {"alg": alg, "typ": "JWT"}
    h = _b64url(json.dumps(header, separators=(",", ":")).encode())
    if raw_payload is None:
        raw_payload = json.dumps(payload, separators=(",", ":")).encode()
    p = _b64url(raw_payload)
    signing_input = (h + "." + p).encode()
    key = secret.encode() if isinstance(secret, str) else secret
    if alg == "none":
        sig = ""
    else:
        digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg, hashlib.sha256)
        sig = _b64url(hmac.new(key, signing_input, digest).digest())
    tok = h + "." + p + "." + sig
    SEEN_TOKENS.append(tok)
    return tok


OMIT = object()  # token_for(..., field=OMIT) drops that claim


def token_payload(user_id, org_id, role="Admin", expire_ms=None, **extra):
    iat = int(time.time())
    payload = {
        "id": user_id,
        "email": "user%s@example.test" % (user_id,),
        "roleName": role,
        "tenantId": tenant_hash(org_id) if org_id is not None and org_id is not OMIT else None,
        "organizationId": org_id,
        "expire": now_ms() + 3600 * 1000 if expire_ms is None else expire_ms,
        "iat": iat,
    }
    for k, v in extra.items():
        payload[k] = v
    return {k: v for k, v in payload.items() if v is not OMIT}


def token_for(user_id, org_id, role="Admin", expire_ms=None, secret=None, alg="HS256", **extra):
    """A VerifyWise access token {id,email,roleName,tenantId,organizationId,expire,iat}."""
    return mint_jwt(token_payload(user_id, org_id, role, expire_ms, **extra), secret=secret, alg=alg)


# --------------------------------------------------------------------------- OpenAPI

# Every answer of an integrationsd started by these fixtures (http_request below) is checked
# against doc/openapi.yaml: described route and status, JSON body valid for its schema
# (tests/lib/openapi_check.py).
import openapi_check  # noqa: E402
SERVICE_PORTS = set()  # ports of the services started here: only their answers are checked


def openapi_observe(port, method, path, status, data):
    if port not in SERVICE_PORTS:
        return
    is_json = not isinstance(data, (bytes, bytearray))
    openapi_check.checker(TOP_SRCDIR).check(method, path, status, data, is_json)


# --------------------------------------------------------------------------- HTTP clients

def wait_until(pred, timeout=10.0, step=0.05):
    """Poll pred() every `step` s until it is truthy or `timeout` s pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def http_request(port, method, path, body=None, token=None, headers=None, raw_body=None, timeout=10):
    """One request on a fresh connection. Returns (status, headers, data): headers is an
    http.client.HTTPMessage (case-insensitive .get / .get_all), data the parsed JSON or the
    raw bytes when the body is empty or not JSON."""
    hdrs = {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if raw_body is not None:
        payload = raw_body if isinstance(raw_body, bytes) else raw_body.encode()
        hdrs["Content-Type"] = "application/json"
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = decode_body(resp.read())
        openapi_observe(port, method, path, resp.status, data)
        return resp.status, resp.msg, data
    finally:
        conn.close()


def decode_body(data):
    if not data:
        return data
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return data


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<RawResponse %s %r %r>" % (self.status, self.headers, self.body[:200])


def parse_responses(data):
    """Parse as many complete HTTP/1.1 responses as `data` holds (Content-Length or
    chunked framing). Returns (responses, complete_flag_for_last_partial)."""
    out = []
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return out
        head = data[pos:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in head[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers.append((k.strip(), v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        bstart = end + 4
        if status == 100:
            out.append(RawResponse(status, reason, headers, b""))
            pos = bstart
            continue
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            body = b""
            p = bstart
            while True:
                le = data.find(b"\r\n", p)
                if le < 0:
                    return out
                size = int(data[p:le].split(b";")[0], 16)
                if len(data) < le + 2 + size + 2:
                    return out
                body += data[le + 2:le + 2 + size]
                p = le + 2 + size + 2
                if size == 0:
                    break
            out.append(RawResponse(status, reason, headers, body))
            pos = p
            continue
        length = int(hmap.get("content-length", "0"))
        if len(data) < bstart + length:
            return out
        out.append(RawResponse(status, reason, headers, data[bstart:bstart + length]))
        pos = bstart + length


def raw_exchange(port, payload, count=1, timeout=5.0, chunks=None):
    """Send raw bytes (or a list of byte chunks) on one socket and read until `count`
    final (non-100) responses have arrived, the peer closes, or `timeout` passes.
    Returns (responses, raw_bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    closed = False
    deadline = time.monotonic() + timeout
    try:
        try:
            for c in (chunks if chunks is not None else [payload]):
                s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            final = [r for r in parse_responses(data) if r.status != 100]
            if len(final) >= count:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        s.close()
    return [r for r in parse_responses(data) if r.status != 100], data, closed


# --------------------------------------------------------------------------- PostgreSQL

def _scratch_dir():
    """Where servers keep their data: TMPDIR when it is under /var/tmp (contrib/dev/test
    sets one the postgres user can reach), else /var/tmp."""
    t = os.environ.get("TMPDIR", "")
    return t if t.startswith("/var/tmp/") and os.path.isdir(t) else "/var/tmp"


def _clean_env():
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
    # contrib/dev/test marks what it starts, so its safety net can find leftovers.
    if os.environ.get("INTEGRATIONSD_TEST_RUN"):
        env["INTEGRATIONSD_TEST_RUN"] = os.environ["INTEGRATIONSD_TEST_RUN"]
    return env


class PgCluster:
    """A private PostgreSQL 15 cluster on 127.0.0.1:<port>, trust auth, fsync off."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="integrationsd-pg-", dir=_scratch_dir())
        self.datadir = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "postgres.log")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base, 0o700)
        self.port = None
        self.running = False
        self._removed = False
        _CLEANUPS.append(self.destroy)

    def _cmd(self, args, timeout=120, check=True):
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + args
        p = subprocess.run(cmd, cwd=self.base, env=_clean_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("command failed (%d): %s\n%s\n--- postgres log ---\n%s" % (
                p.returncode, " ".join(cmd), p.stdout.decode(errors="replace"), self.log_tail()))
        return p

    def log_tail(self, n=60):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no postgres log)"

    def init(self):
        args = [os.path.join(PG_BINDIR, "initdb"), "-D", self.datadir, "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        for attempt in range(3):  # initdb has been seen to fail transiently on a busy machine
            p = self._cmd(args, check=attempt == 2)
            if p.returncode == 0:
                break
            shutil.rmtree(self.datadir, ignore_errors=True)
            time.sleep(0.5)
        self._append_conf([
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = '%s'" % self.base,
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 100",
            "log_min_messages = warning",
        ])

    def _append_conf(self, lines):
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# integrationsd black-box tests\n" + "\n".join(lines) + "\n")

    def start(self):
        """Start (or restart after stop()) on the same port with the same data."""
        if self.running:
            return
        attempts = 1 if self.port is not None else 3
        last = None
        for _ in range(attempts):
            if self.port is None:
                self.port = free_port()
                self._append_conf(["port = %d" % self.port])
                fresh_port = True
            else:
                fresh_port = False
            p = self._cmd([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                           "-w", "-t", "60", "start"], check=False)
            if p.returncode == 0:
                self.running = True
                return
            last = p.stdout.decode(errors="replace")
            if fresh_port:
                self.port = None  # maybe the port was taken meanwhile: try another
        raise RuntimeError("PostgreSQL did not start:\n%s\n--- postgres log ---\n%s" % (last, self.log_tail()))

    def stop(self, mode="fast"):
        if not self.running:
            return
        self._cmd([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w", "-t", "60", "stop"])
        self.running = False

    def destroy(self):
        if self._removed:
            return
        if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            try:
                self._cmd([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-m", "immediate",
                           "-w", "-t", "30", "stop"], check=False)
            except Exception:
                pass
        self.running = False
        shutil.rmtree(self.base, ignore_errors=True)
        self._removed = True

    def dsn(self, dbname="postgres"):
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, dbname)

    def connect(self, dbname="postgres"):
        conn = psycopg2.connect(self.dsn(dbname), connect_timeout=10)
        conn.autocommit = True
        return conn

    def create_db(self, name):
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute('CREATE DATABASE "%s"' % name.replace('"', '""'))
        finally:
            conn.close()
        return name


class Db:
    """psycopg2 (autocommit) access to one database; reconnects after an outage."""

    def __init__(self, pg, dbname):
        self.pg = pg
        self.dbname = dbname
        self._conn = None

    def _c(self):
        if self._conn is None or self._conn.closed:
            self._conn = self.pg.connect(self.dbname)
        return self._conn

    def rows(self, sql, params=None):
        for attempt in range(2):
            try:
                with self._c().cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, params)
                    return [dict(r) for r in cur.fetchall()] if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if attempt:
                    raise
        return []

    def one(self, sql, params=None):
        r = self.rows(sql, params)
        return r[0] if r else None

    def scalar(self, sql, params=None):
        r = self.rows(sql, params)
        return list(r[0].values())[0] if r else None

    def execute(self, sql, params=None):
        self.rows(sql, params)

    def table_exists(self, qualified):
        return self.scalar("SELECT to_regclass(%s) IS NOT NULL", (qualified,))

    # llm_keys helpers --------------------------------------------------------
    def llm_table(self, org_id):
        return '"%s".llm_keys' % tenant_hash(org_id)

    def llm_fp_table(self, org_id):
        return '"%s".integrationsd_llm_key_fingerprints' % tenant_hash(org_id)

    # A row of VerifyWise's llm_keys with integrationsd's fingerprint (own table) as
    # "key_fingerprint" (None when the row has none).
    def _llm_select(self, org_id):
        return ("SELECT k.*, f.fingerprint AS key_fingerprint FROM %s k LEFT JOIN %s f ON f.key_id = k.id"
                % (self.llm_table(org_id), self.llm_fp_table(org_id)))

    def llm_rows(self, org_id):
        if not self.table_exists(self.llm_table(org_id)):
            return []
        return self.rows(self._llm_select(org_id) + " ORDER BY k.id")

    def llm_row(self, org_id, key_id):
        if not self.table_exists(self.llm_table(org_id)):
            return None
        return self.one(self._llm_select(org_id) + " WHERE k.id = %s", (key_id,))

    def llm_count(self, org_id):
        if not self.table_exists(self.llm_table(org_id)):
            return 0
        return self.scalar("SELECT count(*) FROM %s" % self.llm_table(org_id))

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None


def seed_users(pg, dbname):
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS public.users (id integer PRIMARY KEY, "
                        "organization_id integer, role_id integer)")
            for uid, org, role in USERS:
                cur.execute("INSERT INTO public.users (id, organization_id, role_id) VALUES (%s, %s, %s) "
                            "ON CONFLICT (id) DO NOTHING", (uid, org, role))
    finally:
        conn.close()


# --------------------------------------------------------------------------- Redis

class RedisServer:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="integrationsd-redis-", dir=_scratch_dir())
        self.logfile = os.path.join(self.base, "redis.log")
        self.port = None
        self.proc = None
        _CLEANUPS.append(self.stop)

    def start(self):
        import redis
        last = ""
        for _ in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", self.base,
                 "--logfile", self.logfile, "--protected-mode", "no"],
                cwd=self.base, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping():
                        return
                except Exception:
                    time.sleep(0.05)
            try:
                with open(self.logfile, errors="replace") as f:
                    last = f.read()[-3000:]
            except OSError:
                pass
            self.stop()
        raise RuntimeError("redis-server did not start:\n" + last)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# --------------------------------------------------------------------------- the service

_PASSTHRU = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_LIBRARY_PATH", "TMPDIR")


def binary_path():
    return INTEGRATIONSD_BIN


def require_binary():
    if not (os.path.isfile(INTEGRATIONSD_BIN) and os.access(INTEGRATIONSD_BIN, os.X_OK)):
        pytest.fail("integrationsd binary not found or not executable: %s (set INTEGRATIONSD_BIN)"
                    % INTEGRATIONSD_BIN, pytrace=False)


def unit_environment():
    """The Environment= lines of the systemd unit (GNUTLS_NO_IMPLICIT_INIT): every suite runs
    the service with them, as installed."""
    env = {}
    with open(os.path.join(TOP_SRCDIR, "systemd", "integrationsd.service.in")) as f:
        for line in f:
            if line.startswith("Environment="):
                k, _, v = line[len("Environment="):].strip().partition("=")
                env[k] = v
    return env


def base_env(pg, redis_url, db=DEFAULT_DB, port=None):
    env = _clean_env()
    for k in _PASSTHRU:
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(unit_environment())
    env.update({
        "PORT": str(port if port is not None else free_port()),
        "BIND_ADDRESS": "127.0.0.1",
        "DATABASE_URL": pg.dsn(db),
        "REDIS_URL": redis_url,
        "JWT_SECRET": JWT_SECRET,
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "ENCRYPTION_PASSWORD": ENCRYPTION_PASSWORD,
        "ENCRYPTION_ALGORITHM": "aes-256-cbc",
        "FRONTEND_URL": FRONTEND_URL,
        "LOG_LEVEL": "debug",
        # The default deny list includes loopback, where every fake runs: tests allow it
        # explicitly (and keep the rest of the default).
        "OUTBOUND_DENY_CIDRS": TEST_DENY_CIDRS,
    })
    return env


def apply_overrides(env, overrides):
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class Service:
    """One running integrationsd process."""

    def __init__(self, env, logdir, name):
        self.env = env
        self.port = int(env["PORT"])
        SERVICE_PORTS.add(self.port)
        self.name = name
        self.log_path = os.path.join(logdir, name + ".stderr.log")
        self.out_path = os.path.join(logdir, name + ".stdout.log")
        self.proc = None
        self.exit_code = None
        self.stopped = False
        self.start_failed = False  # already reported by start(); not reported again at teardown

    # lifecycle -------------------------------------------------------------
    def start(self, timeout=15.0, wait_ready=True):
        """Start and wait (up to `timeout` s) for GET /healthz 200 and then, unless
        wait_ready is false, for GET /readyz 200."""
        require_binary()
        healthy = False
        self._err = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen([INTEGRATIONSD_BIN], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, cwd=os.path.dirname(self.log_path))
        _CLEANUPS.append(self._kill)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                self.stopped = True
                self.start_failed = True
                self._close_files()
                pytest.fail("integrationsd exited with code %s during start-up\n%s"
                            % (self.proc.returncode, self.describe()), pytrace=False)
            try:
                if not healthy:
                    st, _, _ = http_request(self.port, "GET", "/healthz", timeout=2)
                    healthy = st == 200
                    last = "/healthz status %s" % st
                if healthy:
                    if not wait_ready:
                        return self
                    # ready = database pool live and start-up schema in place; and wait
                    # for the start-up key derivation (a thread with 16 MiB of scratch)
                    # to end, so no test measures the process while it runs
                    st, _, body = http_request(self.port, "GET", "/readyz", timeout=2)
                    if st == 200 and isinstance(body, dict) and body.get("keys") not in ("deriving", "pending"):
                        return self
                    last = "/readyz status %s %r" % (st, body)
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        self._kill()
        self.stopped = True
        self.start_failed = True
        pytest.fail("integrationsd did not become healthy/ready within %.0f s (last: %s)\n%s"
                    % (timeout, last, self.describe()), pytrace=False)

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the process and wait; returns a list of problems (empty when clean)."""
        if self.stopped:
            return self.problems()
        self.stopped = True
        if self.proc is None:
            return ["service was never started"]
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("did not exit within %.0f s of signal %d (killed)" % (timeout, sig))
        else:
            problems.append("process had already exited before the signal")
        self.exit_code = self.proc.returncode
        self._close_files()
        self._timeout_problem = problems
        return self.problems()

    def problems(self):
        problems = list(getattr(self, "_timeout_problem", []))
        if self.exit_code != 0:
            problems.append("exit code %s (expected 0)" % self.exit_code)
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                problems.append("log contains %r" % m)
        return problems

    def stop_and_check(self):
        problems = self.stop()
        if problems:
            pytest.fail("integrationsd %s did not shut down cleanly: %s\n%s"
                        % (self.name, "; ".join(problems), self.describe()), pytrace=False)

    # observation -----------------------------------------------------------
    def wait_pool_full(self, timeout=10.0):
        """Wait until every database connection of the pool is live (start-up opens one, the
        others a tick later or on demand): a baseline of descriptors taken before counts
        fewer connections than the service holds in its steady state."""
        deadline, body = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            st, _, body = http_request(self.port, "GET", "/readyz", timeout=2)
            if st == 200 and body["pool"]["live"] == body["pool"]["size"]:
                return body
            time.sleep(0.05)
        raise AssertionError("the database pool did not fill within %.0f s: %r" % (timeout, body))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        return [ln for ln in self.log_text().splitlines() if ln.strip()]

    def describe(self, n=150):
        lines = self.log_text().splitlines()
        tail = "\n".join(lines[-n:])
        try:
            with open(self.out_path, "rb") as f:
                out = f.read().decode("utf-8", errors="replace")[-2000:]
        except OSError:
            out = ""
        return ("--- integrationsd %s (port %d) stderr, last %d lines ---\n%s\n--- stdout ---\n%s"
                % (self.name, self.port, n, tail, out))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # clients ---------------------------------------------------------------
    def req(self, method, path, body=None, token=None, headers=None, raw_body=None, timeout=10):
        return http_request(self.port, method, path, body=body, token=token, headers=headers,
                            raw_body=raw_body, timeout=timeout)

    def raw(self, payload, count=1, timeout=5.0, chunks=None):
        return raw_exchange(self.port, payload, count=count, timeout=timeout, chunks=chunks)


class ServiceFactory:
    def __init__(self, pg, redis_server, logdir, label):
        self.pg = pg
        self.redis = redis_server
        self.logdir = logdir
        self.label = label
        self.services = []

    def __call__(self, db=DEFAULT_DB, start=True, wait_ready=True, **env_overrides):
        env = apply_overrides(base_env(self.pg, self.redis.url, db=db), env_overrides)
        name = "%s-%d" % (self.label, len(self.services) + 1)
        svc = Service(env, self.logdir, name)
        self.services.append(svc)
        if start:
            svc.start(wait_ready=wait_ready)
        return svc

    def close(self):
        failures = []
        for svc in self.services:
            if svc.proc is None or svc.start_failed:
                continue
            problems = svc.stop()
            if problems:
                failures.append("integrationsd %s: %s\n%s" % (svc.name, "; ".join(problems), svc.describe()))
        if failures:
            pytest.fail("service did not shut down cleanly:\n" + "\n".join(failures), pytrace=False)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def redis_server():
    srv = RedisServer()
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


@pytest.fixture(scope="session")
def itest_db(pg):
    """The default database, with VerifyWise's public.users created before any service."""
    pg.create_db(DEFAULT_DB)
    seed_users(pg, DEFAULT_DB)
    return DEFAULT_DB


@pytest.fixture(scope="session")
def nousers_db(pg):
    """A database without public.users: the membership/role check must be skipped."""
    pg.create_db(NOUSERS_DB)
    return NOUSERS_DB


@pytest.fixture(scope="session")
def logdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("integrationsd-logs"))


@pytest.fixture
def service(pg, redis_server, itest_db, logdir, request):
    """Factory: service(db="itest", **env_overrides) -> a started Service (None removes a
    variable). Every service is stopped with SIGTERM at teardown and must exit 0 with a
    sanitizer-clean log."""
    f = ServiceFactory(pg, redis_server, logdir, request.node.name.replace("/", "_")[:60])
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_service(pg, redis_server, itest_db, logdir, request):
    """Like `service`, but the services live for the whole module."""
    f = ServiceFactory(pg, redis_server, logdir, "mod-" + request.module.__name__)
    yield f
    f.close()


@pytest.fixture(scope="module")
def svc(module_service):
    """The module's default service on database `itest`."""
    return module_service()


@pytest.fixture(scope="module")
def req(svc):
    return svc.req


@pytest.fixture(scope="module")
def db(pg, itest_db):
    d = Db(pg, DEFAULT_DB)
    yield d
    d.close()


@pytest.fixture(scope="session")
def tokens():
    """Ready-made valid tokens for the seeded users."""
    class T:
        admin1 = token_for(1, 1, "Admin")
        editor1 = token_for(2, 1, "Editor")
        reviewer1 = token_for(4, 1, "Reviewer")
        auditor1 = token_for(6, 1, "Auditor")
        admin2 = token_for(3, 2, "Admin")
        admin10 = token_for(5, 10, "Admin")
    return T


# =====================================================================================
# Fake upstreams: GitHub and LLM providers (added for test_github.py and
# test_llm_verify.py; nothing above depends on this section). The fakes live in
# tests/fakes/ (stdlib only); behaviour is chosen by the credential's marker suffix, see
# tests/fakes/__init__.py.
#
#   fake_github          session FakeGitHub on 127.0.0.1 (.url, .requests, .requests_with(t))
#   fake_llm             session FakeLLM: .anthropic/.openai/.openrouter, .env() -> the three
#                        *_API_URL variables, .by_name(provider)
#   extra_fakes          function-scoped factory: extra_fakes(FakeGitHub, host="127.0.0.2")
#                        starts another fake (closed at teardown)
#   new_gh_token(marker="VALID", prefix="ghp_", length=None)  a GitHub-shaped token,
#                        remembered in SEEN_GITHUB_TOKENS for the response/log checks
#   new_llm_key(provider, marker="VALID")  a provider-shaped key, remembered in SEEN_KEYS
#   scheme_b_decrypt(stored) / scheme_b_encrypt(plain)  "ivhex:cipherhex" with openssl enc
#                        (the test's own implementation; skips the test without openssl)
# =====================================================================================
from fakes.github import FakeGitHub, gh_token, legacy_token  # noqa: E402
from fakes.llm import FakeLLM, llm_key  # noqa: E402

SEEN_GITHUB_TOKENS = []


def new_gh_token(marker="VALID", prefix="ghp_", length=None):
    t = gh_token(marker, prefix, length)
    SEEN_GITHUB_TOKENS.append(t)
    return t


def remember_gh_token(t):
    SEEN_GITHUB_TOKENS.append(t)
    return t


def new_llm_key(provider, marker="VALID"):
    return remember_key(llm_key(provider, marker))


def _scheme_b_key_hex():
    return (ENCRYPTION_KEY + "0" * 32)[:32].encode("utf-8").hex()


def _openssl():
    path = shutil.which("openssl")
    if not path:
        pytest.skip("openssl is not installed: cannot check the scheme B ciphertext independently")
    return path


def scheme_b_decrypt(stored):
    """Plaintext (str) of a scheme B value `ivhex:cipherhex` (AES-256-CBC, PKCS#7,
    key = ENCRYPTION_KEY '0'-padded to 32 bytes), decrypted by `openssl enc`."""
    iv, ct = stored.split(":")
    p = subprocess.run([_openssl(), "enc", "-d", "-aes-256-cbc", "-K", _scheme_b_key_hex(), "-iv", iv,
                        "-nosalt"], input=bytes.fromhex(ct), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert p.returncode == 0, "openssl could not decrypt %r: %s" % (stored[:40], p.stderr.decode(errors="replace"))
    return p.stdout.decode("utf-8")


def scheme_b_encrypt(plain, iv_hex=None):
    """`ivhex:cipherhex` of `plain`, as the Node backend would write it."""
    iv_hex = iv_hex or secrets.token_hex(16)
    p = subprocess.run([_openssl(), "enc", "-e", "-aes-256-cbc", "-K", _scheme_b_key_hex(), "-iv", iv_hex,
                        "-nosalt"], input=plain.encode("utf-8"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return iv_hex + ":" + p.stdout.hex()


@pytest.fixture(scope="session")
def fake_github():
    srv = FakeGitHub().start()
    _CLEANUPS.append(srv.close)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def fake_llm():
    f = FakeLLM().start()
    _CLEANUPS.append(f.close)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def extra_fakes():
    """Factory: extra_fakes(FakeGitHub | FakeLLM, host="127.0.0.2", **kw) -> a started fake."""
    started = []

    def make(cls, host="127.0.0.1", **kw):
        f = cls(host=host, **kw).start()
        started.append(f)
        _CLEANUPS.append(f.close)
        return f

    yield make
    for f in started:
        f.close()


# =====================================================================================
# MLflow (added for test_mlflow*.py; nothing above depends on this section).
#
#   mlflow_fakes         function-scoped factory: mlflow_fakes(**dataset_and_knobs) -> a started
#                        FakeMLflow on 127.0.0.1 (tests/fakes/mlflow.py), closed at teardown
#   scheme_a_key_hex()   scrypt(ENCRYPTION_PASSWORD, "default-salt", N=16384, r=8, p=1, 32), hex
#   scheme_a_decrypt(value_hex, iv_hex)  plaintext of a scheme A column pair, by `openssl enc`
#   fresh_db(pg, name)   a new database with public.users seeded (for tests that need every
#                        tenant of a database to themselves, e.g. the scheduler)
# =====================================================================================
from fakes.mlflow import FakeMLflow  # noqa: E402


@pytest.fixture
def mlflow_fakes():
    started = []

    def make(**kw):
        knobs = {k: kw.pop(k) for k in list(kw) if k in ("auth", "page_delay", "failing_experiments",
                                                         "garbage", "resets", "status_for", "forbidden_users")}
        f = FakeMLflow(**kw)
        for k, v in knobs.items():
            setattr(f, k, v)
        f.start()
        started.append(f)
        _CLEANUPS.append(f.close)
        return f

    yield make
    for f in started:
        f.close()


def scheme_a_key_hex():
    return hashlib.scrypt(ENCRYPTION_PASSWORD.encode(), salt=b"default-salt", n=16384, r=8, p=1,
                          maxmem=64 * 1024 * 1024, dklen=32).hex()


def scheme_a_decrypt(value_hex, iv_hex):
    p = subprocess.run([_openssl(), "enc", "-d", "-aes-256-cbc", "-K", scheme_a_key_hex(), "-iv", iv_hex,
                        "-nosalt"], input=bytes.fromhex(value_hex), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    assert p.returncode == 0, "openssl could not decrypt: %s" % p.stderr.decode(errors="replace")
    return p.stdout.decode("utf-8")


def fresh_db(pg, name):
    pg.create_db(name)
    seed_users(pg, name)
    return name


# =====================================================================================
# Slack and Redis events (added for test_slack*.py; nothing above depends on this
# section). The fake lives in tests/fakes/slack.py (stdlib only).
#
#   fake_slack           session FakeSlack (.install(), .install_error(), .set_mode(), ...)
#   slack_env(fake)      the SLACK_* variables pointing a service at the fake
#   SLACK_CLIENT_SECRET  the client secret (never expected in a log line or response)
#   slack_scheme_a_plain(value_hex, iv_hex)  plaintext of a scheme A pair, by openssl enc
#   redis_restart(redis_server)  kill -9 the test Redis and start it again on the same port
#   EventSubscriber(redis_server, prefix)  PSUBSCRIBE <prefix>* in a thread;
#                        .events (decoded msgpack dicts with "channel"), .wait_for(pred)
#   publish_notify(redis_server, payload, prefix)  PUBLISH <prefix>notify (dict -> msgpack,
#                        bytes as they are)
# =====================================================================================
from fakes.slack import FakeSlack  # noqa: E402

SLACK_CLIENT_ID = "1234567890.0987654321"
SLACK_CLIENT_SECRET = "itest-slack-client-secret-" + "4f1e2d3c"
EVENT_PREFIX = "verifywise:integrations:"


def slack_env(fake):
    return {"SLACK_API_URL": fake.url + "/api/oauth.v2.access", "SLACK_API_BASE": fake.url + "/api",
            "SLACK_CLIENT_ID": SLACK_CLIENT_ID, "SLACK_CLIENT_SECRET": SLACK_CLIENT_SECRET}


def _slack_key_hex():
    return hashlib.scrypt(ENCRYPTION_PASSWORD.encode(), salt=b"default-salt", n=16384, r=8, p=1,
                          dklen=32, maxmem=64 * 1024 * 1024).hex()


def slack_scheme_a_plain(value_hex, iv_hex):
    p = subprocess.run([_openssl(), "enc", "-d", "-aes-256-cbc", "-K", _slack_key_hex(), "-iv", iv_hex,
                        "-nosalt"], input=bytes.fromhex(value_hex), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode("utf-8")


@pytest.fixture(scope="session")
def fake_slack():
    srv = FakeSlack().start()
    _CLEANUPS.append(srv.close)
    try:
        yield srv
    finally:
        srv.close()


class EventSubscriber:
    """PSUBSCRIBE <prefix>* on a thread; keeps every decoded message (and raw failures)."""

    def __init__(self, redis_server, prefix=EVENT_PREFIX):
        import threading
        self.redis = redis_server
        self.prefix = prefix
        self.events = []
        self.undecodable = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "subscriber did not start"

    def _run(self):
        import msgpack
        while not self._stop.is_set():
            try:
                ps = self.redis.client().pubsub()
                ps.psubscribe(self.prefix + "*")
                self._ready.set()
                while not self._stop.is_set():
                    m = ps.get_message(timeout=0.2)
                    if not m or m.get("type") != "pmessage":
                        continue
                    ch = m["channel"].decode() if isinstance(m["channel"], bytes) else m["channel"]
                    if ch == self.prefix + "notify":
                        continue
                    try:
                        ev = msgpack.unpackb(m["data"], raw=False)
                        ev["channel"] = ch
                        self.events.append(ev)
                    except Exception as e:  # recorded, asserted on by tests
                        self.undecodable.append((ch, repr(e)))
                ps.close()
            except Exception:
                self._ready.set()
                time.sleep(0.2)

    def of_type(self, t):
        return [e for e in list(self.events) if e.get("type") == t]

    def wait_for(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [e for e in list(self.events) if pred(e)]
            if got:
                return got
            time.sleep(0.05)
        return []

    def close(self):
        self._stop.set()
        self._thread.join(5)


def publish_notify(redis_server, payload, prefix=EVENT_PREFIX):
    import msgpack
    data = payload if isinstance(payload, bytes) else msgpack.packb(payload, use_bin_type=True)
    return redis_server.client().publish(prefix + "notify", data)


def redis_kill(redis_server):
    """SIGKILL the test Redis (its port stays reserved for redis_start_again)."""
    if redis_server.proc is not None and redis_server.proc.poll() is None:
        redis_server.proc.kill()
        redis_server.proc.wait()


def redis_start_again(redis_server):
    """Start the test Redis again on the port it had."""
    import redis
    redis_server.proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(redis_server.port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--dir", redis_server.base,
         "--logfile", redis_server.logfile, "--protected-mode", "no"],
        cwd=redis_server.base, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=1).ping():
                return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start again")
