/* integrations/llm_keys_store: owns the SQL of the LLM key routes (templates on the
 * tenant's tables, one column enum per SELECT list) and the decoding of their rows
 * (masking the stored key). Values are always bound as parameters; only the quoted
 * tenant table names are formatted into the text, and a text that does not fit is
 * refused, never cut. */
#include "integrations/llm_keys_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/reply.h"
#include "integrations/handler.h"
#include "log.h"

/* ---- statements ---------------------------------------------------------------- */

#define KEYS "llm_keys"
#define FPS "integrationsd_llm_key_fingerprints"
#define PENDING "integrationsd_llm_keys_unfingerprinted"

/* The row every row-returning statement selects. */
enum { KEY_COL_ID, KEY_COL_NAME, KEY_COL_URL, KEY_COL_MODEL, KEY_COL_CREATED_AT, KEY_COL_KEY };
#define KEY_COLS                                                                                   \
    "id, name, url, model, "                                                                       \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), key"

/* %s: keys */
static const char SQL_LIST[] = "SELECT " KEY_COLS " FROM %s ORDER BY created_at DESC, id DESC";
/* %s: keys; $1 provider */
static const char SQL_BY_NAME[] = "SELECT " KEY_COLS " FROM %s WHERE name = $1::public.enum_llm_keys_provider "
                                  "ORDER BY created_at DESC, id DESC";
/* %s: keys; $1 id */
static const char SQL_GET[] = "SELECT " KEY_COLS " FROM %s WHERE id = $1::int";

/* %s: keys */
enum { STATUS_COL_PROVIDER, STATUS_COL_COUNT };
static const char SQL_STATUS[] = "SELECT name::text, count(*) FROM %s GROUP BY name ORDER BY name::text";

/* %s: fps, pending, keys, fps, pending, keys; %d: the limit; $1 the target id (0: none).
 * The target row, then the rows listed as lacking a fingerprint (an index probe of a
 * table that is empty when every row has one). */
enum { PRE_COL_ID, PRE_COL_KEY, PRE_COL_TARGET, PRE_COL_NEEDS_FP, PRE_COL_LISTED, PRE_COL_KEY_MD5 };
static const char SQL_PREQUERY[] =
    "SELECT k.id, k.key, true, NOT EXISTS (SELECT 1 FROM %s f WHERE f.key_id = k.id),"
    " EXISTS (SELECT 1 FROM %s p WHERE p.key_id = k.id), md5(k.key) FROM %s k WHERE k.id = $1::int"
    " UNION ALL SELECT k.id, k.key, false, NOT EXISTS (SELECT 1 FROM %s f WHERE f.key_id = k.id), true,"
    " md5(k.key)"
    " FROM (SELECT key_id FROM %s WHERE key_id <> $1::int ORDER BY key_id LIMIT %d) p"
    " JOIN %s k ON k.id = p.key_id";

/* %s: keys, fps, pending; $1 ids, $2 fingerprints, $3 ids listed that already had one,
 * $4 the md5 of each stored key fingerprinted (array literals). Older rows' fingerprints
 * are kept whatever the write then finds; a row leaves the list once it has a fingerprint
 * (one taken by another row keeps it listed). A row whose stored key has changed since it
 * was read gets none and stays listed: the lock re-reads it (and a later change of the
 * key waits for this statement, whose fingerprint its trigger then drops). */
static const char SQL_BACKFILL[] = "WITH k AS (SELECT u.id, u.fp, u.sum FROM unnest($1::int[], $2::text[], $4::text[])"
                                   " u(id, fp, sum) JOIN %s k ON k.id = u.id AND md5(k.key) = u.sum"
                                   " FOR KEY SHARE OF k),"
                                   " f AS (INSERT INTO %s (key_id, fingerprint, key_md5) SELECT * FROM k"
                                   " ON CONFLICT DO NOTHING RETURNING key_id)"
                                   " DELETE FROM %s WHERE key_id IN (SELECT key_id FROM f)"
                                   " OR key_id = ANY($3::int[])";

/* %s: keys, fps; $1 key, $2 provider, $3 url, $4 model, $5 fingerprint */
static const char SQL_INSERT[] = "WITH k AS (INSERT INTO %s (key, name, url, model)"
                                 " VALUES ($1, $2::public.enum_llm_keys_provider, $3, $4) RETURNING " KEY_COLS "),"
                                 " f AS (INSERT INTO %s (key_id, fingerprint, key_md5) SELECT id, $5, md5(key) FROM k)"
                                 " SELECT * FROM k";

/* The fields of a PATCH: $1 id, $2 provider, $3 its url, $4 model (NULL: unchanged). */
#define UPDATE_SET                                                                                 \
    "name = COALESCE($2::public.enum_llm_keys_provider, name), "                                  \
    "url = CASE WHEN $2::public.enum_llm_keys_provider IS NULL THEN url ELSE $3 END, "            \
    "model = COALESCE($4, model)"
