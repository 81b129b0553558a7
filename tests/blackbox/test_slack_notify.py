# Slack notifications and Redis events: routing of notify messages (Redis and POST
# /api/notifications) to exactly the matching webhooks, idempotency, malformed messages,
# retries and pacing, pending deliveries resumed after a restart, token rotation, the
# events a subscriber receives (msgpack, SPEC section 6 fields, no secret), and a Redis
# restart in the middle.
import os
import random
import time

import msgpack
import pytest

from conftest import (SLACK_CLIENT_SECRET, EventSubscriber, new_gh_token, new_llm_key, publish_notify,
                      redis_kill, redis_start_again, slack_env, tenant_hash, wait_until)
from test_slack import ROUTING, rand_ip, webhook

POLICY, MEMBERS = "Policy reminders and status", "Membership and roles"
EVENT_KEYS = {"v", "type", "id", "time", "organization_id", "tenant", "actor_user_id", "data"}


@pytest.fixture(scope="module")
def nsvc(module_service, fake_slack):
    return module_service(TRUST_PROXY="true", **slack_env(fake_slack))


@pytest.fixture(scope="module")
def sub(redis_server):
    s = EventSubscriber(redis_server)
    yield s
    s.close()




def key():
    return "k-%d-%d" % (time.time_ns(), random.randint(0, 1 << 30))


@pytest.fixture(scope="module")
def hooks(nsvc, fake_slack, tokens):
    """a: admin1 [Policy]; b: editor1 [Policy, Members]; c: editor1 [Members]; d: admin1 [Policy] inactive;
    e: admin2 (org 2) [Policy]."""
    h = {}
    h["a"] = webhook(nsvc, fake_slack, tokens.admin1, [POLICY])
    h["b"] = webhook(nsvc, fake_slack, tokens.editor1, [POLICY, MEMBERS])
    h["c"] = webhook(nsvc, fake_slack, tokens.editor1, [MEMBERS])
    h["d"] = webhook(nsvc, fake_slack, tokens.admin1, [POLICY])
    st, _, _ = nsvc.req("PATCH", "/api/slackWebhooks/%d" % h["d"][0], {"is_active": False}, token=tokens.admin1)
    assert st == 202
    h["e"] = webhook(nsvc, fake_slack, tokens.admin2, [POLICY])
    return h


def got(fake, hooks, name, title=None):
    msgs = fake.messages_for(hooks[name][1].channel_id)
    if title is not None:
        msgs = [m for m in msgs if m["body"]["blocks"][0]["text"]["text"] == title]
    return msgs


def wait_subscribed(svc, timeout=15):
    def ok():
        st, _, d = svc.req("GET", "/readyz")
        return st == 200 and d["redis"] == "up" and d["events"]["subscribed"] is True
    return wait_until(ok, timeout, 0.1)


def test_redis_notify_reaches_exactly_matching_webhooks(nsvc, fake_slack, hooks, db, sub, redis_server):
    assert wait_subscribed(nsvc)
    title = "Policy Review Reminder " + key()
    assert publish_notify(redis_server, {"organization_id": 1, "routing_type": POLICY, "title": title,
                                         "message": "Policy due soon", "idempotency_key": key()}) >= 1
    assert wait_until(lambda: got(fake_slack, hooks, "a", title) and got(fake_slack, hooks, "b", title))
    time.sleep(1.5)
    for n, want in (("a", 1), ("b", 1), ("c", 0), ("d", 0), ("e", 0)):
        assert len(got(fake_slack, hooks, n, title)) == want, n
    body = got(fake_slack, hooks, "a", title)[0]["body"]
    assert body["text"] == "Notification from VerifyWise" and body["blocks"][1]["text"]["text"] == "Policy due soon"
    rows = db.rows("SELECT * FROM public.slack_deliveries WHERE title = %s ORDER BY webhook_id", (title,))
    assert sorted(r["webhook_id"] for r in rows) == sorted([hooks["a"][0], hooks["b"][0]])
    assert all(r["status"] == "sent" and r["attempts"] == 1 and r["slack_ts"] for r in rows)
    ev = sub.wait_for(lambda e: e["type"] == "slack.message.sent" and e["data"].get("delivery_id") in
                      [r["id"] for r in rows])
    assert ev and set(ev[0]) - {"channel"} == EVENT_KEYS and ev[0]["organization_id"] == 1
    assert ev[0]["tenant"] == tenant_hash(1) and ev[0]["actor_user_id"] is None


