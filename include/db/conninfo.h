/* db/conninfo: the libpq connection settings of the pool and the LISTEN connection, built
 * once at start from DATABASE_URL or the DB_* pieces, plus what the service always sets
 * (server-side timeouts, TCP keepalives, application_name, target_session_attrs, and
 * gssencmode=disable unless asked for).
 * Host names in them are never resolved by libpq on the loop: the pool resolves them
 * before every attempt (net/resolve), so the settings stay as given. */
#ifndef IDX_DB_CONNINFO_H
#define IDX_DB_CONNINFO_H
#include <stddef.h>

#include "util/compiler.h"

struct db_conninfo_params {
    const char *database_url;      /* wins over the pieces when set and non-empty */
    const char *host, *port, *dbname, *user, *password; /* each may be NULL */
    int statement_timeout_ms;      /* server-side statement_timeout */
    int idle_in_transaction_timeout_ms;
    const char *env_gssencmode;    /* PGGSSENCMODE from the environment, or NULL */
    const char *env_service;       /* PGSERVICE from the environment, or NULL */
};

struct db_conninfo;

/* NULL with err set (naming the setting, never its value) when DATABASE_URL is not a
 * connection URI or target_session_attrs asks for a read-only server. */
MUSTCHECK struct db_conninfo *db_conninfo_new(const struct db_conninfo_params *p, char *err,
                                              size_t errlen);
void db_conninfo_free(struct db_conninfo *ci);

/* NULL-terminated keyword and value arrays for PQconnectStartParams (owned by ci). */
const char *const *db_conninfo_keywords(const struct db_conninfo *ci);
const char *const *db_conninfo_values(const struct db_conninfo *ci);

#endif
