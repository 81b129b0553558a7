# LLM provider keys end to end (contract 1.4 and 8, SPEC 3 and 4 differences): create, list,
# get by provider, status, PATCH and DELETE with VerifyWise's shapes and messages; keys stored
# as scheme B ciphertext with a key_fingerprint, never returned, logged or stored in
# plaintext; validation errors change nothing; ids are validated; tenants are isolated;
# any role may manage keys. The last test greps the whole service log for secrets.
import datetime
import json
import re
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import (ENCRYPTION_KEY, ENCRYPTION_PASSWORD, JWT_SECRET, SEEN_KEYS, SEEN_TOKENS, mask,
                      new_key, remember_key, tenant_hash, token_for)

URLS = {
    "Anthropic": "https://api.anthropic.com/v1",
    "OpenAI": "https://api.openai.com/v1/",
    "OpenRouter": "https://openrouter.ai/api/v1/",
}
BAD_PROVIDER = "Invalid provider name. Must be one of: Anthropic, OpenAI, OpenRouter"
REQUIRED = "Name and key are required"
MODEL_REQUIRED = "Model is required"
DUP_CREATE = "This API key is already configured. Please use a different API key or edit the existing entry."
DUP_PATCH = "This API key is already configured. Please use a different API key."
NO_FIELDS = "No fields to update"
INVALID_ID = "Invalid id"
FIELDS = {"id", "name", "url", "model", "created_at", "key"}
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
BAD_IDS = ["abc", "1.5", "-1", "0", "99999999999", "1e3", "0x10"]


def bad_request(data):
    return {"message": "Bad Request", "data": data}


def create(svc, token, name="OpenAI", key=None, model="gpt-4o"):
    key = key if key is not None else new_key()
    st, _, data = svc.req("POST", "/api/llm-keys", body={"name": name, "key": key, "model": model}, token=token)
    assert st == 201, data
    return data["data"], key


def assert_no_plaintext(text_or_obj, key):
    text = text_or_obj if isinstance(text_or_obj, str) else json.dumps(text_or_obj, ensure_ascii=False)
    assert key not in text
    if isinstance(text_or_obj, (dict, list)):
        assert key not in json.dumps(text_or_obj)


def assert_row_shape(row, key=None, name=None, model=None):
    assert set(row) == FIELDS, row
    assert isinstance(row["id"], int) and row["id"] > 0
    assert row["name"] in URLS
    assert row["url"] == URLS[row["name"]]
    assert ISO_MS_Z.match(row["created_at"]), row["created_at"]
    if key is not None:
        assert row["key"] == mask(key)
        assert_no_plaintext(row, key)
    else:
        assert row["key"].startswith("****...")
    if name is not None:
        assert row["name"] == name
    if model is not None:
        assert row["model"] == model


def openssl_decrypt_scheme_b(stored):
    """Decrypt `ivhex:cipherhex` with the scheme B key (ENCRYPTION_KEY, '0'-padded to 32)."""
    iv, ct = stored.split(":")
    key = (ENCRYPTION_KEY + "0" * 32)[:32].encode()
    p = subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-K", key.hex(), "-iv", iv, "-nosalt"],
                       input=bytes.fromhex(ct), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


# ---------------------------------------------------------------- create

