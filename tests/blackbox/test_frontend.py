# What the real VerifyWise frontend sends, replayed exactly (issue 9), and the shared
# database with VerifyWise's backend:
#   - Settings -> API Keys -> Edit sends back the masked key the list showed: it means
#     "unchanged" (the stored key still decrypts to the original and still verifies); any
#     other masked-looking key is refused on PATCH and on create, changing nothing.
#   - "Re-run sync" / Model Inventory "Refresh" send only GET /models: it syncs when the
#     stored records are old, concurrent calls share one sync, a recent sync is not repeated,
#     ?refresh=false never syncs, the wait is bounded by the configured MLflow timeout and a
#     failed sync falls back to the stored records with the failure reported.
#   - A key row written the way VerifyWise's backend writes it (plaintext, no fingerprint) is
#     masked on output and found by the duplicate check; llm_keys keeps VerifyWise's columns,
#     and an old database whose llm_keys carried integrationsd's key_fingerprint column is
#     migrated in place without losing the fingerprints.
import concurrent.futures
import time

import pytest

from conftest import SEEN_KEYS, Db, fresh_db, new_llm_key, tenant_hash
from fakes.mlflow import API, dead_url

MASKED = "Key looks masked: type the full key to change it"
MLFLOW = "/api/integrations/mlflow"
# VerifyWise's llm_keys columns (contract 3.6): nothing of integrationsd's may be added.
VERIFYWISE_LLM_COLUMNS = {"id", "key", "name", "url", "model", "created_at"}


@pytest.fixture(scope="module")
def fsvc(module_service, fake_llm):
    return module_service(**fake_llm.env())


def mask(key):
    return "****..." + key[-4:]


def llm_list(s, token):
    st, _, data = s.req("GET", "/api/llm-keys", token=token)
    assert st == 200, data
    return data["data"]


def add_key(s, token, name="Anthropic", model="claude-sonnet-4-5"):
    key = new_llm_key(name)
    st, _, data = s.req("POST", "/api/llm-keys", token=token, body={"name": name, "key": key, "model": model})
    assert st == 201, data
    return data["data"]["id"], key


def decrypt_stored(db, org, key_id):
    from test_llm_keys import openssl_decrypt_scheme_b
    return openssl_decrypt_scheme_b(db.llm_row(org, key_id)["key"]).decode("utf-8")


def assert_no_key_in(data):
    text = repr(data)
    for k in SEEN_KEYS:
        assert k not in text


# ---------------------------------------------------------------- 1. Edit without retyping

def test_edit_dialog_patch_with_the_listed_mask_keeps_the_key(fsvc, tokens, db):
    key_id, key = add_key(fsvc, tokens.admin1)
    listed = next(k for k in llm_list(fsvc, tokens.admin1) if k["id"] == key_id)
    assert listed["key"] == mask(key)
    # exactly what the Edit dialog sends after changing only the model
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % key_id, token=tokens.admin1,
                           body={"name": "Anthropic", "key": listed["key"], "model": "claude-haiku-4-5-20251001"})
    assert st == 200 and data["message"] == "OK", data
    assert data["data"]["model"] == "claude-haiku-4-5-20251001" and data["data"]["key"] == mask(key)
    assert decrypt_stored(db, 1, key_id) == key  # not the mask
    assert db.llm_row(1, key_id)["model"] == "claude-haiku-4-5-20251001"
    st, _, data = fsvc.req("POST", "/api/llm-keys/%d/verify" % key_id, token=tokens.admin1, timeout=20)
    assert st == 200 and data["data"]["valid"] is True, data
    assert_no_key_in(data)


def test_patch_with_only_the_own_mask_changes_nothing(fsvc, tokens, db):
    key_id, key = add_key(fsvc, tokens.admin1)
    before = db.llm_row(1, key_id)
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % key_id, token=tokens.admin1, body={"key": mask(key)})
    assert st == 200 and data["data"]["id"] == key_id and data["data"]["key"] == mask(key), data
    assert db.llm_row(1, key_id) == before


@pytest.mark.parametrize("value", ["****...QRST", "****", "****abcd-not-a-real-key", "****...ALIDX"])
def test_patch_with_another_masked_value_is_400_and_changes_nothing(fsvc, tokens, db, value):
    key_id, key = add_key(fsvc, tokens.admin1)
    before = db.llm_row(1, key_id)
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % key_id, token=tokens.admin1,
                           body={"name": "OpenAI", "key": value, "model": "gpt-4o"})
    assert st == 400 and data == {"message": "Bad Request", "data": MASKED}, data
    assert db.llm_row(1, key_id) == before


