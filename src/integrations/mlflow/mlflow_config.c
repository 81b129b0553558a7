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
#include "integrations/mlflow_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "http/reply.h"
#include "integrations/mlflow_client.h"
#include "integrations/mlflow_store.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"

#define TEST_MESSAGE_MAX 1000

#define STR_(x) #x
#define STR(x) STR_(x)

/* The one table: every domain error of the configuration routes, its status and message. */
static const struct {
    int status;
    const char *message;
} errors[MLFLOW_CONFIG_ERROR_COUNT] = {
    [MLFLOW_CONFIG_OK] = {200, ""},
    [MLFLOW_CONFIG_URL_REQUIRED] = {400, "MLFlow tracking server URL is required"},
    [MLFLOW_CONFIG_URL_TYPE] = {400, "trackingServerUrl must be a string"},
    [MLFLOW_CONFIG_URL_INVALID] = {400, "MLFlow tracking server URL must be an http(s) URL with a host"},
    [MLFLOW_CONFIG_AUTH_METHOD] = {400, "authMethod must be one of: none, basic, token"},
    [MLFLOW_CONFIG_TIMEOUT] = {400, "timeout must be a whole number of seconds between 1 and 300"},
    [MLFLOW_CONFIG_VERIFY_SSL] = {400, "verifySsl must be a boolean"},
    [MLFLOW_CONFIG_USERNAME_TYPE] = {400, "username must be a string"},
    [MLFLOW_CONFIG_USERNAME_LONG] = {400, "Username must be at most " STR(MLFLOW_CRED_MAX) " bytes"},
    [MLFLOW_CONFIG_USERNAME_CHARS] = {400, "Username contains invalid characters"},
    [MLFLOW_CONFIG_PASSWORD_TYPE] = {400, "password must be a string"},
    [MLFLOW_CONFIG_PASSWORD_LONG] = {400, "Password must be at most " STR(MLFLOW_CRED_MAX) " bytes"},
    [MLFLOW_CONFIG_PASSWORD_CHARS] = {400, "Password contains invalid characters"},
    [MLFLOW_CONFIG_TOKEN_TYPE] = {400, "apiToken must be a string"},
    [MLFLOW_CONFIG_TOKEN_LONG] = {400, "API token must be at most " STR(MLFLOW_CRED_MAX) " bytes"},
    [MLFLOW_CONFIG_TOKEN_CHARS] = {400, "API token contains invalid characters"},
    [MLFLOW_CONFIG_BASIC_REQUIRED] = {400, "Username and password are required for basic authentication"},
    [MLFLOW_CONFIG_TOKEN_REQUIRED] = {400, "API token is required when using token authentication"},
    [MLFLOW_CONFIG_INSECURE_CREDS] = {400, "Stored credentials are only sent with certificate verification: send the "
                                           "credentials with verifySsl false"},
    [MLFLOW_CONFIG_TEST_FAILED] = {500, "Internal server error during connection test"},
    [MLFLOW_CONFIG_LOAD_FAILED] = {500, "Failed to load MLFlow configuration"},
    [MLFLOW_CONFIG_SAVE_FAILED] = {500, "Failed to save MLFlow configuration"},
    [MLFLOW_CONFIG_STATUS_FAILED] = {500, "Failed to load MLFlow sync status"},
};

int mlflow_config_error_status(enum mlflow_config_error e)
{
    return (unsigned)e < MLFLOW_CONFIG_ERROR_COUNT ? errors[e].status : 500;
}

const char *mlflow_config_error_message(enum mlflow_config_error e)
{
    return (unsigned)e < MLFLOW_CONFIG_ERROR_COUNT ? errors[e].message : "Internal server error";
}

