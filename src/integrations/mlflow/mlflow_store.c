/* integrations/mlflow_store: owns the MLflow integration's SQL (one template per
 * statement, its tenant tables listed next to it, the column enum of each SELECT list
 * next to its text) and the decoding of every row the integration reads. Templates
 * name a tenant table as %s, in the order of their `tables` list; mlflow_store_sql
 * fills them in and fails instead of truncating. */
#include "integrations/mlflow_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secrets.h"
#include "db/schema.h"
#include "integrations/mlflow_map.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- configuration and connection tests ------------------------------------------ */

#define ISO(col) "to_char(" col ", 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* enum mlflow_config_col */
#define CONFIG_COLS                                                                                        \
    "id, tracking_server_url, auth_method, username, username_iv, password, password_iv, "                \
    "api_token, api_token_iv, verify_ssl, timeout, " ISO("last_tested_at") ", "                             \
    "last_test_status, last_test_message, " ISO("last_successful_test_at") ", " ISO("last_failed_test_at") \
    ", last_failed_test_message, " ISO("last_synced_at") ", "                                              \
    "last_sync_status, last_sync_message, " ISO("updated_at") ", updated_by, "                            \
    "last_tested_fingerprint"

/* VerifyWise's row and integrationsd's own columns of it (absent for a row VerifyWise wrote) */
static const char SQL_CONFIG_SELECT[] =
    "SELECT " CONFIG_COLS " FROM %s LEFT JOIN %s ON integration_id = id ORDER BY id LIMIT 1";

/* the row (by id) only when it holds what was tested */
static const char SQL_TEST_RECORD_ROW[] =
    "WITH u AS (UPDATE %s SET last_tested_at = now() AT TIME ZONE 'UTC', last_test_status = $2::text,"
    " last_test_message = $3::text,"
    " last_successful_test_at = CASE WHEN $2::text = 'success' THEN now() AT TIME ZONE 'UTC'"
    " ELSE last_successful_test_at END,"
    " last_failed_test_at = CASE WHEN $2::text = 'error' THEN now() AT TIME ZONE 'UTC' ELSE last_failed_test_at END,"
    " last_failed_test_message = CASE WHEN $2::text = 'error' THEN $3::text ELSE last_failed_test_message END,"
    " updated_at = now() AT TIME ZONE 'UTC'"
    " WHERE id = $1::int AND $5::boolean RETURNING id)"
    " INSERT INTO %s (integration_id, last_tested_fingerprint) SELECT id, $4::text FROM u"
    " ON CONFLICT (integration_id) DO UPDATE SET last_tested_fingerprint = EXCLUDED.last_tested_fingerprint";

/* the tenant's last test, always */
static const char SQL_TEST_RECORD_LAST[] =
    "INSERT INTO %s (id, fingerprint, status, message, tested_at)"
    " VALUES (1, $1, $2::text, $3::text, now() AT TIME ZONE 'UTC') ON CONFLICT (id) DO UPDATE SET"
    " fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, message = EXCLUDED.message,"
    " tested_at = EXCLUDED.tested_at";

/* enum mlflow_last_test_col */
static const char SQL_TEST_LAST[] =
    "SELECT fingerprint, status, message, to_char(tested_at, 'YYYY-MM-DD HH24:MI:SS.US') FROM %s";

static const char SQL_CONFIGURE_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext($1))";

/* one row per tenant: update it or insert it; test status kept, taken from the last
 * test, or reset (with the sync status); returns CONFIG_COLS */
