/* Unit tests for config: defaults, required secrets, validation messages that
 * name the variable and never its value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct env {
    const char *kv[64];
};

static const char *lookup(const char *name, void *arg)
{
    struct env *e = arg;
    for (int i = 0; e->kv[i]; i += 2)
        if (strcmp(e->kv[i], name) == 0)
            return e->kv[i + 1];
    return NULL;
}

#define BASE "JWT_SECRET", "s3cret-value", "ENCRYPTION_KEY", "k", "ENCRYPTION_PASSWORD", "p", \
             "ENCRYPTION_ALGORITHM", "aes-256-cbc"

static void defaults(void **state)
{
    struct env e = {{BASE, NULL}};
    struct config c;
    char err[256];
    assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), 0);
    assert_int_equal(c.port, 3000);
    assert_string_equal(c.bind_address, "0.0.0.0");
    assert_int_equal(c.db_pool_size, 4);
    assert_string_equal(c.redis_url, "redis://localhost:6379/0");
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_string_equal(c.mlflow_sync_schedule, "0 * * * *");
    assert_string_equal(c.github_api_url, "https://api.github.com");
    assert_string_equal(c.slack_api_base, "https://slack.com/api");
    assert_null(c.allowed_origins);
    assert_int_equal(c.proxy_trust.hops, 0);
    assert_int_equal(c.proxy_trust.cidrs.n, 0);
    assert_int_equal(c.http_max_header_bytes, 32768);
    assert_int_equal(c.http_max_headers, 100);
    assert_int_equal(c.max_buffered_body_bytes, 33554432);
    assert_int_equal(c.max_buffered_header_bytes, 16777216);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.log_format, LOG_FORMAT_JSON);
    assert_string_equal(c.redis_sentinels, "");
    assert_string_equal(c.redis_sentinel_master, "mymaster");
    assert_string_equal(c.resolver_hosts_file, "/etc/hosts");
    config_free(&c);
}

static void failover_settings(void **state)
{
    struct env e = {{BASE, "REDIS_SENTINELS", "127.0.0.1:26379", "REDIS_SENTINEL_MASTER", "", NULL}};
    struct config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "REDIS_SENTINEL_MASTER"));
    struct env e2 = {{BASE, "RESOLVER_HOSTS_FILE", "", NULL}};
    assert_int_equal(config_load(&c, lookup, &e2, err, sizeof err), -1);
    assert_non_null(strstr(err, "RESOLVER_HOSTS_FILE"));
    struct env e3 = {{BASE, "REDIS_SENTINELS", "a:1,b:2", "REDIS_SENTINEL_MASTER", "cache",
                      "RESOLVER_HOSTS_FILE", "/run/hosts", NULL}};
    assert_int_equal(config_load(&c, lookup, &e3, err, sizeof err), 0);
    assert_string_equal(c.redis_sentinels, "a:1,b:2");
    assert_string_equal(c.redis_sentinel_master, "cache");
    assert_string_equal(c.resolver_hosts_file, "/run/hosts");
    config_free(&c);
}

static void required_secrets(void **state)
{
    static const char *const names[] = {"JWT_SECRET", "ENCRYPTION_KEY", "ENCRYPTION_PASSWORD",
                                        "ENCRYPTION_ALGORITHM"};
    for (int i = 0; i < 4; i++) {
        struct env e = {{BASE, NULL}};
        for (int j = 0; e.kv[j]; j += 2)
            if (strcmp(e.kv[j], names[i]) == 0)
                e.kv[j + 1] = ""; /* empty counts as missing */
        struct config c;
        char err[256] = "";
        assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), -1);
        assert_non_null(strstr(err, names[i]));
    }
}

static void algorithm_must_be_cbc(void **state)
{
    struct env e = {{"JWT_SECRET", "x", "ENCRYPTION_KEY", "k", "ENCRYPTION_PASSWORD", "p",
                     "ENCRYPTION_ALGORITHM", "AES-256-CBC", NULL}};
    struct config c;
    char err[256];
    assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), 0);
    config_free(&c);
    e.kv[7] = "aes-128-cbc";
    assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "ENCRYPTION_ALGORITHM"));
}

static void bad_values_name_the_variable(void **state)
{
    static const char *const cases[][2] = {
        {"PORT", "70000"},        {"PORT", "abc"},          {"DB_POOL_SIZE", "0"},
        {"MAX_BODY_BYTES", "-1"}, {"TRUST_PROXY", "maybe"}, {"TRUST_PROXY", "65"},
        {"TRUST_PROXY", "10.0.0.0/33"}, {"HTTP_MAX_HEADER_BYTES", "1023"}, {"HTTP_MAX_HEADERS", "0"},
        {"MAX_BUFFERED_BODY_BYTES", "1000"}, {"MAX_BUFFERED_HEADER_BYTES", "32767"},
        {"LOG_LEVEL", "loud"},
        {"LOG_FORMAT", "xml"},    {"GITHUB_API_URL", "ftp://x"}, {"DATABASE_URL", "mysql://x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct env e = {{BASE, cases[i][0], cases[i][1], NULL}};
        struct config c;
        char err[256] = "";
        assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), -1);
        assert_non_null(strstr(err, cases[i][0]));
        assert_null(strstr(err, "s3cret-value"));
    }
}

static void overrides(void **state)
{
    struct env e = {{BASE, "PORT", "0", "TRUST_PROXY", "yes", "REDIS_URL", "", "LOG_LEVEL", "DEBUG",
                     "MAX_BODY_BYTES", "1024", NULL}};
    struct config c;
    char err[256];
    assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), 0);
    assert_int_equal(c.port, 0);
    assert_int_equal(c.proxy_trust.hops, 1);
    assert_string_equal(c.redis_url, "");
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.max_body_bytes, 1024);
    config_free(&c);
}

