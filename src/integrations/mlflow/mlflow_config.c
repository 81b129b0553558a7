/* integrations/mlflow_config: owns the MLflow configuration routes:
 *   test:      validate -> stored row -> merge (stored credentials only for the stored
 *              URL, and not with verifySsl false when they were saved with true) -> POST experiments/search -> record (row by id when the tested
 *              configuration is the stored one; always the tenant's last test) -> reply
 *   configure: validate -> stored row + last test -> merge -> encrypt (scheme A) ->
 *              update by id or insert (one row per tenant) -> summary
 *   config, sync-status, health.
 * Test status survives a save of exactly what was tested (URL, method, credentials,
 * verifySsl: an HMAC fingerprint), and is reset by a save of anything else. */
#include "integrations/mlflow.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "db/schema.h"
#include "http/reply.h"
#include "integrations/mlflow_client.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"

#define TEST_MESSAGE_MAX 1000

static const char MSG_URL_REQUIRED[] = "MLFlow tracking server URL is required";
static const char MSG_BASIC_REQUIRED[] = "Username and password are required for basic authentication";
static const char MSG_TOKEN_REQUIRED[] = "API token is required when using token authentication";
static const char MSG_INSECURE_CREDS[] =
    "Stored credentials are only sent with certificate verification: send the credentials with verifySsl false";
static const char MSG_TEST_500[] = "Internal server error during connection test";
static const char MSG_LOAD_500[] = "Failed to load MLFlow configuration";
static const char MSG_SAVE_500[] = "Failed to save MLFlow configuration";
static const char MSG_STATUS_500[] = "Failed to load MLFlow sync status";

static void fail(struct http_req *r, int status, const char *error)
{
    reply_json(r, status, json_pack("{s:b,s:s}", "success", 0, "error", error));
}

static int table(struct http_req *r, const char *name, char *buf, size_t len, const char *err500)
{
    if (db_table(buf, len, r->auth.tenant, name) < 0) {
        fail(r, 500, err500);
        return -1;
    }
    return 0;
}

/* ---- the request body (reference 1.1 table) ------------------------------------ */

struct cred {
    const char *s;     /* trimmed, NULL when absent or empty */
    size_t len;
};

struct mlflow_body {
    const char *url;
    size_t url_len;
    bool has_auth, has_timeout, has_verify;
    enum mlflow_auth auth;
    int timeout;
    bool verify;
    struct cred user, pass, token;
};

static const char *body_cred(const json_t *j, const char *key, const char *label, struct cred *c)
{
    static char msg[96];
    const char *s;
    size_t n;
    c->s = NULL;
    c->len = 0;
    int g = json_get_string(j, key, &s, &n);
    if (g < 0) {
        snprintf(msg, sizeof msg, "%s must be a string", key);
        return msg;
    }
    if (g == 0)
        return NULL;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return NULL;
    if (n > MLFLOW_CRED_MAX) {
        snprintf(msg, sizeof msg, "%s must be at most %d bytes", label, MLFLOW_CRED_MAX);
        return msg;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            snprintf(msg, sizeof msg, "%s contains invalid characters", label);
            return msg;
        }
    c->s = s;
    c->len = n;
    return NULL;
}

/* Types, enums, ranges and lengths; NULL when fine, else the 400 message. */
static const char *parse_body(const json_t *j, struct mlflow_body *b)
{
    memset(b, 0, sizeof *b);
    const char *s;
    size_t n;
    int g = json_get_string(j, "trackingServerUrl", &s, &n);
    if (g < 0)
        return "trackingServerUrl must be a string";
    if (g == 1) {
        if (memchr(s, '\0', n))
            return "MLFlow tracking server URL must be an http(s) URL with a host";
        b->url = s;
        b->url_len = n;
    }
    g = json_get_string(j, "authMethod", &s, &n);
    if (g < 0 || (g == 1 && (strlen(s) != n || mlflow_auth_parse(s, &b->auth) < 0)))
        return "authMethod must be one of: none, basic, token";
    b->has_auth = g == 1;
    const json_t *t = json_object_get(j, "timeout");
    if (t && !json_is_null(t)) {
        double d = json_is_integer(t) ? (double)json_integer_value(t) : json_is_real(t) ? json_real_value(t) : -1;
        if (!json_is_number(t) || d < MLFLOW_TIMEOUT_MIN || d > MLFLOW_TIMEOUT_MAX || d != (double)(long long)d)
            return "timeout must be a whole number of seconds between 1 and 300";
        b->has_timeout = true;
        b->timeout = (int)d;
    }
    const json_t *v = json_object_get(j, "verifySsl");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return "verifySsl must be a boolean";
        b->has_verify = true;
        b->verify = json_is_true(v);
    }
    const char *e;
    if ((e = body_cred(j, "username", "Username", &b->user)) || (e = body_cred(j, "password", "Password", &b->pass)) ||
        (e = body_cred(j, "apiToken", "API token", &b->token)))
        return e;
    return NULL;
}