static const char SQL_CONFIGURE[] =
    "WITH cur AS (SELECT id FROM %s ORDER BY id LIMIT 1),"
    " upd AS (UPDATE %s SET tracking_server_url = $1, auth_method = $2, username = $3, username_iv = $4,"
    " password = $5, password_iv = $6, api_token = $7, api_token_iv = $8, verify_ssl = $9::boolean,"
    " timeout = $10::int, updated_by = NULLIF($11, '0')::int, updated_at = now() AT TIME ZONE 'UTC',"
    " last_tested_at = CASE WHEN $12::boolean THEN last_tested_at ELSE $14::timestamp END,"
    " last_test_status = CASE WHEN $12::boolean THEN last_test_status ELSE $15::text END,"
    " last_test_message = CASE WHEN $12::boolean THEN last_test_message ELSE $16::text END,"
    " last_successful_test_at = CASE WHEN $15::text = 'success' THEN $14::timestamp ELSE last_successful_test_at END,"
    " last_failed_test_at = CASE WHEN $15::text = 'error' THEN $14::timestamp ELSE last_failed_test_at END,"
    " last_failed_test_message = CASE WHEN $15::text = 'error' THEN $16::text ELSE last_failed_test_message END,"
    " last_synced_at = CASE WHEN $12::boolean THEN last_synced_at END,"
    " last_sync_status = CASE WHEN $12::boolean THEN last_sync_status END,"
    " last_sync_message = CASE WHEN $12::boolean THEN last_sync_message END"
    " WHERE id IN (SELECT id FROM cur) RETURNING *),"
    " ins AS (INSERT INTO %s (tracking_server_url, auth_method, username, username_iv, password,"
    " password_iv, api_token, api_token_iv, verify_ssl, timeout, updated_by, last_tested_at,"
    " last_test_status, last_test_message, last_successful_test_at, last_failed_test_at,"
    " last_failed_test_message, created_at, updated_at)"
    " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9::boolean, $10::int, NULLIF($11, '0')::int, $14::timestamp,"
    " $15::text, $16::text, CASE WHEN $15::text = 'success' THEN $14::timestamp END,"
    " CASE WHEN $15::text = 'error' THEN $14::timestamp END, CASE WHEN $15::text = 'error' THEN $16::text END,"
    " now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'"
    " WHERE NOT EXISTS (SELECT 1 FROM cur) AND NOT $12::boolean RETURNING *),"
    " cfg AS (SELECT * FROM upd UNION ALL SELECT * FROM ins),"
    /* the tested fingerprint: kept, the last test's, or none */
    " fp AS (INSERT INTO %s AS k (integration_id, last_tested_fingerprint)"
    " SELECT id, CASE WHEN $15::text IS NOT NULL THEN $13::text END FROM cfg WHERE NOT $12::boolean"
    " ON CONFLICT (integration_id) DO UPDATE SET last_tested_fingerprint = EXCLUDED.last_tested_fingerprint"
    " RETURNING k.integration_id, k.last_tested_fingerprint)"
    " SELECT " CONFIG_COLS " FROM cfg LEFT JOIN (SELECT * FROM fp UNION ALL"
    " SELECT integration_id, last_tested_fingerprint FROM %s WHERE $12::boolean) f ON integration_id = id";

/* ---- model records and history ------------------------------------------------------ */

static const char SQL_MODELS_CONFIGURED[] = "SELECT id FROM %s LIMIT 1";

#define EPOCH_MS(c) "(extract(epoch FROM " c ") * 1000)::bigint"
enum model_col {
    R_NAME, R_VERSION, R_STAGE, R_DESC, R_RUN, R_SOURCE, R_STATUS, R_TAGS, R_METRICS, R_PARAMS, R_EXP_ID,
    R_EXP_NAME, R_ARTIFACT, R_TRAINING, R_STARTED, R_ENDED, R_SRCVER, R_CREATED, R_UPDATED, R_KIND,
};
static const char SQL_MODELS_LIST[] =
    "SELECT model_name, version, lifecycle_stage, description, run_id, source, status, tags, metrics,"
    " parameters, experiment_id, experiment_name, artifact_location, training_status, "
    EPOCH_MS("training_started_at") ", " EPOCH_MS("training_ended_at") ", source_version, "
    EPOCH_MS("COALESCE(model_created_at, created_at)") ", "
    EPOCH_MS("COALESCE(model_updated_at, updated_at)") ", record_kind"
    " FROM %s LEFT JOIN %s ON record_id = id WHERE deleted_at IS NULL ORDER BY id LIMIT " STR(MLFLOW_MODELS_MAX);

enum freshness_col { F_TIMEOUT, F_FRESH };
static const char SQL_MODELS_FRESHNESS[] =
    "SELECT timeout, COALESCE(last_sync_status IN ('success', 'partial') AND last_synced_at >="
    " (now() AT TIME ZONE 'UTC') - make_interval(secs => $1::int), false)"
    " FROM %s LIMIT 1";

enum history_col {
    H_ID, H_TRIGGER, H_STATUS, H_STARTED, H_FINISHED, H_MESSAGE, H_FETCHED, H_NEW, H_UPDATED, H_UNCHANGED,
    H_STALE, H_SKIPPED, H_FAILURES,
};
static const char SQL_HISTORY[] =
    "SELECT id, trigger_type, status, to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    " to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), message, records_fetched, records_new,"
    " records_updated, records_unchanged, records_stale, records_skipped, failures"
    " FROM %s ORDER BY started_at DESC, id DESC LIMIT " STR(MLFLOW_HISTORY_MAX);

/* ---- the sync job ---------------------------------------------------------------------- */

/* take the tenant's lease (when expired) and open a history row; an interrupted run of
 * the tenant is closed. enum acquire_col */
