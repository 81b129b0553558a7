/* integrations/slack_webhooks: owns the webhook CRUD routes (both path spellings)
 * and the row helpers shared by the Slack modules:
 *   list:   visibility predicate (+ exact channel) -> rows -> envelope
 *   get:    the row if in the caller's organization -> ownership -> 200 / 403 / 404
 *   patch:  validate (is_active bool, routing_type array of the five values, one of
 *           them present) -> [existence in the organization; guarded UPDATE] as one
 *           transaction -> 202 / 403 / 404 -> slack.webhook.updated
 *   delete: same shape -> 204 / 403 / 404 -> slack.webhook.deleted
 * routing_type reaches SQL as one JSON parameter turned into text[] by PostgreSQL. */
#include "integrations/slack_webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth/tenant.h"
#include "db/pool.h"
#include "http/reply.h"
#include "log.h"
#include "util/json.h"

#define CHANNEL_MAX 255
#define ROUTING_MAX_ITEMS 32

const char *const slack_routing_types[SLACK_ROUTING_TYPES] = {
    "Membership and roles",        "Projects and organizations", "Policy reminders and status",
    "Evidence and task alerts",    "Control or policy changes",
};

bool slack_routing_type_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < SLACK_ROUTING_TYPES; i++)
        if (strlen(slack_routing_types[i]) == len && memcmp(slack_routing_types[i], s, len) == 0)
            return true;
    return false;
}

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

json_t *slack_webhook_json(const PGresult *res, int row, int off)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", col_int(res, row, off + 0));
    json_object_set_new(o, "scope", json_string(PQgetvalue(res, row, off + 1)));
    json_object_set_new(o, "user_id", col_int(res, row, off + 2));
    json_object_set_new(o, "team_name", json_string(PQgetvalue(res, row, off + 3)));
    json_object_set_new(o, "team_id", json_string(PQgetvalue(res, row, off + 4)));
    json_object_set_new(o, "channel", json_string(PQgetvalue(res, row, off + 5)));
    json_object_set_new(o, "channel_id", json_string(PQgetvalue(res, row, off + 6)));
    json_object_set_new(o, "created_at", json_string(PQgetvalue(res, row, off + 7)));
    json_object_set_new(o, "is_active", json_boolean(PQgetvalue(res, row, off + 8)[0] == 't'));
    json_object_set_new(o, "routing_type", PQgetisnull(res, row, off + 9)
                                               ? json_null()
                                               : pg_text_array(PQgetvalue(res, row, off + 9)));
    return o;
}

int slack_parse_id(struct http_req *r, char buf[24])
{
    const char *v;
    int len = route_param(&r->params, "id", &v);
    long long id = 0;
    bool ok = len >= 1 && len <= 10 && v[0] != '0';
    for (int i = 0; ok && i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            ok = false;
        else
            id = id * 10 + (v[i] - '0');
    }
    if (!ok || id > 2147483647LL) {
        reply_text(r, 400, SLACK_MSG_BAD_ID);
        return -1;
    }
    snprintf(buf, 24, "%lld", id);
    return 0;
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

static void webhook_event(struct app *a, const char *type, long long org, long long actor, json_t *data)
{
    char tenant[TENANT_HASH_LEN + 1];
    if (tenant_hash(org, tenant) < 0) {
        json_decref(data);
        return;
    }
    app_event(a, type, org, tenant, actor, data);
}

void slack_event_deactivated(struct app *a, const PGresult *res, const char *reason, long long actor)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 10))
        return;
    json_t *d = slack_webhook_json(res, 0, 0);
    json_object_set_new(d, "deactivated_reason", json_string(reason));
    webhook_event(a, "slack.webhook.updated", strtoll(PQgetvalue(res, 0, 10), NULL, 10), actor, d);
}

static void sql_failure(struct http_req *r, const struct db_result *res, const char *what)
{
    log_error("slack webhooks: %s failed: %s (%s)", what, res->message, res->sqlstate);
    reply_internal(r);
}

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

/* ---- GET / ---------------------------------------------------------------------- */