static char *dup_cred(const struct cred *c)
{
    return c->s ? strndup(c->s, c->len) : NULL;
}

/* Decrypt one stored credential when present; -1 on a decrypt failure. */
static int stored_cred(const struct app *a, const PGresult *res, int col, int iv, char **out)
{
    *out = NULL;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, col) || PQgetisnull(res, 0, iv))
        return 0;
    size_t len;
    if (secrets_a_decrypt(&a->secrets, PQgetvalue(res, 0, col), PQgetvalue(res, 0, iv), out, &len) < 0)
        return -1;
    if (memchr(*out, '\0', len)) {
        secrets_free_plain(*out, len);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* Body over the stored row (reference 5.2), with the fix: stored credentials are used
 * only when the URL is the stored one. strict: a stored secret that cannot be
 * decrypted is an error (test) instead of being treated as absent (configure).
 * Returns NULL, or a 400 message; *internal set for a 500. */
static const char *merge(struct http_req *r, const struct mlflow_body *b, const PGresult *stored, bool strict,
                         struct mlflow_conn *c, bool *internal)
{
    memset(c, 0, sizeof *c);
    *internal = false;
    bool have_row = stored && PQntuples(stored) > 0;
    const char *err;
    if (b->url && b->url_len) {
        if ((err = mlflow_url_normalize(b->url, b->url_len, c->url)))
            return err;
    } else if (have_row) {
        const char *su = PQgetvalue(stored, 0, MC_URL);
        if ((err = mlflow_url_normalize(su, strlen(su), c->url)))
            return err;
    } else {
        return MSG_URL_REQUIRED;
    }
    c->auth = MLFLOW_AUTH_NONE;
    if (b->has_auth)
        c->auth = b->auth;
    else if (have_row && mlflow_auth_parse(PQgetvalue(stored, 0, MC_AUTH), &c->auth) < 0)
        c->auth = MLFLOW_AUTH_NONE;
    c->timeout_s = b->has_timeout ? b->timeout
                   : have_row     ? (int)strtol(PQgetvalue(stored, 0, MC_TIMEOUT), NULL, 10)
                                  : MLFLOW_TIMEOUT_DEFAULT;
    if (c->timeout_s < MLFLOW_TIMEOUT_MIN || c->timeout_s > MLFLOW_TIMEOUT_MAX)
        c->timeout_s = MLFLOW_TIMEOUT_DEFAULT;
    c->verify_ssl = b->has_verify ? b->verify : have_row ? PQgetvalue(stored, 0, MC_VERIFY)[0] == 't' : true;

    bool same_url = false, stored_verify = true;
    if (have_row) {
        char su[MLFLOW_URL_MAX + 1];
        const char *raw = PQgetvalue(stored, 0, MC_URL);
        same_url = mlflow_url_normalize(raw, strlen(raw), su) == NULL && strcmp(su, c->url) == 0;
        stored_verify = PQgetvalue(stored, 0, MC_VERIFY)[0] == 't';
    }
    /* stored credentials go only where, and only as safely as, they were saved for:
     * the stored URL, with the certificate checked unless it was saved unchecked */
    bool weaker_tls = !c->verify_ssl && stored_verify;
    c->username = dup_cred(&b->user);
    c->password = dup_cred(&b->pass);
    c->api_token = dup_cred(&b->token);
    if ((b->user.s && !c->username) || (b->pass.s && !c->password) || (b->token.s && !c->api_token)) {
        *internal = true;
        return MSG_SAVE_500;
    }
    if (same_url && weaker_tls) {
        bool missing = (c->auth == MLFLOW_AUTH_BASIC && (!c->username || !c->password)) ||
                       (c->auth == MLFLOW_AUTH_TOKEN && !c->api_token);
        if (missing)
            return MSG_INSECURE_CREDS;
    } else if (same_url) {
        struct {
            char **dst;
            int col, iv;
        } slots[] = {{&c->username, MC_USER, MC_USER_IV}, {&c->password, MC_PASS, MC_PASS_IV},
                     {&c->api_token, MC_TOKEN, MC_TOKEN_IV}};
        bool needed[3] = {c->auth == MLFLOW_AUTH_BASIC, c->auth == MLFLOW_AUTH_BASIC, c->auth == MLFLOW_AUTH_TOKEN};
        for (int i = 0; i < 3; i++) {
            if (*slots[i].dst || !needed[i])
                continue;
            if (stored_cred(r->app, stored, slots[i].col, slots[i].iv, slots[i].dst) < 0) {
                log_warn("mlflow: a stored credential of tenant %s cannot be decrypted with ENCRYPTION_PASSWORD",
                         r->auth.tenant);
                if (strict) {
                    *internal = true;
                    return MSG_TEST_500;
                }
            }
        }
    }
    if (c->auth == MLFLOW_AUTH_BASIC && (!c->username || !c->password))
        return MSG_BASIC_REQUIRED;
    if (c->auth == MLFLOW_AUTH_TOKEN && !c->api_token)
        return MSG_TOKEN_REQUIRED;
    /* credentials that do not belong to the method are dropped */
    char *drop[3] = {NULL, NULL, NULL};
    if (c->auth != MLFLOW_AUTH_BASIC) {
        drop[0] = c->username;
        drop[1] = c->password;
        c->username = c->password = NULL;
    }
    if (c->auth != MLFLOW_AUTH_TOKEN) {
        drop[2] = c->api_token;
        c->api_token = NULL;
    }
    for (int i = 0; i < 3; i++)
        if (drop[i])
            secrets_free_plain(drop[i], strlen(drop[i]));
    return NULL;
}

/* ---- GET /config, GET /sync-status, GET /health --------------------------------- */

static void on_config(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading the configuration failed: %s (%s)", res->message, res->sqlstate);
        fail(r, 500, MSG_LOAD_500);
        return;
    }
    reply_json(r, 200, mlflow_config_summary(db_last(res)));
}