enum acquire_col { A_ID, A_STARTED };
static const char SQL_SYNC_ACQUIRE[] =
    "WITH l AS (INSERT INTO public.integration_locks AS k (name, holder, acquired_at, expires_at)"
    " VALUES ($1, $2, now(), now() + interval '" STR(MLFLOW_LEASE_SECONDS) " seconds')"
    " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, acquired_at = now(),"
    " expires_at = EXCLUDED.expires_at WHERE k.expires_at < now() RETURNING holder),"
    " c AS (UPDATE %s SET status = 'error', finished_at = now() AT TIME ZONE 'UTC',"
    " message = 'Interrupted: the instance running this sync stopped'"
    " WHERE status = 'running' AND EXISTS (SELECT 1 FROM l))"
    " INSERT INTO %s (trigger_type, status, started_at, triggered_by, instance)"
    " SELECT $3, 'running', now() AT TIME ZONE 'UTC', NULLIF($4, '0')::int, $5 FROM l"
    " RETURNING id, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS.US')";

static const char SQL_SYNC_RENEW[] =
    "UPDATE public.integration_locks SET expires_at = now() + interval '" STR(MLFLOW_LEASE_SECONDS) " seconds' "
    "WHERE name = $1 AND holder = $2 RETURNING name";

static const char SQL_SYNC_SKIP_HISTORY[] =
    "INSERT INTO %s (trigger_type, status, started_at, finished_at, message, instance)"
    " VALUES ('scheduled', 'error', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', $1, $2)";

static const char SQL_SYNC_SKIP_CONFIG[] =
    "UPDATE %s SET last_synced_at = now() AT TIME ZONE 'UTC', last_sync_status = 'error',"
    " last_sync_message = $1, updated_at = now() AT TIME ZONE 'UTC' WHERE id = $2::int";

#define CONTENT(t)                                                                                  \
    "(" t ".lifecycle_stage, " t ".run_id, " t ".description, " t ".source, " t ".status, " t           \
    ".tags, " t ".metrics, " t ".parameters, " t ".experiment_id, " t ".experiment_name, " t           \
    ".artifact_location, " t ".training_status, " t ".training_started_at, " t ".training_ended_at, " \
    t ".source_version, " t ".model_created_at, " t ".model_updated_at)"
#define MS_TS(c) "'epoch'::timestamp + r." c " * interval '1 millisecond' AS " c

