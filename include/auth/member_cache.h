/* auth/member_cache: a bounded, direct-mapped cache of public.users lookups
 * (user id -> organization id and role id) that lives for a short TTL, so the
 * membership check costs one query per user per TTL instead of one per request.
 * Pure: the caller passes the clock. */
#ifndef IDX_AUTH_MEMBER_CACHE_H
#define IDX_AUTH_MEMBER_CACHE_H
#include <stdbool.h>
#include <stdint.h>

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
    enum member_state state;
};

struct member_cache;

/* slots is rounded up to a power of two; ttl_ms 0 disables caching. */
struct member_cache *member_cache_new(unsigned slots, int64_t ttl_ms);
void member_cache_free(struct member_cache *c);
/* Returns true and fills *out when a live entry exists. */
bool member_cache_get(const struct member_cache *c, long long user_id, int64_t now_ms,
                      struct member_entry *out);
void member_cache_put(struct member_cache *c, long long user_id, enum member_state st,
                      long long org_id, long long role_id, int64_t now_ms);

#endif
