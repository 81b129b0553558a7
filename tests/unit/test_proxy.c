/* tests/unit/test_proxy: TRUST_PROXY parsing and the client-address rule (Express's
 * proxy-addr: the first untrusted address from the right), and the loop-lag sampler. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "net/proxy.h"
#include "ops/looplag.h"
#include "ops/metrics.h"

static struct proxy_trust parse_ok(const char *text)
{
    struct proxy_trust t;
    char err[256] = "";
    assert_int_equal(proxy_trust_parse(&t, text, err, sizeof err), 0);
    return t;
}

static const char *client(const struct proxy_trust *t, const char *peer, const char *xff)
{
    static char buf[64];
    proxy_client_addr(t, peer, xff, buf, sizeof buf);
    return buf;
}

static void test_parse(void **state)
{
    struct proxy_trust t = parse_ok("false");
    assert_int_equal(t.hops, 0);
    t = parse_ok("");
    assert_int_equal(t.hops, 0);
    t = parse_ok("true");
    assert_int_equal(t.hops, 1);
    t = parse_ok("3");
    assert_int_equal(t.hops, 3);
    assert_int_equal(t.cidrs.n, 0);
    t = parse_ok("10.0.0.0/8, 192.0.2.7");
    assert_int_equal(t.cidrs.n, 2);
    proxy_trust_free(&t);
    t = parse_ok("loopback,uniquelocal");
    assert_int_equal(t.cidrs.n, 6);
    proxy_trust_free(&t);
    char err[256];
    static const char *const bad[] = {"maybe", "65", "-1", "10.0.0.0/33", "3 proxies", ",", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = '\0';
        assert_int_equal(proxy_trust_parse(&t, bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "TRUST_PROXY"));
    }
}

static void test_off_uses_the_peer(void **state)
{
    struct proxy_trust t = parse_ok("false");
    assert_string_equal(client(&t, "198.51.100.1", "203.0.113.9"), "198.51.100.1");
}

static void test_true_is_one_hop_the_right_most(void **state)
{
    struct proxy_trust t = parse_ok("true");
    /* the left-most entry is whatever the client wrote: never the key */
    assert_string_equal(client(&t, "127.0.0.1", "6.6.6.6, 203.0.113.9"), "203.0.113.9");
    assert_string_equal(client(&t, "127.0.0.1", "203.0.113.9"), "203.0.113.9");
    assert_string_equal(client(&t, "127.0.0.1", NULL), "127.0.0.1");
    assert_string_equal(client(&t, "127.0.0.1", " 203.0.113.9 ,"), "203.0.113.9");
}

static void test_hop_count(void **state)
{
    struct proxy_trust t = parse_ok("2");
    assert_string_equal(client(&t, "127.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2"), "203.0.113.9");
    /* fewer hops than trusted: the left-most */
    assert_string_equal(client(&t, "127.0.0.1", "10.0.0.2"), "10.0.0.2");
}

static void test_cidr_list(void **state)
{
    struct proxy_trust t = parse_ok("127.0.0.1, 10.0.0.0/8");
    /* walk from the right past trusted proxies to the first untrusted address */
    assert_string_equal(client(&t, "127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.2.3, 10.0.0.2"), "203.0.113.9");
    /* an untrusted peer is the client, whatever it claims */
    assert_string_equal(client(&t, "198.51.100.1", "203.0.113.9"), "198.51.100.1");
    /* all trusted: the left-most */
    assert_string_equal(client(&t, "127.0.0.1", "10.0.0.9, 10.0.0.2"), "10.0.0.9");
    /* IPv6 and IPv4-mapped forms */
    assert_string_equal(client(&t, "::ffff:127.0.0.1", "2001:db8::1"), "2001:db8::1");
    proxy_trust_free(&t);
}

static void test_garbage_entry_stops_at_its_reporter(void **state)
{
    struct proxy_trust t = parse_ok("3");
    assert_string_equal(client(&t, "127.0.0.1", "6.6.6.6, not-an-ip, 10.0.0.2"), "10.0.0.2");
    assert_string_equal(client(&t, "127.0.0.1", "junk"), "127.0.0.1");
}

static void test_looplag_warns_past_100ms_at_most_once_a_second(void **state)
{
    struct looplag *l = looplag_start(NULL);
    assert_non_null(l);
    assert_false(looplag_sample(l, 99000, 1000000));
    assert_false(looplag_sample(l, 100000, 1000000));
    assert_true(looplag_sample(l, 100001, 1000000));
    assert_false(looplag_sample(l, 500000, 1500000));  /* within a second of the last */
    assert_true(looplag_sample(l, 500000, 2000001));
    looplag_free(l);
    char *text = metrics_render();
    assert_non_null(text);
    assert_non_null(strstr(text, "# TYPE integrationsd_event_loop_lag_ms histogram"));
    assert_non_null(strstr(text, "integrationsd_event_loop_lag_ms_count 5"));
    assert_non_null(strstr(text, "integrationsd_event_loop_lag_ms_bucket{le=\"100\"} 2"));
    free(text);
    metrics_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_off_uses_the_peer),
        cmocka_unit_test(test_true_is_one_hop_the_right_most),
        cmocka_unit_test(test_hop_count),
        cmocka_unit_test(test_cidr_list),
        cmocka_unit_test(test_garbage_entry_stops_at_its_reporter),
        cmocka_unit_test(test_looplag_warns_past_100ms_at_most_once_a_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