static void on_list(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "list");
        return;
    }
    const PGresult *pr = db_last(res);
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(pr); i++)
        json_array_append_new(arr, slack_webhook_json(pr, i, 0));
    reply_data(r, 200, arr);
}

void slack_webhooks_list(struct http_req *r)
{
    /* userId (VerifyWise trusts it) is ignored: the caller's identity decides. */
    char channel[2048]; /* the server refuses longer URIs */
    const char *ch = NULL;
    int n = http_req_query(r, "channel", channel, sizeof channel);
    if (n >= 0 && utf8_length(channel, (size_t)n) > CHANNEL_MAX) {
        reply_text(r, 400, "channel must be at most 255 characters");
        return;
    }
    if (n >= 0)
        ch = channel;
    struct who w;
    who_of(r, &w);
    const char *params[] = {w.org, w.admin, w.user, ch};
    app_query(r,
              "SELECT " SLACK_WEBHOOK_COLS " FROM public.slack_webhooks "
              "WHERE " SLACK_SQL_ORG " = $1::int AND ($2::boolean OR user_id = $3::int) "
              "AND ($4::text IS NULL OR channel = $4::text) ORDER BY created_at DESC, id ASC",
              4, params, on_list);
}

/* ---- GET /:id ------------------------------------------------------------------- */

static void on_get(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "get");
        return;
    }
    const PGresult *pr = db_last(res);
    int acc = slack_webhook_access(r, pr, 0, 10, 2);
    if (acc == 404)
        reply_text(r, 404, SLACK_MSG_NOT_FOUND);
    else if (acc == 403)
        reply_text(r, 403, "Unauthorized");
    else
        reply_data(r, 200, slack_webhook_json(pr, 0, 0));
}

void slack_webhooks_get(struct http_req *r)
{
    char id[24];
    if (slack_parse_id(r, id) < 0)
        return;
    struct who w;
    who_of(r, &w);
    const char *params[] = {id, w.org};
    app_query(r,
              "SELECT " SLACK_WEBHOOK_COLS " FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG
              " = $2::int",
              2, params, on_get);
}

/* ---- PATCH /:id ----------------------------------------------------------------- */

/* Existence in the caller's organization: statement 1 of the PATCH and DELETE units. */
static const char SQL_EXISTS[] =
    "SELECT " SLACK_SQL_ORG ", user_id FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int";

/* 2xx, 403 or 404 for a two-statement unit (existence, then the guarded change). */
static int unit_outcome(const struct http_req *r, const struct db_result *res)
{
    if (res->n < 2 || !res->res[0] || !res->res[1])
        return 500;
    if (PQntuples(res->res[1]) == 1)
        return 0;
    int acc = slack_webhook_access(r, res->res[0], 0, 0, 1);
    return acc ? acc : 404;
}

/* Answer 403/404/500 for a guarded unit that did not apply; false when it did. */
static bool reply_unit_failure(struct http_req *r, const struct db_result *res)
{
    switch (unit_outcome(r, res)) {
    case 0:
        return false;
    case 403:
        reply_text(r, 403, "Unauthorized");
        return true;
    case 404:
        reply_text(r, 404, SLACK_MSG_NOT_FOUND);
        return true;
    default:
        reply_internal(r);
        return true;
    }
}

static void on_updated(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "update");
        return;
    }
    if (reply_unit_failure(r, res))
        return;
    const PGresult *pr = res->res[1];
    webhook_event(r->app, "slack.webhook.updated", r->auth.org_id, r->auth.user_id, slack_webhook_json(pr, 0, 0));
    reply_data(r, 202, slack_webhook_json(pr, 0, 0));
}

/* routing_type of a PATCH body as a JSON array text (validated, duplicates dropped);
 * replies 400 and returns NULL when invalid. *absent when the field is not there. */
