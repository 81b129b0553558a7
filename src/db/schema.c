/* db/schema: owns the DDL. Public objects are created in one transaction under an
 * advisory lock (several instances may start at once); tenant objects by a
 * PL/pgSQL function that takes a per-tenant advisory lock, so the first requests
 * of a new tenant, from any instance, cannot race each other. VerifyWise's tables
 * keep VerifyWise's shape: what integrationsd records about their rows lives in
 * its own integrationsd_* tables beside them (earlier builds added columns to
 * VerifyWise's tables; they are moved here, in place, and dropped). */
#include "db/schema.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The version of the tenant DDL below: bump it whenever that DDL changes, so that
 * start-up applies it to every known tenant. 2: integrationsd's columns moved out of
 * VerifyWise's tables into tables of its own. 3: read-cache triggers. 4: the rows of
 * llm_keys without a fingerprint listed (integrationsd_llm_keys_unfingerprinted). 5: a
 * fingerprint records the stored key it was taken from (key_md5), and a key changed by
 * another writer loses it. */
#define SCHEMA_TENANT_VERSION "5"

static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext('integrationsd:bootstrap'))";

static const char SQL_PUBLIC[] =
    "DO $do$ BEGIN\n"
    "  IF to_regtype('public.enum_llm_keys_provider') IS NULL THEN\n"
    "    CREATE TYPE public.enum_llm_keys_provider AS ENUM ('Anthropic', 'OpenAI', 'OpenRouter');\n"
    "  END IF;\n"
    "  CREATE TABLE IF NOT EXISTS public.integration_tenants (\n"
    "    schema_name VARCHAR(10) PRIMARY KEY,\n"
    "    organization_id BIGINT NOT NULL,\n"
    "    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now());\n"
    /* the version of the tenant DDL last applied to the schema (SCHEMA_TENANT_VERSION) */
    "  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public'\n"
    "      AND table_name = 'integration_tenants' AND column_name = 'ddl_version') THEN\n"
    "    ALTER TABLE public.integration_tenants ADD COLUMN ddl_version INTEGER NOT NULL DEFAULT 0;\n"
    "  END IF;\n"
    /* MLflow: leases (one sync per tenant, one scheduled tick across instances) */
    "  CREATE TABLE IF NOT EXISTS public.integration_locks (\n"
    "    name TEXT PRIMARY KEY,\n"
    "    holder TEXT NOT NULL,\n"
    "    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    expires_at TIMESTAMPTZ NOT NULL);\n"
    /* Slack (reference 3.5): VerifyWise's table, created as VerifyWise does when it is
     * not there yet, and left in VerifyWise's shape (its backend selects every column) */
    "  CREATE TABLE IF NOT EXISTS public.slack_webhooks (\n"
    "    id SERIAL PRIMARY KEY,\n"
    "    access_token VARCHAR(255) NOT NULL,\n"
    "    access_token_iv VARCHAR(255) NOT NULL,\n"
    "    scope VARCHAR(255) NOT NULL,\n"
    "    user_id INTEGER,\n"
    "    team_name VARCHAR(255) NOT NULL,\n"
    "    team_id VARCHAR(255) NOT NULL,\n"
    "    channel VARCHAR(255) NOT NULL,\n"
    "    channel_id VARCHAR(255) NOT NULL,\n"
    "    configuration_url VARCHAR(255) NOT NULL,\n"
    "    url VARCHAR(255) NOT NULL,\n"
    "    url_iv VARCHAR(255) NOT NULL,\n"
    "    is_active BOOLEAN NOT NULL DEFAULT true,\n"
    "    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
    "    updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
    "    routing_type TEXT[]);\n"
    /* rotating bot tokens (xoxe.xoxb-...) outgrow VARCHAR(255) once hex-encrypted: a
     * type change, no column added */
    "  IF (SELECT data_type FROM information_schema.columns WHERE table_schema = 'public'\n"
    "      AND table_name = 'slack_webhooks' AND column_name = 'access_token') <> 'text' THEN\n"
    "    ALTER TABLE public.slack_webhooks ALTER COLUMN access_token TYPE TEXT,\n"
    "      ALTER COLUMN url TYPE TEXT;\n"
    "  END IF;\n"
    "  CREATE INDEX IF NOT EXISTS slack_webhooks_team_id ON public.slack_webhooks (team_id);\n"
    "  CREATE INDEX IF NOT EXISTS slack_webhooks_channel_id ON public.slack_webhooks (channel_id);\n"
    "  CREATE INDEX IF NOT EXISTS slack_webhooks_is_active ON public.slack_webhooks (is_active);\n"
    /* integrationsd's own columns of a webhook: organization, token rotation,
     * deactivation reason. Rows VerifyWise writes have none: read as defaults, the
     * organization then being the owner's (public.integrationsd_slack_org). */
    "  CREATE TABLE IF NOT EXISTS public.integrationsd_slack_webhooks (\n"
    "    webhook_id INTEGER PRIMARY KEY REFERENCES public.slack_webhooks (id) ON DELETE CASCADE,\n"
    "    organization_id INTEGER,\n"
    "    refresh_token TEXT,\n"
    "    refresh_token_iv VARCHAR(32),\n"
    "    token_expires_at TIMESTAMPTZ,\n"
    "    refresh_lease_until TIMESTAMPTZ,\n"
    "    deactivated_reason TEXT);\n"
    "  CREATE INDEX IF NOT EXISTS integrationsd_slack_webhooks_organization_id\n"
    "    ON public.integrationsd_slack_webhooks (organization_id);\n"
    /* earlier builds added these columns to VerifyWise's table: move them */
    "  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public'\n"
    "      AND table_name = 'slack_webhooks' AND column_name IN ('organization_id', 'refresh_token',\n"
    "      'refresh_token_iv', 'token_expires_at', 'refresh_lease_until', 'deactivated_reason')) THEN\n"
    "    ALTER TABLE public.slack_webhooks\n"
    "      ADD COLUMN IF NOT EXISTS organization_id INTEGER,\n"
    "      ADD COLUMN IF NOT EXISTS refresh_token TEXT,\n"
    "      ADD COLUMN IF NOT EXISTS refresh_token_iv VARCHAR(32),\n"
    "      ADD COLUMN IF NOT EXISTS token_expires_at TIMESTAMPTZ,\n"
    "      ADD COLUMN IF NOT EXISTS refresh_lease_until TIMESTAMPTZ,\n"
    "      ADD COLUMN IF NOT EXISTS deactivated_reason TEXT;\n"
    "    EXECUTE 'INSERT INTO public.integrationsd_slack_webhooks (webhook_id, organization_id,\n"
    "        refresh_token, refresh_token_iv, token_expires_at, refresh_lease_until, deactivated_reason)\n"
    "      SELECT id, organization_id, refresh_token, refresh_token_iv, token_expires_at,\n"
    "        refresh_lease_until, deactivated_reason FROM public.slack_webhooks\n"
    "      ON CONFLICT (webhook_id) DO NOTHING';\n"
    "    DROP INDEX IF EXISTS public.slack_webhooks_organization_id;\n"
    "    ALTER TABLE public.slack_webhooks\n"
    "      DROP COLUMN organization_id, DROP COLUMN refresh_token, DROP COLUMN refresh_token_iv,\n"
    "      DROP COLUMN token_expires_at, DROP COLUMN refresh_lease_until, DROP COLUMN deactivated_reason;\n"
    "  END IF;\n"
    "  CREATE TABLE IF NOT EXISTS public.slack_deliveries (\n"
    "    id BIGSERIAL PRIMARY KEY,\n"
    "    webhook_id INTEGER NOT NULL REFERENCES public.slack_webhooks (id) ON DELETE CASCADE,\n"
    "    organization_id INTEGER NOT NULL,\n"
    "    idempotency_key VARCHAR(255) NOT NULL,\n"
    "    routing_type TEXT NOT NULL,\n"
    "    title TEXT NOT NULL,\n"
    "    message TEXT NOT NULL,\n"
    "    actor_user_id INTEGER,\n"
    "    status VARCHAR(10) NOT NULL DEFAULT 'pending'\n"
    "      CHECK (status IN ('pending', 'sent', 'failed')),\n"
    "    attempts INTEGER NOT NULL DEFAULT 0,\n"
    "    last_error TEXT,\n"
    "    slack_ts VARCHAR(64),\n"
    "    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    owner VARCHAR(64),\n"
    "    lease_until TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    UNIQUE (webhook_id, idempotency_key));\n"
    "  CREATE INDEX IF NOT EXISTS slack_deliveries_pending\n"
    "    ON public.slack_deliveries (lease_until) WHERE status = 'pending';\n"
    "END $do$";

