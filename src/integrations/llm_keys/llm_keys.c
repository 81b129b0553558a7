/* integrations/llm_keys: owns the LLM provider key routes:
 * validate -> statement(s) -> shape the row (masked key) -> envelope.
 * The plaintext key lives only in the request body and in short-lived buffers.
 * Duplicate keys are refused through HMAC fingerprints kept in integrationsd's own
 * table (<tenant>.integrationsd_llm_key_fingerprints), so VerifyWise's llm_keys keeps
 * its shape; rows written without one (by VerifyWise's backend) get theirs the first
 * time a create or key change of the organization sees them. A key that looks like a
 * mask ("****...") is never stored: on PATCH, the stored key's own mask means
 * "unchanged" (the Edit dialog sends back what the list showed). */
#include "integrations/llm_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "db/schema.h"
#include "http/reply.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"

#define KEY_MAX_CHARS 512
#define MODEL_MAX_CHARS 255
#define VERIFY_TIMEOUT_MS 10000

static const struct {
    const char *name;
    const char *url;
} providers[] = {
    {"Anthropic", "https://api.anthropic.com/v1"},
    {"OpenAI", "https://api.openai.com/v1/"},
    {"OpenRouter", "https://openrouter.ai/api/v1/"},
};

static const char MSG_BAD_PROVIDER[] = "Invalid provider name. Must be one of: Anthropic, OpenAI, OpenRouter";
static const char MSG_DUP_CREATE[] =
    "This API key is already configured. Please use a different API key or edit the existing entry.";
static const char MSG_DUP_UPDATE[] = "This API key is already configured. Please use a different API key.";
static const char MSG_MASKED[] = "Key looks masked: type the full key to change it";

/* Rows without a fingerprint looked at per create / key change (VerifyWise-written). */
#define BACKFILL_MAX 1000

/* Columns every row-returning statement selects, in this order. */
#define ROW_COLS                                                                                   \
    "id, name, url, model, "                                                                       \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), key"

const char *llm_provider_url(const char *name)
{
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
        if (strcmp(providers[i].name, name) == 0)
            return providers[i].url;
    return NULL;
}

/* Mask of a stored key: scheme B ciphertext, or a legacy plaintext row. */
static void mask_stored(const struct app *a, const char *stored, char out[SECRETS_MASK_MAX])
{
    char *pt = NULL;
    size_t len = 0;
    if (secrets_b_decrypt(&a->secrets, stored, &pt, &len) == 0) {
        secrets_mask(pt, len, out);
        secrets_free_plain(pt, len);
        return;
    }
    if (strchr(stored, ':') == NULL) { /* VerifyWise stored keys in plaintext */
        secrets_mask(stored, strlen(stored), out);
        return;
    }
    log_warn("llm key cannot be decrypted with ENCRYPTION_KEY; masking it fully");
    snprintf(out, SECRETS_MASK_MAX, "****");
}

static json_t *row_json(const struct app *a, const PGresult *res, int i)
{
    char mask[SECRETS_MASK_MAX];
    mask_stored(a, PQgetvalue(res, i, 5), mask);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
    json_object_set_new(o, "key", json_string(mask));
    json_object_set_new(o, "name", json_string(PQgetvalue(res, i, 1)));
    json_object_set_new(o, "url", PQgetisnull(res, i, 2) ? json_null() : json_string(PQgetvalue(res, i, 2)));
    json_object_set_new(o, "model", json_string(PQgetvalue(res, i, 3)));
    json_object_set_new(o, "created_at", json_string(PQgetvalue(res, i, 4)));
    return o;
}

/* llm_key.created / updated: the row without any part of the key. */
static void key_event(struct http_req *r, const char *type, const PGresult *res)
{
    app_event(r->app, type, r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:I,s:s,s:s}", "id", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                        "provider", PQgetvalue(res, 0, 1), "model", PQgetvalue(res, 0, 3)));
}

static json_t *rows_json(const struct app *a, const PGresult *res)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, row_json(a, res, i));
    return arr;
}

static int table(struct http_req *r, char *buf, size_t len)
{
    if (db_table(buf, len, r->auth.tenant, "llm_keys") < 0) {
        reply_internal(r);
        return -1;
    }
    return 0;
}

static int fp_table(struct http_req *r, char *buf, size_t len)
{
    if (db_table(buf, len, r->auth.tenant, "integrationsd_llm_key_fingerprints") < 0) {
        reply_internal(r);
        return -1;
    }
    return 0;
}

/* A value the list could have shown: the form secrets_mask produces, or anything
 * else starting with its "****". */