@pytest.mark.parametrize("name", sorted(URLS))
def test_create_returns_masked_row(svc, tokens, db, name):
    before = db.llm_count(1)
    key = new_key("sk-ant-" if name == "Anthropic" else "sk-or-" if name == "OpenRouter" else "sk-test-")
    st, h, data = svc.req("POST", "/api/llm-keys", body={"name": name, "key": key, "model": "model-x"},
                          token=tokens.admin1)
    assert st == 201, data
    assert data["message"] == "Created"
    row = data["data"]
    assert_row_shape(row, key=key, name=name, model="model-x")
    assert row["key"] == "****..." + key[-4:]
    created = datetime.datetime.strptime(row["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 300
    assert db.llm_count(1) == before + 1


def test_url_in_body_is_ignored(svc, tokens):
    st, _, data = svc.req("POST", "/api/llm-keys", token=tokens.admin1, body={
        "name": "Anthropic", "key": new_key(), "model": "claude", "url": "http://evil.example/"})
    assert st == 201, data
    assert data["data"]["url"] == URLS["Anthropic"]


def test_stored_row_has_no_plaintext(svc, tokens, db):
    row, key = create(svc, tokens.admin1, "OpenAI")
    stored = db.llm_row(1, row["id"])
    assert stored is not None, "row %s not in \"%s\".llm_keys" % (row["id"], tenant_hash(1))
    for col, value in stored.items():
        assert key not in str(value), "column %s holds the plaintext key" % col
        if isinstance(value, (bytes, memoryview)):
            assert key.encode() not in bytes(value), col
    assert re.fullmatch(r"[0-9a-f]{32}:[0-9a-f]+", stored["key"]), stored["key"]
    assert len(stored["key"].split(":")[1]) % 32 == 0
    assert re.fullmatch(r"[0-9a-f]{64}", stored["key_fingerprint"] or ""), stored["key_fingerprint"]
    import hashlib
    assert stored["key_fingerprint"] != hashlib.sha256(key.encode()).hexdigest()  # keyed, not a bare hash
    assert str(stored["name"]) == "OpenAI"
    assert stored["model"] == "gpt-4o"
    assert stored["url"] == URLS["OpenAI"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_stored_key_is_scheme_b_ciphertext(svc, tokens, db):
    key = remember_key("sk-test-\u00fcnicode-" + secrets.token_hex(6) + "-\u043a\u043b\u044e\u0447\u20ac")
    row, _ = create(svc, tokens.admin1, "OpenRouter", key=key)
    stored = db.llm_row(1, row["id"])
    assert openssl_decrypt_scheme_b(stored["key"]) == key.encode("utf-8")
    # fresh random IV each time: the same plaintext in another tenant encrypts differently
    row2, _ = create(svc, tokens.admin2, "OpenRouter", key=key)
    stored2 = db.llm_row(2, row2["id"])
    assert stored2["key"].split(":")[0] != stored["key"].split(":")[0]
    assert openssl_decrypt_scheme_b(stored2["key"]) == key.encode("utf-8")


def test_two_keys_get_distinct_fingerprints(svc, tokens, db):
    r1, _ = create(svc, tokens.admin1)
    r2, _ = create(svc, tokens.admin1)
    f1 = db.llm_row(1, r1["id"])["key_fingerprint"]
    f2 = db.llm_row(1, r2["id"])["key_fingerprint"]
    assert f1 != f2


def test_unicode_key_mask_round_trips(svc, tokens, db):
    key = remember_key("sk-\u00fc\u00f1\u00ee-" + secrets.token_hex(5) + "-\u043a\u043b\u044e\u0447\u20ac\u2713")
    st, _, data = svc.req("POST", "/api/llm-keys", token=tokens.admin1,
                          body={"name": "Anthropic", "key": key, "model": "claude-3"})
    assert st == 201, data
    assert data["data"]["key"] == "****..." + key[-4:]
    assert data["data"]["key"] == "****...\u044e\u0447\u20ac\u2713"
    st, _, data2 = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    mine = [r for r in data2["data"] if r["id"] == data["data"]["id"]]
    assert mine and mine[0]["key"] == "****...\u044e\u0447\u20ac\u2713"
    # the duplicate check works on the unicode plaintext too
    st, _, data3 = svc.req("POST", "/api/llm-keys", token=tokens.admin1,
                           body={"name": "OpenAI", "key": key, "model": "m"})
    assert (st, data3) == (400, bad_request(DUP_CREATE))


def test_key_of_512_characters_is_accepted(svc, tokens):
    key = remember_key(("sk-512-" + secrets.token_hex(12) * 30)[:512])
    assert len(key) == 512
    row, _ = create(svc, tokens.admin1, key=key)
    assert row["key"] == mask(key)


def test_model_of_255_characters_is_accepted(svc, tokens):
    model = "m" * 255
    row, _ = create(svc, tokens.admin1, model=model)
    assert row["model"] == model


# ---------------------------------------------------------------- create: validation

def _invalid_creates():
    k = lambda: new_key()  # noqa: E731
    return [
        ({"key": k(), "model": "m"}, REQUIRED),
        ({"name": "OpenAI", "model": "m"}, REQUIRED),
        ({"name": "", "key": k(), "model": "m"}, REQUIRED),
        ({"name": "OpenAI", "key": "", "model": "m"}, REQUIRED),
        ({"name": 5, "key": k(), "model": "m"}, REQUIRED),
        ({"name": "OpenAI", "key": 12345678, "model": "m"}, REQUIRED),
        ({"name": "OpenAI", "key": [k()], "model": "m"}, REQUIRED),
        ({"name": None, "key": k(), "model": "m"}, REQUIRED),
        ({}, REQUIRED),
        ({"name": "Nope", "key": k(), "model": "m"}, BAD_PROVIDER),
        ({"name": "openai", "key": k(), "model": "m"}, BAD_PROVIDER),
        ({"name": "Custom", "key": k(), "model": "m"}, BAD_PROVIDER),
        ({"name": "OpenAI", "key": k()}, MODEL_REQUIRED),
        ({"name": "OpenAI", "key": k(), "model": ""}, MODEL_REQUIRED),
        ({"name": "OpenAI", "key": k(), "model": 4}, MODEL_REQUIRED),
        ({"name": "OpenAI", "key": k(), "model": None}, MODEL_REQUIRED),
        ({"name": "OpenAI", "key": remember_key("sk-long-" + "x" * 505), "model": "m"},
         "Key must be at most 512 characters"),
        ({"name": "OpenAI", "key": k(), "model": "m" * 256}, "Model must be at most 255 characters"),
    ]


INVALID_CREATES = _invalid_creates()


@pytest.mark.parametrize("body,message", INVALID_CREATES,
                         ids=["no_name", "no_key", "empty_name", "empty_key", "name_number", "key_number",
                              "key_array", "name_null", "empty_object", "bad_provider", "lowercase_provider",
                              "custom_provider", "no_model", "empty_model", "model_number", "model_null",
                              "key_513", "model_256"])
def test_invalid_create_is_400_and_changes_nothing(svc, tokens, db, body, message):
    before = db.llm_count(1)
    st, h, data = svc.req("POST", "/api/llm-keys", body=body, token=tokens.admin1)
    assert st == 400, data
    assert data == bad_request(message)
    assert db.llm_count(1) == before


def test_duplicate_key_is_400_even_with_another_provider(svc, tokens, db):
    row, key = create(svc, tokens.admin1, "OpenAI")
    before = db.llm_count(1)
    for name in ("OpenAI", "Anthropic", "OpenRouter"):
        st, _, data = svc.req("POST", "/api/llm-keys", token=tokens.admin1,
                              body={"name": name, "key": key, "model": "other"})
        assert st == 400
        assert data == bad_request(DUP_CREATE)
        assert db.llm_count(1) == before
    # the original row is untouched
    st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    mine = [r for r in data["data"] if r["id"] == row["id"]]
    assert mine and mine[0]["model"] == "gpt-4o" and mine[0]["name"] == "OpenAI"


def test_same_key_in_another_tenant_is_allowed(svc, tokens):
    _, key = create(svc, tokens.admin1, "OpenAI")
    row2, _ = create(svc, tokens.admin2, "OpenAI", key=key)
    assert row2["key"] == mask(key)


def test_invalid_utf8_body_is_invalid_json(svc, tokens, db):
    before = db.llm_count(1)
    raw = b'{"name":"OpenAI","key":"sk-test-\xff\xfe\xfd-bad","model":"gpt-4o"}'
    st, _, data = svc.req("POST", "/api/llm-keys", raw_body=raw, token=tokens.admin1)
    assert st == 400
    assert data == bad_request("Invalid JSON body")
    assert db.llm_count(1) == before


# ---------------------------------------------------------------- list, by name, status

def test_list_is_newest_first_and_masked(svc, tokens, db):
    made = []
    for name in ("Anthropic", "OpenAI", "OpenRouter"):
        made.append(create(svc, tokens.admin1, name))
        time.sleep(0.02)
    st, h, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert st == 200
    assert data["message"] == "OK"
    rows = data["data"]
    assert isinstance(rows, list)
    assert len(rows) == db.llm_count(1)
    for r in rows:
        assert_row_shape(r)
    ids = [r["id"] for r in rows]
    mine = [row["id"] for row, _ in reversed(made)]
    assert [i for i in ids if i in mine] == mine  # newest first
    stamps = [r["created_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    by_id = {r["id"]: r for r in rows}
    for row, key in made:
        assert by_id[row["id"]]["key"] == mask(key)
        assert by_id[row["id"]]["name"] == row["name"]
        assert by_id[row["id"]]["url"] == URLS[row["name"]]
    raw_text = json.dumps(data, ensure_ascii=False)
    for key in SEEN_KEYS:
        assert key not in raw_text


def test_list_response_text_has_no_plaintext(svc, tokens):
    _, key = create(svc, tokens.admin1)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    try:
        conn.request("GET", "/api/llm-keys", headers={"Authorization": "Bearer " + tokens.admin1})
        body = conn.getresponse().read()
    finally:
        conn.close()
    assert key.encode() not in body
    for k in SEEN_KEYS:
        assert k.encode("utf-8") not in body


@pytest.mark.parametrize("name", sorted(URLS))
def test_get_by_provider_returns_that_providers_rows(svc, tokens, db, name):
    row, key = create(svc, tokens.admin1, name)
    st, _, data = svc.req("GET", "/api/llm-keys/" + name, token=tokens.admin1)
    assert st == 200, data
    assert data["message"] == "OK"
    rows = data["data"]
    assert isinstance(rows, list)
    assert all(r["name"] == name for r in rows)
    assert row["id"] in [r["id"] for r in rows]
    expected = [r["id"] for r in db.llm_rows(1) if str(r["name"]) == name]
    assert sorted(r["id"] for r in rows) == sorted(expected)
    for r in rows:
        assert_row_shape(r)
    assert_no_plaintext(data, key)


def test_get_by_provider_empty_is_empty_array(svc, tokens):
    st, _, data = svc.req("GET", "/api/llm-keys/OpenRouter", token=tokens.admin10)
    assert (st, data) == (200, {"message": "OK", "data": []})


@pytest.mark.parametrize("name", ["Nope", "openai", "Custom", "OpenAI2"])
def test_get_by_unknown_provider_is_400(svc, tokens, name):
    st, _, data = svc.req("GET", "/api/llm-keys/" + name, token=tokens.admin1)
    assert st == 400
    assert data == bad_request(BAD_PROVIDER)


def test_status_with_keys(svc, tokens, db):
    create(svc, tokens.admin1, "Anthropic")
    st, _, data = svc.req("GET", "/api/llm-keys/status", token=tokens.admin1)
    assert st == 200, data
    rows = db.llm_rows(1)
    providers = sorted({str(r["name"]) for r in rows})
    assert data == {"message": "OK", "data": {"hasKeys": True, "keyCount": len(rows), "providers": providers}}


def test_status_of_empty_tenant(svc, tokens):
    st, _, data = svc.req("GET", "/api/llm-keys/status", token=tokens.admin10)
    assert st == 200, data
    assert data == {"message": "OK", "data": {"hasKeys": False, "keyCount": 0, "providers": []}}
    st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin10)
    assert (st, data) == (200, {"message": "OK", "data": []})


# ---------------------------------------------------------------- PATCH

def patch(svc, token, key_id, body=None, raw_body=None):
    return svc.req("PATCH", "/api/llm-keys/%s" % key_id, body=body, raw_body=raw_body, token=token)


def test_patch_model_only(svc, tokens, db):
    row, key = create(svc, tokens.admin1, "OpenAI")
    stored_before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin1, row["id"], {"model": "gpt-4.1"})
    assert st == 200, data
    assert data["message"] == "OK"
    out = data["data"]
    assert_row_shape(out, key=key, name="OpenAI", model="gpt-4.1")
    assert out["id"] == row["id"]
    assert out["created_at"] == row["created_at"]
    stored = db.llm_row(1, row["id"])
    assert stored["model"] == "gpt-4.1"
    assert stored["key"] == stored_before["key"]


def test_patch_name_rederives_url(svc, tokens, db):
    row, key = create(svc, tokens.admin1, "OpenAI")
    st, _, data = patch(svc, tokens.admin1, row["id"], {"name": "Anthropic"})
    assert st == 200, data
    assert data["data"]["name"] == "Anthropic"
    assert data["data"]["url"] == URLS["Anthropic"]
    assert data["data"]["key"] == mask(key)
    stored = db.llm_row(1, row["id"])
    assert str(stored["name"]) == "Anthropic" and stored["url"] == URLS["Anthropic"]
    st, _, data = patch(svc, tokens.admin1, row["id"], {"name": "OpenRouter", "model": "router-m"})
    assert st == 200, data
    assert (data["data"]["url"], data["data"]["model"]) == (URLS["OpenRouter"], "router-m")


def test_patch_key_replaces_ciphertext(svc, tokens, db):
    row, old = create(svc, tokens.admin1, "OpenAI")
    stored_before = db.llm_row(1, row["id"])
    new = new_key()
    st, _, data = patch(svc, tokens.admin1, row["id"], {"key": new})
    assert st == 200, data
    assert data["data"]["key"] == mask(new)
    assert_no_plaintext(data, new)
    stored = db.llm_row(1, row["id"])
    assert stored["key"] != stored_before["key"]
    assert stored["key_fingerprint"] != stored_before["key_fingerprint"]
    for col, value in stored.items():
        assert new not in str(value), col
    assert re.fullmatch(r"[0-9a-f]{32}:[0-9a-f]+", stored["key"])
    # the old plaintext is free again, the new one is taken
    st, _, data = svc.req("POST", "/api/llm-keys", token=tokens.admin1, body={"name": "OpenAI", "key": new, "model": "m"})
    assert (st, data) == (400, bad_request(DUP_CREATE))
    create(svc, tokens.admin1, "OpenAI", key=old)


def test_patch_drops_empty_strings(svc, tokens, db):
    row, key = create(svc, tokens.admin1, "OpenAI")
    stored_before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin1, row["id"], {"key": "", "name": "", "model": "new-model"})
    assert st == 200, data
    assert data["data"]["key"] == mask(key)
    assert data["data"]["name"] == "OpenAI"
    assert data["data"]["model"] == "new-model"
    assert db.llm_row(1, row["id"])["key"] == stored_before["key"]


@pytest.mark.parametrize("body", [{}, {"key": ""}, {"key": "", "name": "", "model": ""}, {"url": "http://x/"}],
                         ids=["empty", "empty_key", "all_empty", "only_unknown_field"])
def test_patch_without_effective_fields_is_400(svc, tokens, db, body):
    row, _ = create(svc, tokens.admin1)
    before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin1, row["id"], body)
    assert st == 400, data
    assert data == bad_request(NO_FIELDS)
    assert db.llm_row(1, row["id"]) == before


@pytest.mark.parametrize("field,value", [("model", 5), ("name", 7), ("key", 12345678), ("model", {"a": 1}),
                                         ("key", ["sk-x"]), ("model", True)])
def test_patch_non_string_field_is_400(svc, tokens, db, field, value):
    row, _ = create(svc, tokens.admin1)
    before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin1, row["id"], {field: value})
    assert st == 400, data
    assert data == bad_request("%s must be a string" % field)
    assert db.llm_row(1, row["id"]) == before


