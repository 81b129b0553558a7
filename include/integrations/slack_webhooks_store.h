/* integrations/slack_webhooks_store: the SQL of the webhook CRUD routes on
 * public.slack_webhooks (rows the caller may see: its organization's; the caller's
 * own unless an Admin) and the decoding of their results. The row shape and the
 * helpers the other Slack modules share (slack_webhook_json, slack_webhook_access)
 * are declared in slack_webhooks.h and defined here. Statement functions submit for r
 * (done runs as with app_query). */
#ifndef IDX_INTEGRATIONS_SLACK_WEBHOOKS_STORE_H
#define IDX_INTEGRATIONS_SLACK_WEBHOOKS_STORE_H
#include <jansson.h>
#include <libpq-fe.h>

#include "app.h"
#include "integrations/slack_webhooks.h"

struct db_result;

/* The rows the caller may see, newest first; on channel only when not NULL. */
void slack_webhooks_store_list(struct http_req *r, const char *channel, app_query_done done);
/* Row id if in the caller's organization (the caller's or not: see slack_webhook_access). */
void slack_webhooks_store_get(struct http_req *r, const char *id, app_query_done done);
/* One transaction: row id's existence in the organization, then the change p if the
 * caller may make it (RETURNING the row). */
void slack_webhooks_store_update(struct http_req *r, const char *id, const struct slack_webhook_patch *p,
                                 app_query_done done);
/* The same shape for deleting row id (RETURNING what slack_webhooks_deleted_event reads). */
void slack_webhooks_store_delete(struct http_req *r, const char *id, app_query_done done);

/* The outcome of an update or delete unit: SLACK_WH_OK (the changed row is the last
 * result's row 0), _FORBIDDEN, _NOT_FOUND, or _INTERNAL for a result without its two
 * statements. */
enum slack_wh_err slack_webhooks_unit_outcome(const struct http_req *r, const struct db_result *res) MUSTCHECK;
/* The visibility of row 0 of slack_webhooks_store_get: SLACK_WH_OK, _FORBIDDEN, _NOT_FOUND. */
enum slack_wh_err slack_webhooks_get_outcome(const struct http_req *r, const PGresult *res) MUSTCHECK;
/* All rows as reference webhook objects. */
json_t *slack_webhooks_rows_json(const PGresult *res);
/* The data of slack.webhook.deleted from a delete unit's last result. */
json_t *slack_webhooks_deleted_event(const PGresult *res);
/* The organization of a deactivated row (SLACK_SQL_DEACTIVATE's result), 0 when none. */
long long slack_webhooks_row_org(const PGresult *res, int row) MUSTCHECK;

#endif