static bool looks_masked(const char *key, size_t len)
{
    return len >= 4 && memcmp(key, "****", 4) == 0;
}

/* Positive int4 id from the path, as canonical text in buf; -1 if invalid. */
static long long parse_id(struct http_req *r, char buf[24])
{
    const char *v;
    int len = route_param(&r->params, "id", &v);
    if (len < 1 || len > 10 || v[0] == '0')
        return -1;
    long long id = 0;
    for (int i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        id = id * 10 + (v[i] - '0');
    }
    if (id > 2147483647LL)
        return -1;
    snprintf(buf, 24, "%lld", id);
    return id;
}

static void reply_sql_failure(struct http_req *r, const struct db_result *res, const char *what)
{
    log_error("llm keys: %s failed: %s (%s)", what, res->message, res->sqlstate);
    reply_internal(r);
}

/* ---- GET /api/llm-keys, GET /api/llm-keys/:name ---------------------------- */

static void on_rows(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, "list");
        return;
    }
    reply_data(r, 200, rows_json(r->app, db_last(res)));
}

void llm_keys_list(struct http_req *r)
{
    char t[64], sql[256];
    if (table(r, t, sizeof t) < 0)
        return;
    snprintf(sql, sizeof sql, "SELECT " ROW_COLS " FROM %s ORDER BY created_at DESC, id DESC", t);
    app_query(r, sql, 0, NULL, on_rows);
}

void llm_keys_by_name(struct http_req *r)
{
    const char *v;
    int len = route_param(&r->params, "name", &v);
    char name[16];
    if (len < 1 || (size_t)len >= sizeof name) {
        reply_text(r, 400, MSG_BAD_PROVIDER);
        return;
    }
    memcpy(name, v, (size_t)len);
    name[len] = '\0';
    if (!llm_provider_url(name)) {
        reply_text(r, 400, MSG_BAD_PROVIDER);
        return;
    }
    char t[64], sql[320];
    if (table(r, t, sizeof t) < 0)
        return;
    snprintf(sql, sizeof sql,
             "SELECT " ROW_COLS " FROM %s WHERE name = $1::public.enum_llm_keys_provider "
             "ORDER BY created_at DESC, id DESC",
             t);
    const char *params[] = {name};
    app_query(r, sql, 1, params, on_rows);
}

/* ---- GET /api/llm-keys/status ---------------------------------------------- */

static void on_status(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, "status");
        return;
    }
    const PGresult *pr = db_last(res);
    json_t *provs = json_array();
    long long total = 0;
    for (int i = 0; i < PQntuples(pr); i++) {
        json_array_append_new(provs, json_string(PQgetvalue(pr, i, 0)));
        total += strtoll(PQgetvalue(pr, i, 1), NULL, 10);
    }
    reply_data(r, 200, json_pack("{s:b,s:I,s:o}", "hasKeys", total > 0, "keyCount",
                                 (json_int_t)total, "providers", provs));
}

void llm_keys_status(struct http_req *r)
{
    char t[64], sql[256];
    if (table(r, t, sizeof t) < 0)
        return;
    snprintf(sql, sizeof sql,
             "SELECT name::text, count(*) FROM %s GROUP BY name ORDER BY name::text", t);
    app_query(r, sql, 0, NULL, on_status);
}

/* ---- POST /api/llm-keys, PATCH /api/llm-keys/:id ------------------------------ */

/* Shared field checks; returns the error message or NULL. */
static const char *check_lengths(const char *key, size_t klen, const char *model, size_t mlen)
{
    if (key && utf8_length(key, klen) > KEY_MAX_CHARS)
        return "Key must be at most 512 characters";
    if (model && utf8_length(model, mlen) > MODEL_MAX_CHARS)
        return "Model must be at most 255 characters";
    return NULL;
}

/* A validated create or PATCH, kept by the request between its statements. Strings
 * point into r->json (alive as long as the request). */
struct key_write {
    bool patch;
    bool noop;                  /* PATCH that changes nothing: no event */
    char id[24];                /* PATCH: the id from the path */
    const char *name, *url, *key, *model;
    size_t klen;
};

static void free_key_write(void *p)
{
    free(p);
}

static void on_written(struct http_req *r, const struct db_result *res)
{
    const struct key_write *w = r->handler_state;
    if (db_is_unique_violation(res)) {
        reply_text(r, 400, w->patch ? MSG_DUP_UPDATE : MSG_DUP_CREATE);
        return;
    }
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, w->patch ? "update" : "create");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {
        reply_data(r, 404, NULL);
        return;
    }
    if (!w->noop)
        key_event(r, w->patch ? "llm_key.updated" : "llm_key.created", pr);
    reply_data(r, w->patch ? 200 : 201, row_json(r->app, pr, 0));
}

