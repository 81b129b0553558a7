/* integrations/llm_keys: owns the LLM provider key routes:
 * check (llm_keys_check.c) -> statement(s) (llm_keys_store.c) -> event -> reply.
 * The plaintext key lives only in the request body and in short-lived buffers.
 * Duplicate keys are refused through HMAC fingerprints kept in integrationsd's own
 * table (<tenant>.integrationsd_llm_key_fingerprints), so VerifyWise's llm_keys keeps
 * its shape; rows written without one (by VerifyWise's backend) get theirs the first
 * time a create or key change of the organization sees them (a trigger lists the rows
 * an INSERT left without one in <tenant>.integrationsd_llm_keys_unfingerprinted, so
 * finding them is one indexed probe). A fingerprint records the md5 of the stored key
 * it was taken from: another writer's change of that key drops it and lists the row
 * again (a trigger, src/db/schema.c). A key that looks like a mask ("****...") is
 * never stored: on PATCH, the stored key's own mask means "unchanged" (the Edit dialog
 * sends back what the list showed). */
#include "integrations/llm_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "http/reply.h"
#include "integrations/handler.h"
#include "integrations/llm_keys_store.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"

#define VERIFY_TIMEOUT_MS 10000

static void reply_err(struct http_req *r, enum llm_key_err e)
{
    reply_text(r, llm_keys_err_status(e), llm_keys_err_message(e));
}

static void reply_failure(struct http_req *r, const struct db_result *res, const char *what)
{
    reply_sql_failure(r, res, "llm keys", what);
}

/* ---- GET /api/llm-keys, GET /api/llm-keys/:name ---------------------------- */

static void on_rows(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "list");
        return;
    }
    /* Written straight as text: the route answered on every uncached read. */
    struct json_out o;
    reply_data_begin(&o, 200);
    llm_keys_rows_out(&o, &r->app->secrets, db_last(res));
    if (reply_data_end(r, 200, &o) < 0)
        reply_data(r, 200, llm_keys_rows_json(&r->app->secrets, db_last(res)));
}

void llm_keys_list(struct http_req *r)
{
    llm_keys_store_list(r, NULL, on_rows);
}

void llm_keys_by_name(struct http_req *r)
{
    const char *v;
    int len = route_param(&r->params, "name", &v);
    char name[16];
    if (len < 1 || (size_t)len >= sizeof name) {
        reply_err(r, LLM_KEY_ERR_PROVIDER);
        return;
    }
    memcpy(name, v, (size_t)len);
    name[len] = '\0';
    if (!llm_provider_url(name)) {
        reply_err(r, LLM_KEY_ERR_PROVIDER);
        return;
    }
    llm_keys_store_list(r, name, on_rows);
}

/* ---- GET /api/llm-keys/status ---------------------------------------------- */

static void on_status(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "status");
        return;
    }
    reply_data(r, 200, llm_keys_status_json(db_last(res)));
}

void llm_keys_status(struct http_req *r)
{
    llm_keys_store_status(r, on_status);
}

/* ---- POST /api/llm-keys, PATCH /api/llm-keys/:id ------------------------------ */

/* A checked create or PATCH, kept by the request between its statements. Strings
 * point into r->json (alive as long as the request). */
struct key_write {
    bool patch;
    char id[HANDLER_ID_TEXT];   /* PATCH: the id from the path */
    struct llm_key_input in;
};

static void free_key_write(void *p)
{
    free(p);
}

