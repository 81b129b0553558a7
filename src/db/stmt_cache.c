/* db/stmt_cache: owns one connection's table of prepared statements (SQL text ->
 * server-side name), bounded and emptied whole when full. See include/db/stmt_cache.h. */
#include "db/stmt_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct entry {
    uint64_t hash;
    uint32_t id;      /* 0: free */
    char *sql;
};

struct stmt_cache {
    int cap, n;
    uint32_t next_id;
    struct entry *e;
};

struct stmt_cache *stmt_cache_new(int cap)
{
    if (cap < 1)
        return NULL;
    struct stmt_cache *sc = calloc(1, sizeof *sc);
    if (!sc || !(sc->e = calloc((size_t)cap, sizeof *sc->e))) {
        free(sc);
        return NULL;
    }
    sc->cap = cap;
    sc->next_id = 1;
    return sc;
}

void stmt_cache_clear(struct stmt_cache *sc)
{
    if (!sc)
        return;
    for (int i = 0; i < sc->cap; i++) {
        free(sc->e[i].sql);
        sc->e[i] = (struct entry){0};
    }
    sc->n = 0;
}

void stmt_cache_free(struct stmt_cache *sc)
{
    if (!sc)
        return;
    stmt_cache_clear(sc);
    free(sc->e);
    free(sc);
}

bool stmt_cache_eligible(const char *sql)
{
    static const char *const verbs[] = {"SELECT ", "WITH ", "INSERT ", "UPDATE ", "DELETE "};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strncasecmp(sql, verbs[i], strlen(verbs[i])) == 0)
            return true;
    return false;
}

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void name_of(uint32_t id, char name[STMT_NAME_MAX])
{
    snprintf(name, STMT_NAME_MAX, "i%x", (unsigned)id);
}

enum stmt_lookup stmt_cache_lookup(struct stmt_cache *sc, const char *sql, char name[STMT_NAME_MAX],
                                   uint32_t *id)
{
    uint64_t h = hash_sql(sql);
    int free_slot = -1;
    for (int i = 0; i < sc->cap; i++) {
        struct entry *e = &sc->e[i];
        if (!e->id) {
            if (free_slot < 0)
                free_slot = i;
            continue;
        }
        if (e->hash == h && strcmp(e->sql, sql) == 0) {
            name_of(e->id, name);
            *id = e->id;
            return STMT_HIT;
        }
    }
    char *copy = strdup(sql);
    if (!copy)
        return STMT_NONE;
    enum stmt_lookup kind = STMT_PREPARE;
    if (free_slot < 0) {
        stmt_cache_clear(sc);
        free_slot = 0;
        kind = STMT_FULL;
    }
    struct entry *e = &sc->e[free_slot];
    e->hash = h;
    e->sql = copy;
    e->id = sc->next_id++;
    if (sc->next_id == 0)
        sc->next_id = 1;
    sc->n++;
    name_of(e->id, name);
    *id = e->id;
    return kind;
}

void stmt_cache_drop(struct stmt_cache *sc, uint32_t id)
{
    if (!sc || !id)
        return;
    for (int i = 0; i < sc->cap; i++)
        if (sc->e[i].id == id) {
            free(sc->e[i].sql);
            sc->e[i] = (struct entry){0};
            sc->n--;
            return;
        }
}

int stmt_cache_count(const struct stmt_cache *sc)
{
    return sc ? sc->n : 0;
}
