/* tests/unit/test_resolve: net/resolve on a real event loop: numeric names, the hosts file
 * (every matching line in order, aliases, comments, re-read after it changes), the
 * localhost fallback, bad names, callbacks always from the loop, cancellation. No DNS
 * traffic: every name here is answered before evdns would be asked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/resolve.h"

struct got {
    int calls;
    int n;
    struct resolve_addr addrs[RESOLVE_MAX_ADDRS];
    char error[200];
};

static struct event_base *base;
static struct resolver *res;
static char hosts_path[64];
static int in_start;

static void on_done(const struct resolve_addr *addrs, int n, const char *error, void *arg)
{
    struct got *g = arg;
    assert_int_equal(in_start, 0);   /* never inside resolve_start */
    g->calls++;
    g->n = n;
    if (n)
        memcpy(g->addrs, addrs, (size_t)n * sizeof *addrs);
    snprintf(g->error, sizeof g->error, "%s", error ? error : "");
    if (n)
        assert_null(error);
    else
        assert_non_null(error);
}

static void write_hosts(const char *text)
{
    /* a new file renamed over the old one, as tools do */
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.new", hosts_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, hosts_path), 0);
}

static struct got lookup(const char *name)
{
    struct got g;
    memset(&g, 0, sizeof g);
    in_start = 1;
    struct resolve_req *q = resolve_start(res, name, on_done, &g);
    in_start = 0;
    assert_non_null(q);
    assert_int_equal(g.calls, 0);
    for (int i = 0; i < 100 && g.calls == 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(g.calls, 1);
    return g;
}

static int setup(void **state)
{
    (void)state;
    snprintf(hosts_path, sizeof hosts_path, "/tmp/test_resolve.%d.hosts", (int)getpid());
    write_hosts("# test hosts\n"
                "127.0.0.2   db.test   db-alias   # primary\n"
                "::1 other.test\n"
                "127.0.0.3\tdb.test\n"
                "127.0.0.2 DB.TEST\n"   /* same address again: not repeated */
                "not-an-address db.test\n"
                "10.0.0.9 xdb.test db.testx\n");
    base = event_base_new();
    assert_non_null(base);
    char err[128] = "";
    res = resolver_new(base, hosts_path, err, sizeof err);
    assert_non_null(res);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    resolver_free(res);
    event_base_free(base);
    unlink(hosts_path);
    return 0;
}

static void test_numeric(void **state)
{
    (void)state;
    struct got g = lookup("192.0.2.7");
    assert_int_equal(g.n, 1);
    assert_int_equal(g.addrs[0].family, AF_INET);
    assert_string_equal(g.addrs[0].text, "192.0.2.7");
    g = lookup("2001:db8::1");
    assert_int_equal(g.n, 1);
    assert_int_equal(g.addrs[0].family, AF_INET6);
    assert_string_equal(g.addrs[0].text, "2001:db8::1");
}

static void test_hosts_file_every_line_in_order(void **state)
{
    (void)state;
    struct got g = lookup("db.test");
    assert_int_equal(g.n, 2);
    assert_string_equal(g.addrs[0].text, "127.0.0.2");
    assert_string_equal(g.addrs[1].text, "127.0.0.3");
    g = lookup("DB-Alias");
    assert_int_equal(g.n, 1);
    assert_string_equal(g.addrs[0].text, "127.0.0.2");
    g = lookup("other.test");
    assert_int_equal(g.n, 1);
    assert_int_equal(g.addrs[0].family, AF_INET6);
    assert_string_equal(g.addrs[0].text, "::1");
    /* "primary" is in a comment: not a name */
    struct resolver_stats st;
    resolver_get_stats(res, &st);
    assert_int_equal(st.dns, 0);
}

static void test_hosts_file_reread_when_changed(void **state)
{
    (void)state;
    struct got g = lookup("db.test");
    assert_string_equal(g.addrs[0].text, "127.0.0.2");
    write_hosts("127.0.0.3 db.test\n");
    g = lookup("db.test");
    assert_int_equal(g.n, 1);
    assert_string_equal(g.addrs[0].text, "127.0.0.3");
    /* rewritten in place, same size: the modification time tells */
    FILE *f = fopen(hosts_path, "w");
    assert_non_null(f);
    fputs("127.0.0.4 db.test\n", f);
    fclose(f);
    struct timespec ts[2] = {{0, UTIME_NOW}, {12345, 0}};
    assert_int_equal(utimensat(AT_FDCWD, hosts_path, ts, 0), 0);
    g = lookup("db.test");
    assert_int_equal(g.n, 1);
    assert_string_equal(g.addrs[0].text, "127.0.0.4");
}

static void test_localhost_fallback(void **state)
{
    (void)state;
    struct got g = lookup("localhost");   /* not in this hosts file */
    assert_int_equal(g.n, 2);
    assert_string_equal(g.addrs[0].text, "127.0.0.1");
    assert_string_equal(g.addrs[1].text, "::1");
    g = lookup("api.localhost");
    assert_int_equal(g.n, 2);
}

static void test_bad_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "a b", "a,b", "/tmp/sock", "x\ny"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct got g = lookup(bad[i]);
        assert_int_equal(g.n, 0);
        assert_string_equal(g.error, "not a host name");
    }
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    struct got g = lookup(longname);
    assert_int_equal(g.n, 0);
}

static void test_cancel(void **state)
{
    (void)state;
    struct got g;
    memset(&g, 0, sizeof g);
    struct resolve_req *q = resolve_start(res, "db.test", on_done, &g);
    assert_non_null(q);
    resolve_cancel(q);
    resolve_cancel(NULL);
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(g.calls, 0);
    /* pending requests at resolver_free: never called back */
    struct resolve_req *q2 = resolve_start(res, "127.0.0.1", on_done, &g);
    assert_non_null(q2);
    resolver_free(res);
    res = NULL;
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(g.calls, 0);
    char err[128];
    res = resolver_new(base, hosts_path, err, sizeof err);
    assert_non_null(res);
}

static void test_cancel_dns_then_free(void **state)
{
    (void)state;
    struct got g;
    memset(&g, 0, sizeof g);
    /* not numeric, not in the hosts file: evdns is asked (no answer is awaited) */
    struct resolve_req *q = resolve_start(res, "no-such-host.invalid", on_done, &g);
    assert_non_null(q);
    struct resolver_stats st;
    resolve_cancel(q);
    resolver_get_stats(res, &st);
    resolver_free(res);   /* evdns still owes the cancelled lookup its answer */
    res = NULL;
    for (int i = 0; i < 20; i++)   /* the loop delivers it; the resolver is then freed (LSan checks) */
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(g.calls, 0);
    char err[128];
    res = resolver_new(base, hosts_path, err, sizeof err);
    assert_non_null(res);
}

static void test_missing_hosts_file(void **state)
{
    (void)state;
    char err[128];
    struct resolver *r2 = resolver_new(base, "/nonexistent/hosts", err, sizeof err);
    assert_non_null(r2);
    struct resolver *keep = res;
    res = r2;
    struct got g = lookup("localhost");
    assert_int_equal(g.n, 2);
    res = keep;
    resolver_free(r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numeric, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_file_every_line_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_file_reread_when_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_localhost_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_dns_then_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_hosts_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