def test_patch_with_a_mask_of_another_rows_key_is_400(fsvc, tokens, db):
    a_id, a_key = add_key(fsvc, tokens.admin1)
    b_id, b_key = add_key(fsvc, tokens.admin1)
    if mask(a_key) == mask(b_key):  # both end in VALID: use an explicit other suffix
        other = "****...WXYZ"
    else:
        other = mask(b_key)
    before = db.llm_row(1, a_id)
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % a_id, token=tokens.admin1, body={"key": other})
    assert st == 400 and data["data"] == MASKED
    assert db.llm_row(1, a_id) == before


@pytest.mark.parametrize("value", ["****...QRST", "****", "****sk-ant-api03-something"])
def test_create_with_a_masked_key_is_400(fsvc, tokens, db, value):
    n = db.llm_count(1)
    st, _, data = fsvc.req("POST", "/api/llm-keys", token=tokens.admin1,
                           body={"name": "Anthropic", "key": value, "model": "claude-sonnet-4-5"})
    assert st == 400 and data == {"message": "Bad Request", "data": MASKED}, data
    assert db.llm_count(1) == n


def test_masked_patch_of_unknown_or_other_tenants_id_is_404(fsvc, tokens, db):
    key_id, key = add_key(fsvc, tokens.admin1)
    for token in (tokens.admin2,):  # another organization
        st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % key_id, token=token, body={"key": mask(key)})
        assert st == 404, data
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/2147483647", token=tokens.admin1, body={"key": mask(key)})
    assert st == 404, data


def test_a_real_key_starting_differently_still_changes_the_key(fsvc, tokens, db):
    key_id, key = add_key(fsvc, tokens.admin1)
    new = new_llm_key("Anthropic")
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % key_id, token=tokens.admin1, body={"key": new})
    assert st == 200 and data["data"]["key"] == mask(new), data
    assert decrypt_stored(db, 1, key_id) == new


# ---------------------------------------------------------------- 3. rows VerifyWise's backend wrote

def insert_like_verifywise(db, org, key, name="OpenAI", model="gpt-4o"):
    """What VerifyWise's backend does on create: plaintext key, no fingerprint anywhere."""
    return db.scalar('INSERT INTO "%s".llm_keys (key, name, url, model) VALUES (%%s, %%s, %%s, %%s) RETURNING id'
                     % tenant_hash(org), (key, name, "https://api.openai.com/v1/", model))


def test_llm_keys_keeps_verifywise_columns(fsvc, tokens, db):
    add_key(fsvc, tokens.admin1)
    cols = {r["column_name"] for r in db.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'llm_keys'",
        (tenant_hash(1),))}
    assert cols == VERIFYWISE_LLM_COLUMNS


def test_verifywise_plaintext_row_is_masked_and_found_by_the_duplicate_check(fsvc, tokens, db):
    add_key(fsvc, tokens.admin1)  # the tenant exists
    key = new_llm_key("OpenAI")
    vw_id = insert_like_verifywise(db, 1, key)
    assert db.llm_row(1, vw_id)["key_fingerprint"] is None
    listed = next(k for k in llm_list(fsvc, tokens.admin1) if k["id"] == vw_id)
    assert listed["key"] == mask(key)
    st, _, data = fsvc.req("GET", "/api/llm-keys/OpenAI", token=tokens.admin1)
    assert st == 200 and key not in repr(data)
    n = db.llm_count(1)
    st, _, data = fsvc.req("POST", "/api/llm-keys", token=tokens.admin1,
                           body={"name": "Anthropic", "key": key, "model": "claude-sonnet-4-5"})
    assert st == 400 and data["data"].startswith("This API key is already configured"), data
    assert db.llm_count(1) == n
    # the row got its fingerprint when first seen, so later checks need no backfill
    assert db.llm_row(1, vw_id)["key_fingerprint"]
    # the same key through PATCH of another row is refused too
    other_id, _ = add_key(fsvc, tokens.admin1)
    before = db.llm_row(1, other_id)
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % other_id, token=tokens.admin1, body={"key": key})
    assert st == 400 and data["data"] == "This API key is already configured. Please use a different API key."
    assert db.llm_row(1, other_id) == before


def test_verifywise_row_edited_with_its_mask_keeps_its_plaintext(fsvc, tokens, db):
    add_key(fsvc, tokens.admin1)
    key = new_llm_key("OpenAI")
    vw_id = insert_like_verifywise(db, 1, key)
    st, _, data = fsvc.req("PATCH", "/api/llm-keys/%d" % vw_id, token=tokens.admin1,
                           body={"name": "OpenAI", "key": mask(key), "model": "gpt-4.1"})
    assert st == 200 and data["data"]["model"] == "gpt-4.1", data
    assert db.llm_row(1, vw_id)["key"] == key  # untouched, still readable by VerifyWise


