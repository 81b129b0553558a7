/* Unit tests for auth/member_cache: off until enabled, a lookup that started before a drop
 * (the user's row changed meanwhile) is not stored, drop forgets the user, the age bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/member_cache.h"

static void off_until_enabled(void **state)
{
    struct member_cache *c = member_cache_new(64, 1000);
    struct member_entry e;
    member_cache_put(c, member_cache_gen(c), 7, MEMBER_ROW, 1, 3, 0);
    assert_false(member_cache_get(c, 7, 1, &e));
    member_cache_set_enabled(c, true);
    member_cache_put(c, member_cache_gen(c), 7, MEMBER_ROW, 1, 3, 0);
    assert_true(member_cache_get(c, 7, 1, &e));
    assert_int_equal(e.org_id, 1);
    assert_int_equal(e.role_id, 3);
    member_cache_set_enabled(c, false); /* the LISTEN connection is down */
    assert_false(member_cache_get(c, 7, 1, &e));
    member_cache_set_enabled(c, true); /* and back: it starts empty */
    assert_false(member_cache_get(c, 7, 1, &e));
    member_cache_put(c, member_cache_gen(c), 9, MEMBER_ROW, 2, 1, 0);
    member_cache_set_enabled(c, true); /* a flush ("all") while enabled empties it too */
    assert_false(member_cache_get(c, 9, 1, &e));
    member_cache_free(c);
}

static void lookup_older_than_a_drop_is_not_stored(void **state)
{
    struct member_cache *c = member_cache_new(64, 1000);
    member_cache_set_enabled(c, true);
    uint64_t g = member_cache_gen(c);
    member_cache_drop(c, 8); /* a NOTIFY while the query ran */
    member_cache_put(c, g, 7, MEMBER_ROW, 1, 3, 0);
    struct member_entry e;
    assert_false(member_cache_get(c, 7, 1, &e));
    member_cache_free(c);
}

static void drop_forgets_and_ttl_bounds(void **state)
{
    struct member_cache *c = member_cache_new(64, 1000);
    member_cache_set_enabled(c, true);
    member_cache_put(c, member_cache_gen(c), 7, MEMBER_ROW, 1, 3, 0);
    member_cache_put(c, member_cache_gen(c), 9, MEMBER_ROW, 2, 1, 0);
    struct member_entry e;
    member_cache_drop(c, 7);
    assert_false(member_cache_get(c, 7, 1, &e));
    assert_true(member_cache_get(c, 9, 999, &e)); /* within the bound */
    assert_false(member_cache_get(c, 9, 1000, &e)); /* at the bound */
    member_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(off_until_enabled),
        cmocka_unit_test(lookup_older_than_a_drop_is_not_stored),
        cmocka_unit_test(drop_forgets_and_ttl_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
