/* integrations/slack: the Slack integration as app and main see it: its route
 * handlers (slack_webhooks.h, slack_oauth.h, slack_send.h, slack_notify.h) and its
 * background work (token rotation, notification deliveries), started after app_init
 * and stopped before app_free. Inside (src/integrations/slack/): every Slack post, of
 * the send route and of the deliveries, is one slack_post machine (slack_post.h); the
 * SQL and the decoding of its rows live in slack_store; the OAuth install, the token
 * rotation, the deliveries and the post all have the util/machine.h shape. */
#ifndef IDX_INTEGRATIONS_SLACK_H
#define IDX_INTEGRATIONS_SLACK_H
#include "integrations/slack_notify.h"
#include "integrations/slack_oauth.h"
#include "integrations/slack_send.h"
#include "integrations/slack_webhooks.h"
#include "util/compiler.h"

struct app;

/* Returns 0, or -1 (out of memory) with nothing left running. */
int slack_start(struct app *a) MUSTCHECK;
void slack_stop(void);

#endif
