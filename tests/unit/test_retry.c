/* Unit tests for jobs/retry: retryable outcomes (timeouts, connection errors, 5xx,
 * 429; not other 4xx), exponential backoff with bounded jitter, Retry-After. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "jobs/retry.h"

static void retryable(void **state)
{
    assert_true(retry_retryable(FETCH_TIMEOUT, 0));
    assert_true(retry_retryable(FETCH_CONNECT, 0));
    assert_true(retry_retryable(FETCH_RESET, 0));
    assert_true(retry_retryable(FETCH_DNS, 0));
    assert_true(retry_retryable(FETCH_OK, 500));
    assert_true(retry_retryable(FETCH_OK, 502));
    assert_true(retry_retryable(FETCH_OK, 503));
    assert_true(retry_retryable(FETCH_OK, 504));
    assert_true(retry_retryable(FETCH_OK, 429));
    static const long no[] = {200, 204, 301, 400, 401, 403, 404, 405, 409, 422};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(retry_retryable(FETCH_OK, no[i]));
    assert_false(retry_retryable(FETCH_TLS, 0));
    assert_false(retry_retryable(FETCH_DENIED, 0));
    assert_false(retry_retryable(FETCH_BAD_URL, 0));
    assert_false(retry_retryable(FETCH_TOO_LARGE, 0));
    assert_false(retry_retryable(FETCH_ERROR, 0));
}

static void backoff(void **state)
{
    const struct retry_policy *p = &retry_default;
    assert_int_equal(p->max_attempts, 3);
    /* no jitter at the midpoint: 1000 then 2000 (VerifyWise's schedule) */
    assert_int_equal(retry_delay_ms(p, 2, -1, 0.5), 1000);
    assert_int_equal(retry_delay_ms(p, 3, -1, 0.5), 2000);
    /* only 3 attempts */
    assert_int_equal(retry_delay_ms(p, 4, -1, 0.5), -1);
    assert_int_equal(retry_delay_ms(p, 1, -1, 0.5), -1);
    /* jitter stays within +-20 % */
    for (double r = 0; r < 1; r += 0.05) {
        long d = retry_delay_ms(p, 3, -1, r);
        assert_true(d >= 1600 && d <= 2400);
    }
    /* a long policy is capped */
    struct retry_policy big = {.max_attempts = 20, .base_ms = 1000, .max_ms = 5000, .jitter = 0};
    assert_int_equal(retry_delay_ms(&big, 10, -1, 0.3), 5000);
}

static void retry_after(void **state)
{
    assert_int_equal(retry_after_ms("3", 0), 3000);
    assert_int_equal(retry_after_ms(" 0 ", 0), 0);
    assert_int_equal(retry_after_ms(NULL, 0), -1);
    assert_int_equal(retry_after_ms("", 0), -1);
    assert_int_equal(retry_after_ms("soon", 0), -1);
    assert_int_equal(retry_after_ms("-5", 0), -1);
    assert_int_equal(retry_after_ms("5x", 0), -1);
    /* HTTP-date: Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
    assert_int_equal(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000);
    assert_int_equal(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
    /* Retry-After wins over the computed delay, capped */
    assert_int_equal(retry_delay_ms(&retry_default, 2, 7000, 0.9), 7000);
    assert_int_equal(retry_delay_ms(&retry_default, 2, 3600000, 0.9), 60000);
    assert_int_equal(retry_delay_ms(&retry_default, 4, 1000, 0.9), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retryable),
        cmocka_unit_test(backoff),
        cmocka_unit_test(retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