/* one page of records (a jsonb array) with change detection; enum upsert_col */
enum upsert_col {
    U_NAME, U_VERSION, U_CHANGE, U_CHANGED /* MLFLOW_CHANGED_FIELDS flags */, U_STAGE = U_CHANGED + MLFLOW_CHANGED_FIELDS,
    U_STATUS, U_KIND,
};
static const char SQL_SYNC_UPSERT[] =
    "WITH x AS (SELECT DISTINCT ON (model_name, version) * FROM ("
    " SELECT left(r.model_name, 255) AS model_name, left(r.version, 255) AS version,"
    " left(r.lifecycle_stage, 255) AS lifecycle_stage, left(r.run_id, 255) AS run_id,"
    " left(r.description, 65535) AS description, left(r.source, 255) AS source,"
    " left(r.status, 255) AS status, COALESCE(r.tags, '{}') AS tags,"
    " COALESCE(r.metrics, '{}') AS metrics, COALESCE(r.parameters, '{}') AS parameters,"
    " left(r.experiment_id, 255) AS experiment_id, left(r.experiment_name, 255) AS experiment_name,"
    " left(r.artifact_location, 65535) AS artifact_location,"
    " left(r.training_status, 255) AS training_status, " MS_TS("training_started_at") ", "
    MS_TS("training_ended_at") ", left(r.source_version, 255) AS source_version, "
    MS_TS("model_created_at") ", " MS_TS("model_updated_at") ", left(r.record_kind, 16) AS record_kind"
    " FROM jsonb_to_recordset($1::jsonb) AS r(record_kind text, model_name text, version text,"
    " lifecycle_stage text, run_id text, description text, source text, status text,"
    " experiment_id text, experiment_name text, artifact_location text, training_status text,"
    " source_version text, tags jsonb, metrics jsonb, parameters jsonb,"
    " training_started_at bigint, training_ended_at bigint, model_created_at bigint,"
    " model_updated_at bigint)"
    " WHERE r.model_name <> '' AND r.version <> '') s ORDER BY model_name, version),"
    " old AS (SELECT o.*, d.deleted_at FROM %s o JOIN x ON o.model_name = x.model_name"
    " AND o.version = x.version LEFT JOIN %s d ON d.record_id = o.id),"
    " up AS (INSERT INTO %s AS t (model_name, version, lifecycle_stage, run_id, description, source,"
    " status, tags, metrics, parameters, experiment_id, experiment_name, artifact_location,"
    " training_status, training_started_at, training_ended_at, source_version, model_created_at,"
    " model_updated_at, last_synced_at, created_at, updated_at)"
    " SELECT model_name, version, lifecycle_stage, run_id, description, source, status, tags,"
    " metrics, parameters, experiment_id, experiment_name, artifact_location, training_status,"
    " training_started_at, training_ended_at, source_version, model_created_at, model_updated_at,"
    " $2::timestamp, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM x"
    " ON CONFLICT (model_name, version) DO UPDATE SET lifecycle_stage = EXCLUDED.lifecycle_stage,"
    " run_id = EXCLUDED.run_id, description = EXCLUDED.description, source = EXCLUDED.source,"
    " status = EXCLUDED.status, tags = EXCLUDED.tags, metrics = EXCLUDED.metrics,"
    " parameters = EXCLUDED.parameters, experiment_id = EXCLUDED.experiment_id,"
    " experiment_name = EXCLUDED.experiment_name, artifact_location = EXCLUDED.artifact_location,"
    " training_status = EXCLUDED.training_status, training_started_at = EXCLUDED.training_started_at,"
    " training_ended_at = EXCLUDED.training_ended_at, source_version = EXCLUDED.source_version,"
    " model_created_at = EXCLUDED.model_created_at, model_updated_at = EXCLUDED.model_updated_at,"
    " last_synced_at = EXCLUDED.last_synced_at,"
    " updated_at = CASE WHEN t.id IN (SELECT id FROM old WHERE deleted_at IS NOT NULL) OR "
    CONTENT("t") " IS DISTINCT FROM "
    CONTENT("EXCLUDED") " THEN now() AT TIME ZONE 'UTC' ELSE t.updated_at END"
    " RETURNING t.*),"
    /* integrationsd's own columns of each record: its kind, and live again */
    " kd AS (INSERT INTO %s (record_id, record_kind, deleted_at)"
    " SELECT u.id, x.record_kind, NULL FROM up u JOIN x ON x.model_name = u.model_name"
    " AND x.version = u.version ON CONFLICT (record_id) DO UPDATE"
    " SET record_kind = EXCLUDED.record_kind, deleted_at = NULL)"
    " SELECT u.model_name, u.version,"
    " CASE WHEN o.id IS NULL THEN 'new' WHEN o.deleted_at IS NOT NULL OR " CONTENT("o")
    " IS DISTINCT FROM " CONTENT("u") " THEN 'updated' ELSE 'unchanged' END,"
    " o.lifecycle_stage IS DISTINCT FROM u.lifecycle_stage,"
    " (o.tags -> '" MLFLOW_ALIASES_TAG "') IS DISTINCT FROM (u.tags -> '" MLFLOW_ALIASES_TAG "'),"
    " o.status IS DISTINCT FROM u.status, o.description IS DISTINCT FROM u.description,"
    " (o.tags - '" MLFLOW_ALIASES_TAG "') IS DISTINCT FROM (u.tags - '" MLFLOW_ALIASES_TAG "'),"
    " u.lifecycle_stage, u.status, x.record_kind"
    " FROM up u JOIN x ON x.model_name = u.model_name AND x.version = u.version"
    " LEFT JOIN old o ON o.model_name = u.model_name AND o.version = u.version";

/* records this (complete) sync did not see: marked deleted, a batch at a time; enum stale_col */
enum stale_col { S_NAME, S_VERSION, S_STAGE, S_STATUS, S_KIND };
static const char SQL_SYNC_STALE[] =
    "WITH s AS (SELECT r.id FROM %s r LEFT JOIN %s d ON d.record_id = r.id WHERE d.deleted_at IS NULL AND"
    " (r.last_synced_at IS NULL OR r.last_synced_at < $1::timestamp) ORDER BY r.id LIMIT "
    STR(MLFLOW_STALE_BATCH) "),"
    " m AS (INSERT INTO %s AS d (record_id, deleted_at) SELECT id, now() AT TIME ZONE 'UTC' FROM s"
    " ON CONFLICT (record_id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at"
    " RETURNING d.record_id, d.record_kind)"
    " UPDATE %s r SET updated_at = now() AT TIME ZONE 'UTC'"
    " FROM m WHERE r.id = m.record_id RETURNING r.model_name, r.version, r.lifecycle_stage, r.status,"
    " m.record_kind";

static const char SQL_SYNC_FINISH_HISTORY[] =
    "UPDATE %s SET status = $2, finished_at = now() AT TIME ZONE 'UTC', message = $3,"
    " records_fetched = $4::int, records_new = $5::int, records_updated = $6::int,"
    " records_unchanged = $7::int, records_stale = $8::int, records_skipped = $9::int,"
    " failures = $10::int WHERE id = $1::int";

static const char SQL_SYNC_FINISH_CONFIG[] =
    "UPDATE %s SET last_synced_at = now() AT TIME ZONE 'UTC', last_sync_status = $2,"
    " last_sync_message = $3, updated_at = now() AT TIME ZONE 'UTC' WHERE id = $1::int";