def test_redis_notify_for_one_user_and_other_org(nsvc, fake_slack, hooks, redis_server):
    assert wait_subscribed(nsvc)
    t1, t2 = "one user " + key(), "org two " + key()
    publish_notify(redis_server, {"organization_id": 1, "user_id": 2, "routing_type": POLICY, "title": t1,
                                  "message": "m"})
    publish_notify(redis_server, {"organization_id": 2, "routing_type": POLICY, "title": t2, "message": "m"})
    assert wait_until(lambda: got(fake_slack, hooks, "b", t1) and got(fake_slack, hooks, "e", t2))
    time.sleep(1.2)
    assert [len(got(fake_slack, hooks, n, t1)) for n in "abcde"] == [0, 1, 0, 0, 0]
    assert [len(got(fake_slack, hooks, n, t2)) for n in "abcde"] == [0, 0, 0, 0, 1]


def test_published_twice_delivered_once(nsvc, fake_slack, hooks, redis_server, tokens, db):
    assert wait_subscribed(nsvc)
    t, k = "twice " + key(), key()
    msg = {"organization_id": 1, "routing_type": MEMBERS, "title": t, "message": "m", "idempotency_key": k}
    publish_notify(redis_server, msg)
    publish_notify(redis_server, msg)
    # the same over REST, twice: the second is a duplicate of the first (the caller's keys
    # are their own: they neither collide with the notify channel's nor anyone else's)
    t2, k2 = "twice rest " + key(), key()
    body = {"routing_type": MEMBERS, "title": t2, "message": "m", "idempotency_key": k2}
    st, _, d = nsvc.req("POST", "/api/notifications", body, token=tokens.admin1)
    assert st == 202 and d["data"] == {"matched": 2, "queued": 2, "duplicates": 0}, d
    st, _, d = nsvc.req("POST", "/api/notifications", body, token=tokens.admin1)
    assert st == 202 and d["data"] == {"matched": 2, "queued": 0, "duplicates": 2}, d
    assert wait_until(lambda: all(got(fake_slack, hooks, h, x) for h in "bc" for x in (t, t2)))
    time.sleep(2.5)
    for x in (t, t2):
        assert len(got(fake_slack, hooks, "b", x)) == 1 and len(got(fake_slack, hooks, "c", x)) == 1
    assert db.scalar("SELECT count(*) FROM public.slack_deliveries WHERE idempotency_key = %s", (k,)) == 2


def test_idempotency_keys_scoped_to_the_caller(nsvc, fake_slack, hooks, tokens, db, redis_server):
    """An Editor cannot pre-claim a key: the Admin's notification, and the notify channel's,
    with the same key are still delivered."""
    assert wait_subscribed(nsvc)
    k = key()
    t1, t2, t3 = ("claimed by editor " + key(), "admin same key " + key(), "notify same key " + key())
    st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": MEMBERS, "title": t1, "message": "m",
                                                       "idempotency_key": k}, token=tokens.editor1)
    assert st == 202 and d["data"] == {"matched": 2, "queued": 2, "duplicates": 0}, d
    st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": MEMBERS, "title": t2, "message": "m",
                                                       "idempotency_key": k}, token=tokens.admin1)
    assert st == 202 and d["data"] == {"matched": 2, "queued": 2, "duplicates": 0}, d
    publish_notify(redis_server, {"organization_id": 1, "routing_type": MEMBERS, "title": t3, "message": "m",
                                  "idempotency_key": k})
    assert wait_until(lambda: all(got(fake_slack, hooks, h, x) for h in "bc" for x in (t1, t2, t3)), 15)
    # the notify channel's key is stored as sent (SPEC 6); REST keys under their caller
    assert db.scalar("SELECT count(*) FROM public.slack_deliveries WHERE idempotency_key = %s", (k,)) == 2
    assert db.scalar("SELECT count(*) FROM public.slack_deliveries WHERE idempotency_key = %s",
                     ("user:2:" + k,)) == 2
    # a key too long to be stored with its scope still deduplicates (hashed), per caller
    long_k = "L" * 255
    body = {"routing_type": MEMBERS, "title": "long key " + key(), "message": "m", "idempotency_key": long_k}
    st, _, d = nsvc.req("POST", "/api/notifications", body, token=tokens.editor1)
    assert st == 202 and d["data"]["queued"] == 2, d
    st, _, d = nsvc.req("POST", "/api/notifications", body, token=tokens.editor1)
    assert st == 202 and d["data"] == {"matched": 2, "queued": 0, "duplicates": 2}, d
    st, _, d = nsvc.req("POST", "/api/notifications", body, token=tokens.admin1)
    assert st == 202 and d["data"]["queued"] == 2, d


