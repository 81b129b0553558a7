# Slack webhooks: OAuth install, CRUD with ownership and organization isolation, the
# interactive send (Block Kit body as the fake receives it), deactivation, and the
# creation rate limit across two instances sharing Redis and without Redis.
import json
import random
import time

import pytest

from conftest import (EVENT_PREFIX, FRONTEND_URL, SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, EventSubscriber,
                      slack_env, slack_scheme_a_plain, token_for)

ROUTING = ["Membership and roles", "Projects and organizations", "Policy reminders and status",
           "Evidence and task alerts", "Control or policy changes"]
SHAPE = {"id", "scope", "user_id", "team_name", "team_id", "channel", "channel_id", "created_at", "is_active",
         "routing_type"}


def rand_ip():
    return "10.%d.%d.%d" % (random.randint(0, 255), random.randint(0, 255), random.randint(1, 254))


@pytest.fixture(scope="module")
def ssvc(module_service, fake_slack):
    return module_service(TRUST_PROXY="true", **slack_env(fake_slack))


def create(svc, fake, token, path="/api/slackWebhooks", rotate=False, body=None, ip=None):
    code, inst = fake.install(rotate=rotate)
    b = {"code": code} if body is None else body
    st, h, data = svc.req("POST", path, b, token=token, headers={"X-Forwarded-For": ip or rand_ip()})
    return st, data, inst


def webhook(svc, fake, token, routing=None, **kw):
    st, data, inst = create(svc, fake, token, **kw)
    assert st == 201, data
    wid = data["data"]["id"]
    if routing is not None:
        st, _, d = svc.req("PATCH", "/api/slackWebhooks/%d" % wid, {"routing_type": routing}, token=token)
        assert st == 202, d
    return wid, inst


def no_secret(obj, inst):
    text = json.dumps(obj)
    for s in (inst.bot_token, inst.url, inst.hook_secret, SLACK_CLIENT_SECRET) + tuple(
            x for x in [inst.refresh_token] if x):
        assert s not in text


# ---- OAuth ---------------------------------------------------------------------------

def test_oauth_flow_end_to_end(ssvc, fake_slack, tokens, db):
    fake_slack.clear()
    st, data, inst = create(ssvc, fake_slack, tokens.editor1, body=None)
    assert st == 201, data
    assert data["message"] == "Created"
    w = data["data"]
    assert set(w) == SHAPE
    assert w["user_id"] == 2 and w["routing_type"] is None and w["is_active"] is True
    assert w["team_id"] == inst.team_id and w["team_name"] == inst.team_name
    assert w["channel"] == inst.channel and w["channel_id"] == inst.channel_id
    assert w["created_at"].endswith("Z")
    no_secret(data, inst)
    # the exchange as Slack received it
    reqs = [r for r in fake_slack.requests if r.path.endswith("/oauth.v2.access")]
    assert len(reqs) == 1
    assert reqs[0].headers.get("Content-Type") == "application/x-www-form-urlencoded"
    from urllib.parse import parse_qs
    form = {k: v[0] for k, v in parse_qs(reqs[0].body.decode()).items()}
    assert form["client_id"] == SLACK_CLIENT_ID and form["client_secret"] == SLACK_CLIENT_SECRET
    assert form["redirect_uri"] == FRONTEND_URL + "/integrations/slack"
    # stored encrypted (scheme A), never plaintext
    row = db.one("SELECT w.*, x.organization_id, x.refresh_token, x.refresh_token_iv, x.token_expires_at, "
                 "x.deactivated_reason FROM public.slack_webhooks w "
                 "LEFT JOIN public.integrationsd_slack_webhooks x ON x.webhook_id = w.id WHERE w.id = %s", (w["id"],))
    assert row["organization_id"] == 1 and row["user_id"] == 2
    assert inst.bot_token not in row["access_token"] and inst.url not in row["url"]
    assert len(row["access_token_iv"]) == 32 and len(row["url_iv"]) == 32
    assert slack_scheme_a_plain(row["access_token"], row["access_token_iv"]) == inst.bot_token
    assert slack_scheme_a_plain(row["url"], row["url_iv"]) == inst.url
    assert row["refresh_token"] is None and row["token_expires_at"] is None
    for line in ssvc.log_lines():
        for s in (inst.bot_token, inst.url, SLACK_CLIENT_SECRET):
            assert s not in line


