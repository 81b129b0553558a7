/* integrations/github: owns the GitHub token routes:
 *   save:  validate -> encrypt (scheme B) -> upsert under a per-tenant lock -> status
 *   test:  token from the body, or the stored one (read -> decrypt) -> GET <api>/user
 *          -> map the answer (valid, scopes, rate limit) -> last_used_at when stored.
 * The token exists in plaintext only in the request body and short-lived buffers. */
#include "integrations/github.h"

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
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"

#define TOKEN_MAX 255
#define NAME_MAX_CHARS 100
#define GITHUB_TIMEOUT_MS 10000
#define DEFAULT_NAME "GitHub Personal Access Token"

#define STATUS_COLS                                                                                \
    "token_name, "                                                                                 \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "               \
    "to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static int table(struct http_req *r, char *buf, size_t len)
{
    if (db_table(buf, len, r->auth.tenant, "github_tokens") < 0) {
        reply_internal(r);
        return -1;
    }
    return 0;
}

static bool all_alnum(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* Does the token (len bytes, not necessarily NUL-terminated) start with p? */
static bool has_prefix(const char *tok, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(tok, p, n) == 0;
}

const char *github_token_format_error(const char *tok, size_t len)
{
    static const char *const app_prefixes[] = {"gho_", "ghu_", "ghs_", "ghr_"};
    if (len == 0)
        return "Token cannot be empty";
    if (len > TOKEN_MAX)
        return "Token must be at most 255 characters";
    if (has_prefix(tok, len, "ghp_"))
        return len < 40 ? "Classic personal access token appears to be too short" : NULL;
    if (has_prefix(tok, len, "github_pat_"))
        return len < 30 ? "Fine-grained personal access token appears to be too short" : NULL;
    for (size_t i = 0; i < sizeof app_prefixes / sizeof app_prefixes[0]; i++)
        if (has_prefix(tok, len, app_prefixes[i]))
            return len < 40 || !all_alnum(tok, len) ? "GitHub token appears to be too short or malformed"
                                                    : NULL;
    if (len == 40) {
        size_t i = 0;
        while (i < 40 && isxdigit((unsigned char)tok[i]))
            i++;
        if (i == 40)
            return NULL;
    }
    return "Token format not recognized. GitHub tokens typically start with 'ghp_' (classic) or "
           "'github_pat_' (fine-grained)";
}

/* The token of a request body, trimmed; replies and returns -1 when unusable. */
static int body_token(struct http_req *r, const char **tok, size_t *len)
{
    const char *s;
    size_t n;
    if (json_get_string(r->json, "token", &s, &n) != 1 || n == 0) {
        reply_text(r, 400, "Token is required");
        return -1;
    }
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    const char *err = memchr(s, '\0', n) ? "Token format not recognized" : github_token_format_error(s, n);
    if (err) {
        reply_text(r, 400, err);
        return -1;
    }
    *tok = s;
    *len = n;
    return 0;
}

static json_t *status_json(const PGresult *res)
{
    if (PQntuples(res) == 0)
        return json_pack("{s:b}", "configured", 0);
    json_t *o = json_pack("{s:b}", "configured", 1);
    if (!PQgetisnull(res, 0, 0))
        json_object_set_new(o, "token_name", json_string(PQgetvalue(res, 0, 0)));
    if (!PQgetisnull(res, 0, 2))
        json_object_set_new(o, "last_used_at", json_string(PQgetvalue(res, 0, 2)));
    if (!PQgetisnull(res, 0, 1))
        json_object_set_new(o, "created_at", json_string(PQgetvalue(res, 0, 1)));
    return o;
}

static void sql_failure(struct http_req *r, const struct db_result *res, const char *what)
{
    log_error("github: %s failed: %s (%s)", what, res->message, res->sqlstate);
    reply_internal(r);
}

/* ---- GET /token ------------------------------------------------------------ */

static void on_status(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "read");
        return;
    }
    reply_data(r, 200, status_json(db_last(res)));
}

void github_token_get(struct http_req *r)
{
    char t[64], sql[384];
    if (table(r, t, sizeof t) < 0)
        return;
    snprintf(sql, sizeof sql, "SELECT " STATUS_COLS " FROM %s ORDER BY created_at DESC, id DESC LIMIT 1", t);
    app_query(r, sql, 0, NULL, on_status);
}

/* ---- POST /token ----------------------------------------------------------- */

static void on_saved(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "save");
        return;
    }
    const PGresult *pr = db_last(res);
    app_event(r->app, "github.token.saved", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:s?}", "token_name", PQntuples(pr) && !PQgetisnull(pr, 0, 0) ? PQgetvalue(pr, 0, 0) : NULL));
    reply_data(r, 201, status_json(pr));
}