static const char SQL_SYNC_RELEASE[] = "DELETE FROM public.integration_locks WHERE name = $1 AND holder = $2";

/* ---- the scheduler -------------------------------------------------------------------------- */

static const char SQL_SCHED_PURGE[] =
    "DELETE FROM public.integration_locks WHERE name LIKE 'mlflow-schedule:%' AND expires_at < now()";
static const char SQL_SCHED_CLAIM[] =
    "INSERT INTO public.integration_locks (name, holder, expires_at) VALUES ($1, $2, now() + interval '1 day')"
    " ON CONFLICT (name) DO NOTHING RETURNING name";
enum tenant_col { T_SCHEMA, T_ORG };
static const char SQL_SCHED_TENANTS[] =
    "SELECT schema_name, organization_id FROM public.integration_tenants"
    " WHERE schema_name ~ '^[A-Za-z0-9]{10}$'"
    " AND to_regclass(quote_ident(schema_name) || '.mlflow_integrations') IS NOT NULL"
    " ORDER BY schema_name";

/* ---- the table of statements ------------------------------------------------------------------ */

#define TABLES_MAX 5
static const struct {
    const char *text;
    const char *tables[TABLES_MAX]; /* the %s of text, in order; none: the text as is */
} stmts[MLFLOW_SQL_COUNT] = {
    [MLFLOW_SQL_CONFIG_SELECT] = {SQL_CONFIG_SELECT, {"mlflow_integrations", "integrationsd_mlflow_integrations"}},
    [MLFLOW_SQL_TEST_RECORD_ROW] = {SQL_TEST_RECORD_ROW,
                                    {"mlflow_integrations", "integrationsd_mlflow_integrations"}},
    [MLFLOW_SQL_TEST_RECORD_LAST] = {SQL_TEST_RECORD_LAST, {"mlflow_test_results"}},
    [MLFLOW_SQL_TEST_LAST] = {SQL_TEST_LAST, {"mlflow_test_results"}},
    [MLFLOW_SQL_CONFIGURE_LOCK] = {SQL_CONFIGURE_LOCK, {NULL}},
    [MLFLOW_SQL_CONFIGURE] = {SQL_CONFIGURE,
                              {"mlflow_integrations", "mlflow_integrations", "mlflow_integrations",
                               "integrationsd_mlflow_integrations", "integrationsd_mlflow_integrations"}},
    [MLFLOW_SQL_MODELS_CONFIGURED] = {SQL_MODELS_CONFIGURED, {"mlflow_integrations"}},
    [MLFLOW_SQL_MODELS_LIST] = {SQL_MODELS_LIST, {"mlflow_model_records", "integrationsd_mlflow_model_records"}},
    [MLFLOW_SQL_MODELS_FRESHNESS] = {SQL_MODELS_FRESHNESS, {"mlflow_integrations"}},
    [MLFLOW_SQL_HISTORY] = {SQL_HISTORY, {"mlflow_sync_history"}},
    [MLFLOW_SQL_SYNC_ACQUIRE] = {SQL_SYNC_ACQUIRE, {"mlflow_sync_history", "mlflow_sync_history"}},
    [MLFLOW_SQL_SYNC_RENEW] = {SQL_SYNC_RENEW, {NULL}},
    [MLFLOW_SQL_SYNC_SKIP_HISTORY] = {SQL_SYNC_SKIP_HISTORY, {"mlflow_sync_history"}},
    [MLFLOW_SQL_SYNC_SKIP_CONFIG] = {SQL_SYNC_SKIP_CONFIG, {"mlflow_integrations"}},
    [MLFLOW_SQL_SYNC_UPSERT] = {SQL_SYNC_UPSERT,
                                {"mlflow_model_records", "integrationsd_mlflow_model_records", "mlflow_model_records",
                                 "integrationsd_mlflow_model_records"}},
    [MLFLOW_SQL_SYNC_STALE] = {SQL_SYNC_STALE,
                               {"mlflow_model_records", "integrationsd_mlflow_model_records",
                                "integrationsd_mlflow_model_records", "mlflow_model_records"}},
    [MLFLOW_SQL_SYNC_FINISH_HISTORY] = {SQL_SYNC_FINISH_HISTORY, {"mlflow_sync_history"}},
    [MLFLOW_SQL_SYNC_FINISH_CONFIG] = {SQL_SYNC_FINISH_CONFIG, {"mlflow_integrations"}},
    [MLFLOW_SQL_SYNC_RELEASE] = {SQL_SYNC_RELEASE, {NULL}},
    [MLFLOW_SQL_SCHED_PURGE] = {SQL_SCHED_PURGE, {NULL}},
    [MLFLOW_SQL_SCHED_CLAIM] = {SQL_SCHED_CLAIM, {NULL}},
    [MLFLOW_SQL_SCHED_TENANTS] = {SQL_SCHED_TENANTS, {NULL}},
};