def test_notifications_reach_only_what_the_caller_manages(nsvc, fake_slack, hooks, tokens, db):
    """SPEC 5: a non-Admin reaches only their own webhooks (another user_id is 403), an Admin
    the organization's or one named user's; matched/queued count only those."""
    before = db.scalar("SELECT count(*) FROM public.slack_deliveries")
    t = "auditor " + key()
    # the Auditor (user 6) has no webhook: nothing matched, nothing revealed about others'
    st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": POLICY, "title": t, "message": "m"},
                        token=tokens.auditor1)
    assert st == 202 and d["data"] == {"matched": 0, "queued": 0, "duplicates": 0}, d
    for tok, uid in ((tokens.auditor1, 1), (tokens.editor1, 1), (tokens.reviewer1, 2)):
        st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": POLICY, "title": t, "message": "m",
                                                           "user_id": uid}, token=tok)
        assert st == 403 and "Admin" in d["data"], d
    assert db.scalar("SELECT count(*) FROM public.slack_deliveries") == before
    # the Editor naming themself, or nobody: their own webhook only
    te = "editor own " + key()
    for extra in ({}, {"user_id": 2}):
        st, _, d = nsvc.req("POST", "/api/notifications", dict({"routing_type": POLICY, "title": te, "message": "m"},
                                                               **extra), token=tokens.editor1)
        assert st == 202 and d["data"]["matched"] == 1, d
    # the Admin naming the Editor: the Editor's webhook; naming nobody: the organization's
    ta, to = "admin for editor " + key(), "admin org " + key()
    st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": POLICY, "title": ta, "message": "m",
                                                       "user_id": 2}, token=tokens.admin1)
    assert st == 202 and d["data"]["matched"] == 1, d
    st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": POLICY, "title": to, "message": "m"},
                        token=tokens.admin1)
    assert st == 202 and d["data"]["matched"] == 2, d
    assert wait_until(lambda: got(fake_slack, hooks, "a", to) and got(fake_slack, hooks, "b", to) and
                      got(fake_slack, hooks, "b", ta) and len(got(fake_slack, hooks, "b", te)) == 2, 15)
    time.sleep(1.2)
    assert not got(fake_slack, hooks, "a", te) and not got(fake_slack, hooks, "a", ta)
    assert not got(fake_slack, hooks, "a", t) and not got(fake_slack, hooks, "b", t)


def test_post_notifications(nsvc, fake_slack, hooks, tokens, db):
    t = "post " + key()
    st, _, d = nsvc.req("POST", "/api/notifications", {"routing_type": POLICY, "title": t, "message": "hello"},
                        token=tokens.editor1)
    # the Editor's own webhook only (b), not the Admin's (a)
    assert st == 202 and d["message"] == "Accepted" and d["data"] == {"matched": 1, "queued": 1, "duplicates": 0}
    assert wait_until(lambda: got(fake_slack, hooks, "b", t))
    rows = db.rows("SELECT actor_user_id, webhook_id FROM public.slack_deliveries WHERE title = %s", (t,))
    assert [(r["actor_user_id"], r["webhook_id"]) for r in rows] == [(2, hooks["b"][0])]
    before = db.scalar("SELECT count(*) FROM public.slack_deliveries")
    for body in ({}, {"routing_type": "Nope", "title": "t", "message": "m"},
                 {"routing_type": POLICY, "title": "t"}, {"routing_type": POLICY, "title": "t" * 151, "message": "m"},
                 {"routing_type": POLICY, "title": "t", "message": "m" * 3001},
                 {"routing_type": [POLICY], "title": "t", "message": "m"},
                 {"routing_type": POLICY, "title": "t", "message": "m", "idempotency_key": "k" * 256},
                 {"routing_type": POLICY, "title": "t", "message": "m", "idempotency_key": 5},
                 {"routing_type": POLICY, "title": "t", "message": "m", "user_id": "2"}):
        st, _, d = nsvc.req("POST", "/api/notifications", body, token=tokens.admin1)
        assert st == 400 and isinstance(d["data"], str), body
    assert db.scalar("SELECT count(*) FROM public.slack_deliveries") == before


