/* Unit tests for http/cors: the default policy (FRONTEND_URL's origin plus the localhost
 * rule), ALLOWED_ORIGINS (exactly these), and the settings refused at start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/cors.h"

static void default_policy(void **state)
{
    char err[128];
    struct cors *c = cors_new("https://app.example.test:8443/some/path?x=1", NULL, err, sizeof err);
    assert_non_null(c);
    assert_true(cors_allowed(c, "https://app.example.test:8443"));
    assert_false(cors_allowed(c, "https://app.example.test"));       /* another port */
    assert_false(cors_allowed(c, "http://app.example.test:8443"));   /* another scheme */
    assert_false(cors_allowed(c, "https://app.example.test:8443/")); /* not an origin */
    assert_true(cors_allowed(c, "http://localhost"));
    assert_true(cors_allowed(c, "http://localhost:5173"));
    assert_true(cors_allowed(c, "https://127.0.0.1:65535"));
    assert_true(cors_allowed(c, "http://[::1]:3000"));
    assert_false(cors_allowed(c, "http://localhost:"));
    assert_false(cors_allowed(c, "http://localhost:123456"));
    assert_false(cors_allowed(c, "http://localhost:80a"));
    assert_false(cors_allowed(c, "http://localhost.evil.test"));
    assert_false(cors_allowed(c, "ftp://localhost"));
    assert_false(cors_allowed(c, "null"));
    cors_free(c);
}

static void allowed_origins_are_exact(void **state)
{
    char err[128];
    struct cors *c = cors_new("http://ignored.test", "https://a.test, http://b.test:8080", err, sizeof err);
    assert_non_null(c);
    assert_true(cors_allowed(c, "https://a.test"));
    assert_true(cors_allowed(c, "http://b.test:8080"));
    assert_false(cors_allowed(c, "http://ignored.test"));
    assert_false(cors_allowed(c, "http://localhost:5173")); /* no localhost rule then */
    assert_false(cors_allowed(c, "https://a.test:443"));
    cors_free(c);
}

static void bad_settings_are_refused(void **state)
{
    char err[128];
    assert_null(cors_new("http://x.test", "https://a.test/path", err, sizeof err));
    assert_string_equal(err, "ALLOWED_ORIGINS entries must be scheme://host[:port]");
    assert_null(cors_new("http://x.test", "a.test", err, sizeof err));
    assert_string_equal(err, "ALLOWED_ORIGINS entries must be scheme://host[:port]");
    assert_null(cors_new("no-scheme", NULL, err, sizeof err));
    assert_string_equal(err, "FRONTEND_URL has no usable origin");
    assert_null(cors_new("http:///path", NULL, err, sizeof err));
    assert_string_equal(err, "FRONTEND_URL has no usable origin");
    cors_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_policy),
        cmocka_unit_test(allowed_origins_are_exact),
        cmocka_unit_test(bad_settings_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