static void on_written(struct http_req *r, const struct db_result *res)
{
    const struct key_write *w = r->handler_state;
    if (db_is_unique_violation(res)) {
        reply_err(r, w->patch ? LLM_KEY_ERR_DUP_UPDATE : LLM_KEY_ERR_DUP_CREATE);
        return;
    }
    if (res->status != DB_OK) {
        reply_failure(r, res, w->patch ? "update" : "create");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {
        reply_data(r, 404, NULL);
        return;
    }
    bool noop = !w->in.name && !w->in.key && !w->in.model; /* PATCH of the unchanged key only */
    if (!noop)
        app_event(r->app, w->patch ? "llm_key.updated" : "llm_key.created", r->auth.org_id, r->auth.tenant,
                  r->auth.user_id, llm_keys_row_event(pr, 0));
    reply_data(r, w->patch ? 200 : 201, llm_keys_row_json(&r->app->secrets, pr, 0));
}

/* The write itself, one statement: the row and its fingerprint. A fingerprint already
 * taken is a unique violation: a duplicate. */
static void write_key(struct http_req *r)
{
    struct key_write *w = r->handler_state;
    struct app *a = r->app;
    char *enc = NULL, fp[65];
    if (w->in.key && (secrets_b_encrypt(&a->secrets, w->in.key, w->in.klen, &enc) < 0 ||
                      secrets_fingerprint(&a->secrets, w->in.key, w->in.klen, fp) < 0)) {
        free(enc);
        log_error("llm keys: encryption failed");
        reply_internal(r);
        return;
    }
    if (w->patch)
        llm_keys_store_update(r, w->id, &w->in, enc, w->in.key ? fp : NULL, on_written);
    else
        llm_keys_store_insert(r, &w->in, enc, fp, on_written);
    if (enc)
        secrets_free_plain(enc, strlen(enc));
}

/* The array literals of a backfill ("{1,2}"; NULL while empty). */
struct backfill {
    char *ids, *fps, *done, *sums;
    size_t idl, fpl, donel, suml;
};

/* Append to a growing array literal. Returns 0 or -1 (out of memory). */
static int lit_add(char **lit, size_t *len, const char *v)
{
    size_t vl = strlen(v);
    char *n = realloc(*lit, *len + vl + 3);
    if (!n)
        return -1;
    *lit = n;
    n[*len] = *len == 0 ? '{' : ',';
    (*len)++;
    memcpy(n + *len, v, vl);
    *len += vl;
    n[*len] = '}';
    n[*len + 1] = '\0';
    return 0;
}

static void backfill_free(struct backfill *b)
{
    free(b->ids);
    free(b->fps);
    free(b->done);
    free(b->sums);
}

static void on_backfilled(struct http_req *r, const struct db_result *res)
{
    const struct key_write *w = r->handler_state;
    if (res->status != DB_OK) {
        reply_failure(r, res, w->patch ? "update" : "create");
        return;
    }
    write_key(r);
}

/* The rows listed without a fingerprint (and, for a PATCH with a masked key, the target
 * row): fingerprint them, settle the masked key, then write. */
static void on_prequery(struct http_req *r, const struct db_result *res)
{
    struct key_write *w = r->handler_state;
    if (res->status != DB_OK) {
        reply_failure(r, res, w->patch ? "update" : "create");
        return;
    }
    const PGresult *pr = db_last(res);
    struct app *a = r->app;
    struct backfill b = {0};
    bool found = !w->patch;
    int rc = 0;
    for (int i = 0; i < PQntuples(pr) && rc == 0; i++) {
        struct llm_key_prerow row;
        llm_keys_prerow(pr, i, &row);
        if (row.listed && !row.needs_fp) { /* fingerprinted since it was listed */
            rc = lit_add(&b.done, &b.donel, row.id);
            if (!row.target)
                continue;
        }
        char *pt = NULL;
        size_t len = 0;
        bool plain = false;
        if (secrets_b_decrypt(&a->secrets, row.key, &pt, &len) < 0) {
            if (strchr(row.key, ':'))
                continue; /* not ours to read: no fingerprint */
            pt = (char *)row.key; /* a plaintext row (VerifyWise) */
            len = strlen(row.key);
            plain = true;
        }
        if (row.target) {
            found = true;
            char mask[SECRETS_MASK_MAX];
            secrets_mask(pt, len, mask);
            if (w->in.key && llm_key_looks_masked(w->in.key, w->in.klen)) {
                if (strlen(mask) != w->in.klen || memcmp(mask, w->in.key, w->in.klen) != 0) {
                    if (!plain)
                        secrets_free_plain(pt, len);
                    backfill_free(&b);
                    reply_err(r, LLM_KEY_ERR_MASKED);
                    return;
                }
                w->in.key = NULL; /* its own mask: unchanged */
                w->in.klen = 0;
            }
        }
        char fp[65];
        if (row.needs_fp) {
            rc = secrets_fingerprint(&a->secrets, pt, len, fp);
            if (rc == 0 && (lit_add(&b.ids, &b.idl, row.id) < 0 || lit_add(&b.fps, &b.fpl, fp) < 0 ||
                            lit_add(&b.sums, &b.suml, row.key_md5) < 0))
                rc = -1;
        }
        if (!plain)
            secrets_free_plain(pt, len);
    }
    if (rc < 0) {
        backfill_free(&b);
        log_error("llm keys: fingerprinting stored keys failed");
        reply_internal(r);
        return;
    }
    if (!found) {
        backfill_free(&b);
        reply_data(r, 404, NULL);
        return;
    }
    if (w->in.key && llm_key_looks_masked(w->in.key, w->in.klen)) { /* the target row cannot be read */
        backfill_free(&b);
        reply_err(r, LLM_KEY_ERR_MASKED);
        return;
    }
    if (!b.ids && !b.done) {
        write_key(r);
        return;
    }
    llm_keys_store_backfill(r, b.ids ? b.ids : "{}", b.fps ? b.fps : "{}", b.done ? b.done : "{}",
                            b.sums ? b.sums : "{}", on_backfilled);
    backfill_free(&b);
}

/* Create (id NULL) or PATCH (id the path's key): check the body, keep the write on the
 * request, then settle the fingerprints (or compare a masked key) before writing. A PATCH
 * that leaves the key alone writes at once. */
static void start_write(struct http_req *r, const char *id)
{
    struct llm_key_input in;
    enum llm_key_err e = llm_keys_check_body(r->json, id != NULL, &in);
    if (e != LLM_KEY_OK) {
        reply_err(r, e);
        return;
    }
    struct key_write *w = calloc(1, sizeof *w);
    if (!w) {
        reply_internal(r);
        return;
    }
    r->handler_state = w;
    r->handler_state_free = free_key_write;
    w->in = in;
    w->patch = id != NULL;
    snprintf(w->id, sizeof w->id, "%s", id ? id : "0");
    if (w->patch && !in.key)
        write_key(r);
    else
        llm_keys_store_prequery(r, w->id, on_prequery);
}

void llm_keys_create(struct http_req *r)
{
    start_write(r, NULL);
}

void llm_keys_update(struct http_req *r)
{
    char idbuf[HANDLER_ID_TEXT];
    if (handler_id_param(r, "id", idbuf) < 0) {
        reply_err(r, LLM_KEY_ERR_BAD_ID);
        return;
    }
    start_write(r, idbuf);
}

/* ---- DELETE /api/llm-keys/:id ---------------------------------------------- */

static void on_deleted(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "delete");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {
        reply_data_message(r, 404, "LLM Key not found");
        return;
    }
    app_event(r->app, "llm_key.deleted", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:I}", "id", (json_int_t)llm_keys_deleted_id(pr, 0)));
    reply_data_message(r, 200, "LLM Key deleted successfully");
}

