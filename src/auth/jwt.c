/* auth/jwt: HS256-only JWT verification (strict format, header, constant-time
 * signature check, then claims and expiry) and signing for tests and demos. */
#include "auth/jwt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/codec.h"

#define JWT_SIG_LEN 32
#define JWT_HEADER_JSON "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* HMAC-SHA256 of data under secret into mac[32]. Returns 0 or -1. */
static int jwt_hmac(const unsigned char *secret, size_t secret_len,
                    const char *data, size_t data_len, unsigned char mac[JWT_SIG_LEN])
{
    static const unsigned char empty_key[1] = { 0 };
    unsigned int mac_len = 0;

    if (secret_len > INT_MAX)
        return -1;
    if (secret == NULL || secret_len == 0) {
        secret = empty_key;
        secret_len = 0;
    }
    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)data, data_len,
             mac, &mac_len) == NULL || mac_len != JWT_SIG_LEN)
        return -1;
    return 0;
}

/* Decode one segment into a fresh buffer. Returns NULL on bad base64url or OOM. */
static unsigned char *jwt_decode_segment(const char *seg, size_t len, size_t *outlen)
{
    unsigned char *buf = malloc(len * 3 / 4 + 1);

    if (buf == NULL)
        return NULL;
    if (b64url_decode(seg, len, buf, outlen) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The header must be an object with alg exactly "HS256", typ absent or
 * "JWT", and no crit. */
static bool jwt_header_ok(const unsigned char *buf, size_t len)
{
    json_error_t err;
    json_t *hdr = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err);
    bool ok = false;

    if (hdr == NULL)
        return false;
    if (json_is_object(hdr)) {
        json_t *alg = json_object_get(hdr, "alg");
        json_t *typ = json_object_get(hdr, "typ");
        ok = json_is_string(alg) && json_string_length(alg) == 5 &&
             memcmp(json_string_value(alg), "HS256", 5) == 0 &&
             (typ == NULL || (json_is_string(typ) && json_string_length(typ) == 3 &&
                              memcmp(json_string_value(typ), "JWT", 3) == 0)) &&
             json_object_get(hdr, "crit") == NULL;
    }
    json_decref(hdr);
    return ok;
}

/* Copy a string claim into dst when it is a string that fits with its NUL. */
static bool jwt_copy_string(json_t *v, char *dst, size_t dst_size)
{
    size_t n;

    if (!json_is_string(v))
        return false;
    n = json_string_length(v);
    if (n >= dst_size || memchr(json_string_value(v), '\0', n) != NULL)
        return false;
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
    return true;
}

/* floor(a / b) for b > 0. */
static int64_t jwt_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

bool jwt_claims_expired(const struct jwt_claims *c, int64_t now_ms)
{
    if (c->expire_ms < (double)now_ms)
        return true;
    /* As jsonwebtoken: expired once the current whole second reaches exp. */
    return c->has_exp && jwt_floor_div(now_ms, 1000) >= c->exp;
}

/* Parse the payload and fill *c. Returns JWT_OK, JWT_EXPIRED or JWT_INVALID. */
static enum jwt_status jwt_claims_parse(const unsigned char *buf, size_t len,
                                        int64_t now_ms, struct jwt_claims *c)
{
    json_error_t err;
    json_t *pl = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err);
    enum jwt_status st = JWT_INVALID;
    json_t *v;

    if (pl == NULL)
        return JWT_INVALID;
    if (!json_is_object(pl))
        goto done;

    v = json_object_get(pl, "expire");
    if (!json_is_number(v))
        goto done;
    c->expire_ms = json_number_value(v);

    v = json_object_get(pl, "exp");
    if (v != NULL) {
        if (!json_is_integer(v))
            goto done;
        c->has_exp = true;
        c->exp = json_integer_value(v);
    }

    v = json_object_get(pl, "id");
    if (json_is_integer(v)) {
        c->has_id = true;
        c->id = json_integer_value(v);
    }
    v = json_object_get(pl, "organizationId");
    if (json_is_integer(v)) {
        c->has_org = true;
        c->organization_id = json_integer_value(v);
    }
    c->has_role = jwt_copy_string(json_object_get(pl, "roleName"),
                                  c->role_name, sizeof c->role_name);
    c->has_tenant = jwt_copy_string(json_object_get(pl, "tenantId"),
                                    c->tenant_id, sizeof c->tenant_id);

    st = jwt_claims_expired(c, now_ms) ? JWT_EXPIRED : JWT_OK;
done:
    json_decref(pl);
    return st;
}

