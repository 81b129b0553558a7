# Tenant isolation on every route that takes an id, and legacy plaintext rows:
#   - each id route (LLM keys: PATCH, DELETE, verify; Slack webhooks under both paths: GET,
#     PATCH, DELETE, send) answers another organization's Admin 404 and changes, calls and
#     sends nothing, while the owner's own call on the same id works (so the 404 is not
#     a broken route);
#   - a key VerifyWise stored in plaintext is listed masked, like every other key, by every
#     route that returns keys.
import json
import time

import pytest

from conftest import mask, new_key, slack_env
from test_slack import webhook


@pytest.fixture(scope="module")
def tsvc(module_service, fake_slack, fake_llm):
    return module_service(TRUST_PROXY="true", **dict(slack_env(fake_slack), **fake_llm.env()))


def create_key(svc, token, name="OpenAI"):
    key = new_key()
    st, _, data = svc.req("POST", "/api/llm-keys", body={"name": name, "key": key, "model": "gpt-4o"}, token=token)
    assert st == 201, data
    return data["data"]["id"], key


def org1_key_org2_lacks(svc, tokens, db):
    """An org 1 key whose id does not exist in org 2 (ids are per-tenant sequences)."""
    create_key(svc, tokens.admin2)
    org2 = {r["id"] for r in db.llm_rows(2)}
    for _ in range(50):
        kid, key = create_key(svc, tokens.admin1)
        if kid not in org2:
            return kid, key
    pytest.fail("no org 1 id that org 2 lacks")


LLM_ROUTES = [("PATCH", "/api/llm-keys/%d", {"model": "hijack"}),
              ("DELETE", "/api/llm-keys/%d", None),
              ("POST", "/api/llm-keys/%d/verify", None)]


@pytest.mark.parametrize("method,path,body", LLM_ROUTES, ids=[m + " " + p for m, p, _ in LLM_ROUTES])
def test_llm_key_routes_isolate_tenants(tsvc, tokens, db, fake_llm, method, path, body):
    kid, key = org1_key_org2_lacks(tsvc, tokens, db)
    before = db.llm_row(1, kid)
    calls_before = len(fake_llm.by_name("OpenAI").requests)
    st, _, data = tsvc.req(method, path % kid, body, token=tokens.admin2)
    assert st == 404, data
    assert db.llm_row(1, kid) == before
    assert len(fake_llm.by_name("OpenAI").requests) == calls_before  # nothing verified
    assert key not in json.dumps(data)
    # the owner's own call on the same id does reach the row
    st, _, data = tsvc.req(method, path % kid, body, token=tokens.admin1)
    assert st == 200, data


@pytest.fixture(scope="module")
def org1_hook(tsvc, fake_slack, tokens):
    # no routing type, and removed afterwards: other modules count organization 1's webhooks
    wid, inst = webhook(tsvc, fake_slack, tokens.admin1)
    yield wid, inst
    tsvc.req("DELETE", "/api/slackWebhooks/%d" % wid, token=tokens.admin1)


SEND = {"title": "cross-tenant", "message": "must not arrive"}
SLACK_ROUTES = [(m, base + suffix, body) for base in ("/api/slackWebhooks", "/api/slack-webhooks")
                for m, suffix, body in (("GET", "/%d", None), ("PATCH", "/%d", {"is_active": False}),
                                        ("POST", "/%d/send", SEND), ("DELETE", "/%d", None))]


@pytest.mark.parametrize("method,path,body", SLACK_ROUTES, ids=[m + " " + p for m, p, _ in SLACK_ROUTES])
def test_slack_webhook_routes_isolate_tenants(tsvc, fake_slack, tokens, db, org1_hook, method, path, body):
    wid, inst = org1_hook
    before = db.one("SELECT * FROM public.slack_webhooks WHERE id = %s", (wid,))
    sent_before = len(fake_slack.messages_for(inst.channel_id))
    st, _, data = tsvc.req(method, path % wid, body, token=tokens.admin2)
    assert st == 404, data
    time.sleep(0.2)
    assert db.one("SELECT * FROM public.slack_webhooks WHERE id = %s", (wid,)) == before
    assert len(fake_slack.messages_for(inst.channel_id)) == sent_before
    if method != "DELETE":  # the owner's own call works (DELETE would end the module's webhook)
        st, _, data = tsvc.req(method, path % wid, body, token=tokens.admin1)
        assert st in (200, 202), data
        if method == "PATCH":
            tsvc.req("PATCH", path % wid, {"is_active": True}, token=tokens.admin1)


def test_legacy_plaintext_key_is_listed_masked(tsvc, tokens, db):
    """A VerifyWise-era row (key in plaintext, no fingerprint) is shown masked by the list,
    the provider list and after a PATCH of another field."""
    create_key(tsvc, tokens.admin1)  # the tenant's tables exist
    plain = new_key("sk-legacy-plaintext-")
    table = db.llm_table(1)
    db.execute("INSERT INTO %s (key, name, model) VALUES (%%s, 'OpenAI', 'gpt-legacy')" % table, (plain,))
    kid = db.scalar("SELECT id FROM %s WHERE key = %%s" % table, (plain,))
    for path in ("/api/llm-keys", "/api/llm-keys/OpenAI"):
        st, _, data = tsvc.req("GET", path, token=tokens.admin1)
        assert st == 200, data
        assert plain not in json.dumps(data)
        rows = [r for r in data["data"] if r["id"] == kid]
        assert rows and rows[0]["key"] == mask(plain), rows
    st, _, data = tsvc.req("PATCH", "/api/llm-keys/%d" % kid, {"model": "gpt-renamed"}, token=tokens.admin1)
    assert st == 200 and data["data"]["key"] == mask(plain) and plain not in json.dumps(data), data
