/* integrations/slack_webhooks_store: owns the SQL of the webhook CRUD routes (one
 * column enum per SELECT list: enum slack_webhook_col in slack_webhooks.h for the row
 * shape) and the decoding of webhook rows (slack_webhook_json, visibility). The
 * statements name public tables only: no text is formatted, every value is bound. */
#include "integrations/slack_webhooks_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pool.h"

/* $1 org, $2 admin flag, $3 user, $4 channel (NULL: any) */
static const char SQL_LIST[] =
    "SELECT " SLACK_WEBHOOK_COLS " FROM public.slack_webhooks "
    "WHERE " SLACK_SQL_ORG " = $1::int AND ($2::boolean OR user_id = $3::int) "
    "AND ($4::text IS NULL OR channel = $4::text) ORDER BY created_at DESC, id ASC";

/* $1 id, $2 org */
static const char SQL_GET[] =
    "SELECT " SLACK_WEBHOOK_COLS " FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int";

/* Existence in the caller's organization: statement 1 of the PATCH and DELETE units.
 * $1 id, $2 org */
enum { EXISTS_COL_ORG, EXISTS_COL_USER_ID };
static const char SQL_EXISTS[] =
    "SELECT " SLACK_SQL_ORG ", user_id FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int";

/* $1 id, $2 org, $3 admin flag, $4 user, $5 is_active (NULL: unchanged), $6 routing
 * types as a JSON array (NULL: unchanged). Returns the row (SLACK_WEBHOOK_COLS). */
static const char SQL_UPDATE[] =
    "WITH w AS (UPDATE public.slack_webhooks SET is_active = COALESCE($5::boolean, is_active), "
    "routing_type = CASE WHEN $6::jsonb IS NULL THEN routing_type "
    "ELSE ARRAY(SELECT jsonb_array_elements_text($6::jsonb)) END, updated_at = now() "
    "WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int AND ($3::boolean OR user_id = $4::int) "
    "RETURNING *), "
    "x AS (INSERT INTO public.integrationsd_slack_webhooks (webhook_id, deactivated_reason) "
    "SELECT id, CASE WHEN $5::boolean THEN NULL ELSE 'Deactivated by user ' || $4::text END FROM w "
    "WHERE $5::boolean IS NOT NULL ON CONFLICT (webhook_id) DO UPDATE "
    "SET deactivated_reason = EXCLUDED.deactivated_reason) "
    "SELECT " SLACK_WEBHOOK_COLS " FROM w";

/* $1 id, $2 org, $3 admin flag, $4 user */
enum { DEL_COL_ID, DEL_COL_USER_ID, DEL_COL_TEAM_ID, DEL_COL_CHANNEL_ID };
static const char SQL_DELETE[] =
    "DELETE FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int "
    "AND ($3::boolean OR user_id = $4::int) RETURNING id, user_id, team_id, channel_id";

/* Caller identity as statement parameters: org, admin flag, user. */
struct who {
    char org[24], admin[6], user[24];
};

static void who_of(const struct http_req *r, struct who *w)
{
    snprintf(w->org, sizeof w->org, "%lld", r->auth.org_id);
    snprintf(w->admin, sizeof w->admin, "%s", r->auth.is_admin ? "true" : "false");
    snprintf(w->user, sizeof w->user, "%lld", r->auth.user_id);
}

void slack_webhooks_store_list(struct http_req *r, const char *channel, app_query_done done)
{
    struct who w;
    who_of(r, &w);
    const char *params[] = {w.org, w.admin, w.user, channel};
    app_query(r, SQL_LIST, 4, params, done);
}

void slack_webhooks_store_get(struct http_req *r, const char *id, app_query_done done)
{
    struct who w;
    who_of(r, &w);
    const char *params[] = {id, w.org};
    app_query(r, SQL_GET, 2, params, done);
}

void slack_webhooks_store_update(struct http_req *r, const char *id, const struct slack_webhook_patch *p,
                                 app_query_done done)
{
    struct who w;
    who_of(r, &w);
    const char *p1[] = {id, w.org};
    const char *p2[] = {id, w.org, w.admin, w.user, p->active, p->routing};
    const struct db_stmt stmts[] = {
        {SQL_EXISTS, 2, p1},
        {SQL_UPDATE, 6, p2},
    };
    app_submit(r, stmts, 2, done);
}

void slack_webhooks_store_delete(struct http_req *r, const char *id, app_query_done done)
{
    struct who w;
    who_of(r, &w);
    const char *p1[] = {id, w.org};
    const char *p2[] = {id, w.org, w.admin, w.user};
    const struct db_stmt stmts[] = {
        {SQL_EXISTS, 2, p1},
        {SQL_DELETE, 4, p2},
    };
    app_submit(r, stmts, 2, done);
}

/* ---- decoding ------------------------------------------------------------------ */

