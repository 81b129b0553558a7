# The duplicate check's backlog (issue 12): the rows of <tenant>.llm_keys without a
# fingerprint are listed in <tenant>.integrationsd_llm_keys_unfingerprinted (a trigger
# on INSERT), so a create looks them up with one indexed probe instead of an anti-join
# over the organization's keys. Issue 9's rules hold: a row VerifyWise's backend wrote
# (plaintext, no fingerprint) is still caught as a duplicate and gets its fingerprint
# the first time a create sees it; rows integrationsd writes are never listed; a tenant
# of the previous version is migrated in place with its unfingerprinted rows listed.
# A fingerprint records the stored key it was taken from (key_md5): a key that another
# writer changes loses its fingerprint and is listed again (tenant DDL version 5).
import threading
import time

import pytest

from conftest import Db, fresh_db, new_llm_key, tenant_hash

DUP = "This API key is already configured"
BACKLOG = "integrationsd_llm_keys_unfingerprinted"


def create(s, token, key, name="OpenAI", model="gpt-4o"):
    return s.req("POST", "/api/llm-keys", token=token, body={"name": name, "key": key, "model": model})


def listed(db, org):
    return [r["key_id"] for r in db.rows('SELECT key_id FROM "%s".%s ORDER BY key_id' % (tenant_hash(org), BACKLOG))]


def fingerprint(db, org, key_id):
    return db.scalar('SELECT fingerprint FROM "%s".integrationsd_llm_key_fingerprints WHERE key_id = %%s'
                     % tenant_hash(org), (key_id,))


def fingerprint_of_stored_key(db, org, key_id):
    """Does the row's fingerprint record the key as it is stored now?"""
    t = tenant_hash(org)
    return db.scalar('SELECT f.key_md5 = md5(k.key) FROM "%s".integrationsd_llm_key_fingerprints f'
                     ' JOIN "%s".llm_keys k ON k.id = f.key_id WHERE f.key_id = %%s' % (t, t), (key_id,))


def update_like_verifywise(db, org, key_id, key):
    db.execute('UPDATE "%s".llm_keys SET key = %%s WHERE id = %%s' % tenant_hash(org), (key, key_id))


def insert_like_verifywise(db, org, key, name="OpenAI"):
    return db.scalar('INSERT INTO "%s".llm_keys (key, name, url, model) VALUES (%%s, %%s, %%s, %%s) RETURNING id'
                     % tenant_hash(org), (key, name, "https://api.openai.com/v1/", "gpt-4o"))


def caught_after_rekey(s, token, db, kid, new, old, name):
    """After row kid's stored key changed from old to new: a create of new (as provider
    name) settles the row's fingerprint and is refused as a duplicate, writing nothing;
    old is free to add again."""
    n = db.llm_count(1)
    st, _, data = create(s, token, new, name=name)
    assert st == 400 and data["data"].startswith(DUP), data
    assert db.llm_count(1) == n
    assert listed(db, 1) == [] and fingerprint_of_stored_key(db, 1, kid)
    st, _, data = create(s, token, old)
    assert st == 201, data


@pytest.fixture
def fresh(service, pg, request):
    db = Db(pg, fresh_db(pg, "itest_backlog_%s" % request.node.name[5:40]))
    s = service(db=db.dbname)
    yield s, db
    db.close()


def test_rows_written_by_integrationsd_are_never_listed(fresh, tokens):
    s, db = fresh
    ids = []
    for _ in range(3):
        st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
        assert st == 201, data
        ids.append(data["data"]["id"])
        assert listed(db, 1) == []
    patched = new_llm_key("OpenAI")
    st, _, data = s.req("PATCH", "/api/llm-keys/%d" % ids[0], token=tokens.admin1, body={"key": patched})
    assert st == 200, data
    assert listed(db, 1) == []
    assert all(fingerprint(db, 1, i) for i in ids)
    # the PATCH's new key keeps the fingerprint it wrote (the re-key trigger finds it in
    # place) and is a duplicate from then on
    assert all(fingerprint_of_stored_key(db, 1, i) for i in ids)
    n = db.llm_count(1)
    st, _, data = create(s, tokens.admin1, patched, name="OpenRouter")
    assert st == 400 and data["data"].startswith(DUP), data
    assert db.llm_count(1) == n


def test_key_changed_by_verifywise_loses_its_fingerprint(fresh, tokens):
    """VerifyWise's backend (or anyone) changing a stored key: the old key's fingerprint
    goes and the row is listed, so the new key is caught as a duplicate and the old one
    may be added again."""
    s, db = fresh
    old = new_llm_key("OpenAI")
    st, _, data = create(s, tokens.admin1, old)
    assert st == 201, data
    kid = data["data"]["id"]
    other = create(s, tokens.admin1, new_llm_key("Anthropic"), name="Anthropic")[2]["data"]["id"]
    new = new_llm_key("OpenAI")
    update_like_verifywise(db, 1, kid, new)  # plaintext, as VerifyWise's backend stores it
    assert listed(db, 1) == [kid] and fingerprint(db, 1, kid) is None
    assert fingerprint(db, 1, other) and listed(db, 1) == [kid]  # other rows untouched
    # an UPDATE that leaves the key alone changes nothing
    db.execute('UPDATE "%s".llm_keys SET model = %%s WHERE id = %%s' % tenant_hash(1), ("gpt-4.1", other))
    db.execute('UPDATE "%s".llm_keys SET key = key WHERE id = %%s' % tenant_hash(1), (other,))
    assert fingerprint(db, 1, other) and listed(db, 1) == [kid]
    caught_after_rekey(s, tokens.admin1, db, kid, new, old, "OpenRouter")