/* A webhook's organization: integrationsd's own record of it, else (a row VerifyWise
 * wrote, or one an earlier build could not place) its owner's in public.users,
 * looked up only when that table exists. */
static const char SQL_SLACK_ORG_FN[] =
    "CREATE OR REPLACE FUNCTION public.integrationsd_slack_org(p_webhook integer, p_user integer)\n"
    "RETURNS integer LANGUAGE plpgsql STABLE AS $fn$\n"
    "DECLARE o integer;\n"
    "BEGIN\n"
    "  SELECT organization_id INTO o FROM public.integrationsd_slack_webhooks WHERE webhook_id = p_webhook;\n"
    "  IF o IS NULL AND p_user IS NOT NULL AND to_regclass('public.users') IS NOT NULL THEN\n"
    "    SELECT organization_id INTO o FROM public.users WHERE id = p_user;\n"
    "  END IF;\n"
    "  RETURN o;\n"
    "END $fn$";

/* Tenant tables: VerifyWise's definitions (reference section 3), kept in VerifyWise's
 * shape, and integrationsd's own tables beside them. */

/* Read-cache coherence (cache/read_cache, db/listener): every change to a table whose
 * rows a cached answer shows NOTIFYs integrationsd_cache, whoever writes it (any instance,
 * VerifyWise's backend, psql). Payloads: "t:<tenant schema>" (statement-level triggers on
 * the tenant tables), "u:<user id>:<organization id>" (public.users rows, old and new),
 * "o:<organization id>" (Slack webhooks and integrationsd's rows about them), "all" when the organization is unknown.
 * Triggers are added idempotently and never dropped; a table integrationsd may not
 * alter (no privilege) keeps working without one (logged by PostgreSQL as a WARNING). */