def test_oauth_rotation_fields_stored(ssvc, fake_slack, tokens, db):
    st, data, inst = create(ssvc, fake_slack, tokens.admin1, rotate=True)
    assert st == 201, data
    row = db.one("SELECT w.*, x.organization_id, x.refresh_token, x.refresh_token_iv, x.token_expires_at, "
                 "x.deactivated_reason FROM public.slack_webhooks w "
                 "LEFT JOIN public.integrationsd_slack_webhooks x ON x.webhook_id = w.id WHERE w.id = %s", (data["data"]["id"],))
    assert inst.refresh_token not in row["refresh_token"]
    assert slack_scheme_a_plain(row["refresh_token"], row["refresh_token_iv"]) == inst.refresh_token
    assert row["token_expires_at"] is not None


@pytest.mark.parametrize("name", ["invalid_code", "bad_redirect_uri", "invalid_client_id", "bad_client_secret"])
def test_oauth_ok_false_is_400_with_slack_error(ssvc, fake_slack, tokens, db, name):
    before = db.scalar("SELECT count(*) FROM public.slack_webhooks")
    code = fake_slack.install_error(name)
    st, _, data = ssvc.req("POST", "/api/slackWebhooks", {"code": code}, token=tokens.admin1,
                           headers={"X-Forwarded-For": rand_ip()})
    assert st == 400 and data == {"message": "Bad Request", "data": name}
    assert db.scalar("SELECT count(*) FROM public.slack_webhooks") == before


@pytest.mark.parametrize("omit,msg", [
    ("access_token", "Access Token is required"), ("scope", "Slack scope is required"),
    ("team.id", "Team ID is required"), ("team.name", "Team Name is required"),
    ("incoming_webhook.channel", "Slack Channel is required"),
    ("incoming_webhook.channel_id", "Slack Channel ID is required"),
    ("incoming_webhook.configuration_url", "Configuration URL is required"),
    ("incoming_webhook.url", "Slack URL is required"), ("incoming_webhook", "Slack Channel is required")])
def test_oauth_answer_validated_field_by_field(ssvc, fake_slack, tokens, db, omit, msg):
    before = db.scalar("SELECT count(*) FROM public.slack_webhooks")
    code, _ = fake_slack.install(omit=[omit])
    st, _, data = ssvc.req("POST", "/api/slackWebhooks", {"code": code}, token=tokens.admin1,
                           headers={"X-Forwarded-For": rand_ip()})
    assert (st, data) == (400, {"message": "Bad Request", "data": msg})
    assert db.scalar("SELECT count(*) FROM public.slack_webhooks") == before


@pytest.mark.parametrize("body,raw", [
    ({}, None), ({"code": ""}, None), ({"code": 12}, None), ({"code": None}, None), ({"code": ["x"]}, None),
    ({"code": "x" * 513}, None), (None, b"{not json"), (None, b"[1,2]"), ({"code": "c", "userId": 0}, None),
    ({"code": "c", "userId": "abc"}, None)])
def test_oauth_bad_input_changes_nothing(ssvc, fake_slack, tokens, db, body, raw):
    before = db.scalar("SELECT count(*) FROM public.slack_webhooks")
    n = len(fake_slack.requests)
    st, _, data = ssvc.req("POST", "/api/slackWebhooks", body, raw_body=raw, token=tokens.admin1,
                           headers={"X-Forwarded-For": rand_ip()})
    assert st == 400 and isinstance(data["data"], str)
    assert db.scalar("SELECT count(*) FROM public.slack_webhooks") == before
    assert len(fake_slack.requests) == n


def test_oauth_userid_of_someone_else_is_ignored(ssvc, fake_slack, tokens):
    code, _ = fake_slack.install()
    st, _, data = ssvc.req("POST", "/api/slack-webhooks", {"code": code, "userId": 3}, token=tokens.editor1,
                           headers={"X-Forwarded-For": rand_ip()})
    assert st == 201 and data["data"]["user_id"] == 2