static void select_config(struct http_req *r, app_query_done done, const char *err500)
{
    char sql[1024];
    if (mlflow_config_select_sql(sql, sizeof sql, r->auth.tenant) < 0) {
        fail(r, 500, err500);
        return;
    }
    app_query(r, sql, 0, NULL, done);
}

void mlflow_config_get(struct http_req *r)
{
    select_config(r, on_config, MSG_LOAD_500);
}

static void on_sync_status(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading the sync status failed: %s (%s)", res->message, res->sqlstate);
        fail(r, 500, MSG_STATUS_500);
        return;
    }
    const PGresult *pr = db_last(res);
    json_t *d;
    if (PQntuples(pr) == 0) {
        d = json_pack("{s:b,s:n,s:n,s:n,s:n,s:n,s:n}", "configured", 0, "lastSyncedAt", "lastSyncStatus",
                      "lastSyncMessage", "lastTestedAt", "lastTestStatus", "lastTestMessage");
    } else {
        json_t *sum = mlflow_config_summary(pr), *c = json_object_get(sum, "config");
        d = json_object();
        json_object_set_new(d, "configured", json_true());
        static const char *const keys[] = {"lastSyncedAt", "lastSyncStatus", "lastSyncMessage", "lastTestedAt",
                                           "lastTestStatus", "lastTestMessage", "lastSuccessfulTestAt",
                                           "lastFailedTestAt", "lastFailedTestMessage", "updatedAt"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            json_object_set(d, keys[i], json_object_get(c, keys[i]));
        json_decref(sum);
    }
    reply_json(r, 200, json_pack("{s:b,s:o}", "success", 1, "data", d));
}

void mlflow_sync_status(struct http_req *r)
{
    select_config(r, on_sync_status, MSG_STATUS_500);
}

void mlflow_health(struct http_req *r)
{
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    reply_json(r, 200,
               json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "status", "healthy", "service", "mlflow-integration",
                         "timestamp", ts, "endpoints", "test", "/api/integrations/mlflow/test", "configure",
                         "/api/integrations/mlflow/configure", "models", "/api/integrations/mlflow/models"));
}