def test_malformed_notify_messages_dropped_valid_keep_flowing(nsvc, fake_slack, hooks, redis_server):
    assert wait_subscribed(nsvc)
    run = key()
    good = {"organization_id": 1, "routing_type": MEMBERS, "message": "m"}

    def bad_msg(i, **kw):  # every bad message has a title of its own, so each is checked
        return msgpack.packb(dict(good, title="bad %d %s" % (i, run), **kw))
    full = bad_msg(1)
    bad = [os.urandom(200), full[:-3], b"", b"\xc1",
           bad_msg(4, organization_id="1"), msgpack.packb(dict(good, title=5)),
           bad_msg(6, routing_type="Unknown type"), msgpack.packb([1, 2, 3]),
           bad_msg(8, organization_id=-4), msgpack.packb(dict(good, title="t" * 151)),
           bad_msg(10, message=b"bin"), bad_msg(11, organization_id=2 ** 40),
           bad_msg(12, pad="x" * (10 * 1024 * 1024)), bad_msg(13, message="m" * 3001),
           msgpack.packb(dict(good, title=b"bad bin title " + run.encode()))]
    good["title"] = "x"
    for b in bad:
        publish_notify(redis_server, b)
    t = "after garbage " + key()
    publish_notify(redis_server, dict(good, title=t))
    assert wait_until(lambda: got(fake_slack, hooks, "c", t), 15)
    assert nsvc.alive()
    for n in "abcde":
        assert not [m for m in fake_slack.messages_for(hooks[n][1].channel_id)
                    if m["body"]["blocks"][0]["text"]["text"] == "t" * 151 or run in m["body"]["blocks"][0]["text"]["text"]]


def test_retry_after_429_and_5xx(nsvc, fake_slack, tokens, redis_server, db, sub):
    wid, inst = webhook(nsvc, fake_slack, tokens.admin10, ["Evidence and task alerts"])
    fake_slack.set_mode(inst.channel_id, "ratelimited")
    fake_slack.retry_after = 1
    t = "retry " + key()
    publish_notify(redis_server, {"organization_id": 10, "routing_type": "Evidence and task alerts", "title": t,
                                  "message": "m"})
    assert wait_until(lambda: len([p for p in fake_slack.posts if p["channel"] == inst.channel_id]) >= 2, 10)
    fake_slack.set_mode(inst.channel_id, "e500")
    time.sleep(1.5)
    fake_slack.set_mode(inst.channel_id, "ok")
    assert wait_until(lambda: fake_slack.messages_for(inst.channel_id), 15)
    row = wait_until(lambda: db.one("SELECT * FROM public.slack_deliveries WHERE title = %s AND status = 'sent'",
                                    (t,)), 5)
    assert row and row["attempts"] >= 3
    posts = [p["time"] for p in fake_slack.posts if p["channel"] == inst.channel_id]
    assert all(b - a >= 0.95 for a, b in zip(posts, posts[1:])), posts


def test_failed_for_good_and_channel_gone(nsvc, fake_slack, tokens, redis_server, db, sub):
    wid, inst = webhook(nsvc, fake_slack, tokens.admin10, ["Control or policy changes"])
    fake_slack.set_mode(inst.channel_id, "channel_not_found")
    t = "gone " + key()
    publish_notify(redis_server, {"organization_id": 10, "routing_type": "Control or policy changes", "title": t,
                                  "message": "m"})
    row = wait_until(lambda: db.one("SELECT * FROM public.slack_deliveries WHERE title = %s AND status = 'failed'",
                                    (t,)), 10)
    assert row and "channel_not_found" in row["last_error"]
    assert db.scalar("SELECT is_active FROM public.slack_webhooks WHERE id = %s", (wid,)) is False
    ev = sub.wait_for(lambda e: e["type"] == "slack.message.failed" and e["data"].get("delivery_id") == row["id"])
    assert ev and ev[0]["data"]["error"]
    assert sub.wait_for(lambda e: e["type"] == "slack.webhook.updated" and e["data"].get("id") == wid
                        and e["data"].get("is_active") is False)


