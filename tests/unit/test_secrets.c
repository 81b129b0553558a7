/* tests/unit/test_secrets: reference 4.4 vectors for schemes A and B, round
 * trips, clean failure on damaged input, masking and fingerprints. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secrets.h"
#include "util/codec.h"

#define DEFAULT_PASSWORD "default-password"
#define DEFAULT_KEY "default-key-change-this-in-production-32chars!!"
#define KEY_A_HEX "228ba9f3bc0995cdd290404b4ffce5d28720777d09b219b714992aee28044122"
#define KEY_B_HEX "64656661756c742d6b65792d6368616e67652d746869732d696e2d70726f6475"
#define IV_HEX "000102030405060708090a0b0c0d0e0f"
#define HELLO_CT "002c36587c9b8ec71835ca071a7fe0f5"
#define GHP_B IV_HEX ":17c914fd2a78a1eedde37102f6df1fb0"

static const unsigned char fixed_iv[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

/* scrypt is slow-ish: derive the default keys once for the whole group. */
static int group_setup(void **state)
{
    struct secrets *s = malloc(sizeof *s);
    if (s == NULL || secrets_init(s, DEFAULT_PASSWORD, DEFAULT_KEY) != 0) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int group_teardown(void **state)
{
    secrets_clear(*state);
    free(*state);
    return 0;
}

static void test_key_vectors(void **state)
{
    const struct secrets *s = *state;
    char hex[65];

    assert_int_equal(secrets_a_wait(s), 0); /* scrypt ran on its own thread */
    hex_encode(s->key_a, 32, hex);
    assert_string_equal(hex, KEY_A_HEX);
    hex_encode(s->key_b, 32, hex);
    assert_string_equal(hex, KEY_B_HEX);
    assert_memory_equal(s->key_b, "default-key-change-this-in-produ", 32);
}

/* The derivation waits for secrets_a_start; its thread says when it ends: the descriptor
 * turns readable (the loop then joins at once), stays readable after the join, and
 * secrets_clear closes it. */
static void test_derivation_done_fd(void **state)
{
    (void)state;
    struct secrets s;
    char hex[65];

    assert_int_equal(secrets_init(&s, DEFAULT_PASSWORD, DEFAULT_KEY), 0);
    int fd = secrets_a_done_fd(&s);
    assert_true(fd >= 0);
    assert_int_equal(secrets_a_state(&s), SECRETS_A_PENDING); /* not begun by init */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 300), 0);                    /* nor on its own */
    assert_int_equal(secrets_a_start(&s), 0);
    assert_int_equal(secrets_a_state(&s), SECRETS_A_DERIVING); /* being derived until joined */
    assert_int_equal(secrets_a_start(&s), 0);                  /* starting twice: nothing */
    assert_int_equal(poll(&p, 1, 30000), 1);
    assert_true(p.revents & POLLIN);
    assert_int_equal(secrets_a_state(&s), SECRETS_A_DERIVING); /* ended, not yet joined */
    assert_int_equal(secrets_a_wait(&s), 0);
    assert_int_equal(secrets_a_state(&s), SECRETS_A_READY);
    hex_encode(s.key_a, 32, hex);
    assert_string_equal(hex, KEY_A_HEX);
    assert_int_equal(secrets_a_done_fd(&s), fd); /* a watcher may still hold it */
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_int_equal(secrets_a_wait(&s), 0);    /* joining twice is harmless */
    secrets_clear(&s);
    assert_int_equal(fcntl(fd, F_GETFD), -1);   /* closed */
    secrets_clear(&s);                          /* and clearing twice closes nothing */
}

/* Never started: the first wait derives on the spot (and still says so on the
 * descriptor); cleared without a start, nothing is derived and nothing leaks. */