void github_token_save(struct http_req *r)
{
    const char *tok, *name = NULL;
    size_t tlen, nlen = 0;
    if (body_token(r, &tok, &tlen) < 0)
        return;
    int g = json_get_string(r->json, "token_name", &name, &nlen);
    if (g < 0) {
        reply_text(r, 400, "Token name must be a string");
        return;
    }
    if (g == 0 || nlen == 0)
        name = NULL; /* keep the stored name, or the default on first save */
    else if (utf8_length(name, nlen) > NAME_MAX_CHARS || strlen(name) != nlen) {
        reply_text(r, 400, "Token name must be at most 100 characters");
        return;
    }
    struct app *a = r->app;
    char *enc = NULL;
    if (secrets_b_encrypt(&a->secrets, tok, tlen, &enc) < 0) {
        log_error("github: encryption failed");
        reply_internal(r);
        return;
    }
    char t[64], sql[1024], lock[64], user[24];
    if (table(r, t, sizeof t) < 0) {
        free(enc);
        return;
    }
    snprintf(lock, sizeof lock, "integrationsd:github:%s", r->auth.tenant);
    snprintf(user, sizeof user, "%lld", r->auth.user_id);
    /* One row per tenant: the lock serializes savers (across instances too), then
     * the newest row is updated, or a row inserted when there is none. */
    snprintf(sql, sizeof sql,
             "WITH latest AS (SELECT id FROM %s ORDER BY created_at DESC, id DESC LIMIT 1), "
             "upd AS (UPDATE %s SET encrypted_token = $1, token_name = COALESCE($2, token_name), "
             "updated_at = NOW() WHERE id IN (SELECT id FROM latest) RETURNING *), "
             "ins AS (INSERT INTO %s (encrypted_token, token_name, created_by) "
             "SELECT $1, COALESCE($2, '" DEFAULT_NAME "'), $3::int WHERE NOT EXISTS (SELECT 1 FROM latest) "
             "RETURNING *) "
             "SELECT " STATUS_COLS " FROM (SELECT * FROM upd UNION ALL SELECT * FROM ins) s",
             t, t, t);
    const char *lock_params[] = {lock};
    const char *params[] = {enc, name, user};
    const struct db_stmt stmts[] = {
        {"SELECT pg_advisory_xact_lock(hashtext($1))", 1, lock_params},
        {sql, 3, params},
    };
    app_submit(r, stmts, 2, on_saved);
    secrets_free_plain(enc, strlen(enc));
}

/* ---- DELETE /token --------------------------------------------------------- */

static void on_deleted(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "delete");
        return;
    }
    if (PQntuples(db_last(res)) == 0) {
        reply_text(r, 404, "No GitHub token found");
        return;
    }
    app_event(r->app, "github.token.deleted", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:i}", "deleted", PQntuples(db_last(res))));
    reply_data_message(r, 200, "GitHub token deleted successfully");
}

void github_token_delete(struct http_req *r)
{
    char t[64], sql[128];
    if (table(r, t, sizeof t) < 0)
        return;
    snprintf(sql, sizeof sql, "DELETE FROM %s RETURNING id", t);
    app_query(r, sql, 0, NULL, on_deleted);
}

/* ---- POST /token/test ------------------------------------------------------ */

struct test_state {
    char stored_id[24];       /* "" when the token came from the body */
};

static void free_state(void *p)
{
    free(p);
}

