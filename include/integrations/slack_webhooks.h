/* integrations/slack_webhooks: /api/slackWebhooks and /api/slack-webhooks (reference
 * 1.3 and 3.5, fixed per SPEC section 4): list, get, update and delete of the rows of
 * public.slack_webhooks the caller may see (its own; all of its organization's for an
 * Admin; another organization's are 404), and the helpers the other Slack modules
 * share: the routing types, the id parameter, the row shape, the visibility check
 * and the deactivation statement. Tokens and URLs are never returned. The checks of a
 * request (id, channel, create and PATCH bodies) are pure, with one table of refusals. */
#ifndef IDX_INTEGRATIONS_SLACK_WEBHOOKS_H
#define IDX_INTEGRATIONS_SLACK_WEBHOOKS_H
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include "http/request.h"
#include "util/compiler.h"

void slack_webhooks_list(struct http_req *r);
void slack_webhooks_get(struct http_req *r);
void slack_webhooks_update(struct http_req *r);
void slack_webhooks_delete(struct http_req *r);

/* The five routing types of VerifyWise (reference 3.5). */
#define SLACK_ROUTING_TYPES 5
extern const char *const slack_routing_types[SLACK_ROUTING_TYPES];
bool slack_routing_type_valid(const char *s, size_t len);
/* The 400 message for an unknown routing type. */
#define SLACK_MSG_BAD_ROUTING                                                                      \
    "Invalid routing type. Must be one of: Membership and roles, Projects and organizations, "   \
    "Policy reminders and status, Evidence and task alerts, Control or policy changes"
#define SLACK_MSG_BAD_ID "Valid ID is required (must be >= 1)"
#define SLACK_MSG_NOT_FOUND "Slack Webhook not found"

/* A row's organization (integrationsd's own record of it in
 * public.integrationsd_slack_webhooks, else its owner's): rows VerifyWise writes
 * have no row of integrationsd's. Use it unqualified on public.slack_webhooks. */
#define SLACK_SQL_ORG "public.integrationsd_slack_org(id, user_id)"

/* The columns every row-returning statement selects, in the order
 * slack_webhook_json reads them: VerifyWise's columns, then the organization
 * (SLACK_WEBHOOK_COLS_ORG gives it as another expression, e.g. a parameter). */
#define SLACK_WEBHOOK_COLS_ORG(org)                                                                \
    "id, scope, user_id, team_name, team_id, channel, channel_id, "                              \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                \
    "is_active, routing_type, " org
#define SLACK_WEBHOOK_COLS SLACK_WEBHOOK_COLS_ORG(SLACK_SQL_ORG)
/* Their indexes (from the first of them). */
enum slack_webhook_col {
    SLACK_WH_COL_ID,
    SLACK_WH_COL_SCOPE,
    SLACK_WH_COL_USER_ID,
    SLACK_WH_COL_TEAM_NAME,
    SLACK_WH_COL_TEAM_ID,
    SLACK_WH_COL_CHANNEL,
    SLACK_WH_COL_CHANNEL_ID,
    SLACK_WH_COL_CREATED_AT,
    SLACK_WH_COL_IS_ACTIVE,
    SLACK_WH_COL_ROUTING_TYPE,
    SLACK_WH_COL_ORG,
    SLACK_WEBHOOK_NCOLS
};

/* The reference webhook object of row i (starting at column off). */
json_t *slack_webhook_json(const PGresult *res, int row, int off);

/* The path's :id as canonical text (positive int4). Replies 400 and returns -1 when
 * invalid. */
int slack_parse_id(struct http_req *r, char buf[24]) MUSTCHECK;

/* Visibility of a row to the caller, given its organization and owner columns:
 * 0 visible, 403 same organization but not the caller's (and not an Admin), 404. */
int slack_webhook_access(const struct http_req *r, const PGresult *res, int row, int org_col, int user_col)
    MUSTCHECK;

