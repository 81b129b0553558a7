/* integrations/github_store: owns the SQL of the GitHub token routes (templates on
 * the tenant's github_tokens, one column enum per SELECT list) and the decoding of
 * their rows. Values are always bound as parameters; only the quoted tenant table
 * name is formatted into the text, and a text that does not fit is refused. */
#include "integrations/github_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "db/pool.h"
#include "http/reply.h"
#include "integrations/handler.h"

#define TOKENS "github_tokens"
#define DEFAULT_NAME "GitHub Personal Access Token"

/* The status row: every statement that answers with the token's status selects it. */
enum { STATUS_COL_NAME, STATUS_COL_CREATED_AT, STATUS_COL_LAST_USED_AT };
#define STATUS_COLS                                                                                \
    "token_name, "                                                                                 \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "               \
    "to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* %s: tokens */
static const char SQL_STATUS[] = "SELECT " STATUS_COLS " FROM %s ORDER BY created_at DESC, id DESC LIMIT 1";

/* $1 the lock's name: serializes savers of a tenant (across instances too). */
static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext($1))";
/* %s: tokens (3 times); $1 ciphertext, $2 name (NULL: keep), $3 the saving user.
 * One row per tenant: the newest row is updated, or a row inserted when there is none. */
static const char SQL_SAVE[] =
    "WITH latest AS (SELECT id FROM %s ORDER BY created_at DESC, id DESC LIMIT 1), "
    "upd AS (UPDATE %s SET encrypted_token = $1, token_name = COALESCE($2, token_name), "
    "updated_at = NOW() WHERE id IN (SELECT id FROM latest) RETURNING *), "
    "ins AS (INSERT INTO %s (encrypted_token, token_name, created_by) "
    "SELECT $1, COALESCE($2, '" DEFAULT_NAME "'), $3::int WHERE NOT EXISTS (SELECT 1 FROM latest) "
    "RETURNING *) "
    "SELECT " STATUS_COLS " FROM (SELECT * FROM upd UNION ALL SELECT * FROM ins) s";

/* %s: tokens */
static const char SQL_DELETE[] = "DELETE FROM %s RETURNING id";

/* %s: tokens */
enum { STORED_COL_ID, STORED_COL_TOKEN };
static const char SQL_STORED[] = "SELECT id, encrypted_token FROM %s ORDER BY created_at DESC, id DESC LIMIT 1";

/* %s: tokens; $1 id */
static const char SQL_TOUCH[] = "UPDATE %s SET last_used_at = NOW(), updated_at = NOW() WHERE id = $1::int";

void github_store_status(struct http_req *r, app_query_done done)
{
    char t[64], sql[384];
    if (handler_table(r, TOKENS, t, sizeof t) < 0 || handler_sql(r, sql, sizeof sql, SQL_STATUS, t) < 0)
        return;
    app_query(r, sql, 0, NULL, done);
}

void github_store_save(struct http_req *r, const char *enc, const char *name, app_query_done done)
{
    char t[64], sql[1024], lock[64], user[24];
    if (handler_table(r, TOKENS, t, sizeof t) < 0 || handler_sql(r, sql, sizeof sql, SQL_SAVE, t, t, t) < 0)
        return;
    snprintf(lock, sizeof lock, "integrationsd:github:%s", r->auth.tenant); /* a valid tenant: fits */
    snprintf(user, sizeof user, "%lld", r->auth.user_id);
    const char *lock_params[] = {lock};
    const char *params[] = {enc, name, user};
    const struct db_stmt stmts[] = {
        {SQL_LOCK, 1, lock_params},
        {sql, 3, params},
    };
    app_submit(r, stmts, 2, done);
}

void github_store_delete(struct http_req *r, app_query_done done)
{
    char t[64], sql[128];
    if (handler_table(r, TOKENS, t, sizeof t) < 0 || handler_sql(r, sql, sizeof sql, SQL_DELETE, t) < 0)
        return;
    app_query(r, sql, 0, NULL, done);
}

void github_store_stored(struct http_req *r, app_query_done done)
{
    char t[64], sql[160];
    if (handler_table(r, TOKENS, t, sizeof t) < 0 || handler_sql(r, sql, sizeof sql, SQL_STORED, t) < 0)
        return;
    app_query(r, sql, 0, NULL, done);
}

void github_store_touch(struct http_req *r, const char *id, app_query_done done)
{
    char t[64], sql[160];
    if (handler_table(r, TOKENS, t, sizeof t) < 0 || handler_sql(r, sql, sizeof sql, SQL_TOUCH, t) < 0)
        return;
    const char *params[] = {id};
    app_query(r, sql, 1, params, done);
}

/* ---- decoding ------------------------------------------------------------------ */

json_t *github_status_json(const PGresult *res)
{
    if (PQntuples(res) == 0)
        return json_pack("{s:b}", "configured", 0);
    json_t *o = json_pack("{s:b}", "configured", 1);
    if (!PQgetisnull(res, 0, STATUS_COL_NAME))
        json_object_set_new(o, "token_name", json_string(PQgetvalue(res, 0, STATUS_COL_NAME)));
    if (!PQgetisnull(res, 0, STATUS_COL_LAST_USED_AT))
        json_object_set_new(o, "last_used_at", json_string(PQgetvalue(res, 0, STATUS_COL_LAST_USED_AT)));
    if (!PQgetisnull(res, 0, STATUS_COL_CREATED_AT))
        json_object_set_new(o, "created_at", json_string(PQgetvalue(res, 0, STATUS_COL_CREATED_AT)));
    return o;
}

const char *github_status_name(const PGresult *res)
{
    return PQntuples(res) && !PQgetisnull(res, 0, STATUS_COL_NAME) ? PQgetvalue(res, 0, STATUS_COL_NAME) : NULL;
}

void github_stored_row(const PGresult *res, int row, const char **id, const char **enc)
{
    *id = PQgetvalue(res, row, STORED_COL_ID);
    *enc = PQgetvalue(res, row, STORED_COL_TOKEN);
}