static const char SQL_CACHE_FN[] =
    "CREATE OR REPLACE FUNCTION public.integrationsd_cache_notify() RETURNS trigger\n"
    "LANGUAGE plpgsql AS $fn$\n"
    "DECLARE r jsonb; org text; uid text;\n"
    "BEGIN\n"
    "  IF TG_LEVEL = 'STATEMENT' THEN\n"
    "    PERFORM pg_notify('integrationsd_cache', 't:' || TG_TABLE_SCHEMA);\n"
    "    RETURN NULL;\n"
    "  END IF;\n"
    "  FOREACH r IN ARRAY ARRAY[CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,\n"
    "                           CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END] LOOP\n"
    "    CONTINUE WHEN r IS NULL;\n"
    "    IF TG_TABLE_NAME = 'users' THEN\n"
    "      PERFORM pg_notify('integrationsd_cache', 'u:' || (r->>'id') || ':' ||\n"
    "                        COALESCE(r->>'organization_id', ''));\n"
    "      CONTINUE;\n"
    "    END IF;\n"
    "    org := r->>'organization_id';\n"
    "    uid := r->>'user_id';\n"
    "    IF org IS NULL AND TG_TABLE_NAME = 'slack_webhooks' THEN\n"
    "      org := public.integrationsd_slack_org((r->>'id')::int, uid::int)::text;\n"
    "    END IF;\n"
    "    PERFORM pg_notify('integrationsd_cache', CASE WHEN org IS NULL THEN 'all' ELSE 'o:' || org END);\n"
    "  END LOOP;\n"
    "  RETURN NULL;\n"
    "END $fn$";

static const char SQL_CACHE_TRIGGERS[] =
    "DO $do$ BEGIN\n"
    "  IF to_regclass('public.users') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger\n"
    "      WHERE tgname = 'integrationsd_cache' AND tgrelid = to_regclass('public.users')) THEN\n"
    "    BEGIN\n"
    "      CREATE TRIGGER integrationsd_cache AFTER INSERT OR DELETE OR UPDATE OF id, organization_id, role_id\n"
    "        ON public.users FOR EACH ROW EXECUTE FUNCTION public.integrationsd_cache_notify();\n"
    "    EXCEPTION WHEN insufficient_privilege THEN\n"
    "      RAISE WARNING 'integrationsd: no trigger on public.users (%): role changes wait for AUTH_CACHE_MS',\n"
    "        SQLERRM;\n"
    "    END;\n"
    "  END IF;\n"
    "  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'integrationsd_cache'\n"
    "      AND tgrelid = to_regclass('public.slack_webhooks')) THEN\n"
    "    CREATE TRIGGER integrationsd_cache AFTER INSERT OR UPDATE OR DELETE\n"
    "      ON public.slack_webhooks FOR EACH ROW EXECUTE FUNCTION public.integrationsd_cache_notify();\n"
    "  END IF;\n"
    "  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'integrationsd_cache'\n"
    "      AND tgrelid = to_regclass('public.integrationsd_slack_webhooks')) THEN\n"
    "    CREATE TRIGGER integrationsd_cache AFTER INSERT OR UPDATE OR DELETE\n"
    "      ON public.integrationsd_slack_webhooks FOR EACH ROW\n"
    "      EXECUTE FUNCTION public.integrationsd_cache_notify();\n"
    "  END IF;\n"
    "END $do$";

