/* jobs/cron: 5-field cron expressions ("min hour dom month dow") and the next fire
 * time in UTC. Pure: no clock, no allocation. Fields take numbers, ranges (a-b),
 * steps (*\/n, a-b/n, a/n), lists (a,b-c), `*`, and month/day names (jan..dec,
 * sun..sat; 7 is also Sunday). Standard OR rule: when both day-of-month and
 * day-of-week are restricted, a day matches if either matches. */
#ifndef IDX_JOBS_CRON_H
#define IDX_JOBS_CRON_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "util/compiler.h"

struct cron_expr {
    uint64_t minutes;   /* bit m for minute 0..59 */
    uint32_t hours;     /* bit h for 0..23 */
    uint32_t mdays;     /* bit d for 1..31 */
    uint16_t months;    /* bit m for 1..12 */
    uint8_t wdays;      /* bit d for 0..6 (Sunday = 0) */
    bool mday_star;     /* day-of-month field was `*` (or `*\/1`) */
    bool wday_star;
};

/* Parse `text`. Returns 0, or -1 with a short reason in err (never longer than
 * errlen-1) such as "field 2 (hour): 24 is out of range 0-23". */
MUSTCHECK int cron_parse(struct cron_expr *c, const char *text, char *err, size_t errlen);

/* The first matching minute strictly after `after` (UTC, seconds since the epoch).
 * Returns -1 when none exists within 8 years (e.g. "0 0 30 2 *"). */
time_t cron_next(const struct cron_expr *c, time_t after);

#endif
