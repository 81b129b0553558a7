/* Unit tests for db/conninfo: the user's settings, the service's own (timeouts, keepalives,
 * application_name), target_session_attrs, and the settings refused at start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "db/conninfo.h"

static const char *get(const struct db_conninfo *ci, const char *k)
{
    const char *const *kw = db_conninfo_keywords(ci), *const *val = db_conninfo_values(ci);
    for (int i = 0; kw[i]; i++)
        if (strcmp(kw[i], k) == 0)
            return val[i];
    return NULL;
}

static void pieces_and_service_settings(void **state)
{
    struct db_conninfo_params p = {.host = "db.test", .port = "6432", .dbname = "vw", .user = "u",
                                   .statement_timeout_ms = 5000, .idle_in_transaction_timeout_ms = 10000};
    char err[160];
    struct db_conninfo *ci = db_conninfo_new(&p, err, sizeof err);
    assert_non_null(ci);
    assert_string_equal(get(ci, "host"), "db.test");
    assert_string_equal(get(ci, "port"), "6432");
    assert_string_equal(get(ci, "dbname"), "vw");
    assert_string_equal(get(ci, "user"), "u");
    assert_null(get(ci, "password"));
    assert_string_equal(get(ci, "options"), "-c statement_timeout=5000 -c idle_in_transaction_session_timeout=10000");
    assert_string_equal(get(ci, "application_name"), "integrationsd");
    assert_string_equal(get(ci, "target_session_attrs"), "read-write");
    assert_string_equal(get(ci, "keepalives"), "1");
    assert_string_equal(get(ci, "tcp_user_timeout"), "15000");
    assert_string_equal(get(ci, "gssencmode"), "disable");
    db_conninfo_free(ci);
}

static void url_wins_and_keeps_its_options(void **state)
{
    struct db_conninfo_params p = {
        .database_url = "postgresql://u@a.test:5432,b.test:5433/db?options=-c%20search_path%3Dx"
                        "&application_name=mine&target_session_attrs=any",
        .host = "ignored.test", .statement_timeout_ms = 1234, .idle_in_transaction_timeout_ms = 99};
    char err[160];
    struct db_conninfo *ci = db_conninfo_new(&p, err, sizeof err);
    assert_non_null(ci);
    assert_string_equal(get(ci, "host"), "a.test,b.test");
    assert_string_equal(get(ci, "port"), "5432,5433");
    assert_string_equal(get(ci, "options"),
                        "-c search_path=x -c statement_timeout=1234 -c idle_in_transaction_session_timeout=99");
    assert_string_equal(get(ci, "application_name"), "mine");
    assert_string_equal(get(ci, "target_session_attrs"), "any");
    db_conninfo_free(ci);
}

/* The gssencmode the settings p give libpq (NULL: none, libpq decides). */
static void expect_gssencmode(struct db_conninfo_params p, const char *want)
{
    char err[160];
    struct db_conninfo *ci = db_conninfo_new(&p, err, sizeof err);
    assert_non_null(ci);
    if (want)
        assert_string_equal(get(ci, "gssencmode"), want);
    else
        assert_null(get(ci, "gssencmode"));
    db_conninfo_free(ci);
}

/* GSSAPI encryption when asked for: the URL's gssencmode is kept; PGGSSENCMODE, a service
 * (keyword or PGSERVICE) are left for libpq to read (no gssencmode set); otherwise disable. */
static void gssencmode_when_asked_for(void **state)
{
    expect_gssencmode((struct db_conninfo_params){.database_url = "postgresql://u@a.test/db?gssencmode=require"},
                      "require");
    expect_gssencmode(
        (struct db_conninfo_params){.database_url = "postgresql://u@a.test/db", .env_gssencmode = "prefer"}, NULL);
    expect_gssencmode((struct db_conninfo_params){.host = "a.test", .env_gssencmode = ""}, "disable");
    /* a service file entry may ask for it: a keyword set here would override it */
    expect_gssencmode((struct db_conninfo_params){.database_url = "postgresql:///db?service=vw"}, NULL);
    expect_gssencmode((struct db_conninfo_params){.host = "a.test", .env_service = "vw"}, NULL);
}

static void refused_settings(void **state)
{
    char err[160];
    struct db_conninfo_params p = {.database_url = "postgresql://u@h/db?target_session_attrs=read-only",
                                   .statement_timeout_ms = 1, .idle_in_transaction_timeout_ms = 1};
    assert_null(db_conninfo_new(&p, err, sizeof err));
    assert_non_null(strstr(err, "target_session_attrs"));
    p.database_url = "postgresql://u@h/db?nosuchkeyword=1";
    assert_null(db_conninfo_new(&p, err, sizeof err));
    assert_string_equal(err, "DATABASE_URL is not a valid connection URI");
    db_conninfo_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pieces_and_service_settings),
        cmocka_unit_test(url_wins_and_keeps_its_options),
        cmocka_unit_test(gssencmode_when_asked_for),
        cmocka_unit_test(refused_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