/* Append n bytes at *pos; false when they do not fit (with the final NUL). */
static bool put(char *buf, size_t len, size_t *pos, const char *s, size_t n)
{
    if (n >= len - *pos)
        return false;
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
    return true;
}

int mlflow_store_sql(char *buf, size_t len, enum mlflow_sql which, const char *tenant)
{
    if (!buf || len == 0)
        return -1;
    buf[0] = '\0';
    if ((unsigned)which >= MLFLOW_SQL_COUNT || !stmts[which].text)
        return -1;
    const char *t = stmts[which].text;
    size_t pos = 0;
    if (!stmts[which].tables[0]) /* names no tenant table: may hold a literal '%' */
        return put(buf, len, &pos, t, strlen(t)) ? 0 : -1;
    int k = 0;
    for (const char *p; (p = strstr(t, "%s")); t = p + 2) {
        char name[64];
        if (k >= TABLES_MAX || !stmts[which].tables[k] || !tenant ||
            db_table(name, sizeof name, tenant, stmts[which].tables[k]) < 0 ||
            !put(buf, len, &pos, t, (size_t)(p - t)) || !put(buf, len, &pos, name, strlen(name))) {
            buf[0] = '\0';
            return -1;
        }
        k++;
    }
    if ((k < TABLES_MAX && stmts[which].tables[k]) || !put(buf, len, &pos, t, strlen(t))) {
        buf[0] = '\0'; /* a template and its table list disagree, or no room */
        return -1;
    }
    return 0;
}

/* ---- row decoding ------------------------------------------------------------------------------- */

static const char *val(const PGresult *res, int i, int col)
{
    return PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
}

static json_t *col_str(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null() : json_string(PQgetvalue(res, 0, col));
}

static bool has_stored(const PGresult *res, int col, int iv)
{
    return !PQgetisnull(res, 0, col) && !PQgetisnull(res, 0, iv);
}

bool mlflow_store_config_row(const PGresult *res, struct mlflow_config_row *row)
{
    memset(row, 0, sizeof *row);
    if (!res || PQntuples(res) == 0)
        return false;
    row->id = PQgetvalue(res, 0, MC_ID);
    row->url = PQgetvalue(res, 0, MC_URL);
    row->auth = PQgetvalue(res, 0, MC_AUTH);
    row->test_status = val(res, 0, MC_TEST_STATUS);
    row->fingerprint = val(res, 0, MC_FPR);
    row->timeout_s = (int)strtol(PQgetvalue(res, 0, MC_TIMEOUT), NULL, 10);
    row->verify_ssl = PQgetvalue(res, 0, MC_VERIFY)[0] == 't';
    return true;
}

int mlflow_store_config_cred(const struct secrets *s, const PGresult *res, enum mlflow_cred_col which, char **out)
{
    static const int cols[][2] = {
        [MLFLOW_CRED_USER] = {MC_USER, MC_USER_IV},
        [MLFLOW_CRED_PASS] = {MC_PASS, MC_PASS_IV},
        [MLFLOW_CRED_TOKEN] = {MC_TOKEN, MC_TOKEN_IV},
    };
    *out = NULL;
    if (!res || PQntuples(res) == 0 || !has_stored(res, cols[which][0], cols[which][1]))
        return 0;
    size_t len;
    if (secrets_a_decrypt(s, PQgetvalue(res, 0, cols[which][0]), PQgetvalue(res, 0, cols[which][1]), out, &len) <
        0)
        return -1;
    if (memchr(*out, '\0', len)) { /* not something we could have stored */
        secrets_free_plain(*out, len);
        *out = NULL;
        return -1;
    }
    return 0;
}