@pytest.mark.parametrize("body,message", [
    ({"name": "Nope"}, BAD_PROVIDER),
    ({"name": "openai", "model": "m2"}, BAD_PROVIDER),
    ({"key": "sk-long-" + "y" * 505}, "Key must be at most 512 characters"),
    ({"model": "m" * 256}, "Model must be at most 255 characters"),
], ids=["bad_provider", "lowercase_provider", "key_513", "model_256"])
def test_patch_invalid_values_are_400(svc, tokens, db, body, message):
    if "key" in body:
        remember_key(body["key"])
    row, _ = create(svc, tokens.admin1)
    before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin1, row["id"], body)
    assert st == 400, data
    assert data == bad_request(message)
    assert db.llm_row(1, row["id"]) == before


def test_patch_duplicate_key_is_400(svc, tokens, db):
    r1, k1 = create(svc, tokens.admin1)
    r2, _ = create(svc, tokens.admin1)
    before = db.llm_row(1, r2["id"])
    st, _, data = patch(svc, tokens.admin1, r2["id"], {"key": k1})
    assert st == 400, data
    assert data == bad_request(DUP_PATCH)
    assert db.llm_row(1, r2["id"]) == before


def test_patch_unknown_id_is_404(svc, tokens):
    st, _, data = patch(svc, tokens.admin1, 999999, {"model": "x"})
    assert st == 404
    assert data == {"message": "Not Found", "data": {}}


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_patch_non_numeric_id_is_400(svc, tokens, bad_id):
    st, _, data = patch(svc, tokens.admin1, bad_id, {"model": "x"})
    assert st == 400, data
    assert data == bad_request(INVALID_ID)


