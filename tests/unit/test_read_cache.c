/* Unit tests for cache/read_cache: hit and miss, the ticket rule (an answer read before an
 * invalidation or a flush is never stored), tenant isolation of invalidations, the byte
 * budget with LRU eviction (both sides of the bound), oversized answers, disabled mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache/read_cache.h"

static bool get(struct read_cache *c, const char *key, const char *want)
{
    const char *b;
    size_t n;
    if (!read_cache_get(c, key, &b, &n))
        return false;
    assert_int_equal(n, strlen(want));
    assert_memory_equal(b, want, n);
    return true;
}

static bool put(struct read_cache *c, const char *tenant, const char *key, const char *body)
{
    struct read_cache_ticket t = read_cache_ticket(c, tenant);
    return read_cache_put(c, tenant, t, key, body, strlen(body));
}

static void hit_after_store(void **state)
{
    struct read_cache *c = read_cache_new(1 << 20);
    read_cache_set_enabled(c, true);
    assert_false(get(c, "a|list", "x"));
    assert_true(put(c, "tenantAAAA", "a|list", "[1,2]"));
    assert_true(get(c, "a|list", "[1,2]"));
    assert_true(put(c, "tenantAAAA", "a|list", "[3]")); /* replaced */
    assert_true(get(c, "a|list", "[3]"));
    struct read_cache_stats st;
    read_cache_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    read_cache_free(c);
}

static void ticket_before_invalidation_is_refused(void **state)
{
    struct read_cache *c = read_cache_new(1 << 20);
    read_cache_set_enabled(c, true);
    struct read_cache_ticket t = read_cache_ticket(c, "tenantAAAA");
    read_cache_invalidate(c, "tenantAAAA"); /* a write committed while the read ran */
    assert_false(read_cache_put(c, "tenantAAAA", t, "k", "old", 3));
    assert_false(get(c, "k", "old"));
    /* another tenant's invalidation does not matter */
    t = read_cache_ticket(c, "tenantAAAA");
    read_cache_invalidate(c, "tenantBBBB");
    assert_true(read_cache_put(c, "tenantAAAA", t, "k", "new", 3));
    assert_true(get(c, "k", "new"));
    read_cache_free(c);
}

static void ticket_before_flush_is_refused(void **state)
{
    struct read_cache *c = read_cache_new(1 << 20);
    read_cache_set_enabled(c, true);
    struct read_cache_ticket t = read_cache_ticket(c, "tenantAAAA");
    read_cache_flush(c);
    (void)read_cache_ticket(c, "tenantAAAA"); /* the tenant comes back with a new generation */
    assert_false(read_cache_put(c, "tenantAAAA", t, "k", "old", 3));
    read_cache_free(c);
}

static void invalidation_drops_only_that_tenant(void **state)
{
    struct read_cache *c = read_cache_new(1 << 20);
    read_cache_set_enabled(c, true);
    assert_true(put(c, "tenantAAAA", "a1", "1"));
    assert_true(put(c, "tenantAAAA", "a2", "2"));
    assert_true(put(c, "tenantBBBB", "b1", "3"));
    read_cache_invalidate(c, "tenantAAAA");
    assert_false(get(c, "a1", "1"));
    assert_false(get(c, "a2", "2"));
    assert_true(get(c, "b1", "3"));
    read_cache_free(c);
}

static void budget_evicts_least_recently_used(void **state)
{
    char body[200];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    /* room for exactly 4 entries of this size */
    struct read_cache *c = read_cache_new(1 << 20);
    read_cache_set_enabled(c, true);
    assert_true(put(c, "tenantAAAA", "k0", body));
    struct read_cache_stats st;
    read_cache_stats(c, &st);
    size_t one = st.bytes;
    read_cache_free(c);

    c = read_cache_new(one * 4);
    read_cache_set_enabled(c, true);
    for (int i = 0; i < 4; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        assert_true(put(c, "tenantAAAA", k, body));
    }
    read_cache_stats(c, &st);
    assert_int_equal(st.entries, 4); /* at the budget: nothing evicted */
    assert_int_equal(st.evictions, 0);
    assert_true(get(c, "k0", body)); /* k0 is now the most recent; k1 the least */
    assert_true(put(c, "tenantAAAA", "k4", body));
    read_cache_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.entries, 4);
    assert_true(st.bytes <= st.budget);
    assert_false(get(c, "k1", body));
    assert_true(get(c, "k0", body));
    assert_true(get(c, "k4", body));
    read_cache_free(c);
}

static void oversized_answer_is_not_stored(void **state)
{
    static char big[4096];
    memset(big, 'y', sizeof big - 1);
    struct read_cache *c = read_cache_new(8192); /* one answer may take a quarter */
    read_cache_set_enabled(c, true);
    assert_false(put(c, "tenantAAAA", "big", big));
    big[1500] = '\0';
    assert_true(put(c, "tenantAAAA", "small", big));
    read_cache_free(c);
}

static void disabled_serves_and_stores_nothing(void **state)
{
    struct read_cache *c = read_cache_new(1 << 20);
    assert_false(read_cache_enabled(c)); /* off until the LISTEN connection is up */
    assert_false(put(c, "tenantAAAA", "k", "v"));
    read_cache_set_enabled(c, true);
    assert_true(put(c, "tenantAAAA", "k", "v"));
    read_cache_set_enabled(c, false);
    assert_false(get(c, "k", "v"));
    read_cache_set_enabled(c, true); /* back: starts empty */
    assert_false(get(c, "k", "v"));
    read_cache_free(c);
}

static void many_entries_grow_the_table(void **state)
{
    struct read_cache *c = read_cache_new(64 << 20);
    read_cache_set_enabled(c, true);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key-%d", i);
        assert_true(put(c, i % 2 ? "tenantAAAA" : "tenantBBBB", k, k));
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key-%d", i);
        assert_true(get(c, k, k));
    }
    read_cache_invalidate(c, "tenantAAAA");
    struct read_cache_stats st;
    read_cache_stats(c, &st);
    assert_int_equal(st.entries, 2500);
    read_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_after_store),
        cmocka_unit_test(ticket_before_invalidation_is_refused),
        cmocka_unit_test(ticket_before_flush_is_refused),
        cmocka_unit_test(invalidation_drops_only_that_tenant),
        cmocka_unit_test(budget_evicts_least_recently_used),
        cmocka_unit_test(oversized_answer_is_not_stored),
        cmocka_unit_test(disabled_serves_and_stores_nothing),
        cmocka_unit_test(many_entries_grow_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
