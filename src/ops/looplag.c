/* ops/looplag: owns the lag timer. Each run measures now minus the due time it was
 * armed for (CLOCK_MONOTONIC), records it and re-arms; an iteration of the loop that
 * runs long makes the timer late by about that much. */
#include "ops/looplag.h"

#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "ops/metrics.h"
#include "util/clock.h"

struct looplag {
    struct event *timer;
    uint64_t due_us;
    uint64_t last_warn_us;
    bool warned;
    unsigned suppressed;
};

bool looplag_sample(struct looplag *l, uint64_t lag_us, uint64_t now_us)
{
    metrics_observe("integrationsd_event_loop_lag_ms", NULL, (double)lag_us / 1000.0);
    if (lag_us <= (uint64_t)LOOPLAG_WARN_MS * 1000u)
        return false;
    if (l->warned && now_us - l->last_warn_us < 1000000u) {
        l->suppressed++;
        return false;
    }
    l->warned = true;
    l->last_warn_us = now_us;
    return true;
}

static void arm(struct looplag *l)
{
    struct timeval tv = {0, LOOPLAG_PERIOD_MS * 1000};
    l->due_us = clock_mono_us() + (uint64_t)LOOPLAG_PERIOD_MS * 1000u;
    evtimer_add(l->timer, &tv);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct looplag *l = arg;
    uint64_t now = clock_mono_us();
    uint64_t lag = now > l->due_us ? now - l->due_us : 0;
    if (looplag_sample(l, lag, now)) {
        log_warn("event loop stalled: a timer ran %llu ms late (an iteration took over %d ms)%s",
                 (unsigned long long)(lag / 1000u), LOOPLAG_WARN_MS,
                 l->suppressed ? "; more stalls in the last second were not logged" : "");
        l->suppressed = 0;
    }
    arm(l);
}

struct looplag *looplag_start(struct event_base *base)
{
    struct looplag *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (base && !(l->timer = evtimer_new(base, tick, l))) {
        free(l);
        return NULL;
    }
    if (l->timer)
        arm(l);
    return l;
}

void looplag_free(struct looplag *l)
{
    if (!l)
        return;
    if (l->timer)
        event_free(l->timer);
    free(l);
}
