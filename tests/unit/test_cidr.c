/* tests/unit/test_cidr: CIDR list parsing and matching (the outbound deny list). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "net/cidr.h"

static struct cidr_list parse_ok(const char *text)
{
    struct cidr_list l;
    char err[256] = "x";
    assert_int_equal(cidr_list_parse(&l, text, err, sizeof err), 0);
    assert_string_equal(err, "");
    return l;
}

static void parse_fails(const char *text, const char *named)
{
    struct cidr_list l = {(struct cidr *)0x1, 42};
    char err[256] = "";
    assert_int_equal(cidr_list_parse(&l, text, err, sizeof err), -1);
    assert_non_null(strstr(err, named));
    assert_null(l.items);
    assert_int_equal(l.n, 0);
}

static void test_parse_valid(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("169.254.0.0/16, fe80::/10,10.1.2.3 ,  ::1, 0.0.0.0/0");
    assert_int_equal(l.n, 5);
    assert_int_equal(l.items[0].family, AF_INET);
    assert_int_equal(l.items[0].prefix, 16);
    const unsigned char v4[4] = {169, 254, 0, 0};
    assert_memory_equal(l.items[0].addr, v4, 4);
    assert_int_equal(l.items[1].family, AF_INET6);
    assert_int_equal(l.items[1].prefix, 10);
    assert_int_equal(l.items[1].addr[0], 0xfe);
    assert_int_equal(l.items[1].addr[1], 0x80);
    assert_int_equal(l.items[2].family, AF_INET);
    assert_int_equal(l.items[2].prefix, 32); /* bare address */
    assert_int_equal(l.items[3].family, AF_INET6);
    assert_int_equal(l.items[3].prefix, 128);
    assert_int_equal(l.items[4].prefix, 0);
    cidr_list_free(&l);
    assert_null(l.items);
    assert_int_equal(l.n, 0);
}

static void test_parse_clears_host_bits(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("10.1.2.3/8,192.168.255.255/23,2001:db8:ffff::1/33");
    const unsigned char a[4] = {10, 0, 0, 0};
    const unsigned char b[4] = {192, 168, 254, 0};
    assert_memory_equal(l.items[0].addr, a, 4);
    assert_memory_equal(l.items[1].addr, b, 4);
    unsigned char c[16];
    inet_pton(AF_INET6, "2001:db8:8000::", c);
    assert_memory_equal(l.items[2].addr, c, 16);
    cidr_list_free(&l);
}

static void test_parse_empty(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("");
    assert_int_equal(l.n, 0);
    cidr_list_free(&l);
    l = parse_ok(" , ,, ");
    assert_int_equal(l.n, 0);
    cidr_list_free(&l);
    l = parse_ok(NULL);
    assert_int_equal(l.n, 0);
    cidr_list_free(&l);
    cidr_list_free(NULL);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    parse_fails("10.0.0.0/33", "\"10.0.0.0/33\"");
    parse_fails("169.254.0.0/16,fe80::/129", "\"fe80::/129\"");
    parse_fails("10.0.0.0/", "\"10.0.0.0/\"");
    parse_fails("10.0.0.0/-1", "\"10.0.0.0/-1\"");
    parse_fails("10.0.0.0/+8", "\"10.0.0.0/+8\"");
    parse_fails("10.0.0.0/8x", "\"10.0.0.0/8x\"");
    parse_fails("10.0.0.0/8/8", "\"10.0.0.0/8/8\"");
    parse_fails("10.0.0/8", "\"10.0.0/8\"");
    parse_fails("256.0.0.0/8", "\"256.0.0.0/8\"");
    parse_fails("localhost", "\"localhost\"");
    parse_fails("1.2.3.4, nonsense ,5.6.7.8", "\"nonsense\"");
    parse_fails("/8", "\"/8\"");
    parse_fails("fe80::/99999999999999999999", "prefix");
    /* very long item: quoted but truncated */
    char longitem[300];
    memset(longitem, '1', sizeof longitem - 1);
    longitem[sizeof longitem - 1] = '\0';
    parse_fails(longitem, "too long");
}

static void test_parse_error_without_buffer(void **state)
{
    (void)state;
    struct cidr_list l;
    assert_int_equal(cidr_list_parse(&l, "bad", NULL, 0), -1);
}

static void test_match_ipv4(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("10.0.0.0/8,192.168.1.0/24,203.0.113.7/32");
    assert_true(cidr_list_match(&l, "10.0.0.0"));
    assert_true(cidr_list_match(&l, "10.255.255.255"));
    assert_false(cidr_list_match(&l, "11.0.0.0"));
    assert_false(cidr_list_match(&l, "9.255.255.255"));
    assert_true(cidr_list_match(&l, "192.168.1.0"));
    assert_true(cidr_list_match(&l, "192.168.1.255"));
    assert_false(cidr_list_match(&l, "192.168.0.255"));
    assert_false(cidr_list_match(&l, "192.168.2.0"));
    assert_true(cidr_list_match(&l, "203.0.113.7"));
    assert_false(cidr_list_match(&l, "203.0.113.6"));
    assert_false(cidr_list_match(&l, "203.0.113.8"));
    /* an IPv4 range never matches a plain IPv6 address */
    assert_false(cidr_list_match(&l, "::a00:1"));
    cidr_list_free(&l);

    l = parse_ok("0.0.0.0/0");
    assert_true(cidr_list_match(&l, "0.0.0.0"));
    assert_true(cidr_list_match(&l, "255.255.255.255"));
    assert_true(cidr_list_match(&l, "127.0.0.1"));
    assert_false(cidr_list_match(&l, "::1"));
    cidr_list_free(&l);

    /* non-byte-aligned prefix: 172.16.0.0/12 is 172.16.0.0 - 172.31.255.255 */
    l = parse_ok("172.16.0.0/12");
    assert_true(cidr_list_match(&l, "172.16.0.0"));
    assert_true(cidr_list_match(&l, "172.31.255.255"));
    assert_false(cidr_list_match(&l, "172.32.0.0"));
    assert_false(cidr_list_match(&l, "172.15.255.255"));
    cidr_list_free(&l);
}

