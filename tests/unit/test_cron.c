/* Unit tests for jobs/cron: parsing (errors, names, lists, ranges, steps) and the
 * next fire time across minute, hour, day, month and year boundaries, leap years,
 * impossible dates, and the day-of-month / day-of-week OR rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jobs/cron.h"

/* "YYYY-MM-DD HH:MM[:SS]" UTC -> epoch */
static time_t at(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int sec = 0;
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &sec);
    assert_true(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = sec;
    return timegm(&tm);
}

static time_t next(const char *expr, const char *after)
{
    struct cron_expr c;
    char err[128];
    assert_int_equal(cron_parse(&c, expr, err, sizeof err), 0);
    return cron_next(&c, at(after));
}

static void parse_errors(void **state)
{
    static const char *const bad[] = {
        "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
        "* * * 13 *", "* * * 0 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *",
        "1,,2 * * * *", "1, * * * *", "* * * foo *", "-1 * * * *", "1-2-3 * * * *", "*/ * * * *",
        "1/x * * * *", "9999 * * * *",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cron_expr c;
        char err[128] = "";
        assert_int_equal(cron_parse(&c, bad[i], err, sizeof err), -1);
        assert_true(strlen(err) > 0);
    }
    struct cron_expr c;
    char err[128];
    assert_int_equal(cron_parse(&c, NULL, err, sizeof err), -1);
    assert_int_equal(cron_parse(&c, "* 24 * * *", err, sizeof err), -1);
    assert_non_null(strstr(err, "hour"));
}

static void parse_forms(void **state)
{
    struct cron_expr c;
    char err[128];
    assert_int_equal(cron_parse(&c, "*/15 * * * *", err, sizeof err), 0);
    assert_int_equal(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    assert_int_equal(cron_parse(&c, "1,5-7,50-59/5 0 1 jan,Mar-may sun", err, sizeof err), 0);
    assert_int_equal(c.minutes, (1ull << 1) | (1ull << 5) | (1ull << 6) | (1ull << 7) | (1ull << 50) | (1ull << 55));
    assert_int_equal(c.months, (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5));
    assert_int_equal(c.wdays, 1u);
    assert_int_equal(cron_parse(&c, "0 0 * * 7", err, sizeof err), 0); /* 7 = Sunday */
    assert_int_equal(c.wdays, 1u);
    assert_int_equal(cron_parse(&c, "0 0 * * 5-7", err, sizeof err), 0);
    assert_int_equal(c.wdays, (1u << 5) | (1u << 6) | 1u);
    assert_int_equal(cron_parse(&c, "  0\t*  * * *  ", err, sizeof err), 0); /* any whitespace */
    assert_int_equal(cron_parse(&c, "10/20 * * * *", err, sizeof err), 0); /* a/n = a-max/n */
    assert_int_equal(c.minutes, (1ull << 10) | (1ull << 30) | (1ull << 50));
}

static void default_hourly(void **state)
{
    assert_int_equal(next("0 * * * *", "2024-05-01 10:00:00"), at("2024-05-01 11:00"));
    assert_int_equal(next("0 * * * *", "2024-05-01 10:00:01"), at("2024-05-01 11:00"));
    assert_int_equal(next("0 * * * *", "2024-05-01 09:59:59"), at("2024-05-01 10:00"));
    assert_int_equal(next("0 * * * *", "2024-05-01 23:30"), at("2024-05-02 00:00"));
}

static void every_minute_and_quarter(void **state)
{
    assert_int_equal(next("* * * * *", "2024-05-01 10:00:00"), at("2024-05-01 10:01"));
    assert_int_equal(next("* * * * *", "2024-05-01 10:00:59"), at("2024-05-01 10:01"));
    assert_int_equal(next("*/15 * * * *", "2024-05-01 10:07"), at("2024-05-01 10:15"));
    assert_int_equal(next("*/15 * * * *", "2024-05-01 10:45"), at("2024-05-01 11:00"));
}

static void boundaries(void **state)
{
    /* hour */
    assert_int_equal(next("30 * * * *", "2024-05-01 10:31"), at("2024-05-01 11:30"));
    /* day */
    assert_int_equal(next("15 3 * * *", "2024-05-01 04:00"), at("2024-05-02 03:15"));
    /* month: 31st skips months without it */
    assert_int_equal(next("0 0 31 * *", "2024-04-01 00:00"), at("2024-05-31 00:00"));
    assert_int_equal(next("0 0 31 * *", "2024-05-31 00:00"), at("2024-07-31 00:00"));
    /* year */
    assert_int_equal(next("0 0 1 1 *", "2024-12-31 23:59"), at("2025-01-01 00:00"));
    assert_int_equal(next("59 23 31 12 *", "2024-12-31 23:59"), at("2025-12-31 23:59"));
    /* month names */
    assert_int_equal(next("0 12 1 feb *", "2024-03-01 00:00"), at("2025-02-01 12:00"));
}

static void leap_years(void **state)
{
    assert_int_equal(next("0 0 29 2 *", "2024-03-01 00:00"), at("2028-02-29 00:00"));
    assert_int_equal(next("0 0 29 2 *", "2023-01-01 00:00"), at("2024-02-29 00:00"));
    /* 2100 is not a leap year */
    assert_int_equal(next("0 0 29 2 *", "2096-03-01 00:00"), at("2104-02-29 00:00"));
}

static void impossible_dates(void **state)
{
    assert_int_equal(next("0 0 30 2 *", "2024-01-01 00:00"), -1);
    assert_int_equal(next("0 0 31 4,6,9,11 *", "2024-01-01 00:00"), -1);
}

static void dom_dow_or_rule(void **state)
{
    /* 2024-05-01 is a Wednesday. "the 10th OR any Monday": Monday 6th comes first */
    assert_int_equal(next("0 0 10 * mon", "2024-05-01 00:00"), at("2024-05-06 00:00"));
    assert_int_equal(next("0 0 10 * mon", "2024-05-07 00:00"), at("2024-05-10 00:00"));
    /* one of them `*`: AND (the restricted one alone decides) */
    assert_int_equal(next("0 0 * * mon", "2024-05-01 00:00"), at("2024-05-06 00:00"));
    assert_int_equal(next("0 0 10 * *", "2024-05-01 00:00"), at("2024-05-10 00:00"));
    /* Friday the 13th is not "13 AND friday": OR gives the first of either */
    assert_int_equal(next("0 0 13 * 5", "2024-05-01 00:00"), at("2024-05-03 00:00"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_errors),   cmocka_unit_test(parse_forms),      cmocka_unit_test(default_hourly),
        cmocka_unit_test(every_minute_and_quarter), cmocka_unit_test(boundaries), cmocka_unit_test(leap_years),
        cmocka_unit_test(impossible_dates), cmocka_unit_test(dom_dow_or_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
