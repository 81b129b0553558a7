# MLflow integration end to end (contract 1.1, 3.1, 3.2, 5; issue 4): every route's success
# and error shapes and messages; bad input changes nothing; credentials stored in scheme A and
# never returned or logged; /test never replays stored credentials to another URL; test-then-
# save keeps the test status; full paginated sync lands every record once, is idempotent,
# detects changes and stale records, retries, gives partial and error outcomes; one sync per
# tenant across instances; tenant isolation. The scheduler has its own file.
import json
import re
import time

import pytest

from conftest import (SEEN_KEYS, remember_key, scheme_a_decrypt, tenant_hash, token_for)
from fakes.mlflow import API, dead_url

BASE = "/api/integrations/mlflow"
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CONFIG_KEYS = {"trackingServerUrl", "authMethod", "timeout", "verifySsl", "hasStoredUsername", "hasStoredPassword",
               "hasStoredApiToken", "lastTestedAt", "lastTestStatus", "lastTestMessage", "lastSuccessfulTestAt",
               "lastFailedTestAt", "lastFailedTestMessage", "lastSyncedAt", "lastSyncStatus", "lastSyncMessage",
               "updatedAt", "updatedBy"}
URL_REQUIRED = "MLFlow tracking server URL is required"
BASIC_REQUIRED = "Username and password are required for basic authentication"
TOKEN_REQUIRED = "API token is required when using token authentication"
AUTH_FAILED = "Authentication failed - check your credentials"
REFUSED = "Connection refused - MLFlow server may not be running"
OK_MESSAGE = "Successfully connected to MLFlow server!"


def secret(prefix):
    return remember_key(prefix + "-" + ("%x" % int(time.time() * 1e6))[-10:])


def configure(svc, token, url, expect=200, **kw):
    body = {"trackingServerUrl": url, "authMethod": "none", "timeout": 10, "verifySsl": True}
    body.update(kw)
    st, _, data = svc.req("POST", BASE + "/configure", body=body, token=token)
    assert st == expect, data
    return data


def get_config(svc, token):
    st, _, data = svc.req("GET", BASE + "/config", token=token)
    assert st == 200, data
    return data


def history(svc, token):
    st, _, data = svc.req("GET", BASE + "/sync-history", token=token)
    assert st == 200, data
    return data["data"]


def start_sync(svc, token, expect=202):
    st, _, data = svc.req("POST", BASE + "/sync", token=token)
    assert st == expect, data
    return data


