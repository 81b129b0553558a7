/* app_metrics: app's wiring of the modules' figures into /metrics (ops/metrics). */
#ifndef IDX_APP_METRICS_H
#define IDX_APP_METRICS_H
#include "util/compiler.h"

struct app;

/* Register every sampled series (the modules must exist) and the outbound-call hook.
 * 0, or -1 when out of memory. The HTTP hook is http_server_opts.on_answer. */
MUSTCHECK int app_metrics_register(struct app *a);

#endif
