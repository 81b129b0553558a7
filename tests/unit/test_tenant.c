/* tests/unit/test_tenant: tenant hash vectors (reference 2.3) and name checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth/tenant.h"

static void test_vectors(void **state)
{
    (void)state;
    char out[TENANT_HASH_LEN + 1];

    assert_int_equal(tenant_hash(1, out), 0);
    assert_string_equal(out, "a4ayc80OGd");
    assert_int_equal(tenant_hash(2, out), 0);
    assert_string_equal(out, "1HNeOiZeFu");
    assert_int_equal(tenant_hash(10, out), 0);
    assert_string_equal(out, "SkTcFTZCBK");
}

static void test_hash_always_valid(void **state)
{
    (void)state;
    char out[TENANT_HASH_LEN + 1];
    char prev[TENANT_HASH_LEN + 1] = "";

    for (long long id = 1; id <= 2000; id++) {
        assert_int_equal(tenant_hash(id, out), 0);
        assert_int_equal(strlen(out), TENANT_HASH_LEN);
        assert_true(tenant_name_valid(out));
        assert_string_not_equal(out, prev);
        memcpy(prev, out, sizeof prev);
    }
    assert_int_equal(tenant_hash(9223372036854775807LL, out), 0);
    assert_true(tenant_name_valid(out));
    assert_int_equal(tenant_hash(-9223372036854775807LL - 1, out), 0);
    assert_true(tenant_name_valid(out));
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(tenant_name_valid("a4ayc80OGd"));
    assert_true(tenant_name_valid("0123456789"));
    assert_true(tenant_name_valid("ABCDEFGHIJ"));
    assert_false(tenant_name_valid(NULL));
    assert_false(tenant_name_valid(""));
    assert_false(tenant_name_valid("a4ayc80OG"));      /* 9 */
    assert_false(tenant_name_valid("a4ayc80OGdX"));    /* 11 */
    assert_false(tenant_name_valid("a4ayc80OG-"));
    assert_false(tenant_name_valid("a4ayc80OG_"));
    assert_false(tenant_name_valid("a4ayc80OG\""));
    assert_false(tenant_name_valid("a4ayc80 Gd"));
    assert_false(tenant_name_valid("a4ayc80O+d"));
    assert_false(tenant_name_valid("a4ayc80O/d"));
    assert_false(tenant_name_valid("a4ayc80\xc3\xa9G"));
    assert_false(tenant_name_valid("public\".x\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hash_always_valid),
        cmocka_unit_test(test_name_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