def wait_sync(svc, token, sync_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h in history(svc, token):
            if h["id"] == sync_id and h["status"] != "running":
                return h
        time.sleep(0.1)
    pytest.fail("sync %s did not finish within %s s" % (sync_id, timeout))


def sync(svc, token, timeout=60):
    data = start_sync(svc, token)
    assert data["success"] is True and isinstance(data["data"]["syncId"], int), data
    return wait_sync(svc, token, data["data"]["syncId"], timeout)


RECORDS = ('SELECT r.*, k.record_kind, k.deleted_at FROM "{t}".mlflow_model_records r '
           'LEFT JOIN "{t}".integrationsd_mlflow_model_records k ON k.record_id = r.id')


def records_sql(org, where):
    """Model records with integrationsd's own columns of them (kind, stale mark)."""
    return "SELECT * FROM (%s) rk WHERE %s" % (RECORDS.format(t=tenant_hash(org)), where)


def live_records(db, org):
    return db.rows(records_sql(org, "deleted_at IS NULL"))


def config_row(db, org):
    return db.one('SELECT * FROM "%s".mlflow_integrations' % tenant_hash(org))


def state_of(db, org):
    """Everything a rejected request must leave unchanged."""
    t = tenant_hash(org)
    if not db.table_exists('"%s".mlflow_integrations' % t):
        return None
    return (db.rows('SELECT * FROM "%s".mlflow_integrations ORDER BY id' % t),
            db.rows('SELECT * FROM "%s".integrationsd_mlflow_integrations ORDER BY integration_id' % t),
            db.scalar('SELECT count(*) FROM "%s".mlflow_model_records' % t))


# ---------------------------------------------------------------- health and auth

def test_health_shape_and_auth(svc, tokens):
    st, _, data = svc.req("GET", BASE + "/health", token=tokens.auditor1)
    assert st == 200, data
    assert data["status"] == "healthy" and data["service"] == "mlflow-integration"
    assert ISO_MS_Z.match(data["timestamp"])
    assert data["endpoints"] == {"test": BASE + "/test", "configure": BASE + "/configure",
                                 "models": BASE + "/models"}
    st, _, data = svc.req("GET", BASE + "/health")
    assert st == 400 and data == {"message": "Bad Request", "data": {"message": "Token not found"}}
    st, _, _ = svc.req("DELETE", BASE + "/health", token=tokens.admin1)
    assert st == 405


def test_not_configured_shapes(svc, tokens):
    t = tokens.admin10  # org 10: never configured by any test
    assert get_config(svc, t) == {"configured": False}
    st, _, data = svc.req("GET", BASE + "/sync-status", token=t)
    assert st == 200 and data == {"success": True, "data": {
        "configured": False, "lastSyncedAt": None, "lastSyncStatus": None, "lastSyncMessage": None,
        "lastTestedAt": None, "lastTestStatus": None, "lastTestMessage": None}}
    for path in ("/models", "/models?refresh=true"):
        st, _, data = svc.req("GET", BASE + path, token=t)
        assert st == 200 and data == {"configured": False, "models": []}, data
    st, _, data = svc.req("POST", BASE + "/sync", token=t)
    assert st == 400 and data == {"success": False, "error": "MLFlow integration is not configured"}
    assert history(svc, t) == []
    st, _, data = svc.req("POST", BASE + "/test", body={}, token=t)
    assert st == 400 and data == {"success": False, "error": URL_REQUIRED}


# ---------------------------------------------------------------- configure

BAD_BODIES = [
    ({}, URL_REQUIRED),
    ({"trackingServerUrl": ""}, URL_REQUIRED),
    ({"trackingServerUrl": 5}, "trackingServerUrl must be a string"),
    ({"trackingServerUrl": "ftp://x.example"}, "MLFlow tracking server URL must be an http(s) URL with a host"),
    ({"trackingServerUrl": "http://"}, "MLFlow tracking server URL must be an http(s) URL with a host"),
    ({"trackingServerUrl": "mlflow.example"}, "MLFlow tracking server URL must be an http(s) URL with a host"),
    ({"trackingServerUrl": "http://u:p@mlflow.example"}, "MLFlow tracking server URL must be an http(s) URL with a host"),
    ({"trackingServerUrl": "http://a b.example"}, "MLFlow tracking server URL must be an http(s) URL with a host"),
    ({"trackingServerUrl": "http://x.example/" + "a" * 300}, "MLFlow tracking server URL must be at most 255 characters"),
    ({"trackingServerUrl": "http://x.example", "authMethod": "oauth"}, "authMethod must be one of: none, basic, token"),
    ({"trackingServerUrl": "http://x.example", "authMethod": 1}, "authMethod must be one of: none, basic, token"),
    ({"trackingServerUrl": "http://x.example", "timeout": 0}, "timeout must be a whole number of seconds between 1 and 300"),
    ({"trackingServerUrl": "http://x.example", "timeout": 301}, "timeout must be a whole number of seconds between 1 and 300"),
    ({"trackingServerUrl": "http://x.example", "timeout": "30"}, "timeout must be a whole number of seconds between 1 and 300"),
    ({"trackingServerUrl": "http://x.example", "timeout": 2.5}, "timeout must be a whole number of seconds between 1 and 300"),
    ({"trackingServerUrl": "http://x.example", "verifySsl": "yes"}, "verifySsl must be a boolean"),
    ({"trackingServerUrl": "http://x.example", "authMethod": "basic", "username": "u"}, BASIC_REQUIRED),
    ({"trackingServerUrl": "http://x.example", "authMethod": "token"}, TOKEN_REQUIRED),
    ({"trackingServerUrl": "http://x.example", "authMethod": "token", "apiToken": "   "}, TOKEN_REQUIRED),
    ({"trackingServerUrl": "http://x.example", "authMethod": "token", "apiToken": "x" * 112},
     "API token must be at most 111 bytes"),
    ({"trackingServerUrl": "http://x.example", "authMethod": "basic", "username": ["u"], "password": "p"},
     "username must be a string"),
    ({"trackingServerUrl": "http://x.example", "authMethod": "token", "apiToken": "a\r\nX-Evil: 1"},
     "API token contains invalid characters"),
]


@pytest.mark.parametrize("body,message", BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))])
def test_configure_rejects_bad_input(svc, tokens, db, mlflow_fakes, body, message):
    fake = mlflow_fakes()
    configure(svc, tokens.admin1, fake.url)
    before = state_of(db, 1)
    st, _, data = svc.req("POST", BASE + "/configure", body=body, token=tokens.admin1)
    assert st == 400 and data == {"success": False, "error": message}, data
    assert state_of(db, 1) == before
    if message != URL_REQUIRED:  # /test validates the same way (a missing or empty URL means the stored one)
        st, _, data = svc.req("POST", BASE + "/test", body=body, token=tokens.admin1)
        assert st == 400 and data["success"] is False, data
        assert state_of(db, 1) == before