static void test_match_ipv6(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("fe80::/10,2001:db8::1/128,fd00::/8");
    assert_true(cidr_list_match(&l, "fe80::1"));
    assert_true(cidr_list_match(&l, "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(cidr_list_match(&l, "fec0::"));
    assert_false(cidr_list_match(&l, "fe7f:ffff::"));
    assert_true(cidr_list_match(&l, "2001:db8::1"));
    assert_false(cidr_list_match(&l, "2001:db8::2"));
    assert_false(cidr_list_match(&l, "2001:db8::"));
    assert_true(cidr_list_match(&l, "fd12:3456::1"));
    assert_false(cidr_list_match(&l, "fc00::1"));
    assert_true(cidr_list_match(&l, "fe80::1%eth0")); /* zone id ignored */
    assert_true(cidr_list_match(&l, "[fe80::1]"));
    assert_false(cidr_list_match(&l, "169.254.1.1"));
    cidr_list_free(&l);

    l = parse_ok("::/0");
    assert_true(cidr_list_match(&l, "::"));
    assert_true(cidr_list_match(&l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(cidr_list_match(&l, "1.2.3.4"));
    cidr_list_free(&l);

    l = parse_ok("::1/128");
    assert_true(cidr_list_match(&l, "::1"));
    assert_true(cidr_list_match(&l, "0:0:0:0:0:0:0:1"));
    assert_false(cidr_list_match(&l, "::2"));
    assert_false(cidr_list_match(&l, "::"));
    cidr_list_free(&l);
}

static void test_match_ipv4_mapped(void **state)
{
    (void)state;
    /* a mapped address is checked against IPv4 ranges */
    struct cidr_list l = parse_ok("127.0.0.0/8,169.254.169.254");
    assert_true(cidr_list_match(&l, "::ffff:127.0.0.1"));
    assert_true(cidr_list_match(&l, "::FFFF:7f00:2"));
    assert_true(cidr_list_match(&l, "::ffff:169.254.169.254"));
    assert_true(cidr_list_match(&l, "[::ffff:127.1.2.3]"));
    assert_false(cidr_list_match(&l, "::ffff:128.0.0.1"));
    assert_false(cidr_list_match(&l, "::127.0.0.1")); /* IPv4-compatible is not mapped */
    cidr_list_free(&l);

    /* a range written in mapped form is an IPv4 range */
    l = parse_ok("::ffff:10.0.0.0/104");
    assert_int_equal(l.items[0].family, AF_INET);
    assert_int_equal(l.items[0].prefix, 8);
    assert_true(cidr_list_match(&l, "10.9.8.7"));
    assert_true(cidr_list_match(&l, "::ffff:10.9.8.7"));
    assert_false(cidr_list_match(&l, "11.0.0.1"));
    cidr_list_free(&l);
}

static void test_match_fails_closed(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("10.0.0.0/8");
    assert_true(cidr_list_match(&l, "garbage"));
    assert_true(cidr_list_match(&l, ""));
    assert_true(cidr_list_match(&l, NULL));
    assert_true(cidr_list_match(&l, "1.2.3"));
    assert_true(cidr_list_match(&l, "1.2.3.4.5"));
    assert_true(cidr_list_match(&l, "::g"));
    assert_true(cidr_list_match(&l, "[]"));
    char longip[200];
    memset(longip, '1', sizeof longip - 1);
    longip[sizeof longip - 1] = '\0';
    assert_true(cidr_list_match(&l, longip));
    cidr_list_free(&l);
}

static void test_match_empty_list(void **state)
{
    (void)state;
    struct cidr_list l = parse_ok("");
    assert_false(cidr_list_match(&l, "127.0.0.1"));
    assert_false(cidr_list_match(&l, "169.254.169.254"));
    assert_false(cidr_list_match(&l, "::1"));
    assert_false(cidr_list_match(&l, "::ffff:10.0.0.1"));
    assert_false(cidr_list_match(NULL, "10.0.0.1"));
    /* fail closed even then: an address that cannot be read is never trusted */
    assert_true(cidr_list_match(&l, "garbage"));
    cidr_list_free(&l);
}

/* The address test the database pool (an address as the host) and the proxy trust use. */
static void test_is_address(void **state)
{
    (void)state;
    const char *yes[] = {"127.0.0.1", "10.1.2.3", "::1", "fe80::1", "::ffff:192.0.2.1"};
    const char *no[] = {"", "localhost", "db.example", "[::1]", "fe80::1%eth0", "10.0.0.0/8",
                        "127.0.0.1:5432", "1.2.3", "/var/run/postgresql"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(cidr_is_address(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(cidr_is_address(no[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_clears_host_bits),
        cmocka_unit_test(test_parse_empty),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_error_without_buffer),
        cmocka_unit_test(test_match_ipv4),
        cmocka_unit_test(test_match_ipv6),
        cmocka_unit_test(test_match_ipv4_mapped),
        cmocka_unit_test(test_match_fails_closed),
        cmocka_unit_test(test_match_empty_list),
        cmocka_unit_test(test_is_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
