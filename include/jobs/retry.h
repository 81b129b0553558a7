/* jobs/retry: the retry policy of outbound calls made by background jobs.
 * Pure: which outcomes are retried (timeouts, connection errors, resets, 5xx,
 * 429; never other 4xx), and how long to wait before the next attempt
 * (exponential backoff with jitter, or the server's Retry-After when given). */
#ifndef IDX_JOBS_RETRY_H
#define IDX_JOBS_RETRY_H
#include <stdbool.h>

#include "net/fetch.h"

struct retry_policy {
    int max_attempts;        /* total attempts, including the first (>= 1) */
    long base_ms;            /* delay before the 2nd attempt, doubled after */
    long max_ms;             /* cap of the computed delay and of Retry-After */
    double jitter;           /* 0..1: the delay is scaled by a factor in [1-jitter, 1+jitter] */
};

/* Defaults: 3 attempts, 1000 ms then 2000 ms (VerifyWise's schedule), +-20 %, cap 60 s. */
extern const struct retry_policy retry_default;

/* Is this result worth another attempt? status is the HTTP status when
 * outcome == FETCH_OK (2xx is not retryable: it succeeded). */
bool retry_retryable(enum fetch_outcome outcome, long status);

/* Retry-After as a delay in ms: delta-seconds, or an HTTP-date relative to now
 * (seconds since the epoch). Returns -1 when absent or unparsable. */
long retry_after_ms(const char *header, long long now_s);

/* Delay before attempt number `next_attempt` (2 = the first retry), or -1 when no
 * attempt is left. retry_after_ms >= 0 wins over the computed backoff (still capped
 * by max_ms). rand01 is a uniform number in [0,1) supplied by the caller. */
long retry_delay_ms(const struct retry_policy *p, int next_attempt, long retry_after, double rand01);

#endif
