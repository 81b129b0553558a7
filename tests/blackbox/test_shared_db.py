# Sharing one database with VerifyWise's backend: VerifyWise's tables keep exactly the
# columns of the contract (section 3); what integrationsd records about their rows lives in
# its own integrationsd_* tables. A database in the shape earlier builds left (their
# columns on VerifyWise's tables, with data) is migrated in place, once, by several
# instances starting at once, without losing anything: organizations still scope webhooks,
# refresh tokens still rotate, stale records stay hidden, record kinds and the tested
# configuration's fingerprint still apply. Rows VerifyWise writes (no row of
# integrationsd's) are read with defaults.
import hashlib
import hmac
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import (ENCRYPTION_KEY, Db, _openssl, _slack_key_hex, fresh_db, slack_env, slack_scheme_a_plain,
                      tenant_hash, token_for, wait_until)

# ---- VerifyWise's columns (reference/verifywise-contract.md section 3) -----------------------

VERIFYWISE_COLUMNS = {
    "slack_webhooks": {"id", "access_token", "access_token_iv", "scope", "user_id", "team_name", "team_id",
                       "channel", "channel_id", "configuration_url", "url", "url_iv", "is_active", "created_at",
                       "updated_at", "routing_type"},
    "mlflow_integrations": {"id", "tracking_server_url", "auth_method", "username", "username_iv", "password",
                            "password_iv", "api_token", "api_token_iv", "verify_ssl", "timeout", "last_tested_at",
                            "last_test_status", "last_test_message", "last_synced_at", "last_sync_status",
                            "last_sync_message", "last_successful_test_at", "last_failed_test_at",
                            "last_failed_test_message", "updated_by", "created_at", "updated_at"},
    "mlflow_model_records": {"id", "model_name", "version", "lifecycle_stage", "run_id", "source", "status",
                             "experiment_id", "experiment_name", "training_status", "source_version",
                             "description", "artifact_location", "tags", "metrics", "parameters",
                             "training_started_at", "training_ended_at", "model_created_at", "model_updated_at",
                             "last_synced_at", "created_at", "updated_at"},
    "github_tokens": {"id", "encrypted_token", "token_name", "created_by", "created_at", "updated_at",
                      "last_used_at"},
    "llm_keys": {"id", "key", "name", "url", "model", "created_at"},
}
TENANT_TABLES = ("mlflow_integrations", "mlflow_model_records", "github_tokens", "llm_keys")

# ---- the DDL of earlier builds (src/db/schema.c before the move), verbatim -------------------

