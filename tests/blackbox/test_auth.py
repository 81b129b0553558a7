# JWT middleware (contract section 2.2, step by step, plus SPEC section 3's differences):
# exact statuses and bodies for a missing token, bad signatures and algorithms, expiry (both
# `expire` in ms and standard `exp`), malformed claims, organisation membership, role, tenant
# format and tenant hash, the unchecked scheme word, and skipping the membership check when
# public.users does not exist. Probe endpoint: GET /api/llm-keys.
import time

import pytest

from conftest import OMIT, mint_jwt, now_ms, tenant_hash, token_for, token_payload

PROBE = "/api/llm-keys"

TOKEN_NOT_FOUND = {"message": "Bad Request", "data": {"message": "Token not found"}}
UNAUTHORIZED = {"message": "Unauthorized", "data": {"message": "Unauthorized **"}}
EXPIRED = {"message": "Not Acceptable", "data": {"message": "Token expired"}}
INVALID_TOKEN = {"message": "Invalid token"}
NOT_MEMBER = {"message": "User does not belong to this organization"}
NOT_ALLOWED = {"message": "Not allowed to access"}
BAD_TENANT = {"message": "Invalid tenant format"}


def probe(svc, auth=None):
    headers = {} if auth is None else {"Authorization": auth}
    return svc.req("GET", PROBE, headers=headers)


def assert_ok(st, data):
    assert st == 200, data
    assert data["message"] == "OK"
    assert isinstance(data["data"], list)


# ---------------------------------------------------------------- step 0: a valid token works

@pytest.mark.parametrize("user,org,role", [(1, 1, "Admin"), (2, 1, "Editor"), (4, 1, "Reviewer"),
                                           (6, 1, "Auditor"), (3, 2, "Admin")])
def test_valid_token_accepted(svc, user, org, role):
    st, _, data = probe(svc, "Bearer " + token_for(user, org, role))
    assert_ok(st, data)


# ---------------------------------------------------------------- step 1: token presence

@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer ", ""])
def test_missing_token_is_400(svc, auth):
    st, _, data = probe(svc, auth)
    assert st == 400
    assert data == TOKEN_NOT_FOUND


def test_scheme_word_is_not_checked(svc):
    st, _, data = probe(svc, "Foo " + token_for(1, 1))
    assert_ok(st, data)


def test_token_alone_without_scheme_is_token_not_found(svc):
    # The token is the *second* word: a bare token leaves the second word missing.
    st, _, data = probe(svc, token_for(1, 1))
    assert st == 400
    assert data == TOKEN_NOT_FOUND


# ---------------------------------------------------------------- step 2: signature and format

def _bad_tokens():
    good = token_payload(1, 1)
    h, p, s = token_for(1, 1).split(".")
    flipped = s[:-2] + ("AA" if s[-2:] != "AA" else "BB")
    return {
        "wrong_secret": mint_jwt(good, secret="not-the-secret"),
        "tampered_signature": ".".join([h, p, flipped]),
        "tampered_payload": ".".join([h, mint_jwt(token_payload(3, 1)).split(".")[1], s]),
        "garbage": "garbage",
        "garbage_three_parts": "!!!.@@@.###",
        "two_parts": h + "." + p,
        "four_parts": ".".join([h, p, s, s]),
        "empty_signature": h + "." + p + ".",
        "alg_none": mint_jwt(good, alg="none"),
        "alg_none_with_hs256_signature": mint_jwt(good, alg="HS256", header={"alg": "none", "typ": "JWT"}),
        "alg_hs512_same_secret": mint_jwt(good, alg="HS512"),
        "alg_hs384_same_secret": mint_jwt(good, alg="HS384"),
        "payload_not_json": mint_jwt(None, raw_payload=b"this is not json"),
        "payload_json_array": mint_jwt(None, raw_payload=b"[1,2,3]"),
        "header_not_json": "bm90IGpzb24." + p + "." + s,
        "no_expire": mint_jwt(token_payload(1, 1, expire=OMIT)),
    }


BAD = _bad_tokens()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_signature_or_format_is_401(svc, name):
    st, _, data = probe(svc, "Bearer " + BAD[name])
    assert st == 401, (name, data)
    assert data == UNAUTHORIZED


def test_bad_signature_checked_before_expiry(svc):
    tok = mint_jwt(token_payload(1, 1, expire_ms=now_ms() - 60000), secret="wrong")
    st, _, data = probe(svc, "Bearer " + tok)
    assert st == 401
    assert data == UNAUTHORIZED


# ---------------------------------------------------------------- step 3: expiry

def test_expire_in_the_past_is_406(svc):
    st, _, data = probe(svc, "Bearer " + token_for(1, 1, expire_ms=now_ms() - 1000))
    assert st == 406
    assert data == EXPIRED