/* ---- POST /test ------------------------------------------------------------------ */

struct test_state {
    struct mlflow_conn conn;
    char row_id[24];            /* "" when nothing is stored */
    bool same_as_stored;        /* the tested configuration is the stored one */
    char fingerprint[65];
    bool ok;
    char message[TEST_MESSAGE_MAX + 1];
};

static void test_state_free(void *p)
{
    struct test_state *ts = p;
    mlflow_conn_clear(&ts->conn);
    free(ts);
}

static void on_test_recorded(struct http_req *r, const struct db_result *res)
{
    struct test_state *ts = r->handler_state;
    if (res->status != DB_OK)
        log_error("mlflow: recording the test result failed: %s (%s)", res->message, res->sqlstate);
    app_event(r->app, "mlflow.test.completed", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:b,s:s,s:s,s:b}", "success", ts->ok, "message",
                        ts->ok ? "Successfully connected to MLFlow server!" : ts->message, "authMethod",
                        mlflow_auth_name(ts->conn.auth), "storedConfiguration", ts->same_as_stored));
    if (!ts->ok) {
        reply_json(r, 400, json_pack("{s:b,s:s}", "success", 0, "message", ts->message));
        return;
    }
    reply_json(r, 200,
               json_pack("{s:b,s:s,s:{s:s,s:s,s:b,s:s}}", "success", 1, "message",
                         "Successfully connected to MLFlow server!", "serverInfo", "trackingServerUrl",
                         ts->conn.url, "authMethod", mlflow_auth_name(ts->conn.auth), "connected", 1,
                         "responseTime", "1.2s"));
}

static void on_test_call(struct http_req *r, const struct fetch_response *res)
{
    struct test_state *ts = r->handler_state;
    ts->ok = res->outcome == FETCH_OK && res->status == 200;
    if (!ts->ok) {
        mlflow_failure_message(res, ts->message, sizeof ts->message);
        log_fields(LOG_INFO, "mlflow connection test failed",
                   json_pack("{s:s,s:s,s:I}", "request_id", r->id, "outcome", fetch_outcome_name(res->outcome),
                             "status", (json_int_t)res->status));
    }
    char c[64], f[64], p[64], sql1[1536], sql2[512];
    if (table(r, "mlflow_integrations", c, sizeof c, MSG_TEST_500) < 0 ||
        table(r, "integrationsd_mlflow_integrations", f, sizeof f, MSG_TEST_500) < 0 ||
        table(r, "mlflow_test_results", p, sizeof p, MSG_TEST_500) < 0)
        return;
    /* the row (by id) only when it holds what was tested; the tenant's last test always */
    snprintf(sql1, sizeof sql1,
             "WITH u AS (UPDATE %s SET last_tested_at = now() AT TIME ZONE 'UTC', last_test_status = $2::text,"
             " last_test_message = $3::text,"
             " last_successful_test_at = CASE WHEN $2::text = 'success' THEN now() AT TIME ZONE 'UTC'"
             " ELSE last_successful_test_at END,"
             " last_failed_test_at = CASE WHEN $2::text = 'error' THEN now() AT TIME ZONE 'UTC' ELSE last_failed_test_at END,"
             " last_failed_test_message = CASE WHEN $2::text = 'error' THEN $3::text ELSE last_failed_test_message END,"
             " updated_at = now() AT TIME ZONE 'UTC'"
             " WHERE id = $1::int AND $5::boolean RETURNING id)"
             " INSERT INTO %s (integration_id, last_tested_fingerprint) SELECT id, $4::text FROM u"
             " ON CONFLICT (integration_id) DO UPDATE SET last_tested_fingerprint = EXCLUDED.last_tested_fingerprint",
             c, f);
    snprintf(sql2, sizeof sql2,
             "INSERT INTO %s (id, fingerprint, status, message, tested_at)"
             " VALUES (1, $1, $2::text, $3::text, now() AT TIME ZONE 'UTC') ON CONFLICT (id) DO UPDATE SET"
             " fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, message = EXCLUDED.message,"
             " tested_at = EXCLUDED.tested_at",
             p);
    const char *status = ts->ok ? "success" : "error", *msg = ts->ok ? NULL : ts->message;
    const char *p1[] = {ts->row_id[0] ? ts->row_id : "0", status, msg, ts->fingerprint,
                        ts->same_as_stored ? "true" : "false"};
    const char *p2[] = {ts->fingerprint, status, msg};
    const struct db_stmt stmts[] = {{sql1, 5, p1}, {sql2, 3, p2}};
    app_submit(r, stmts, 2, on_test_recorded);
}

