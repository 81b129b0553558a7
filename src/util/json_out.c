/* util/json_out: owns the direct JSON writer (see the header). The escaping and the UTF-8
 * check follow jansson's dump and string rules; tests/unit/test_json_out compares the two. */
#include "util/json_out.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_out_init(struct json_out *o)
{
    memset(o, 0, sizeof *o);
}

static bool reserve(struct json_out *o, size_t n)
{
    if (o->failed)
        return false;
    if (n <= o->cap - o->len)
        return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len < n) {
        if (cap > SIZE_MAX / 2) {
            o->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *b = realloc(o->buf, cap);
    if (!b) {
        o->failed = true;
        return false;
    }
    o->buf = b;
    o->cap = cap;
    return true;
}

void json_out_raw(struct json_out *o, const char *s, size_t n)
{
    if (reserve(o, n)) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
    }
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0: no overlong forms, no
 * surrogates, nothing past U+10FFFF (jansson's utf8_check_full). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t v;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, v = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, v = c & 0x07;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && v < 0x800) || (k == 4 && v < 0x10000) || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return k;
}

/* Bytes of the escaped text of s[0..n) without its quotes, or SIZE_MAX when s is not
 * valid UTF-8. */
static size_t escaped_len(const unsigned char *s, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c >= 0x80 ? utf8_seq(s + i, n - i) : 1;
        if (!k)
            return SIZE_MAX;
        i += k;
        if (c >= 0x80 || (c >= 0x20 && c != '"' && c != '\\'))
            out += k;
        else if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            out += 2;
        else
            out += 6; /* \u00XX */
    }
    return out;
}

bool json_out_valid(const char *s, size_t n)
{
    return escaped_len((const unsigned char *)s, n) != SIZE_MAX;
}

void json_out_str(struct json_out *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = escaped_len(s, n);
    if (len == SIZE_MAX) {
        o->failed = true;
        return;
    }
    if (len > SIZE_MAX - 2 || !reserve(o, len + 2))
        return;
    char *w = o->buf + o->len;
    *w++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x80 || (c >= 0x20 && c != '"' && c != '\\')) {
            *w++ = (char)c; /* UTF-8 checked above */
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        default: {
            static const char hex[] = "0123456789ABCDEF";
            *w++ = 'u', *w++ = '0', *w++ = '0';
            *w++ = hex[c >> 4], *w++ = hex[c & 15];
        }
        }
    }
    *w++ = '"';
    o->len = (size_t)(w - o->buf);
}

void json_out_int(struct json_out *o, long long v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", v);
    if (n > 0)
        json_out_raw(o, b, (size_t)n);
}

void json_out_real(struct json_out *o, double v, int precision)
{
    char b[40];
    int n = isfinite(v) ? snprintf(b, sizeof b - 2, "%.*g", precision, v) : -1;
    if (n <= 0 || (size_t)n >= sizeof b - 2) {
        o->failed = true;
        return;
    }
    char *comma = strchr(b, ','); /* a decimal comma of LC_NUMERIC: JSON's is a point */
    if (comma)
        *comma = '.';
    char *e = strchr(b, 'e');
    if (!e && !strchr(b, '.')) { /* a real stays a real when read back */
        memcpy(b + n, ".0", 2);
        n += 2;
    } else if (e) { /* the exponent without '+' and leading zeros: "1e+07" is "1e7" */
        char *d = e + 1 + (e[1] == '-'), *z = d;
        while (*z == '+' || (*z == '0' && z[1]))
            z++;
        memmove(d, z, (size_t)(b + n - z) + 1);
        n -= (int)(z - d);
    }
    json_out_raw(o, b, (size_t)n);
}

char *json_out_finish(struct json_out *o, size_t *len)
{
    if (!o->failed && reserve(o, 1)) {
        o->buf[o->len] = '\0';
        char *b = o->buf;
        *len = o->len;
        json_out_init(o);
        return b;
    }
    json_out_free(o);
    return NULL;
}

void json_out_free(struct json_out *o)
{
    free(o->buf);
    json_out_init(o);
}
