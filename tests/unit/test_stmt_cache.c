/* Unit tests for db/stmt_cache: off at 0, a text is prepared once then hit, names are
 * never reused, a full cache is emptied (and says so), drop forgets one statement, only
 * plain SELECT/WITH/INSERT/UPDATE/DELETE texts are eligible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/stmt_cache.h"

static void off_at_zero(void **state)
{
    (void)state;
    assert_null(stmt_cache_new(0));
    assert_null(stmt_cache_new(-1));
    stmt_cache_free(NULL);
    stmt_cache_clear(NULL);
    stmt_cache_drop(NULL, 1);
    assert_int_equal(stmt_cache_count(NULL), 0);
}

static void prepared_once_then_hit(void **state)
{
    (void)state;
    struct stmt_cache *sc = stmt_cache_new(4);
    char n1[STMT_NAME_MAX], n2[STMT_NAME_MAX], n3[STMT_NAME_MAX];
    uint32_t a, b, c;
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 1", n1, &a), STMT_PREPARE);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 1", n2, &b), STMT_HIT);
    assert_string_equal(n1, n2);
    assert_int_equal(a, b);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 2", n3, &c), STMT_PREPARE);
    assert_string_not_equal(n1, n3);
    assert_int_equal(stmt_cache_count(sc), 2);
    stmt_cache_free(sc);
}

static void full_cache_is_emptied_and_names_not_reused(void **state)
{
    (void)state;
    struct stmt_cache *sc = stmt_cache_new(2);
    char n[STMT_NAME_MAX], first[STMT_NAME_MAX];
    uint32_t id;
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 1", first, &id), STMT_PREPARE);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 2", n, &id), STMT_PREPARE);
    assert_int_equal(stmt_cache_count(sc), 2);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 3", n, &id), STMT_FULL);
    assert_int_equal(stmt_cache_count(sc), 1);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 2", n, &id), STMT_PREPARE); /* forgotten */
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 1", n, &id), STMT_FULL);
    assert_string_not_equal(n, first); /* the same text, a new name */
    /* cleared (connection closed): everything prepared afresh, with new names */
    stmt_cache_clear(sc);
    assert_int_equal(stmt_cache_count(sc), 0);
    char again[STMT_NAME_MAX];
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 1", again, &id), STMT_PREPARE);
    assert_string_not_equal(again, n);
    stmt_cache_free(sc);
}

static void drop_forgets_one(void **state)
{
    (void)state;
    struct stmt_cache *sc = stmt_cache_new(4);
    char n[STMT_NAME_MAX];
    uint32_t a, b;
    stmt_cache_lookup(sc, "SELECT 1", n, &a);
    stmt_cache_lookup(sc, "SELECT 2", n, &b);
    stmt_cache_drop(sc, a);
    stmt_cache_drop(sc, a); /* twice: ignored */
    stmt_cache_drop(sc, 12345);
    assert_int_equal(stmt_cache_count(sc), 1);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 2", n, &b), STMT_HIT);
    assert_int_equal(stmt_cache_lookup(sc, "SELECT 1", n, &a), STMT_PREPARE);
    stmt_cache_free(sc);
}

static void eligible_statements(void **state)
{
    (void)state;
    assert_true(stmt_cache_eligible("SELECT 1"));
    assert_true(stmt_cache_eligible("select id FROM t"));
    assert_true(stmt_cache_eligible("WITH k AS (INSERT INTO t VALUES (1)) SELECT 1"));
    assert_true(stmt_cache_eligible("INSERT INTO t VALUES ($1)"));
    assert_true(stmt_cache_eligible("UPDATE t SET a = 1"));
    assert_true(stmt_cache_eligible("DELETE FROM t"));
    assert_false(stmt_cache_eligible("DO $do$ BEGIN END $do$"));
    assert_false(stmt_cache_eligible("BEGIN"));
    assert_false(stmt_cache_eligible("CREATE OR REPLACE FUNCTION f() RETURNS void"));
    assert_false(stmt_cache_eligible("DEALLOCATE ALL"));
    assert_false(stmt_cache_eligible("SELECTED"));
    assert_false(stmt_cache_eligible(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(off_at_zero),
        cmocka_unit_test(prepared_once_then_hit),
        cmocka_unit_test(full_cache_is_emptied_and_names_not_reused),
        cmocka_unit_test(drop_forgets_one),
        cmocka_unit_test(eligible_statements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
