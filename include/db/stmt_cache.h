/* db/stmt_cache: the statements one PostgreSQL connection has prepared (server-side
 * named statements), by SQL text, so a statement the service sends again is bound and
 * executed without being parsed and planned again. Bounded: when full it is emptied
 * (the caller then sends DEALLOCATE ALL first). Names are never reused within the
 * cache's lifetime ("i<n>"), so a name from before an emptying never meets a new one. */
#ifndef IDX_DB_STMT_CACHE_H
#define IDX_DB_STMT_CACHE_H
#include <stdbool.h>
#include <stdint.h>

#define STMT_NAME_MAX 16

struct stmt_cache;

/* cap statements at most; NULL when cap < 1 (preparing off) or out of memory. */
struct stmt_cache *stmt_cache_new(int cap);
void stmt_cache_free(struct stmt_cache *sc);       /* NULL: nothing */
void stmt_cache_clear(struct stmt_cache *sc);      /* the connection was closed */

/* Whether a statement of this text is worth preparing (a plain SELECT, WITH, INSERT,
 * UPDATE or DELETE). */
bool stmt_cache_eligible(const char *sql);

enum stmt_lookup {
    STMT_HIT,        /* prepared: execute name */
    STMT_PREPARE,    /* added: prepare name, then execute it */
    STMT_FULL,       /* emptied to make room, then added: DEALLOCATE ALL, prepare, execute */
    STMT_NONE,       /* cannot be added (out of memory): send it unnamed */
};
/* Find or add sql; name receives the statement's name (not for STMT_NONE), id its
 * handle for stmt_cache_drop. */
enum stmt_lookup stmt_cache_lookup(struct stmt_cache *sc, const char *sql, char name[STMT_NAME_MAX],
                                   uint32_t *id);
/* Forget statement id (its PREPARE failed or was skipped, or the server no longer has
 * it); an id no longer cached is ignored. */
void stmt_cache_drop(struct stmt_cache *sc, uint32_t id);
int stmt_cache_count(const struct stmt_cache *sc);

#endif
