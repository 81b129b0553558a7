/* db/pool: a small pool of non-blocking libpq connections on the event loop.
 * Each connection runs in pipeline mode: many queries in flight, one Sync per
 * submitted unit, so each unit is its own (implicit) transaction. Submitted units
 * wait in one FIFO for a ready connection: for reads (units of SELECTs only) the one
 * already written to in this loop iteration, else one answering promptly with few in
 * flight; else, and for writes, the least loaded.
 *
 * Connection states: DOWN -> CONNECTING -> READY -> (broken) -> BACKOFF -> CONNECTING.
 * While no connection is READY, submissions fail at once with DB_UNAVAILABLE.
 * Callbacks never run inside db_submit(); they always come from the loop. */
#ifndef IDX_DB_POOL_H
#define IDX_DB_POOL_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include "util/compiler.h"

struct event_base;
struct resolver;
struct db_pool;

enum db_status {
    DB_OK = 0,
    DB_UNAVAILABLE,   /* no connection, queue full, or the connection died mid-query */
    DB_SQL_ERROR,     /* the server answered with an error: see sqlstate */
};

struct db_result {
    enum db_status status;
    int n;                   /* statements in the unit */
    PGresult **res;          /* per statement (NULL if not reached); borrowed for the callback */
    const char *sqlstate;    /* first error's SQLSTATE ("23505"...) or "" */
    const char *message;     /* first error's primary message, for logs only */
};

typedef void (*db_callback)(const struct db_result *r, void *arg);

struct db_stmt {
    const char *sql;
    int nparams;
    const char *const *params;   /* text values; NULL entry = SQL NULL */
};

struct db_pool_opts {
    const char *const *keywords; /* libpq connection keywords/values, NULL-terminated */
    const char *const *values;
    int size;
    int max_depth;               /* queries in flight per connection */
    int max_queue;               /* units waiting for a connection */
    int connect_timeout_ms;
    int stall_timeout_ms;        /* a unit in flight longer than this breaks its connection */
    int prepared;                /* statements prepared per connection (0: none, every one unnamed) */
    struct resolver *resolver;   /* resolves host names before every attempt; NULL: hosts as given */
    void (*on_live_change)(int live, void *arg); /* called from the loop */
    void *arg;
};

/* The keywords may name several hosts (host=a,b with port=p or p1,p2, hostaddr
 * optional, as libpq reads them); NULL with a reason in err when they do not fit. */
MUSTCHECK struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_opts *opts, char *err,
                            size_t errlen);
void db_pool_free(struct db_pool *p);   /* fails nothing: callbacks are dropped */

/* Submit a unit of n statements (copied). cb(arg) is called exactly once, later. */
void db_submit(struct db_pool *p, const struct db_stmt *stmts, int n, db_callback cb, void *arg);
/* The same, but while the unit waits in the queue wanted(arg) is asked before it is
 * sent; false drops it unsent (cb still runs, with DB_UNAVAILABLE). For work done on
 * behalf of a request whose client may hang up. */
void db_submit_if(struct db_pool *p, const struct db_stmt *stmts, int n, db_callback cb, void *arg,
                  bool (*wanted)(void *arg));
/* One statement. */
void db_query(struct db_pool *p, const char *sql, int nparams, const char *const *params,
              db_callback cb, void *arg);

int db_pool_live(const struct db_pool *p);
int db_pool_size(const struct db_pool *p);
int db_pool_queued(const struct db_pool *p);
uint64_t db_pool_dropped(const struct db_pool *p); /* units dropped unsent (db_submit_if) */
int db_pool_in_flight(const struct db_pool *p);
/* "host:port (address)" of the server the last connection was made to ("" before). */
const char *db_pool_server(const struct db_pool *p);
/* libpq parameters that reach the server the pool's last connection was made to, by
 * numeric address (nothing left to resolve), for a connection outside the pool
 * (db/listener): it follows the pool across failovers. Valid until the next call or the
 * pool's next connection. -1 before the pool has connected. */
MUSTCHECK int db_pool_server_params(struct db_pool *p, const char *const **kw, const char *const **vals);
/* Times a new connection landed on another server than the previous one. */
uint64_t db_pool_failovers(const struct db_pool *p);

/* Helpers on results. */
static inline const PGresult *db_last(const struct db_result *r)
{
    return r->n > 0 ? r->res[r->n - 1] : NULL;
}
bool db_is_unique_violation(const struct db_result *r);

#endif