OLD_PUBLIC = """DO $do$ BEGIN
  IF to_regtype('public.enum_llm_keys_provider') IS NULL THEN
    CREATE TYPE public.enum_llm_keys_provider AS ENUM ('Anthropic', 'OpenAI', 'OpenRouter');
  END IF;
  CREATE TABLE IF NOT EXISTS public.integration_tenants (
    schema_name VARCHAR(10) PRIMARY KEY,
    organization_id BIGINT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now());
  CREATE TABLE IF NOT EXISTS public.integration_locks (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL);
  CREATE TABLE IF NOT EXISTS public.slack_webhooks (
    id SERIAL PRIMARY KEY,
    access_token VARCHAR(255) NOT NULL,
    access_token_iv VARCHAR(255) NOT NULL,
    scope VARCHAR(255) NOT NULL,
    user_id INTEGER,
    team_name VARCHAR(255) NOT NULL,
    team_id VARCHAR(255) NOT NULL,
    channel VARCHAR(255) NOT NULL,
    channel_id VARCHAR(255) NOT NULL,
    configuration_url VARCHAR(255) NOT NULL,
    url VARCHAR(255) NOT NULL,
    url_iv VARCHAR(255) NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    routing_type TEXT[]);
  ALTER TABLE public.slack_webhooks
    ADD COLUMN IF NOT EXISTS organization_id INTEGER,
    ADD COLUMN IF NOT EXISTS refresh_token TEXT,
    ADD COLUMN IF NOT EXISTS refresh_token_iv VARCHAR(32),
    ADD COLUMN IF NOT EXISTS token_expires_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS refresh_lease_until TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS deactivated_reason TEXT;
  IF (SELECT data_type FROM information_schema.columns WHERE table_schema = 'public'
      AND table_name = 'slack_webhooks' AND column_name = 'access_token') <> 'text' THEN
    ALTER TABLE public.slack_webhooks ALTER COLUMN access_token TYPE TEXT,
      ALTER COLUMN url TYPE TEXT;
  END IF;
  CREATE INDEX IF NOT EXISTS slack_webhooks_team_id ON public.slack_webhooks (team_id);
  CREATE INDEX IF NOT EXISTS slack_webhooks_channel_id ON public.slack_webhooks (channel_id);
  CREATE INDEX IF NOT EXISTS slack_webhooks_is_active ON public.slack_webhooks (is_active);
  CREATE INDEX IF NOT EXISTS slack_webhooks_organization_id
    ON public.slack_webhooks (organization_id, user_id);
  IF to_regclass('public.users') IS NOT NULL THEN
    EXECUTE 'UPDATE public.slack_webhooks w SET organization_id = u.organization_id
      FROM public.users u WHERE w.organization_id IS NULL AND u.id = w.user_id';
  END IF;
  CREATE TABLE IF NOT EXISTS public.slack_deliveries (
    id BIGSERIAL PRIMARY KEY,
    webhook_id INTEGER NOT NULL REFERENCES public.slack_webhooks (id) ON DELETE CASCADE,
    organization_id INTEGER NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL,
    routing_type TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    actor_user_id INTEGER,
    status VARCHAR(10) NOT NULL DEFAULT 'pending'
      CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    slack_ts VARCHAR(64),
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    owner VARCHAR(64),
    lease_until TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, idempotency_key));
  CREATE INDEX IF NOT EXISTS slack_deliveries_pending
    ON public.slack_deliveries (lease_until) WHERE status = 'pending';
END $do$"""