/* Append ", <frag>" (or "<frag>" first) to set; -1 when it does not fit. */
static int set_add(char *set, size_t size, const char *frag)
{
    size_t used = strlen(set);
    int n = snprintf(set + used, size - used, "%s%s", used ? ", " : "", frag);
    return n < 0 || (size_t)n >= size - used ? -1 : 0;
}

/* The write itself, one statement: the row and its fingerprint. A fingerprint already
 * taken is a unique violation: a duplicate. */
static void write_key(struct http_req *r)
{
    struct key_write *w = r->handler_state;
    struct app *a = r->app;
    char *enc = NULL, fp[65];
    if (w->key && (secrets_b_encrypt(&a->secrets, w->key, w->klen, &enc) < 0 ||
                   secrets_fingerprint(&a->secrets, w->key, w->klen, fp) < 0)) {
        free(enc);
        log_error("llm keys: encryption failed");
        reply_internal(r);
        return;
    }
    char t[64], f[96], sql[1024];
    if (table(r, t, sizeof t) < 0 || fp_table(r, f, sizeof f) < 0) {
        free(enc);
        return;
    }
    const char *params[6];
    int n = 0, len;
    if (!w->patch) {
        params[n++] = enc;
        params[n++] = w->name;
        params[n++] = w->url;
        params[n++] = w->model;
        params[n++] = fp;
        len = snprintf(sql, sizeof sql,
                       "WITH k AS (INSERT INTO %s (key, name, url, model)"
                       " VALUES ($1, $2::public.enum_llm_keys_provider, $3, $4) RETURNING " ROW_COLS "),"
                       " f AS (INSERT INTO %s (key_id, fingerprint) SELECT id, $5 FROM k)"
                       " SELECT * FROM k",
                       t, f);
    } else {
        /* The statement is assembled from constant fragments only; values are bound. */
        char set[256] = "", frag[96];
        int bad = 0;
        params[n++] = w->id;
        if (w->name) {
            params[n++] = w->name;
            params[n++] = w->url;
            snprintf(frag, sizeof frag, "name = $%d::public.enum_llm_keys_provider, url = $%d", n - 1, n);
            bad |= set_add(set, sizeof set, frag);
        }
        if (w->key) {
            params[n++] = enc;
            snprintf(frag, sizeof frag, "key = $%d", n);
            bad |= set_add(set, sizeof set, frag);
        }
        if (w->model) {
            params[n++] = w->model;
            snprintf(frag, sizeof frag, "model = $%d", n);
            bad |= set_add(set, sizeof set, frag);
        }
        if (w->key) {
            params[n++] = fp;
            len = snprintf(sql, sizeof sql,
                           "WITH k AS (UPDATE %s SET %s WHERE id = $1::int RETURNING " ROW_COLS "),"
                           " f AS (INSERT INTO %s (key_id, fingerprint) SELECT id, $%d FROM k"
                           " ON CONFLICT (key_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint)"
                           " SELECT * FROM k",
                           t, set, f, n);
        } else if (*set) {
            len = snprintf(sql, sizeof sql, "UPDATE %s SET %s WHERE id = $1::int RETURNING " ROW_COLS, t, set);
        } else { /* only the unchanged (masked) key: the row as it is */
            w->noop = true;
            len = snprintf(sql, sizeof sql, "SELECT " ROW_COLS " FROM %s WHERE id = $1::int", t);
        }
        if (bad)
            len = -1;
    }
    if (len < 0 || (size_t)len >= sizeof sql) {
        free(enc);
        log_error("llm keys: statement does not fit");
        reply_internal(r);
        return;
    }
    app_query(r, sql, n, params, on_written);
    if (enc)
        secrets_free_plain(enc, strlen(enc));
}

/* Append to a growing array literal ("{1,2}"). Returns 0 or -1 (out of memory). */
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

static void on_backfilled(struct http_req *r, const struct db_result *res)
{
    const struct key_write *w = r->handler_state;
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, w->patch ? "update" : "create");
        return;
    }
    write_key(r);
}

enum { PRE_ID, PRE_KEY, PRE_TARGET, PRE_NEEDS_FP };

/* The rows without a fingerprint (and, for a PATCH with a masked key, the target row):
 * fingerprint them, settle the masked key, then write. */