/* Is the stored row exactly the configuration being tested? */
static bool stored_matches(struct http_req *r, const PGresult *pr, const char *fp)
{
    if (PQntuples(pr) == 0)
        return false;
    struct mlflow_conn sc;
    if (mlflow_conn_from_row(&r->app->secrets, pr, &sc) < 0)
        return false;
    char sfp[65];
    bool same = mlflow_conn_fingerprint(&r->app->secrets, &sc, sfp) == 0 && strcmp(sfp, fp) == 0;
    mlflow_conn_clear(&sc);
    return same;
}

static void on_test_stored(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading the configuration failed: %s (%s)", res->message, res->sqlstate);
        fail(r, 500, MSG_TEST_500);
        return;
    }
    const PGresult *pr = db_last(res);
    struct mlflow_body b;
    parse_body(r->json, &b); /* validated before the query */
    struct test_state *ts = calloc(1, sizeof *ts);
    if (!ts) {
        fail(r, 500, MSG_TEST_500);
        return;
    }
    r->handler_state = ts;
    r->handler_state_free = test_state_free;
    bool internal;
    const char *err = merge(r, &b, pr, true, &ts->conn, &internal);
    if (err) {
        fail(r, internal ? 500 : 400, internal ? MSG_TEST_500 : err);
        return;
    }
    if (mlflow_conn_fingerprint(&r->app->secrets, &ts->conn, ts->fingerprint) < 0) {
        fail(r, 500, MSG_TEST_500);
        return;
    }
    if (PQntuples(pr) > 0)
        snprintf(ts->row_id, sizeof ts->row_id, "%s", PQgetvalue(pr, 0, MC_ID));
    ts->same_as_stored = stored_matches(r, pr, ts->fingerprint);
    struct mlflow_call call;
    json_t *body = json_pack("{s:i}", "max_results", 1);
    int rc = mlflow_call_build(&call, &ts->conn, "POST", "/api/2.0/mlflow/experiments/search", NULL, body,
                               1024 * 1024);
    json_decref(body);
    if (rc < 0) {
        fail(r, 500, MSG_TEST_500);
        return;
    }
    app_fetch(r, &call.req, on_test_call);
    mlflow_call_clear(&call);
}

void mlflow_test(struct http_req *r)
{
    struct mlflow_body b;
    const char *err = parse_body(r->json, &b);
    if (err) {
        fail(r, 400, err);
        return;
    }
    select_config(r, on_test_stored, MSG_TEST_500);
}

/* ---- POST /configure -------------------------------------------------------------- */

static void on_configured(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: saving the configuration failed: %s (%s)", res->message, res->sqlstate);
        fail(r, 500, MSG_SAVE_500);
        return;
    }
    reply_json(r, 200, json_pack("{s:b,s:s,s:o}", "success", 1, "message", "MLFlow integration configured successfully!",
                                 "config", mlflow_config_summary(db_last(res))));
}

struct enc {
    char *hex;
    char iv[33];
};

static int encrypt_cred(const struct app *a, const char *pt, struct enc *e)
{
    e->hex = NULL;
    e->iv[0] = '\0';
    if (!pt)
        return 0;
    return secrets_a_encrypt(&a->secrets, pt, strlen(pt), &e->hex, e->iv);
}