/* %s: keys */
static const char SQL_UPDATE[] = "UPDATE %s SET " UPDATE_SET " WHERE id = $1::int RETURNING " KEY_COLS;
/* %s: keys, fps; $5 key, $6 its fingerprint */
static const char SQL_UPDATE_KEY[] =
    "WITH k AS (UPDATE %s SET " UPDATE_SET ", key = $5 WHERE id = $1::int RETURNING " KEY_COLS "),"
    " f AS (INSERT INTO %s (key_id, fingerprint, key_md5) SELECT id, $6, md5(key) FROM k"
    " ON CONFLICT (key_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, key_md5 = EXCLUDED.key_md5)"
    " SELECT * FROM k";

/* %s: keys; $1 id */
enum { DEL_COL_ID };
static const char SQL_DELETE[] = "DELETE FROM %s WHERE id = $1::int RETURNING id";

/* %s: keys; $1 id */
enum { VERIFY_COL_PROVIDER, VERIFY_COL_KEY };
static const char SQL_GET_KEY[] = "SELECT name::text, key FROM %s WHERE id = $1::int";

/* The caller's table names: keys (and fps when asked). Replies 500 on failure. */
static int tables(struct http_req *r, char keys[64], char *fps)
{
    if (handler_table(r, KEYS, keys, 64) < 0)
        return -1;
    return fps ? handler_table(r, FPS, fps, 96) : 0;
}

void llm_keys_store_list(struct http_req *r, const char *provider, app_query_done done)
{
    char t[64], sql[384];
    if (tables(r, t, NULL) < 0 || handler_sql(r, sql, sizeof sql, provider ? SQL_BY_NAME : SQL_LIST, t) < 0)
        return;
    const char *params[] = {provider};
    app_query(r, sql, provider ? 1 : 0, provider ? params : NULL, done);
}

void llm_keys_store_status(struct http_req *r, app_query_done done)
{
    char t[64], sql[256];
    if (tables(r, t, NULL) < 0 || handler_sql(r, sql, sizeof sql, SQL_STATUS, t) < 0)
        return;
    app_query(r, sql, 0, NULL, done);
}

void llm_keys_store_prequery(struct http_req *r, const char *id, app_query_done done)
{
    char t[64], f[96], p[96], sql[1024];
    if (tables(r, t, f) < 0 || handler_table(r, PENDING, p, sizeof p) < 0 ||
        handler_sql(r, sql, sizeof sql, SQL_PREQUERY, f, p, t, f, p, LLM_KEYS_BACKFILL_MAX, t) < 0)
        return;
    const char *params[] = {id};
    app_query(r, sql, 1, params, done);
}

void llm_keys_store_backfill(struct http_req *r, const char *ids, const char *fps, const char *done_ids,
                             const char *sums, app_query_done done)
{
    char t[64], f[96], p[96], sql[768];
    if (tables(r, t, f) < 0 || handler_table(r, PENDING, p, sizeof p) < 0 ||
        handler_sql(r, sql, sizeof sql, SQL_BACKFILL, t, f, p) < 0)
        return;
    const char *params[] = {ids, fps, done_ids, sums};
    app_query(r, sql, 4, params, done);
}

void llm_keys_store_insert(struct http_req *r, const struct llm_key_input *in, const char *enc, const char *fp,
                           app_query_done done)
{
    char t[64], f[96], sql[768];
    if (tables(r, t, f) < 0 || handler_sql(r, sql, sizeof sql, SQL_INSERT, t, f) < 0)
        return;
    const char *params[] = {enc, in->name, in->url, in->model, fp};
    app_query(r, sql, 5, params, done);
}

void llm_keys_store_update(struct http_req *r, const char *id, const struct llm_key_input *in, const char *enc,
                           const char *fp, app_query_done done)
{
    char t[64], f[96], sql[1024];
    const char *params[] = {id, in->name, in->name ? in->url : NULL, in->model, enc, fp};
    if (tables(r, t, f) < 0)
        return;
    if (in->key) {
        if (handler_sql(r, sql, sizeof sql, SQL_UPDATE_KEY, t, f) < 0)
            return;
        app_query(r, sql, 6, params, done);
    } else if (in->name || in->model) {
        if (handler_sql(r, sql, sizeof sql, SQL_UPDATE, t) < 0)
            return;
        app_query(r, sql, 4, params, done);
    } else { /* nothing to change: the row as it is */
        if (handler_sql(r, sql, sizeof sql, SQL_GET, t) < 0)
            return;
        app_query(r, sql, 1, params, done);
    }
}

/* The statements on one row whose only parameter is its id: its deletion or its key. */
static void by_id(struct http_req *r, bool del, const char *id, app_query_done done)
{
    char t[64], sql[256];
    if (tables(r, t, NULL) < 0 || handler_sql(r, sql, sizeof sql, del ? SQL_DELETE : SQL_GET_KEY, t) < 0)
        return;
    const char *params[] = {id};
    app_query(r, sql, 1, params, done);
}

void llm_keys_store_delete(struct http_req *r, const char *id, app_query_done done)
{
    by_id(r, true, id, done);
}

void llm_keys_store_get_key(struct http_req *r, const char *id, app_query_done done)
{
    by_id(r, false, id, done);
}