#define MSG_URL_REQUIRED mlflow_config_error_message(MLFLOW_CONFIG_URL_REQUIRED)
#define MSG_BASIC_REQUIRED mlflow_config_error_message(MLFLOW_CONFIG_BASIC_REQUIRED)
#define MSG_TOKEN_REQUIRED mlflow_config_error_message(MLFLOW_CONFIG_TOKEN_REQUIRED)
#define MSG_INSECURE_CREDS mlflow_config_error_message(MLFLOW_CONFIG_INSECURE_CREDS)
#define MSG_TEST_500 mlflow_config_error_message(MLFLOW_CONFIG_TEST_FAILED)
#define MSG_LOAD_500 mlflow_config_error_message(MLFLOW_CONFIG_LOAD_FAILED)
#define MSG_SAVE_500 mlflow_config_error_message(MLFLOW_CONFIG_SAVE_FAILED)
#define MSG_STATUS_500 mlflow_config_error_message(MLFLOW_CONFIG_STATUS_FAILED)

static void fail(struct http_req *r, int status, const char *error)
{
    reply_json(r, status, json_pack("{s:b,s:s}", "success", 0, "error", error));
}

static void fail_with(struct http_req *r, enum mlflow_config_error e)
{
    fail(r, mlflow_config_error_status(e), mlflow_config_error_message(e));
}

/* A statement of the store for the caller's tenant; replies err (500) when it cannot. */
static int sql(struct http_req *r, char *buf, size_t len, enum mlflow_sql which, enum mlflow_config_error err)
{
    if (mlflow_store_sql(buf, len, which, r->auth.tenant) < 0) {
        fail_with(r, err);
        return -1;
    }
    return 0;
}

/* ---- the request body (reference 1.1 table): pure ------------------------------------ */

/* errs: the type, length and characters errors of this credential */
static enum mlflow_config_error body_cred(const json_t *j, const char *key, const enum mlflow_config_error errs[3],
                                          struct mlflow_config_cred *c)
{
    const char *s;
    size_t n;
    c->s = NULL;
    c->len = 0;
    int g = json_get_string(j, key, &s, &n);
    if (g < 0)
        return errs[0];
    if (g == 0)
        return MLFLOW_CONFIG_OK;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return MLFLOW_CONFIG_OK;
    if (n > MLFLOW_CRED_MAX)
        return errs[1];
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return errs[2];
    c->s = s;
    c->len = n;
    return MLFLOW_CONFIG_OK;
}

enum mlflow_config_error mlflow_config_check_body(const json_t *j, struct mlflow_config_input *b)
{
    memset(b, 0, sizeof *b);
    const char *s;
    size_t n;
    int g = json_get_string(j, "trackingServerUrl", &s, &n);
    if (g < 0)
        return MLFLOW_CONFIG_URL_TYPE;
    if (g == 1) {
        if (memchr(s, '\0', n))
            return MLFLOW_CONFIG_URL_INVALID;
        b->url = s;
        b->url_len = n;
    }
    g = json_get_string(j, "authMethod", &s, &n);
    if (g < 0 || (g == 1 && (strlen(s) != n || mlflow_auth_parse(s, &b->auth) < 0)))
        return MLFLOW_CONFIG_AUTH_METHOD;
    b->has_auth = g == 1;
    const json_t *t = json_object_get(j, "timeout");
    if (t && !json_is_null(t)) {
        double d = json_is_integer(t) ? (double)json_integer_value(t) : json_is_real(t) ? json_real_value(t) : -1;
        if (!json_is_number(t) || d < MLFLOW_TIMEOUT_MIN || d > MLFLOW_TIMEOUT_MAX || d != (double)(long long)d)
            return MLFLOW_CONFIG_TIMEOUT;
        b->has_timeout = true;
        b->timeout = (int)d;
    }
    const json_t *v = json_object_get(j, "verifySsl");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return MLFLOW_CONFIG_VERIFY_SSL;
        b->has_verify = true;
        b->verify = json_is_true(v);
    }
    static const enum mlflow_config_error user[3] = {MLFLOW_CONFIG_USERNAME_TYPE, MLFLOW_CONFIG_USERNAME_LONG,
                                                     MLFLOW_CONFIG_USERNAME_CHARS};
    static const enum mlflow_config_error pass[3] = {MLFLOW_CONFIG_PASSWORD_TYPE, MLFLOW_CONFIG_PASSWORD_LONG,
                                                     MLFLOW_CONFIG_PASSWORD_CHARS};
    static const enum mlflow_config_error token[3] = {MLFLOW_CONFIG_TOKEN_TYPE, MLFLOW_CONFIG_TOKEN_LONG,
                                                      MLFLOW_CONFIG_TOKEN_CHARS};
    enum mlflow_config_error e;
    if ((e = body_cred(j, "username", user, &b->user)) || (e = body_cred(j, "password", pass, &b->pass)) ||
        (e = body_cred(j, "apiToken", token, &b->token)))
        return e;
    return MLFLOW_CONFIG_OK;
}

