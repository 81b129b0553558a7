# Configuration and process behaviour: refusing to start (non-zero exit, variable named) when
# a required secret is missing or ENCRYPTION_ALGORITHM is not aes-256-cbc, --check-config,
# --version, clean exit 0 on SIGTERM and SIGINT, and structured logs: every stderr line is a
# JSON object, request lines carry method/path/status/duration/request id, and no header
# value or secret is ever logged.
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import (ENCRYPTION_KEY, ENCRYPTION_PASSWORD, JWT_SECRET, INTEGRATIONSD_BIN, _clean_env,
                      apply_overrides, base_env, free_port, new_gh_token, require_binary, token_for)

REQUIRED = ["JWT_SECRET", "ENCRYPTION_KEY", "ENCRYPTION_PASSWORD", "ENCRYPTION_ALGORITHM"]


def run_binary(env, args=(), timeout=5.0):
    """Run integrationsd to completion; fail if it is still running after `timeout` s."""
    require_binary()
    p = subprocess.Popen([INTEGRATIONSD_BIN] + list(args), env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail("integrationsd %s still running after %.0f s\nstdout: %s\nstderr: %s"
                    % (" ".join(args), timeout, out.decode(errors="replace")[-2000:],
                       err.decode(errors="replace")[-2000:]), pytrace=False)
    return p.returncode, out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")


@pytest.fixture
def full_env(pg, redis_server, itest_db):
    return base_env(pg, redis_server.url)


# ---------------------------------------------------------------- refusing to start

@pytest.mark.parametrize("var", REQUIRED)
def test_refuses_to_start_without_required_variable(full_env, var):
    env = apply_overrides(dict(full_env), {var: None})
    rc, out, err = run_binary(env)
    assert rc != 0, "started without %s" % var
    assert var in err, "stderr does not name %s:\n%s" % (var, err)


@pytest.mark.parametrize("algo", ["aes-128-cbc", "aes-256-gcm", "YOUR_ENCRYPTION_ALGORITHM"])
def test_refuses_to_start_with_other_algorithm(full_env, algo):
    env = apply_overrides(dict(full_env), {"ENCRYPTION_ALGORITHM": algo})
    rc, out, err = run_binary(env)
    assert rc != 0, "started with ENCRYPTION_ALGORITHM=%s" % algo
    assert "ENCRYPTION_ALGORITHM" in err, err


def test_refusal_does_not_leak_secrets(full_env):
    env = apply_overrides(dict(full_env), {"ENCRYPTION_ALGORITHM": "aes-128-cbc"})
    rc, out, err = run_binary(env)
    assert rc != 0
    for secret in (JWT_SECRET, ENCRYPTION_KEY, ENCRYPTION_PASSWORD):
        assert secret not in out + err


@pytest.mark.parametrize("url,named", [
    ("postgresql://postgres:pw-s3cret@127.0.0.1:5432/db?target_session_attrs=read-only", "target_session_attrs"),
    ("postgresql://postgres:pw-s3cret@127.0.0.1:5432/db?target_session_attrs=standby", "target_session_attrs"),
    ("postgresql://postgres:pw-s3cret@/db?host=a,b,c&port=1,2", "3 hosts"),
    ("postgresql://postgres:pw-s3cret@/db?host=a,b&hostaddr=127.0.0.1", "2 hosts"),
    ("postgresql://postgres:pw-s3cret@127.0.0.1/db?connect_timeout=soon", "connect_timeout"),
])
def test_refuses_database_settings_the_pool_cannot_use(full_env, url, named):
    env = apply_overrides(dict(full_env), {"DATABASE_URL": url})
    rc, out, err = run_binary(env)
    assert rc != 0, "started with DATABASE_URL=%s" % url
    assert named in err, err
    assert "pw-s3cret" not in out + err


@pytest.mark.parametrize("var,value", [("REDIS_SENTINELS", "127.0.0.1"), ("REDIS_SENTINELS", "host:0"),
                                       ("RESOLVER_HOSTS_FILE", "")])
def test_refuses_bad_failover_settings(full_env, var, value):
    env = apply_overrides(dict(full_env), {var: value})
    rc, out, err = run_binary(env)
    assert rc != 0, "started with %s=%r" % (var, value)
    assert var in err, err


def test_refuses_a_non_ascii_encryption_key_before_connecting(full_env):
    # Node cannot use such a key either ("Invalid key length"). The keys are derived once
    # the connections are under way, so the key is checked before: a refused configuration
    # opens no connection to PostgreSQL or Redis.
    listeners = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        s.setblocking(False)
        listeners.append(s)
    pg_port, redis_port = (s.getsockname()[1] for s in listeners)
    key = "0123456789abcdef0123456789ABCDE\u00e9 and more"  # the 32nd byte is not ASCII
    env = apply_overrides(dict(full_env), {
        "ENCRYPTION_KEY": key,
        "DATABASE_URL": "postgresql://postgres:pw-s3cret@127.0.0.1:%d/db" % pg_port,
        "REDIS_URL": "redis://127.0.0.1:%d/0" % redis_port})
    try:
        rc, out, err = run_binary(env)
        assert rc == 1, err
        assert "configuration error: ENCRYPTION_KEY must be ASCII" in err, err
        assert key not in out + err and "pw-s3cret" not in out + err
        for s, what in zip(listeners, ("PostgreSQL", "Redis")):
            try:
                s.accept()[0].close()
            except BlockingIOError:  # nothing connected
                continue
            pytest.fail("a connection reached the fake %s" % what)
    finally:
        for s in listeners:
            s.close()
    # --check-config says the same, without the key
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc == 1 and "configuration: ENCRYPTION_KEY must be ASCII" in err, (out, err)
    assert key not in out + err
    # The same key with its non-ASCII byte past the 32 the cipher uses is accepted.
    env["ENCRYPTION_KEY"] = "0123456789abcdef0123456789ABCDEF\u00e9"
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc == 0 and "configuration OK" in out + err, err


# ---------------------------------------------------------------- --check-config, --version

def test_check_config_ok(full_env):
    rc, out, err = run_binary(full_env, ["--check-config"])
    assert rc == 0, "stdout: %s\nstderr: %s" % (out, err)


def test_check_config_accepts_uppercase_algorithm(full_env):
    env = apply_overrides(dict(full_env), {"ENCRYPTION_ALGORITHM": "AES-256-CBC"})
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc == 0, err


def test_check_config_does_not_serve(full_env):
    port = free_port()
    env = apply_overrides(dict(full_env), {"PORT": port})
    rc, _, err = run_binary(env, ["--check-config"])
    assert rc == 0, err
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex(("127.0.0.1", port)) != 0, "--check-config left something listening"


@pytest.mark.parametrize("var", REQUIRED)
def test_check_config_names_missing_variable(full_env, var):
    env = apply_overrides(dict(full_env), {var: None})
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc != 0
    assert var in out + err, out + err


def test_check_config_rejects_other_algorithm(full_env):
    env = apply_overrides(dict(full_env), {"ENCRYPTION_ALGORITHM": "aes-128-cbc"})
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc != 0
    assert "ENCRYPTION_ALGORITHM" in out + err


def test_check_config_lists_every_problem_without_values(full_env):
    secret = "pw-value-that-must-not-print-0c1d"
    env = apply_overrides(dict(full_env), {
        "JWT_SECRET": None, "ENCRYPTION_KEY": "", "ENCRYPTION_PASSWORD": secret,
        "DB_POOL_SIZE": "999", "LOG_FORMAT": "xml"})
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc == 1
    lines = [ln for ln in err.splitlines() if "configuration:" in ln]
    assert len(lines) == 4, err
    for var in ("JWT_SECRET", "ENCRYPTION_KEY", "DB_POOL_SIZE", "LOG_FORMAT"):
        assert any(var in ln for ln in lines), (var, err)
    assert secret not in out + err and "999" not in out + err and "xml" not in out + err
    assert "configuration OK" not in out
    # what start-up checks after the table: the schedule, the deny list, the listen address
    env = apply_overrides(dict(full_env), {"MLFLOW_SYNC_SCHEDULE": "61 * * * *",
                                           "OUTBOUND_DENY_CIDRS": "10.0.0.0/99",
                                           "BIND_ADDRESS": "localhost"})
    rc, out, err = run_binary(env, ["--check-config"])
    assert rc == 1
    for var in ("MLFLOW_SYNC_SCHEDULE", "OUTBOUND_DENY_CIDRS", "BIND_ADDRESS"):
        assert var in err, (var, err)
    # and each of them really stops the service
    for k, v in (("MLFLOW_SYNC_SCHEDULE", "61 * * * *"), ("OUTBOUND_DENY_CIDRS", "10.0.0.0/99")):
        bad = apply_overrides(dict(full_env), {k: v, "PORT": free_port()})
        p = subprocess.run([INTEGRATIONSD_BIN], env=bad, capture_output=True, text=True, timeout=20)
        assert p.returncode != 0, (k, p.stderr[-500:])


def test_version():
    rc, out, err = run_binary(_clean_env(), ["--version"])
    assert rc == 0, err
    first = out.splitlines()[0] if out else ""
    assert re.match(r"^integrationsd \d+\.\d+(\.\d+)?\S*", first), repr(out)


# ---------------------------------------------------------------- start-up

def _threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line for pid %d" % pid)


def test_key_derivation_is_joined_by_the_loop_without_a_request(service):
    """The ENCRYPTION_PASSWORD key (scrypt, 16 MiB of scratch) is derived on a thread that
    begins 100 ms after the schema is ready (so it takes no core from start-up or its first
    requests), without holding up /readyz; the loop joins that thread when it ends, with no
    MLflow or Slack request asking for the key, and /readyz says so."""
    svc = service(wait_ready=False)
    seen, deadline = [], time.monotonic() + 15
    while True:
        st, _, body = svc.req("GET", "/readyz")
        if st == 200:
            seen.append(body["keys"])
            assert body["keys"] in ("pending", "deriving", "ready"), body
            if body["keys"] == "ready":
                break
        elif isinstance(body, dict) and "keys" in body:
            assert body["keys"] == "pending", body  # not begun before the schema is ready
        assert time.monotonic() < deadline, "the key is not ready after 15 s: %r" % seen[-3:]
        time.sleep(0.002)
    assert _threads(svc.proc.pid) == 1, "a thread still runs after /readyz said the key is ready"
    log = svc.log_text()
    assert "start-up: ENCRYPTION_PASSWORD key derived" in log
    assert log.index("start-up: database schema ready") < log.index("start-up: ENCRYPTION_PASSWORD key derived")
    after = {}
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") in ("start-up: database schema ready", "start-up: ENCRYPTION_PASSWORD key derived"):
            after[rec["msg"]] = rec["after_ms"]
    # not begun before its 100 ms (scrypt itself takes longer than nothing)
    assert after["start-up: ENCRYPTION_PASSWORD key derived"] - after["start-up: database schema ready"] >= 100, after
    assert "key derivation failed" not in log
    assert ENCRYPTION_PASSWORD not in log


def test_key_derivation_waits_for_the_database(service):
    """With no database to check the schema against, the key derivation does not begin: no
    thread and no 16 MiB of scratch for a process that cannot serve yet; /readyz says
    "pending"."""
    svc = service(wait_ready=False, DATABASE_URL="postgresql://integrationsd@127.0.0.1:%d/x" % free_port())
    deadline = time.monotonic() + 10
    while True:
        st, _, body = svc.req("GET", "/readyz")
        if st == 503 and isinstance(body, dict) and "keys" in body:
            break
        assert time.monotonic() < deadline, "no /readyz answer: %r %r" % (st, body)
        time.sleep(0.01)
    time.sleep(0.5)
    st, _, body = svc.req("GET", "/readyz")
    assert st == 503 and body["database"] == "down" and body["keys"] == "pending", body
    assert _threads(svc.proc.pid) == 1, "the key derivation began with no database"
    assert "key derived" not in svc.log_text()


def _maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


GH_TEST = "/api/integrations/github/token/test"


def test_libcurl_is_loaded_by_the_first_outbound_call(service, tokens, fake_github):
    """The binary does not link libcurl (nor the eight libraries only it needs): a process
    serves without it and maps it at its first outbound call."""
    svc = service(GITHUB_API_URL=fake_github.url)
    st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert st == 200, data
    assert "libcurl.so.4" not in _maps(svc.proc.pid), "libcurl mapped before any outbound call"
    st, _, data = svc.req("POST", GH_TEST, body={"token": new_gh_token()}, token=tokens.admin1, timeout=20)
    assert st == 200 and data["data"]["valid"] is True, data
    assert "libcurl.so.4" in _maps(svc.proc.pid)


def test_without_libcurl_the_service_serves_and_outbound_calls_fail_clearly(service, tokens, fake_github,
                                                                            full_env, tmp_path):
    """A libcurl that cannot be loaded (here a broken file found first on the library path)
    stops nothing but the outbound calls: each fails with the library's name (the loader's
    reason, which names files, goes to the log only), nothing is sent, the next call tries
    again, and --check-config says so."""
    (tmp_path / "libcurl.so.4").write_bytes(b"not a library\n")
    svc = service(GITHUB_API_URL=fake_github.url, LD_LIBRARY_PATH=str(tmp_path))
    fake_github.clear()
    st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert st == 200, data
    for _ in range(2):
        st, _, data = svc.req("POST", GH_TEST, body={"token": new_gh_token()}, token=tokens.admin1, timeout=20)
        assert st == 200, data
        assert data["data"] == {"valid": False, "error": "Could not reach GitHub: cannot load libcurl.so.4"}, data
    assert fake_github.requests == []
    log = svc.log_text()
    assert log.count("curl_lib: cannot load libcurl.so.4: %s/libcurl.so.4" % tmp_path) == 2, log[-2000:]
    assert str(tmp_path) not in json.dumps(data)
    svc.stop_and_check()

    rc, out, err = run_binary(apply_overrides(dict(full_env), {"LD_LIBRARY_PATH": str(tmp_path)}), ["--check-config"])
    assert rc == 1, (out, err)
    assert "configuration OK" not in out
    assert "cannot load libcurl.so.4: the service would start, but every outbound call" in err, err
    rc, out, err = run_binary(full_env, ["--check-config"])
    assert rc == 0 and "configuration OK" in out, (out, err)


def test_serves_with_and_without_the_units_environment(service, tokens, fake_github):
    """Every suite runs the service with the unit's Environment= lines; without them (a
    plain exec, GnuTLS initialising itself at load) it serves the same, outbound calls too."""
    from conftest import unit_environment
    assert unit_environment() == {"GNUTLS_NO_IMPLICIT_INIT": "1"}
    for overrides in ({}, {"GNUTLS_NO_IMPLICIT_INIT": None}):
        svc = service(GITHUB_API_URL=fake_github.url, **overrides)
        assert ("GNUTLS_NO_IMPLICIT_INIT=1" in open("/proc/%d/environ" % svc.proc.pid).read().replace("\0", " ")) \
            == (overrides == {})
        st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
        assert st == 200, data
        st, _, data = svc.req("POST", GH_TEST, body={"token": new_gh_token()}, token=tokens.admin1, timeout=20)
        assert st == 200 and data["data"]["valid"] is True, data
        svc.stop_and_check()


def test_pool_opens_one_connection_until_there_is_work_for_more(service):
    """Start-up opens one database connection: the server forks one backend before the
    first answer. The others follow once the schema is in place (a tick later with no
    request, or as soon as a second statement is in flight), and the pool fills."""
    svc = service()
    assert svc.wait_pool_full()["pool"]["size"] == 4
    log = svc.log_text()
    opening = log.index("database pool: opening the other 3 connections")
    assert log.index("database connection 0 ready") < log.index("start-up: database schema ready") < opening
    for i in (1, 2, 3):
        assert log.index("database connection %d ready" % i) > opening


# ---------------------------------------------------------------- signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero(service, tokens, sig):
    s = service()
    st, _, _ = s.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert st == 200
    t0 = time.monotonic()
    problems = s.stop(sig=sig)
    assert not problems, "%s\n%s" % (problems, s.describe())
    assert s.exit_code == 0
    assert time.monotonic() - t0 < 10


def test_sigterm_with_idle_keepalive_connection_exits_zero(service):
    s = service()
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read()
        problems = s.stop()
        assert not problems, "%s\n%s" % (problems, s.describe())
    finally:
        conn.close()


# ---------------------------------------------------------------- structured logs

REQ_ID_KEYS = re.compile(r"^(request_?id|req_?id|requestId|rid)$", re.I)


def _request_lines(records, method, path):
    return [r for r in records if r.get("method") == method and r.get("path") == path and "status" in r]


def test_log_lines_are_json_and_requests_are_logged(service, tokens):
    s = service()
    probe = "X-Log-Probe-" + os.urandom(8).hex()
    tok = token_for(1, 1, "Admin")
    s.req("GET", "/healthz")
    s.req("GET", "/api/log-probe-404")
    st, _, _ = s.req("GET", "/api/llm-keys", token=tok, headers={"X-Custom": probe, "User-Agent": probe,
                                                                  "Cookie": "refresh_token=" + probe})
    assert st == 200
    s.req("GET", "/api/llm-keys", token="not-a-jwt-" + probe)
    problems = s.stop()
    assert not problems, "%s\n%s" % (problems, s.describe())
    lines = s.log_lines()
    assert lines, "no log output"
    records = []
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            pytest.fail("log line is not JSON: %r" % ln)
        assert isinstance(obj, dict), ln
        records.append(obj)

    hits = _request_lines(records, "GET", "/api/log-probe-404")
    assert hits, "no request log line for GET /api/log-probe-404"
    rec = hits[-1]
    assert rec["status"] == 404
    assert any(k.startswith("duration") for k in rec), rec
    dur = [v for k, v in rec.items() if k.startswith("duration")][0]
    assert isinstance(dur, (int, float)) and dur >= 0
    ids = [k for k in rec if REQ_ID_KEYS.match(k)]
    assert ids and rec[ids[0]], "no request id field in %r" % rec
    ok = _request_lines(records, "GET", "/api/llm-keys")
    assert any(r["status"] == 200 for r in ok), ok
    # the members, in the order every release wrote them (the line is written directly)
    common = ["time", "level", "msg", "request_id", "method", "path", "status", "duration_ms"]
    assert list(rec) == common, rec
    served = [r for r in ok if r["status"] == 200][-1]
    assert list(served) == common + ["route", "user_id"], served
    assert served["route"] == "llm_keys_list" and served["user_id"] == 1 and served["msg"] == "request", served
    # request ids differ between requests
    rid_key = ids[0]
    rids = [r.get(rid_key) for r in records if "status" in r and r.get(rid_key)]
    assert len(rids) == len(set(rids)), rids

    text = s.log_text()
    assert probe not in text, "a header value was logged"
    assert tok not in text and tok.rsplit(".", 1)[1] not in text, "the JWT was logged"
    for secret in (JWT_SECRET, ENCRYPTION_KEY, ENCRYPTION_PASSWORD):
        assert secret not in text


def test_log_level_filters_lower_levels(service):
    quiet = service(LOG_LEVEL="error")
    quiet.req("GET", "/api/log-level-probe")
    quiet.stop_and_check()
    for ln in quiet.log_lines():
        rec = json.loads(ln)
        assert str(rec.get("level", "")).lower() not in ("debug", "info"), ln
        assert rec.get("path") != "/api/log-level-probe", "a 404 request line logged at LOG_LEVEL=error"
    loud = service(LOG_LEVEL="debug")
    loud.req("GET", "/api/log-level-probe")
    loud.stop_and_check()
    recs = [json.loads(ln) for ln in loud.log_lines()]
    assert any(r.get("path") == "/api/log-level-probe" for r in recs), "no request line at LOG_LEVEL=debug"
