/* util/json_scan: a budget check of a JSON text before it is handed to jansson.
 * One pass, no allocation: counts the values the text would make jansson build
 * (objects, arrays, strings, numbers, literals; member names are not counted, each
 * comes with one value) and the nesting depth, and stops at the first value or
 * level over the budget. It does not validate: jansson still parses what passes, and
 * whatever jansson would build from a malformed text is bounded by the same counts
 * (it stops at the first error, and the scan classifies every valid prefix exactly). */
#ifndef IDX_UTIL_JSON_SCAN_H
#define IDX_UTIL_JSON_SCAN_H
#include <stddef.h>
#include "util/compiler.h"

#define JSON_SCAN_DEPTH_LIMIT 256    /* the most max_depth may be */

struct json_scan_stats {
    size_t values;      /* values seen (up to the point of failure) */
    int max_depth;      /* deepest nesting seen */
};

/* Returns 0 when buf[0..len) holds at most max_values values nested at most
 * max_depth deep (1 = a flat object or array); else -1 with a reason in err.
 * stats may be NULL. */
MUSTCHECK int json_scan(const char *buf, size_t len, size_t max_values, int max_depth, struct json_scan_stats *stats,
              char *err, size_t errlen);

#endif