def test_standard_exp_in_the_past_is_406(svc):
    tok = token_for(1, 1, exp=int(time.time()) - 60)  # valid `expire`, stale `exp` (seconds)
    st, _, data = probe(svc, "Bearer " + tok)
    assert st == 406
    assert data == EXPIRED


def test_standard_exp_in_the_future_is_accepted(svc):
    st, _, data = probe(svc, "Bearer " + token_for(1, 1, exp=int(time.time()) + 3600))
    assert_ok(st, data)


def test_expiry_checked_before_claims(svc):
    tok = token_for(OMIT, 1, expire_ms=now_ms() - 1000, roleName=OMIT)
    st, _, data = probe(svc, "Bearer " + tok)
    assert st == 406
    assert data == EXPIRED


# ---------------------------------------------------------------- step 4: id and roleName

@pytest.mark.parametrize("claims", [
    {"id": OMIT}, {"id": "1"}, {"id": 0}, {"id": -1}, {"id": None},
    {"roleName": OMIT}, {"roleName": 1}, {"roleName": None},
], ids=["id_missing", "id_string", "id_zero", "id_negative", "id_null",
        "role_missing", "role_number", "role_null"])
def test_bad_id_or_role_claim_is_invalid_token(svc, claims):
    payload = token_payload(1, 1)
    for k, v in claims.items():
        if v is OMIT:
            payload.pop(k)
        else:
            payload[k] = v
    st, _, data = probe(svc, "Bearer " + mint_jwt(payload))
    assert st == 400, data
    assert data == INVALID_TOKEN  # no envelope


def test_missing_organization_id_is_invalid_token(svc):
    st, _, data = probe(svc, "Bearer " + token_for(1, 1, organizationId=OMIT))
    assert st == 400, data
    assert data == INVALID_TOKEN


# ---------------------------------------------------------------- steps 5 and 6: membership, role

def test_user_of_another_org_is_403(svc):
    # user 3 belongs to org 2 but claims org 1 (with org 1's tenant hash)
    st, _, data = probe(svc, "Bearer " + token_for(3, 1, "Admin"))
    assert st == 403
    assert data == NOT_MEMBER


def test_unknown_user_is_403(svc):
    st, _, data = probe(svc, "Bearer " + token_for(99, 1, "Admin"))
    assert st == 403
    assert data == NOT_MEMBER


@pytest.mark.parametrize("user,claimed", [(2, "Admin"), (1, "admin"), (1, "Editor"), (4, "Admin"),
                                          (6, "Reviewer"), (1, "Admin ")])
def test_role_not_matching_users_role_is_403(svc, user, claimed):
    st, _, data = probe(svc, "Bearer " + token_for(user, 1, claimed))
    assert st == 403
    assert data == NOT_ALLOWED


def test_membership_checked_before_tenant_format(svc):
    st, _, data = probe(svc, "Bearer " + token_for(3, 1, "Admin", tenantId="abc"))
    assert st == 403
    assert data == NOT_MEMBER


def test_role_checked_before_tenant_format(svc):
    st, _, data = probe(svc, "Bearer " + token_for(2, 1, "Admin", tenantId="abc"))
    assert st == 403
    assert data == NOT_ALLOWED


# ---------------------------------------------------------------- steps 7 and 8: tenant

@pytest.mark.parametrize("tenant", ["abc", "a4ayc80OG!", "a4ayc80OGdX", "a4ayc80OG", "", 12345678901,
                                    OMIT], ids=["short", "punct", "eleven", "nine", "empty", "number",
                                                "missing"])
def test_bad_tenant_format_is_400(svc, tenant):
    st, _, data = probe(svc, "Bearer " + token_for(1, 1, tenantId=tenant))
    assert st == 400, data
    assert data == BAD_TENANT


def test_tenant_of_another_org_is_invalid_token(svc):
    st, _, data = probe(svc, "Bearer " + token_for(1, 1, tenantId=tenant_hash(2)))
    assert st == 400
    assert data == INVALID_TOKEN


def test_tenant_hash_case_matters(svc):
    st, _, data = probe(svc, "Bearer " + token_for(1, 1, tenantId=tenant_hash(1).swapcase()))
    assert st == 400
    assert data == INVALID_TOKEN


def test_auth_failures_carry_json_content_type(svc):
    for auth in (None, "Bearer " + BAD["garbage"], "Bearer " + token_for(1, 1, expire_ms=1)):
        st, headers, _ = probe(svc, auth)
        assert st in (400, 401, 406)
        assert headers.get("Content-Type") == "application/json; charset=utf-8"


# ---------------------------------------------------------------- without public.users

@pytest.fixture(scope="module")
def nousers_svc(module_service, nousers_db):
    return module_service(db=nousers_db)


def test_without_users_table_membership_is_skipped(nousers_svc):
    st, _, data = probe(nousers_svc, "Bearer " + token_for(99, 5, "Admin"))
    assert_ok(st, data)


