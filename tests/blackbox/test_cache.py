# The read cache and the membership cache (issue: performance), coherent with every writer:
#   - read-your-writes: a write through an instance shows in that instance's very next read;
#   - a write straight into PostgreSQL (as VerifyWise's backend would) and a write through a
#     second instance show in every instance's reads within 100 ms of the commit, and
#     /metrics shows the answer was a hit before and invalidated after;
#   - a role or organization change in public.users is applied on the very next request
#     after the NOTIFY (no AUTH_CACHE_MS wait);
#   - the LISTEN connection killed: reads stay correct (caching off), the cache comes back;
#   - CACHE_BYTES=0: no caching at all; per-user answers are never shared between users.
import re
import time

import pytest

from conftest import Db, fresh_db, new_llm_key, tenant_hash, token_for

CACHE_RE = re.compile(r'^integrationsd_cache_total\{op="(\w+)"\} (\d+)$', re.M)
BOUND_S = 0.1


def cache_stats(s):
    st, _, body = s.req("GET", "/metrics")
    assert st == 200
    text = body.decode() if isinstance(body, bytes) else body
    stats = {k: int(v) for k, v in CACHE_RE.findall(text)}
    m = re.search(r"^integrationsd_cache_listen_up (\S+)$", text, re.M)
    stats["listen_up"] = float(m.group(1)) if m else None
    return stats


def wait_listening(s, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cache_stats(s)["listen_up"] == 1:
            return
        time.sleep(0.02)
    pytest.fail("the LISTEN connection did not come up within %s s" % timeout)


def keys(s, token):
    st, _, data = s.req("GET", "/api/llm-keys", token=token)
    assert st == 200, data
    return {k["id"] for k in data["data"]}


def insert_plain(db, org, key):
    return db.scalar('INSERT INTO "%s".llm_keys (key, name, url, model) VALUES (%%s, %%s, %%s, %%s) RETURNING id'
                     % tenant_hash(org), (key, "OpenAI", "https://api.openai.com/v1/", "gpt-4o"))


def add_webhook(db, user):
    """A webhook the way VerifyWise's backend writes it (its owner's organization applies)."""
    return db.scalar("INSERT INTO public.slack_webhooks (access_token, access_token_iv, scope, user_id, team_name,"
                     " team_id, channel, channel_id, configuration_url, url, url_iv)"
                     " VALUES ('x', 'x', 'incoming-webhook', %s, 'T', 'T1', '#c', 'C1', 'https://x', 'x', 'x')"
                     " RETURNING id", (user,))


def poll_until(pred, bound):
    """Poll pred() until true; returns the seconds it took (asserting it was within bound)."""
    t0 = time.monotonic()
    while True:
        if pred():
            took = time.monotonic() - t0
            assert took <= bound, "took %.3f s (bound %.3f s)" % (took, bound)
            return took
        if time.monotonic() - t0 > bound + 2:
            pytest.fail("not visible within %.1f s" % (bound + 2))
        time.sleep(0.002)


@pytest.fixture
def cdb(pg):
    return Db(pg, fresh_db(pg, "itest_cache_%d" % (time.monotonic_ns() % 10**9)))


def test_hit_then_read_your_writes(service, tokens, cdb):
    s = service(db=cdb.dbname)
    wait_listening(s)
    t = tokens.admin1
    before = keys(s, t)
    st0 = cache_stats(s)
    assert keys(s, t) == before
    st1 = cache_stats(s)
    assert st1["hit"] == st0["hit"] + 1, (st0, st1)  # the second read was served from the cache
    st, _, data = s.req("POST", "/api/llm-keys", token=t,
                        body={"name": "OpenAI", "key": new_llm_key("OpenAI"), "model": "gpt-4o"})
    assert st == 201, data
    assert data["data"]["id"] in keys(s, t)  # the very next read, no wait
    st, _, data = s.req("DELETE", "/api/llm-keys/%d" % data["data"]["id"], token=t)
    assert st == 200
    assert keys(s, t) == before
    # the other read routes of the tenant were dropped too
    st, _, status = s.req("GET", "/api/llm-keys/status", token=t)
    assert status["data"]["keyCount"] == len(before)


def test_direct_database_write_is_seen_within_100ms(service, tokens, cdb):
    s = service(db=cdb.dbname)
    wait_listening(s)
    t = tokens.admin1
    keys(s, t)
    keys(s, t)
    hits = cache_stats(s)["hit"]
    keys(s, t)
    assert cache_stats(s)["hit"] > hits  # cached before the write
    inv = cache_stats(s)["invalidation"]
    kid = insert_plain(cdb, 1, new_llm_key("OpenAI"))  # committed (autocommit) when this returns
    took = poll_until(lambda: kid in keys(s, t), BOUND_S)
    print("a write straight into PostgreSQL was visible after %.1f ms" % (took * 1000))
    assert cache_stats(s)["invalidation"] > inv
    cdb.execute('DELETE FROM "%s".llm_keys WHERE id = %%s' % tenant_hash(1), (kid,))
    poll_until(lambda: kid not in keys(s, t), BOUND_S)


def test_write_through_another_instance_is_seen_within_100ms(service, tokens, cdb):
    a = service(db=cdb.dbname)
    b = service(db=cdb.dbname)
    wait_listening(a)
    wait_listening(b)
    t = tokens.admin1
    keys(a, t)
    keys(a, t)
    st, _, data = b.req("POST", "/api/llm-keys", token=t,
                        body={"name": "OpenAI", "key": new_llm_key("OpenAI"), "model": "gpt-4o"})
    assert st == 201
    kid = data["data"]["id"]
    took = poll_until(lambda: kid in keys(a, t), BOUND_S)
    print("a write through another instance was visible after %.1f ms" % (took * 1000))
    # and the Slack list (public.slack_webhooks, per user) likewise
    st, _, before = a.req("GET", "/api/slackWebhooks", token=t)
    assert st == 200
    wid = add_webhook(cdb, user=1)
    try:
        def listed():
            st, _, d = a.req("GET", "/api/slackWebhooks", token=t)
            return st == 200 and wid in {w["id"] for w in d["data"]}
        poll_until(listed, BOUND_S)
    finally:
        cdb.execute("DELETE FROM public.slack_webhooks WHERE id = %s", (wid,))


def test_role_change_applies_on_the_next_request(service, tokens, cdb):
    s = service(db=cdb.dbname, AUTH_CACHE_MS="60000")  # the bound would hide nothing here
    wait_listening(s)
    editor = tokens.editor1  # user 2, organization 1, role Editor
    for _ in range(3):
        st, _, _ = s.req("GET", "/api/llm-keys", token=editor)
        assert st == 200
    cdb.execute("UPDATE public.users SET role_id = 4 WHERE id = 2")  # now an Auditor

    def refused():
        st, _, data = s.req("GET", "/api/llm-keys", token=editor)
        return st == 403 and data == {"message": "Not allowed to access"}
    took = poll_until(refused, BOUND_S)
    print("a role change was applied after %.1f ms" % (took * 1000))
    auditor = token_for(2, 1, "Auditor")
    st, _, _ = s.req("GET", "/api/llm-keys", token=auditor)
    assert st == 200
    cdb.execute("UPDATE public.users SET organization_id = 2 WHERE id = 2")  # moved away

    def gone():
        st, _, data = s.req("GET", "/api/llm-keys", token=auditor)
        return st == 403 and data == {"message": "User does not belong to this organization"}
    poll_until(gone, BOUND_S)


def test_listen_connection_killed_reads_stay_correct(service, tokens, cdb, pg):
    s = service(db=cdb.dbname)
    wait_listening(s)
    t = tokens.admin1
    keys(s, t)
    keys(s, t)
    admin = Db(pg, "postgres")
    n = admin.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
                     " AND application_name = 'integrationsd' AND query LIKE 'LISTEN%%'", (cdb.dbname,))
    assert n == 1, "exactly one LISTEN connection"
    # until the service notices, and while it reconnects, every read must still be right
    kid = insert_plain(cdb, 1, new_llm_key("OpenAI"))
    deadline = time.monotonic() + 5
    seen_down = False
    while time.monotonic() < deadline and not seen_down:
        assert kid in keys(s, t)
        seen_down = cache_stats(s)["listen_up"] == 0
    # down: a read now, then a change nobody announces, then a read
    keys(s, t)
    kid2 = insert_plain(cdb, 1, new_llm_key("OpenAI"))
    assert kid2 in keys(s, t)
    assert seen_down, "the LISTEN connection's loss was never noticed"
    wait_listening(s)
    # caching is back, and coherent
    keys(s, t)
    hits = cache_stats(s)["hit"]
    keys(s, t)
    assert cache_stats(s)["hit"] > hits
    kid3 = insert_plain(cdb, 1, new_llm_key("OpenAI"))
    poll_until(lambda: kid3 in keys(s, t), BOUND_S)


