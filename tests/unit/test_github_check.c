/* Unit tests for integrations/github_check: the token shapes from both sides of every
 * length bound, trimming, NUL, token_name (type, length in code points), the test
 * body (stored token or the body's), the order the checks run in, and the one table
 * of statuses and VerifyWise messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "integrations/github.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &e);
    assert_non_null(j);
    return j;
}

/* prefix followed by c up to len bytes, NUL-terminated. */
static char *token(const char *prefix, char c, size_t len)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    size_t pl = strlen(prefix);
    memset(s, c, len);
    memcpy(s, prefix, pl < len ? pl : len);
    s[len] = '\0';
    return s;
}

static enum github_err fmt(const char *prefix, char c, size_t len)
{
    char *t = token(prefix, c, len);
    enum github_err e = github_token_check_format(t, len);
    const char *msg = github_token_format_error(t, len);
    if (e == GITHUB_OK)
        assert_null(msg);
    else
        assert_string_equal(msg, github_err_message(e));
    free(t);
    return e;
}

static void formats(void **state)
{
    (void)state;
    assert_int_equal(fmt("ghp_", 'a', 40), GITHUB_OK);
    assert_int_equal(fmt("ghp_", 'a', 39), GITHUB_ERR_CLASSIC_SHORT);
    assert_int_equal(fmt("github_pat_", 'a', 30), GITHUB_OK);
    assert_int_equal(fmt("github_pat_", 'a', 29), GITHUB_ERR_FINE_SHORT);
    static const char *const app[] = {"gho_", "ghu_", "ghs_", "ghr_"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(fmt(app[i], 'Z', 40), GITHUB_OK);
        assert_int_equal(fmt(app[i], 'Z', 39), GITHUB_ERR_APP_MALFORMED);
        assert_int_equal(fmt(app[i], '-', 40), GITHUB_ERR_APP_MALFORMED);
    }
    assert_int_equal(fmt("", 'f', 40), GITHUB_OK); /* 40 hex digits */
    assert_int_equal(fmt("", 'f', 39), GITHUB_ERR_UNRECOGNIZED);
    assert_int_equal(fmt("", 'f', 41), GITHUB_ERR_UNRECOGNIZED);
    assert_int_equal(fmt("g", 'f', 40), GITHUB_ERR_UNRECOGNIZED);
    assert_int_equal(fmt("ghx_", 'a', 40), GITHUB_ERR_UNRECOGNIZED);
    assert_int_equal(fmt("ghp_", 'a', GITHUB_TOKEN_MAX), GITHUB_OK);
    assert_int_equal(fmt("ghp_", 'a', GITHUB_TOKEN_MAX + 1), GITHUB_ERR_TOO_LONG);
    assert_int_equal(fmt("", 'a', 0), GITHUB_ERR_EMPTY);
    assert_int_equal(GITHUB_TOKEN_MAX, 255);
    /* only len bytes are the token */
    assert_int_equal(github_token_check_format("ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 39),
                     GITHUB_ERR_CLASSIC_SHORT);
}

static enum github_err save(const char *text, struct github_token_input *in)
{
    json_t *j = parse(text);
    enum github_err e = github_check_save_body(j, in);
    json_decref(j);
    return e;
}

#define TOK40 "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void save_token(void **state)
{
    (void)state;
    struct github_token_input in;
    static const char *const required[] = {"{}", "{\"token\":null}", "{\"token\":\"\"}", "{\"token\":5}",
                                           "{\"token\":[\"" TOK40 "\"]}"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        assert_int_equal(save(required[i], &in), GITHUB_ERR_REQUIRED);
    assert_int_equal(save("{\"token\":\" \\t\\n \"}", &in), GITHUB_ERR_EMPTY);
    assert_int_equal(save("{\"token\":\"" TOK40 "\\u0000\"}", &in), GITHUB_ERR_NUL);
    assert_int_equal(save("{\"token\":\"nope\"}", &in), GITHUB_ERR_UNRECOGNIZED);
    assert_null(in.token);

    json_t *j = parse("{\"token\":\"  " TOK40 "\\n\"}");
    assert_int_equal(github_check_save_body(j, &in), GITHUB_OK);
    assert_ptr_equal(in.token, json_string_value(json_object_get(j, "token")) + 2);
    assert_int_equal(in.len, 40);
    assert_null(in.name);
    assert_false(in.stored);
    json_decref(j);
    /* trimming happens before the length bound: 255 bytes between spaces pass */
    char *t = token("ghp_", 'a', 255), body[400];
    snprintf(body, sizeof body, "{\"token\":\"   %s   \"}", t);
    assert_int_equal(save(body, &in), GITHUB_OK);
    assert_int_equal(in.len, 255);
    free(t);
}

static void save_name(void **state)
{
    (void)state;
    struct github_token_input in;
    assert_int_equal(save("{\"token\":\"" TOK40 "\",\"token_name\":5}", &in), GITHUB_ERR_NAME_TYPE);
    assert_int_equal(save("{\"token\":\"" TOK40 "\",\"token_name\":{}}", &in), GITHUB_ERR_NAME_TYPE);
    assert_int_equal(save("{\"token\":\"" TOK40 "\",\"token_name\":null}", &in), GITHUB_OK);
    assert_null(in.name);
    assert_int_equal(save("{\"token\":\"" TOK40 "\",\"token_name\":\"\"}", &in), GITHUB_OK);
    assert_null(in.name);
    assert_int_equal(save("{\"token\":\"" TOK40 "\",\"token_name\":\"CI\\u0000\"}", &in), GITHUB_ERR_NAME_TOO_LONG);
    /* the token is checked first */
    assert_int_equal(save("{\"token\":\"x\",\"token_name\":5}", &in), GITHUB_ERR_UNRECOGNIZED);
    static const char *const chars[] = {"n", "\xc3\xa9", "\xe2\x82\xac"};
    for (size_t c = 0; c < 3; c++) {
        for (size_t n = GITHUB_NAME_MAX_CHARS; n <= GITHUB_NAME_MAX_CHARS + 1; n++) {
            json_t *j = parse("{\"token\":\"" TOK40 "\"}");
            char name[512] = "";
            for (size_t i = 0; i < n; i++)
                strcat(name, chars[c]);
            json_object_set_new(j, "token_name", json_string(name));
            enum github_err e = github_check_save_body(j, &in);
            if (n == GITHUB_NAME_MAX_CHARS) {
                assert_int_equal(e, GITHUB_OK);
                assert_string_equal(in.name, name);
            } else {
                assert_int_equal(e, GITHUB_ERR_NAME_TOO_LONG);
            }
            json_decref(j);
        }
    }
    assert_int_equal(GITHUB_NAME_MAX_CHARS, 100);
}

static void test_body(void **state)
{
    (void)state;
    struct github_token_input in;
    json_t *j = parse("{\"token_name\":\"x\"}");
    assert_int_equal(github_check_test_body(j, &in), GITHUB_OK);
    assert_true(in.stored);
    assert_null(in.token);
    json_decref(j);
    j = parse("{\"token\":null}"); /* present, so not the stored one */
    assert_int_equal(github_check_test_body(j, &in), GITHUB_ERR_REQUIRED);
    assert_false(in.stored);
    json_decref(j);
    j = parse("{\"token\":\"" TOK40 " \",\"token_name\":5}"); /* token_name is not looked at */
    assert_int_equal(github_check_test_body(j, &in), GITHUB_OK);
    assert_false(in.stored);
    assert_int_equal(in.len, 40);
    json_decref(j);
    j = parse("{\"token\":\"ghp_short\"}");
    assert_int_equal(github_check_test_body(j, &in), GITHUB_ERR_CLASSIC_SHORT);
    json_decref(j);
}

static void error_table(void **state)
{
    (void)state;
    for (int e = 1; e < GITHUB_ERR_COUNT; e++) {
        assert_int_equal(github_err_status((enum github_err)e), e == GITHUB_ERR_NOT_FOUND ? 404 : 400);
        assert_true(strlen(github_err_message((enum github_err)e)) > 0);
    }
    assert_int_equal(github_err_status(GITHUB_ERR_COUNT), 500);
    assert_string_equal(github_err_message(GITHUB_ERR_REQUIRED), "Token is required");
    assert_string_equal(github_err_message(GITHUB_ERR_NAME_TOO_LONG), "Token name must be at most 100 characters");
    assert_string_equal(github_err_message(GITHUB_ERR_NAME_TYPE), "Token name must be a string");
    assert_string_equal(github_err_message(GITHUB_ERR_NOT_FOUND), "No GitHub token found");
    assert_string_equal(github_err_message(GITHUB_ERR_NUL), "Token format not recognized");
    assert_string_equal(github_err_message(GITHUB_ERR_UNRECOGNIZED),
                        "Token format not recognized. GitHub tokens typically start with 'ghp_' (classic) or "
                        "'github_pat_' (fine-grained)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats),   cmocka_unit_test(save_token),  cmocka_unit_test(save_name),
        cmocka_unit_test(test_body), cmocka_unit_test(error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
