/* util/codec: strict base64url (JWT segments), standard base64 (tenant hash)
 * and lowercase hex (secrets at rest). Pure functions, no allocation. */
#include "util/codec.h"

#include <stdint.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_digits[] = "0123456789abcdef";

/* Value of one base64url character, or -1 outside the alphabet. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t b64url_encoded_len(size_t n)
{
    size_t full = n / 3, rem = n % 3;
    return full * 4 + (rem == 0 ? 0 : rem + 1);
}

/* Shared encoder: pad adds '=' to a multiple of 4 characters. */
static size_t b64_encode_with(const char *alphabet, int pad,
                              const unsigned char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    return b64_encode_with(b64url_alphabet, 0, in, n, out);
}

size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    return b64_encode_with(b64_alphabet, 1, in, n, out);
}

int b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    size_t i = 0, o = 0, rem = len % 4;
    int v[4];

    if (rem == 1 || (len > 0 && in == NULL))
        return -1;
    for (; i + 4 <= len; i += 4) {
        for (size_t k = 0; k < 4; k++)
            if ((v[k] = b64url_value((unsigned char)in[i + k])) < 0)
                return -1;
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (unsigned char)(w >> 16);
        out[o++] = (unsigned char)(w >> 8);
        out[o++] = (unsigned char)w;
    }
    if (rem > 0) {
        for (size_t k = 0; k < rem; k++)
            if ((v[k] = b64url_value((unsigned char)in[i + k])) < 0)
                return -1;
        if (rem == 2) {
            if (v[1] & 0x0f)            /* 4 leftover bits must be zero */
                return -1;
            out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        } else {                        /* rem == 3 */
            if (v[2] & 0x03)            /* 2 leftover bits must be zero */
                return -1;
            out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
            out[o++] = (unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2);
        }
    }
    *outlen = o;
    return 0;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int hex_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    if (len % 2 != 0 || (len > 0 && in == NULL))
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_digit((unsigned char)in[i]);
        int lo = hex_digit((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *outlen = len / 2;
    return 0;
}

int percent_decode(const char *s, size_t n, char *out, size_t outlen, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hex_digit(s[i + 1])) < 0 || (lo = hex_digit(s[i + 2])) < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}
