# The Slack post machine (src/integrations/slack/slack_post.c) with the fake Slack: a
# rotating bot token that Slack calls expired is refreshed on demand (once, under the
# refresh lease the rotation tick takes) and the message goes through chat.postMessage
# with the new token, for the send route and for the deliveries; a refresh that fails,
# a lease held elsewhere or a token that does not rotate fall back to the incoming
# webhook as before; two sends that find the same token expired refresh it once.
import concurrent.futures
import time

import pytest

from conftest import slack_env, slack_scheme_a_plain, wait_until
from test_slack import webhook

POLICY = "Policy reminders and status"
ADMIN10_ID = 5   # tokens.admin10: user 5, organization 10


@pytest.fixture
def routed(psvc, fake_slack, tokens, db):
    """A rotating webhook of admin10 routed to POLICY, removed afterwards so that no other
    module's notifications reach it (nor its deliveries anyone else's counts)."""
    made = []

    def make():
        wid, inst = webhook(psvc, fake_slack, tokens.admin10, [POLICY], rotate=True)
        made.append(wid)
        return wid, inst
    yield make
    for wid in made:
        db.execute("DELETE FROM public.slack_webhooks WHERE id = %s", (wid,))


def notify(svc, tokens, title):
    return svc.req("POST", "/api/notifications", {"routing_type": POLICY, "title": title, "message": "M",
                                                  "user_id": ADMIN10_ID}, token=tokens.admin10)


@pytest.fixture(scope="module")
def psvc(module_service, fake_slack):
    return module_service(TRUST_PROXY="true", **slack_env(fake_slack))


def send(svc, wid, token, title="T"):
    return svc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": title, "message": "M"}, token=token)


def posts(fake, inst):
    with fake._lock:
        return [(p["via"], p["status"]) for p in fake.posts if p["channel"] == inst.channel_id]


def refreshes(fake, inst):
    with fake._lock:
        return fake.refreshes.count(inst.channel_id)


def stored_token(db, wid):
    row = db.one("SELECT access_token, access_token_iv FROM public.slack_webhooks WHERE id = %s", (wid,))
    return slack_scheme_a_plain(row["access_token"], row["access_token_iv"])


def test_send_refreshes_an_expired_token_and_posts_with_the_new_one(psvc, fake_slack, tokens, db):
    wid, inst = webhook(psvc, fake_slack, tokens.editor1, rotate=True)
    first = inst.bot_token
    fake_slack.expire_token(inst)
    st, _, d = send(psvc, wid, tokens.editor1)
    assert st == 200 and d["data"]["success"] is True and d["data"]["messageId"], d
    assert refreshes(fake_slack, inst) == 1 and inst.old_tokens == [first]
    assert posts(fake_slack, inst) == [("api", "token_expired"), ("api", "ok")]   # no webhook fallback
    assert fake_slack.messages_for(inst.channel_id)[-1]["via"] == "api"
    assert stored_token(db, wid) == inst.bot_token != first
    row = db.one("SELECT refresh_token, refresh_token_iv, refresh_lease_until, token_expires_at > now() AS later "
                 "FROM public.integrationsd_slack_webhooks WHERE webhook_id = %s", (wid,))
    assert slack_scheme_a_plain(row["refresh_token"], row["refresh_token_iv"]) == inst.refresh_token
    assert row["refresh_lease_until"] is None and row["later"] is True   # the save ended the lease
    # the next send uses the new token at once: no second refresh
    st, _, d = send(psvc, wid, tokens.editor1)
    assert st == 200 and refreshes(fake_slack, inst) == 1
    assert posts(fake_slack, inst)[-1] == ("api", "ok")
    for line in psvc.log_lines():
        assert first not in line and inst.bot_token not in line and inst.refresh_token not in line


def test_delivery_refreshes_an_expired_token_and_posts_with_the_new_one(psvc, fake_slack, tokens, db, routed):
    wid, inst = routed()
    fake_slack.expire_token(inst)
    st, _, d = notify(psvc, tokens, "N1")
    assert st == 202 and d["data"]["queued"] >= 1, d
    assert wait_until(lambda: fake_slack.messages_for(inst.channel_id), 15, 0.1)
    assert wait_until(lambda: db.scalar("SELECT status FROM public.slack_deliveries WHERE webhook_id = %s",
                                        (wid,)) == "sent", 5)
    assert refreshes(fake_slack, inst) == 1
    assert posts(fake_slack, inst) == [("api", "token_expired"), ("api", "ok")]
    assert db.scalar("SELECT attempts FROM public.slack_deliveries WHERE webhook_id = %s", (wid,)) == 1
    assert stored_token(db, wid) == inst.bot_token