def test_oauth_unreachable_slack_is_502(module_service, tokens):
    svc = module_service(TRUST_PROXY="true", SLACK_API_URL="http://127.0.0.1:9/api/oauth.v2.access")
    st, _, data = svc.req("POST", "/api/slackWebhooks", {"code": "abc"}, token=tokens.admin1,
                          headers={"X-Forwarded-For": rand_ip()})
    assert st == 502 and data["message"] == "Bad Gateway" and "Failed to validate Slack OAuth code" in data["error"]


# ---- CRUD ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trio(ssvc, fake_slack, tokens):
    """W1 of admin1 (org 1), W2 of editor1 (org 1), W3 of admin2 (org 2)."""
    return (webhook(ssvc, fake_slack, tokens.admin1)[0], webhook(ssvc, fake_slack, tokens.editor1)[0],
            webhook(ssvc, fake_slack, tokens.admin2)[0])


def ids(data):
    return [w["id"] for w in data["data"]]


def test_list_own_admin_and_other_org(ssvc, tokens, trio, db):
    w1, w2, w3 = trio
    for path in ("/api/slackWebhooks", "/api/slack-webhooks"):
        st, _, d = ssvc.req("GET", path, token=tokens.editor1)
        assert st == 200 and w2 in ids(d) and w1 not in ids(d) and w3 not in ids(d)
        assert all(w["user_id"] == 2 for w in d["data"])
        st, _, d = ssvc.req("GET", path + "?userId=1", token=tokens.editor1)   # userId ignored
        assert st == 200 and w1 not in ids(d) and w2 in ids(d)
        st, _, d = ssvc.req("GET", path + "?userId=2", token=tokens.admin1)    # Admin: the organization
        assert w1 in ids(d) and w2 in ids(d) and w3 not in ids(d)
        st, _, d = ssvc.req("GET", path, token=tokens.admin2)
        assert w3 in ids(d) and w1 not in ids(d) and w2 not in ids(d)
        assert all(set(w) == SHAPE for w in d["data"])
    # order: created_at DESC, id ASC
    st, _, d = ssvc.req("GET", "/api/slackWebhooks", token=tokens.admin1)
    got = ids(d)
    rows = db.rows("SELECT w.id FROM public.slack_webhooks w JOIN public.integrationsd_slack_webhooks x "
                   "ON x.webhook_id = w.id WHERE x.organization_id = 1 ORDER BY w.created_at DESC, w.id ASC")
    assert got == [r["id"] for r in rows]
    chan = d["data"][0]["channel"]
    st, _, d = ssvc.req("GET", "/api/slackWebhooks?channel=" + chan.replace("#", "%23"), token=tokens.admin1)
    assert [w["channel"] for w in d["data"]] == [chan]
    st, _, d = ssvc.req("GET", "/api/slackWebhooks?channel=" + "x" * 300, token=tokens.admin1)
    assert st == 400


def test_get_ownership(ssvc, tokens, trio):
    w1, w2, w3 = trio
    assert ssvc.req("GET", "/api/slackWebhooks/%d" % w2, token=tokens.editor1)[0] == 200
    st, _, d = ssvc.req("GET", "/api/slackWebhooks/%d" % w1, token=tokens.editor1)
    assert (st, d) == (403, {"message": "Forbidden", "data": "Unauthorized"})
    assert ssvc.req("GET", "/api/slack-webhooks/%d" % w2, token=tokens.admin1)[0] == 200
    st, _, d = ssvc.req("GET", "/api/slackWebhooks/%d" % w1, token=tokens.admin2)
    assert (st, d) == (404, {"message": "Not Found", "data": "Slack Webhook not found"})
    assert ssvc.req("GET", "/api/slackWebhooks/%d" % w3, token=tokens.admin1)[0] == 404
    assert ssvc.req("GET", "/api/slackWebhooks/99999999", token=tokens.admin1)[0] == 404
    for bad in ("0", "-1", "abc", "1.5", "99999999999", "01"):
        st, _, d = ssvc.req("GET", "/api/slackWebhooks/" + bad, token=tokens.admin1)
        assert (st, d) == (400, {"message": "Bad Request", "data": "Valid ID is required (must be >= 1)"})