OLD_TENANT_FN = """CREATE OR REPLACE FUNCTION public.itest_old_ensure_tenant(p_schema text, p_org bigint)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_schema !~ '^[A-Za-z0-9]{10}$' THEN
    RAISE EXCEPTION 'invalid tenant schema name';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('integrationsd:tenant:' || p_schema));
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', p_schema);
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.llm_keys (
      id SERIAL PRIMARY KEY,
      key TEXT NOT NULL UNIQUE,
      name public.enum_llm_keys_provider NOT NULL,
      url TEXT,
      model TEXT NOT NULL,
      created_at TIMESTAMPTZ NOT NULL DEFAULT NOW())', p_schema);
  EXECUTE format('ALTER TABLE %I.llm_keys ADD COLUMN IF NOT EXISTS key_fingerprint TEXT', p_schema);
  EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS llm_keys_key_fingerprint_key
      ON %I.llm_keys (key_fingerprint)', p_schema);
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.github_tokens (
      id SERIAL PRIMARY KEY,
      encrypted_token TEXT NOT NULL,
      token_name VARCHAR(100) DEFAULT ''GitHub Personal Access Token'',
      created_by INTEGER NOT NULL,
      created_at TIMESTAMPTZ DEFAULT NOW(),
      updated_at TIMESTAMPTZ DEFAULT NOW(),
      last_used_at TIMESTAMPTZ)', p_schema);
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_integrations (
      id SERIAL PRIMARY KEY,
      tracking_server_url VARCHAR(255) NOT NULL,
      auth_method VARCHAR(10) NOT NULL DEFAULT ''none''
        CHECK (auth_method IN (''none'', ''basic'', ''token'')),
      username VARCHAR(255), username_iv VARCHAR(255),
      password VARCHAR(255), password_iv VARCHAR(255),
      api_token VARCHAR(255), api_token_iv VARCHAR(255),
      verify_ssl BOOLEAN NOT NULL DEFAULT TRUE,
      timeout INTEGER NOT NULL DEFAULT 30,
      last_tested_at TIMESTAMP,
      last_test_status VARCHAR(10) CHECK (last_test_status IN (''success'', ''error'')),
      last_test_message TEXT,
      last_synced_at TIMESTAMP,
      last_sync_status VARCHAR(10) CHECK (last_sync_status IN (''success'', ''partial'', ''error'')),
      last_sync_message TEXT,
      updated_by INTEGER,
      created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)', p_schema);
  EXECUTE format('ALTER TABLE %I.mlflow_integrations
      ADD COLUMN IF NOT EXISTS last_successful_test_at TIMESTAMP,
      ADD COLUMN IF NOT EXISTS last_failed_test_at TIMESTAMP,
      ADD COLUMN IF NOT EXISTS last_failed_test_message TEXT,
      ADD COLUMN IF NOT EXISTS last_tested_fingerprint VARCHAR(64)', p_schema);
  DECLARE n bigint; BEGIN
    EXECUTE format('SELECT count(*) FROM %I.mlflow_integrations', p_schema) INTO n;
    IF n <= 1 THEN
      EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS mlflow_integrations_single_row
          ON %I.mlflow_integrations ((true))', p_schema);
    END IF;
  END;
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_model_records (
      id SERIAL PRIMARY KEY,
      model_name VARCHAR(255) NOT NULL,
      version VARCHAR(255) NOT NULL,
      lifecycle_stage VARCHAR(255), run_id VARCHAR(255), description TEXT,
      source VARCHAR(255), status VARCHAR(255),
      tags JSONB NOT NULL DEFAULT ''{}'', metrics JSONB NOT NULL DEFAULT ''{}'',
      parameters JSONB NOT NULL DEFAULT ''{}'',
      experiment_id VARCHAR(255), experiment_name VARCHAR(255), artifact_location TEXT,
      training_status VARCHAR(255), training_started_at TIMESTAMP, training_ended_at TIMESTAMP,
      source_version VARCHAR(255), model_created_at TIMESTAMP, model_updated_at TIMESTAMP,
      last_synced_at TIMESTAMP,
      created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
      CONSTRAINT mlflow_model_records_org_model_version_unique UNIQUE (model_name, version))',
      p_schema);
  EXECUTE format('ALTER TABLE %I.mlflow_model_records
      ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP,
      ADD COLUMN IF NOT EXISTS record_kind VARCHAR(16)', p_schema);
  EXECUTE format('CREATE INDEX IF NOT EXISTS mlflow_model_records_live_synced
      ON %I.mlflow_model_records (last_synced_at) WHERE deleted_at IS NULL', p_schema);
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_sync_history (
      id SERIAL PRIMARY KEY,
      trigger_type VARCHAR(10) NOT NULL CHECK (trigger_type IN (''manual'', ''scheduled'')),
      status VARCHAR(10) NOT NULL
        CHECK (status IN (''running'', ''success'', ''partial'', ''error'')),
      started_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE ''UTC''),
      finished_at TIMESTAMP,
      message TEXT,
      records_fetched INTEGER NOT NULL DEFAULT 0,
      records_new INTEGER NOT NULL DEFAULT 0,
      records_updated INTEGER NOT NULL DEFAULT 0,
      records_unchanged INTEGER NOT NULL DEFAULT 0,
      records_stale INTEGER NOT NULL DEFAULT 0,
      records_skipped INTEGER NOT NULL DEFAULT 0,
      failures INTEGER NOT NULL DEFAULT 0,
      triggered_by INTEGER,
      instance VARCHAR(64))', p_schema);
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_test_results (
      id INTEGER PRIMARY KEY DEFAULT 1 CHECK (id = 1),
      fingerprint VARCHAR(64) NOT NULL,
      status VARCHAR(10) NOT NULL,
      message TEXT,
      tested_at TIMESTAMP NOT NULL)', p_schema);
  EXECUTE format('CREATE INDEX IF NOT EXISTS mlflow_sync_history_started
      ON %I.mlflow_sync_history (started_at DESC)', p_schema);
  INSERT INTO public.integration_tenants (schema_name, organization_id)
    VALUES (p_schema, p_org)
    ON CONFLICT (schema_name) DO UPDATE SET last_seen_at = now();
END $fn$"""

BASE = "/api/integrations/mlflow"
MLFLOW_URL = "http://127.0.0.1:9/mlflow"   # never called: nothing here tests or syncs


def columns(db, schema, table):
    return {r["column_name"] for r in db.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, table))}


