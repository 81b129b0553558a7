/* auth/token_cache: a bounded, direct-mapped cache of verified tokens: the exact token
 * bytes -> the claims jwt_verify_hs256 found in them. Only tokens that verified (JWT_OK)
 * are stored, so an unauthenticated client cannot fill it. Verification is a pure
 * function of the token and the secret (fixed for the process) except for expiry, which
 * token_cache_get checks on every hit with the same rule (jwt_claims_expired): a hit
 * answers exactly what jwt_verify_hs256 would answer at that moment. The membership,
 * role and tenant checks do not depend on it and run for every request as before.
 * Pure: the caller passes the clock. */
#ifndef IDX_AUTH_TOKEN_CACHE_H
#define IDX_AUTH_TOKEN_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "auth/jwt.h"
#include "util/compiler.h"

struct token_cache;

/* slots is rounded up to a power of two; 0 disables caching (every lookup misses). */
MUSTCHECK struct token_cache *token_cache_new(unsigned slots);
void token_cache_free(struct token_cache *c);
/* True when token (len bytes) was stored: *st is JWT_OK or JWT_EXPIRED (an expired entry
 * is dropped) and *out holds its claims, as jwt_verify_hs256 fills them. */
bool token_cache_get(struct token_cache *c, const char *token, size_t len, int64_t now_ms,
                     enum jwt_status *st, struct jwt_claims *out);
/* Remember a token jwt_verify_hs256 just accepted (JWT_OK) with its claims. A colliding
 * token replaces the slot. Out of memory: not stored. */
void token_cache_put(struct token_cache *c, const char *token, size_t len,
                     const struct jwt_claims *claims);

#endif