static void on_configure_loaded(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading the configuration failed: %s (%s)", res->message, res->sqlstate);
        fail(r, 500, MSG_SAVE_500);
        return;
    }
    const PGresult *row = res->res[0], *last = res->res[1];
    struct mlflow_body b;
    parse_body(r->json, &b);
    struct mlflow_conn c;
    bool internal;
    const char *err = merge(r, &b, row, false, &c, &internal);
    if (err) {
        mlflow_conn_clear(&c);
        fail(r, internal ? 500 : 400, internal ? MSG_SAVE_500 : err);
        return;
    }
    char fp[65];
    struct enc e[3] = {{0}};
    if (mlflow_conn_fingerprint(&r->app->secrets, &c, fp) < 0 || encrypt_cred(r->app, c.username, &e[0]) < 0 ||
        encrypt_cred(r->app, c.password, &e[1]) < 0 || encrypt_cred(r->app, c.api_token, &e[2]) < 0) {
        for (int i = 0; i < 3; i++)
            free(e[i].hex);
        mlflow_conn_clear(&c);
        log_error("mlflow: encrypting credentials failed");
        fail(r, 500, MSG_SAVE_500);
        return;
    }
    /* test status: kept when the row was tested with exactly this; taken from the
     * tenant's last test when that was this; otherwise reset (with the sync status) */
    bool keep = PQntuples(row) > 0 && !PQgetisnull(row, 0, MC_FPR) && strcmp(PQgetvalue(row, 0, MC_FPR), fp) == 0;
    bool from_last = !keep && PQntuples(last) > 0 && strcmp(PQgetvalue(last, 0, 0), fp) == 0;
    const char *t_status = from_last ? PQgetvalue(last, 0, 1) : NULL;
    const char *t_msg = from_last && !PQgetisnull(last, 0, 2) ? PQgetvalue(last, 0, 2) : NULL;
    const char *t_at = from_last ? PQgetvalue(last, 0, 3) : NULL;

    char t[64], f[64], sql[4096], lock[64], user[24], timeout[16];
    if (table(r, "mlflow_integrations", t, sizeof t, MSG_SAVE_500) < 0 ||
        table(r, "integrationsd_mlflow_integrations", f, sizeof f, MSG_SAVE_500) < 0)
        goto out;
    snprintf(lock, sizeof lock, "integrationsd:mlflow:%s", r->auth.tenant);
    snprintf(user, sizeof user, "%lld", r->auth.user_id);
    snprintf(timeout, sizeof timeout, "%d", c.timeout_s);
    snprintf(sql, sizeof sql,
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
             " SELECT " MLFLOW_CONFIG_COLS " FROM cfg LEFT JOIN (SELECT * FROM fp UNION ALL"
             " SELECT integration_id, last_tested_fingerprint FROM %s WHERE $12::boolean) f ON integration_id = id",
             t, t, t, f, f);
    const char *params[] = {c.url,       mlflow_auth_name(c.auth), e[0].hex,
                            e[0].hex ? e[0].iv : NULL, e[1].hex, e[1].hex ? e[1].iv : NULL,
                            e[2].hex,    e[2].hex ? e[2].iv : NULL, c.verify_ssl ? "true" : "false",
                            timeout,     user,                     keep ? "true" : "false",
                            fp,          t_at,                     t_status,
                            t_msg};
    const char *lock_params[] = {lock};
    const struct db_stmt stmts[] = {
        {"SELECT pg_advisory_xact_lock(hashtext($1))", 1, lock_params},
        {sql, 16, params},
    };
    app_submit(r, stmts, 2, on_configured);
out:
    for (int i = 0; i < 3; i++)
        free(e[i].hex);
    mlflow_conn_clear(&c);
}

void mlflow_configure(struct http_req *r)
{
    const json_t *u = json_object_get(r->json, "trackingServerUrl");
    if (!u || !json_is_string(u) || json_string_length(u) == 0) { /* "falsy", checked first (reference 1.1) */
        fail(r, 400, u && !json_is_string(u) && !json_is_null(u) && !json_is_false(u)
                         ? "trackingServerUrl must be a string"
                         : MSG_URL_REQUIRED);
        return;
    }
    struct mlflow_body b;
    const char *err = parse_body(r->json, &b);
    if (err) {
        fail(r, 400, err);
        return;
    }
    char p[64], sql[1024], sql2[256];
    if (table(r, "mlflow_test_results", p, sizeof p, MSG_SAVE_500) < 0)
        return;
    if (mlflow_config_select_sql(sql, sizeof sql, r->auth.tenant) < 0) {
        fail(r, 500, MSG_SAVE_500);
        return;
    }
    snprintf(sql2, sizeof sql2,
             "SELECT fingerprint, status, message, to_char(tested_at, 'YYYY-MM-DD HH24:MI:SS.US') FROM %s", p);
    const struct db_stmt stmts[] = {{sql, 0, NULL}, {sql2, 0, NULL}};
    app_submit(r, stmts, 2, on_configure_loaded);
}
