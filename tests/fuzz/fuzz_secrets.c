/* tests/fuzz/fuzz_secrets: the secrets-at-rest decoders on attacker-controlled stored
 * values (a row written by someone else, a restored backup), with fixed keys.
 * The first input byte picks the path:
 *   0: the rest is a scheme B value "ivhex:cipherhex" -> secrets_b_decrypt;
 *   1: the rest is "cipherhex\nivhex" (scheme A's two columns) -> secrets_a_decrypt;
 *   2: the rest is a plaintext: encrypt with both schemes (IV from the input) and
 *      decrypt again; also secrets_mask and secrets_fingerprint.
 * Properties: decryption never crashes and either fails with no output or returns a
 * NUL-terminated buffer of the stated length; decrypt(encrypt(x)) == x; scheme B
 * refuses the empty plaintext; the stored forms are lowercase hex of the documented
 * shape; a mask is "****" or "****..." + the last 4 characters. */
#include "fuzz.h"

#include "crypto/secrets.h"

static struct secrets keys; /* derived once (scrypt), read-only afterwards */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (secrets_init(&keys, "fuzz-password", "fuzz-key-0123456789abcdef") != 0 || secrets_a_wait(&keys) != 0)
        abort();
    return 0;
}

static bool lower_hex(const char *s, size_t n)
{
    return strspn(s, "0123456789abcdef") >= n;
}

static void check_plain(int rc, char *pt, size_t len)
{
    if (rc != 0) {
        FUZZ_ASSERT(rc == -1 && pt == NULL && len == 0);
        return;
    }
    FUZZ_ASSERT(pt != NULL && pt[len] == '\0');
    char mask[SECRETS_MASK_MAX], fp[65];
    secrets_mask(pt, len, mask);
    fuzz_check_cstr(mask, sizeof mask);
    FUZZ_ASSERT(secrets_fingerprint(&keys, pt, len, fp) == 0 && strlen(fp) == 64);
    secrets_free_plain(pt, len);
}

static void round_trip(const uint8_t *data, size_t size)
{
    unsigned char iv[16] = {0};
    memcpy(iv, data, size < 16 ? size : 16);
    const char *x = (const char *)data;

    /* scheme B */
    char *b = (char *)1;
    int rc = secrets_b_encrypt_iv(&keys, x, size, iv, &b);
    if (size == 0) {
        FUZZ_ASSERT(rc == -1 && b == NULL);
    } else {
        FUZZ_ASSERT(rc == 0 && b != NULL);
        size_t bl = strlen(b), ct = (size / 16 + 1) * 16;
        FUZZ_ASSERT(bl == 32 + 1 + 2 * ct && b[32] == ':' && lower_hex(b, 32) && lower_hex(b + 33, bl - 33));
        char *pt = NULL;
        size_t pl = 0;
        FUZZ_ASSERT(secrets_b_decrypt(&keys, b, &pt, &pl) == 0);
        FUZZ_ASSERT(pl == size && memcmp(pt, x, size) == 0 && pt[pl] == '\0');
        secrets_free_plain(pt, pl);
        /* the other key does not give the plaintext back */
        struct secrets other = keys;
        other.key_b[0] ^= 1;
        if (secrets_b_decrypt(&other, b, &pt, &pl) == 0) {
            FUZZ_ASSERT(pl != size || memcmp(pt, x, size) != 0);
            secrets_free_plain(pt, pl);
        }
        free(b);
    }

    /* scheme A */
    char *a = NULL, iv_hex[33];
    FUZZ_ASSERT(secrets_a_encrypt_iv(&keys, x, size, iv, &a, iv_hex) == 0);
    FUZZ_ASSERT(strlen(iv_hex) == 32 && lower_hex(iv_hex, 32));
    FUZZ_ASSERT(strlen(a) == 2 * (size / 16 + 1) * 16 && lower_hex(a, strlen(a)));
    char *pt = NULL;
    size_t pl = 0;
    FUZZ_ASSERT(secrets_a_decrypt(&keys, a, iv_hex, &pt, &pl) == 0);
    FUZZ_ASSERT(pl == size && (size == 0 || memcmp(pt, x, size) == 0) && pt[pl] == '\0');
    secrets_free_plain(pt, pl);
    free(a);

    /* mask: "****..." + the last 4 code points when they fit, else "****" (bytes compared,
     * so a NUL inside the tail counts too) */
    char mask[SECRETS_MASK_MAX];
    secrets_mask(x, size, mask);
    size_t start = size, chars = 0;
    while (start > 0 && chars < 4)
        chars += ((unsigned char)x[--start] & 0xC0) != 0x80;
    if (chars < 4 || size - start > SECRETS_MASK_MAX - 8) {
        FUZZ_ASSERT(memcmp(mask, "****", 5) == 0);
    } else {
        FUZZ_ASSERT(memcmp(mask, "****...", 7) == 0 && memcmp(mask + 7, x + start, size - start) == 0 &&
                    mask[7 + size - start] == '\0');
    }
    char fp1[65], fp2[65];
    FUZZ_ASSERT(secrets_fingerprint(&keys, x, size, fp1) == 0 && secrets_fingerprint(&keys, x, size, fp2) == 0);
    FUZZ_ASSERT(strcmp(fp1, fp2) == 0 && lower_hex(fp1, 64));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16 * 1024)
        return 0;
    unsigned mode = data[0] % 3;
    data++, size--;
    char *pt = (char *)1;
    size_t len = 1;

    if (mode == 0) {
        char *stored = fuzz_strndup(data, size);
        check_plain(secrets_b_decrypt(&keys, stored, &pt, &len), pt, len);
        free(stored);
    } else if (mode == 1) {
        const uint8_t *part[2];
        size_t plen[2];
        size_t n = fuzz_split(data, size, '\n', part, plen, 2);
        char *hex = fuzz_strndup(part[0], plen[0]);
        char *iv = n > 1 ? fuzz_strndup(part[1], plen[1]) : fuzz_strndup("", 0);
        check_plain(secrets_a_decrypt(&keys, hex, iv, &pt, &len), pt, len);
        free(hex);
        free(iv);
    } else {
        round_trip(data, size);
    }
    return 0;
}