static void iso_from_epoch(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static long long header_ll(const struct fetch_response *res, const char *name, long long def)
{
    const char *v = fetch_response_header(res, name);
    if (!v || !*v)
        return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end == '\0' ? n : def;
}

static json_t *scopes_json(const char *h)
{
    json_t *arr = json_array();
    while (h && *h) {
        size_t n = strcspn(h, ",");
        const char *s = h;
        size_t l = n;
        while (l && isspace((unsigned char)*s))
            s++, l--;
        while (l && isspace((unsigned char)s[l - 1]))
            l--;
        if (l)
            json_array_append_new(arr, json_stringn(s, l));
        h += n;
        if (*h == ',')
            h++;
    }
    return arr;
}

static void on_last_used(const struct db_result *res, void *arg)
{
    (void)arg;
    if (res->status != DB_OK)
        log_warn("github: updating last_used_at failed: %s", res->message);
}

static json_t *test_result(const struct fetch_response *res)
{
    if (res->outcome != FETCH_OK) {
        char msg[320];
        if (res->outcome == FETCH_TIMEOUT)
            snprintf(msg, sizeof msg, "GitHub timed out: no answer within %d seconds", GITHUB_TIMEOUT_MS / 1000);
        else
            snprintf(msg, sizeof msg, "Could not reach GitHub: %s", res->error ? res->error : "network error");
        return json_pack("{s:b,s:s}", "valid", 0, "error", msg);
    }
    long st = res->status;
    if (st >= 200 && st < 300) {
        char reset[32];
        long long rs = header_ll(res, "X-RateLimit-Reset", 0);
        iso_from_epoch(rs > 0 ? (time_t)rs : time(NULL), reset);
        return json_pack("{s:b,s:o,s:{s:I,s:I,s:s}}", "valid", 1, "scopes",
                         scopes_json(fetch_response_header(res, "X-OAuth-Scopes")), "rate_limit", "limit",
                         (json_int_t)header_ll(res, "X-RateLimit-Limit", 5000), "remaining",
                         (json_int_t)header_ll(res, "X-RateLimit-Remaining", 5000), "reset", reset);
    }
    if (st == 401)
        return json_pack("{s:b,s:s}", "valid", 0, "error", "Invalid or expired token");
    if (st == 429 || (st == 403 && header_ll(res, "X-RateLimit-Remaining", -1) == 0)) {
        char reset[32], msg[128];
        long long rs = header_ll(res, "X-RateLimit-Reset", 0);
        iso_from_epoch(rs > 0 ? (time_t)rs : time(NULL), reset);
        snprintf(msg, sizeof msg, "GitHub API rate limit exceeded; try again after %s", reset);
        return json_pack("{s:b,s:s}", "valid", 0, "error", msg);
    }
    if (st == 403)
        return json_pack("{s:b,s:s}", "valid", 0, "error", "Token does not have required permissions");
    char msg[96];
    snprintf(msg, sizeof msg, "GitHub API error: %ld %s", st, http_reason((int)st));
    return json_pack("{s:b,s:s}", "valid", 0, "error", msg);
}

static void on_github(struct http_req *r, const struct fetch_response *res)
{
    struct test_state *ts = r->handler_state;
    if (ts && ts->stored_id[0] && res->outcome == FETCH_OK) {
        char t[64], sql[160];
        if (db_table(t, sizeof t, r->auth.tenant, "github_tokens") == 0) {
            snprintf(sql, sizeof sql,
                     "UPDATE %s SET last_used_at = NOW(), updated_at = NOW() WHERE id = $1::int", t);
            const char *params[] = {ts->stored_id};
            db_query(r->app->db, sql, 1, params, on_last_used, NULL);
        }
    }
    if (res->outcome != FETCH_OK)
        log_fields(LOG_WARN, "github token test failed",
                   json_pack("{s:s,s:s,s:s}", "request_id", r->id, "outcome",
                             fetch_outcome_name(res->outcome), "error", res->error ? res->error : ""));
    reply_data(r, 200, test_result(res));
}

static void call_github(struct http_req *r, const char *tok, size_t len)
{
    char url[1024];
    int n = snprintf(url, sizeof url, "%s/user", r->app->cfg.github_api_url);
    char *auth = NULL;
    if (n < 0 || (size_t)n >= sizeof url || asprintf(&auth, "Authorization: Bearer %.*s", (int)len, tok) < 0) {
        reply_internal(r);
        return;
    }
    const char *headers[] = {auth, "Accept: application/vnd.github+json",
                             "X-GitHub-Api-Version: 2022-11-28", NULL};
    struct fetch_request fr = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .timeout_ms = GITHUB_TIMEOUT_MS,
        .connect_timeout_ms = 5000,
        .max_response = 1024 * 1024,
        .target = "github",
    };
    app_fetch(r, &fr, on_github);
    secrets_free_plain(auth, strlen(auth));
}

static void on_stored(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "read");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) == 0) {
        reply_text(r, 404, "No GitHub token found");
        return;
    }
    char *tok = NULL;
    size_t len = 0;
    if (secrets_b_decrypt(&r->app->secrets, PQgetvalue(pr, 0, 1), &tok, &len) < 0) {
        log_error("github: the stored token cannot be decrypted with ENCRYPTION_KEY");
        reply_error(r, 500, "stored token cannot be decrypted");
        return;
    }
    struct test_state *ts = calloc(1, sizeof *ts);
    if (!ts) {
        secrets_free_plain(tok, len);
        reply_internal(r);
        return;
    }
    snprintf(ts->stored_id, sizeof ts->stored_id, "%s", PQgetvalue(pr, 0, 0));
    r->handler_state = ts;
    r->handler_state_free = free_state;
    call_github(r, tok, len);
    secrets_free_plain(tok, len);
}

void github_token_test(struct http_req *r)
{
    if (!json_object_get(r->json, "token")) { /* absent: test the stored token */
        char t[64], sql[160];
        if (table(r, t, sizeof t) < 0)
            return;
        snprintf(sql, sizeof sql, "SELECT id, encrypted_token FROM %s ORDER BY created_at DESC, id DESC LIMIT 1", t);
        app_query(r, sql, 0, NULL, on_stored);
        return;
    }
    const char *tok;
    size_t len;
    if (body_token(r, &tok, &len) < 0)
        return;
    call_github(r, tok, len);
}
