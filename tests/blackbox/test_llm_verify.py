# POST /api/llm-keys/:id/verify (SPEC 5; external-apis 4) against the fake providers of
# tests/fakes/llm.py: the request each provider gets (Anthropic x-api-key + anthropic-version
# on /v1/models, OpenAI Bearer on /v1/models, OpenRouter Bearer on /api/v1/key), valid and
# rejected keys, 5xx, reset, close, huge body, timeout, legacy plaintext rows, any role,
# tenant isolation and id validation, the SSRF deny list (also after DNS), and the plaintext
# key never appearing in a response or the log.
import http.client
import json
import re
import threading
import time

import pytest

from conftest import (ENCRYPTION_KEY, ENCRYPTION_PASSWORD, JWT_SECRET, SEEN_KEYS, SEEN_TOKENS, FakeLLM,
                      new_llm_key, tenant_hash)
from fakes.llm import PROVIDERS

INVALID_ID = "Invalid id"
NOT_FOUND = {"message": "Not Found", "data": {"message": "LLM Key not found"}}
NO_JWT = {"message": "Bad Request", "data": {"message": "Token not found"}}
BAD_IDS = ["abc", "1.5", "-1", "0", "99999999999", "1e3", "0x10"]
PATHS = {"Anthropic": "/v1/models", "OpenAI": "/v1/models", "OpenRouter": "/api/v1/key"}
MODELS = {"Anthropic": "claude-sonnet-4", "OpenAI": "gpt-4o", "OpenRouter": "openai/gpt-4o"}

TIMEOUT_RE = re.compile(r"(?i)timed?[ -]?out")
RESET_RE = re.compile(r"(?i)reset|closed|connection|empty")
TOO_LARGE_RE = re.compile(r"(?i)too large|too big|exceed|size")
DENIED_RE = re.compile(r"(?i)not allowed")


@pytest.fixture(scope="module")
def svc(module_service, fake_llm):
    """The module's service, with the three provider base URLs on the fakes."""
    return module_service(**fake_llm.env())