static void test_derivation_without_start(void **state)
{
    (void)state;
    struct secrets s;
    char hex[65];

    assert_int_equal(secrets_init(&s, DEFAULT_PASSWORD, DEFAULT_KEY), 0);
    struct pollfd p = {.fd = secrets_a_done_fd(&s), .events = POLLIN};
    assert_int_equal(secrets_a_wait(&s), 0);
    assert_int_equal(secrets_a_state(&s), SECRETS_A_READY);
    assert_int_equal(poll(&p, 1, 0), 1);
    hex_encode(s.key_a, 32, hex);
    assert_string_equal(hex, KEY_A_HEX);
    assert_int_equal(secrets_a_start(&s), 0); /* already there: nothing */
    secrets_clear(&s);

    assert_int_equal(secrets_init(&s, DEFAULT_PASSWORD, DEFAULT_KEY), 0);
    secrets_clear(&s);
}

static void test_a_vector(void **state)
{
    const struct secrets *s = *state;
    char iv_hex[33];
    char *ct = NULL, *pt = NULL;
    size_t len = 0;

    assert_int_equal(secrets_a_encrypt_iv(s, "hello", 5, fixed_iv, &ct, iv_hex), 0);
    assert_string_equal(ct, HELLO_CT);
    assert_string_equal(iv_hex, IV_HEX);
    free(ct);

    assert_int_equal(secrets_a_decrypt(s, HELLO_CT, IV_HEX, &pt, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(pt, "hello");
    secrets_free_plain(pt, len);
    /* uppercase hex from elsewhere still reads */
    assert_int_equal(secrets_a_decrypt(s, "002C36587C9B8EC71835CA071A7FE0F5", IV_HEX, &pt, &len), 0);
    assert_string_equal(pt, "hello");
    secrets_free_plain(pt, len);
}

static void test_b_vector(void **state)
{
    const struct secrets *s = *state;
    char *out = NULL, *pt = NULL;
    size_t len = 0;

    assert_int_equal(secrets_b_encrypt_iv(s, "ghp_example", 11, fixed_iv, &out), 0);
    assert_string_equal(out, GHP_B);
    free(out);

    assert_int_equal(secrets_b_decrypt(s, GHP_B, &pt, &len), 0);
    assert_int_equal(len, 11);
    assert_string_equal(pt, "ghp_example");
    secrets_free_plain(pt, len);
}

static void test_round_trips(void **state)
{
    const struct secrets *s = *state;
    char msg[200];
    char iv_hex[33], iv_hex2[33];
    char *ct = NULL, *ct2 = NULL, *pt = NULL;
    size_t len = 0;

    for (size_t n = 0; n < sizeof msg; n++)
        msg[n] = (char)('!' + (n * 7) % 90);
    for (size_t n = 0; n <= 130; n++) {
        /* scheme A, empty included; ciphertext length per reference 4.1 */
        assert_int_equal(secrets_a_encrypt(s, msg, n, &ct, iv_hex), 0);
        assert_int_equal(strlen(ct), 2 * 16 * (n / 16 + 1));
        assert_int_equal(strlen(iv_hex), 32);
        assert_int_equal(secrets_a_decrypt(s, ct, iv_hex, &pt, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(pt, msg, n);
        assert_int_equal(pt[n], '\0');
        secrets_free_plain(pt, len);
        free(ct);

        if (n == 0)
            continue;
        assert_int_equal(secrets_b_encrypt(s, msg, n, &ct), 0);
        assert_int_equal(strlen(ct), 33 + 2 * 16 * (n / 16 + 1));
        assert_int_equal(ct[32], ':');
        assert_int_equal(secrets_b_decrypt(s, ct, &pt, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(pt, msg, n);
        secrets_free_plain(pt, len);
        free(ct);
    }

    /* two encryptions of the same text differ (random IV) */
    assert_int_equal(secrets_a_encrypt(s, "same", 4, &ct, iv_hex), 0);
    assert_int_equal(secrets_a_encrypt(s, "same", 4, &ct2, iv_hex2), 0);
    assert_string_not_equal(iv_hex, iv_hex2);
    assert_string_not_equal(ct, ct2);
    free(ct);
    free(ct2);
    assert_int_equal(secrets_b_encrypt(s, "same", 4, &ct), 0);
    assert_int_equal(secrets_b_encrypt(s, "same", 4, &ct2), 0);
    assert_string_not_equal(ct, ct2);
    free(ct);
    free(ct2);

    /* binary plaintext with an embedded NUL survives */
    assert_int_equal(secrets_b_encrypt(s, "a\0b\xff", 4, &ct), 0);
    assert_int_equal(secrets_b_decrypt(s, ct, &pt, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(pt, "a\0b\xff", 4);
    secrets_free_plain(pt, len);
    free(ct);
}

static void expect_a_fail(const struct secrets *s, const char *hex, const char *iv)
{
    char *pt = (char *)"sentinel";
    size_t len = 99;

    assert_int_equal(secrets_a_decrypt(s, hex, iv, &pt, &len), -1);
    assert_null(pt);
    assert_int_equal(len, 0);
}

static void expect_b_fail(const struct secrets *s, const char *in)
{
    char *pt = (char *)"sentinel";
    size_t len = 99;

    assert_int_equal(secrets_b_decrypt(s, in, &pt, &len), -1);
    assert_null(pt);
    assert_int_equal(len, 0);
}

static void test_a_decrypt_failures(void **state)
{
    const struct secrets *s = *state;

    expect_a_fail(s, "002c36587c9b8ec71835ca071a7fe0f4", IV_HEX);         /* tampered */
    expect_a_fail(s, "ff2c36587c9b8ec71835ca071a7fe0f5", IV_HEX);
    expect_a_fail(s, HELLO_CT, "000102030405060708090a0b0c0d0e0e");       /* padding byte flipped */
    expect_a_fail(s, "002c36587c9b8ec71835ca071a7fe0", IV_HEX);           /* truncated block */
    expect_a_fail(s, "002c36587c9b8ec71835ca071a7fe0f", IV_HEX);          /* odd length */
    expect_a_fail(s, "", IV_HEX);                                         /* empty */
    expect_a_fail(s, "002c36587c9b8ec71835ca071a7fe0fg", IV_HEX);         /* non-hex */
    expect_a_fail(s, "002c36587c9b8ec7 835ca071a7fe0f5", IV_HEX);
    expect_a_fail(s, HELLO_CT, "000102030405060708090a0b0c0d0e");         /* short IV */
    expect_a_fail(s, HELLO_CT, IV_HEX "00");                              /* long IV */
    expect_a_fail(s, HELLO_CT, "");
    expect_a_fail(s, HELLO_CT, "000102030405060708090a0b0c0d0e0z");
    expect_a_fail(s, HELLO_CT, "00010203040506070809");
    expect_a_fail(s, NULL, IV_HEX);
    expect_a_fail(s, HELLO_CT, NULL);

    /* wrong key: derive a different password */
    struct secrets other;
    assert_int_equal(secrets_init(&other, "another-password", DEFAULT_KEY), 0);
    expect_a_fail(&other, HELLO_CT, IV_HEX);
    secrets_clear(&other);
}

static void test_b_decrypt_failures(void **state)
{
    const struct secrets *s = *state;

    expect_b_fail(s, IV_HEX ":17c914fd2a78a1eedde37102f6df1fb1");     /* tampered */
    expect_b_fail(s, "000102030405060708090a0b0c0d0e0e:17c914fd2a78a1eedde37102f6df1fb0");
    expect_b_fail(s, IV_HEX ":17c914fd2a78a1eedde37102f6df1f");       /* truncated */
    expect_b_fail(s, IV_HEX ":17c914fd2a78a1eedde37102f6df1fb");      /* odd length */
    expect_b_fail(s, IV_HEX ":");                                     /* empty ciphertext */
    expect_b_fail(s, IV_HEX ":17c914fd2a78a1eedde37102f6df1fbx");     /* non-hex */
    expect_b_fail(s, "0001020304050607:17c914fd2a78a1eedde37102f6df1fb0"); /* 8-byte IV */
    expect_b_fail(s, IV_HEX "00:17c914fd2a78a1eedde37102f6df1fb0");   /* 17-byte IV */
    expect_b_fail(s, ":17c914fd2a78a1eedde37102f6df1fb0");
    expect_b_fail(s, IV_HEX "17c914fd2a78a1eedde37102f6df1fb0");      /* missing ':' */
    expect_b_fail(s, IV_HEX ":17c914fd2a78a1eedde37102f6df1fb0:");    /* three parts */
    expect_b_fail(s, IV_HEX ":17c914fd2a78a1ee:dde37102f6df1fb0");
    expect_b_fail(s, IV_HEX "::17c914fd2a78a1eedde37102f6df1fb0");
    expect_b_fail(s, "");
    expect_b_fail(s, ":");
    expect_b_fail(s, "ghp_plaintext_token");
    expect_b_fail(s, " " GHP_B);
    expect_b_fail(s, NULL);

    struct secrets other;
    assert_int_equal(secrets_init(&other, DEFAULT_PASSWORD, "another-key"), 0);
    expect_b_fail(&other, GHP_B);
    secrets_clear(&other);
}

static void test_b_refuses_empty(void **state)
{
    const struct secrets *s = *state;
    char *out = (char *)"sentinel";

    assert_int_equal(secrets_b_encrypt(s, "", 0, &out), -1);
    assert_null(out);
    out = (char *)"sentinel";
    assert_int_equal(secrets_b_encrypt_iv(s, "", 0, fixed_iv, &out), -1);
    assert_null(out);
    assert_int_equal(secrets_b_encrypt(s, NULL, 0, &out), -1);
    assert_null(out);
}

static void test_key_b_derivation(void **state)
{
    (void)state;
    struct secrets k;
    char expect[33];

    /* "short" is padded with 27 '0' characters (reference 4.2) */
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, "short"), 0);
    assert_memory_equal(k.key_b, "short000000000000000000000000000", 32);
    secrets_clear(&k);
    /* empty key: 32 '0' */
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, ""), 0);
    assert_memory_equal(k.key_b, "00000000000000000000000000000000", 32);
    secrets_clear(&k);
    /* exactly 32 and longer ASCII: first 32 */
    memcpy(expect, "0123456789abcdef0123456789ABCDEF", 33);
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, expect), 0);
    assert_memory_equal(k.key_b, expect, 32);
    secrets_clear(&k);
    /* non-ASCII past the first 32 characters is cut off, as in Node */
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, "0123456789abcdef0123456789ABCDEF\xc3\xa9"),
                     0);
    assert_memory_equal(k.key_b, expect, 32);
    secrets_clear(&k);
    /* the cut would split a multi-byte character: Node throws, we refuse */
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, "0123456789abcdef0123456789ABCDE\xc3\xa9"),
                     -1);
    /* any non-ASCII character in the first 32 makes Node's key longer than
     * 32 bytes ("Invalid key length"), even when the byte count is exactly 32 */
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, "\xc3\xa9" "23456789abcdef0123456789ABCDEF"),
                     -1);
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, "cl\xc3\xa9"), -1);
    /* keys are wiped on failure */
    for (size_t i = 0; i < sizeof k.key_a; i++)
        assert_int_equal(k.key_a[i], 0);
    assert_int_equal(secrets_init(&k, NULL, DEFAULT_KEY), -1);
    assert_int_equal(secrets_init(&k, DEFAULT_PASSWORD, NULL), -1);
    assert_int_equal(secrets_init(NULL, DEFAULT_PASSWORD, DEFAULT_KEY), -1);
}