static void on_prequery(struct http_req *r, const struct db_result *res)
{
    struct key_write *w = r->handler_state;
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, w->patch ? "update" : "create");
        return;
    }
    const PGresult *pr = db_last(res);
    struct app *a = r->app;
    char *ids = NULL, *fps = NULL;
    size_t idl = 0, fpl = 0;
    bool found = !w->patch;
    for (int i = 0; i < PQntuples(pr); i++) {
        const char *stored = PQgetvalue(pr, i, PRE_KEY);
        char *pt = NULL;
        size_t len = 0;
        bool plain = false;
        if (secrets_b_decrypt(&a->secrets, stored, &pt, &len) < 0) {
            if (strchr(stored, ':'))
                continue; /* not ours to read: no fingerprint */
            pt = (char *)stored; /* a plaintext row (VerifyWise) */
            len = strlen(stored);
            plain = true;
        }
        if (strcmp(PQgetvalue(pr, i, PRE_TARGET), "t") == 0) {
            found = true;
            char mask[SECRETS_MASK_MAX];
            secrets_mask(pt, len, mask);
            if (w->key && looks_masked(w->key, w->klen)) {
                if (strlen(mask) != w->klen || memcmp(mask, w->key, w->klen) != 0) {
                    if (!plain)
                        secrets_free_plain(pt, len);
                    free(ids);
                    free(fps);
                    reply_text(r, 400, MSG_MASKED);
                    return;
                }
                w->key = NULL; /* its own mask: unchanged */
                w->klen = 0;
            }
        }
        char fp[65];
        int rc = 0;
        if (strcmp(PQgetvalue(pr, i, PRE_NEEDS_FP), "t") == 0) {
            rc = secrets_fingerprint(&a->secrets, pt, len, fp);
            if (rc == 0 && (lit_add(&ids, &idl, PQgetvalue(pr, i, PRE_ID)) < 0 || lit_add(&fps, &fpl, fp) < 0))
                rc = -1;
        }
        if (!plain)
            secrets_free_plain(pt, len);
        if (rc < 0) {
            free(ids);
            free(fps);
            log_error("llm keys: fingerprinting stored keys failed");
            reply_internal(r);
            return;
        }
    }
    if (!found) {
        free(ids);
        free(fps);
        reply_data(r, 404, NULL);
        return;
    }
    if (w->key && looks_masked(w->key, w->klen)) { /* the target row cannot be read */
        free(ids);
        free(fps);
        reply_text(r, 400, MSG_MASKED);
        return;
    }
    if (!ids) {
        write_key(r);
        return;
    }
    /* The older rows' fingerprints are kept whatever the write then finds. */
    char f[96], sql[256];
    if (fp_table(r, f, sizeof f) < 0) {
        free(ids);
        free(fps);
        return;
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (key_id, fingerprint) SELECT * FROM unnest($1::int[], $2::text[])"
             " ON CONFLICT DO NOTHING",
             f);
    const char *params[] = {ids, fps};
    app_query(r, sql, 2, params, on_backfilled);
    free(ids);
    free(fps);
}

/* Look at the rows without a fingerprint (and the PATCH target), then write. */
static void prequery(struct http_req *r)
{
    struct key_write *w = r->handler_state;
    char t[64], f[96], sql[512];
    if (table(r, t, sizeof t) < 0 || fp_table(r, f, sizeof f) < 0)
        return;
    int n = snprintf(sql, sizeof sql,
                     "SELECT k.id, k.key, k.id = $1::int, NOT EXISTS (SELECT 1 FROM %s f WHERE f.key_id = k.id)"
                     " FROM %s k WHERE k.id = $1::int OR NOT EXISTS (SELECT 1 FROM %s f WHERE f.key_id = k.id)"
                     " ORDER BY k.id = $1::int DESC, k.id LIMIT %d",
                     f, t, f, BACKFILL_MAX);
    if (n < 0 || (size_t)n >= sizeof sql) {
        reply_internal(r);
        return;
    }
    const char *params[] = {w->patch ? w->id : "0"};
    app_query(r, sql, 1, params, on_prequery);
}

static struct key_write *new_key_write(struct http_req *r)
{
    struct key_write *w = calloc(1, sizeof *w);
    if (!w) {
        reply_internal(r);
        return NULL;
    }
    r->handler_state = w;
    r->handler_state_free = free_key_write;
    return w;
}