def test_patch(ssvc, tokens, trio, db):
    w1, w2, w3 = trio
    p = "/api/slackWebhooks/%d" % w2
    before = db.one("SELECT is_active, routing_type, updated_at FROM public.slack_webhooks WHERE id = %s", (w2,))
    for body in ({}, {"userId": 2}, {"routing_type": "Membership and roles"}, {"routing_type": [1]},
                 {"routing_type": ["Nope"]}, {"routing_type": ['Membership and roles","x']}, {"routing_type": None},
                 {"is_active": "false"}, {"is_active": 0}, {"routing_type": ["Membership and roles"] * 40}):
        st, _, d = ssvc.req("PATCH", p, body, token=tokens.editor1)
        assert st == 400, (body, d)
    st, _, d = ssvc.req("PATCH", p, raw_body=b"{bad", token=tokens.editor1)
    assert st == 400
    assert db.one("SELECT is_active, routing_type, updated_at FROM public.slack_webhooks WHERE id = %s", (w2,)) == before
    st, _, d = ssvc.req("PATCH", p, {"routing_type": ROUTING[:2] + [ROUTING[0]]}, token=tokens.editor1)
    assert st == 202 and d["message"] == "Accepted" and d["data"]["routing_type"] == ROUTING[:2]
    assert db.scalar("SELECT routing_type FROM public.slack_webhooks WHERE id = %s", (w2,)) == ROUTING[:2]
    st, _, d = ssvc.req("PATCH", "/api/slack-webhooks/%d" % w2, {"is_active": False}, token=tokens.editor1)
    assert st == 202 and d["data"]["is_active"] is False and d["data"]["routing_type"] == ROUTING[:2]
    st, _, d = ssvc.req("PATCH", p, {"is_active": True, "routing_type": []}, token=tokens.admin1)  # Admin of org
    assert st == 202 and d["data"]["is_active"] is True and d["data"]["routing_type"] == []
    # someone else's: 403; another organization's: 404; nothing changes
    before = db.one("SELECT is_active, routing_type FROM public.slack_webhooks WHERE id = %s", (w1,))
    st, _, d = ssvc.req("PATCH", "/api/slackWebhooks/%d" % w1, {"is_active": False}, token=tokens.editor1)
    assert st == 403
    st, _, d = ssvc.req("PATCH", "/api/slackWebhooks/%d" % w1, {"is_active": False}, token=tokens.admin2)
    assert (st, d["data"]) == (404, "Slack Webhook not found")
    assert db.one("SELECT is_active, routing_type FROM public.slack_webhooks WHERE id = %s", (w1,)) == before
    assert ssvc.req("PATCH", "/api/slackWebhooks/99999999", {"is_active": True}, token=tokens.admin1)[0] == 404


def test_delete(ssvc, fake_slack, tokens, trio, db):
    w1, w2, w3 = trio
    mine, _ = webhook(ssvc, fake_slack, tokens.editor1)
    assert ssvc.req("DELETE", "/api/slackWebhooks/%d" % w1, token=tokens.editor1)[0] == 403
    assert ssvc.req("DELETE", "/api/slackWebhooks/%d" % w1, token=tokens.admin2)[0] == 404
    assert ssvc.req("DELETE", "/api/slackWebhooks/%d" % w3, token=tokens.admin1)[0] == 404
    assert db.scalar("SELECT count(*) FROM public.slack_webhooks WHERE id IN (%s, %s)", (w1, w3)) == 2
    st, h, d = ssvc.req("DELETE", "/api/slack-webhooks/%d" % mine, token=tokens.editor1)
    assert st == 204 and d == b""
    st, _, d = ssvc.req("DELETE", "/api/slackWebhooks/%d" % mine, token=tokens.editor1)
    assert (st, d) == (404, {"message": "Not Found", "data": "Slack Webhook not found"})
    assert ssvc.req("DELETE", "/api/slackWebhooks/abc", token=tokens.editor1)[0] == 400
    other, _ = webhook(ssvc, fake_slack, tokens.editor1)
    assert ssvc.req("DELETE", "/api/slackWebhooks/%d" % other, token=tokens.admin1)[0] == 204