/* secrets_key_check, which start-up runs before it connects, agrees with secrets_init
 * on every key above. */
static void test_key_check_agrees_with_init(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "short", "", "0123456789abcdef0123456789ABCDEF", "0123456789abcdef0123456789ABCDEF\xc3\xa9",
        "0123456789abcdef0123456789ABCDE\xc3\xa9", "\xc3\xa9" "23456789abcdef0123456789ABCDEF",
        "cl\xc3\xa9", DEFAULT_KEY,
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        struct secrets k;
        int init = secrets_init(&k, DEFAULT_PASSWORD, keys[i]);
        secrets_clear(&k);
        assert_int_equal(secrets_key_check(keys[i]), init);
    }
    assert_int_equal(secrets_key_check("0123456789abcdef0123456789ABCDE\xc3\xa9"), -1);
    assert_int_equal(secrets_key_check(DEFAULT_KEY), 0);
    assert_int_equal(secrets_key_check(NULL), -1);
}

static void test_mask(void **state)
{
    (void)state;
    char out[SECRETS_MASK_MAX];

    secrets_mask("sk-abcdef1234", 13, out);
    assert_string_equal(out, "****...1234");
    secrets_mask("abc", 3, out);
    assert_string_equal(out, "****");
    secrets_mask("", 0, out);
    assert_string_equal(out, "****");
    secrets_mask(NULL, 0, out);
    assert_string_equal(out, "****");
    secrets_mask("wxyz", 4, out);
    assert_string_equal(out, "****...wxyz");
    /* the last 4 characters, not bytes */
    secrets_mask("key-\xc3\xa9xyz", 9, out);
    assert_string_equal(out, "****...\xc3\xa9xyz");
    secrets_mask("key-x\xc3\xa9yz", 9, out);
    assert_string_equal(out, "****...x\xc3\xa9yz");
    /* 4 three-byte characters: the widest tail that fits */
    secrets_mask("k-\xe2\x82\xac\xe2\x9c\x93\xe2\x82\xac\xe2\x9c\x93", 14, out);
    assert_string_equal(out, "****...\xe2\x82\xac\xe2\x9c\x93\xe2\x82\xac\xe2\x9c\x93");
    /* fewer than 4 characters even though more than 4 bytes */
    secrets_mask("\xc3\xa9\xc3\xa9\xc3\xa9", 6, out);
    assert_string_equal(out, "****");
}

