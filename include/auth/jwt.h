/* auth/jwt: HS256 JSON Web Token verification and the claims VerifyWise puts in them.
 * Pure: no I/O, no clock (the caller passes now). */
#ifndef IDX_AUTH_JWT_H
#define IDX_AUTH_JWT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

#define JWT_MAX_LEN 8192

enum jwt_status {
    JWT_OK = 0,
    JWT_INVALID,   /* bad format, bad base64, alg other than HS256, bad signature,
                      payload not an object, or no `expire` claim: the 401 */
    JWT_EXPIRED,   /* `expire` (ms) < now_ms, or `exp` (s) in the past: the 406 */
};

struct jwt_claims {
    bool has_id;            /* `id` present and a JSON integer */
    long long id;
    bool has_role;          /* `roleName` present and a string */
    char role_name[64];     /* copied only when it fits; else has_role is false */
    bool has_tenant;        /* `tenantId` present and a string (<= 63 bytes) */
    char tenant_id[64];
    bool has_org;           /* `organizationId` present and a JSON integer */
    long long organization_id;
    double expire_ms;       /* `expire` claim (milliseconds) */
    bool has_exp;
    long long exp;          /* standard `exp` claim (seconds), when present */
};

/* Verify token (not NUL-terminated, len bytes) with secret; fill *out on JWT_OK
 * (and on JWT_EXPIRED, so callers may log the subject). Checks, in order:
 * three non-empty segments within JWT_MAX_LEN, strict base64url, header a JSON
 * object with alg exactly "HS256" (typ absent or "JWT", no crit), HMAC-SHA256
 * over the received "h.p" bytes compared with CRYPTO_memcmp on 32 bytes, payload
 * a JSON object with a numeric `expire`; then expiry. */
MUSTCHECK enum jwt_status jwt_verify_hs256(const char *token, size_t len,
                                 const unsigned char *secret, size_t secret_len,
                                 int64_t now_ms, struct jwt_claims *out);

/* The expiry rule of jwt_verify_hs256 on claims it filled: `expire` (ms) < now_ms, or
 * the current whole second has reached `exp`. */
bool jwt_claims_expired(const struct jwt_claims *c, int64_t now_ms);

/* Sign payload_json (a JSON object text) as an HS256 token. Returns a malloc'd
 * NUL-terminated token or NULL on allocation failure. Used by tests and the
 * demo-token printer. */
MUSTCHECK char *jwt_sign_hs256(const char *payload_json, const unsigned char *secret, size_t secret_len);

#endif
