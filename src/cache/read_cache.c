/* cache/read_cache: owns the cached read answers: one allocation per entry (header, key
 * and body together) on three lists: its hash chain, the global LRU list and its
 * tenant's list; tenants in a hash table of their own with a generation each. */
#include "cache/read_cache.h"

#include <stdlib.h>
#include <string.h>

#define TENANT_BUCKETS 1024
#define TENANTS_MAX 65536 /* past this many known tenants, everything is flushed */
#define TENANT_NAME_MAX 16

struct entry {
    struct entry *hnext;              /* hash chain */
    struct entry *lru_prev, *lru_next; /* global, most recent first */
    struct entry *t_prev, *t_next;    /* the tenant's entries */
    struct tenant *tenant;
    uint64_t hash;
    size_t size;                      /* what it counts against the budget */
    size_t len;                       /* body bytes */
    char *body;                       /* points into data, after the key */
    char key[];
};

struct tenant {
    struct tenant *hnext;
    struct entry *entries;
    uint64_t gen;
    char name[TENANT_NAME_MAX];
};

struct read_cache {
    bool enabled;
    size_t budget, bytes, count;
    uint64_t epoch, gen_counter;
    struct entry **buckets;
    size_t nbuckets;
    struct entry *lru_head, *lru_tail;
    struct tenant *tenants[TENANT_BUCKETS];
    size_t ntenants;
    struct read_cache_stats st;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

struct read_cache *read_cache_new(size_t budget)
{
    struct read_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->budget = budget;
    c->nbuckets = 256;
    if (!(c->buckets = calloc(c->nbuckets, sizeof *c->buckets))) {
        free(c);
        return NULL;
    }
    c->epoch = 1;
    return c;
}

static void entry_unlink(struct read_cache *c, struct entry *e)
{
    struct entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    if (e->t_prev)
        e->t_prev->t_next = e->t_next;
    else
        e->tenant->entries = e->t_next;
    if (e->t_next)
        e->t_next->t_prev = e->t_prev;
    c->bytes -= e->size;
    c->count--;
    free(e);
}

static void drop_everything(struct read_cache *c)
{
    while (c->lru_head)
        entry_unlink(c, c->lru_head);
    for (size_t i = 0; i < TENANT_BUCKETS; i++)
        while (c->tenants[i]) {
            struct tenant *t = c->tenants[i];
            c->tenants[i] = t->hnext;
            free(t);
        }
    c->ntenants = 0;
    c->epoch++;
}

void read_cache_free(struct read_cache *c)
{
    if (!c)
        return;
    drop_everything(c);
    free(c->buckets);
    free(c);
}

void read_cache_set_enabled(struct read_cache *c, bool on)
{
    if (c->enabled != on || c->count)
        read_cache_flush(c);
    c->enabled = on && c->budget > 0;
}

bool read_cache_enabled(const struct read_cache *c)
{
    return c->enabled;
}

static struct entry *find(const struct read_cache *c, const char *key, uint64_t h)
{
    for (struct entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void lru_push_front(struct read_cache *c, struct entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

bool read_cache_get(struct read_cache *c, const char *key, const char **body, size_t *len)
{
    struct entry *e = c->enabled ? find(c, key, hash_str(key)) : NULL;
    if (!e) {
        c->st.misses++;
        return false;
    }
    if (c->lru_head != e) { /* move to the front */
        e->lru_prev->lru_next = e->lru_next;
        if (e->lru_next)
            e->lru_next->lru_prev = e->lru_prev;
        else
            c->lru_tail = e->lru_prev;
        lru_push_front(c, e);
    }
    c->st.hits++;
    *body = e->body;
    *len = e->len;
    return true;
}

static struct tenant *tenant_find(const struct read_cache *c, const char *name, size_t *bucket)
{
    *bucket = hash_str(name) & (TENANT_BUCKETS - 1);
    for (struct tenant *t = c->tenants[*bucket]; t; t = t->hnext)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

struct read_cache_ticket read_cache_ticket(struct read_cache *c, const char *tenant)
{
    struct read_cache_ticket tk = {c->epoch, 0};
    size_t b;
    if (!c->enabled || strlen(tenant) >= TENANT_NAME_MAX)
        return tk;
    struct tenant *t = tenant_find(c, tenant, &b);
    if (!t) {
        if (c->ntenants >= TENANTS_MAX) {
            read_cache_flush(c);
            tk.epoch = c->epoch;
        }
        if (!(t = calloc(1, sizeof *t)))
            return tk;
        strcpy(t->name, tenant);
        t->gen = ++c->gen_counter;
        t->hnext = c->tenants[b];
        c->tenants[b] = t;
        c->ntenants++;
    }
    tk.gen = t->gen;
    return tk;
}

static void grow(struct read_cache *c)
{
    size_t n = c->nbuckets * 2;
    struct entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++)
        while (c->buckets[i]) {
            struct entry *e = c->buckets[i];
            c->buckets[i] = e->hnext;
            e->hnext = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

bool read_cache_put(struct read_cache *c, const char *tenant, struct read_cache_ticket tk, const char *key,
                    const char *body, size_t len)
{
    size_t b;
    struct tenant *t;
    if (!c->enabled || tk.gen == 0 || tk.epoch != c->epoch || !(t = tenant_find(c, tenant, &b)) ||
        t->gen != tk.gen)
        return false;
    size_t klen = strlen(key);
    size_t size = sizeof(struct entry) + klen + 1 + len + 1;
    if (size > c->budget / 4) /* one answer never takes most of the budget */
        return false;
    uint64_t h = hash_str(key);
    struct entry *old = find(c, key, h);
    if (old)
        entry_unlink(c, old);
    while (c->bytes + size > c->budget && c->lru_tail) {
        entry_unlink(c, c->lru_tail);
        c->st.evictions++;
    }
    struct entry *e = malloc(size);
    if (!e)
        return false;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, klen + 1);
    e->body = e->key + klen + 1;
    memcpy(e->body, body, len);
    e->body[len] = '\0';
    e->len = len;
    e->size = size;
    e->hash = h;
    e->tenant = t;
    e->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = e;
    lru_push_front(c, e);
    e->t_next = t->entries;
    if (t->entries)
        t->entries->t_prev = e;
    t->entries = e;
    c->bytes += size;
    c->count++;
    c->st.stores++;
    if (c->count > c->nbuckets)
        grow(c);
    return true;
}

void read_cache_invalidate(struct read_cache *c, const char *tenant)
{
    size_t b;
    struct tenant *t = tenant_find(c, tenant, &b);
    c->st.invalidations++;
    if (!t)
        return; /* nothing cached, no ticket out: a later ticket sees the new state */
    while (t->entries)
        entry_unlink(c, t->entries);
    t->gen = ++c->gen_counter;
}

void read_cache_flush(struct read_cache *c)
{
    drop_everything(c);
    c->st.flushes++;
}

void read_cache_stats(const struct read_cache *c, struct read_cache_stats *out)
{
    *out = c->st;
    out->bytes = c->bytes;
    out->entries = c->count;
    out->budget = c->budget;
}