def test_without_users_table_any_role_string_passes(nousers_svc):
    st, _, data = probe(nousers_svc, "Bearer " + token_for(98, 5, "Auditor"))
    assert_ok(st, data)


def test_without_users_table_other_checks_still_run(nousers_svc):
    st, _, data = probe(nousers_svc, "Bearer " + token_for(99, 5, tenantId=tenant_hash(1)))
    assert (st, data) == (400, INVALID_TOKEN)
    st, _, data = probe(nousers_svc, "Bearer " + token_for(99, 5, tenantId="abc"))
    assert (st, data) == (400, BAD_TENANT)
    st, _, data = probe(nousers_svc, "Bearer " + token_for(0, 5))
    assert (st, data) == (400, INVALID_TOKEN)
    st, _, data = probe(nousers_svc, "Bearer " + token_for(99, 5, expire_ms=now_ms() - 5))
    assert (st, data) == (406, EXPIRED)
    st, _, data = probe(nousers_svc, "Bearer " + mint_jwt(token_payload(99, 5), secret="nope"))
    assert (st, data) == (401, UNAUTHORIZED)


# ---------------------------------------------------------------- the verified-token cache
# A token that verified is remembered (TOKEN_CACHE_ENTRIES); every answer must stay what
# verification would give at that moment. (The membership and role checks still run per
# request: test_cache.py's role-change test repeats one token across the change.)

def _repeat_ok(svc, tok, n=3):
    for _ in range(n):
        st, _, data = probe(svc, "Bearer " + tok)
        assert_ok(st, data)


def test_cached_token_expires_on_time(svc):
    expire = now_ms() + 1500
    tok = token_for(1, 1, expire_ms=expire)
    _repeat_ok(svc, tok)  # verified, then served from the cache
    assert now_ms() < expire - 200  # those answers came before the expiry (not too early)
    while now_ms() <= expire:
        time.sleep(0.05)
    st, _, data = probe(svc, "Bearer " + tok)  # the same token once past `expire`
    assert st == 406
    assert data == EXPIRED
    st, _, data = probe(svc, "Bearer " + tok)  # and stays refused
    assert st == 406


def test_cached_token_standard_exp_honoured(svc):
    exp = int(time.time()) + 2
    tok = token_for(1, 1, exp=exp)
    _repeat_ok(svc, tok)
    assert time.time() < exp - 0.2
    while time.time() < exp + 0.05:
        time.sleep(0.05)
    st, _, data = probe(svc, "Bearer " + tok)
    assert st == 406
    assert data == EXPIRED


@pytest.fixture(scope="module")
def onecache_svc(module_service):
    return module_service(TOKEN_CACHE_ENTRIES="1")  # every token lands on the one slot


@pytest.mark.parametrize("which", ["default", "one_slot"])
def test_tampered_sibling_of_a_cached_token_is_401(request, which):
    svc = request.getfixturevalue("svc" if which == "default" else "onecache_svc")
    tok = token_for(1, 1)
    _repeat_ok(svc, tok)
    h, p, s = tok.split(".")
    i = len(s) // 2
    sig_flipped = h + "." + p + "." + s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    other = token_for(3, 2).split(".")[1]  # another user's claims under the cached signature
    payload_swapped = h + "." + other + "." + s
    longer = tok + "A"
    for bad in (sig_flipped, payload_swapped, longer, tok[:-1]):
        st, _, data = probe(svc, "Bearer " + bad)
        assert st == 401, bad
        assert data == UNAUTHORIZED
    _repeat_ok(svc, tok, 1)  # the cached token itself is untouched


@pytest.mark.parametrize("which", ["default", "one_slot"])
def test_token_signed_with_another_secret_is_401_after_a_cached_twin(request, which):
    svc = request.getfixturevalue("svc" if which == "default" else "onecache_svc")
    payload = token_payload(1, 1)
    good = mint_jwt(payload)
    _repeat_ok(svc, good)
    st, _, data = probe(svc, "Bearer " + mint_jwt(payload, secret="not-the-secret"))
    assert st == 401
    assert data == UNAUTHORIZED


@pytest.fixture(scope="module")
def nocache_svc(module_service):
    return module_service(TOKEN_CACHE_ENTRIES="0")


def test_token_cache_off_still_verifies(nocache_svc):
    tok = token_for(1, 1)
    _repeat_ok(nocache_svc, tok)
    st, _, data = probe(nocache_svc, "Bearer " + tok[:-2] + ("AA" if tok[-2:] != "AA" else "BA"))
    assert st == 401
    expire = now_ms() + 800
    tok = token_for(1, 1, expire_ms=expire)
    _repeat_ok(nocache_svc, tok, 1)
    while now_ms() <= expire:
        time.sleep(0.05)
    st, _, data = probe(nocache_svc, "Bearer " + tok)
    assert st == 406
