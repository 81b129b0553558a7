# Prepared statements (DB_PREPARED_STATEMENTS): a statement is parsed once per database
# connection and then only bound and executed. The answers are the same whatever the
# cache's size (0: off; 1: emptied, DEALLOCATE ALL, at every new statement), and a
# connection the server dropped comes back with nothing assumed prepared.
import time

import pytest

from conftest import Db, fresh_db, new_llm_key


def scenario(s, token):
    """LLM keys and GitHub routes, each statement at least twice; returns what was read."""
    out = []
    ids = []
    for i in range(3):
        st, _, d = s.req("POST", "/api/llm-keys", token=token,
                         body={"name": "OpenAI", "key": new_llm_key("OpenAI"), "model": "gpt-4o"})
        assert st == 201, d
        ids.append(d["data"]["id"])
    dup_key = new_llm_key("Anthropic")
    for expect in (201, 400, 400):
        st, _, d = s.req("POST", "/api/llm-keys", token=token,
                         body={"name": "Anthropic", "key": dup_key, "model": "claude-sonnet-4-5"})
        assert st == expect, d
    for _ in range(2):
        st, _, d = s.req("GET", "/api/llm-keys", token=token)
        assert st == 200, d
        out.append(sorted((k["id"], k["name"], k["model"]) for k in d["data"]))
        st, _, d = s.req("GET", "/api/llm-keys/status", token=token)
        assert st == 200 and d["data"]["keyCount"] == 4, d
        st, _, d = s.req("GET", "/api/integrations/github/token", token=token)
        assert st == 200, d
    for i, kid in enumerate(ids):
        st, _, d = s.req("PATCH", "/api/llm-keys/%d" % kid, token=token, body={"model": "m-%d" % i})
        assert st == 200 and d["data"]["model"] == "m-%d" % i, d
    st, _, d = s.req("DELETE", "/api/llm-keys/%d" % ids[0], token=token)
    assert st == 200, d
    st, _, d = s.req("DELETE", "/api/llm-keys/%d" % ids[0], token=token)
    assert st == 404, d
    st, _, d = s.req("GET", "/api/llm-keys", token=token)
    assert st == 200, d
    out.append(sorted((k["name"], k["model"]) for k in d["data"]))
    return out


@pytest.mark.parametrize("prepared", ["0", "1", "64"])
def test_answers_do_not_depend_on_the_cache_size(service, tokens, pg, prepared):
    db = Db(pg, fresh_db(pg, "itest_prepared_%s" % prepared))
    s = service(db=db.dbname, DB_PREPARED_STATEMENTS=prepared, CACHE_BYTES="0")
    out = scenario(s, tokens.admin1)
    assert out[0] == out[1]
    assert out[2] == sorted([("OpenAI", "m-1"), ("OpenAI", "m-2"), ("Anthropic", "claude-sonnet-4-5")])
    db.close()


def test_reconnected_connection_prepares_afresh(service, tokens, pg):
    db = Db(pg, fresh_db(pg, "itest_prepared_reconnect"))
    s = service(db=db.dbname, CACHE_BYTES="0", DB_POOL_SIZE="2")
    scenario(s, tokens.admin1)  # every route's statements prepared on both connections
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
               " WHERE datname = %s AND pid <> pg_backend_pid()", (db.dbname,))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if s.req("GET", "/api/llm-keys", token=tokens.admin1)[0] == 200:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # both connections back
    # not one statement may find its name missing on the new sessions
    for _ in range(10):
        for path in ("/api/llm-keys", "/api/llm-keys/status", "/api/integrations/github/token"):
            st, _, d = s.req("GET", path, token=tokens.admin1)
            assert st == 200, (path, d)
    st, _, d = s.req("POST", "/api/llm-keys", token=tokens.admin1,
                     body={"name": "OpenAI", "key": new_llm_key("OpenAI"), "model": "gpt-4o"})
    assert st == 201, d
    db.close()
