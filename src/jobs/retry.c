/* jobs/retry: owns the retry decision and the backoff arithmetic (pure). */
#include "jobs/retry.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct retry_policy retry_default = {
    .max_attempts = 3,
    .base_ms = 1000,
    .max_ms = 60000,
    .jitter = 0.2,
};

bool retry_retryable(enum fetch_outcome outcome, long status)
{
    switch (outcome) {
    case FETCH_OK:
        return status == 429 || (status >= 500 && status <= 599);
    case FETCH_TIMEOUT:
    case FETCH_CONNECT:
    case FETCH_RESET:
    case FETCH_DNS:
    case FETCH_BUSY: /* our own limit: later there is room */
        return true;
    case FETCH_TLS:
    case FETCH_TOO_LARGE:
    case FETCH_DENIED:
    case FETCH_BAD_URL:
    case FETCH_ERROR:
        return false;
    }
    return false;
}

long retry_after_ms(const char *h, long long now_s)
{
    if (!h)
        return -1;
    while (isspace((unsigned char)*h))
        h++;
    if (!*h)
        return -1;
    if (isdigit((unsigned char)*h)) {
        char *end;
        long long s = strtoll(h, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end || s < 0)
            return -1;
        return s > 86400 ? 86400L * 1000 : (long)(s * 1000);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(h, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    long long at = (long long)timegm(&tm);
    long long d = at - now_s;
    if (d <= 0)
        return 0;
    return d > 86400 ? 86400L * 1000 : (long)(d * 1000);
}

long retry_delay_ms(const struct retry_policy *p, int next_attempt, long retry_after, double rand01)
{
    if (next_attempt < 2 || next_attempt > p->max_attempts)
        return -1;
    if (retry_after >= 0)
        return retry_after > p->max_ms ? p->max_ms : retry_after;
    double d = (double)p->base_ms;
    for (int i = 2; i < next_attempt && d < (double)p->max_ms; i++)
        d *= 2;
    if (rand01 < 0)
        rand01 = 0;
    if (rand01 >= 1)
        rand01 = 0.999999;
    d *= 1.0 - p->jitter + 2.0 * p->jitter * rand01;
    if (d > (double)p->max_ms)
        d = (double)p->max_ms;
    return d < 0 ? 0 : (long)d;
}
