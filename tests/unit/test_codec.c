/* tests/unit/test_codec: strict base64url, standard base64 and hex codecs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "util/codec.h"

static int dec(const char *s, unsigned char *out, size_t *outlen)
{
    return b64url_decode(s, strlen(s), out, outlen);
}

static void test_b64url_known(void **state)
{
    (void)state;
    char out[64];
    unsigned char bin[64];
    size_t n = 0;

    assert_int_equal(b64url_encode((const unsigned char *)"", 0, out), 0);
    assert_string_equal(out, "");
    assert_int_equal(b64url_encode((const unsigned char *)"f", 1, out), 2);
    assert_string_equal(out, "Zg");
    assert_int_equal(b64url_encode((const unsigned char *)"fo", 2, out), 3);
    assert_string_equal(out, "Zm8");
    assert_int_equal(b64url_encode((const unsigned char *)"foo", 3, out), 4);
    assert_string_equal(out, "Zm9v");
    assert_int_equal(b64url_encode((const unsigned char *)"foobar", 6, out), 8);
    assert_string_equal(out, "Zm9vYmFy");

    /* '-' and '_' replace '+' and '/' */
    const unsigned char hi[] = { 0xfb, 0xff, 0xbf };
    b64url_encode(hi, sizeof hi, out);
    assert_string_equal(out, "-_-_");
    assert_int_equal(dec("-_-_", bin, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(bin, hi, 3);

    assert_int_equal(dec("", bin, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dec("Zm9vYmE", bin, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(bin, "fooba", 5);
}

static void test_b64url_encoded_len(void **state)
{
    (void)state;
    assert_int_equal(b64url_encoded_len(0), 0);
    assert_int_equal(b64url_encoded_len(1), 2);
    assert_int_equal(b64url_encoded_len(2), 3);
    assert_int_equal(b64url_encoded_len(3), 4);
    assert_int_equal(b64url_encoded_len(4), 6);
    assert_int_equal(b64url_encoded_len(32), 43);
}

static void test_b64url_round_trip(void **state)
{
    (void)state;
    unsigned char in[64] = {0}, back[64];
    char txt[100];

    for (size_t len = 0; len <= 64; len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len * 11 + 0x80);
        size_t tl = b64url_encode(in, len, txt);
        assert_int_equal(tl, b64url_encoded_len(len));
        assert_int_equal(strlen(txt), tl);
        assert_null(strchr(txt, '='));
        size_t n = 999;
        assert_int_equal(b64url_decode(txt, tl, back, &n), 0);
        assert_int_equal(n, len);
        if (len > 0)
            assert_memory_equal(back, in, len);
        assert_true(tl * 3 / 4 >= len);   /* the documented output bound holds */
    }
}

static void test_b64url_rejects(void **state)
{
    (void)state;
    unsigned char bin[64];
    size_t n = 0;

    assert_int_equal(dec("Zg==", bin, &n), -1);       /* padding */
    assert_int_equal(dec("Zm8=", bin, &n), -1);
    assert_int_equal(dec("Zg=", bin, &n), -1);
    assert_int_equal(dec(" Zm9v", bin, &n), -1);      /* whitespace */
    assert_int_equal(dec("Zm9v ", bin, &n), -1);
    assert_int_equal(dec("Zm\n9v", bin, &n), -1);
    assert_int_equal(dec("Zm9v\t", bin, &n), -1);
    assert_int_equal(dec("+/+/", bin, &n), -1);       /* standard alphabet */
    assert_int_equal(dec("ab+d", bin, &n), -1);
    assert_int_equal(dec("ab/d", bin, &n), -1);
    assert_int_equal(dec("Z", bin, &n), -1);          /* len % 4 == 1 */
    assert_int_equal(dec("Zm9vY", bin, &n), -1);
    assert_int_equal(dec("Zh", bin, &n), -1);         /* non-zero trailing bits */
    assert_int_equal(dec("Zm9", bin, &n), -1);
    assert_int_equal(dec("Zm-", bin, &n), -1);
    assert_int_equal(dec("Zm9vYmF", bin, &n), -1);
    assert_int_equal(dec("Zm9vYmE.", bin, &n), -1);   /* other characters */
    assert_int_equal(dec("Zm\x80v", bin, &n), -1);
    assert_int_equal(b64url_decode("Zm\0v", 4, bin, &n), -1);
    /* canonical forms of the same prefixes are accepted */
    assert_int_equal(dec("Zg", bin, &n), 0);
    assert_int_equal(dec("Zm8", bin, &n), 0);
}

static void test_b64_rfc4648(void **state)
{
    (void)state;
    static const char *const vec[][2] = {
        { "", "" },
        { "f", "Zg==" },
        { "fo", "Zm8=" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" },
        { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
    };
    char out[32];

    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t n = b64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]), out);
        assert_string_equal(out, vec[i][1]);
        assert_int_equal(n, strlen(vec[i][1]));
    }
    const unsigned char hi[] = { 0xfb, 0xff, 0xbf };
    b64_encode(hi, sizeof hi, out);
    assert_string_equal(out, "+/+/");
}

static void test_hex(void **state)
{
    (void)state;
    unsigned char in[256], back[256];
    char txt[513];
    size_t n = 0;

    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)i;
    hex_encode(in, sizeof in, txt);
    assert_int_equal(strlen(txt), 512);
    assert_memory_equal(txt, "000102", 6);
    assert_string_equal(txt + 500, "fafbfcfdfeff");
    assert_int_equal(hex_decode(txt, 512, back, &n), 0);
    assert_int_equal(n, 256);
    assert_memory_equal(back, in, 256);

    hex_encode(in, 0, txt);
    assert_string_equal(txt, "");
    assert_int_equal(hex_decode("", 0, back, &n), 0);
    assert_int_equal(n, 0);

    assert_int_equal(hex_decode("DEADbeef", 8, back, &n), 0);   /* either case */
    assert_int_equal(n, 4);
    assert_memory_equal(back, "\xde\xad\xbe\xef", 4);

    assert_int_equal(hex_decode("abc", 3, back, &n), -1);       /* odd length */
    assert_int_equal(hex_decode("0g", 2, back, &n), -1);        /* non-hex */
    assert_int_equal(hex_decode("zz", 2, back, &n), -1);
    assert_int_equal(hex_decode(" 0", 2, back, &n), -1);
    assert_int_equal(hex_decode("0x00", 4, back, &n), -1);
    assert_int_equal(hex_decode("00:0", 4, back, &n), -1);
    assert_int_equal(hex_decode("0\0", 2, back, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_known),
        cmocka_unit_test(test_b64url_encoded_len),
        cmocka_unit_test(test_b64url_round_trip),
        cmocka_unit_test(test_b64url_rejects),
        cmocka_unit_test(test_b64_rfc4648),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