/* PostgreSQL text[] output ({a,"b c"}) to a JSON array of strings. */
static json_t *pg_text_array(const char *s)
{
    json_t *arr = json_array();
    if (!arr || *s != '{')
        return arr;
    s++;
    char buf[1024];
    while (*s && *s != '}') {
        size_t n = 0;
        bool quoted = *s == '"', is_null = false;
        if (quoted) {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                if (n + 1 < sizeof buf)
                    buf[n++] = *s;
                s++;
            }
            if (*s == '"')
                s++;
        } else {
            const char *start = s;
            while (*s && *s != ',' && *s != '}') {
                if (n + 1 < sizeof buf)
                    buf[n++] = *s;
                s++;
            }
            is_null = (size_t)(s - start) == 4 && strncmp(start, "NULL", 4) == 0;
        }
        buf[n] = '\0';
        json_array_append_new(arr, is_null ? json_null() : json_string(buf));
        if (*s == ',')
            s++;
    }
    return arr;
}

static json_t *col_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static json_t *col_str(const PGresult *res, int row, int col)
{
    return json_string(PQgetvalue(res, row, col));
}

json_t *slack_webhook_json(const PGresult *res, int row, int off)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", col_int(res, row, off + SLACK_WH_COL_ID));
    json_object_set_new(o, "scope", col_str(res, row, off + SLACK_WH_COL_SCOPE));
    json_object_set_new(o, "user_id", col_int(res, row, off + SLACK_WH_COL_USER_ID));
    json_object_set_new(o, "team_name", col_str(res, row, off + SLACK_WH_COL_TEAM_NAME));
    json_object_set_new(o, "team_id", col_str(res, row, off + SLACK_WH_COL_TEAM_ID));
    json_object_set_new(o, "channel", col_str(res, row, off + SLACK_WH_COL_CHANNEL));
    json_object_set_new(o, "channel_id", col_str(res, row, off + SLACK_WH_COL_CHANNEL_ID));
    json_object_set_new(o, "created_at", col_str(res, row, off + SLACK_WH_COL_CREATED_AT));
    json_object_set_new(o, "is_active", json_boolean(PQgetvalue(res, row, off + SLACK_WH_COL_IS_ACTIVE)[0] == 't'));
    int rt = off + SLACK_WH_COL_ROUTING_TYPE;
    json_object_set_new(o, "routing_type",
                        PQgetisnull(res, row, rt) ? json_null() : pg_text_array(PQgetvalue(res, row, rt)));
    return o;
}

json_t *slack_webhooks_rows_json(const PGresult *res)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, slack_webhook_json(res, i, 0));
    return arr;
}

int slack_webhook_access(const struct http_req *r, const PGresult *res, int row, int org_col, int user_col)
{
    if (row >= PQntuples(res) || PQgetisnull(res, row, org_col) ||
        strtoll(PQgetvalue(res, row, org_col), NULL, 10) != r->auth.org_id)
        return 404;
    if (r->auth.is_admin)
        return 0;
    if (!PQgetisnull(res, row, user_col) && strtoll(PQgetvalue(res, row, user_col), NULL, 10) == r->auth.user_id)
        return 0;
    return 403;
}

static enum slack_wh_err access_err(int acc)
{
    return acc == 0 ? SLACK_WH_OK : acc == 403 ? SLACK_WH_ERR_FORBIDDEN : SLACK_WH_ERR_NOT_FOUND;
}

enum slack_wh_err slack_webhooks_get_outcome(const struct http_req *r, const PGresult *res)
{
    return access_err(slack_webhook_access(r, res, 0, SLACK_WH_COL_ORG, SLACK_WH_COL_USER_ID));
}

enum slack_wh_err slack_webhooks_unit_outcome(const struct http_req *r, const struct db_result *res)
{
    if (res->n < 2 || !res->res[0] || !res->res[1])
        return SLACK_WH_ERR_INTERNAL;
    if (PQntuples(res->res[1]) == 1)
        return SLACK_WH_OK;
    enum slack_wh_err e = access_err(slack_webhook_access(r, res->res[0], 0, EXISTS_COL_ORG, EXISTS_COL_USER_ID));
    return e == SLACK_WH_OK ? SLACK_WH_ERR_NOT_FOUND : e;
}

json_t *slack_webhooks_deleted_event(const PGresult *res)
{
    return json_pack("{s:I,s:o,s:s,s:s}", "id", (json_int_t)strtoll(PQgetvalue(res, 0, DEL_COL_ID), NULL, 10),
                     "user_id", col_int(res, 0, DEL_COL_USER_ID), "team_id", PQgetvalue(res, 0, DEL_COL_TEAM_ID),
                     "channel_id", PQgetvalue(res, 0, DEL_COL_CHANNEL_ID));
}

long long slack_webhooks_row_org(const PGresult *res, int row)
{
    if (row >= PQntuples(res) || PQgetisnull(res, row, SLACK_WH_COL_ORG))
        return 0;
    return strtoll(PQgetvalue(res, row, SLACK_WH_COL_ORG), NULL, 10);
}