def test_routes_need_auth(ssvc):
    for m, p in (("GET", "/api/slackWebhooks"), ("POST", "/api/slackWebhooks"), ("GET", "/api/slack-webhooks/1"),
                 ("POST", "/api/notifications")):
        assert ssvc.req(m, p)[0] == 400   # "Token not found"


# ---- send ---------------------------------------------------------------------------------

def test_send_block_kit_body(ssvc, fake_slack, tokens):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    fake_slack.clear()
    title, msg = "Welcome to Verifywise \u00e9", "This is a *test* message from VerifyWise."
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": title, "message": msg},
                        token=tokens.editor1)
    assert st == 200, d
    assert d["message"] == "OK" and d["data"]["success"] is True and d["data"]["channel"] == inst.channel_id
    got = fake_slack.messages_for(inst.channel_id)
    assert len(got) == 1 and got[0]["via"] == "api"
    body = got[0]["body"]
    assert d["data"]["messageId"] and isinstance(d["data"]["messageId"], str)
    assert body["channel"] == inst.channel_id and body["text"] == "Notification from VerifyWise"
    b = body["blocks"]
    assert [x["type"] for x in b] == ["header", "section", "context"]
    assert b[0]["text"]["type"] == "plain_text" and b[0]["text"]["text"] == title
    assert b[1]["text"] == {"type": "mrkdwn", "text": msg}
    ctx = b[2]["elements"][0]
    assert ctx["type"] == "mrkdwn" and ctx["text"].startswith("\U0001F4C5 ") and ctx["text"].endswith(" UTC")
    req = [r for r in fake_slack.requests if r.path == "/api/chat.postMessage"][-1]
    assert req.headers.get("Authorization") == "Bearer " + inst.bot_token
    # both paths, exactly at the limits
    st, _, d = ssvc.req("POST", "/api/slack-webhooks/%d/send" % wid, {"title": "t" * 150, "message": "m" * 3000},
                        token=tokens.editor1)
    assert st == 200


@pytest.mark.parametrize("body", [{}, {"title": "t"}, {"message": "m"}, {"title": "", "message": "m"},
                                  {"title": 1, "message": "m"}, {"title": "t", "message": ["m"]},
                                  {"title": "t" * 151, "message": "m"}, {"title": "t", "message": "m" * 3001}])
def test_send_bad_input(ssvc, fake_slack, tokens, body):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, body, token=tokens.editor1)
    assert st == 400 and isinstance(d["data"], str)
    assert fake_slack.messages_for(inst.channel_id) == []


def test_send_ownership(ssvc, fake_slack, tokens, trio):
    w1, w2, w3 = trio
    body = {"title": "t", "message": "m"}
    assert ssvc.req("POST", "/api/slackWebhooks/%d/send" % w1, body, token=tokens.editor1)[0] == 403
    assert ssvc.req("POST", "/api/slackWebhooks/%d/send" % w1, body, token=tokens.admin2)[0] == 404
    assert ssvc.req("POST", "/api/slackWebhooks/99999999/send", body, token=tokens.admin1)[0] == 404


def test_send_falls_back_to_incoming_webhook(ssvc, fake_slack, tokens):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    fake_slack.set_mode(inst.channel_id, "invalid_auth")
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                        token=tokens.editor1)
    assert st == 200 and d["data"]["success"] is True and d["data"]["channel"] == inst.channel_id
    got = fake_slack.messages_for(inst.channel_id)
    assert len(got) == 1 and got[0]["via"] == "webhook" and "channel" not in got[0]["body"]
    assert got[0]["body"]["blocks"][0]["text"]["text"] == "T"
    fake_slack.set_hook_mode(inst.channel_id, "invalid_payload")
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                        token=tokens.editor1)
    assert st == 502 and "invalid_payload" in d["error"]
    fake_slack.set_hook_mode(inst.channel_id, "bad200")
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                        token=tokens.editor1)
    assert st == 502


