/* tests/unit/test_mlflow_config: the pure validator of MLflow configuration bodies
 * (mlflow_config_check_body / _check_configure), its error table, and the store's
 * statement builder (every statement fits MLFLOW_SQL_MAX for a valid tenant; a short
 * buffer or an invalid tenant fails instead of truncating). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "integrations/mlflow_config.h"
#include "integrations/mlflow_store.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &e);
    assert_non_null(j);
    return j;
}

static enum mlflow_config_error check(const char *body, struct mlflow_config_input *in)
{
    json_t *j = parse(body);
    enum mlflow_config_error e = mlflow_config_check_body(j, in);
    json_decref(j);
    return e;
}

static void body_ok(void **state)
{
    (void)state;
    struct mlflow_config_input in;
    json_t *j = parse("{\"trackingServerUrl\":\"http://m:5000\",\"authMethod\":\"basic\",\"timeout\":45,"
                      "\"verifySsl\":false,\"username\":\"  u  \",\"password\":\"p\",\"apiToken\":\"\"}");
    assert_int_equal(mlflow_config_check_body(j, &in), MLFLOW_CONFIG_OK);
    assert_int_equal((int)in.url_len, 13);
    assert_true(in.has_auth);
    assert_int_equal(in.auth, MLFLOW_AUTH_BASIC);
    assert_true(in.has_timeout);
    assert_int_equal(in.timeout, 45);
    assert_true(in.has_verify);
    assert_false(in.verify);
    assert_int_equal((int)in.user.len, 1); /* trimmed */
    assert_memory_equal(in.user.s, "u", 1);
    assert_null(in.token.s); /* empty = absent */
    json_decref(j);
    assert_int_equal(check("{}", &in), MLFLOW_CONFIG_OK);
    assert_false(in.has_auth || in.has_timeout || in.has_verify);
    assert_int_equal(check("{\"timeout\":null,\"verifySsl\":null}", &in), MLFLOW_CONFIG_OK);
}

static void body_errors(void **state)
{
    (void)state;
    struct mlflow_config_input in;
    assert_int_equal(check("{\"trackingServerUrl\":5}", &in), MLFLOW_CONFIG_URL_TYPE);
    assert_int_equal(check("{\"trackingServerUrl\":\"http://a\\u0000b\"}", &in), MLFLOW_CONFIG_URL_INVALID);
    assert_int_equal(check("{\"authMethod\":\"oauth\"}", &in), MLFLOW_CONFIG_AUTH_METHOD);
    assert_int_equal(check("{\"authMethod\":1}", &in), MLFLOW_CONFIG_AUTH_METHOD);
    /* timeout: 1..300 whole seconds, both bounds */
    assert_int_equal(check("{\"timeout\":0}", &in), MLFLOW_CONFIG_TIMEOUT);
    assert_int_equal(check("{\"timeout\":1}", &in), MLFLOW_CONFIG_OK);
    assert_int_equal(check("{\"timeout\":300}", &in), MLFLOW_CONFIG_OK);
    assert_int_equal(check("{\"timeout\":301}", &in), MLFLOW_CONFIG_TIMEOUT);
    assert_int_equal(check("{\"timeout\":2.5}", &in), MLFLOW_CONFIG_TIMEOUT);
    assert_int_equal(check("{\"timeout\":\"30\"}", &in), MLFLOW_CONFIG_TIMEOUT);
    assert_int_equal(check("{\"verifySsl\":\"yes\"}", &in), MLFLOW_CONFIG_VERIFY_SSL);
    assert_int_equal(check("{\"username\":1}", &in), MLFLOW_CONFIG_USERNAME_TYPE);
    assert_int_equal(check("{\"password\":[]}", &in), MLFLOW_CONFIG_PASSWORD_TYPE);
    assert_int_equal(check("{\"apiToken\":{}}", &in), MLFLOW_CONFIG_TOKEN_TYPE);
    assert_int_equal(check("{\"username\":\"a\\tb\"}", &in), MLFLOW_CONFIG_USERNAME_CHARS);
    assert_int_equal(check("{\"apiToken\":\"a\\u007fb\"}", &in), MLFLOW_CONFIG_TOKEN_CHARS);
    /* credentials: at most MLFLOW_CRED_MAX bytes, both sides */
    char body[512], cred[MLFLOW_CRED_MAX + 2];
    memset(cred, 'x', sizeof cred);
    cred[MLFLOW_CRED_MAX] = '\0';
    snprintf(body, sizeof body, "{\"password\":\"%s\"}", cred);
    assert_int_equal(check(body, &in), MLFLOW_CONFIG_OK);
    cred[MLFLOW_CRED_MAX] = 'x';
    cred[MLFLOW_CRED_MAX + 1] = '\0';
    snprintf(body, sizeof body, "{\"password\":\"%s\"}", cred);
    assert_int_equal(check(body, &in), MLFLOW_CONFIG_PASSWORD_LONG);
}