def test_patch_malformed_json_is_400(svc, tokens, db):
    row, _ = create(svc, tokens.admin1)
    before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin1, row["id"], raw_body=b'{"model":')
    assert (st, data) == (400, bad_request("Invalid JSON body"))
    assert db.llm_row(1, row["id"]) == before


# ---------------------------------------------------------------- DELETE

def test_delete_then_delete_again(svc, tokens, db):
    row, key = create(svc, tokens.admin1)
    before = db.llm_count(1)
    st, _, data = svc.req("DELETE", "/api/llm-keys/%d" % row["id"], token=tokens.admin1)
    assert st == 200, data
    assert data == {"message": "OK", "data": {"message": "LLM Key deleted successfully"}}
    assert db.llm_row(1, row["id"]) is None
    assert db.llm_count(1) == before - 1
    st, _, data = svc.req("DELETE", "/api/llm-keys/%d" % row["id"], token=tokens.admin1)
    assert st == 404
    assert data == {"message": "Not Found", "data": {"message": "LLM Key not found"}}
    # a deleted key's plaintext can be added again
    create(svc, tokens.admin1, key=key)
    # and the deleted id is gone for PATCH as well
    st, _, data = patch(svc, tokens.admin1, row["id"], {"model": "x"})
    assert (st, data) == (404, {"message": "Not Found", "data": {}})


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_delete_non_numeric_id_is_400(svc, tokens, db, bad_id):
    before = db.llm_count(1)
    st, _, data = svc.req("DELETE", "/api/llm-keys/" + bad_id, token=tokens.admin1)
    assert st == 400, data
    assert data == bad_request(INVALID_ID)
    assert db.llm_count(1) == before


