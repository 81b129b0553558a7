/* Unit tests for util/seed: seeds are never 0 and do not repeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/seed.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_seeds_are_nonzero_and_distinct(void **state)
{
    (void)state;
    enum { N = 4096 };
    static uint64_t s[N];
    for (int i = 0; i < N; i++) {
        s[i] = seed_u64();
        assert_true(s[i] != 0);
    }
    qsort(s, N, sizeof s[0], cmp_u64);
    for (int i = 1; i < N; i++)
        assert_true(s[i] != s[i - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds_are_nonzero_and_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