def assert_verifywise_shape(db, orgs):
    assert columns(db, "public", "slack_webhooks") == VERIFYWISE_COLUMNS["slack_webhooks"]
    assert db.scalar("SELECT to_regclass('public.slack_webhooks_organization_id')") is None
    for org in orgs:
        t = tenant_hash(org)
        for table in TENANT_TABLES:
            assert columns(db, t, table) == VERIFYWISE_COLUMNS[table], (org, table)
        assert db.scalar("SELECT to_regclass(%s)", ('"%s".mlflow_model_records_live_synced' % t,)) is None


def scheme_a(plain):
    """VerifyWise's scheme A (hex ciphertext, hex IV) of a string, by openssl."""
    iv = hashlib.sha256(plain.encode()).hexdigest()[:32]
    p = subprocess.run([_openssl(), "enc", "-e", "-aes-256-cbc", "-K", _slack_key_hex(), "-iv", iv, "-nosalt"],
                       input=plain.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.hex(), iv


def mlflow_fingerprint(url, method, user="", password="", token="", verify_ssl=True):
    """The HMAC integrationsd keeps of a tested configuration (mlflow_conn_fingerprint)."""
    key = ENCRYPTION_KEY[:32].ljust(32, "0").encode()
    fp_key = hmac.new(key, b"integrationsd:llm-key-fingerprint:v1", hashlib.sha256).digest()
    msg = "\x1f".join([url, method, user, password, token, "verify" if verify_ssl else "insecure"]).encode()
    return hmac.new(fp_key, msg, hashlib.sha256).hexdigest()


def slack_install(fake, rotate):
    """An installation the fake knows (its OAuth code exchanged, as VerifyWise's backend
    would have done)."""
    code, inst = fake.install(rotate=rotate)
    form = urllib.parse.urlencode({"code": code, "client_id": "x", "client_secret": "y"}).encode()
    with urllib.request.urlopen(fake.url + "/api/oauth.v2.access", data=form, timeout=10) as r:
        assert json.loads(r.read())["ok"] is True
    return inst




INSERT_OLD_WEBHOOK = (
    "INSERT INTO public.slack_webhooks (access_token, access_token_iv, scope, user_id, organization_id, team_name,"
    " team_id, channel, channel_id, configuration_url, url, url_iv, is_active, refresh_token, refresh_token_iv,"
    " token_expires_at, refresh_lease_until, deactivated_reason, routing_type) VALUES (%(tok)s, %(tok_iv)s,"
    " 'incoming-webhook,chat:write', %(user)s, %(org)s, 'Team', %(team)s, %(channel)s, %(channel_id)s,"
    " 'https://teamname.slack.com/services/B1', %(url)s, %(url_iv)s, %(active)s, %(ref)s, %(ref_iv)s, %(exp)s,"
    " %(lease)s, %(reason)s, %(routing)s) RETURNING id")


def old_webhook(cur, inst=None, user=1, org=1, active=True, exp=None, lease=None, reason=None, routing=None,
                name="old"):
    tok, tok_iv = scheme_a(inst.bot_token if inst else "xoxb-" + name)
    url, url_iv = scheme_a(inst.url if inst else "https://hooks.example.test/" + name)
    ref, ref_iv = scheme_a(inst.refresh_token) if inst and inst.refresh_token else (None, None)
    cur.execute(INSERT_OLD_WEBHOOK, {
        "tok": tok, "tok_iv": tok_iv, "user": user, "org": org, "team": inst.team_id if inst else "T-" + name,
        "channel": inst.channel if inst else "#" + name, "channel_id": inst.channel_id if inst else "C-" + name,
        "url": url, "url_iv": url_iv, "active": active, "ref": ref, "ref_iv": ref_iv, "exp": exp, "lease": lease,
        "reason": reason, "routing": routing})
    return cur.fetchone()[0]


RECORD = ("INSERT INTO \"{t}\".mlflow_model_records (model_name, version, lifecycle_stage, run_id, status, tags,"
          " last_synced_at, record_kind, deleted_at) VALUES (%s, %s, 'Production', %s, 'FINISHED', '{{}}',"
          " now() AT TIME ZONE 'UTC', %s, %s)")


def build_old_database(pg, name, fake_slack):
    """A database as earlier builds left it, with data in every added column. Tenant of
    organization 1 is recorded in public.integration_tenants; organization 2's schema
    exists but is not recorded (migrated on its first request)."""
    fresh_db(pg, name)
    conn = pg.connect(name)
    ids = {}
    with conn.cursor() as cur:
        cur.execute(OLD_PUBLIC)
        cur.execute(OLD_TENANT_FN)
        for org in (1, 2):
            cur.execute("SELECT public.itest_old_ensure_tenant(%s, %s)", (tenant_hash(org), org))
        cur.execute("DROP FUNCTION public.itest_old_ensure_tenant(text, bigint)")
        cur.execute("DELETE FROM public.integration_tenants WHERE schema_name = %s", (tenant_hash(2),))
        # Slack: an organization that is not the owner's (user 1 is in organization 1)
        ids["moved"] = old_webhook(cur, user=1, org=2, name="moved")
        # a rotating token close to its expiry
        ids["rot_inst"] = slack_install(fake_slack, rotate=True)
        ids["rot"] = old_webhook(cur, ids["rot_inst"], user=2, org=1, routing=["Membership and roles"],
                                 exp="2100-01-01 00:00:00+00")
        # deactivated, with a lease left behind
        ids["off"] = old_webhook(cur, user=1, org=1, active=False, reason="Slack answered channel_not_found",
                                 lease="2031-02-03 04:05:06+00", name="off")
        # written by VerifyWise after the old start-up backfill: no organization
        ids["vw"] = old_webhook(cur, user=2, org=None, name="vw")
        for org in (1, 2):
            t = tenant_hash(org)
            cur.execute('INSERT INTO "%s".mlflow_integrations (tracking_server_url, auth_method, last_tested_at,'
                        " last_test_status, last_tested_fingerprint) VALUES (%%s, 'none', '2026-01-17 10:00:00',"
                        " 'success', %%s)" % t, (MLFLOW_URL, mlflow_fingerprint(MLFLOW_URL, "none")))
            rec = RECORD.format(t=t)
            cur.execute(rec, ("model-a", "run-1", "run-1", "run", None))
            cur.execute(rec, ("model-b", "3", None, "model_version", None))
            cur.execute(rec, ("model-c", "run-2", "run-2", "run", "2026-01-18 00:00:00"))
            cur.execute(rec, ("model-d", "run-3", "run-3", None, None))
    conn.close()
    return ids


def side_snapshot(db, orgs):
    snap = {"slack": db.rows("SELECT * FROM public.integrationsd_slack_webhooks ORDER BY webhook_id")}
    for org in orgs:
        t = tenant_hash(org)
        snap[org] = (db.rows('SELECT * FROM "%s".integrationsd_mlflow_integrations ORDER BY integration_id' % t),
                     db.rows('SELECT m.model_name, m.version, k.record_kind, k.deleted_at FROM "%s".mlflow_model_records'
                             ' m JOIN "%s".integrationsd_mlflow_model_records k ON k.record_id = m.id'
                             ' ORDER BY m.model_name' % (t, t)))
    return snap


def model_ids(svc, token):
    st, _, data = svc.req("GET", BASE + "/models?refresh=false", token=token)
    assert st == 200 and data["configured"] is True, data
    return {m["id"] for m in data["models"]}


def test_old_shape_migrated_in_place(pg, service, fake_slack):
    name = "itest_oldshape"
    ids = build_old_database(pg, name, fake_slack)
    db = Db(pg, name)
    try:
        before_rot = db.one("SELECT refresh_token, refresh_token_iv FROM public.slack_webhooks WHERE id = %s",
                            (ids["rot"],))
        assert "deleted_at" in columns(db, tenant_hash(1), "mlflow_model_records")  # the old shape indeed
        # two instances start at once on it
        env = dict(TRUST_PROXY="true", **slack_env(fake_slack))
        svcs = [service(db=name, start=False, **env) for _ in range(2)]
        errors = []

        def start(s):
            try:
                s.start()
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=start, args=(s,)) for s in svcs]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors, errors
        a, b = svcs

        # start-up moved the recorded tenant and the public table; the unrecorded tenant waits
        assert_verifywise_shape(db, [1])
        assert "deleted_at" in columns(db, tenant_hash(2), "mlflow_model_records")
        assert db.scalar("SELECT ddl_version FROM public.integration_tenants WHERE schema_name = %s",
                         (tenant_hash(1),)) >= 2

        # Slack: every value moved
        side = {r["webhook_id"]: r for r in db.rows("SELECT * FROM public.integrationsd_slack_webhooks")}
        assert side[ids["moved"]]["organization_id"] == 2
        assert side[ids["vw"]]["organization_id"] is None
        assert side[ids["off"]]["deactivated_reason"] == "Slack answered channel_not_found"
        assert str(side[ids["off"]]["refresh_lease_until"].year) == "2031"
        # the organization still scopes: not the owner's organization 1, but organization 2
        admin1, admin2, editor1 = token_for(1, 1, "Admin"), token_for(3, 2, "Admin"), token_for(2, 1, "Editor")
        st, _, d = a.req("GET", "/api/slackWebhooks", token=admin1)
        assert st == 200, d
        listed = {w["id"] for w in d["data"]}
        assert ids["moved"] not in listed and {ids["rot"], ids["off"], ids["vw"]} <= listed
        assert a.req("GET", "/api/slackWebhooks/%d" % ids["moved"], token=admin1)[0] == 404
        st, _, d = b.req("GET", "/api/slackWebhooks/%d" % ids["moved"], token=admin2)
        assert st == 200 and d["data"]["user_id"] == 1, d
        # the webhook without an organization is its owner's (user 2, organization 1)
        st, _, d = b.req("GET", "/api/slackWebhooks/%d" % ids["vw"], token=editor1)
        assert st == 200 and d["data"]["is_active"] is True, d
        assert b.req("GET", "/api/slackWebhooks/%d" % ids["vw"], token=admin2)[0] == 404
        # the refresh token moved intact and still rotates the bot token
        inst = ids["rot_inst"]
        assert side[ids["rot"]]["refresh_token"] == before_rot["refresh_token"]
        assert slack_scheme_a_plain(side[ids["rot"]]["refresh_token"], side[ids["rot"]]["refresh_token_iv"]) == \
            inst.refresh_token
        first = inst.bot_token
        db.execute("UPDATE public.integrationsd_slack_webhooks SET token_expires_at = now() + interval '30 seconds'"
                   " WHERE webhook_id = %s", (ids["rot"],))
        assert wait_until(lambda: inst.old_tokens == [first], 20), "the moved refresh token was not used"
        st, _, d = a.req("POST", "/api/slackWebhooks/%d/send" % ids["rot"], {"title": "T", "message": "M"},
                         token=editor1)
        assert st == 200 and d["data"]["success"] is True, d
        assert fake_slack.messages_for(inst.channel_id)[-1]["via"] == "api"

        # MLflow, organization 1: the stale record stays hidden, kinds still shape ids
        assert model_ids(a, admin1) == {"run-1", "model-b/3", "run-3"}
        # the tested fingerprint moved: saving exactly the tested configuration keeps the status
        st, _, d = a.req("POST", BASE + "/configure", {"trackingServerUrl": MLFLOW_URL, "authMethod": "none",
                                                      "timeout": 30, "verifySsl": True}, token=admin1)
        assert st == 200, d
        cfg = d["config"]["config"]
        assert cfg["lastTestStatus"] == "success" and cfg["lastTestedAt"] == "2026-01-17T10:00:00.000Z", cfg

        # organization 2: migrated by its first request, same guarantees
        assert model_ids(b, admin2) == {"run-1", "model-b/3", "run-3"}
        assert_verifywise_shape(db, [1, 2])
        fp = db.scalar('SELECT last_tested_fingerprint FROM "%s".integrationsd_mlflow_integrations'
                       % tenant_hash(2))
        assert fp == mlflow_fingerprint(MLFLOW_URL, "none")
        stale = db.rows('SELECT m.version, k.deleted_at FROM "{t}".mlflow_model_records m JOIN'
                        ' "{t}".integrationsd_mlflow_model_records k ON k.record_id = m.id'
                        ' WHERE k.deleted_at IS NOT NULL'.format(t=tenant_hash(2)))
        assert [r["version"] for r in stale] == ["run-2"]
        assert str(stale[0]["deleted_at"]) == "2026-01-18 00:00:00"

        # re-running is a no-op: a restart changes nothing
        snap = side_snapshot(db, [1, 2])
        a.stop_and_check()
        b.stop_and_check()
        c = service(db=name, **env)
        assert_verifywise_shape(db, [1, 2])
        assert side_snapshot(db, [1, 2]) == snap
        assert model_ids(c, admin2) == {"run-1", "model-b/3", "run-3"}
        # deleting a VerifyWise row takes integrationsd's row with it
        db.execute("DELETE FROM public.slack_webhooks WHERE id = %s", (ids["off"],))
        assert db.scalar("SELECT count(*) FROM public.integrationsd_slack_webhooks WHERE webhook_id = %s",
                         (ids["off"],)) == 0
    finally:
        db.close()