def test_pacing_one_per_second_per_webhook(nsvc, fake_slack, tokens, redis_server):
    wid, inst = webhook(nsvc, fake_slack, tokens.admin10, [MEMBERS])
    for i in range(4):
        publish_notify(redis_server, {"organization_id": 10, "routing_type": MEMBERS, "title": "p%d" % i,
                                      "message": "m"})
    assert wait_until(lambda: len(fake_slack.messages_for(inst.channel_id)) == 4, 15)
    times = [m["time"] for m in fake_slack.messages_for(inst.channel_id)]
    assert [m["body"]["blocks"][0]["text"]["text"] for m in fake_slack.messages_for(inst.channel_id)] == \
        ["p0", "p1", "p2", "p3"]
    assert all(b - a >= 0.95 for a, b in zip(times, times[1:])), times


def test_pending_at_shutdown_resumed_at_next_start(service, fake_slack, tokens, redis_server, db):
    a = service(TRUST_PROXY="true", **slack_env(fake_slack))
    wid, inst = webhook(a, fake_slack, tokens.admin10, [POLICY])
    fake_slack.set_mode(inst.channel_id, "ratelimited")
    fake_slack.retry_after = 30
    try:
        t = "pending " + key()
        st, _, d = a.req("POST", "/api/notifications", {"routing_type": POLICY, "title": t, "message": "m"},
                         token=tokens.admin10)
        assert st == 202 and d["data"]["queued"] == 1
        assert wait_until(lambda: [p for p in fake_slack.posts if p["channel"] == inst.channel_id], 10)
        a.stop_and_check()
    finally:
        fake_slack.retry_after = 1
    row = db.one("SELECT * FROM public.slack_deliveries WHERE title = %s", (t,))
    assert row["status"] == "pending" and row["attempts"] == 1
    db.execute("UPDATE public.slack_deliveries SET next_attempt_at = now() WHERE id = %s", (row["id"],))
    fake_slack.set_mode(inst.channel_id, "ok")
    service(TRUST_PROXY="true", **slack_env(fake_slack))
    assert wait_until(lambda: fake_slack.messages_for(inst.channel_id), 40, 0.2)
    assert wait_until(lambda: db.scalar("SELECT status FROM public.slack_deliveries WHERE id = %s",
                                        (row["id"],)) == "sent", 5)
    assert len(fake_slack.messages_for(inst.channel_id)) == 1


# a webhook with integrationsd's own columns of it
WEBHOOK_ROW = ("SELECT w.*, x.refresh_token, x.refresh_token_iv, x.deactivated_reason FROM public.slack_webhooks w "
               "LEFT JOIN public.integrationsd_slack_webhooks x ON x.webhook_id = w.id WHERE w.id = %s")


def test_token_rotation_and_failed_refresh(service, fake_slack, tokens, db, sub):
    svc = service(TRUST_PROXY="true", **slack_env(fake_slack))
    wid, inst = webhook(svc, fake_slack, tokens.admin10, rotate=True)
    db.execute("UPDATE public.integrationsd_slack_webhooks SET token_expires_at = now() + interval '30 seconds' "
               "WHERE webhook_id = %s", (wid,))
    first = inst.bot_token
    assert wait_until(lambda: inst.old_tokens == [first], 15, 0.2)
    from conftest import slack_scheme_a_plain
    row = wait_until(lambda: (lambda r: r if slack_scheme_a_plain(r["access_token"], r["access_token_iv"]) ==
                              inst.bot_token else None)(db.one(WEBHOOK_ROW, (wid,))), 5)
    assert row and row["is_active"] and slack_scheme_a_plain(row["refresh_token"], row["refresh_token_iv"]) == \
        inst.refresh_token
    st, _, d = svc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                       token=tokens.admin10)
    assert st == 200 and fake_slack.messages_for(inst.channel_id)[-1]["via"] == "api"
    # a refresh Slack refuses deactivates the webhook with the reason
    fake_slack.fail_refresh(inst.channel_id, "invalid_refresh_token")
    db.execute("UPDATE public.integrationsd_slack_webhooks SET token_expires_at = now() + interval '30 seconds' "
               "WHERE webhook_id = %s", (wid,))
    row = wait_until(lambda: db.one(WEBHOOK_ROW + " AND NOT w.is_active", (wid,)), 15, 0.2)
    assert row and "invalid_refresh_token" in row["deactivated_reason"]
    for line in svc.log_lines():
        assert inst.bot_token not in line and inst.refresh_token not in line and first not in line