/* Parameters $1 id, $2 reason: set inactive with that reason, RETURNING the columns. */
#define SLACK_SQL_DEACTIVATE                                                                       \
    "WITH w AS (UPDATE public.slack_webhooks SET is_active = false, updated_at = now() "         \
    "WHERE id = $1::int AND is_active RETURNING *), "                                            \
    "x AS (INSERT INTO public.integrationsd_slack_webhooks (webhook_id, deactivated_reason) "    \
    "SELECT id, $2::text FROM w ON CONFLICT (webhook_id) DO UPDATE "                             \
    "SET deactivated_reason = EXCLUDED.deactivated_reason) "                                      \
    "SELECT " SLACK_WEBHOOK_COLS " FROM w"

/* Every way a webhook request is refused, in the order the checks run. Each maps to
 * one status and one message (slack_webhooks_err_status / _message: the table in
 * slack_webhooks_check.c; a NULL message is the generic 500). */
enum slack_wh_err {
    SLACK_WH_OK = 0,
    SLACK_WH_ERR_BAD_ID,           /* the :id path parameter */
    SLACK_WH_ERR_USER_ID,          /* create: userId present, not null, not an integer >= 1 */
    SLACK_WH_ERR_CODE_TYPE,        /* create: code not a string, or with a NUL */
    SLACK_WH_ERR_CODE_REQUIRED,    /* create: code missing, null or empty */
    SLACK_WH_ERR_CODE_TOO_LONG,    /* create: code over SLACK_CODE_MAX bytes */
    SLACK_WH_ERR_CHANNEL_TOO_LONG, /* the list's channel filter */
    SLACK_WH_ERR_ACTIVE_TYPE,      /* PATCH: is_active not a boolean */
    SLACK_WH_ERR_ROUTING_SHAPE,    /* PATCH: routing_type not an array of strings, or too long */
    SLACK_WH_ERR_ROUTING_VALUE,    /* PATCH: a string that is not a routing type */
    SLACK_WH_ERR_NOTHING,          /* PATCH: neither is_active nor routing_type */
    SLACK_WH_ERR_FORBIDDEN,        /* the caller's organization's, not the caller's */
    SLACK_WH_ERR_NOT_FOUND,        /* absent, or another organization's */
    SLACK_WH_ERR_INTERNAL,         /* out of memory, a unit without its results */
    SLACK_WH_ERR_COUNT
};
int slack_webhooks_err_status(enum slack_wh_err e);
const char *slack_webhooks_err_message(enum slack_wh_err e);

#define SLACK_CHANNEL_MAX 255      /* channel filter, in code points */
#define SLACK_ROUTING_MAX_ITEMS 32 /* routing_type entries in a PATCH */
#define SLACK_CODE_MAX 512         /* the OAuth code of a create, in bytes */

/* Check a create (POST /api/slack-webhooks) body: userId, then the OAuth code. On
 * SLACK_WH_OK *code points into the body (*len bytes, no NUL inside); otherwise
 * *code is NULL. A userId other than the caller's is accepted (and ignored). */
enum slack_wh_err slack_webhooks_check_create(const json_t *body, const char **code, size_t *len) MUSTCHECK;

/* The list's channel filter (len bytes of valid UTF-8). */
enum slack_wh_err slack_webhooks_check_channel(const char *channel, size_t len) MUSTCHECK;

/* A checked PATCH body: active "true"/"false" (NULL: unchanged); routing the
 * routing types as a JSON array text, duplicates dropped (NULL: unchanged), owned:
 * release with slack_webhook_patch_clear. */
struct slack_webhook_patch {
    const char *active;
    char *routing;
};
/* Check a PATCH body. On SLACK_WH_OK *out holds the change; otherwise it is empty. */
enum slack_wh_err slack_webhooks_check_patch(const json_t *body, struct slack_webhook_patch *out) MUSTCHECK;
void slack_webhook_patch_clear(struct slack_webhook_patch *p);

/* slack.webhook.updated for a deactivation (no secret in it). */
void slack_event_deactivated(struct app *a, const PGresult *res, const char *reason, long long actor);

#endif
