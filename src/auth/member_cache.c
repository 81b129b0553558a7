/* auth/member_cache: owns the membership lookup cache (direct-mapped: a colliding
 * user simply replaces the slot, so memory is fixed and there is nothing to evict). */
#include "auth/member_cache.h"

#include <stdlib.h>
#include <string.h>

struct member_cache {
    unsigned mask;
    int64_t ttl_ms;
    bool enabled;
    bool stored;                /* a slot written since the last clear */
    uint64_t gen;
    struct member_entry *slots; /* calloc'ed: untouched pages stay unbacked until used */
};

static unsigned slot_of(const struct member_cache *c, long long id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (unsigned)(h >> 32) & c->mask;
}

struct member_cache *member_cache_new(unsigned slots, int64_t ttl_ms)
{
    struct member_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    unsigned n = 1;
    while (n < slots)
        n <<= 1;
    c->mask = n - 1;
    c->ttl_ms = ttl_ms;
    if (ttl_ms > 0 && !(c->slots = calloc(n, sizeof *c->slots))) {
        free(c);
        return NULL;
    }
    return c;
}

void member_cache_free(struct member_cache *c)
{
    if (c) {
        free(c->slots);
        free(c);
    }
}

bool member_cache_get(const struct member_cache *c, long long user_id, int64_t now_ms,
                      struct member_entry *out)
{
    if (!c->slots || !c->enabled)
        return false;
    const struct member_entry *e = &c->slots[slot_of(c, user_id)];
    if (!e->found || e->user_id != user_id || e->expires_ms <= now_ms)
        return false;
    *out = *e;
    return true;
}

uint64_t member_cache_gen(const struct member_cache *c)
{
    return c->gen;
}

void member_cache_drop(struct member_cache *c, long long user_id)
{
    c->gen++;
    if (!c->slots)
        return;
    struct member_entry *e = &c->slots[slot_of(c, user_id)];
    if (e->user_id == user_id)
        e->found = 0;
}

void member_cache_set_enabled(struct member_cache *c, bool on)
{
    c->gen++;
    c->enabled = on;
    if (c->slots && c->stored) /* a clear of an unused table would page in all of it */
        memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->stored = false;
}

void member_cache_put(struct member_cache *c, uint64_t gen, long long user_id, enum member_state st,
                      long long org_id, long long role_id, int64_t now_ms)
{
    if (!c->slots || !c->enabled || gen != c->gen)
        return;
    struct member_entry *e = &c->slots[slot_of(c, user_id)];
    c->stored = true;
    e->user_id = user_id;
    e->org_id = org_id;
    e->role_id = role_id;
    e->found = st;
    e->expires_ms = now_ms + c->ttl_ms;
}
