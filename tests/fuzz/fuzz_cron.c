/* tests/fuzz/fuzz_cron: cron_parse on arbitrary text and cron_next on what it accepts.
 * Input: the expression text (up to the first NUL); the last 4 bytes also choose the
 * start time for cron_next (between 1970 and 2106).
 * Properties: the reason of a failure is NUL-terminated within errlen (several sizes);
 * an accepted expression sets at least one bit in each field and only bits inside its
 * range; cron_next(t) is a whole minute after t that matches every field (with the
 * day-of-month/day-of-week OR rule), and cron_next(cron_next(t) - 1) == cron_next(t). */
#include "fuzz.h"

#include <time.h>

#include "jobs/cron.h"

static bool matches(const struct cron_expr *c, time_t t)
{
    struct tm tm;
    FUZZ_ASSERT(gmtime_r(&t, &tm) != NULL);
    bool dm = (c->mdays >> tm.tm_mday) & 1u, dw = (c->wdays >> tm.tm_wday) & 1u;
    bool day = (c->mday_star || c->wday_star) ? dm && dw : dm || dw;
    return ((c->minutes >> tm.tm_min) & 1u) && ((c->hours >> tm.tm_hour) & 1u) &&
           ((c->months >> (tm.tm_mon + 1)) & 1u) && day;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char *text = fuzz_strndup(data, size);
    static const size_t errlens[] = {128, 12, 1};
    char err[128];
    struct cron_expr c;
    int rc = 0;
    for (size_t i = 0; i < 3; i++) {
        memset(err, 'x', sizeof err);
        int r = cron_parse(&c, text, err, errlens[i]);
        if (i == 0)
            rc = r;
        FUZZ_ASSERT(r == rc && (r == 0 || r == -1));
        if (r != 0) {
            fuzz_check_cstr(err, errlens[i]);
            if (errlens[i] > 1)
                FUZZ_ASSERT(err[0] != '\0');
        }
    }
    if (rc != 0) {
        free(text);
        return 0;
    }

    FUZZ_ASSERT(c.minutes != 0 && (c.minutes >> 60) == 0);
    FUZZ_ASSERT(c.hours != 0 && (c.hours >> 24) == 0);
    FUZZ_ASSERT(c.mdays != 0 && (c.mdays & 1u) == 0);
    FUZZ_ASSERT(c.months != 0 && (c.months & 1u) == 0 && (c.months >> 13) == 0);
    FUZZ_ASSERT(c.wdays != 0 && (c.wdays >> 7) == 0);

    uint32_t seed = 0;
    for (size_t i = size >= 4 ? size - 4 : 0; i < size; i++)
        seed = seed << 8 | data[i];
    time_t starts[2] = {(time_t)1700000000, (time_t)seed};
    for (int i = 0; i < 2; i++) {
        time_t t = starts[i];
        time_t next = cron_next(&c, t);
        if (next == -1)
            continue;
        FUZZ_ASSERT(next > t && next % 60 == 0 && next - t <= (time_t)(366 * 8 + 2) * 86400);
        FUZZ_ASSERT(matches(&c, next));
        FUZZ_ASSERT(cron_next(&c, next - 1) == next);
        FUZZ_ASSERT(cron_next(&c, next) > next || cron_next(&c, next) == -1);
    }
    free(text);
    return 0;
}
