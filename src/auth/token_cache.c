/* auth/token_cache: owns the verified-token cache (direct-mapped: a colliding token
 * replaces the slot, so it holds at most slots tokens of at most JWT_MAX_LEN bytes).
 * The slot comes from a hash keyed with a random seed; a hit is decided by the length
 * and a constant-time comparison of every byte, so timing does not tell how much of a
 * stored token a probe matched. */
#include "auth/token_cache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/seed.h"

struct slot {
    char *token; /* NULL: empty */
    size_t len;
    struct jwt_claims claims;
};

struct token_cache {
    unsigned mask;
    uint64_t seed;
    struct slot *slots; /* NULL: disabled */
};

static unsigned slot_of(const struct token_cache *c, const char *p, size_t len)
{
    uint64_t h = c->seed ^ (len * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001B3ull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (unsigned)h & c->mask;
}

struct token_cache *token_cache_new(unsigned slots)
{
    struct token_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (slots == 0)
        return c;
    unsigned n = 1;
    while (n < slots)
        n <<= 1;
    c->mask = n - 1;
    c->seed = seed_u64();
    if (!(c->slots = calloc(n, sizeof *c->slots))) {
        free(c);
        return NULL;
    }
    return c;
}

static void slot_clear(struct slot *s)
{
    if (s->token) {
        OPENSSL_cleanse(s->token, s->len);
        free(s->token);
    }
    OPENSSL_cleanse(s, sizeof *s);
}

void token_cache_free(struct token_cache *c)
{
    if (!c)
        return;
    if (c->slots)
        for (unsigned i = 0; i <= c->mask; i++)
            slot_clear(&c->slots[i]);
    free(c->slots);
    free(c);
}

bool token_cache_get(struct token_cache *c, const char *token, size_t len, int64_t now_ms,
                     enum jwt_status *st, struct jwt_claims *out)
{
    if (!c || !c->slots || !token || len == 0 || len > JWT_MAX_LEN)
        return false;
    struct slot *s = &c->slots[slot_of(c, token, len)];
    if (!s->token || s->len != len || CRYPTO_memcmp(s->token, token, len) != 0)
        return false;
    *out = s->claims;
    if (jwt_claims_expired(&s->claims, now_ms)) {
        *st = JWT_EXPIRED;
        slot_clear(s);
    } else
        *st = JWT_OK;
    return true;
}

void token_cache_put(struct token_cache *c, const char *token, size_t len,
                     const struct jwt_claims *claims)
{
    if (!c || !c->slots || !token || len == 0 || len > JWT_MAX_LEN)
        return;
    struct slot *s = &c->slots[slot_of(c, token, len)];
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, token, len);
    slot_clear(s);
    s->token = copy;
    s->len = len;
    s->claims = *claims;
}