def test_cache_off_serves_nothing_from_memory(service, tokens, cdb):
    s = service(db=cdb.dbname, CACHE_BYTES="0")
    wait_listening(s)
    t = tokens.admin1
    for _ in range(3):
        keys(s, t)
    st = cache_stats(s)
    assert st["hit"] == 0 and st["store"] == 0
    kid = insert_plain(cdb, 1, new_llm_key("OpenAI"))
    assert kid in keys(s, t)


def test_per_user_answers_are_not_shared(service, tokens, cdb):
    s = service(db=cdb.dbname)
    wait_listening(s)
    cdb.execute("INSERT INTO public.users (id, organization_id, role_id) VALUES (7, 1, 3)")  # a second Editor
    other_editor = token_for(7, 1, "Editor")
    wid = add_webhook(cdb, user=2)
    time.sleep(0.05)  # let the NOTIFYs of the setup arrive
    for _ in range(2):
        st, _, d = s.req("GET", "/api/slackWebhooks", token=tokens.editor1)  # the owner
        assert wid in {w["id"] for w in d["data"]}
        st, _, d = s.req("GET", "/api/slackWebhooks", token=other_editor)  # same role, another user
        assert wid not in {w["id"] for w in d["data"]}, d
        st, _, d = s.req("GET", "/api/slackWebhooks", token=tokens.admin1)  # Admin: the organization's
        assert wid in {w["id"] for w in d["data"]}
        st, _, d = s.req("GET", "/api/slackWebhooks", token=tokens.admin2)  # another organization
        assert wid not in {w["id"] for w in d["data"]}