def test_webhook_written_by_verifywise(service, fake_slack, db, tokens):
    """A row inserted the way VerifyWise's backend inserts it (no row of integrationsd's)
    is listed, sent to, deactivated and deleted like any other."""
    svc = service(TRUST_PROXY="true", **slack_env(fake_slack))
    inst = slack_install(fake_slack, rotate=False)
    tok, tok_iv = scheme_a(inst.bot_token)
    url, url_iv = scheme_a(inst.url)
    wid = db.scalar(
        "INSERT INTO public.slack_webhooks (access_token, access_token_iv, scope, user_id, team_name, team_id,"
        " channel, channel_id, configuration_url, url, url_iv) VALUES (%s, %s, 'incoming-webhook,chat:write', 2,"
        " %s, %s, %s, %s, 'https://teamname.slack.com/services/B1', %s, %s) RETURNING id",
        (tok, tok_iv, inst.team_name, inst.team_id, inst.channel, inst.channel_id, url, url_iv))
    assert db.scalar("SELECT count(*) FROM public.integrationsd_slack_webhooks WHERE webhook_id = %s", (wid,)) == 0
    st, _, d = svc.req("GET", "/api/slackWebhooks", token=tokens.editor1)
    assert st == 200 and wid in {w["id"] for w in d["data"]}, d
    st, _, d = svc.req("GET", "/api/slackWebhooks/%d" % wid, token=tokens.admin1)
    assert st == 200 and d["data"]["channel_id"] == inst.channel_id and d["data"]["routing_type"] is None, d
    assert svc.req("GET", "/api/slackWebhooks/%d" % wid, token=tokens.admin2)[0] == 404
    st, _, d = svc.req("POST", "/api/slackWebhooks/%d/send" % wid, {"title": "T", "message": "M"},
                       token=tokens.editor1)
    assert st == 200 and d["data"]["success"] is True, d
    assert fake_slack.messages_for(inst.channel_id)
    st, _, d = svc.req("PATCH", "/api/slackWebhooks/%d" % wid, {"is_active": False}, token=tokens.editor1)
    assert st == 202 and d["data"]["is_active"] is False, d
    row = db.one("SELECT organization_id, deactivated_reason FROM public.integrationsd_slack_webhooks"
                 " WHERE webhook_id = %s", (wid,))
    assert row == {"organization_id": None, "deactivated_reason": "Deactivated by user 2"}
    st, _, d = svc.req("GET", "/api/slackWebhooks/%d" % wid, token=tokens.editor1)
    assert st == 200 and d["data"]["is_active"] is False, d
    assert svc.req("DELETE", "/api/slackWebhooks/%d" % wid, token=tokens.editor1)[0] == 204
    assert db.scalar("SELECT count(*) FROM public.slack_webhooks WHERE id = %s", (wid,)) == 0