def assert_no_key(data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else json.dumps(data)
    for k in SEEN_KEYS:
        assert k not in text, "a plaintext key appears in a response: %s" % text[:300]


def create(svc, token, provider, marker="VALID"):
    key = new_llm_key(provider, marker)
    st, _, data = svc.req("POST", "/api/llm-keys", token=token,
                          body={"name": provider, "key": key, "model": MODELS[provider]})
    assert st == 201, data
    assert_no_key(data)
    return data["data"]["id"], key


def verify(s, token, key_id, timeout=20):
    st, headers, data = s.req("POST", "/api/llm-keys/%s/verify" % key_id, token=token, timeout=timeout)
    assert_no_key(data)
    return st, data


def llm_table(org):
    return '"%s".llm_keys' % tenant_hash(org)


def only_request(fake, key, timeout=3.0):
    reqs = fake.wait_for_requests(1, timeout=timeout, secret=key)
    assert len(reqs) == 1, "expected exactly one upstream request carrying the key, got %r" % reqs
    return reqs[0]


def assert_failed(data, provider, pattern=None):
    assert data["message"] == "OK", data
    d = data["data"]
    assert set(d) == {"valid", "provider", "error"}, d
    assert d["valid"] is False and d["provider"] == provider, d
    assert isinstance(d["error"], str) and d["error"], d
    if pattern is not None:
        assert pattern.search(d["error"]), d


# ---------------------------------------------------------------- valid and rejected keys

@pytest.mark.parametrize("provider", PROVIDERS)
def test_valid_key(svc, tokens, db, fake_llm, provider):
    key_id, key = create(svc, tokens.admin1, provider)
    row_before = db.one("SELECT * FROM %s WHERE id = %%s" % llm_table(1), (key_id,))
    st, data = verify(svc, tokens.admin1, key_id)
    assert st == 200, data
    assert data == {"message": "OK", "data": {"valid": True, "provider": provider}}
    fake = fake_llm.by_name(provider)
    r = only_request(fake, key)
    assert r.method == "GET"
    assert r.path == PATHS[provider]
    assert "integrationsd" in (r.headers.get("User-Agent") or ""), r.headers
    if provider == "Anthropic":
        assert r.headers.get("x-api-key") == key
        assert r.headers.get("anthropic-version") == "2023-06-01"
        assert key not in (r.headers.get("Authorization") or "")
    else:
        assert r.headers.get("Authorization") == "Bearer " + key
        assert "x-api-key" not in r.headers
    # the other providers never see this key
    for other in fake_llm.all():
        if other is not fake:
            assert other.requests_with(key) == []
    # verification changes nothing stored
    assert db.one("SELECT * FROM %s WHERE id = %%s" % llm_table(1), (key_id,)) == row_before


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rejected_key(svc, tokens, fake_llm, provider):
    key_id, key = create(svc, tokens.admin1, provider, marker="bad")  # no marker: 401 from the fake
    st, data = verify(svc, tokens.admin1, key_id)
    assert st == 200, data
    assert_failed(data, provider)
    assert "401" in data["data"]["error"], data
    only_request(fake_llm.by_name(provider), key)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_server_error(svc, tokens, provider):
    key_id, _ = create(svc, tokens.admin1, provider, marker="E500")
    st, data = verify(svc, tokens.admin1, key_id)
    assert st == 200, data
    assert_failed(data, provider)
    assert "500" in data["data"]["error"], data


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("marker", ["RESET", "CLOSE"])
def test_connection_dropped(svc, tokens, provider, marker):
    key_id, _ = create(svc, tokens.admin1, provider, marker=marker)
    t0 = time.monotonic()
    st, data = verify(svc, tokens.admin1, key_id)
    assert st == 200, data
    assert_failed(data, provider, RESET_RE)
    assert time.monotonic() - t0 < 5
    assert svc.req("GET", "/healthz")[0] == 200


def test_huge_response(svc, tokens):
    key_id, _ = create(svc, tokens.admin1, "Anthropic", marker="HUGE")
    st, data = verify(svc, tokens.admin1, key_id)
    assert st == 200, data
    assert_failed(data, "Anthropic", TOO_LARGE_RE)
    assert svc.alive()


def test_timeouts_for_every_provider_at_once(svc, tokens, fake_llm):
    """Each fake answers after 12 s; the service's 10 s LLM timeout ends all three, in parallel."""
    ids = {p: create(svc, tokens.admin1, p, marker="SLOW12") for p in PROVIDERS}
    out = {}

    def run(p):
        t0 = time.monotonic()
        out[p] = (verify(svc, tokens.admin1, ids[p][0]), time.monotonic() - t0)

    threads = [threading.Thread(target=run, args=(p,)) for p in PROVIDERS]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    total = time.monotonic() - t0
    for p in PROVIDERS:
        (st, data), elapsed = out[p]
        assert st == 200, data
        assert_failed(data, p, TIMEOUT_RE)
        assert 2 < elapsed < 15, (p, elapsed)
        only_request(fake_llm.by_name(p), ids[p][1])
    assert total < 16, "the three checks were not concurrent (%.1f s)" % total


# ---------------------------------------------------------------- stored forms

def test_verify_uses_the_current_key_after_patch(svc, tokens, fake_llm):
    key_id, old = create(svc, tokens.admin1, "OpenAI", marker="bad")
    new = new_llm_key("OpenAI")
    st, _, data = svc.req("PATCH", "/api/llm-keys/%d" % key_id, token=tokens.admin1, body={"key": new})
    assert st == 200, data
    st, data = verify(svc, tokens.admin1, key_id)
    assert data == {"message": "OK", "data": {"valid": True, "provider": "OpenAI"}}
    assert only_request(fake_llm.openai, new).headers.get("Authorization") == "Bearer " + new
    assert fake_llm.openai.requests_with(old) == []


def test_legacy_plaintext_row_is_verified(svc, tokens, db, fake_llm):
    """Rows VerifyWise wrote (plaintext key, no fingerprint) are still read."""
    create(svc, tokens.admin1, "OpenRouter")  # makes sure the tenant table exists
    key = new_llm_key("OpenRouter")
    row = db.one("INSERT INTO %s (key, name, url, model) VALUES (%%s, 'OpenRouter', "
                 "'https://openrouter.ai/api/v1/', 'm') RETURNING id" % llm_table(1), (key,))
    try:
        st, data = verify(svc, tokens.admin1, row["id"])
        assert data == {"message": "OK", "data": {"valid": True, "provider": "OpenRouter"}}
        assert only_request(fake_llm.openrouter, key).headers.get("Authorization") == "Bearer " + key
    finally:
        db.execute("DELETE FROM %s WHERE id = %%s" % llm_table(1), (row["id"],))


# ---------------------------------------------------------------- roles, tenants, ids

@pytest.mark.parametrize("who", ["editor1", "reviewer1", "auditor1", "admin2"])
def test_any_role_may_verify(svc, tokens, who):
    tok = getattr(tokens, who)
    key_id, _ = create(svc, tok, "Anthropic")
    st, data = verify(svc, tok, key_id)
    assert st == 200, data
    assert data["data"] == {"valid": True, "provider": "Anthropic"}


def test_another_tenants_key_is_404(svc, tokens, db, fake_llm):
    org2_ids = {r["id"] for r in db.llm_rows(2)}
    key_id = key = None
    for _ in range(50):
        i, k = create(svc, tokens.admin1, "OpenAI")
        if i not in org2_ids:
            key_id, key = i, k
            break
    assert key_id is not None
    st, data = verify(svc, tokens.admin2, key_id)
    assert (st, data) == (404, NOT_FOUND)
    time.sleep(0.2)
    assert fake_llm.openai.requests_with(key) == []


def test_unknown_id_is_404(svc, tokens, fake_llm):
    n = sum(len(f.requests) for f in fake_llm.all())
    st, data = verify(svc, tokens.admin1, 2147483647)
    assert (st, data) == (404, NOT_FOUND)
    # a tenant that has never stored a key
    st, data = verify(svc, tokens.admin10, 1)
    assert (st, data) == (404, NOT_FOUND)
    assert sum(len(f.requests) for f in fake_llm.all()) == n


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_non_numeric_id_is_400(svc, tokens, bad_id):
    st, data = verify(svc, tokens.admin1, bad_id)
    assert st == 400, data
    assert data == {"message": "Bad Request", "data": INVALID_ID}


def test_requires_a_jwt(svc, tokens):
    key_id, key = create(svc, tokens.admin1, "OpenAI")
    st, _, data = svc.req("POST", "/api/llm-keys/%d/verify" % key_id)
    assert (st, data) == (400, NO_JWT)


def test_wrong_method_is_405(svc, tokens):
    key_id, _ = create(svc, tokens.admin1, "OpenAI")
    st, headers, data = svc.req("GET", "/api/llm-keys/%d/verify" % key_id, token=tokens.admin1)
    assert st == 405, data
    assert data == {"message": "Method Not Allowed", "data": "Method not allowed"}
    assert "POST" in (headers.get("Allow") or "")


# ---------------------------------------------------------------- SSRF deny list

def test_denied_cidr_is_refused_without_a_request(service, tokens, extra_fakes):
    far = extra_fakes(FakeLLM, host="127.0.0.2")
    # the addresses are reachable: a refusal below is the deny list, not a dead address
    conn = http.client.HTTPConnection("127.0.0.2", far.openai.port, timeout=5)
    conn.request("GET", "/v1/models")
    assert conn.getresponse().status == 401
    conn.close()
    far.clear()

    s = service(OUTBOUND_DENY_CIDRS="169.254.0.0/16,127.0.0.2/32", **far.env())
    keys = []
    for p in PROVIDERS:
        key_id, key = create(s, tokens.admin1, p)
        keys.append(key)
        st, data = verify(s, tokens.admin1, key_id)
        assert st == 200, data
        assert_failed(data, p, DENIED_RE)
    time.sleep(0.3)
    for f in far.all():
        assert f.requests == [], f.requests
    problems = s.stop()
    assert not problems, problems
    text = s.log_text()
    for k in keys:
        assert k not in text


def test_denied_after_dns_resolution(service, tokens, fake_llm):
    """localhost resolves to a denied loopback address: refused, nothing reaches the fake."""
    env = fake_llm.env()
    env["OPENAI_API_URL"] = "http://localhost:%d/v1" % fake_llm.openai.port
    s = service(OUTBOUND_DENY_CIDRS="127.0.0.0/8,::1/128", **env)
    key_id, key = create(s, tokens.admin1, "OpenAI")
    st, data = verify(s, tokens.admin1, key_id)
    assert st == 200, data
    assert_failed(data, "OpenAI", DENIED_RE)
    time.sleep(0.3)
    assert fake_llm.openai.requests_with(key) == []


# ---------------------------------------------------------------- log hygiene (runs last)

def test_zz_no_key_in_the_log(svc, tokens):
    key_id, _ = create(svc, tokens.admin1, "Anthropic")
    verify(svc, tokens.admin1, key_id)
    problems = svc.stop()
    assert not problems, "%s\n%s" % (problems, svc.describe())
    text = svc.log_text()
    assert text.strip(), "the service wrote no log at all"
    for secret, what in ((JWT_SECRET, "JWT_SECRET"), (ENCRYPTION_KEY, "ENCRYPTION_KEY"),
                         (ENCRYPTION_PASSWORD, "ENCRYPTION_PASSWORD")):
        assert secret not in text, "log contains " + what
    for k in SEEN_KEYS:
        assert k not in text, "log contains a plaintext LLM key"
    for tok in SEEN_TOKENS:
        assert tok not in text, "log contains a JWT"