def test_old_key_fingerprint_column_is_migrated(service, tokens, pg):
    dbname = fresh_db(pg, "itest_fp_migrate")
    odb = Db(pg, dbname)
    s = service(db=dbname)
    k1 = new_llm_key("OpenAI")
    st, _, data = s.req("POST", "/api/llm-keys", token=tokens.admin1, body={"name": "OpenAI", "key": k1,
                                                                             "model": "gpt-4o"})
    assert st == 201, data
    kid = data["data"]["id"]
    s.stop()
    t = tenant_hash(1)
    if True:
        fp = odb.scalar('SELECT fingerprint FROM "%s".integrationsd_llm_key_fingerprints WHERE key_id = %%s' % t,
                        (kid,))
        # put the database back in the shape earlier versions left: the fingerprint as a
        # column of VerifyWise's table, and no table of our own
        odb.execute('ALTER TABLE "%s".llm_keys ADD COLUMN key_fingerprint TEXT' % t)
        odb.execute('CREATE UNIQUE INDEX llm_keys_key_fingerprint_key ON "%s".llm_keys (key_fingerprint)' % t)
        odb.execute('UPDATE "%s".llm_keys SET key_fingerprint = %%s WHERE id = %%s' % t, (fp, kid))
        odb.execute('DROP TABLE "%s".integrationsd_llm_key_fingerprints' % t)
        # earlier versions recorded no schema version for the tenant
        odb.execute("UPDATE public.integration_tenants SET ddl_version = 0 WHERE schema_name = %s", (t,))
    s2 = service(db=dbname)
    st, _, data = s2.req("POST", "/api/llm-keys", token=tokens.admin1, body={"name": "Anthropic", "key": k1,
                                                                              "model": "claude-sonnet-4-5"})
    assert st == 400 and data["data"].startswith("This API key is already configured"), data
    if True:
        cols = {r["column_name"] for r in odb.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'llm_keys'",
            (t,))}
        assert cols == VERIFYWISE_LLM_COLUMNS
        assert odb.scalar('SELECT fingerprint FROM "%s".integrationsd_llm_key_fingerprints WHERE key_id = %%s'
                          % t, (kid,)) == fp


# ---------------------------------------------------------------- 2. "Re-run sync" = GET /models

def mlflow_test_and_save(s, token, url, timeout=10):
    """The Integrations page: Test connection, then Save, with the bodies the frontend sends."""
    body = {"trackingServerUrl": url, "authMethod": "none", "timeout": timeout, "verifySsl": True}
    st, _, data = s.req("POST", MLFLOW + "/test", token=token, body=body, timeout=30)
    assert st == 200 and data.get("success") is True, data
    st, _, data = s.req("POST", MLFLOW + "/configure", token=token, body=body)
    assert st == 200, data


def history_rows(db, org):
    return db.rows('SELECT * FROM "%s".mlflow_sync_history ORDER BY id' % tenant_hash(org))


def test_rerun_sync_after_save_shows_the_servers_models(service, tokens, pg, mlflow_fakes):
    db = Db(pg, fresh_db(pg, "itest_fe_rerun"))
    fake = mlflow_fakes(n_experiments=2, runs_per_experiment=3, n_models=1, versions_per_model=1)
    s = service(db=db.dbname)
    t = tokens.admin1  # org 10
    mlflow_test_and_save(s, t, fake.url)
    before = len(history_rows(db, 1))
    st, _, data = s.req("GET", MLFLOW + "/models", token=t, timeout=40)
    assert st == 200 and data["configured"] is True and "connected" not in data, data
    run_ids = {m["run_id"] for m in data["models"] if m["id"] == m["version"]}
    assert fake.run("1", 0)["info"]["run_id"] in run_ids and fake.run("2", 2)["info"]["run_id"] in run_ids
    assert any(m["id"] == "model-000/1" for m in data["models"])
    assert len(history_rows(db, 1)) == before + 1
    st, _, status = s.req("GET", MLFLOW + "/sync-status", token=t)
    assert status["data"]["lastSyncedAt"] is not None and status["data"]["lastSyncStatus"] == "success"
    # a second click within MLFLOW_MODELS_MAX_AGE_S answers from the database
    n = len(fake.calls("/experiments/search"))
    st, _, again = s.req("GET", MLFLOW + "/models", token=t)
    assert st == 200 and again == data
    assert len(fake.calls("/experiments/search")) == n and len(history_rows(db, 1)) == before + 1
    # ?refresh=false never syncs
    st, _, again = s.req("GET", MLFLOW + "/models?refresh=false", token=t)
    assert st == 200 and again == data and len(fake.calls("/experiments/search")) == n
    # the lowest role and another user of the organization see the same models; another
    # organization sees none of them and starts no sync at this server
    for other in (tokens.auditor1, tokens.editor1):
        st, _, again = s.req("GET", MLFLOW + "/models", token=other)
        assert st == 200 and again == data
    st, _, theirs = s.req("GET", MLFLOW + "/models", token=tokens.admin2)
    assert st == 200 and theirs == {"configured": False, "models": []}, theirs
    assert len(fake.calls("/experiments/search")) == n and len(history_rows(db, 1)) == before + 1