# ---- start-up: the tenants already in place ------------------------------------------------

def _schema_ready_line(svc):
    recs = [json.loads(ln) for ln in svc.log_lines() if ln.startswith("{")]
    ready = [r for r in recs if r.get("msg") == "start-up: database schema ready"]
    assert len(ready) == 1, ready
    return ready[0]


def test_tenants_in_place_are_read_at_start_up(pg, service):
    """The version check at start also reads the tenants already at the current tenant DDL
    (their first request skips the tenant check); a tenant left at an older version is not
    among them and is brought up to date on its first request, as before."""
    name = fresh_db(pg, "itest_tenant_preload")
    db = Db(pg, name)
    try:
        admin1, admin2 = token_for(1, 1, "Admin"), token_for(3, 2, "Admin")
        first = service(db=name)
        assert _schema_ready_line(first)["tenants"] == 0  # a new database: none yet
        for tok in (admin1, admin2):
            assert first.req("GET", "/api/llm-keys", token=tok)[0] == 200
        first.stop_and_check()
        version = db.scalar("SELECT ddl_version FROM public.integration_tenants WHERE schema_name = %s",
                            (tenant_hash(1),))
        db.execute("UPDATE public.integration_tenants SET ddl_version = %s WHERE schema_name = %s",
                   (version - 1, tenant_hash(2)))

        second = service(db=name)
        assert _schema_ready_line(second)["tenants"] == 1  # organization 1 only
        for tok in (admin1, admin2):
            st, _, d = second.req("GET", "/api/llm-keys", token=tok)
            assert st == 200 and d["data"] == [], d
        assert db.scalar("SELECT ddl_version FROM public.integration_tenants WHERE schema_name = %s",
                         (tenant_hash(2),)) == version  # checked and upgraded on its first request

        # a recorded tenant whose schema is gone is not taken as in place either
        db.execute('DROP SCHEMA "%s" CASCADE' % tenant_hash(1))
        third = service(db=name)
        assert _schema_ready_line(third)["tenants"] == 1  # organization 2 only
        st, _, d = third.req("GET", "/api/llm-keys", token=admin1)
        assert st == 200 and d["data"] == [], d
    finally:
        db.close()