@pytest.mark.parametrize("mode", ["channel_not_found", "is_archived"])
def test_send_deactivates_on_channel_gone(ssvc, fake_slack, tokens, db, mode):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    fake_slack.set_mode(inst.channel_id, mode)
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                        token=tokens.editor1)
    assert st == 502 and mode in d["error"]
    row = db.one("SELECT is_active, deactivated_reason FROM public.slack_webhooks w "
                 "JOIN public.integrationsd_slack_webhooks x ON x.webhook_id = w.id WHERE w.id = %s", (wid,))
    assert row["is_active"] is False and mode in row["deactivated_reason"]
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                        token=tokens.editor1)
    assert (st, d) == (409, {"message": "Conflict", "data": "This slack channel is no longer active"})


def test_send_webhook_channel_gone_deactivates(ssvc, fake_slack, tokens, db):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    fake_slack.set_mode(inst.channel_id, "token_revoked")
    fake_slack.set_hook_mode(inst.channel_id, "channel_is_archived")
    st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                        token=tokens.editor1)
    assert st == 502
    assert db.scalar("SELECT is_active FROM public.slack_webhooks WHERE id = %s", (wid,)) is False


def test_send_rate_limited_is_429_with_wait(ssvc, fake_slack, tokens):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    fake_slack.set_mode(inst.channel_id, "ratelimited")
    fake_slack.retry_after = 7
    try:
        st, h, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                            token=tokens.editor1)
    finally:
        fake_slack.retry_after = 1
    assert st == 429 and h.get("Retry-After") == "7"
    assert d["message"] == "Too Many Requests" and "7 seconds" in d["data"]


def test_send_upstream_faults(ssvc, fake_slack, tokens):
    wid, inst = webhook(ssvc, fake_slack, tokens.editor1)
    for mode in ("e500", "garbage", "msg_too_long"):
        fake_slack.set_mode(inst.channel_id, mode)
        st, _, d = ssvc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                            token=tokens.editor1)
        assert st == 502 and d["message"] == "Bad Gateway", (mode, d)
    assert ssvc.alive()


# ---- rate limit ---------------------------------------------------------------------------

def test_rate_limit_shared_by_two_instances(module_service, fake_slack, tokens):
    a = module_service(TRUST_PROXY="true", **slack_env(fake_slack))
    b = module_service(TRUST_PROXY="true", **slack_env(fake_slack))
    ip = rand_ip()
    hdr = {"X-Forwarded-For": "192.0.2.1, " + ip}  # TRUST_PROXY=true: the right-most entry counts
    for i in range(10):
        svc = a if i % 2 == 0 else b
        # every request counts, whatever its outcome: half of them are invalid
        body = {"code": fake_slack.install()[0]} if i % 3 == 0 else {"code": ""}
        st, _, d = svc.req("POST", "/api/slackWebhooks", body, token=tokens.admin1, headers=hdr)
        assert st in (201, 400), d
    for svc in (b, a):
        st, h, d = svc.req("POST", "/api/slackWebhooks", {"code": "x"}, token=tokens.admin1, headers=hdr)
        assert st == 429 and d == {"error": "Too many webhook creation requests from this IP, please try again "
                                            "after an hour."}
        assert 3500 <= int(h.get("Retry-After")) <= 3600
    # another client is not affected
    st, _, d = a.req("POST", "/api/slackWebhooks", {"code": ""}, token=tokens.admin1,
                     headers={"X-Forwarded-For": rand_ip()})
    assert st == 400


def test_rate_limit_in_process_without_redis(module_service, fake_slack, tokens):
    svc = module_service(REDIS_URL="", **slack_env(fake_slack))   # TRUST_PROXY off: the peer counts
    for i in range(10):
        st, _, d = svc.req("POST", "/api/slackWebhooks", {"code": ""}, token=tokens.admin1,
                           headers={"X-Forwarded-For": rand_ip()})
        assert st == 400, d
    st, h, d = svc.req("POST", "/api/slackWebhooks", {"code": fake_slack.install()[0]}, token=tokens.admin1)
    assert st == 429 and "Too many webhook creation requests" in d["error"] and h.get("Retry-After")