def test_verifywise_row_is_listed_then_fingerprinted_and_caught(fresh, tokens):
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))  # the tenant exists
    assert st == 201, data
    key = new_llm_key("OpenAI")
    vw = insert_like_verifywise(db, 1, key)
    assert listed(db, 1) == [vw] and fingerprint(db, 1, vw) is None
    # any create settles the backlog: the row gets its fingerprint and leaves the list
    st, _, data = create(s, tokens.admin1, new_llm_key("Anthropic"), name="Anthropic")
    assert st == 201, data
    assert listed(db, 1) == [] and fingerprint(db, 1, vw)
    # and the fingerprint is the key's: the same key is a duplicate
    n = db.llm_count(1)
    st, _, data = create(s, tokens.admin1, key, name="OpenRouter")
    assert st == 400 and data["data"].startswith(DUP), data
    assert db.llm_count(1) == n


def test_verifywise_duplicate_caught_on_first_sight(fresh, tokens):
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    key = new_llm_key("OpenAI")
    vw = insert_like_verifywise(db, 1, key)
    n = db.llm_count(1)
    st, _, data = create(s, tokens.admin1, key)
    assert st == 400 and data["data"].startswith(DUP), data
    assert db.llm_count(1) == n
    assert listed(db, 1) == [] and fingerprint(db, 1, vw)


def test_unreadable_row_stays_listed_and_blocks_nothing(fresh, tokens):
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    bad = insert_like_verifywise(db, 1, "00112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff")
    for _ in range(2):
        st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
        assert st == 201, data
    assert listed(db, 1) == [bad] and fingerprint(db, 1, bad) is None


def test_listed_row_with_a_fingerprint_leaves_the_list(fresh, tokens):
    """A row fingerprinted by an instance of the previous version (which does not
    maintain the list) is taken off it at the next create, its fingerprint kept."""
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    vw = insert_like_verifywise(db, 1, new_llm_key("OpenAI"))
    db.execute('INSERT INTO "%s".integrationsd_llm_key_fingerprints (key_id, fingerprint) VALUES (%%s, %%s)'
               % tenant_hash(1), (vw, "f" * 64))
    assert listed(db, 1) == [vw]
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    assert listed(db, 1) == [] and fingerprint(db, 1, vw) == "f" * 64


def test_deleted_row_leaves_the_list(fresh, tokens):
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    vw = insert_like_verifywise(db, 1, new_llm_key("OpenAI"))
    st, _, data = s.req("DELETE", "/api/llm-keys/%d" % vw, token=tokens.admin1)
    assert st == 200, data
    assert listed(db, 1) == []


def _one_key_then_version(service, tokens, pg, dbname, version, undo):
    """A tenant with one key created through the service, then stopped and put back in the
    shape tenant DDL version `version` left (the statements of undo, %s: the tenant), with
    the public objects of the previous release, so the next start upgrades every known
    tenant. (db, tenant, key, its id)."""
    db = Db(pg, fresh_db(pg, dbname))
    t = tenant_hash(1)
    s = service(db=db.dbname)
    key = new_llm_key("OpenAI")
    st, _, data = create(s, tokens.admin1, key)
    assert st == 201, data
    s.stop()
    for stmt in undo:
        db.execute(stmt % t)
    db.execute("UPDATE public.integration_tenants SET ddl_version = %s WHERE schema_name = %s", (version, t))
    db.execute("COMMENT ON FUNCTION public.integrationsd_ensure_tenant(text, bigint) IS 'integrationsd schema old'")
    return db, t, key, data["data"]["id"]


def test_tenant_of_the_previous_version_is_migrated_in_place(service, tokens, pg):
    # the shape version 3 left: no list, no trigger; then VerifyWise writes two rows
    db, t, k_ours, ours = _one_key_then_version(service, tokens, pg, "itest_backlog_migrate", 3, [
        'DROP TABLE "%s".' + BACKLOG,
        'DROP TRIGGER integrationsd_unfingerprinted ON "%s".llm_keys',
        'DROP FUNCTION "%s".integrationsd_llm_keys_unfingerprinted()'])
    k1, k2 = new_llm_key("OpenAI"), new_llm_key("Anthropic")
    vw1, vw2 = insert_like_verifywise(db, 1, k1), insert_like_verifywise(db, 1, k2, name="Anthropic")
    s2 = service(db=db.dbname)
    assert db.scalar("SELECT ddl_version FROM public.integration_tenants WHERE schema_name = %s", (t,)) == 5
    assert listed(db, 1) == [vw1, vw2]  # exactly the rows without a fingerprint
    # the trigger is back: a later VerifyWise row is listed too
    vw3 = insert_like_verifywise(db, 1, new_llm_key("OpenRouter"), name="OpenRouter")
    assert listed(db, 1) == [vw1, vw2, vw3]
    # both VerifyWise keys and integrationsd's own are still duplicates
    for key in (k2, k1, k_ours):
        st, _, data = create(s2, tokens.admin1, key)
        assert st == 400 and data["data"].startswith(DUP), data
    assert listed(db, 1) == []
    assert all(fingerprint(db, 1, i) for i in (ours, vw1, vw2, vw3))
    db.close()


