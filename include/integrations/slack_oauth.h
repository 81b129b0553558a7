/* integrations/slack_oauth: POST /api/slackWebhooks (reference 1.3, 7.2): the OAuth
 * code exchange that installs a webhook, owned by the caller in the caller's
 * organization; and token rotation: a bot token Slack issued with refresh_token and
 * expires_in is refreshed before it expires, and a refresh Slack refuses deactivates
 * the webhook with the reason. */
#ifndef IDX_INTEGRATIONS_SLACK_OAUTH_H
#define IDX_INTEGRATIONS_SLACK_OAUTH_H
#include "http/request.h"

struct app;

void slack_webhooks_create(struct http_req *r);

/* The refresh sweep (a timer on the app's loop). start returns 0 or -1 (no memory);
 * stop cancels what is in flight and wipes it; both may be called once. */
int slack_oauth_start(struct app *a);
void slack_oauth_stop(void);

#endif
