# GitHub token integration (/api/integrations/github/*; contract 1.2, 3.4, 4.2, 6 and the
# fixes of 9 item 15; external-apis 2) against the fake GitHub of tests/fakes/github.py:
# Admin-only access, the status object, format validation messages, trimmed scheme B
# storage (decrypted here with openssl), one row per tenant even under concurrent saves,
# token_name kept on update, DELETE, POST /token/test (request headers sent upstream,
# valid/scopes/rate_limit, bad credentials, permissions vs rate-limit 403, 5xx, reset,
# close, huge body, timeout, stored token and last_used_at), tenant isolation, malformed
# bodies, the SSRF deny list, and the token never appearing in a response or the log.
import contextlib
import datetime
import http.client
import json
import re
import threading
import time

import pytest

from conftest import (ENCRYPTION_KEY, ENCRYPTION_PASSWORD, JWT_SECRET, SEEN_GITHUB_TOKENS, SEEN_TOKENS,
                      FakeGitHub, http_request, legacy_token, new_gh_token, remember_gh_token, scheme_b_decrypt,
                      scheme_b_encrypt, tenant_hash)
from fakes.github import RATE_LIMIT, RATE_REMAINING, RATE_RESET_ISO, SCOPES_LIST

BASE = "/api/integrations/github"
TOKEN = BASE + "/token"
TEST = BASE + "/token/test"

DEFAULT_NAME = "GitHub Personal Access Token"
REQUIRED = "Token is required"
EMPTY = "Token cannot be empty"
CLASSIC_SHORT = "Classic personal access token appears to be too short"
FINE_SHORT = "Fine-grained personal access token appears to be too short"
UNRECOGNIZED = ("Token format not recognized. GitHub tokens typically start with 'ghp_' (classic) or "
                "'github_pat_' (fine-grained)")
TOO_LONG = "Token must be at most 255 characters"
NAME_TOO_LONG = "Token name must be at most 100 characters"
NAME_NOT_STRING = "Token name must be a string"
INVALID_TOKEN = "Invalid or expired token"
NO_PERMISSIONS = "Token does not have required permissions"
ACCESS_DENIED = {"message": "Access denied"}
NOT_FOUND = {"message": "Not Found", "data": "No GitHub token found"}
DELETED = {"message": "OK", "data": {"message": "GitHub token deleted successfully"}}
NO_JWT = {"message": "Bad Request", "data": {"message": "Token not found"}}
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ROW_RE = re.compile(r"^[0-9a-f]{32}:[0-9a-f]+$")

TIMEOUT_RE = re.compile(r"(?i)timed?[ -]?out")
RESET_RE = re.compile(r"(?i)reset|closed|connection|empty")
TOO_LARGE_RE = re.compile(r"(?i)too large|too big|exceed|size")
DENIED_RE = re.compile(r"(?i)not allowed")
RATE_LIMITED_RE = re.compile(r"(?i)rate limit")


def bad_request(msg):
    return {"message": "Bad Request", "data": msg}


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def svc(module_service, fake_github):
    """The module's service, talking to the fake GitHub."""
    return module_service(GITHUB_API_URL=fake_github.url)


