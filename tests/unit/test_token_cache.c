/* Unit tests for auth/token_cache: a stored token hits with its claims; any other bytes
 * (a sibling of the same length, a prefix, a longer one) miss; expiry (`expire` in ms and
 * `exp` in seconds) is checked on every hit, from both sides, and an expired entry is
 * dropped; a colliding token replaces the slot; 0 slots turns it off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/token_cache.h"

static const char TOK[] = "aaaa.bbbb.cccc";

static struct jwt_claims claims_of(long long id, double expire_ms)
{
    struct jwt_claims c;
    memset(&c, 0, sizeof c);
    c.has_id = true;
    c.id = id;
    c.has_role = true;
    strcpy(c.role_name, "Admin");
    c.expire_ms = expire_ms;
    return c;
}

static void hit_only_on_the_exact_bytes(void **state)
{
    struct token_cache *c = token_cache_new(1); /* every probe lands on the stored slot */
    assert_non_null(c);
    struct jwt_claims in = claims_of(7, 5000), out;
    enum jwt_status st = JWT_INVALID;
    assert_false(token_cache_get(c, TOK, strlen(TOK), 0, &st, &out));
    token_cache_put(c, TOK, strlen(TOK), &in);
    assert_true(token_cache_get(c, TOK, strlen(TOK), 0, &st, &out));
    assert_int_equal(st, JWT_OK);
    assert_int_equal(out.id, 7);
    assert_string_equal(out.role_name, "Admin");
    char sib[sizeof TOK];
    memcpy(sib, TOK, sizeof TOK);
    for (size_t i = 0; i < strlen(TOK); i++) {
        sib[i] ^= 1;
        assert_false(token_cache_get(c, sib, strlen(sib), 0, &st, &out));
        sib[i] ^= 1;
    }
    assert_false(token_cache_get(c, TOK, strlen(TOK) - 1, 0, &st, &out));
    assert_false(token_cache_get(c, "aaaa.bbbb.ccccc", 15, 0, &st, &out));
    assert_true(token_cache_get(c, TOK, strlen(TOK), 0, &st, &out));
    token_cache_free(c);
}

static void expire_checked_on_every_hit(void **state)
{
    struct token_cache *c = token_cache_new(64);
    struct jwt_claims in = claims_of(7, 5000), out;
    enum jwt_status st = JWT_INVALID;
    token_cache_put(c, TOK, strlen(TOK), &in);
    assert_true(token_cache_get(c, TOK, strlen(TOK), 5000, &st, &out)); /* not early */
    assert_int_equal(st, JWT_OK);
    assert_true(token_cache_get(c, TOK, strlen(TOK), 5001, &st, &out));
    assert_int_equal(st, JWT_EXPIRED);
    assert_int_equal(out.id, 7); /* the claims, as jwt_verify_hs256 gives them */
    assert_false(token_cache_get(c, TOK, strlen(TOK), 0, &st, &out)); /* dropped */
    token_cache_free(c);
}

static void standard_exp_checked_on_every_hit(void **state)
{
    struct token_cache *c = token_cache_new(64);
    struct jwt_claims in = claims_of(7, 1e15), out;
    in.has_exp = true;
    in.exp = 10; /* seconds */
    enum jwt_status st = JWT_INVALID;
    token_cache_put(c, TOK, strlen(TOK), &in);
    assert_true(token_cache_get(c, TOK, strlen(TOK), 9999, &st, &out));
    assert_int_equal(st, JWT_OK);
    assert_true(token_cache_get(c, TOK, strlen(TOK), 10000, &st, &out));
    assert_int_equal(st, JWT_EXPIRED);
    token_cache_free(c);
}

static void collision_replaces_and_zero_is_off(void **state)
{
    struct token_cache *c = token_cache_new(1);
    struct jwt_claims a = claims_of(1, 1e15), b = claims_of(2, 1e15), out;
    enum jwt_status st;
    token_cache_put(c, "a.b.c", 5, &a);
    token_cache_put(c, "d.e.f", 5, &b);
    assert_false(token_cache_get(c, "a.b.c", 5, 0, &st, &out));
    assert_true(token_cache_get(c, "d.e.f", 5, 0, &st, &out));
    assert_int_equal(out.id, 2);
    token_cache_free(c);

    c = token_cache_new(0);
    assert_non_null(c);
    token_cache_put(c, "a.b.c", 5, &a);
    assert_false(token_cache_get(c, "a.b.c", 5, 0, &st, &out));
    token_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_only_on_the_exact_bytes),
        cmocka_unit_test(expire_checked_on_every_hit),
        cmocka_unit_test(standard_exp_checked_on_every_hit),
        cmocka_unit_test(collision_replaces_and_zero_is_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
