/* integrations/slack: owns the start and stop order of the Slack background work:
 * token rotation (slack_oauth.c) and notification deliveries (slack_notify.c). */
#include "integrations/slack.h"

#include "app.h"

int slack_start(struct app *a)
{
    if (slack_oauth_start(a) < 0 || slack_notify_start(a) < 0) {
        slack_stop();
        return -1;
    }
    return 0;
}

void slack_stop(void)
{
    slack_notify_stop();
    slack_oauth_stop();
}
