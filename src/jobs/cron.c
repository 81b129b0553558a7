/* jobs/cron: owns cron expression parsing and next-fire-time computation (UTC).
 * Pure functions: the caller supplies the time and the buffers. */
#include "jobs/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct field_spec {
    const char *name;
    int min, max;
    const char *const *names;   /* names[i] is the value min+i, or NULL */
    int nnames;
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct field_spec fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 12},
    {"day of week", 0, 7, wday_names, 7},
};

/* A number or a name at *p; advances *p. Returns 0 or -1. */
static int parse_value(const struct field_spec *f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*s)) {
            if (++digits > 3)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = (f->names == month_names ? 1 : 0) + i;
            *p = s + 3;
            return 0;
        }
    }
    return -1;
}

/* One comma-separated item: `*`, a, a-b, each optionally /step. Sets bits in *bits. */
static int parse_item(const struct field_spec *f, const char *s, size_t len, uint64_t *bits,
                      char *err, size_t errlen, int fieldno)
{
    char item[64];
    if (len == 0 || len >= sizeof item) {
        snprintf(err, errlen, "field %d (%s): empty or overlong item", fieldno, f->name);
        return -1;
    }
    memcpy(item, s, len);
    item[len] = '\0';
    const char *p = item;
    int lo, hi, step = 1;
    bool ranged = false;
    if (*p == '*') {
        lo = f->min;
        hi = f->max == 7 ? 6 : f->max;
        p++;
        ranged = true;
    } else {
        if (parse_value(f, &p, &lo) < 0)
            goto bad;
        hi = lo;
        if (*p == '-') {
            p++;
            if (parse_value(f, &p, &hi) < 0)
                goto bad;
            ranged = true;
        }
    }
    if (*p == '/') {
        p++;
        const char *q = p;
        if (parse_value(&fields[0], &q, &step) < 0 || q == p || step < 1)
            goto bad;
        p = q;
        if (!ranged)
            hi = f->max == 7 ? 6 : f->max; /* "a/n" = a-max/n */
    }
    if (*p != '\0')
        goto bad;
    if (lo < f->min || lo > f->max || hi < f->min || hi > f->max) {
        snprintf(err, errlen, "field %d (%s): value out of range %d-%d", fieldno, f->name, f->min,
                 f->max);
        return -1;
    }
    if (hi < lo) {
        snprintf(err, errlen, "field %d (%s): range %d-%d is backwards", fieldno, f->name, lo, hi);
        return -1;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ull << (f->max == 7 && v == 7 ? 0 : v);
    return 0;
bad:
    snprintf(err, errlen, "field %d (%s): cannot parse '%s'", fieldno, f->name, item);
    return -1;
}

int cron_parse(struct cron_expr *c, const char *text, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!text) {
        snprintf(err, errlen, "empty expression");
        return -1;
    }
    const char *p = text;
    int n = 0;
    uint64_t bits[5] = {0};
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t len = 0;
        while (p[len] && !isspace((unsigned char)p[len]))
            len++;
        if (n == 5) {
            snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month day-of-week), got more");
            return -1;
        }
        if (n == 2)
            c->mday_star = p[0] == '*';
        if (n == 4)
            c->wday_star = p[0] == '*';
        size_t pos = 0;
        while (pos <= len) {
            size_t il = 0;
            while (pos + il < len && p[pos + il] != ',')
                il++;
            if (parse_item(&fields[n], p + pos, il, &bits[n], err, errlen, n + 1) < 0)
                return -1;
            pos += il + 1;
        }
        p += len;
        n++;
    }
    if (n != 5) {
        snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);
        return -1;
    }
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->mdays = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    c->wdays = (uint8_t)bits[4];
    return 0;
}

static bool day_matches(const struct cron_expr *c, int mday, int wday)
{
    bool dm = (c->mdays >> mday) & 1u, dw = (c->wdays >> wday) & 1u;
    if (c->mday_star || c->wday_star)
        return dm && dw;
    return dm || dw;
}

time_t cron_next(const struct cron_expr *c, time_t after)
{
    if (after < 0)
        after = 0;
    time_t start = (after / 60 + 1) * 60;
    time_t day = start - start % 86400;
    int from = (int)(start % 86400) / 60; /* minute of the day to start at */
    for (int i = 0; i < 366 * 8 + 2; i++, day += 86400, from = 0) {
        struct tm tm;
        if (!gmtime_r(&day, &tm))
            return -1;
        if (!((c->months >> (tm.tm_mon + 1)) & 1u) || !day_matches(c, tm.tm_mday, tm.tm_wday))
            continue;
        for (int h = from / 60; h < 24; h++) {
            if (!((c->hours >> h) & 1u))
                continue;
            for (int m = h == from / 60 ? from % 60 : 0; m < 60; m++)
                if ((c->minutes >> m) & 1ull)
                    return day + h * 3600 + m * 60;
        }
    }
    return -1;
}
