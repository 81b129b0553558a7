/* util/json_scan: counts the values and the depth of a JSON text against a budget
 * before anything is parsed (see include/util/json_scan.h). Pure; owns nothing.
 *
 * State: inside or outside a string (with a pending backslash), inside a bare
 * literal (number, true, false, null), and one bit per open container (object or
 * array) plus "the next string of this object is a member name". A string counts
 * as a value unless it is a member name: in an object, the string after '{' or ','. */
#include "util/json_scan.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int json_scan(const char *buf, size_t len, size_t max_values, int max_depth, struct json_scan_stats *stats,
              char *err, size_t errlen)
{
    bool is_object[JSON_SCAN_DEPTH_LIMIT + 1];
    if (max_depth > JSON_SCAN_DEPTH_LIMIT)
        max_depth = JSON_SCAN_DEPTH_LIMIT;
    int depth = 0, deepest = 0;
    size_t values = 0;
    bool in_string = false, escaped = false, in_literal = false, expect_name = false;
    int rc = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (ch == '\\')
                escaped = true;
            else if (ch == '"')
                in_string = false;
            continue;
        }
        bool literal = false;
        switch (ch) {
        case '{':
        case '[':
            if (++values > max_values) {
                rc = fail(err, errlen, "more than %llu JSON values", (unsigned long long)max_values);
                goto out;
            }
            if (depth >= max_depth) {
                rc = fail(err, errlen, "JSON nested deeper than %llu levels", (unsigned long long)max_depth);
                goto out;
            }
            is_object[depth++] = ch == '{';
            if (depth > deepest)
                deepest = depth;
            expect_name = ch == '{';
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            expect_name = false;
            break;
        case ',':
            expect_name = depth > 0 && is_object[depth - 1];
            break;
        case ':':
            expect_name = false;
            break;
        case '"':
            in_string = true;
            if (expect_name) {
                expect_name = false;
                break;
            }
            if (++values > max_values) {
                rc = fail(err, errlen, "more than %llu JSON values", (unsigned long long)max_values);
                goto out;
            }
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            break;
        default:
            literal = true;
            if (!in_literal && ++values > max_values) {
                rc = fail(err, errlen, "more than %llu JSON values", (unsigned long long)max_values);
                goto out;
            }
            break;
        }
        in_literal = literal;
    }
out:
    if (stats) {
        stats->values = values;
        stats->max_depth = deepest;
    }
    return rc;
}