def test_failed_refresh_falls_back_to_the_incoming_webhook(psvc, fake_slack, tokens, db):
    wid, inst = webhook(psvc, fake_slack, tokens.editor1, rotate=True)
    first = inst.bot_token
    fake_slack.expire_token(inst)
    fake_slack.fail_refresh(inst.channel_id, "invalid_refresh_token")
    st, _, d = send(psvc, wid, tokens.editor1)
    assert st == 200 and d["data"]["success"] is True
    assert posts(fake_slack, inst) == [("api", "token_expired"), ("webhook", "ok")]
    assert refreshes(fake_slack, inst) == 0 and stored_token(db, wid) == first
    # the refusal is the rotation tick's to judge: the webhook stays active
    assert db.scalar("SELECT is_active FROM public.slack_webhooks WHERE id = %s", (wid,)) is True


def test_failed_refresh_delivery_falls_back(psvc, fake_slack, tokens, db, routed):
    wid, inst = routed()
    fake_slack.expire_token(inst)
    fake_slack.fail_refresh(inst.channel_id, "invalid_refresh_token")
    st, _, d = notify(psvc, tokens, "N2")
    assert st == 202 and d["data"]["queued"] >= 1, d
    assert wait_until(lambda: db.scalar("SELECT status FROM public.slack_deliveries WHERE webhook_id = %s",
                                        (wid,)) == "sent", 15, 0.1)
    assert posts(fake_slack, inst) == [("api", "token_expired"), ("webhook", "ok")]
    assert refreshes(fake_slack, inst) == 0


def test_token_without_rotation_falls_back_at_once(psvc, fake_slack, tokens):
    wid, inst = webhook(psvc, fake_slack, tokens.editor1)   # no refresh token
    fake_slack.expire_token(inst)
    st, _, d = send(psvc, wid, tokens.editor1)
    assert st == 200
    assert posts(fake_slack, inst) == [("api", "token_expired"), ("webhook", "ok")]
    assert refreshes(fake_slack, inst) == 0


def test_lease_held_elsewhere_is_not_taken(psvc, fake_slack, tokens, db):
    wid, inst = webhook(psvc, fake_slack, tokens.editor1, rotate=True)
    first = inst.bot_token
    fake_slack.expire_token(inst)
    db.execute("UPDATE public.integrationsd_slack_webhooks SET refresh_lease_until = now() + interval '1 minute' "
               "WHERE webhook_id = %s", (wid,))
    st, _, d = send(psvc, wid, tokens.editor1)
    assert st == 200
    assert posts(fake_slack, inst) == [("api", "token_expired"), ("webhook", "ok")]
    assert refreshes(fake_slack, inst) == 0 and stored_token(db, wid) == first
    # once the lease ran out the next send refreshes
    db.execute("UPDATE public.integrationsd_slack_webhooks SET refresh_lease_until = now() - interval '1 second' "
               "WHERE webhook_id = %s", (wid,))
    st, _, d = send(psvc, wid, tokens.editor1)
    assert st == 200 and refreshes(fake_slack, inst) == 1
    assert posts(fake_slack, inst)[-2:] == [("api", "token_expired"), ("api", "ok")]


def test_concurrent_sends_refresh_once(psvc, fake_slack, tokens, db):
    wid, inst = webhook(psvc, fake_slack, tokens.editor1, rotate=True)
    fake_slack.expire_token(inst)
    fake_slack.delay = 0.3   # every answer slow: the sends overlap
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            res = list(ex.map(lambda i: send(psvc, wid, tokens.editor1, "C%d" % i), range(4)))
    finally:
        fake_slack.delay = 0.0
    assert [r[0] for r in res] == [200] * 4, res
    assert refreshes(fake_slack, inst) == 1
    assert len(fake_slack.messages_for(inst.channel_id)) == 4
    assert stored_token(db, wid) == inst.bot_token
