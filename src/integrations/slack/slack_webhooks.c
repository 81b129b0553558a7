/* integrations/slack_webhooks: owns the webhook CRUD routes (both path spellings),
 * each check (slack_webhooks_check.c) -> statement(s) (slack_webhooks_store.c) ->
 * event -> reply:
 *   list:   channel filter -> visible rows -> envelope
 *   get:    the row if in the caller's organization -> ownership -> 200 / 403 / 404
 *   patch:  body (is_active bool, routing_type array of the five values, one of them
 *           present) -> [existence in the organization; guarded UPDATE] as one
 *           transaction -> 202 / 403 / 404 -> slack.webhook.updated
 *   delete: same shape -> 204 / 403 / 404 -> slack.webhook.deleted
 * and the helpers the other Slack modules share: the id parameter, the deactivation
 * event. routing_type reaches SQL as one JSON parameter turned into text[] by
 * PostgreSQL. */
#include "integrations/slack_webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth/tenant.h"
#include "db/pool.h"
#include "http/reply.h"
#include "integrations/handler.h"
#include "integrations/slack_webhooks_store.h"
#include "log.h"

static void reply_err(struct http_req *r, enum slack_wh_err e)
{
    const char *msg = slack_webhooks_err_message(e);
    if (msg)
        reply_text(r, slack_webhooks_err_status(e), msg);
    else
        reply_internal(r);
}

static void reply_failure(struct http_req *r, const struct db_result *res, const char *what)
{
    reply_sql_failure(r, res, "slack webhooks", what);
}

int slack_parse_id(struct http_req *r, char buf[24])
{
    if (handler_id_param(r, "id", buf) < 0) {
        reply_err(r, SLACK_WH_ERR_BAD_ID);
        return -1;
    }
    return 0;
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
    long long org = PQntuples(res) == 1 ? slack_webhooks_row_org(res, 0) : 0;
    if (org == 0)
        return;
    json_t *d = slack_webhook_json(res, 0, 0);
    json_object_set_new(d, "deactivated_reason", json_string(reason));
    webhook_event(a, "slack.webhook.updated", org, actor, d);
}

/* ---- GET / ---------------------------------------------------------------------- */

static void on_list(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "list");
        return;
    }
    reply_data(r, 200, slack_webhooks_rows_json(db_last(res)));
}

void slack_webhooks_list(struct http_req *r)
{
    /* userId (VerifyWise trusts it) is ignored: the caller's identity decides. */
    char channel[2048]; /* the server refuses longer URIs */
    int n = http_req_query(r, "channel", channel, sizeof channel);
    if (n >= 0) {
        enum slack_wh_err e = slack_webhooks_check_channel(channel, (size_t)n);
        if (e != SLACK_WH_OK) {
            reply_err(r, e);
            return;
        }
    }
    slack_webhooks_store_list(r, n >= 0 ? channel : NULL, on_list);
}

/* ---- GET /:id ------------------------------------------------------------------- */

static void on_get(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "get");
        return;
    }
    const PGresult *pr = db_last(res);
    enum slack_wh_err e = slack_webhooks_get_outcome(r, pr);
    if (e != SLACK_WH_OK)
        reply_err(r, e);
    else
        reply_data(r, 200, slack_webhook_json(pr, 0, 0));
}

void slack_webhooks_get(struct http_req *r)
{
    char id[HANDLER_ID_TEXT];
    if (slack_parse_id(r, id) < 0)
        return;
    slack_webhooks_store_get(r, id, on_get);
}

/* ---- PATCH /:id ----------------------------------------------------------------- */

static void on_updated(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "update");
        return;
    }
    enum slack_wh_err e = slack_webhooks_unit_outcome(r, res);
    if (e != SLACK_WH_OK) {
        reply_err(r, e);
        return;
    }
    const PGresult *pr = db_last(res);
    webhook_event(r->app, "slack.webhook.updated", r->auth.org_id, r->auth.user_id, slack_webhook_json(pr, 0, 0));
    reply_data(r, 202, slack_webhook_json(pr, 0, 0));
}

void slack_webhooks_update(struct http_req *r)
{
    char id[HANDLER_ID_TEXT];
    if (slack_parse_id(r, id) < 0)
        return;
    struct slack_webhook_patch p;
    enum slack_wh_err e = slack_webhooks_check_patch(r->json, &p);
    if (e != SLACK_WH_OK) {
        reply_err(r, e);
        return;
    }
    slack_webhooks_store_update(r, id, &p, on_updated);
    slack_webhook_patch_clear(&p);
}

/* ---- DELETE /:id ---------------------------------------------------------------- */

static void on_deleted(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        reply_failure(r, res, "delete");
        return;
    }
    enum slack_wh_err e = slack_webhooks_unit_outcome(r, res);
    if (e != SLACK_WH_OK) {
        reply_err(r, e);
        return;
    }
    webhook_event(r->app, "slack.webhook.deleted", r->auth.org_id, r->auth.user_id,
                  slack_webhooks_deleted_event(db_last(res)));
    http_req_send(r, 204, NULL, NULL);
}

void slack_webhooks_delete(struct http_req *r)
{
    char id[HANDLER_ID_TEXT];
    if (slack_parse_id(r, id) < 0)
        return;
    slack_webhooks_store_delete(r, id, on_deleted);
}