enum mlflow_config_error mlflow_config_check_configure(const json_t *j, struct mlflow_config_input *b)
{
    memset(b, 0, sizeof *b);
    const json_t *u = json_object_get(j, "trackingServerUrl");
    if (!u || !json_is_string(u) || json_string_length(u) == 0) /* "falsy", checked first (reference 1.1) */
        return u && !json_is_string(u) && !json_is_null(u) && !json_is_false(u) ? MLFLOW_CONFIG_URL_TYPE
                                                                                : MLFLOW_CONFIG_URL_REQUIRED;
    return mlflow_config_check_body(j, b);
}

static char *dup_cred(const struct mlflow_config_cred *c)
{
    return c->s ? strndup(c->s, c->len) : NULL;
}

/* Body over the stored row (reference 5.2), with the fix: stored credentials are used
 * only when the URL is the stored one. strict: a stored secret that cannot be
 * decrypted is an error (test) instead of being treated as absent (configure).
 * Returns NULL, or a 400 message; *internal set for a 500. */
static const char *merge(struct http_req *r, const struct mlflow_config_input *b, const PGresult *stored, bool strict,
                         struct mlflow_conn *c, bool *internal)
{
    memset(c, 0, sizeof *c);
    *internal = false;
    struct mlflow_config_row row;
    bool have_row = mlflow_store_config_row(stored, &row);
    const char *err;
    if (b->url && b->url_len) {
        if ((err = mlflow_url_normalize(b->url, b->url_len, c->url)))
            return err;
    } else if (have_row) {
        if ((err = mlflow_url_normalize(row.url, strlen(row.url), c->url)))
            return err;
    } else {
        return MSG_URL_REQUIRED;
    }
    c->auth = MLFLOW_AUTH_NONE;
    if (b->has_auth)
        c->auth = b->auth;
    else if (have_row && mlflow_auth_parse(row.auth, &c->auth) < 0)
        c->auth = MLFLOW_AUTH_NONE;
    c->timeout_s = b->has_timeout ? b->timeout : have_row ? row.timeout_s : MLFLOW_TIMEOUT_DEFAULT;
    if (c->timeout_s < MLFLOW_TIMEOUT_MIN || c->timeout_s > MLFLOW_TIMEOUT_MAX)
        c->timeout_s = MLFLOW_TIMEOUT_DEFAULT;
    c->verify_ssl = b->has_verify ? b->verify : have_row ? row.verify_ssl : true;

