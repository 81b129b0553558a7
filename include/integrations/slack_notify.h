/* integrations/slack_notify: notifications routed to Slack (SPEC sections 5 and 6):
 * POST /api/notifications and the Redis `<prefix>notify` channel both send to the
 * active webhooks of the organization (of one user, when given) whose routing types
 * include the notification's. Each delivery is a row of public.slack_deliveries
 * (unique per webhook and idempotency key), sent at most once a second per webhook
 * from a bounded in-memory queue, retried with backoff on 429 / 5xx / timeouts, and
 * its outcome published (slack.message.sent / slack.message.failed). Deliveries
 * still pending when the process stops stay pending in the table; a lease lets the
 * next start (or another instance) resume them. */
#ifndef IDX_INTEGRATIONS_SLACK_NOTIFY_H
#define IDX_INTEGRATIONS_SLACK_NOTIFY_H
#include "http/request.h"
#include "util/compiler.h"

struct app;
struct notify_msg;

void slack_notifications_post(struct http_req *r);

/* app->on_notify: set before app_init. */
void slack_on_notify(const struct notify_msg *m, void *app);

/* The lease and resume timer. start returns 0 or -1; stop cancels and frees
 * everything in memory (rows stay pending). */
int slack_notify_start(struct app *a) MUSTCHECK;
void slack_notify_stop(void);

#endif