def test_events_decode_and_carry_no_secret(nsvc, fake_slack, tokens, sub, fake_github, module_service,
                                           redis_server):
    from conftest import slack_env as _se
    svc = module_service(TRUST_PROXY="true", GITHUB_API_URL=fake_github.url, **_se(fake_slack))
    start = time.time() * 1000
    secrets_seen = [SLACK_CLIENT_SECRET]
    wid, inst = webhook(svc, fake_slack, tokens.admin1, [POLICY])
    secrets_seen += [inst.bot_token, inst.url]
    assert svc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                   token=tokens.admin1)[0] == 200
    assert svc.req("DELETE", "/api/slackWebhooks/%d" % wid, token=tokens.admin1)[0] == 204
    k = new_llm_key("OpenAI")
    st, _, d = svc.req("POST", "/api/llm-keys", {"name": "OpenAI", "key": k, "model": "gpt-4o"}, token=tokens.admin1)
    assert st == 201
    k2 = new_llm_key("OpenAI")
    assert svc.req("PATCH", "/api/llm-keys/%d" % d["data"]["id"], {"key": k2}, token=tokens.admin1)[0] == 200
    assert svc.req("DELETE", "/api/llm-keys/%d" % d["data"]["id"], token=tokens.admin1)[0] == 200
    gh = new_gh_token()
    assert svc.req("POST", "/api/integrations/github/token", {"token": gh}, token=tokens.admin1)[0] == 201
    secrets_seen += [k, k2, gh]
    want = ["slack.webhook.created", "slack.webhook.updated", "slack.message.sent", "slack.webhook.deleted",
            "llm_key.created", "llm_key.updated", "llm_key.deleted", "github.token.saved"]
    for t in want:
        assert sub.wait_for(lambda e, t=t: e["type"] == t and e["time"] >= start - 1000), t
    assert not sub.undecodable
    for e in [e for e in sub.events if e["time"] >= start - 1000]:
        assert set(e) - {"channel"} == EVENT_KEYS, e
        assert e["channel"] == "verifywise:integrations:" + e["type"]
        assert e["v"] == 1 and isinstance(e["id"], str) and len(e["id"]) == 32 and isinstance(e["time"], int)
        assert isinstance(e["organization_id"], int) and isinstance(e["data"], dict)
        text = repr(e)
        for s in secrets_seen:
            assert s not in text, (e["type"], s[:8])
        assert "access_token" not in text and "xox" not in text and "hooks" not in text


def test_redis_killed_and_restarted(service, fake_slack, tokens, redis_server, db):
    svc = service(TRUST_PROXY="true", **slack_env(fake_slack))
    wid, inst = webhook(svc, fake_slack, tokens.admin10, ["Projects and organizations"])
    assert wait_subscribed(svc)
    redis_kill(redis_server)
    try:
        for _ in range(3):
            st, _, d = svc.req("GET", "/api/slackWebhooks", token=tokens.admin10)
            assert st == 200 and wid in [w["id"] for w in d["data"]]
        st, _, d = svc.req("PATCH", "/api/slackWebhooks/%d" % wid, {"is_active": True}, token=tokens.admin10)
        assert st == 202
        # creation still counts (in process) and answers
        code, inst2 = fake_slack.install()
        st, _, d = svc.req("POST", "/api/slackWebhooks", {"code": code}, token=tokens.admin10,
                           headers={"X-Forwarded-For": rand_ip()})
        assert st == 201, d
        st, _, d = svc.req("POST", "/api/notifications", {"routing_type": "Projects and organizations",
                                                          "title": "during outage", "message": "m"},
                           token=tokens.admin10)
        assert st == 202
        assert wait_until(lambda: fake_slack.messages_for(inst.channel_id), 10)
    finally:
        redis_start_again(redis_server)
    assert wait_subscribed(svc, 20)
    t = "after restart " + key()
    publish_notify(redis_server, {"organization_id": 10, "routing_type": "Projects and organizations", "title": t,
                                  "message": "m"})
    assert wait_until(lambda: [m for m in fake_slack.messages_for(inst.channel_id)
                               if m["body"]["blocks"][0]["text"]["text"] == t], 10)