json_t *mlflow_config_summary(const PGresult *res)
{
    if (!res || PQntuples(res) == 0)
        return json_pack("{s:b}", "configured", 0);
    json_t *c = json_object();
    json_object_set_new(c, "trackingServerUrl", col_str(res, MC_URL));
    json_object_set_new(c, "authMethod", col_str(res, MC_AUTH));
    json_object_set_new(c, "timeout", json_integer(strtol(PQgetvalue(res, 0, MC_TIMEOUT), NULL, 10)));
    json_object_set_new(c, "verifySsl", json_boolean(PQgetvalue(res, 0, MC_VERIFY)[0] == 't'));
    json_object_set_new(c, "hasStoredUsername", json_boolean(has_stored(res, MC_USER, MC_USER_IV)));
    json_object_set_new(c, "hasStoredPassword", json_boolean(has_stored(res, MC_PASS, MC_PASS_IV)));
    json_object_set_new(c, "hasStoredApiToken", json_boolean(has_stored(res, MC_TOKEN, MC_TOKEN_IV)));
    json_object_set_new(c, "lastTestedAt", col_str(res, MC_TESTED_AT));
    json_object_set_new(c, "lastTestStatus", col_str(res, MC_TEST_STATUS));
    json_object_set_new(c, "lastTestMessage", col_str(res, MC_TEST_MSG));
    json_object_set_new(c, "lastSuccessfulTestAt", col_str(res, MC_OK_AT));
    json_object_set_new(c, "lastFailedTestAt", col_str(res, MC_FAIL_AT));
    json_object_set_new(c, "lastFailedTestMessage", col_str(res, MC_FAIL_MSG));
    json_object_set_new(c, "lastSyncedAt", col_str(res, MC_SYNCED_AT));
    json_object_set_new(c, "lastSyncStatus", col_str(res, MC_SYNC_STATUS));
    json_object_set_new(c, "lastSyncMessage", col_str(res, MC_SYNC_MSG));
    json_object_set_new(c, "updatedAt", col_str(res, MC_UPDATED_AT));
    json_object_set_new(c, "updatedBy", PQgetisnull(res, 0, MC_UPDATED_BY)
                                            ? json_null()
                                            : json_integer(strtoll(PQgetvalue(res, 0, MC_UPDATED_BY), NULL, 10)));
    return json_pack("{s:b,s:o}", "configured", 1, "config", c);
}

int mlflow_conn_from_row(const struct secrets *s, const PGresult *res, struct mlflow_conn *c)
{
    memset(c, 0, sizeof *c);
    struct mlflow_config_row row;
    if (!mlflow_store_config_row(res, &row))
        return -1;
    snprintf(c->url, sizeof c->url, "%s", row.url);
    size_t l = strlen(c->url);
    if (l && c->url[l - 1] == '/')
        c->url[l - 1] = '\0';
    if (mlflow_auth_parse(row.auth, &c->auth) < 0)
        c->auth = MLFLOW_AUTH_NONE;
    c->timeout_s = row.timeout_s;
    if (c->timeout_s < MLFLOW_TIMEOUT_MIN || c->timeout_s > MLFLOW_TIMEOUT_MAX)
        c->timeout_s = MLFLOW_TIMEOUT_DEFAULT;
    c->verify_ssl = row.verify_ssl;
    if (mlflow_store_config_cred(s, res, MLFLOW_CRED_USER, &c->username) < 0 ||
        mlflow_store_config_cred(s, res, MLFLOW_CRED_PASS, &c->password) < 0 ||
        mlflow_store_config_cred(s, res, MLFLOW_CRED_TOKEN, &c->api_token) < 0) {
        mlflow_conn_clear(c);
        return -1;
    }
    return 0;
}

bool mlflow_store_last_test(const PGresult *res, struct mlflow_last_test *t)
{
    memset(t, 0, sizeof *t);
    if (!res || PQntuples(res) == 0)
        return false;
    t->fingerprint = PQgetvalue(res, 0, LT_FINGERPRINT);
    t->status = PQgetvalue(res, 0, LT_STATUS);
    t->message = val(res, 0, LT_MESSAGE);
    t->tested_at = PQgetvalue(res, 0, LT_TESTED_AT);
    return true;
}

static json_t *text(const PGresult *res, int i, int col, bool empty_default)
{
    if (PQgetisnull(res, i, col))
        return empty_default ? json_string("") : json_null();
    return json_string(PQgetvalue(res, i, col));
}

static json_t *obj(const PGresult *res, int i, int col)
{
    json_t *o = PQgetisnull(res, i, col) ? NULL : json_loads(PQgetvalue(res, i, col), 0, NULL);
    return o ? o : json_object();
}

static json_t *ms(const PGresult *res, int i, int col)
{
    return PQgetisnull(res, i, col) ? json_null() : json_integer(strtoll(PQgetvalue(res, i, col), NULL, 10));
}

