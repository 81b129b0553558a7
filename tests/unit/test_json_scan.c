/* tests/unit/test_json_scan: the budget pre-scan of JSON texts (util/json_scan), and
 * the experiment index of the MLflow mapper (one hash lookup, first id wins). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "integrations/mlflow_map.h"
#include "util/json_scan.h"

static struct json_scan_stats scan_ok(const char *text, size_t max_values, int max_depth)
{
    struct json_scan_stats st;
    char err[128] = "";
    assert_int_equal(json_scan(text, strlen(text), max_values, max_depth, &st, err, sizeof err), 0);
    return st;
}

static void scan_fails(const char *text, size_t max_values, int max_depth, const char *why)
{
    char err[128] = "";
    assert_int_equal(json_scan(text, strlen(text), max_values, max_depth, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, why));
}

static void test_counts_values_not_names(void **state)
{
    (void)state;
    struct json_scan_stats st = scan_ok("{\"a\":\"b\",\"c\":{\"d\":[1,-2.5e+3,true,null,\"x\"]}}", 100, 10);
    /* outer object, "b", inner object, array, 5 scalars */
    assert_int_equal(st.values, 9);
    assert_int_equal(st.max_depth, 3);
    st = scan_ok("  \"solo\"  ", 100, 10);
    assert_int_equal(st.values, 1);
    assert_int_equal(st.max_depth, 0);
    st = scan_ok("[{\"a\":1},\"b\",{\"c\":\"d\"}]", 100, 10);
    assert_int_equal(st.values, 6);
    st = scan_ok("", 100, 10);
    assert_int_equal(st.values, 0);
}

static void test_strings_hide_structure(void **state)
{
    (void)state;
    /* brackets, quotes and commas inside strings are not structure */
    struct json_scan_stats st = scan_ok("{\"k\\\"{[\":\"v\\\\\",\"w\":\"[[[[,,,\\\"]]\"}", 100, 1);
    assert_int_equal(st.values, 3);
    assert_int_equal(st.max_depth, 1);
}

static void test_value_budget_both_sides(void **state)
{
    (void)state;
    const char *three = "[{},{}]";
    assert_int_equal(scan_ok(three, 3, 2).values, 3);
    scan_fails(three, 2, 2, "more than 2 JSON values");
    /* member names are free, values are not */
    assert_int_equal(scan_ok("{\"a\":1,\"b\":2}", 3, 1).values, 3);
    scan_fails("{\"a\":1,\"b\":2}", 2, 1, "more than 2 JSON values");
    /* a stray colon in a malformed text cannot turn values into names */
    scan_fails("[\"a\":\"b\",\"c\",\"d\"]", 3, 2, "more than 3");
}

static void test_depth_budget_both_sides(void **state)
{
    (void)state;
    char deep[160];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    assert_int_equal(scan_ok(deep, 1000, 64).max_depth, 64);
    scan_fails(deep, 1000, 63, "nested deeper than 63 levels");
    /* a budget over the hard limit is cut to it */
    char *huge = malloc(2 * (JSON_SCAN_DEPTH_LIMIT + 1) + 1);
    memset(huge, '[', JSON_SCAN_DEPTH_LIMIT + 1);
    memset(huge + JSON_SCAN_DEPTH_LIMIT + 1, ']', JSON_SCAN_DEPTH_LIMIT + 1);
    huge[2 * (JSON_SCAN_DEPTH_LIMIT + 1)] = '\0';
    scan_fails(huge, 100000, 100000, "nested deeper");
    free(huge);
}

static void test_stops_early(void **state)
{
    (void)state;
    /* a page of a million empty objects is refused after the budget, not read to the end */
    size_t n = 1000000, len = 3 * n + 20;
    char *big = malloc(len);
    size_t at = (size_t)sprintf(big, "{\"experiments\":[");
    for (size_t i = 0; i < n; i++) {
        memcpy(big + at, "{},", 3);
        at += 3;
    }
    struct json_scan_stats st;
    char err[64];
    assert_int_equal(json_scan(big, at, 50000, 32, &st, err, sizeof err), -1);
    assert_int_equal(st.values, 50001);
    free(big);
}

static void test_experiment_index(void **state)
{
    (void)state;
    json_error_t je;
    json_t *exps = json_loads("[{\"experiment_id\":\"1\",\"name\":\"first\",\"artifact_location\":\"s3://a\"},"
                              "{\"experiment_id\":\"2\",\"name\":\"second\"},"
                              "{\"experiment_id\":\"1\",\"name\":\"duplicate\"},{\"name\":\"no id\"},5]",
                              0, &je);
    assert_non_null(exps);
    json_t *idx = mlflow_experiment_index(exps);
    assert_non_null(idx);
    struct mlflow_experiment_info b;
    const struct mlflow_experiment_info *e = mlflow_find_experiment(idx, "1", &b);
    assert_non_null(e);
    assert_string_equal(e->name, "first");
    assert_string_equal(e->artifact_location, "s3://a");
    e = mlflow_find_experiment(idx, "2", &b);
    assert_non_null(e);
    assert_string_equal(e->name, "second");
    assert_null(e->artifact_location);
    assert_null(mlflow_find_experiment(idx, "3", &b));
    assert_null(mlflow_find_experiment(idx, NULL, &b));
    json_decref(idx);
    /* not an array: an empty index */
    idx = mlflow_experiment_index(NULL);
    assert_non_null(idx);
    assert_null(mlflow_find_experiment(idx, "1", &b));
    json_decref(idx);
    json_decref(exps);
}

/* One hash lookup per run, not a scan of the listing: 100,000 lookups in a 100,000-
 * experiment index take milliseconds (a scan per lookup would compare 5e9 ids). The
 * bound is 100 times the expected time. */
static void test_experiment_index_is_a_hash(void **state)
{
    (void)state;
    enum { N = 100000 };
    json_t *exps = json_array();
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", i);
        json_array_append_new(exps, json_pack("{s:s,s:s}", "experiment_id", id, "name", "e"));
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *idx = mlflow_experiment_index(exps);
    assert_non_null(idx);
    struct mlflow_experiment_info b;
    int found = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", N - 1 - i);
        found += mlflow_find_experiment(idx, id, &b) != NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_int_equal(found, N);
    print_message("index of %d experiments built and searched %d times in %.1f ms\n", N, N, ms);
    assert_true(ms < 5000.0);
    json_decref(idx);
    json_decref(exps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_values_not_names),
        cmocka_unit_test(test_strings_hide_structure),
        cmocka_unit_test(test_value_budget_both_sides),
        cmocka_unit_test(test_depth_budget_both_sides),
        cmocka_unit_test(test_stops_early),
        cmocka_unit_test(test_experiment_index),
        cmocka_unit_test(test_experiment_index_is_a_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