static void test_fingerprint(void **state)
{
    const struct secrets *s = *state;
    char a[65], b[65], c[65];
    struct secrets other;

    assert_int_equal(secrets_fingerprint(s, "sk-abcdef1234", 13, a), 0);
    assert_int_equal(secrets_fingerprint(s, "sk-abcdef1234", 13, b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    for (size_t i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_int_equal(secrets_fingerprint(s, "sk-abcdef1235", 13, c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(secrets_fingerprint(s, "", 0, c), 0);
    assert_int_equal(strlen(c), 64);

    /* a different ENCRYPTION_KEY gives a different fingerprint */
    assert_int_equal(secrets_init(&other, DEFAULT_PASSWORD, "another-key"), 0);
    assert_int_equal(secrets_fingerprint(&other, "sk-abcdef1234", 13, c), 0);
    assert_string_not_equal(a, c);
    secrets_clear(&other);
    /* and the fingerprint key is not key_b itself */
    for (size_t i = 0; i < 32; i++)
        if (s->key_fp[i] != s->key_b[i])
            return;
    fail_msg("key_fp equals key_b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_vectors),
        cmocka_unit_test(test_derivation_done_fd),
        cmocka_unit_test(test_derivation_without_start),
        cmocka_unit_test(test_a_vector),
        cmocka_unit_test(test_b_vector),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_a_decrypt_failures),
        cmocka_unit_test(test_b_decrypt_failures),
        cmocka_unit_test(test_b_refuses_empty),
        cmocka_unit_test(test_key_b_derivation),
        cmocka_unit_test(test_key_check_agrees_with_init),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