json_t *mlflow_store_model_json(const PGresult *res, int i)
{
    json_t *o = json_object();
    bool version_row = !PQgetisnull(res, i, R_KIND) && strcmp(PQgetvalue(res, i, R_KIND), "model_version") == 0;
    if (version_row) {
        char *id = NULL;
        if (asprintf(&id, "%s/%s", PQgetvalue(res, i, R_NAME), PQgetvalue(res, i, R_VERSION)) >= 0) {
            json_object_set_new(o, "id", json_string(id));
            free(id);
        }
    } else {
        json_object_set_new(o, "id", json_string(PQgetvalue(res, i, R_VERSION)));
    }
    json_object_set_new(o, "name", json_string(PQgetvalue(res, i, R_NAME)));
    json_object_set_new(o, "version", json_string(PQgetvalue(res, i, R_VERSION)));
    json_object_set_new(o, "lifecycle_stage", text(res, i, R_STAGE, false));
    json_object_set_new(o, "creation_timestamp", ms(res, i, R_CREATED));
    json_object_set_new(o, "last_updated_timestamp", ms(res, i, R_UPDATED));
    json_object_set_new(o, "description", text(res, i, R_DESC, true));
    json_object_set_new(o, "run_id", text(res, i, R_RUN, false));
    json_object_set_new(o, "source", text(res, i, R_SOURCE, false));
    json_object_set_new(o, "status", text(res, i, R_STATUS, false));
    json_object_set_new(o, "tags", obj(res, i, R_TAGS));
    json_object_set_new(o, "metrics", obj(res, i, R_METRICS));
    json_object_set_new(o, "parameters", obj(res, i, R_PARAMS));
    json_object_set_new(o, "experiment_info",
                        json_pack("{s:o,s:o,s:o}", "experiment_id", text(res, i, R_EXP_ID, false), "experiment_name",
                                  text(res, i, R_EXP_NAME, false), "artifact_location",
                                  text(res, i, R_ARTIFACT, false)));
    json_object_set_new(o, "training_status", text(res, i, R_TRAINING, false));
    json_object_set_new(o, "training_started_at", ms(res, i, R_STARTED));
    if (!PQgetisnull(res, i, R_ENDED))
        json_object_set_new(o, "training_ended_at", ms(res, i, R_ENDED));
    json_object_set_new(o, "source_version", text(res, i, R_SRCVER, true));
    return o;
}

bool mlflow_store_freshness(const PGresult *res, int *timeout_s, bool *fresh)
{
    *timeout_s = 0;
    *fresh = false;
    if (!res || PQntuples(res) == 0)
        return false;
    *timeout_s = (int)strtol(PQgetvalue(res, 0, F_TIMEOUT), NULL, 10);
    *fresh = strcmp(PQgetvalue(res, 0, F_FRESH), "t") == 0;
    return true;
}

static json_t *count(const PGresult *res, int i, int col)
{
    return json_integer(strtol(PQgetvalue(res, i, col), NULL, 10));
}

json_t *mlflow_store_history_json(const PGresult *pr)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(pr); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(pr, i, H_ID), NULL, 10)));
        json_object_set_new(o, "trigger", text(pr, i, H_TRIGGER, false));
        json_object_set_new(o, "status", text(pr, i, H_STATUS, false));
        json_object_set_new(o, "startedAt", text(pr, i, H_STARTED, false));
        json_object_set_new(o, "finishedAt", text(pr, i, H_FINISHED, false));
        json_object_set_new(o, "message", text(pr, i, H_MESSAGE, false));
        json_object_set_new(o, "counts",
                            json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "fetched", count(pr, i, H_FETCHED), "new",
                                      count(pr, i, H_NEW), "updated", count(pr, i, H_UPDATED), "unchanged",
                                      count(pr, i, H_UNCHANGED), "stale", count(pr, i, H_STALE), "skipped",
                                      count(pr, i, H_SKIPPED), "failures", count(pr, i, H_FAILURES)));
        json_array_append_new(arr, o);
    }
    return arr;
}

bool mlflow_store_acquired(const PGresult *res, char *sync_id, size_t id_len, char *started_at, size_t at_len)
{
    if (!res || PQntuples(res) == 0)
        return false;
    snprintf(sync_id, id_len, "%s", PQgetvalue(res, 0, A_ID));
    snprintf(started_at, at_len, "%s", PQgetvalue(res, 0, A_STARTED));
    return true;
}

void mlflow_store_upserted(const PGresult *res, int i, struct mlflow_store_change *c)
{
    c->name = PQgetvalue(res, i, U_NAME);
    c->version = PQgetvalue(res, i, U_VERSION);
    c->change = PQgetvalue(res, i, U_CHANGE);
    for (int f = 0; f < MLFLOW_CHANGED_FIELDS; f++)
        c->changed[f] = PQgetvalue(res, i, U_CHANGED + f)[0] == 't';
    c->stage = val(res, i, U_STAGE);
    c->status = val(res, i, U_STATUS);
    c->record_kind = val(res, i, U_KIND);
}

void mlflow_store_staled(const PGresult *res, int i, struct mlflow_store_change *c)
{
    memset(c, 0, sizeof *c);
    c->name = PQgetvalue(res, i, S_NAME);
    c->version = PQgetvalue(res, i, S_VERSION);
    c->change = "stale";
    c->stage = val(res, i, S_STAGE);
    c->status = val(res, i, S_STATUS);
    c->record_kind = val(res, i, S_KIND);
}

void mlflow_store_tenant(const PGresult *res, int i, const char **schema, long long *org)
{
    *schema = PQgetvalue(res, i, T_SCHEMA);
    *org = strtoll(PQgetvalue(res, i, T_ORG), NULL, 10);
}