def test_malformed_json_changes_nothing(svc, tokens, db):
    before = state_of(db, 1)
    st, _, data = svc.req("POST", BASE + "/configure", raw_body=b'{"trackingServerUrl": ', token=tokens.admin1)
    assert st == 400
    st, _, data = svc.req("POST", BASE + "/configure", raw_body=b'[1]', token=tokens.admin1)
    assert st == 400
    assert state_of(db, 1) == before


def test_configure_basic_scheme_a_and_summary(svc, tokens, db, mlflow_fakes):
    fake = mlflow_fakes()
    user, pw = secret("user"), secret("pw")
    data = configure(svc, tokens.editor1, fake.url + "/", authMethod="basic", username="  " + user + " ",
                     password=pw, timeout=42, verifySsl=False)
    assert data["success"] is True and data["message"] == "MLFlow integration configured successfully!"
    summary = data["config"]
    assert summary["configured"] is True and set(summary["config"]) == CONFIG_KEYS
    c = summary["config"]
    assert c["trackingServerUrl"] == fake.url  # trimmed, one trailing '/' removed
    assert c["authMethod"] == "basic" and c["timeout"] == 42 and c["verifySsl"] is False
    assert (c["hasStoredUsername"], c["hasStoredPassword"], c["hasStoredApiToken"]) == (True, True, False)
    assert c["updatedBy"] == 2 and ISO_MS_Z.match(c["updatedAt"])
    assert c["lastTestStatus"] is None
    assert get_config(svc, tokens.admin1) == summary
    text = json.dumps(data)
    assert user not in text and pw not in text
    row = config_row(db, 1)
    assert re.fullmatch(r"[0-9a-f]{32}", row["username_iv"]) and re.fullmatch(r"[0-9a-f]{32}", row["password_iv"])
    assert scheme_a_decrypt(row["username"], row["username_iv"]) == user
    assert scheme_a_decrypt(row["password"], row["password_iv"]) == pw
    assert row["api_token"] is None and row["api_token_iv"] is None
    for v in row.values():
        assert user not in str(v) and pw not in str(v)
    # one row per tenant, always
    configure(svc, tokens.admin1, fake.url, authMethod="token", apiToken=secret("tok"))
    assert db.scalar('SELECT count(*) FROM "%s".mlflow_integrations' % tenant_hash(1)) == 1
    row = config_row(db, 1)
    assert row["username"] is None and row["password"] is None and row["api_token"] is not None


def test_configure_keeps_stored_credentials_for_same_url_only(svc, tokens, db, mlflow_fakes):
    fake, other = mlflow_fakes(), mlflow_fakes()
    pw = secret("pw")
    configure(svc, tokens.admin1, fake.url, authMethod="basic", username="alice", password=pw)
    # same URL, no credentials in the body: the stored ones are kept
    data = configure(svc, tokens.admin1, fake.url, authMethod="basic", timeout=20)
    assert data["config"]["config"]["hasStoredPassword"] is True
    assert scheme_a_decrypt(config_row(db, 1)["password"], config_row(db, 1)["password_iv"]) == pw
    # another URL: stored credentials are not carried over to it
    data = configure(svc, tokens.admin1, other.url, expect=400, authMethod="basic")
    assert data == {"success": False, "error": BASIC_REQUIRED}
    assert config_row(db, 1)["tracking_server_url"] == fake.url


def test_bad_old_secret_does_not_block_saving(svc, tokens, db, mlflow_fakes):
    fake = mlflow_fakes()
    configure(svc, tokens.admin1, fake.url, authMethod="basic", username="alice", password=secret("pw"))
    db.execute('UPDATE "%s".mlflow_integrations SET password = %%s' % tenant_hash(1), ("00" * 16,))
    pw = secret("pw")
    data = configure(svc, tokens.admin1, fake.url, authMethod="basic", username="alice", password=pw)
    assert data["success"] is True
    row = config_row(db, 1)
    assert scheme_a_decrypt(row["password"], row["password_iv"]) == pw


def test_any_role_may_configure(svc, tokens, mlflow_fakes):
    fake = mlflow_fakes()
    for t in (tokens.auditor1, tokens.reviewer1, tokens.editor1):
        assert configure(svc, t, fake.url)["success"] is True


