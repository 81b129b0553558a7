/* integrations/github: owns the GitHub token routes:
 *   save:  check (github_check.c) -> encrypt (scheme B) -> upsert under a per-tenant
 *          lock (github_store.c) -> event -> status
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
#include "http/reply.h"
#include "integrations/github_store.h"
#include "integrations/handler.h"
#include "log.h"
#include "net/fetch.h"

#define GITHUB_TIMEOUT_MS 10000

static void reply_err(struct http_req *r, enum github_err e)
{
    reply_text(r, github_err_status(e), github_err_message(e));
}

static void reply_failure(struct http_req *r, const struct db_result *res, const char *what)
{
    reply_sql_failure(r, res, "github", what);
}

/* ---- GET /token ------------------------------------------------------------ */

static void on_status(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "read");
        return;
    }
    reply_data(r, 200, github_status_json(db_last(res)));
}

void github_token_get(struct http_req *r)
{
    github_store_status(r, on_status);
}

/* ---- POST /token ----------------------------------------------------------- */

static void on_saved(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "save");
        return;
    }
    const PGresult *pr = db_last(res);
    app_event(r->app, "github.token.saved", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:s?}", "token_name", github_status_name(pr)));
    reply_data(r, 201, github_status_json(pr));
}

void github_token_save(struct http_req *r)
{
    struct github_token_input in;
    enum github_err e = github_check_save_body(r->json, &in);
    if (e != GITHUB_OK) {
        reply_err(r, e);
        return;
    }
    struct app *a = r->app;
    char *enc = NULL;
    if (secrets_b_encrypt(&a->secrets, in.token, in.len, &enc) < 0) {
        log_error("github: encryption failed");
        reply_internal(r);
        return;
    }
    github_store_save(r, enc, in.name, on_saved);
    secrets_free_plain(enc, strlen(enc));
}

/* ---- DELETE /token --------------------------------------------------------- */

static void on_deleted(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "delete");
        return;
    }
    if (PQntuples(db_last(res)) == 0) {
        reply_err(r, GITHUB_ERR_NOT_FOUND);
        return;
    }
    app_event(r->app, "github.token.deleted", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:i}", "deleted", PQntuples(db_last(res))));
    reply_data_message(r, 200, "GitHub token deleted successfully");
}

void github_token_delete(struct http_req *r)
{
    github_store_delete(r, on_deleted);
}

/* ---- POST /token/test ------------------------------------------------------ */

struct test_state {
    char stored_id[24];       /* "" when the token came from the body */
    json_t *result;           /* the answer, held while last_used_at is recorded */
};

static void free_state(void *p)
{
    struct test_state *ts = p;
    json_decref(ts->result);
    free(ts);
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

/* last_used_at recorded, or the UPDATE failed (logged: the test's answer stands); with the
 * database unavailable app_query has answered 503, as for the MLflow test's record. */
static void on_touched(struct http_req *r, const struct db_result *res)
{
    struct test_state *ts = r->handler_state;
    if (res->status != DB_OK)
        log_warn("github: updating last_used_at failed: %s", res->message);
    json_t *result = ts->result;
    ts->result = NULL;
    reply_data(r, 200, result);
}

static void on_github(struct http_req *r, const struct fetch_response *res)
{
    struct test_state *ts = r->handler_state;
    if (res->outcome != FETCH_OK)
        log_fields(LOG_WARN, "github token test failed",
                   json_pack("{s:s,s:s,s:s}", "request_id", r->id, "outcome",
                             fetch_outcome_name(res->outcome), "error", res->error ? res->error : ""));
    json_t *result = test_result(res);
    if (ts && ts->stored_id[0] && res->outcome == FETCH_OK) {
        /* Answered once the UPDATE is done, so the next status read shows the use. */
        ts->result = result;
        github_store_touch(r, ts->stored_id, on_touched);
        return;
    }
    reply_data(r, 200, result);
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
        reply_failure(r, res, "read");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) == 0) {
        reply_err(r, GITHUB_ERR_NOT_FOUND);
        return;
    }
    const char *id, *enc;
    github_stored_row(pr, 0, &id, &enc);
    char *tok = NULL;
    size_t len = 0;
    if (secrets_b_decrypt(&r->app->secrets, enc, &tok, &len) < 0) {
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
    snprintf(ts->stored_id, sizeof ts->stored_id, "%s", id);
    r->handler_state = ts;
    r->handler_state_free = free_state;
    call_github(r, tok, len);
    secrets_free_plain(tok, len);
}

void github_token_test(struct http_req *r)
{
    struct github_token_input in;
    enum github_err e = github_check_test_body(r->json, &in);
    if (e != GITHUB_OK) {
        reply_err(r, e);
        return;
    }
    if (in.stored)
        github_store_stored(r, on_stored);
    else
        call_github(r, in.token, in.len);
}
