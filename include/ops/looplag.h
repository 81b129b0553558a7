/* ops/looplag: event-loop lag. A timer every LOOPLAG_PERIOD_MS records how late it ran
 * (its due time to its run) in the integrationsd_event_loop_lag_ms histogram, and logs a
 * warning when it ran over LOOPLAG_WARN_MS late (at most one line per second). */
#ifndef IDX_OPS_LOOPLAG_H
#define IDX_OPS_LOOPLAG_H
#include <stdbool.h>
#include <stdint.h>
#include "util/compiler.h"

#define LOOPLAG_PERIOD_MS 50
#define LOOPLAG_WARN_MS 100

struct event_base;
struct looplag;

MUSTCHECK struct looplag *looplag_start(struct event_base *base);
void looplag_free(struct looplag *l);

/* One sample (pure, for tests): records lag_us; true when it deserves a warning
 * now (over LOOPLAG_WARN_MS, and none logged in the second before now_us). */
bool looplag_sample(struct looplag *l, uint64_t lag_us, uint64_t now_us);

#endif