def assert_no_token(data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else json.dumps(data)
    for t in SEEN_GITHUB_TOKENS:
        assert t not in text, "a GitHub token appears in a response: %s" % text[:300]


def call(svc, method, path, token=None, body=None, raw_body=None, timeout=20):
    st, headers, data = svc.req(method, path, body=body, token=token, raw_body=raw_body, timeout=timeout)
    assert_no_token(data)
    return st, headers, data


def gh_table(org):
    return '"%s".github_tokens' % tenant_hash(org)


def gh_rows(db, org):
    if not db.table_exists(gh_table(org)):
        return []
    return db.rows("SELECT * FROM %s ORDER BY id" % gh_table(org))


def wipe(svc, admin):
    st, _, data = call(svc, "DELETE", TOKEN, admin)
    assert st in (200, 404), data


def save(svc, admin, token, name=None):
    body = {"token": token}
    if name is not None:
        body["token_name"] = name
    st, _, data = call(svc, "POST", TOKEN, admin, body=body)
    assert st == 201, data
    return data["data"]


def try_token(svc, admin, token=None, body=None, raw_body=None):
    if body is None and raw_body is None:
        body = {} if token is None else {"token": token}
    return call(svc, "POST", TEST, admin, body=body, raw_body=raw_body)



def only_request(fake, token, timeout=3.0):
    reqs = fake.wait_for_requests(1, timeout=timeout, secret=token)
    assert len(reqs) == 1, "expected exactly one upstream request carrying the token, got %r" % reqs
    return reqs[0]


def iso_to_dt(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def assert_status_object(obj, name=DEFAULT_NAME, last_used=False):
    keys = {"configured", "token_name", "created_at"} | ({"last_used_at"} if last_used else set())
    assert set(obj) == keys, obj
    assert obj["configured"] is True
    assert obj["token_name"] == name
    assert ISO_MS_Z.match(obj["created_at"]), obj
    if last_used:
        assert ISO_MS_Z.match(obj["last_used_at"]), obj


def snapshot(db, org):
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in gh_rows(db, org)]


# ---------------------------------------------------------------- authentication and roles

ROUTES = [("GET", TOKEN), ("POST", TOKEN), ("DELETE", TOKEN), ("POST", TEST)]


def test_routes_require_a_jwt(svc, fake_github):
    tok = new_gh_token()
    for method, path in ROUTES:
        st, _, data = call(svc, method, path, body={"token": tok} if method == "POST" else None)
        assert (st, data) == (400, NO_JWT), (method, path)
    assert fake_github.requests_with(tok) == []


@pytest.mark.parametrize("who", ["editor1", "reviewer1", "auditor1"])
def test_non_admins_get_access_denied(svc, tokens, db, fake_github, who):
    save(svc, tokens.admin1, new_gh_token())
    before = snapshot(db, 1)
    tok = new_gh_token()
    for method, path in ROUTES:
        st, _, data = call(svc, method, path, getattr(tokens, who),
                           body={"token": tok, "token_name": "x"} if method == "POST" else None)
        assert st == 403, (method, path, data)
        assert data == ACCESS_DENIED, (method, path)
    # stored-token test as well (no body)
    st, _, data = call(svc, "POST", TEST, getattr(tokens, who), body={})
    assert (st, data) == (403, ACCESS_DENIED)
    assert snapshot(db, 1) == before
    time.sleep(0.2)
    assert fake_github.requests_with(tok) == []


def test_wrong_methods_are_405(svc, tokens):
    st, headers, data = call(svc, "PUT", TOKEN, tokens.admin1, body={})
    assert st == 405, data
    assert data == {"message": "Method Not Allowed", "data": "Method not allowed"}
    allow = {a.strip() for a in (headers.get("Allow") or "").split(",")}
    assert {"GET", "POST", "DELETE"} <= allow, headers.get("Allow")
    st, headers, data = call(svc, "GET", TEST, tokens.admin1)
    assert st == 405, data
    assert "POST" in (headers.get("Allow") or "")


def test_unknown_github_path_is_404(svc, tokens):
    st, _, data = call(svc, "GET", BASE + "/nope", tokens.admin1)
    assert st == 404
    assert data == {"message": "Not Found", "data": "Cannot GET %s/nope" % BASE}


# ---------------------------------------------------------------- GET / POST / DELETE

def test_status_when_not_configured(svc, tokens):
    wipe(svc, tokens.admin2)
    st, _, data = call(svc, "GET", TOKEN, tokens.admin2)
    assert st == 200
    assert data == {"message": "OK", "data": {"configured": False}}


def test_save_get_delete_lifecycle(svc, tokens, db):
    wipe(svc, tokens.admin1)
    tok = new_gh_token()
    st, _, data = call(svc, "POST", TOKEN, tokens.admin1, body={"token": tok})
    assert st == 201, data
    assert data["message"] == "Created"
    assert_status_object(data["data"])
    created = iso_to_dt(data["data"]["created_at"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 300

    st, _, got = call(svc, "GET", TOKEN, tokens.admin1)
    assert st == 200
    assert got == {"message": "OK", "data": data["data"]}

    rows = gh_rows(db, 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["created_by"] == 1
    assert row["token_name"] == DEFAULT_NAME
    assert row["last_used_at"] is None
    assert ROW_RE.match(row["encrypted_token"]), row["encrypted_token"]
    assert tok not in json.dumps({k: str(v) for k, v in row.items()})
    assert scheme_b_decrypt(row["encrypted_token"]) == tok

    st, _, data = call(svc, "DELETE", TOKEN, tokens.admin1)
    assert (st, data) == (200, DELETED)
    assert gh_rows(db, 1) == []
    st, _, data = call(svc, "GET", TOKEN, tokens.admin1)
    assert data == {"message": "OK", "data": {"configured": False}}
    st, _, data = call(svc, "DELETE", TOKEN, tokens.admin1)
    assert (st, data) == (404, NOT_FOUND)


def test_stored_token_is_trimmed(svc, tokens, db, fake_github):
    wipe(svc, tokens.admin1)
    tok = new_gh_token()
    save(svc, tokens.admin1, "  \t" + tok + " \r\n")
    rows = gh_rows(db, 1)
    assert len(rows) == 1
    assert scheme_b_decrypt(rows[0]["encrypted_token"]) == tok
    st, _, data = try_token(svc, tokens.admin1)
    assert st == 200 and data["data"]["valid"] is True, data
    assert only_request(fake_github, tok).headers.get("Authorization") == "Bearer " + tok


def test_delete_removes_every_row(svc, tokens, db):
    save(svc, tokens.admin1, new_gh_token())
    # rows a racing Node backend could have left behind
    db.execute("INSERT INTO %s (encrypted_token, token_name, created_by) VALUES (%%s, 'old', 1), (%%s, 'older', 1)"
               % gh_table(1), (scheme_b_encrypt(remember_gh_token(new_gh_token())),
                               scheme_b_encrypt(remember_gh_token(new_gh_token()))))
    assert len(gh_rows(db, 1)) == 3
    st, _, data = call(svc, "DELETE", TOKEN, tokens.admin1)
    assert (st, data) == (200, DELETED)
    assert gh_rows(db, 1) == []


def test_several_saves_keep_one_row_and_created_at(svc, tokens, db):
    wipe(svc, tokens.admin1)
    first = save(svc, tokens.admin1, new_gh_token())
    last = None
    for _ in range(3):
        time.sleep(0.01)
        last = new_gh_token()
        obj = save(svc, tokens.admin1, last)
        assert obj["created_at"] == first["created_at"]
    rows = gh_rows(db, 1)
    assert len(rows) == 1
    assert scheme_b_decrypt(rows[0]["encrypted_token"]) == last
    assert rows[0]["updated_at"] >= rows[0]["created_at"]


def test_update_without_token_name_keeps_it(svc, tokens, db):
    wipe(svc, tokens.admin1)
    assert save(svc, tokens.admin1, new_gh_token(), name="CI scanner")["token_name"] == "CI scanner"
    obj = save(svc, tokens.admin1, new_gh_token())
    assert obj["token_name"] == "CI scanner"
    assert gh_rows(db, 1)[0]["token_name"] == "CI scanner"
    assert save(svc, tokens.admin1, new_gh_token(), name="Renamed")["token_name"] == "Renamed"
    st, _, data = call(svc, "GET", TOKEN, tokens.admin1)
    assert data["data"]["token_name"] == "Renamed"


def test_token_name_of_100_characters_is_accepted(svc, tokens, db):
    name = "n" * 99 + "\u00e9"  # 100 characters, 101 bytes
    assert save(svc, tokens.admin1, new_gh_token(), name=name)["token_name"] == name
    assert gh_rows(db, 1)[0]["token_name"] == name


def _post_save(port, admin, tok, out, i, barrier):
    try:
        barrier.wait(10)  # all ten requests leave together
        out[i] = http_request(port, "POST", TOKEN, body={"token": tok}, token=admin, timeout=20)
    except Exception as e:  # reported by the test
        out[i] = e


def test_concurrent_saves_leave_exactly_one_row(svc, tokens, db):
    for round_ in range(2):  # first round races on the insert, second on the update
        if round_ == 0:
            wipe(svc, tokens.admin1)
        toks = [new_gh_token() for _ in range(10)]
        out = [None] * len(toks)
        barrier = threading.Barrier(len(toks))
        threads = [threading.Thread(target=_post_save, args=(svc.port, tokens.admin1, t, out, i, barrier))
                   for i, t in enumerate(toks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in out:
            assert not isinstance(r, Exception), r
            assert r[0] == 201, r
            assert_no_token(r[2])
        rows = gh_rows(db, 1)
        assert len(rows) == 1, "round %d left %d rows" % (round_, len(rows))
        assert scheme_b_decrypt(rows[0]["encrypted_token"]) in toks


# ---------------------------------------------------------------- format validation

def _accepted():
    lower40 = legacy_token()
    return [
        ("ghp_40", new_gh_token("VALID")),
        ("gho_40", new_gh_token("VALID", "gho_")),
        ("ghu_40", new_gh_token("VALID", "ghu_")),
        ("ghs_40", new_gh_token("VALID", "ghs_")),
        ("ghr_40", new_gh_token("VALID", "ghr_")),
        ("ghp_41", new_gh_token("VALID", length=41)),
        ("github_pat_93", new_gh_token("VALID", "github_pat_")),
        ("github_pat_30", new_gh_token("VALID", "github_pat_", length=30)),
        ("github_pat_255", new_gh_token("VALID", "github_pat_", length=255)),
        ("legacy_hex_lower", remember_gh_token(lower40)),
        ("legacy_hex_upper", remember_gh_token(legacy_token().upper())),
    ]


ACCEPTED = _accepted()


@pytest.mark.parametrize("tok", [t for _, t in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_accepted_token_formats(svc, tokens, db, tok):
    obj = save(svc, tokens.admin1, tok)
    assert obj["configured"] is True
    rows = gh_rows(db, 1)
    assert len(rows) == 1
    assert scheme_b_decrypt(rows[0]["encrypted_token"]) == tok


def _rejected():
    valid = new_gh_token()
    return [
        ("no_token", {}, REQUIRED),
        ("empty", {"token": ""}, REQUIRED),
        ("null", {"token": None}, REQUIRED),
        ("number", {"token": 12345}, REQUIRED),
        ("true", {"token": True}, REQUIRED),
        ("false", {"token": False}, REQUIRED),
        ("array", {"token": [valid]}, REQUIRED),
        ("object", {"token": {"token": valid}}, REQUIRED),
        ("blank", {"token": "   \t\n"}, EMPTY),
        ("ghp_39", {"token": remember_gh_token(valid[:39])}, CLASSIC_SHORT),
        ("ghp_only", {"token": "ghp_"}, CLASSIC_SHORT),
        ("github_pat_29", {"token": remember_gh_token(new_gh_token("VALID", "github_pat_", length=29))}, FINE_SHORT),
        ("slack", {"token": "xoxb-1234567890-1234567890123-abcdefghijklmnopqrstuvwx"}, UNRECOGNIZED),
        ("ghx_", {"token": "ghx_" + "a" * 36}, UNRECOGNIZED),
        ("GHP_upper_prefix", {"token": "GHP_" + "a" * 36}, UNRECOGNIZED),
        ("hex_39", {"token": "a" * 39}, UNRECOGNIZED),
        ("hex_41", {"token": "a" * 41}, UNRECOGNIZED),
        ("not_hex_40", {"token": "g" * 40}, UNRECOGNIZED),
        ("ghp_256", {"token": remember_gh_token(new_gh_token("VALID", length=256))}, TOO_LONG),
        ("ghp_1000", {"token": remember_gh_token(new_gh_token("VALID", length=1000))}, TOO_LONG),
        ("name_101", {"token": valid, "token_name": "n" * 101}, NAME_TOO_LONG),
        ("name_number", {"token": valid, "token_name": 7}, NAME_NOT_STRING),
        ("name_array", {"token": valid, "token_name": ["a"]}, NAME_NOT_STRING),
    ]


REJECTED = _rejected()


@pytest.mark.parametrize("body,message", [(b, m) for _, b, m in REJECTED], ids=[n for n, _, _ in REJECTED])
def test_invalid_saves_are_400_and_change_nothing(svc, tokens, db, body, message):
    save(svc, tokens.admin1, new_gh_token(), name="Before")
    before = snapshot(db, 1)
    st, _, data = call(svc, "POST", TOKEN, tokens.admin1, body=body)
    assert st == 400, data
    assert data == bad_request(message)
    assert snapshot(db, 1) == before


@pytest.mark.parametrize("path", [TOKEN, TEST])
@pytest.mark.parametrize("raw,message", [
    (b'{"token":', "Invalid JSON body"),
    (b"not json", "Invalid JSON body"),
    (b'{"token":"ghp_\xff\xfe"}', "Invalid JSON body"),
    (b'["ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]', "Request body must be a JSON object"),
    (b'"ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"', "Request body must be a JSON object"),
], ids=["truncated", "garbage", "bad_utf8", "array", "string"])
def test_malformed_bodies_are_400(svc, tokens, db, fake_github, path, raw, message):
    before = snapshot(db, 1)
    n = len(fake_github.requests)
    st, _, data = call(svc, "POST", path, tokens.admin1, raw_body=raw)
    assert st == 400, data
    assert data == bad_request(message)
    assert snapshot(db, 1) == before
    assert len(fake_github.requests) == n


# ---------------------------------------------------------------- POST /token/test

def test_test_valid_classic_token(svc, tokens, db, fake_github):
    before = snapshot(db, 1)
    tok = new_gh_token()
    st, _, data = try_token(svc, tokens.admin1, tok)
    assert st == 200, data
    assert data == {"message": "OK", "data": {
        "valid": True, "scopes": SCOPES_LIST,
        "rate_limit": {"limit": RATE_LIMIT, "remaining": RATE_REMAINING, "reset": RATE_RESET_ISO}}}
    r = only_request(fake_github, tok)
    assert r.method == "GET"
    assert r.path == "/user"
    assert r.headers.get("Authorization") == "Bearer " + tok
    assert r.headers.get("Accept") == "application/vnd.github+json"
    assert "integrationsd" in (r.headers.get("User-Agent") or ""), r.headers
    assert r.headers.get("X-GitHub-Api-Version") == "2022-11-28"
    assert len(r.headers.get_all("Authorization")) == 1
    assert r.body == b""
    # testing an explicit token neither stores it nor touches the stored row
    assert snapshot(db, 1) == before


@pytest.mark.parametrize("prefix,scopes", [("github_pat_", []), ("ghu_", []), ("ghs_", []), ("gho_", SCOPES_LIST)])
def test_test_scopes_by_token_kind(svc, tokens, fake_github, prefix, scopes):
    tok = new_gh_token("VALID", prefix)
    st, _, data = try_token(svc, tokens.admin1, tok)
    assert st == 200, data
    assert data["data"] == {"valid": True, "scopes": scopes,
                            "rate_limit": {"limit": RATE_LIMIT, "remaining": RATE_REMAINING,
                                           "reset": RATE_RESET_ISO}}
    only_request(fake_github, tok)


def test_test_legacy_hex_token(svc, tokens, fake_github):
    tok = remember_gh_token(legacy_token())
    fake_github.register(tok, "VALID")
    st, _, data = try_token(svc, tokens.admin1, tok)
    assert st == 200 and data["data"]["valid"] is True, data
    assert data["data"]["scopes"] == SCOPES_LIST
    assert only_request(fake_github, tok).headers.get("Authorization") == "Bearer " + tok


def test_test_empty_scopes_header_is_empty_list(svc, tokens):
    st, _, data = try_token(svc, tokens.admin1, new_gh_token("EMPTYSCOPES"))
    assert st == 200, data
    assert data["data"]["valid"] is True
    assert data["data"]["scopes"] == []


def test_test_rate_limit_defaults_without_headers(svc, tokens):
    st, _, data = try_token(svc, tokens.admin1, new_gh_token("NORATE"))
    assert st == 200, data
    d = data["data"]
    assert d["valid"] is True and d["scopes"] == SCOPES_LIST
    assert set(d["rate_limit"]) == {"limit", "remaining", "reset"}
    assert d["rate_limit"]["limit"] == 5000 and d["rate_limit"]["remaining"] == 5000
    assert ISO_MS_Z.match(d["rate_limit"]["reset"]), d
    delta = (iso_to_dt(d["rate_limit"]["reset"]) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert abs(delta) < 120, d


def test_test_bad_credentials(svc, tokens, fake_github):
    tok = new_gh_token("bad")  # no marker: the fake answers 401 Bad credentials
    st, _, data = try_token(svc, tokens.admin1, tok)
    assert st == 200, data
    assert data == {"message": "OK", "data": {"valid": False, "error": INVALID_TOKEN}}
    only_request(fake_github, tok)  # no retry after a 401 (GitHub locks out repeated failures)


def test_test_permissions_403_vs_rate_limit_403(svc, tokens):
    st, _, data = try_token(svc, tokens.admin1, new_gh_token("FORBIDDEN"))
    assert st == 200, data
    assert data["data"] == {"valid": False, "error": NO_PERMISSIONS}
    st, _, data = try_token(svc, tokens.admin1, new_gh_token("RATELIMIT"))
    assert st == 200, data
    assert set(data["data"]) == {"valid", "error"}, data
    assert data["data"]["valid"] is False
    err = data["data"]["error"]
    assert err != NO_PERMISSIONS
    assert RATE_LIMITED_RE.search(err), err


def test_test_server_error(svc, tokens):
    st, _, data = try_token(svc, tokens.admin1, new_gh_token("E500"))
    assert st == 200, data
    assert data["data"] == {"valid": False, "error": "GitHub API error: 500 Internal Server Error"}


@pytest.mark.parametrize("marker", ["RESET", "CLOSE"])
def test_test_connection_dropped(svc, tokens, marker):
    t0 = time.monotonic()
    st, _, data = try_token(svc, tokens.admin1, new_gh_token(marker))
    assert st == 200, data
    assert set(data["data"]) == {"valid", "error"}, data
    assert data["data"]["valid"] is False
    assert RESET_RE.search(data["data"]["error"]), data
    assert time.monotonic() - t0 < 5
    assert svc.req("GET", "/healthz")[0] == 200


def test_test_huge_response(svc, tokens):
    st, _, data = try_token(svc, tokens.admin1, new_gh_token("HUGE"))
    assert st == 200, data
    assert set(data["data"]) == {"valid", "error"}, data
    assert data["data"]["valid"] is False
    assert TOO_LARGE_RE.search(data["data"]["error"]), data
    assert svc.alive()
    assert svc.req("GET", "/healthz")[0] == 200


def test_test_timeout(svc, tokens, fake_github):
    """The fake answers after 12 s; the service's GitHub timeout (10 s) must end it first."""
    tok = new_gh_token("SLOW12")
    t0 = time.monotonic()
    st, _, data = try_token(svc, tokens.admin1, tok)
    elapsed = time.monotonic() - t0
    assert st == 200, data
    assert set(data["data"]) == {"valid", "error"}, data
    assert data["data"]["valid"] is False
    assert TIMEOUT_RE.search(data["data"]["error"]), data
    assert 2 < elapsed < 15, elapsed
    only_request(fake_github, tok)


def test_slow_upstream_does_not_block_other_requests(svc, tokens):
    tok = new_gh_token("SLOWMS2000")
    out = {}

    def run():
        t0 = time.monotonic()
        out["res"] = try_token(svc, tokens.admin1, tok)
        out["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert svc.req("GET", "/healthz")[0] == 200
    st, _, data = call(svc, "GET", TOKEN, tokens.admin1)
    assert st == 200, data
    assert time.monotonic() - t0 < 1.0
    th.join(20)
    st, _, data = out["res"]
    assert st == 200 and data["data"]["valid"] is True, data
    assert out["elapsed"] >= 1.9


def test_concurrent_tests_run_in_parallel(svc, tokens):
    toks = [new_gh_token("SLOWMS1000") for _ in range(20)]
    out = [None] * len(toks)

    def run(i):
        out[i] = try_token(svc, tokens.admin1, toks[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(toks))]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    for r in out:
        assert r is not None and r[0] == 200 and r[2]["data"]["valid"] is True, r
    assert elapsed < 5, "20 upstream calls of 1 s took %.1f s: the outbound calls are serialized" % elapsed


@pytest.mark.parametrize("tok,message", [("", REQUIRED), (None, REQUIRED), (5, REQUIRED), (True, REQUIRED),
                                         ([], REQUIRED), ({}, REQUIRED), ("  ", EMPTY),
                                         ("ghp_short", CLASSIC_SHORT), ("xoxb-123", UNRECOGNIZED),
                                         ("ghp_" + "a" * 300, TOO_LONG)],
                         ids=["empty", "null", "number", "true", "array", "object", "blank", "short", "unknown",
                              "too_long"])
def test_test_invalid_token_is_400_without_upstream_call(svc, tokens, fake_github, tok, message):
    n = len(fake_github.requests)
    st, _, data = call(svc, "POST", TEST, tokens.admin1, body={"token": tok})
    assert st == 400, data
    assert data == bad_request(message)
    time.sleep(0.1)
    assert len(fake_github.requests) == n


def test_test_trims_the_token(svc, tokens, fake_github):
    tok = new_gh_token()
    st, _, data = try_token(svc, tokens.admin1, "\t " + tok + " \n")
    assert st == 200 and data["data"]["valid"] is True, data
    assert only_request(fake_github, tok).headers.get("Authorization") == "Bearer " + tok


def test_test_header_injection_is_impossible(svc, tokens, fake_github):
    tok = "ghp_" + "a" * 20 + "\r\nX-Injected: 1\r\n" + "b" * 16
    n = len(fake_github.requests)
    st, _, data = call(svc, "POST", TEST, tokens.admin1, body={"token": tok})
    assert st in (200, 400), data
    if st == 200:
        assert data["data"]["valid"] is False, data
    time.sleep(0.2)
    for r in fake_github.requests[n:]:
        assert "X-Injected" not in r.headers, r


def test_test_stored_token_updates_last_used_at(svc, tokens, db, fake_github):
    wipe(svc, tokens.admin1)
    tok = new_gh_token()
    save(svc, tokens.admin1, tok, name="Stored")
    assert gh_rows(db, 1)[0]["last_used_at"] is None
    st, _, data = try_token(svc, tokens.admin1)  # body {}
    assert st == 200, data
    assert data["data"] == {"valid": True, "scopes": SCOPES_LIST,
                            "rate_limit": {"limit": RATE_LIMIT, "remaining": RATE_REMAINING,
                                           "reset": RATE_RESET_ISO}}
    r = only_request(fake_github, tok)
    assert r.headers.get("Authorization") == "Bearer " + tok
    assert r.headers.get("X-GitHub-Api-Version") == "2022-11-28"
    row = gh_rows(db, 1)[0]
    assert row["last_used_at"] is not None
    age = (datetime.datetime.now(datetime.timezone.utc) - row["last_used_at"]).total_seconds()
    assert abs(age) < 300
    st, _, data = call(svc, "GET", TOKEN, tokens.admin1)
    assert_status_object(data["data"], name="Stored", last_used=True)
    # a request without any body tests the stored token too
    st, _, data = call(svc, "POST", TEST, tokens.admin1)
    assert st == 200 and data["data"]["valid"] is True, data
    assert len(fake_github.requests_with(tok)) == 2


@contextlib.contextmanager
def stored_token_test_behind_a_lock(svc, tokens, db, pg, fake_github):
    """A stored token tested (POST /token/test, {}) while another session holds its row
    (SELECT ... FOR UPDATE): yields (the locking connection, the thread that made the call,
    the dict that gets its answer as "r") once GitHub has been asked; the lock goes at exit."""
    wipe(svc, tokens.admin1)
    tok = new_gh_token()
    save(svc, tokens.admin1, tok, name="Stored")
    lock = pg.connect(db.dbname)
    lock.autocommit = False
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT id FROM %s FOR UPDATE" % gh_table(1))
        answer = {}
        t = threading.Thread(target=lambda: answer.update(r=try_token(svc, tokens.admin1)))
        t.start()
        only_request(fake_github, tok)  # GitHub has been asked
        yield lock, t, answer
    finally:
        lock.rollback()
        lock.close()


def test_test_stored_token_answers_once_last_used_at_is_recorded(svc, tokens, db, pg, fake_github):
    """The answer waits for the last_used_at UPDATE, so a status read right after it shows
    the use: with the row locked by another session the test is not answered until the
    lock goes, and then last_used_at is already set."""
    with stored_token_test_behind_a_lock(svc, tokens, db, pg, fake_github) as (_, t, answer):
        t.join(0.5)
        assert t.is_alive(), "answered while last_used_at could not be written yet: %r" % answer
        assert gh_rows(db, 1)[0]["last_used_at"] is None
    t.join(20)
    st, _, data = answer["r"]
    assert st == 200 and data["data"]["valid"] is True, data
    assert gh_rows(db, 1)[0]["last_used_at"] is not None
    st, _, data = call(svc, "GET", TOKEN, tokens.admin1)
    assert_status_object(data["data"], name="Stored", last_used=True)


def test_test_stored_token_when_the_database_goes_during_the_update(svc, tokens, db, pg, fake_github):
    """The database lost while last_used_at is being recorded: 503 "database unavailable",
    as for the MLflow test's record (the client tries again), nothing recorded; the next
    test is answered once the pool is back."""
    with stored_token_test_behind_a_lock(svc, tokens, db, pg, fake_github) as (lock, t, answer):
        killed, deadline = 0, time.monotonic() + 5
        while not killed and time.monotonic() < deadline:  # the UPDATE waits for the lock
            with lock.cursor() as cur:
                cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
                            " AND application_name = 'integrationsd' AND wait_event_type = 'Lock'",
                            (db.dbname,))
                killed = cur.fetchone()[0]
            time.sleep(0 if killed else 0.02)
        assert killed == 1, "the service's UPDATE never waited for the lock"
        t.join(10)
        assert not t.is_alive()
    st, _, data = answer["r"]
    assert st == 503 and data == {"message": "Service Unavailable", "error": "database unavailable"}, (st, data)
    assert gh_rows(db, 1)[0]["last_used_at"] is None
    deadline = time.monotonic() + 5
    while call(svc, "GET", TOKEN, tokens.admin1)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    st, _, data = try_token(svc, tokens.admin1)
    assert st == 200 and data["data"]["valid"] is True, data
    assert gh_rows(db, 1)[0]["last_used_at"] is not None


def test_test_stored_invalid_token(svc, tokens, fake_github):
    tok = new_gh_token("bad")
    save(svc, tokens.admin1, tok)
    st, _, data = try_token(svc, tokens.admin1)
    assert st == 200, data
    assert data["data"] == {"valid": False, "error": INVALID_TOKEN}
    only_request(fake_github, tok)


def test_test_without_stored_token_is_404(svc, tokens, fake_github):
    wipe(svc, tokens.admin2)
    n = len(fake_github.requests)
    st, _, data = try_token(svc, tokens.admin2)
    assert (st, data) == (404, NOT_FOUND)
    assert len(fake_github.requests) == n


def test_test_reads_a_row_written_by_node(svc, tokens, db, fake_github):
    """A scheme B value made by another implementation (openssl here) is read back."""
    save(svc, tokens.admin1, new_gh_token())
    tok = new_gh_token()
    db.execute("UPDATE %s SET encrypted_token = %%s" % gh_table(1), (scheme_b_encrypt(tok),))
    st, _, data = try_token(svc, tokens.admin1)
    assert st == 200 and data["data"]["valid"] is True, data
    assert only_request(fake_github, tok).headers.get("Authorization") == "Bearer " + tok


def test_test_undecryptable_stored_token_is_500(svc, tokens, db, fake_github):
    save(svc, tokens.admin2, new_gh_token())
    garbage = "00112233445566778899aabbccddeeff:0badc0de0badc0de0badc0de0badc0de"
    db.execute("UPDATE %s SET encrypted_token = %%s" % gh_table(2), (garbage,))
    n = len(fake_github.requests)
    st, _, data = try_token(svc, tokens.admin2)
    assert st == 500, data
    assert data["message"] == "Internal Server Error"
    assert isinstance(data.get("error"), str)
    assert garbage not in json.dumps(data) and ENCRYPTION_KEY not in json.dumps(data)
    assert len(fake_github.requests) == n
    assert svc.alive()
    st, _, data = call(svc, "GET", TOKEN, tokens.admin2)
    assert st == 200 and data["data"]["configured"] is True
    st, _, data = call(svc, "DELETE", TOKEN, tokens.admin2)
    assert (st, data) == (200, DELETED)


# ---------------------------------------------------------------- tenants

def test_tenants_are_isolated(svc, tokens, db, fake_github):
    tok1 = new_gh_token()
    save(svc, tokens.admin1, tok1, name="Org one")
    before1 = snapshot(db, 1)
    wipe(svc, tokens.admin2)
    st, _, data = call(svc, "GET", TOKEN, tokens.admin2)
    assert data == {"message": "OK", "data": {"configured": False}}
    st, _, data = call(svc, "DELETE", TOKEN, tokens.admin2)
    assert (st, data) == (404, NOT_FOUND)
    st, _, data = try_token(svc, tokens.admin2)
    assert (st, data) == (404, NOT_FOUND)
    assert fake_github.requests_with(tok1) == []
    tok2 = new_gh_token()
    save(svc, tokens.admin2, tok2, name="Org two")
    assert snapshot(db, 1) == before1
    rows2 = gh_rows(db, 2)
    assert len(rows2) == 1 and rows2[0]["created_by"] == 3
    assert scheme_b_decrypt(rows2[0]["encrypted_token"]) == tok2
    st, _, data = call(svc, "GET", TOKEN, tokens.admin1)
    assert data["data"]["token_name"] == "Org one"
    st, _, data = call(svc, "DELETE", TOKEN, tokens.admin2)
    assert (st, data) == (200, DELETED)
    assert snapshot(db, 1) == before1


# ---------------------------------------------------------------- SSRF deny list

def test_denied_cidr_is_refused_without_a_request(service, tokens, extra_fakes):
    far = extra_fakes(FakeGitHub, host="127.0.0.2")
    # the address is reachable: a refusal below is the deny list, not a dead address
    conn = http.client.HTTPConnection("127.0.0.2", far.port, timeout=5)
    conn.request("GET", "/user", headers={"User-Agent": "probe"})
    assert conn.getresponse().status == 401
    conn.close()
    far.clear()

    s = service(GITHUB_API_URL=far.url, OUTBOUND_DENY_CIDRS="169.254.0.0/16, 127.0.0.2/32")
    tok = new_gh_token()
    st, _, data = s.req("POST", TEST, body={"token": tok}, token=tokens.admin1, timeout=20)
    assert st == 200, data
    assert_no_token(data)
    assert set(data["data"]) == {"valid", "error"}, data
    assert data["data"]["valid"] is False
    assert DENIED_RE.search(data["data"]["error"]), data
    time.sleep(0.3)
    assert far.requests == [], far.requests
    problems = s.stop()
    assert not problems, problems
    assert tok not in s.log_text()


def test_denied_after_dns_resolution(service, tokens, fake_github):
    """The host name resolves to a denied address: refused, nothing reaches the fake."""
    s = service(GITHUB_API_URL="http://localhost:%d" % fake_github.port,
                OUTBOUND_DENY_CIDRS="127.0.0.0/8,::1/128")
    tok = new_gh_token()
    st, _, data = s.req("POST", TEST, body={"token": tok}, token=tokens.admin1, timeout=20)
    assert st == 200, data
    assert data["data"]["valid"] is False
    assert DENIED_RE.search(data["data"]["error"]), data
    time.sleep(0.3)
    assert fake_github.requests_with(tok) == []


# ---------------------------------------------------------------- log hygiene (runs last)

def test_zz_no_token_in_the_log(svc, tokens):
    save(svc, tokens.admin1, new_gh_token())
    problems = svc.stop()
    assert not problems, "%s\n%s" % (problems, svc.describe())
    text = svc.log_text()
    assert text.strip(), "the service wrote no log at all"
    for secret, what in ((JWT_SECRET, "JWT_SECRET"), (ENCRYPTION_KEY, "ENCRYPTION_KEY"),
                         (ENCRYPTION_PASSWORD, "ENCRYPTION_PASSWORD")):
        assert secret not in text, "log contains " + what
    for t in SEEN_GITHUB_TOKENS:
        assert t not in text, "log contains a GitHub token"
        if len(t) >= 40:
            assert t[4:36] not in text, "log contains most of a GitHub token"
    for tok in SEEN_TOKENS:
        assert tok not in text, "log contains a JWT"
