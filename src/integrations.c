/* integrations: owns the table of integrations with background work and its order:
 * MLflow (the sync scheduler) first, then Slack (token rotation, notification deliveries);
 * stopped in reverse, before app frees the modules their jobs hold (requests, outbound
 * calls, queries). The wrappers adapt each integration's own start/stop to the table. */
#include "integration.h"

#include <stdbool.h>
#include <stdio.h>

#include "integrations/mlflow.h"
#include "log.h"
#include "integrations/slack.h"

static int slack_start_entry(struct app *a, char *err, size_t errlen)
{
    if (slack_start(a) < 0) {
        snprintf(err, errlen, "cannot start the Slack background work");
        return -1;
    }
    return 0;
}

static void slack_stop_entry(struct app *a)
{
    (void)a;
    slack_stop();
}

static const struct integration table[] = {
    {"mlflow", mlflow_start, mlflow_stop, NULL}, /* validates MLFLOW_SYNC_SCHEDULE */
    {"slack", slack_start_entry, slack_stop_entry, slack_on_notify},
};
#define NINTEGRATIONS (sizeof table / sizeof table[0])

static bool started[NINTEGRATIONS];

int integrations_start(struct app *a, char *err, size_t errlen)
{
    for (size_t i = 0; i < NINTEGRATIONS; i++) {
        if (table[i].start && table[i].start(a, err, errlen) < 0) {
            integrations_stop(a);
            return -1;
        }
        started[i] = true;
        log_debug("integration %s started", table[i].name);
    }
    return 0;
}

void integrations_stop(struct app *a)
{
    for (size_t i = NINTEGRATIONS; i-- > 0;) {
        if (!started[i])
            continue;
        started[i] = false;
        if (table[i].stop)
            table[i].stop(a);
        log_debug("integration %s stopped", table[i].name);
    }
}

void integrations_on_notify(const struct notify_msg *m, void *app)
{
    for (size_t i = 0; i < NINTEGRATIONS; i++)
        if (started[i] && table[i].on_notify)
            table[i].on_notify(m, app);
}
