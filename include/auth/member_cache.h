/* auth/member_cache: a bounded, direct-mapped cache of public.users lookups
 * (user id -> organization id and role id). An entry lives until its user's row changes
 * (member_cache_drop, driven by PostgreSQL NOTIFY) and at most ttl_ms. While disabled
 * (the LISTEN connection is down, so changes could be missed) nothing is kept.
 * A lookup takes the generation before its query and stores only if no drop happened
 * meanwhile, so a row read before a change is never cached after it.
 * Pure: the caller passes the clock. */
#ifndef IDX_AUTH_MEMBER_CACHE_H
#define IDX_AUTH_MEMBER_CACHE_H
#include <stdbool.h>
#include <stdint.h>
#include "util/compiler.h"

enum member_state {
    MEMBER_ROW = 1,      /* the user row exists: org_id/role_id valid (0 = NULL) */
    MEMBER_NO_ROW,       /* no such user */
    MEMBER_NO_TABLE,     /* public.users does not exist: check skipped */
};

struct member_entry {
    long long user_id;
    long long org_id;
    long long role_id;
    int64_t expires_ms;
    enum member_state found;     /* what the lookup found (a value, not a machine); 0: empty slot */
};

struct member_cache;

/* slots is rounded up to a power of two; ttl_ms 0 disables caching. */
MUSTCHECK struct member_cache *member_cache_new(unsigned slots, int64_t ttl_ms);
void member_cache_free(struct member_cache *c);
/* Returns true and fills *out when a live entry exists. */
bool member_cache_get(const struct member_cache *c, long long user_id, int64_t now_ms,
                      struct member_entry *out);
/* Before querying for a miss. */
uint64_t member_cache_gen(const struct member_cache *c);
/* Stores only when enabled and gen is still member_cache_gen(c). */
void member_cache_put(struct member_cache *c, uint64_t gen, long long user_id, enum member_state st,
                      long long org_id, long long role_id, int64_t now_ms);
/* The user's row changed: forget it (and refuse lookups that started before). */
void member_cache_drop(struct member_cache *c, long long user_id);
/* Empty it; enabled or not. */
void member_cache_set_enabled(struct member_cache *c, bool on);

#endif