enum jwt_status jwt_verify_hs256(const char *token, size_t len,
                                 const unsigned char *secret, size_t secret_len,
                                 int64_t now_ms, struct jwt_claims *out)
{
    struct jwt_claims claims;
    const char *dot1, *dot2;
    size_t hlen, plen, slen, n;
    unsigned char *hdr = NULL, *pl = NULL;
    unsigned char sig[JWT_SIG_LEN + 1];
    unsigned char mac[JWT_SIG_LEN];
    enum jwt_status st = JWT_INVALID;

    memset(&claims, 0, sizeof claims);
    if (out != NULL)
        memset(out, 0, sizeof *out);

    /* 1. Exactly three non-empty segments, within the length cap. */
    if (token == NULL || len == 0 || len > JWT_MAX_LEN)
        return JWT_INVALID;
    dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return JWT_INVALID;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL)
        return JWT_INVALID;
    if (memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return JWT_INVALID;
    hlen = (size_t)(dot1 - token);
    plen = (size_t)(dot2 - dot1 - 1);
    slen = len - (size_t)(dot2 + 1 - token);
    if (hlen == 0 || plen == 0 || slen == 0)
        return JWT_INVALID;

    /* 2. Strict base64url everywhere; a 32-byte MAC is 43 characters. */
    if (slen != b64url_encoded_len(JWT_SIG_LEN) ||
        b64url_decode(dot2 + 1, slen, sig, &n) != 0 || n != JWT_SIG_LEN)
        goto done;
    if ((hdr = jwt_decode_segment(token, hlen, &hlen)) == NULL)
        goto done;
    if ((pl = jwt_decode_segment(dot1 + 1, plen, &plen)) == NULL)
        goto done;

    /* 3. Header: HS256 only. */
    if (!jwt_header_ok(hdr, hlen))
        goto done;

    /* 4. Signature over the received "h.p" bytes, constant time. */
    if (jwt_hmac(secret, secret_len, token, (size_t)(dot2 - token), mac) != 0)
        goto done;
    if (CRYPTO_memcmp(sig, mac, JWT_SIG_LEN) != 0)
        goto done;

    /* 5. Claims, then expiry. */
    st = jwt_claims_parse(pl, plen, now_ms, &claims);
    if (st != JWT_INVALID && out != NULL)
        *out = claims;

done:
    free(hdr);
    free(pl);
    OPENSSL_cleanse(mac, sizeof mac);
    return st;
}

char *jwt_sign_hs256(const char *payload_json, const unsigned char *secret, size_t secret_len)
{
    const size_t hdr_json_len = sizeof JWT_HEADER_JSON - 1;
    size_t pl_json_len, h_len, p_len, s_len, total;
    unsigned char mac[JWT_SIG_LEN];
    char *tok;

    if (payload_json == NULL)
        return NULL;
    pl_json_len = strlen(payload_json);
    if (pl_json_len > (SIZE_MAX - 128) / 2)
        return NULL;
    h_len = b64url_encoded_len(hdr_json_len);
    p_len = b64url_encoded_len(pl_json_len);
    s_len = b64url_encoded_len(JWT_SIG_LEN);
    total = h_len + 1 + p_len + 1 + s_len;
    /* +1 for the NUL; b64url_encode writes a NUL after each piece, which the
     * next piece overwrites. */
    tok = malloc(total + 1);
    if (tok == NULL)
        return NULL;
    b64url_encode((const unsigned char *)JWT_HEADER_JSON, hdr_json_len, tok);
    tok[h_len] = '.';
    b64url_encode((const unsigned char *)payload_json, pl_json_len, tok + h_len + 1);
    tok[h_len + 1 + p_len] = '.';
    if (jwt_hmac(secret, secret_len, tok, h_len + 1 + p_len, mac) != 0) {
        free(tok);
        return NULL;
    }
    b64url_encode(mac, JWT_SIG_LEN, tok + h_len + 1 + p_len + 1);
    OPENSSL_cleanse(mac, sizeof mac);
    return tok;
}