def test_verifywise_on_another_role_still_inserts(fresh, tokens):
    """The trigger writes integrationsd's table as its owner: a VerifyWise backend whose
    role may only use llm_keys can still insert, and its row is listed."""
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    t = tenant_hash(1)
    db.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'itest_vw_backend') THEN"
               " CREATE ROLE itest_vw_backend; END IF; END $$")
    db.execute('GRANT USAGE ON SCHEMA "%s" TO itest_vw_backend' % t)
    db.execute('GRANT SELECT, INSERT, UPDATE ON "%s".llm_keys TO itest_vw_backend' % t)
    db.execute('GRANT USAGE ON ALL SEQUENCES IN SCHEMA "%s" TO itest_vw_backend' % t)
    key = new_llm_key("OpenAI")
    vw = db.scalar("SET ROLE itest_vw_backend;"
                   ' INSERT INTO "%s".llm_keys (key, name, url, model) VALUES (%%s, %%s, %%s, %%s) RETURNING id'
                   % t, (key, "OpenAI", "https://api.openai.com/v1/", "gpt-4o"))
    db.execute("RESET ROLE")
    assert listed(db, 1) == [vw]
    st, _, data = create(s, tokens.admin1, key)
    assert st == 400 and data["data"].startswith(DUP), data
    # and it may change a key: the fingerprint goes, the row is listed again
    assert listed(db, 1) == [] and fingerprint(db, 1, vw)
    db.execute('SET ROLE itest_vw_backend; UPDATE "%s".llm_keys SET key = %%s WHERE id = %%s' % t,
               (new_llm_key("OpenAI"), vw))
    db.execute("RESET ROLE")
    assert listed(db, 1) == [vw] and fingerprint(db, 1, vw) is None


def test_key_changed_while_a_create_fingerprints_it_stays_listed(fresh, tokens, pg):
    """A listed row whose key another writer changes between the create's read of it and
    the create's backfill gets no fingerprint of the key it read: it stays listed, and the
    next create fingerprints the key as stored then."""
    s, db = fresh
    st, _, data = create(s, tokens.admin1, new_llm_key("OpenAI"))
    assert st == 201, data
    old, new = new_llm_key("OpenAI"), new_llm_key("OpenAI")
    vw = insert_like_verifywise(db, 1, old)
    assert listed(db, 1) == [vw]
    writer = pg.connect(db.dbname)  # VerifyWise's backend, mid-transaction
    writer.autocommit = False
    with writer.cursor() as cur:
        cur.execute('UPDATE "%s".llm_keys SET key = %%s WHERE id = %%s' % tenant_hash(1), (new, vw))
    out = {}
    th = threading.Thread(target=lambda: out.update(r=create(s, tokens.admin1, new_llm_key("Anthropic"),
                                                             name="Anthropic")))
    th.start()
    time.sleep(0.5)  # the create has read the old key and waits on the row for its backfill
    assert th.is_alive(), out
    writer.commit()
    writer.close()
    th.join(10)
    assert out["r"][0] == 201, out
    assert listed(db, 1) == [vw] and fingerprint(db, 1, vw) is None
    caught_after_rekey(s, tokens.admin1, db, vw, new, old, "OpenRouter")


def test_fingerprints_of_version_4_are_taken_again(service, tokens, pg):
    """A tenant of version 4 (fingerprints without key_md5, no re-key trigger): its
    fingerprints are dropped and their rows listed, and the next create takes them again
    from the keys as stored now, so a key changed before the upgrade is caught too."""
    db, t, k1, kid = _one_key_then_version(service, tokens, pg, "itest_backlog_v4", 4, [
        'DROP TRIGGER integrationsd_rekeyed ON "%s".llm_keys',
        'DROP FUNCTION "%s".integrationsd_llm_key_rekeyed()',
        'ALTER TABLE "%s".integrationsd_llm_key_fingerprints DROP COLUMN key_md5'])
    k2 = new_llm_key("OpenAI")
    update_like_verifywise(db, 1, kid, k2)  # under version 4: nothing notices
    s2 = service(db=db.dbname)
    assert db.scalar("SELECT ddl_version FROM public.integration_tenants WHERE schema_name = %s", (t,)) == 5
    assert listed(db, 1) == [kid] and fingerprint(db, 1, kid) is None
    caught_after_rekey(s2, tokens.admin1, db, kid, k2, k1, "Anthropic")
    db.close()