# ---------------------------------------------------------------- test connection

def test_connection_test_messages(svc, tokens, db, mlflow_fakes):
    fake = mlflow_fakes(auth=("basic", "alice", "s3cret-pw"), forbidden_users={"bob"})
    remember_key("s3cret-pw")
    configure(svc, tokens.admin1, fake.url, authMethod="basic", username="alice", password="s3cret-pw")
    st, _, data = svc.req("POST", BASE + "/test", body={}, token=tokens.admin1)
    assert st == 200, data
    assert data == {"success": True, "message": OK_MESSAGE, "serverInfo": {
        "trackingServerUrl": fake.url, "authMethod": "basic", "connected": True, "responseTime": "1.2s"}}
    call = fake.calls("/experiments/search")[-1]
    assert call.method == "POST" and json.loads(call.body) == {"max_results": 1}
    c = get_config(svc, tokens.admin1)["config"]
    assert c["lastTestStatus"] == "success" and c["lastTestMessage"] is None
    assert ISO_MS_Z.match(c["lastSuccessfulTestAt"]) and ISO_MS_Z.match(c["lastTestedAt"])
    # wrong password / forbidden user: the auth message, recorded as a failure
    for user in ("alice", "bob"):
        st, _, data = svc.req("POST", BASE + "/test", token=tokens.admin1, body={
            "trackingServerUrl": fake.url, "authMethod": "basic", "username": user, "password": "wrong-pw"
            if user == "alice" else "s3cret-pw"})
        assert st == 400 and data == {"success": False, "message": AUTH_FAILED}, data
    # a server error
    fake.status_for = {API + "/experiments/search": (503, "TEMPORARILY_UNAVAILABLE")}
    st, _, data = svc.req("POST", BASE + "/test", body={}, token=tokens.admin1)
    assert st == 400 and data == {"success": False, "message":
                                  "Connection error: MLFlow server returned status 503: Service Unavailable"}
    c = get_config(svc, tokens.admin1)["config"]
    assert c["lastTestStatus"] == "error" and c["lastFailedTestMessage"] == data["message"]
    assert ISO_MS_Z.match(c["lastFailedTestAt"]) and c["lastSuccessfulTestAt"] is not None
    # nobody listening
    st, _, data = svc.req("POST", BASE + "/test", body={"trackingServerUrl": dead_url(), "authMethod": "none"},
                          token=tokens.admin1)
    assert st == 400 and data == {"success": False, "message": REFUSED}


def test_connection_test_timeout_and_garbage(svc, tokens, mlflow_fakes):
    fake = mlflow_fakes()
    fake.resets = {API + "/experiments/search"}
    st, _, data = svc.req("POST", BASE + "/test", body={"trackingServerUrl": fake.url, "authMethod": "none"},
                          token=tokens.admin1)
    assert st == 400 and data["message"].startswith("Connection error: "), data
    fake.resets = set()
    fake.status_for = {}
    fake2 = mlflow_fakes()
    fake2.status_for = {API + "/experiments/search": (404, "ENDPOINT_NOT_FOUND")}
    st, _, data = svc.req("POST", BASE + "/test", body={"trackingServerUrl": fake2.url, "authMethod": "none"},
                          token=tokens.admin1)
    assert st == 400 and data["message"] == "Connection error: MLFlow server returned status 404: Not Found"


