/* tests/fuzz/fuzz_b64url: the codecs of util/codec on arbitrary bytes, as text and as data.
 * Properties:
 *   base64url: an accepted text s decodes to b64url_encoded_len^-1(|s|) bytes and
 *     encode(decode(s)) == s (strictness: one text per byte string); for any bytes x,
 *     decode(encode(x)) == x and encode(x) is OpenSSL's base64 with - _ and no padding;
 *   base64: b64_encode(x) equals OpenSSL's EVP_EncodeBlock(x);
 *   hex: an accepted text decodes to |s|/2 bytes and hex_encode(hex_decode(s)) is s in
 *     lower case; hex_decode(hex_encode(x)) == x.
 * Output buffers are allocated with exactly the documented size, so ASan catches any
 * write past it. */
#include "fuzz.h"

#include <ctype.h>
#include <openssl/evp.h>

#include "util/codec.h"

static void text_side(const char *s, size_t len)
{
    /* base64url decode */
    size_t cap = len * 3 / 4;
    unsigned char *out = fuzz_memdup("", cap);
    size_t outlen = (size_t)-1;
    if (b64url_decode(s, len, out, &outlen) == 0) {
        FUZZ_ASSERT(outlen <= cap);
        FUZZ_ASSERT(b64url_encoded_len(outlen) == len);
        char *back = malloc(len + 1);
        FUZZ_ASSERT(back != NULL);
        FUZZ_ASSERT(b64url_encode(out, outlen, back) == len);
        FUZZ_ASSERT(memcmp(back, s, len) == 0 && back[len] == '\0');
        free(back);
    }
    free(out);

    /* hex decode */
    unsigned char *hex = fuzz_memdup("", len / 2);
    if (hex_decode(s, len, hex, &outlen) == 0) {
        FUZZ_ASSERT(len % 2 == 0 && outlen == len / 2);
        char *back = malloc(len + 1);
        FUZZ_ASSERT(back != NULL);
        hex_encode(hex, outlen, back);
        for (size_t i = 0; i < len; i++)
            FUZZ_ASSERT(back[i] == tolower((unsigned char)s[i]));
        FUZZ_ASSERT(back[len] == '\0');
        free(back);
    }
    free(hex);
}

static void data_side(const unsigned char *x, size_t n)
{
    /* base64url */
    size_t el = b64url_encoded_len(n);
    char *enc = malloc(el + 1);
    FUZZ_ASSERT(enc != NULL);
    FUZZ_ASSERT(b64url_encode(x, n, enc) == el && strlen(enc) == el);
    unsigned char *dec = fuzz_memdup("", el * 3 / 4);
    size_t dl = 0;
    FUZZ_ASSERT(b64url_decode(enc, el, dec, &dl) == 0);
    FUZZ_ASSERT(dl == n && (n == 0 || memcmp(dec, x, n) == 0));
    free(dec);

    /* against OpenSSL */
    size_t sl = 4 * ((n + 2) / 3);
    unsigned char *ref = malloc(sl + 1);
    char *std = malloc(sl + 1);
    FUZZ_ASSERT(ref != NULL && std != NULL);
    FUZZ_ASSERT((size_t)EVP_EncodeBlock(ref, x, (int)n) == sl);
    FUZZ_ASSERT(b64_encode(x, n, std) == sl && memcmp(std, ref, sl + 1) == 0);
    for (size_t i = 0; i < el; i++) {
        char c = (char)ref[i];
        FUZZ_ASSERT(enc[i] == (c == '+' ? '-' : c == '/' ? '_' : c));
    }
    for (size_t i = el; i < sl; i++)
        FUZZ_ASSERT(ref[i] == '=');
    free(ref);
    free(std);
    free(enc);

    /* hex */
    char *h = malloc(2 * n + 1);
    FUZZ_ASSERT(h != NULL);
    hex_encode(x, n, h);
    FUZZ_ASSERT(strlen(h) == 2 * n);
    unsigned char *hb = fuzz_memdup("", n);
    FUZZ_ASSERT(hex_decode(h, 2 * n, hb, &dl) == 0 && dl == n && (n == 0 || memcmp(hb, x, n) == 0));
    free(hb);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    text_side((const char *)data, size);
    data_side(data, size);
    return 0;
}