void llm_keys_delete(struct http_req *r)
{
    char idbuf[HANDLER_ID_TEXT];
    if (handler_id_param(r, "id", idbuf) < 0) {
        reply_err(r, LLM_KEY_ERR_BAD_ID);
        return;
    }
    llm_keys_store_delete(r, idbuf, on_deleted);
}

/* ---- POST /api/llm-keys/:id/verify ----------------------------------------- */

struct verify_state {
    char provider[16];
};

static void free_verify(void *p)
{
    free(p);
}

static void on_provider(struct http_req *r, const struct fetch_response *res)
{
    const struct verify_state *vs = r->handler_state;
    const char *provider = vs->provider;
    json_t *d;
    if (res->outcome == FETCH_OK && res->status >= 200 && res->status < 300) {
        d = json_pack("{s:b,s:s}", "valid", 1, "provider", provider);
    } else {
        char msg[320];
        if (res->outcome == FETCH_TIMEOUT)
            snprintf(msg, sizeof msg, "%s timed out: no answer within %d seconds", provider,
                     VERIFY_TIMEOUT_MS / 1000);
        else if (res->outcome != FETCH_OK)
            snprintf(msg, sizeof msg, "Could not reach %s: %s", provider, res->error ? res->error : "network error");
        else if (res->status == 401 || res->status == 403)
            snprintf(msg, sizeof msg, "%s rejected the API key (HTTP %ld)", provider, res->status);
        else if (res->status == 429)
            snprintf(msg, sizeof msg, "%s is rate limiting this key (HTTP 429); try again later", provider);
        else
            snprintf(msg, sizeof msg, "%s answered HTTP %ld", provider, res->status);
        d = json_pack("{s:b,s:s,s:s}", "valid", 0, "error", msg, "provider", provider);
    }
    reply_data(r, 200, d);
}