def test_connection_test_timeout_both_sides(svc, tokens):
    """The configured timeout (2 s) against a server that accepts and never answers: the
    test ends with the timeout message, not before 2 s and not long after."""
    import socket
    lis = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lis.bind(("127.0.0.1", 0))
    lis.listen(8)
    try:
        t0 = time.monotonic()
        st, _, data = svc.req("POST", BASE + "/test", body={"trackingServerUrl": "http://127.0.0.1:%d" %
                                                             lis.getsockname()[1], "authMethod": "none",
                                                             "timeout": 2}, token=tokens.admin1, timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        lis.close()
    assert st == 400 and data["message"] == "Connection timeout - MLFlow server is not responding", data
    assert 1.9 <= elapsed < 4.5, elapsed


def test_test_never_sends_stored_credentials_elsewhere(svc, tokens, mlflow_fakes):
    home = mlflow_fakes(auth=("bearer", "home-token-abc123"))
    remember_key("home-token-abc123")
    attacker = mlflow_fakes()
    configure(svc, tokens.admin1, home.url, authMethod="token", apiToken="home-token-abc123")
    # the stored URL: stored token used
    st, _, data = svc.req("POST", BASE + "/test", body={}, token=tokens.admin1)
    assert st == 200, data
    assert home.requests_with("home-token-abc123")
    # another URL without credentials: 400, nothing sent anywhere
    st, _, data = svc.req("POST", BASE + "/test", token=tokens.auditor1,
                          body={"trackingServerUrl": attacker.url, "authMethod": "token"})
    assert st == 400 and data == {"success": False, "error": TOKEN_REQUIRED}
    st, _, data = svc.req("POST", BASE + "/test", token=tokens.auditor1, body={"trackingServerUrl": attacker.url})
    assert st == 400 and data == {"success": False, "error": TOKEN_REQUIRED}
    assert attacker.requests_with("home-token-abc123") == []
    assert not any("Authorization" in r.headers for r in attacker.requests)


def test_test_then_save_keeps_success(svc, tokens, db, mlflow_fakes):
    fake = mlflow_fakes(auth=("basic", "alice", "pw-keep-1"))
    remember_key("pw-keep-1")
    other = mlflow_fakes()
    configure(svc, tokens.admin1, other.url)
    body = {"trackingServerUrl": fake.url, "authMethod": "basic", "username": "alice", "password": "pw-keep-1",
            "timeout": 15, "verifySsl": True}
    st, _, data = svc.req("POST", BASE + "/test", body=body, token=tokens.admin1)
    assert st == 200, data
    # the stored row (another URL) is not marked by a test of something else
    assert get_config(svc, tokens.admin1)["config"]["lastTestStatus"] is None
    data = configure(svc, tokens.admin1, **{k: v for k, v in body.items() if k != "trackingServerUrl"},
                     url=fake.url)
    c = data["config"]["config"]
    assert c["lastTestStatus"] == "success" and c["lastSuccessfulTestAt"] is not None
    # saving the same again keeps it; a different timeout is not a different connection
    c = configure(svc, tokens.admin1, fake.url, authMethod="basic", timeout=99)["config"]["config"]
    assert c["lastTestStatus"] == "success"
    # a different password resets it, and the sync status with it
    c = configure(svc, tokens.admin1, fake.url, authMethod="basic", username="alice",
                  password="pw-other-2")["config"]["config"]
    assert c["lastTestStatus"] is None and c["lastTestedAt"] is None and c["lastSyncStatus"] is None


def test_first_save_after_test_is_syncable(svc, tokens, db, mlflow_fakes):
    """A test before the very first save is remembered (VerifyWise drops it)."""
    fake = mlflow_fakes()
    t = token_for(3, 2, "Admin")
    db.execute('DELETE FROM "%s".mlflow_integrations' % tenant_hash(2)) if db.table_exists(
        '"%s".mlflow_integrations' % tenant_hash(2)) else None
    st, _, data = svc.req("POST", BASE + "/test", body={"trackingServerUrl": fake.url}, token=t)
    assert st == 200, data
    c = configure(svc, t, fake.url)["config"]["config"]
    assert c["lastTestStatus"] == "success"


# ---------------------------------------------------------------- sync

def test_full_sync_lands_every_record_once_and_rerun_is_idempotent(svc, tokens, db, mlflow_fakes):
    fake = mlflow_fakes(n_experiments=120, runs_per_experiment=30, n_models=40, versions_per_model=5,
                        deleted_every=10)
    configure(svc, tokens.admin1, fake.url)
    h = sync(svc, tokens.admin1, timeout=120)
    assert h["status"] == "success", h
    runs, versions = fake.expected_run_ids(), fake.expected_versions()
    assert len(runs) > 3000 and len(versions) == 200
    recs = live_records(db, 1)
    got_runs = [r["version"] for r in recs if r["record_kind"] == "run"]
    got_versions = [(r["model_name"], r["version"]) for r in recs if r["record_kind"] == "model_version"]
    assert len(got_runs) == len(set(got_runs)) and set(got_runs) == runs
    assert len(got_versions) == len(set(got_versions)) and set(got_versions) == versions
    assert not any(r["model_name"].startswith("prompt-") for r in recs)
    assert h["counts"]["failures"] == 0 and h["counts"]["skipped"] == 1  # the prompt version
    assert h["counts"]["new"] + h["counts"]["updated"] + h["counts"]["unchanged"] == len(runs) + len(versions)
    assert h["message"] == "Synced %d model(s) via manual sync" % (len(runs) + len(versions))
    # paging: experiments in 2 pages, runs/search in several pages, every body with ACTIVE_ONLY
    assert len(fake.calls("/experiments/search")) == 2
    rs = fake.calls("/runs/search")
    assert len(rs) >= 6 and all(json.loads(r.body)["run_view_type"] == "ACTIVE_ONLY" for r in rs)
    assert all(len(json.loads(r.body)["experiment_ids"]) <= 50 for r in rs)
    assert any("page_token" in json.loads(r.body) for r in rs)
    # mapping spot checks (reference 3.2)
    one = next(r for r in recs if r["version"] == fake.run("5", 0)["info"]["run_id"])
    assert one["model_name"] == "model-of-exp-5" and one["lifecycle_stage"] == "production"
    assert one["experiment_name"] == "experiment-5" and one["training_status"] == "FINISHED"
    assert one["metrics"]["auc"] == 0.5 and one["parameters"]["lr"] == "0.01"
    mv = next(r for r in recs if (r["model_name"], r["version"]) == ("model-001", "5"))
    assert mv["tags"]["mlflow.aliases"] == "champion" and mv["lifecycle_stage"] == "Production"
    st_ = get_config(svc, tokens.admin1)["config"]
    assert st_["lastSyncStatus"] == "success" and ISO_MS_Z.match(st_["lastSyncedAt"])

    # rerun: nothing new, nothing updated
    h2 = sync(svc, tokens.admin1, timeout=120)
    assert h2["status"] == "success"
    assert (h2["counts"]["new"], h2["counts"]["updated"], h2["counts"]["stale"]) == (0, 0, 0), h2
    assert h2["counts"]["unchanged"] == len(runs) + len(versions)
    assert len(live_records(db, 1)) == len(recs)

    # upstream changes: a stage, an alias, a description, a removed run and version
    fake.stage_overrides[("model-002", "1")] = "Archived"
    fake.alias_overrides["model-003"] = {"champion": "2"}
    fake.description_overrides[("model-004", "2")] = "better"
    gone = fake.run("7", 3)["info"]["run_id"]
    fake.removed_runs.add(gone)
    fake.removed_versions.add(("model-005", "1"))
    h3 = sync(svc, tokens.admin1, timeout=120)
    assert h3["status"] == "success"
    # model-003: v5 lost champion, v4 lost challenger, v2 gained champion
    assert (h3["counts"]["new"], h3["counts"]["updated"], h3["counts"]["stale"]) == (0, 5, 2), h3
    stale = db.rows(records_sql(1, "deleted_at IS NOT NULL AND version IN (%s, %s)"), (gone, "1"))
    assert {(r["model_name"], r["version"]) for r in stale} >= {("model-005", "1")}
    st, _, data = svc.req("GET", BASE + "/models", token=tokens.admin1)
    assert st == 200 and data["configured"] is True
    ids = {m["id"] for m in data["models"]}
    assert gone not in ids and "model-005/1" not in ids and "model-002/1" in ids
    # a record that comes back is live again (and counted as updated)
    fake.removed_runs.discard(gone)
    h4 = sync(svc, tokens.admin1, timeout=120)
    assert h4["counts"]["updated"] == 1 and h4["counts"]["new"] == 0


def test_models_element_shape(svc, tokens, mlflow_fakes):
    fake = mlflow_fakes(n_experiments=1, runs_per_experiment=7, n_models=1, versions_per_model=1)
    configure(svc, tokens.admin1, fake.url)
    st, _, data = svc.req("GET", BASE + "/models?refresh=true", token=tokens.admin1, timeout=30)
    assert st == 200 and data["configured"] is True and "connected" not in data, data
    runs = [m for m in data["models"] if m["id"] == m["version"]]
    assert len(runs) == 8  # 7 + the Default experiment's run
    m = next(x for x in runs if x["run_id"] == fake.run("1", 0)["info"]["run_id"])
    assert set(m) == {"id", "name", "version", "lifecycle_stage", "creation_timestamp", "last_updated_timestamp",
                      "description", "run_id", "source", "status", "tags", "metrics", "parameters",
                      "experiment_info", "training_status", "training_started_at", "training_ended_at",
                      "source_version"}
    info = fake.run("1", 0)["info"]
    assert m["creation_timestamp"] == info["start_time"] and m["training_ended_at"] == info["end_time"]
    assert m["experiment_info"] == {"experiment_id": "1", "experiment_name": "experiment-1",
                                    "artifact_location": info["artifact_uri"]}
    assert m["description"] == "" and m["source_version"] == ""
    running = next(x for x in runs if x["run_id"] == fake.run("1", 6)["info"]["run_id"])
    assert "training_ended_at" not in running and running["training_status"] == "RUNNING"
    assert any(x["id"] == "model-000/1" for x in data["models"])


def test_retry_then_success(svc, tokens, mlflow_fakes):
    fake = mlflow_fakes(n_experiments=2, runs_per_experiment=3)
    fake.fail_once(API + "/runs/search", 0, status=500)
    # Retry-After well above the first backoff (1 s +- 20%), so ignoring it cannot pass
    fake.rate_limit_once(API + "/registered-models/search", 0, retry_after="3")
    configure(svc, tokens.admin1, fake.url)
    h = sync(svc, tokens.admin1)
    assert h["status"] == "success", h
    assert len(fake.calls("/runs/search")) == 2
    assert len(fake.calls("/registered-models/search")) == 2
    a, b = fake.calls("/registered-models/search")
    assert 2.9 <= b.time - a.time < 6.0, b.time - a.time  # Retry-After honoured


def test_not_retried_4xx_and_partial(svc, tokens, db, mlflow_fakes):
    fake = mlflow_fakes(n_experiments=6, runs_per_experiment=3)
    fake.failing_experiments = {"4"}
    configure(svc, tokens.admin1, fake.url)
    h = sync(svc, tokens.admin1)
    assert h["status"] == "partial", h
    assert "1 of 7 experiment(s)" in h["message"], h
    ids = {r["version"] for r in live_records(db, 1) if r["record_kind"] == "run"}
    assert fake.run("5", 0)["info"]["run_id"] in ids and fake.run("4", 0)["info"]["run_id"] not in ids
    assert get_config(svc, tokens.admin1)["config"]["lastSyncStatus"] == "partial"
    # a 404 on the registry is not retried, and gives partial too
    fake.failing_experiments = set()
    fake.status_for = {API + "/registered-models/search": (404, "ENDPOINT_NOT_FOUND")}
    n = len(fake.calls("/registered-models/search"))
    h = sync(svc, tokens.admin1)
    assert h["status"] == "partial" and len(fake.calls("/registered-models/search")) == n + 1


def test_dead_server_gives_error(svc, tokens, mlflow_fakes):
    configure(svc, tokens.admin1, dead_url())
    h = sync(svc, tokens.admin1)
    assert h["status"] == "error" and h["message"] == REFUSED, h
    s = svc.req("GET", BASE + "/sync-status", token=tokens.admin1)[2]["data"]
    assert s["lastSyncStatus"] == "error" and s["lastSyncMessage"] == REFUSED
    st, _, data = svc.req("GET", BASE + "/models?refresh=true", token=tokens.admin1, timeout=30)
    assert st == 200 and data == {"configured": True, "connected": False, "models": [],
                                  "message": "MLFlow server is not reachable"}


def test_garbage_reset_and_auth_failures(svc, tokens, mlflow_fakes):
    fake = mlflow_fakes(n_experiments=2, runs_per_experiment=2)
    fake.garbage = {API + "/experiments/search"}
    configure(svc, tokens.admin1, fake.url)
    h = sync(svc, tokens.admin1)
    assert h["status"] == "partial" and "invalid JSON" in h["message"], h
    fake.garbage = set()
    fake.resets = {API + "/model-versions/search"}
    h = sync(svc, tokens.admin1)
    assert h["status"] == "partial", h
    fake.resets = set()
    fake.auth = ("bearer", "right-token")
    h = sync(svc, tokens.admin1)
    assert h["status"] == "error" and h["message"] == AUTH_FAILED, h
    assert len(fake.calls("/experiments/search")) >= 3
    st, _, data = svc.req("GET", BASE + "/models?refresh=true", token=tokens.admin1)
    assert data == {"configured": True, "connected": False, "models": [], "error": "Failed to fetch MLFlow models"}


def test_sync_conflict_and_two_instances(svc, service, tokens, mlflow_fakes):
    fake = mlflow_fakes(n_experiments=3, runs_per_experiment=2)
    fake.page_delay = 1.5
    configure(svc, tokens.admin1, fake.url)
    other = service()
    first = start_sync(svc, tokens.admin1)
    data = start_sync(svc, tokens.admin1, expect=409)
    assert data == {"success": False, "error": "A sync is already running for this organization"}
    data = start_sync(other, tokens.admin1, expect=409)  # the lease is shared through PostgreSQL
    h = wait_sync(svc, tokens.admin1, first["data"]["syncId"])
    assert h["status"] == "success"
    running = [x for x in history(svc, tokens.admin1) if x["status"] == "running"]
    assert running == []
    # once it is over, the other instance may run one
    h2 = sync(other, tokens.admin1)
    assert h2["status"] == "success" and h2["id"] != h["id"]


def test_tenant_isolation(svc, tokens, db, mlflow_fakes):
    f1 = mlflow_fakes(n_experiments=1, runs_per_experiment=2, n_models=1, versions_per_model=1)
    f2 = mlflow_fakes(n_experiments=2, runs_per_experiment=1, n_models=0)
    configure(svc, tokens.admin1, f1.url, authMethod="token", apiToken=secret("iso"))
    configure(svc, tokens.admin2, f2.url)
    h1 = sync(svc, tokens.admin1)
    h2 = sync(svc, tokens.admin2)
    assert get_config(svc, tokens.admin2)["config"]["trackingServerUrl"] == f2.url
    assert get_config(svc, tokens.admin1)["config"]["trackingServerUrl"] == f1.url
    assert h1["status"] == h2["status"] == "success"
    h1s, h2s = history(svc, tokens.admin1), history(svc, tokens.admin2)
    assert h1["id"] in [x["id"] for x in h1s] and h2["id"] in [x["id"] for x in h2s]
    assert all(x["startedAt"] != h1["startedAt"] for x in h2s)
    m2 = svc.req("GET", BASE + "/models", token=tokens.admin2)[2]["models"]
    assert len(m2) == len(f2.expected_run_ids()) == 3  # nothing of org 1's server
    assert {m["experiment_info"]["experiment_name"] for m in m2} == {"Default", "experiment-1", "experiment-2"}
    m1 = svc.req("GET", BASE + "/models", token=tokens.admin1)[2]["models"]
    assert len(m1) == len(f1.expected_run_ids()) + 1
    assert db.scalar("SELECT count(*) FROM (%s) c" % records_sql(2, "deleted_at IS NULL")) == 3
    assert config_row(db, 2)["api_token"] is None


def test_no_secret_in_logs(svc):
    text = svc.log_text()
    for k in SEEN_KEYS:
        assert k not in text, "a secret reached the log"


def test_events_and_overlong_values(svc, tokens, db, redis_server, mlflow_fakes):
    from conftest import EventSubscriber
    fake = mlflow_fakes(n_experiments=1, runs_per_experiment=3, n_models=1, versions_per_model=2)
    long_id = fake.run("1", 1)["info"]["run_id"]
    fake.run_tag_overrides[long_id] = {"model_name": "n" * 400, "mlflow.source.git.commit": "c" * 300,
                                       "stage": "s" * 1000}
    configure(svc, tokens.admin2, fake.url)
    sub = EventSubscriber(redis_server)
    try:
        h = sync(svc, tokens.admin2)
        assert h["status"] == "success", h  # over-long values are cut, the batch lands
        # earlier tests of organization 2 synced the same run ids (the fake is deterministic):
        # the live record of this run is the one this sync wrote
        row = db.one(records_sql(2, "version = %s AND deleted_at IS NULL"), (long_id,))
        assert row["model_name"] == "n" * 255 and row["source_version"] == "c" * 255
        assert row["lifecycle_stage"] == "s" * 255 and row["deleted_at"] is None
        done = sub.wait_for(lambda e: e.get("type") == "mlflow.sync.completed" and e["data"]["syncId"] == h["id"])
        assert done, sub.events
        ev = done[0]
        assert ev["organization_id"] == 2 and ev["tenant"] == tenant_hash(2) and ev["actor_user_id"] == 3
        assert ev["data"]["status"] == "success" and ev["data"]["counts"]["fetched"] == h["counts"]["fetched"]
        changed = [e for e in sub.of_type("mlflow.model.changed") if e["data"]["syncId"] == h["id"]]
        assert len(changed) == h["counts"]["new"] + h["counts"]["updated"] + h["counts"]["stale"]
        assert {e["data"]["change"] for e in changed} <= {"new", "updated", "stale"}
        # an upstream stage change: one event naming what changed
        fake.stage_overrides[("model-000", "1")] = "Archived"
        h2 = sync(svc, tokens.admin2)
        got = sub.wait_for(lambda e: e.get("type") == "mlflow.model.changed" and e["data"]["syncId"] == h2["id"])
        assert len(got) == 1 and got[0]["data"]["name"] == "model-000" and got[0]["data"]["version"] == "1"
        assert got[0]["data"]["change"] == "updated" and got[0]["data"]["changed"] == ["stage"]
        assert got[0]["data"]["stage"] == "Archived"
        st, _, _ = svc.req("POST", BASE + "/test", body={}, token=tokens.admin2)
        assert sub.wait_for(lambda e: e.get("type") == "mlflow.test.completed" and e["organization_id"] == 2)
    finally:
        sub.close()