/* ---- decoding ------------------------------------------------------------------ */

void llm_keys_mask_stored(const struct secrets *s, const char *stored, char out[SECRETS_MASK_MAX])
{
    char *pt = NULL;
    size_t len = 0;
    if (secrets_b_decrypt(s, stored, &pt, &len) == 0) {
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

static json_int_t col_id(const PGresult *res, int row, int col)
{
    return (json_int_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

json_t *llm_keys_row_json(const struct secrets *s, const PGresult *res, int row)
{
    char mask[SECRETS_MASK_MAX];
    llm_keys_mask_stored(s, PQgetvalue(res, row, KEY_COL_KEY), mask);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(col_id(res, row, KEY_COL_ID)));
    json_object_set_new(o, "key", json_string(mask));
    json_object_set_new(o, "name", json_string(PQgetvalue(res, row, KEY_COL_NAME)));
    json_object_set_new(o, "url", PQgetisnull(res, row, KEY_COL_URL) ? json_null()
                                                                     : json_string(PQgetvalue(res, row, KEY_COL_URL)));
    json_object_set_new(o, "model", json_string(PQgetvalue(res, row, KEY_COL_MODEL)));
    json_object_set_new(o, "created_at", json_string(PQgetvalue(res, row, KEY_COL_CREATED_AT)));
    return o;
}

void llm_keys_rows_out(struct json_out *o, const struct secrets *s, const PGresult *res)
{
    json_out_lit(o, "[");
    for (int i = 0; i < PQntuples(res); i++) {
        char mask[SECRETS_MASK_MAX];
        llm_keys_mask_stored(s, PQgetvalue(res, i, KEY_COL_KEY), mask);
        if (i)
            json_out_lit(o, ",");
        json_out_lit(o, "{\"id\":");
        json_out_int(o, (long long)col_id(res, i, KEY_COL_ID));
        json_out_lit(o, ",\"key\":");
        json_out_str(o, mask, strlen(mask));
        json_out_lit(o, ",\"name\":");
        json_out_str(o, PQgetvalue(res, i, KEY_COL_NAME), (size_t)PQgetlength(res, i, KEY_COL_NAME));
        json_out_lit(o, ",\"url\":");
        if (PQgetisnull(res, i, KEY_COL_URL))
            json_out_lit(o, "null");
        else
            json_out_str(o, PQgetvalue(res, i, KEY_COL_URL), (size_t)PQgetlength(res, i, KEY_COL_URL));
        json_out_lit(o, ",\"model\":");
        json_out_str(o, PQgetvalue(res, i, KEY_COL_MODEL), (size_t)PQgetlength(res, i, KEY_COL_MODEL));
        json_out_lit(o, ",\"created_at\":");
        json_out_str(o, PQgetvalue(res, i, KEY_COL_CREATED_AT),
                     (size_t)PQgetlength(res, i, KEY_COL_CREATED_AT));
        json_out_lit(o, "}");
    }
    json_out_lit(o, "]");
}

json_t *llm_keys_rows_json(const struct secrets *s, const PGresult *res)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, llm_keys_row_json(s, res, i));
    return arr;
}

json_t *llm_keys_row_event(const PGresult *res, int row)
{
    return json_pack("{s:I,s:s,s:s}", "id", col_id(res, row, KEY_COL_ID), "provider",
                     PQgetvalue(res, row, KEY_COL_NAME), "model", PQgetvalue(res, row, KEY_COL_MODEL));
}

json_t *llm_keys_status_json(const PGresult *res)
{
    json_t *provs = json_array();
    long long total = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        json_array_append_new(provs, json_string(PQgetvalue(res, i, STATUS_COL_PROVIDER)));
        total += strtoll(PQgetvalue(res, i, STATUS_COL_COUNT), NULL, 10);
    }
    return json_pack("{s:b,s:I,s:o}", "hasKeys", total > 0, "keyCount", (json_int_t)total, "providers", provs);
}

long long llm_keys_deleted_id(const PGresult *res, int row)
{
    return strtoll(PQgetvalue(res, row, DEL_COL_ID), NULL, 10);
}

void llm_keys_prerow(const PGresult *res, int row, struct llm_key_prerow *out)
{
    out->id = PQgetvalue(res, row, PRE_COL_ID);
    out->key = PQgetvalue(res, row, PRE_COL_KEY);
    out->target = strcmp(PQgetvalue(res, row, PRE_COL_TARGET), "t") == 0;
    out->needs_fp = strcmp(PQgetvalue(res, row, PRE_COL_NEEDS_FP), "t") == 0;
    out->listed = strcmp(PQgetvalue(res, row, PRE_COL_LISTED), "t") == 0;
    out->key_md5 = PQgetvalue(res, row, PRE_COL_KEY_MD5);
}

void llm_keys_key_row(const PGresult *res, int row, const char **provider, const char **stored)
{
    *provider = PQgetvalue(res, row, VERIFY_COL_PROVIDER);
    *stored = PQgetvalue(res, row, VERIFY_COL_KEY);
}