static void on_key_for_verify(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "verify");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {
        reply_data_message(r, 404, "LLM Key not found");
        return;
    }
    struct app *a = r->app;
    const char *provider, *stored;
    llm_keys_key_row(pr, 0, &provider, &stored);
    char *key = NULL;
    size_t klen = 0;
    if (secrets_b_decrypt(&a->secrets, stored, &key, &klen) < 0) {
        if (strchr(stored, ':')) {
            log_error("llm keys: key cannot be decrypted with ENCRYPTION_KEY");
            reply_error(r, 500, "stored key cannot be decrypted");
            return;
        }
        klen = strlen(stored); /* a legacy plaintext row */
        if (!(key = strdup(stored))) {
            reply_internal(r);
            return;
        }
    }
    struct verify_state *vs = calloc(1, sizeof *vs);
    if (!vs) {
        secrets_free_plain(key, klen);
        reply_internal(r);
        return;
    }
    snprintf(vs->provider, sizeof vs->provider, "%s", provider);
    r->handler_state = vs;
    r->handler_state_free = free_verify;

    char url[1024], *auth = NULL;
    const char *base, *path = "/models", *extra = NULL;
    int n;
    if (strcmp(vs->provider, "Anthropic") == 0) {
        base = a->cfg.anthropic_api_url;
        n = asprintf(&auth, "x-api-key: %s", key);
        extra = "anthropic-version: 2023-06-01";
    } else {
        base = strcmp(vs->provider, "OpenAI") == 0 ? a->cfg.openai_api_url : a->cfg.openrouter_api_url;
        if (strcmp(vs->provider, "OpenRouter") == 0)
            path = "/key"; /* /models is public there and proves nothing */
        n = asprintf(&auth, "Authorization: Bearer %s", key);
    }
    secrets_free_plain(key, klen);
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    if (n < 0 || snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path) >= (int)sizeof url) {
        free(auth);
        reply_internal(r);
        return;
    }
    const char *headers[] = {auth, extra, NULL};
    struct fetch_request fr = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .timeout_ms = VERIFY_TIMEOUT_MS,
        .connect_timeout_ms = 5000,
        .max_response = 4 * 1024 * 1024,
        .target = vs->provider,
    };
    app_fetch(r, &fr, on_provider);
    secrets_free_plain(auth, strlen(auth));
}

void llm_keys_verify(struct http_req *r)
{
    char idbuf[HANDLER_ID_TEXT];
    if (handler_id_param(r, "id", idbuf) < 0) {
        reply_err(r, LLM_KEY_ERR_BAD_ID);
        return;
    }
    llm_keys_store_get_key(r, idbuf, on_key_for_verify);
}