static void variable_list(void **state)
{
    const char *const *names = config_variable_names();
    int n = 0, seen_jwt = 0;
    for (; names[n]; n++)
        seen_jwt += strcmp(names[n], "JWT_SECRET") == 0;
    assert_true(n >= 30);
    assert_int_equal(seen_jwt, 1);
}

struct problems {
    int n;
    char text[2048];
};

static void collect(const char *problem, void *arg)
{
    struct problems *p = arg;
    p->n++;
    strncat(p->text, problem, sizeof p->text - strlen(p->text) - 2);
    strcat(p->text, "\n");
}

/* --check-config reports every problem at once, by name, never a value. */
/* The limits that used to be fixed in app.c and main.c: today's values by default, each
 * bound accepted and the value just past it refused, naming the variable. */
static void former_hard_limits(void **state)
{
    static const struct {
        const char *name, *min, *below, *max, *above;
        size_t off;
        int def;
    } lim[] = {
#define L(n, f, d, lo, blo, hi, ahi) {n, lo, blo, hi, ahi, offsetof(struct config, f), d}
        L("DB_PIPELINE_DEPTH", db_pipeline_depth, 64, "1", "0", "1024", "1025"),
        L("DB_MAX_QUEUE", db_max_queue, 8192, "1", "0", "1000000", "1000001"),
        L("DB_CONNECT_TIMEOUT_MS", db_connect_timeout_ms, 5000, "100", "99", "600000", "600001"),
        L("DB_STALL_TIMEOUT_MS", db_stall_timeout_ms, 15000, "100", "99", "3600000", "3600001"),
        L("DB_STATEMENT_TIMEOUT_MS", db_statement_timeout_ms, 5000, "1", "0", "3600000", "3600001"),
        L("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", db_idle_in_transaction_timeout_ms, 10000, "1", "0",
          "3600000", "3600001"),
        L("HTTP_MAX_CONNECTIONS", http_max_connections, 10000, "1", "0", "1000000", "1000001"),
        L("HTTP_REQUEST_TIMEOUT_S", http_request_timeout_s, 30, "1", "0", "3600", "3601"),
        L("SHUTDOWN_DRAIN_MS", shutdown_drain_ms, 10000, "0", "-1", "600000", "600001"),
        L("EVENTS_MAX_QUEUE", events_max_queue, 10000, "1", "0", "10000000", "10000001"),
        L("AUTH_CACHE_ENTRIES", auth_cache_entries, 4096, "1", "0", "1048576", "1048577"),
#undef L
    };
    struct config c;
    char err[256];
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        struct env e = {{BASE, NULL}};
        assert_int_equal(config_load(&c, lookup, &e, err, sizeof err), 0);
        assert_int_equal(*(int *)((char *)&c + lim[i].off), lim[i].def);
        config_free(&c);
        const char *ok[] = {lim[i].min, lim[i].max}, *bad[] = {lim[i].below, lim[i].above, "12x"};
        for (int j = 0; j < 2; j++) {
            struct env g = {{BASE, lim[i].name, ok[j], NULL}};
            assert_int_equal(config_load(&c, lookup, &g, err, sizeof err), 0);
            assert_int_equal(*(int *)((char *)&c + lim[i].off), atoi(ok[j]));
            config_free(&c);
        }
        for (int j = 0; j < 3; j++) {
            struct env b = {{BASE, lim[i].name, bad[j], NULL}};
            assert_int_equal(config_load(&c, lookup, &b, err, sizeof err), -1);
            assert_non_null(strstr(err, lim[i].name));
        }
    }
}

static void check_reports_every_problem(void **state)
{
    struct env e = {{"JWT_SECRET", "", "ENCRYPTION_PASSWORD", "pw-value-9f3", "PORT", "70000",
                     "DB_POOL_SIZE", "0", "LOG_LEVEL", "loud", NULL}};
    struct problems p = {0};
    assert_int_equal(config_check(lookup, &e, collect, &p), 6);
    assert_int_equal(p.n, 6);
    static const char *const named[] = {"JWT_SECRET", "ENCRYPTION_KEY", "ENCRYPTION_ALGORITHM",
                                        "PORT", "DB_POOL_SIZE", "LOG_LEVEL"};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        assert_non_null(strstr(p.text, named[i]));
    assert_null(strstr(p.text, "ENCRYPTION_PASSWORD"));
    assert_null(strstr(p.text, "pw-value-9f3"));
    assert_null(strstr(p.text, "70000"));
    assert_null(strstr(p.text, "loud"));

    /* a valid environment: nothing reported; a cross check (algorithm) still is */
    struct env ok = {{BASE, NULL}};
    struct problems none = {0};
    assert_int_equal(config_check(lookup, &ok, collect, &none), 0);
    assert_int_equal(none.n, 0);
    ok.kv[7] = "aes-128-cbc";
    assert_int_equal(config_check(lookup, &ok, collect, &none), 1);
    assert_non_null(strstr(none.text, "ENCRYPTION_ALGORITHM"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(required_secrets),
        cmocka_unit_test(algorithm_must_be_cbc),
        cmocka_unit_test(bad_values_name_the_variable),
        cmocka_unit_test(overrides),
        cmocka_unit_test(failover_settings),
        cmocka_unit_test(variable_list),
        cmocka_unit_test(check_reports_every_problem),
        cmocka_unit_test(former_hard_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