def test_version_comment_decides_the_start_up_path(pg, service):
    """The public objects' version is the comment of integrationsd_ensure_tenant: a start that
    finds its own version there takes the one-round-trip path (tenants read); a comment gone
    or of another version (an older build started meanwhile) applies the schema again, under
    the lock, and writes it back."""
    name = fresh_db(pg, "itest_version_comment")
    db = Db(pg, name)
    comment = ("SELECT obj_description('public.integrationsd_ensure_tenant(text,bigint)'::regprocedure,"
               " 'pg_proc')")
    try:
        first = service(db=name)
        assert first.req("GET", "/api/llm-keys", token=token_for(1, 1, "Admin"))[0] == 200
        first.stop_and_check()
        written = db.scalar(comment)
        assert written == "integrationsd schema " + _schema_ready_line(first)["version"]
        for undo in ("COMMENT ON FUNCTION public.integrationsd_ensure_tenant(text, bigint) IS NULL",
                     "COMMENT ON FUNCTION public.integrationsd_ensure_tenant(text, bigint) IS"
                     " 'integrationsd schema another'", None):
            if undo:
                db.execute(undo)
            svc = service(db=name)
            assert _schema_ready_line(svc)["tenants"] == (1 if undo is None else 0), undo  # 0: applied again
            assert db.scalar(comment) == written, undo
            svc.stop_and_check()
    finally:
        db.close()


