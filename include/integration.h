/* integration: what app needs of each integration besides its routes (src/routes.c):
 * its background work, started once the core modules (pool, LISTEN, Redis, outbound
 * client, HTTP server) exist and stopped before any of them is freed, and its share of
 * the Redis `<prefix>notify` messages. The table in src/integrations.c is started in order
 * and stopped in reverse; an integration whose start failed is not stopped. */
#ifndef IDX_INTEGRATION_H
#define IDX_INTEGRATION_H
#include <stddef.h>

#include "util/compiler.h"

struct app;
struct notify_msg;

struct integration {
    const char *name;
    /* 0, or -1 with a reason in err and nothing left running. NULL: nothing to start. */
    int (*start)(struct app *a, char *err, size_t errlen);
    /* Cancel and free everything it holds (requests, calls, queries, timers), no callbacks
     * after it returns. NULL: nothing to stop. */
    void (*stop)(struct app *a);
    /* A valid message on the notify channel (NULL: not interested). */
    void (*on_notify)(const struct notify_msg *m, void *app);
};

/* Start every integration in table order; on a failure stop those already started (in
 * reverse) and return -1 with the failing one's reason in err. */
MUSTCHECK int integrations_start(struct app *a, char *err, size_t errlen);
/* Stop the started ones in reverse order (idempotent). */
void integrations_stop(struct app *a);
/* Hand a notify message to every started integration that takes them (events' on_notify). */
void integrations_on_notify(const struct notify_msg *m, void *app);

#endif
