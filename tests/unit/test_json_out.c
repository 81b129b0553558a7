/* tests/unit/test_json_out: the direct JSON writer against jansson: every byte, random
 * strings (valid and invalid UTF-8), integers at their bounds, and a whole answer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/json_out.h"

/* What jansson writes for the string s[0..n), or NULL when it refuses it. */
static char *jansson_str(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (!j)
        return NULL;
    char *o = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return o;
}

static char *ours_str(const char *s, size_t n, size_t *len)
{
    struct json_out o;
    json_out_init(&o);
    json_out_str(&o, s, n);
    return json_out_finish(&o, len);
}

static void same_as_jansson(const char *s, size_t n)
{
    size_t len = 0;
    char *want = jansson_str(s, n), *got = ours_str(s, n, &len);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_int_equal(len, strlen(got));
    assert_string_equal(got, want);
    free(want);
    free(got);
}

static void test_every_byte(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        char s[3] = {'a', (char)c, 'z'};
        same_as_jansson(s, sizeof s);
    }
    same_as_jansson("", 0);
    same_as_jansson("\"\\/\b\f\n\r\t\x01\x1f\x7f", 12);
}

static void test_utf8_edges(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
        "\xe2\x80\xa8", "\xc3\xa9t\xc3\xa9",
        /* refused: overlong, surrogates, past U+10FFFF, truncated, stray continuation */
        "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x80", "\x80", "\xbf", "\xff", "a\xc3",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_as_jansson(cases[i], strlen(cases[i]));
}

static void test_random_strings(void **state)
{
    (void)state;
    srand(12345);
    char s[64];
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof s);
        for (size_t i = 0; i < n; i++) {
            int r = rand() % 8;
            /* mostly ASCII, then continuation and lead bytes, to hit valid sequences often */
            s[i] = (char)(r < 5 ? rand() % 128 : r == 5 ? 0x80 + rand() % 64 : 0xc0 + rand() % 64);
        }
        same_as_jansson(s, n);
    }
}

static void test_ints_and_a_whole_answer(void **state)
{
    (void)state;
    struct json_out o;
    json_out_init(&o);
    json_out_lit(&o, "{\"message\":");
    json_out_str(&o, "OK", 2);
    json_out_lit(&o, ",\"data\":[{\"id\":");
    json_out_int(&o, LLONG_MAX);
    json_out_lit(&o, ",\"min\":");
    json_out_int(&o, LLONG_MIN);
    json_out_lit(&o, ",\"url\":null,\"name\":");
    json_out_str(&o, "Open\"AI\"", 8);
    json_out_lit(&o, "}]}");
    size_t len;
    char *got = json_out_finish(&o, &len);
    assert_non_null(got);
    json_t *j = json_pack("{s:s,s:[{s:I,s:I,s:n,s:s}]}", "message", "OK", "data", "id", (json_int_t)LLONG_MAX,
                          "min", (json_int_t)LLONG_MIN, "url", "name", "Open\"AI\"");
    char *want = json_dumps(j, JSON_COMPACT);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(want);
    json_decref(j);
    free(got);
    assert_null(o.buf); /* emptied */
}

static void test_failure_is_sticky(void **state)
{
    (void)state;
    struct json_out o;
    json_out_init(&o);
    json_out_lit(&o, "[");
    json_out_str(&o, "\xff", 1);
    json_out_lit(&o, "]");
    assert_true(o.failed);
    size_t len = 99;
    assert_null(json_out_finish(&o, &len));
    assert_null(o.buf);
    json_out_free(&o); /* harmless after finish */
}

/* Reals as jansson writes them with JSON_REAL_PRECISION(p): edges, then random bit
 * patterns and durations; not finite fails (jansson has no such value). */
static void same_real(double v, int p)
{
    json_t *j = json_real(v);
    assert_non_null(j);
    char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION((unsigned)p));
    json_decref(j);
    struct json_out o;
    json_out_init(&o);
    json_out_real(&o, v, p);
    size_t len;
    char *got = json_out_finish(&o, &len);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
    free(got);
}

static void test_reals(void **state)
{
    (void)state;
    static const double edges[] = {0.0, -0.0, 1.0, -1.0, 0.5, 12.0, 100000.0, 1000000.0, 1e7, 1e-5, 1.5e-7,
                                   123456789.0, 1e300, -2.5e-300, 4.9e-324, 1.7976931348623157e308,
                                   0.001, 0.1234565, 99999.95, 999999.5};
    for (int p = 1; p <= 17; p++)
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
            same_real(edges[i], p);
    srand(12345);
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (isfinite(v))
            same_real(v, 1 + i % 17);
        same_real((double)(rand() % 100000000) / 1000.0, 6); /* a duration in ms */
    }
    struct json_out o;
    json_out_init(&o);
    json_out_real(&o, INFINITY, 6);
    json_out_real(&o, NAN, 6);
    size_t len;
    assert_null(json_out_finish(&o, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_utf8_edges),
        cmocka_unit_test(test_random_strings),
        cmocka_unit_test(test_ints_and_a_whole_answer),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_reals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