void llm_keys_create(struct http_req *r)
{
    const char *name = NULL, *key = NULL, *model = NULL;
    size_t nlen = 0, klen = 0, mlen = 0;
    if (json_get_string(r->json, "name", &name, &nlen) != 1 || nlen == 0 ||
        json_get_string(r->json, "key", &key, &klen) != 1 || klen == 0) {
        reply_text(r, 400, "Name and key are required");
        return;
    }
    const char *url = llm_provider_url(name);
    if (!url || strlen(name) != nlen) {
        reply_text(r, 400, MSG_BAD_PROVIDER);
        return;
    }
    if (json_get_string(r->json, "model", &model, &mlen) != 1 || mlen == 0) {
        reply_text(r, 400, "Model is required");
        return;
    }
    const char *err = check_lengths(key, klen, model, mlen);
    if (err || strlen(key) != klen || strlen(model) != mlen) {
        reply_text(r, 400, err ? err : "Key and model must not contain NUL characters");
        return;
    }
    if (looks_masked(key, klen)) {
        reply_text(r, 400, MSG_MASKED);
        return;
    }
    struct key_write *w = new_key_write(r);
    if (!w)
        return;
    *w = (struct key_write){.name = name, .url = url, .key = key, .klen = klen, .model = model};
    prequery(r);
}

/* A PATCH field: absent, null and "" are dropped; another type is an error. */
static int patch_field(struct http_req *r, const char *field, const char **s, size_t *len)
{
    int g = json_get_string(r->json, field, s, len);
    if (g < 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s must be a string", field);
        reply_text(r, 400, msg);
        return -1;
    }
    if (g == 0 || *len == 0)
        *s = NULL;
    return 0;
}

void llm_keys_update(struct http_req *r)
{
    char idbuf[24];
    if (parse_id(r, idbuf) < 0) {
        reply_text(r, 400, "Invalid id");
        return;
    }
    const char *name, *key, *model;
    size_t nlen, klen, mlen;
    if (patch_field(r, "name", &name, &nlen) < 0 || patch_field(r, "key", &key, &klen) < 0 ||
        patch_field(r, "model", &model, &mlen) < 0)
        return;
    if (!name && !key && !model) {
        reply_text(r, 400, "No fields to update");
        return;
    }
    const char *url = NULL;
    if (name && (!(url = llm_provider_url(name)) || strlen(name) != nlen)) {
        reply_text(r, 400, MSG_BAD_PROVIDER);
        return;
    }
    const char *err = check_lengths(key, klen, model, mlen);
    if (err || (key && strlen(key) != klen) || (model && strlen(model) != mlen)) {
        reply_text(r, 400, err ? err : "Key and model must not contain NUL characters");
        return;
    }
    struct key_write *w = new_key_write(r);
    if (!w)
        return;
    *w = (struct key_write){.patch = true, .name = name, .url = url, .key = key, .klen = key ? klen : 0,
                            .model = model};
    memcpy(w->id, idbuf, sizeof w->id);
    if (key)
        prequery(r); /* fingerprints to settle, or a masked key to compare */
    else
        write_key(r);
}

/* ---- DELETE /api/llm-keys/:id ---------------------------------------------- */

static void on_deleted(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, "delete");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {
        reply_data_message(r, 404, "LLM Key not found");
        return;
    }
    app_event(r->app, "llm_key.deleted", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              json_pack("{s:I}", "id", (json_int_t)strtoll(PQgetvalue(pr, 0, 0), NULL, 10)));
    reply_data_message(r, 200, "LLM Key deleted successfully");
}

/* Run "<head><table><tail>" with $1 = the id from the path, for the :id routes. */
static void query_by_id(struct http_req *r, const char *head, const char *tail, app_query_done done)
{
    char idbuf[24];
    if (parse_id(r, idbuf) < 0) {
        reply_text(r, 400, "Invalid id");
        return;
    }
    char t[64], sql[256];
    if (table(r, t, sizeof t) < 0)
        return;
    snprintf(sql, sizeof sql, "%s%s%s", head, t, tail);
    const char *params[] = {idbuf};
    app_query(r, sql, 1, params, done);
}

void llm_keys_delete(struct http_req *r)
{
    query_by_id(r, "DELETE FROM ", " WHERE id = $1::int RETURNING id", on_deleted);
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
        reply_sql_failure(r, res, "verify");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {
        reply_data_message(r, 404, "LLM Key not found");
        return;
    }
    struct app *a = r->app;
    const char *stored = PQgetvalue(pr, 0, 1);
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
    snprintf(vs->provider, sizeof vs->provider, "%s", PQgetvalue(pr, 0, 0));
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
    query_by_id(r, "SELECT name::text, key FROM ", " WHERE id = $1::int", on_key_for_verify);
}