# ---------------------------------------------------------------- tenants and roles

def test_tenants_are_isolated(svc, tokens, db):
    row1, key1 = create(svc, tokens.admin1, "OpenAI")
    row2, key2 = create(svc, tokens.admin2, "Anthropic")
    st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin2)
    assert st == 200
    ids2 = {r["id"] for r in data["data"]}
    assert row2["id"] in ids2
    org1_ids = {r["id"] for r in db.llm_rows(1)}
    # ids are per-tenant sequences, so compare with org 2's own table, not by number alone
    assert ids2 == {r["id"] for r in db.llm_rows(2)}
    assert_no_plaintext(data, key1)
    st, _, data = svc.req("GET", "/api/llm-keys/OpenAI", token=tokens.admin2)
    assert {r["id"] for r in data["data"]} == {r["id"] for r in db.llm_rows(2) if str(r["name"]) == "OpenAI"}
    st, _, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert {r["id"] for r in data["data"]} == org1_ids
    st, _, data = svc.req("GET", "/api/llm-keys/status", token=tokens.admin2)
    assert data["data"]["keyCount"] == db.llm_count(2)


def test_other_tenant_cannot_patch_or_delete(svc, tokens, db):
    # pick an org 1 id that org 2 does not have
    org2_ids = {r["id"] for r in db.llm_rows(2)}
    row = None
    for _ in range(50):
        r, _ = create(svc, tokens.admin1)
        if r["id"] not in org2_ids:
            row = r
            break
    assert row is not None
    before = db.llm_row(1, row["id"])
    st, _, data = patch(svc, tokens.admin2, row["id"], {"model": "hijack"})
    assert (st, data) == (404, {"message": "Not Found", "data": {}})
    st, _, data = svc.req("DELETE", "/api/llm-keys/%d" % row["id"], token=tokens.admin2)
    assert (st, data) == (404, {"message": "Not Found", "data": {"message": "LLM Key not found"}})
    assert db.llm_row(1, row["id"]) == before