static const char SQL_TENANT_FN[] =
    "CREATE OR REPLACE FUNCTION public.integrationsd_ensure_tenant(p_schema text, p_org bigint)\n"
    "RETURNS void LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF p_schema !~ '^[A-Za-z0-9]{10}$' THEN\n"
    "    RAISE EXCEPTION 'invalid tenant schema name';\n"
    "  END IF;\n"
    /* fast path: already brought to this version (by any instance) */
    "  UPDATE public.integration_tenants SET last_seen_at = now()\n"
    "    WHERE schema_name = p_schema AND ddl_version >= " SCHEMA_TENANT_VERSION "\n"
    "      AND to_regnamespace(quote_ident(p_schema)) IS NOT NULL;\n"
    "  IF FOUND THEN\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  PERFORM pg_advisory_xact_lock(hashtext('integrationsd:tenant:' || p_schema));\n"
    "  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', p_schema);\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.llm_keys (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      key TEXT NOT NULL UNIQUE,\n"
    "      name public.enum_llm_keys_provider NOT NULL,\n"
    "      url TEXT,\n"
    "      model TEXT NOT NULL,\n"
    "      created_at TIMESTAMPTZ NOT NULL DEFAULT NOW())', p_schema);\n"
    /* integrationsd's duplicate check: HMAC fingerprints in a table of its own, so
     * VerifyWise's llm_keys keeps its columns (earlier versions added key_fingerprint
     * to it: moved here, then dropped) */
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.integrationsd_llm_key_fingerprints (\n"
    "      key_id INTEGER PRIMARY KEY REFERENCES %I.llm_keys (id) ON DELETE CASCADE,\n"
    "      fingerprint TEXT NOT NULL UNIQUE)', p_schema, p_schema);\n"
    "  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = p_schema\n"
    "      AND table_name = 'llm_keys' AND column_name = 'key_fingerprint') THEN\n"
    "    EXECUTE format('INSERT INTO %I.integrationsd_llm_key_fingerprints (key_id, fingerprint)\n"
    "        SELECT id, key_fingerprint FROM %I.llm_keys WHERE key_fingerprint IS NOT NULL\n"
    "        ON CONFLICT DO NOTHING', p_schema, p_schema);\n"
    "    EXECUTE format('ALTER TABLE %I.llm_keys DROP COLUMN key_fingerprint', p_schema);\n"
    "  END IF;\n"
    /* The rows of llm_keys without a fingerprint (written by VerifyWise's backend, or
     * unreadable), so a create finds the rows to fingerprint with one indexed probe
     * instead of an anti-join over the organization's keys. A statement trigger lists
     * what an INSERT left without one (integrationsd writes the fingerprint in the same
     * statement); the backfill of a create removes what it fingerprinted. The trigger
     * first (its lock holds writers off), then the rows already there. The function
     * runs as its owner, so a VerifyWise backend on another role can still insert. */
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.integrationsd_llm_keys_unfingerprinted (\n"
    "      key_id INTEGER PRIMARY KEY REFERENCES %I.llm_keys (id) ON DELETE CASCADE)', p_schema, p_schema);\n"
    "  EXECUTE format('CREATE OR REPLACE FUNCTION %I.integrationsd_llm_keys_unfingerprinted() RETURNS trigger\n"
    "      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $t$ BEGIN\n"
    "        INSERT INTO %I.integrationsd_llm_keys_unfingerprinted (key_id)\n"
    "          SELECT n.id FROM integrationsd_new n WHERE NOT EXISTS (SELECT 1\n"
    "            FROM %I.integrationsd_llm_key_fingerprints f WHERE f.key_id = n.id)\n"
    "          ON CONFLICT DO NOTHING;\n"
    "        RETURN NULL;\n"
    "      END $t$', p_schema, p_schema, p_schema);\n"
    "  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'integrationsd_unfingerprinted'\n"
    "      AND tgrelid = format('%I.llm_keys', p_schema)::regclass) THEN\n"
    "    EXECUTE format('CREATE TRIGGER integrationsd_unfingerprinted AFTER INSERT ON %I.llm_keys\n"
    "        REFERENCING NEW TABLE AS integrationsd_new FOR EACH STATEMENT\n"
    "        EXECUTE FUNCTION %I.integrationsd_llm_keys_unfingerprinted()', p_schema, p_schema);\n"
    "  END IF;\n"
    /* A fingerprint is the key's as stored when it was taken: key_md5, the md5 of that
     * stored text. An UPDATE that changes the stored key (VerifyWise's backend, or anyone)
     * drops a fingerprint of another text and lists the row again, so the next create
     * fingerprints the new key; integrationsd's own PATCH writes the new key's fingerprint
     * and key_md5 in the same statement, which this AFTER trigger then finds in place.
     * Fingerprints of the previous version (no key_md5) are dropped and listed: the next
     * create takes them again from the keys as they are now. */
    "  EXECUTE format('ALTER TABLE %I.integrationsd_llm_key_fingerprints ADD COLUMN IF NOT EXISTS key_md5 TEXT',\n"
    "      p_schema);\n"
    "  EXECUTE format('DELETE FROM %I.integrationsd_llm_key_fingerprints WHERE key_md5 IS NULL', p_schema);\n"
    "  EXECUTE format('CREATE OR REPLACE FUNCTION %I.integrationsd_llm_key_rekeyed() RETURNS trigger\n"
    "      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $t$ BEGIN\n"
    "        DELETE FROM %I.integrationsd_llm_key_fingerprints\n"
    "          WHERE key_id = NEW.id AND key_md5 IS DISTINCT FROM md5(NEW.key);\n"
    "        IF FOUND THEN\n"
    "          INSERT INTO %I.integrationsd_llm_keys_unfingerprinted (key_id) VALUES (NEW.id)\n"
    "            ON CONFLICT DO NOTHING;\n"
    "        END IF;\n"
    "        RETURN NULL;\n"
    "      END $t$', p_schema, p_schema, p_schema);\n"
    "  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'integrationsd_rekeyed'\n"
    "      AND tgrelid = format('%I.llm_keys', p_schema)::regclass) THEN\n"
    "    EXECUTE format('CREATE TRIGGER integrationsd_rekeyed AFTER UPDATE OF key ON %I.llm_keys\n"
    "        FOR EACH ROW WHEN (OLD.key IS DISTINCT FROM NEW.key)\n"
    "        EXECUTE FUNCTION %I.integrationsd_llm_key_rekeyed()', p_schema, p_schema);\n"
    "  END IF;\n"
    "  EXECUTE format('INSERT INTO %I.integrationsd_llm_keys_unfingerprinted (key_id)\n"
    "      SELECT k.id FROM %I.llm_keys k WHERE NOT EXISTS (SELECT 1\n"
    "        FROM %I.integrationsd_llm_key_fingerprints f WHERE f.key_id = k.id)\n"
    "      ON CONFLICT DO NOTHING', p_schema, p_schema, p_schema);\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.github_tokens (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      encrypted_token TEXT NOT NULL,\n"
    "      token_name VARCHAR(100) DEFAULT ''GitHub Personal Access Token'',\n"
    "      created_by INTEGER NOT NULL,\n"
    "      created_at TIMESTAMPTZ DEFAULT NOW(),\n"
    "      updated_at TIMESTAMPTZ DEFAULT NOW(),\n"
    "      last_used_at TIMESTAMPTZ)', p_schema);\n"
    /* MLflow (reference 3.1, 3.2): one configuration row per tenant (a unique index,
     * not a column) */
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_integrations (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      tracking_server_url VARCHAR(255) NOT NULL,\n"
    "      auth_method VARCHAR(10) NOT NULL DEFAULT ''none''\n"
    "        CHECK (auth_method IN (''none'', ''basic'', ''token'')),\n"
    "      username VARCHAR(255), username_iv VARCHAR(255),\n"
    "      password VARCHAR(255), password_iv VARCHAR(255),\n"
    "      api_token VARCHAR(255), api_token_iv VARCHAR(255),\n"
    "      verify_ssl BOOLEAN NOT NULL DEFAULT TRUE,\n"
    "      timeout INTEGER NOT NULL DEFAULT 30,\n"
    "      last_tested_at TIMESTAMP,\n"
    "      last_test_status VARCHAR(10) CHECK (last_test_status IN (''success'', ''error'')),\n"
    "      last_test_message TEXT,\n"
    "      last_synced_at TIMESTAMP,\n"
    "      last_sync_status VARCHAR(10) CHECK (last_sync_status IN (''success'', ''partial'', ''error'')),\n"
    "      last_sync_message TEXT,\n"
    "      last_successful_test_at TIMESTAMP,\n"
    "      last_failed_test_at TIMESTAMP,\n"
    "      last_failed_test_message TEXT,\n"
    "      updated_by INTEGER,\n"
    "      created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
    "      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)', p_schema);\n"
    /* tenants VerifyWise created before its test-history migration */
    "  EXECUTE format('ALTER TABLE %I.mlflow_integrations\n"
    "      ADD COLUMN IF NOT EXISTS last_successful_test_at TIMESTAMP,\n"
    "      ADD COLUMN IF NOT EXISTS last_failed_test_at TIMESTAMP,\n"
    "      ADD COLUMN IF NOT EXISTS last_failed_test_message TEXT', p_schema);\n"
    "  DECLARE n bigint; BEGIN\n"
    "    EXECUTE format('SELECT count(*) FROM %I.mlflow_integrations', p_schema) INTO n;\n"
    "    IF n <= 1 THEN\n"
    "      EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS mlflow_integrations_single_row\n"
    "          ON %I.mlflow_integrations ((true))', p_schema);\n"
    "    END IF;\n"
    "  END;\n"
    /* integrationsd's own: the fingerprint of the configuration the row's test status
     * is about (gone with the row) */
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.integrationsd_mlflow_integrations (\n"
    "      integration_id INTEGER PRIMARY KEY\n"
    "        REFERENCES %I.mlflow_integrations (id) ON DELETE CASCADE,\n"
    "      last_tested_fingerprint VARCHAR(64))', p_schema, p_schema);\n"
    /* earlier builds kept it in VerifyWise's table: move it */
    "  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = p_schema\n"
    "      AND table_name = 'mlflow_integrations' AND column_name = 'last_tested_fingerprint') THEN\n"
    "    EXECUTE format('INSERT INTO %I.integrationsd_mlflow_integrations (integration_id,\n"
    "        last_tested_fingerprint) SELECT id, last_tested_fingerprint FROM %I.mlflow_integrations\n"
    "        WHERE last_tested_fingerprint IS NOT NULL ON CONFLICT (integration_id) DO NOTHING',\n"
    "      p_schema, p_schema);\n"
    "    EXECUTE format('ALTER TABLE %I.mlflow_integrations DROP COLUMN last_tested_fingerprint', p_schema);\n"
    "  END IF;\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_model_records (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      model_name VARCHAR(255) NOT NULL,\n"
    "      version VARCHAR(255) NOT NULL,\n"
    "      lifecycle_stage VARCHAR(255), run_id VARCHAR(255), description TEXT,\n"
    "      source VARCHAR(255), status VARCHAR(255),\n"
    "      tags JSONB NOT NULL DEFAULT ''{}'', metrics JSONB NOT NULL DEFAULT ''{}'',\n"
    "      parameters JSONB NOT NULL DEFAULT ''{}'',\n"
    "      experiment_id VARCHAR(255), experiment_name VARCHAR(255), artifact_location TEXT,\n"
    "      training_status VARCHAR(255), training_started_at TIMESTAMP, training_ended_at TIMESTAMP,\n"
    "      source_version VARCHAR(255), model_created_at TIMESTAMP, model_updated_at TIMESTAMP,\n"
    "      last_synced_at TIMESTAMP,\n"
    "      created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
    "      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
    "      CONSTRAINT mlflow_model_records_org_model_version_unique UNIQUE (model_name, version))',\n"
    "      p_schema);\n"
    /* integrationsd's own: a record's kind (run, model_version) and its stale mark; a
     * record without a row here is live and of no known kind */
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.integrationsd_mlflow_model_records (\n"
    "      record_id INTEGER PRIMARY KEY\n"
    "        REFERENCES %I.mlflow_model_records (id) ON DELETE CASCADE,\n"
    "      record_kind VARCHAR(16),\n"
    "      deleted_at TIMESTAMP)', p_schema, p_schema);\n"
    /* earlier builds kept them in VerifyWise's table: move them */
    "  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = p_schema\n"
    "      AND table_name = 'mlflow_model_records' AND column_name IN ('deleted_at', 'record_kind')) THEN\n"
    "    EXECUTE format('ALTER TABLE %I.mlflow_model_records\n"
    "        ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP,\n"
    "        ADD COLUMN IF NOT EXISTS record_kind VARCHAR(16)', p_schema);\n"
    "    EXECUTE format('INSERT INTO %I.integrationsd_mlflow_model_records (record_id, record_kind,\n"
    "        deleted_at) SELECT id, record_kind, deleted_at FROM %I.mlflow_model_records\n"
    "        WHERE record_kind IS NOT NULL OR deleted_at IS NOT NULL\n"
    "        ON CONFLICT (record_id) DO NOTHING', p_schema, p_schema);\n"
    "    EXECUTE format('DROP INDEX IF EXISTS %I.mlflow_model_records_live_synced', p_schema);\n"
    "    EXECUTE format('ALTER TABLE %I.mlflow_model_records DROP COLUMN deleted_at,\n"
    "        DROP COLUMN record_kind', p_schema);\n"
    "  END IF;\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_sync_history (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      trigger_type VARCHAR(10) NOT NULL CHECK (trigger_type IN (''manual'', ''scheduled'')),\n"
    "      status VARCHAR(10) NOT NULL\n"
    "        CHECK (status IN (''running'', ''success'', ''partial'', ''error'')),\n"
    "      started_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE ''UTC''),\n"
    "      finished_at TIMESTAMP,\n"
    "      message TEXT,\n"
    "      records_fetched INTEGER NOT NULL DEFAULT 0,\n"
    "      records_new INTEGER NOT NULL DEFAULT 0,\n"
    "      records_updated INTEGER NOT NULL DEFAULT 0,\n"
    "      records_unchanged INTEGER NOT NULL DEFAULT 0,\n"
    "      records_stale INTEGER NOT NULL DEFAULT 0,\n"
    "      records_skipped INTEGER NOT NULL DEFAULT 0,\n"
    "      failures INTEGER NOT NULL DEFAULT 0,\n"
    "      triggered_by INTEGER,\n"
    "      instance VARCHAR(64))', p_schema);\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.mlflow_test_results (\n"
    "      id INTEGER PRIMARY KEY DEFAULT 1 CHECK (id = 1),\n"
    "      fingerprint VARCHAR(64) NOT NULL,\n"
    "      status VARCHAR(10) NOT NULL,\n"
    "      message TEXT,\n"
    "      tested_at TIMESTAMP NOT NULL)', p_schema);\n"
    "  EXECUTE format('CREATE INDEX IF NOT EXISTS mlflow_sync_history_started\n"
    "      ON %I.mlflow_sync_history (started_at DESC)', p_schema);\n"
    /* read-cache coherence: see SQL_CACHE_FN */
    "  DECLARE tbl text; BEGIN\n"
    "    FOREACH tbl IN ARRAY ARRAY['llm_keys', 'github_tokens', 'mlflow_integrations',\n"
    "                               'mlflow_test_results', 'mlflow_sync_history',\n"
    "                               'integrationsd_mlflow_integrations'] LOOP\n"
    "      IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'integrationsd_cache'\n"
    "          AND tgrelid = format('%I.%I', p_schema, tbl)::regclass) THEN\n"
    "        EXECUTE format('CREATE TRIGGER integrationsd_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE\n"
    "            ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION public.integrationsd_cache_notify()',\n"
    "            p_schema, tbl);\n"
    "      END IF;\n"
    "    END LOOP;\n"
    "  END;\n"
    "  INSERT INTO public.integration_tenants (schema_name, organization_id, ddl_version)\n"
    "    VALUES (p_schema, p_org, " SCHEMA_TENANT_VERSION ")\n"
    "    ON CONFLICT (schema_name) DO UPDATE SET last_seen_at = now(),\n"
    "      ddl_version = " SCHEMA_TENANT_VERSION ";\n"
    "END $fn$";

/* Bring every known tenant whose schema still exists up to this release's shape at
 * start, before anything (the scheduled sync included) reads it. A one-time migration
 * may take longer than the pool's statement timeout. */
static const char SQL_UPGRADE_TIMEOUT[] = "SELECT set_config('statement_timeout', '300000', true)";
static const char SQL_UPGRADE_TENANTS[] =
    "SELECT count(public.integrationsd_ensure_tenant(schema_name, organization_id))"
    " FROM public.integration_tenants WHERE ddl_version < " SCHEMA_TENANT_VERSION
    " AND schema_name ~ '^[A-Za-z0-9]{10}$' AND to_regnamespace(quote_ident(schema_name)) IS NOT NULL";

/* ---- versions: one round trip at start when nothing needs creating -------------------- */

/* The public objects' version is a hash of every DDL text of this file, so any change to
 * them is a new version with nothing to bump by hand; they carry it as the comment of
 * integrationsd_ensure_tenant, written in the same transaction that applied them (and
 * brought every known tenant to SCHEMA_TENANT_VERSION). */
static char version[17];
static char comment_sql[160];

static void version_init(void)
{
    if (version[0])
        return;
    const char *const parts[] = {SQL_PUBLIC, SQL_SLACK_ORG_FN, SQL_TENANT_FN, SQL_CACHE_FN, SQL_CACHE_TRIGGERS,
                                 SQL_UPGRADE_TENANTS};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *c = parts[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
    snprintf(version, sizeof version, "%016llx", (unsigned long long)h);
    snprintf(comment_sql, sizeof comment_sql,
             "COMMENT ON FUNCTION public.integrationsd_ensure_tenant(text, bigint) IS 'integrationsd schema %s'",
             version);
}

const char *db_schema_version(void)
{
    version_init();
    return version;
}

struct bootstrap {
    struct db_pool *p;
    struct tenant_set *tenants;
    db_callback cb;
    void *arg;
};

/* The tenants already at this version, read in the same round trip as the version: their
 * first requests skip the tenant check. Bounded: past it, a tenant is checked on its
 * first request as before. (An error here, such as no public.integration_tenants yet,
 * fails the unit and sends the bootstrap down the full path.) */
#define PRELOAD_TENANTS_MAX "4096"
static const char SQL_TENANTS_READY[] =
    "SELECT schema_name FROM public.integration_tenants WHERE ddl_version >= " SCHEMA_TENANT_VERSION
    " AND schema_name ~ '^[A-Za-z0-9]{10}$' AND to_regnamespace(quote_ident(schema_name)) IS NOT NULL"
    " LIMIT " PRELOAD_TENANTS_MAX;

static void preload_tenants(struct tenant_set *set, const PGresult *r)
{
    int n = r ? PQntuples(r) : 0;
    for (int i = 0; i < n; i++)
        if (tenant_set_add(set, PQgetvalue(r, i, 0)) < 0) {
            log_warn("start-up: tenant set full after %d of %d tenants; the rest are checked on first use", i, n);
            return;
        }
}

static void on_full(const struct db_result *res, void *arg)
{
    struct bootstrap *b = arg;
    b->cb(res, b->arg);
    free(b);
}

static void on_version(const struct db_result *res, void *arg)
{
    struct bootstrap *b = arg;
    const PGresult *v = res->status == DB_OK ? res->res[0] : NULL;
    if (v && PQntuples(v) == 1 && strcmp(PQgetvalue(v, 0, 0), "t") == 0) {
        if (b->tenants) /* everything in place at this version */
            preload_tenants(b->tenants, res->n > 1 ? res->res[1] : NULL);
        b->cb(res, b->arg);
        free(b);
        return;
    }
    if (res->status == DB_UNAVAILABLE) {
        b->cb(res, b->arg);
        free(b);
        return;
    }
    const struct db_stmt stmts[] = {
        {SQL_LOCK, 0, NULL},
        {SQL_PUBLIC, 0, NULL},
        {SQL_SLACK_ORG_FN, 0, NULL},
        {SQL_TENANT_FN, 0, NULL},
        {SQL_CACHE_FN, 0, NULL},
        {SQL_CACHE_TRIGGERS, 0, NULL},
        {SQL_UPGRADE_TIMEOUT, 0, NULL},
        {SQL_UPGRADE_TENANTS, 0, NULL},
        {comment_sql, 0, NULL},
    };
    db_submit(b->p, stmts, sizeof stmts / sizeof stmts[0], on_full, b);
}

void db_schema_bootstrap(struct db_pool *p, struct tenant_set *tenants, db_callback cb, void *arg)
{
    struct bootstrap *b = malloc(sizeof *b);
    if (!b) {
        struct db_result r = {.status = DB_UNAVAILABLE, .sqlstate = "", .message = "out of memory"};
        cb(&r, arg);
        return;
    }
    *b = (struct bootstrap){p, tenants, cb, arg};
    version_init();
    char expect[64];
    snprintf(expect, sizeof expect, "integrationsd schema %s", version);
    const char *params[] = {expect};
    const struct db_stmt stmts[] = {
        {"SELECT COALESCE(obj_description(to_regprocedure("
         "'public.integrationsd_ensure_tenant(text,bigint)'), 'pg_proc') = $1, false)",
         1, params},
        {SQL_TENANTS_READY, 0, NULL},
    };
    db_submit(p, stmts, tenants ? 2 : 1, on_version, b);
}

void db_schema_ensure_tenant(struct db_pool *p, const char *tenant, long long org,
                             db_callback cb, void *arg)
{
    char orgbuf[24];
    snprintf(orgbuf, sizeof orgbuf, "%lld", org);
    const char *params[] = {tenant, orgbuf};
    /* A tenant already at this version (the usual case after the first start) costs one
     * plain query: the PL/pgSQL function, which a fresh backend compiles first, only runs
     * when something may need creating. */
    db_query(p,
             "SELECT CASE WHEN EXISTS (SELECT 1 FROM public.integration_tenants WHERE schema_name = $1"
             " AND ddl_version >= " SCHEMA_TENANT_VERSION " AND to_regnamespace(quote_ident($1)) IS NOT NULL)"
             " THEN NULL ELSE public.integrationsd_ensure_tenant($1, $2::bigint) END",
             2, params, cb, arg);
}

int db_table(char *buf, size_t len, const char *tenant, const char *table)
{
    if (!tenant_name_valid(tenant))
        return -1;
    int n = snprintf(buf, len, "\"%s\".%s", tenant, table);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- tenant set ------------------------------------------------------------ */

struct tenant_set {
    size_t cap, used;
    char (*slots)[TENANT_HASH_LEN + 1];
};

static size_t slot_of(const char *t, size_t cap)
{
    size_t h = 1469598103934665603ull & (size_t)-1;
    for (; *t; t++)
        h = (h ^ (unsigned char)*t) * 1099511628211ull;
    return h & (cap - 1);
}

struct tenant_set *tenant_set_new(void)
{
    struct tenant_set *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cap = 64;
    s->slots = calloc(s->cap, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return NULL;
    }
    return s;
}

void tenant_set_free(struct tenant_set *s)
{
    if (s) {
        free(s->slots);
        free(s);
    }
}

bool tenant_set_has(const struct tenant_set *s, const char *t)
{
    for (size_t i = slot_of(t, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i][0])
            return false;
        if (strcmp(s->slots[i], t) == 0)
            return true;
    }
}

static void put(char (*slots)[TENANT_HASH_LEN + 1], size_t cap, const char *t)
{
    size_t i = slot_of(t, cap);
    while (slots[i][0])
        i = (i + 1) & (cap - 1);
    snprintf(slots[i], TENANT_HASH_LEN + 1, "%s", t);
}

size_t tenant_set_count(const struct tenant_set *s)
{
    return s->used;
}

int tenant_set_add(struct tenant_set *s, const char *t)
{
    if (!tenant_name_valid(t))
        return -1;
    if (tenant_set_has(s, t))
        return 0;
    if ((s->used + 1) * 2 > s->cap) {
        size_t ncap = s->cap * 2;
        char(*ns)[TENANT_HASH_LEN + 1] = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i][0])
                put(ns, ncap, s->slots[i]);
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    put(s->slots, s->cap, t);
    s->used++;
    return 0;
}

/* ---- the bootstrap kept trying ---------------------------------------------- */

#define SCHEMA_RETRY_MS 2000

struct db_schema_keeper {
    struct db_schema_keeper_opts o;
    struct event *retry;
    struct db_pool *pool;
    bool ready, running;
};

static void keeper_run(struct db_schema_keeper *k);

static void keeper_done(const struct db_result *res, void *arg)
{
    struct db_schema_keeper *k = arg;
    k->running = false;
    if (res->status == DB_OK) {
        k->ready = true;
        k->o.on_ready(k->o.arg);
        return;
    }
    if (res->status == DB_SQL_ERROR)
        log_error("creating the public schema objects failed: %s (%s); retrying", res->message,
                  res->sqlstate);
    struct timeval tv = {SCHEMA_RETRY_MS / 1000, (SCHEMA_RETRY_MS % 1000) * 1000};
    if (!k->o.stopping(k->o.arg) && evtimer_add(k->retry, &tv) < 0)
        log_error("cannot arm the schema retry timer");
}

static void keeper_run(struct db_schema_keeper *k)
{
    if (k->ready || k->running || !k->pool || k->o.stopping(k->o.arg) || db_pool_live(k->pool) == 0)
        return;
    k->running = true;
    db_schema_bootstrap(k->pool, k->o.tenants, keeper_done, k);
}

static void keeper_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    keeper_run(arg);
}

struct db_schema_keeper *db_schema_keeper_new(struct event_base *base, const struct db_schema_keeper_opts *o)
{
    struct db_schema_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->o = *o;
    if (!(k->retry = evtimer_new(base, keeper_retry_cb, k))) {
        free(k);
        return NULL;
    }
    return k;
}

void db_schema_keeper_poke(struct db_schema_keeper *k, struct db_pool *p)
{
    k->pool = p;
    keeper_run(k);
}

void db_schema_keeper_free(struct db_schema_keeper *k)
{
    if (!k)
        return;
    event_free(k->retry);
    free(k);
}