def test_concurrent_get_models_share_one_sync(service, tokens, pg, mlflow_fakes):
    db = Db(pg, fresh_db(pg, "itest_fe_concurrent"))
    fake = mlflow_fakes(n_experiments=2, runs_per_experiment=2, page_delay=0.8)
    s = service(db=db.dbname)
    t = tokens.admin1
    mlflow_test_and_save(s, t, fake.url)
    before = len(history_rows(db, 1))
    runs_before = len(fake.calls("/runs/search"))
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: s.req("GET", MLFLOW + "/models", token=t, timeout=40), range(4)))
    bodies = [r[2] for r in results]
    assert all(r[0] == 200 for r in results), bodies
    assert all(b == bodies[0] and len(b["models"]) >= 4 for b in bodies), bodies
    assert len(history_rows(db, 1)) == before + 1  # one sync for the four requests
    # one runs/search per page of the one sync (2 experiments fit one chunk)
    assert len(fake.calls("/runs/search")) - runs_before == 1


def test_models_sync_is_bounded_by_the_configured_timeout(service, tokens, pg, mlflow_fakes):
    db = Db(pg, fresh_db(pg, "itest_fe_bound"))
    fake = mlflow_fakes(n_experiments=1, runs_per_experiment=1)
    s = service(db=db.dbname)
    t = tokens.admin1
    mlflow_test_and_save(s, t, fake.url, timeout=3)
    fake.page_delay = 6.0  # the sync's runs page takes longer than the 3 s bound
    t0 = time.monotonic()
    st, _, data = s.req("GET", MLFLOW + "/models", token=t, timeout=40)
    took = time.monotonic() - t0
    print("GET /models waited %.2f s for a sync bounded at 3 s" % took)
    assert st == 200 and data["configured"] is True, data
    assert data.get("message") == "MLFlow sync is still running; showing the stored models", data
    assert 2.9 <= took < 5.5, took  # not before the bound, not long after it


def test_failed_sync_falls_back_to_stored_models(service, tokens, pg, mlflow_fakes):
    db = Db(pg, fresh_db(pg, "itest_fe_fallback"))
    fake = mlflow_fakes(n_experiments=1, runs_per_experiment=2)
    s = service(db=db.dbname, MLFLOW_MODELS_MAX_AGE_S="0")
    t = tokens.admin1
    mlflow_test_and_save(s, t, fake.url)
    st, _, first = s.req("GET", MLFLOW + "/models", token=t, timeout=40)
    assert st == 200 and len(first["models"]) >= 2, first
    # the server goes away: the next click syncs (max age 0), fails, and shows what is stored
    url = dead_url()
    db.execute('UPDATE "%s".mlflow_integrations SET tracking_server_url = %%s' % tenant_hash(1), (url,))
    st, _, data = s.req("GET", MLFLOW + "/models", token=t, timeout=40)
    assert st == 200, data
    assert data.get("connected") is False and data.get("message") == "MLFlow server is not reachable", \
        data
    assert {m["id"] for m in data["models"]} == {m["id"] for m in first["models"]}
    # ?refresh=true keeps VerifyWise's failure shape
    st, _, data = s.req("GET", MLFLOW + "/models?refresh=true", token=t, timeout=40)
    assert data == {"configured": True, "connected": False, "models": [],
                    "message": "MLFlow server is not reachable"}


def test_get_models_of_unconfigured_tenant_syncs_nothing(service, tokens, pg):
    s = service(db=fresh_db(pg, "itest_models_unconf"))
    for path in ("/models", "/models?refresh=false", "/models?refresh=true"):
        st, _, data = s.req("GET", MLFLOW + path, token=tokens.admin1)
        assert st == 200 and data == {"configured": False, "models": []}, data
