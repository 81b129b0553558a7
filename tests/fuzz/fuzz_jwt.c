/* tests/fuzz/fuzz_jwt: jwt_verify_hs256 on hostile tokens against a fixed secret.
 * The first input byte picks how the rest becomes a token:
 *   0: the bytes are the token as received (format, base64url and signature checks);
 *   1: the bytes are "header.payload" text, signed here with the secret (reaches the
 *      header and claims parsing with arbitrary segment text);
 *   2: the bytes are "header-json\npayload-json", base64url-encoded and signed here
 *      (claims parsing with arbitrary JSON); an empty header means the standard one,
 *      and then the token must equal jwt_sign_hs256's.
 * Properties: an accepted token (JWT_OK or JWT_EXPIRED) verifies again identically,
 * with or without an output struct; it fails with another secret and with a signature
 * character changed (three positions); a token valid now was valid a second earlier. */
#include "fuzz.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "util/codec.h"

static const unsigned char secret[] = "fuzz-secret-0123456789abcdef0123456789";
#define SECRET_LEN (sizeof secret - 1)
#define NOW_MS INT64_C(1700000000000)
#define STD_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool same_claims(const struct jwt_claims *a, const struct jwt_claims *b)
{
    return a->has_id == b->has_id && (!a->has_id || a->id == b->id) && a->has_role == b->has_role &&
           (!a->has_role || strcmp(a->role_name, b->role_name) == 0) && a->has_tenant == b->has_tenant &&
           (!a->has_tenant || strcmp(a->tenant_id, b->tenant_id) == 0) && a->has_org == b->has_org &&
           (!a->has_org || a->organization_id == b->organization_id) &&
           memcmp(&a->expire_ms, &b->expire_ms, sizeof a->expire_ms) == 0 && a->has_exp == b->has_exp &&
           (!a->has_exp || a->exp == b->exp);
}

/* "<signed>.<base64url mac>" for the first n bytes of buf (buf has room for 44 more). */
static size_t append_signature(char *buf, size_t n)
{
    unsigned char mac[32];
    unsigned int mac_len = 0;
    FUZZ_ASSERT(HMAC(EVP_sha256(), secret, (int)SECRET_LEN, (const unsigned char *)buf, n, mac, &mac_len) &&
                mac_len == 32);
    buf[n] = '.';
    return n + 1 + b64url_encode(mac, 32, buf + n + 1);
}

static void check_token(const char *tok, size_t len)
{
    struct jwt_claims c, c2;
    enum jwt_status st = jwt_verify_hs256(tok, len, secret, SECRET_LEN, NOW_MS, &c);
    FUZZ_ASSERT(st == JWT_OK || st == JWT_INVALID || st == JWT_EXPIRED);
    FUZZ_ASSERT(jwt_verify_hs256(tok, len, secret, SECRET_LEN, NOW_MS, NULL) == st);
    if (st == JWT_INVALID)
        return;

    FUZZ_ASSERT(c.has_role ? strlen(c.role_name) < sizeof c.role_name : true);
    FUZZ_ASSERT(c.has_tenant ? strlen(c.tenant_id) < sizeof c.tenant_id : true);
    /* deterministic */
    FUZZ_ASSERT(jwt_verify_hs256(tok, len, secret, SECRET_LEN, NOW_MS, &c2) == st);
    FUZZ_ASSERT(same_claims(&c, &c2));
    /* the signature binds the secret */
    FUZZ_ASSERT(jwt_verify_hs256(tok, len, secret, SECRET_LEN - 1, NOW_MS, NULL) == JWT_INVALID);
    /* expiry only moves forward in time */
    if (st == JWT_OK)
        FUZZ_ASSERT(jwt_verify_hs256(tok, len, secret, SECRET_LEN, NOW_MS - 1000, NULL) == JWT_OK);
    /* a change to the signature text is rejected (strict base64url is one-to-one): the
     * first, a middle and the last character, each changed in an input-dependent way */
    const char *dot = memrchr(tok, '.', len);
    FUZZ_ASSERT(dot != NULL && (size_t)(tok + len - dot - 1) == 43);
    char *t = fuzz_strndup(tok, len);
    size_t sig = (size_t)(dot + 1 - tok), at[3] = {sig, sig + 21 + len % 21, len - 1};
    for (size_t k = 0; k < 3; k++) {
        size_t i = at[k];
        char saved = t[i];
        const char *pos = strchr(alphabet, saved);
        FUZZ_ASSERT(pos != NULL);
        t[i] = alphabet[((size_t)(pos - alphabet) + 1 + (len + k) % 63) % 64];
        FUZZ_ASSERT(jwt_verify_hs256(t, len, secret, SECRET_LEN, NOW_MS, NULL) == JWT_INVALID);
        t[i] = saved;
    }
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 2 * JWT_MAX_LEN)
        return 0;
    unsigned mode = data[0] % 3;
    data++, size--;

    if (mode == 0) {
        check_token((const char *)data, size);
        return 0;
    }
    if (mode == 1) {
        char *buf = malloc(size + 45);
        FUZZ_ASSERT(buf != NULL);
        if (size)
            memcpy(buf, data, size);
        size_t n = append_signature(buf, size);
        check_token(buf, n);
        free(buf);
        return 0;
    }

    /* mode 2: JSON header and payload */
    const uint8_t *part[2];
    size_t plen[2];
    if (fuzz_split(data, size, '\n', part, plen, 2) != 2)
        return 0;
    bool std = plen[0] == 0;
    const uint8_t *hj = std ? (const uint8_t *)STD_HEADER : part[0];
    size_t hl = std ? sizeof STD_HEADER - 1 : plen[0];
    char *buf = malloc(b64url_encoded_len(hl) + b64url_encoded_len(plen[1]) + 48);
    FUZZ_ASSERT(buf != NULL);
    size_t n = b64url_encode(hj, hl, buf);
    buf[n++] = '.';
    n += b64url_encode(part[1], plen[1], buf + n);
    n = append_signature(buf, n);
    check_token(buf, n);
    if (std && !memchr(part[1], '\0', plen[1])) {
        char *pl = fuzz_strndup(part[1], plen[1]);
        char *tok = jwt_sign_hs256(pl, secret, SECRET_LEN);
        FUZZ_ASSERT(tok != NULL);
        FUZZ_ASSERT(strlen(tok) == n && memcmp(tok, buf, n) == 0);
        free(tok);
        free(pl);
    }
    free(buf);
    return 0;
}