def test_tenants_read_at_start_up_are_bounded(pg, service):
    """At most 4096 tenants are read at start; the others are checked on their first request."""
    name = fresh_db(pg, "itest_tenant_preload_cap")
    db = Db(pg, name)
    try:
        admin1 = token_for(1, 1, "Admin")
        first = service(db=name)  # the public objects and organization 1's tenant
        assert first.req("GET", "/api/llm-keys", token=admin1)[0] == 200
        first.stop_and_check()
        # 4096 more tenants in place: 4097 in all, one past the bound
        db.execute("DO $$ DECLARE v int := (SELECT max(ddl_version) FROM public.integration_tenants);"
                   " BEGIN FOR i IN 1..4096 LOOP"
                   " EXECUTE format('CREATE SCHEMA %I', 'cap' || lpad(i::text, 7, '0'));"
                   " INSERT INTO public.integration_tenants (schema_name, organization_id, ddl_version)"
                   " VALUES ('cap' || lpad(i::text, 7, '0'), 100000 + i, v);"
                   " END LOOP; END $$")
        second = service(db=name)
        assert _schema_ready_line(second)["tenants"] == 4096
        st, _, d = second.req("GET", "/api/llm-keys", token=admin1)
        assert st == 200 and d["data"] == [], d
        # one fewer: all of them
        db.execute("DELETE FROM public.integration_tenants WHERE schema_name = 'cap0004096'")
        third = service(db=name)
        assert _schema_ready_line(third)["tenants"] == 4096
    finally:
        db.close()
