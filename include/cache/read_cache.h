/* cache/read_cache: the per-organization cache of read answers. An entry is the final
 * serialized body of a 200 answer, keyed by a string the caller builds (route, tenant,
 * user where ownership applies, path), and grouped by tenant so that one change drops all
 * of a tenant's answers at once. Bounded by a byte budget with LRU eviction.
 *
 * Coherence: a miss takes a ticket (the tenant's generation and the cache's epoch) before
 * its query is sent; the answer is stored only if neither changed meanwhile, so an answer
 * read before a write can never be stored after that write's invalidation. While disabled
 * (the LISTEN connection is down) nothing is served or stored.
 * Pure: no I/O, no clock; the caller owns the policy of when to invalidate. */
#ifndef IDX_CACHE_READ_CACHE_H
#define IDX_CACHE_READ_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

struct read_cache;

struct read_cache_ticket {
    uint64_t epoch, gen;
};

struct read_cache_stats {
    uint64_t hits, misses, stores, evictions, invalidations, flushes;
    size_t bytes, entries, budget;
};

/* budget: bytes of keys + bodies + bookkeeping (0 disables for good). NULL on ENOMEM. */
MUSTCHECK struct read_cache *read_cache_new(size_t budget);
void read_cache_free(struct read_cache *c);

/* Disabled: every lookup misses and nothing is stored. Enabling or disabling empties it. */
void read_cache_set_enabled(struct read_cache *c, bool on);
bool read_cache_enabled(const struct read_cache *c);

/* The cached body for key (valid until the next call that changes the cache), and
 * marks it most recently used. Returns false (and counts a miss) when absent. */
bool read_cache_get(struct read_cache *c, const char *key, const char **body, size_t *len);
/* Before reading for a miss: what the tenant looks like now. */
struct read_cache_ticket read_cache_ticket(struct read_cache *c, const char *tenant);
/* Store a copy of body under key for tenant, if the ticket is still current and it fits.
 * Returns true when stored. */
bool read_cache_put(struct read_cache *c, const char *tenant, struct read_cache_ticket t, const char *key,
                    const char *body, size_t len);
/* Drop every answer of the tenant and bump its generation. */
void read_cache_invalidate(struct read_cache *c, const char *tenant);
/* Drop everything and bump the epoch. */
void read_cache_flush(struct read_cache *c);
void read_cache_stats(const struct read_cache *c, struct read_cache_stats *out);

#endif