static void configure_url_first(void **state)
{
    (void)state;
    struct mlflow_config_input in;
    static const struct {
        const char *body;
        enum mlflow_config_error e;
    } cases[] = {
        {"{}", MLFLOW_CONFIG_URL_REQUIRED},
        {"{\"trackingServerUrl\":\"\",\"timeout\":0}", MLFLOW_CONFIG_URL_REQUIRED},
        {"{\"trackingServerUrl\":null}", MLFLOW_CONFIG_URL_REQUIRED},
        {"{\"trackingServerUrl\":false}", MLFLOW_CONFIG_URL_REQUIRED},
        {"{\"trackingServerUrl\":7}", MLFLOW_CONFIG_URL_TYPE},
        {"{\"trackingServerUrl\":\"http://m\",\"timeout\":0}", MLFLOW_CONFIG_TIMEOUT},
        {"{\"trackingServerUrl\":\"http://m\"}", MLFLOW_CONFIG_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = parse(cases[i].body);
        assert_int_equal(mlflow_config_check_configure(j, &in), cases[i].e);
        json_decref(j);
    }
}

static void error_table(void **state)
{
    (void)state;
    for (int e = 0; e < MLFLOW_CONFIG_ERROR_COUNT; e++) {
        assert_non_null(mlflow_config_error_message(e));
        int st = mlflow_config_error_status(e);
        assert_true(e == MLFLOW_CONFIG_OK ? st == 200 : st == 400 || st == 500);
    }
    assert_int_equal(mlflow_config_error_status(MLFLOW_CONFIG_SAVE_FAILED), 500);
    assert_int_equal(mlflow_config_error_status(MLFLOW_CONFIG_TIMEOUT), 400);
    assert_string_equal(mlflow_config_error_message(MLFLOW_CONFIG_PASSWORD_LONG), "Password must be at most 111 bytes");
    assert_string_equal(mlflow_config_error_message(MLFLOW_CONFIG_URL_REQUIRED), "MLFlow tracking server URL is required");
    assert_int_equal(mlflow_config_error_status(MLFLOW_CONFIG_ERROR_COUNT), 500);
}

static void store_statements(void **state)
{
    (void)state;
    char buf[MLFLOW_SQL_MAX];
    for (int w = 0; w < MLFLOW_SQL_COUNT; w++) {
        assert_int_equal(mlflow_store_sql(buf, sizeof buf, w, "a4ayc80OGd"), 0);
        assert_true(strlen(buf) > 20);
        bool tenant = strstr(buf, "\"a4ayc80OGd\".") != NULL;
        assert_null(strstr(buf, "%s")); /* every table filled in */
        /* the statements naming no tenant table build without a tenant; the others fail */
        int rc = mlflow_store_sql(buf, sizeof buf, w, NULL);
        assert_int_equal(rc, tenant ? -1 : 0);
    }
    assert_int_equal(mlflow_store_sql(buf, sizeof buf, MLFLOW_SQL_COUNT, "a4ayc80OGd"), -1);
    /* an invalid tenant name */
    assert_int_equal(mlflow_store_sql(buf, sizeof buf, MLFLOW_SQL_HISTORY, "bad\"name"), -1);
    assert_string_equal(buf, "");
}

static void store_truncation(void **state)
{
    (void)state;
    char buf[MLFLOW_SQL_MAX];
    assert_int_equal(mlflow_store_sql(buf, sizeof buf, MLFLOW_SQL_HISTORY, "a4ayc80OGd"), 0);
    size_t need = strlen(buf) + 1;
    assert_non_null(strstr(buf, "FROM \"a4ayc80OGd\".mlflow_sync_history ORDER BY"));
    char small[MLFLOW_SQL_MAX];
    assert_int_equal(mlflow_store_sql(small, need, MLFLOW_SQL_HISTORY, "a4ayc80OGd"), 0); /* exactly fits */
    assert_string_equal(small, buf);
    assert_int_equal(mlflow_store_sql(small, need - 1, MLFLOW_SQL_HISTORY, "a4ayc80OGd"), -1); /* one short */
    assert_string_equal(small, "");
    /* the lease and the limits are in the text */
    assert_int_equal(mlflow_store_sql(buf, sizeof buf, MLFLOW_SQL_SYNC_ACQUIRE, "a4ayc80OGd"), 0);
    assert_non_null(strstr(buf, "interval '60 seconds'"));
    assert_int_equal(mlflow_store_sql(buf, sizeof buf, MLFLOW_SQL_SYNC_STALE, "a4ayc80OGd"), 0);
    assert_non_null(strstr(buf, "LIMIT 1000)"));
    assert_int_equal(mlflow_store_sql(buf, sizeof buf, MLFLOW_SQL_SCHED_PURGE, NULL), 0);
    assert_non_null(strstr(buf, "'mlflow-schedule:%'")); /* a literal %, untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(body_ok),
        cmocka_unit_test(body_errors),
        cmocka_unit_test(configure_url_first),
        cmocka_unit_test(error_table),
        cmocka_unit_test(store_statements),
        cmocka_unit_test(store_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