def test_tenant_table_lives_in_the_hashed_schema(svc, tokens, db):
    create(svc, tokens.admin2)
    assert db.table_exists('"%s".llm_keys' % tenant_hash(2))
    assert db.scalar("SELECT count(*) FROM public.integration_tenants") >= 2


@pytest.mark.parametrize("who", ["editor1", "reviewer1", "auditor1"])
def test_any_role_may_manage_keys(svc, tokens, db, who):
    tok = getattr(tokens, who)
    row, key = create(svc, tok, "OpenRouter")
    st, _, data = svc.req("GET", "/api/llm-keys", token=tok)
    assert st == 200
    assert row["id"] in [r["id"] for r in data["data"]]
    st, _, data = patch(svc, tok, row["id"], {"model": "by-" + who})
    assert st == 200 and data["data"]["model"] == "by-" + who
    st, _, data = svc.req("DELETE", "/api/llm-keys/%d" % row["id"], token=tok)
    assert st == 200, data


def test_endpoints_require_auth(svc, tokens):
    row, _ = create(svc, tokens.admin1)
    for method, path, body in (("GET", "/api/llm-keys", None), ("GET", "/api/llm-keys/OpenAI", None),
                               ("GET", "/api/llm-keys/status", None),
                               ("POST", "/api/llm-keys", {"name": "OpenAI", "key": new_key(), "model": "m"}),
                               ("PATCH", "/api/llm-keys/%d" % row["id"], {"model": "x"}),
                               ("DELETE", "/api/llm-keys/%d" % row["id"], None)):
        st, _, data = svc.req(method, path, body=body)
        assert st == 400, (method, path, data)
        assert data == {"message": "Bad Request", "data": {"message": "Token not found"}}


# ---------------------------------------------------------------- log hygiene (runs last)

def test_zz_log_has_no_secrets(svc, tokens):
    # One more round trip with every kind of request, then stop the service so its log is complete.
    create(svc, tokens.admin1)
    problems = svc.stop()
    assert not problems, "%s\n%s" % (problems, svc.describe())
    text = svc.log_text()
    assert text.strip(), "the service wrote no log at all"
    for secret, what in ((JWT_SECRET, "JWT_SECRET"), (ENCRYPTION_KEY, "ENCRYPTION_KEY"),
                         (ENCRYPTION_PASSWORD, "ENCRYPTION_PASSWORD")):
        assert secret not in text, "log contains " + what
    for tok in SEEN_TOKENS:
        assert tok not in text, "log contains a JWT"
        sig = tok.rsplit(".", 1)[-1]
        if len(sig) >= 20:
            assert sig not in text, "log contains a JWT signature"
    for key in SEEN_KEYS:
        assert key not in text, "log contains a plaintext LLM key"