static char *routing_param(struct http_req *r, bool *absent)
{
    json_t *v = json_object_get(r->json, "routing_type");
    *absent = v == NULL;
    if (!v)
        return NULL;
    if (!json_is_array(v) || json_array_size(v) > ROUTING_MAX_ITEMS) {
        reply_text(r, 400, "routing_type must be an array of routing types");
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        if (!json_is_string(it) || !slack_routing_type_valid(json_string_value(it), json_string_length(it))) {
            json_decref(out);
            reply_text(r, 400, json_is_string(it) ? SLACK_MSG_BAD_ROUTING
                                                   : "routing_type must be an array of routing types");
            return NULL;
        }
        bool dup = false;
        size_t j;
        json_t *o;
        json_array_foreach(out, j, o) if (json_equal(o, it)) dup = true;
        if (!dup)
            json_array_append(out, it);
    }
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (!s)
        reply_internal(r);
    return s;
}

void slack_webhooks_update(struct http_req *r)
{
    char id[24];
    if (slack_parse_id(r, id) < 0)
        return;
    json_t *act = json_object_get(r->json, "is_active");
    if (act && !json_is_boolean(act)) {
        reply_text(r, 400, "is_active must be a boolean");
        return;
    }
    bool no_routing;
    char *routing = routing_param(r, &no_routing);
    if (!routing && !no_routing)
        return;
    if (!act && no_routing) {
        reply_text(r, 400, "Nothing to update: give is_active and/or routing_type");
        return;
    }
    struct who w;
    who_of(r, &w);
    const char *active = act ? (json_is_true(act) ? "true" : "false") : NULL;
    const char *p1[] = {id, w.org};
    const char *p2[] = {id, w.org, w.admin, w.user, active, routing};
    const struct db_stmt stmts[] = {
        {SQL_EXISTS, 2, p1},
        {"WITH w AS (UPDATE public.slack_webhooks SET is_active = COALESCE($5::boolean, is_active), "
         "routing_type = CASE WHEN $6::jsonb IS NULL THEN routing_type "
         "ELSE ARRAY(SELECT jsonb_array_elements_text($6::jsonb)) END, updated_at = now() "
         "WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int AND ($3::boolean OR user_id = $4::int) "
         "RETURNING *), "
         "x AS (INSERT INTO public.integrationsd_slack_webhooks (webhook_id, deactivated_reason) "
         "SELECT id, CASE WHEN $5::boolean THEN NULL ELSE 'Deactivated by user ' || $4::text END FROM w "
         "WHERE $5::boolean IS NOT NULL ON CONFLICT (webhook_id) DO UPDATE "
         "SET deactivated_reason = EXCLUDED.deactivated_reason) "
         "SELECT " SLACK_WEBHOOK_COLS " FROM w",
         6, p2},
    };
    app_submit(r, stmts, 2, on_updated);
    free(routing);
}

/* ---- DELETE /:id ---------------------------------------------------------------- */

static void on_deleted(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        sql_failure(r, res, "delete");
        return;
    }
    if (reply_unit_failure(r, res))
        return;
    const PGresult *pr = res->res[1];
    webhook_event(r->app, "slack.webhook.deleted", r->auth.org_id, r->auth.user_id,
                  json_pack("{s:I,s:o,s:s,s:s}", "id", (json_int_t)strtoll(PQgetvalue(pr, 0, 0), NULL, 10),
                            "user_id", col_int(pr, 0, 1), "team_id", PQgetvalue(pr, 0, 2), "channel_id",
                            PQgetvalue(pr, 0, 3)));
    http_req_send(r, 204, NULL, NULL);
}

void slack_webhooks_delete(struct http_req *r)
{
    char id[24];
    if (slack_parse_id(r, id) < 0)
        return;
    struct who w;
    who_of(r, &w);
    const char *p1[] = {id, w.org};
    const char *p2[] = {id, w.org, w.admin, w.user};
    const struct db_stmt stmts[] = {
        {SQL_EXISTS, 2, p1},
        {"DELETE FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int "
         "AND ($3::boolean OR user_id = $4::int) RETURNING id, user_id, team_id, channel_id",
         4, p2},
    };
    app_submit(r, stmts, 2, on_deleted);
}