    bool same_url = false, stored_verify = true;
    if (have_row) {
        char su[MLFLOW_URL_MAX + 1];
        same_url = mlflow_url_normalize(row.url, strlen(row.url), su) == NULL && strcmp(su, c->url) == 0;
        stored_verify = row.verify_ssl;
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
            enum mlflow_cred_col col;
        } slots[] = {{&c->username, MLFLOW_CRED_USER}, {&c->password, MLFLOW_CRED_PASS},
                     {&c->api_token, MLFLOW_CRED_TOKEN}};
        bool needed[3] = {c->auth == MLFLOW_AUTH_BASIC, c->auth == MLFLOW_AUTH_BASIC, c->auth == MLFLOW_AUTH_TOKEN};
        for (int i = 0; i < 3; i++) {
            if (*slots[i].dst || !needed[i])
                continue;
            if (mlflow_store_config_cred(&r->app->secrets, stored, slots[i].col, slots[i].dst) < 0) {
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
    char q[MLFLOW_SQL_MAX];
    if (mlflow_store_sql(q, sizeof q, MLFLOW_SQL_CONFIG_SELECT, r->auth.tenant) < 0) {
        fail(r, 500, err500);
        return;
    }
    app_query(r, q, 0, NULL, done);
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
    char sql1[MLFLOW_SQL_MAX], sql2[MLFLOW_SQL_MAX];
    if (sql(r, sql1, sizeof sql1, MLFLOW_SQL_TEST_RECORD_ROW, MLFLOW_CONFIG_TEST_FAILED) < 0 ||
        sql(r, sql2, sizeof sql2, MLFLOW_SQL_TEST_RECORD_LAST, MLFLOW_CONFIG_TEST_FAILED) < 0)
        return;
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
    struct mlflow_config_input b;
    enum mlflow_config_error e = mlflow_config_check_body(r->json, &b); /* validated before the query */
    if (e) {
        fail_with(r, e);
        return;
    }
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
    struct mlflow_config_row row;
    if (mlflow_store_config_row(pr, &row))
        snprintf(ts->row_id, sizeof ts->row_id, "%s", row.id);
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
    struct mlflow_config_input b;
    enum mlflow_config_error e = mlflow_config_check_body(r->json, &b);
    if (e) {
        fail_with(r, e);
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
    struct mlflow_config_input b;
    enum mlflow_config_error ce = mlflow_config_check_configure(r->json, &b); /* validated before the query */
    if (ce) {
        fail_with(r, ce);
        return;
    }
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
    struct mlflow_config_row cr;
    struct mlflow_last_test lt;
    bool keep = mlflow_store_config_row(row, &cr) && cr.fingerprint && strcmp(cr.fingerprint, fp) == 0;
    bool from_last = !keep && mlflow_store_last_test(last, &lt) && strcmp(lt.fingerprint, fp) == 0;
    const char *t_status = from_last ? lt.status : NULL;
    const char *t_msg = from_last ? lt.message : NULL;
    const char *t_at = from_last ? lt.tested_at : NULL;

    char sql_lock[MLFLOW_SQL_MAX], q[MLFLOW_SQL_MAX], lock[64], user[24], timeout[16];
    if (sql(r, sql_lock, sizeof sql_lock, MLFLOW_SQL_CONFIGURE_LOCK, MLFLOW_CONFIG_SAVE_FAILED) < 0 ||
        sql(r, q, sizeof q, MLFLOW_SQL_CONFIGURE, MLFLOW_CONFIG_SAVE_FAILED) < 0)
        goto out;
    snprintf(lock, sizeof lock, "integrationsd:mlflow:%s", r->auth.tenant);
    snprintf(user, sizeof user, "%lld", r->auth.user_id);
    snprintf(timeout, sizeof timeout, "%d", c.timeout_s);
    const char *params[] = {c.url,       mlflow_auth_name(c.auth), e[0].hex,
                            e[0].hex ? e[0].iv : NULL, e[1].hex, e[1].hex ? e[1].iv : NULL,
                            e[2].hex,    e[2].hex ? e[2].iv : NULL, c.verify_ssl ? "true" : "false",
                            timeout,     user,                     keep ? "true" : "false",
                            fp,          t_at,                     t_status,
                            t_msg};
    const char *lock_params[] = {lock};
    const struct db_stmt stmts[] = {
        {sql_lock, 1, lock_params},
        {q, 16, params},
    };
    app_submit(r, stmts, 2, on_configured);
out:
    for (int i = 0; i < 3; i++)
        free(e[i].hex);
    mlflow_conn_clear(&c);
}

void mlflow_configure(struct http_req *r)
{
    struct mlflow_config_input b;
    enum mlflow_config_error e = mlflow_config_check_configure(r->json, &b);
    if (e) {
        fail_with(r, e);
        return;
    }
    char sql1[MLFLOW_SQL_MAX], sql2[MLFLOW_SQL_MAX];
    if (sql(r, sql1, sizeof sql1, MLFLOW_SQL_CONFIG_SELECT, MLFLOW_CONFIG_SAVE_FAILED) < 0 ||
        sql(r, sql2, sizeof sql2, MLFLOW_SQL_TEST_LAST, MLFLOW_CONFIG_SAVE_FAILED) < 0)
        return;
    const struct db_stmt stmts[] = {{sql1, 0, NULL}, {sql2, 0, NULL}};
    app_submit(r, stmts, 2, on_configure_loaded);
}
