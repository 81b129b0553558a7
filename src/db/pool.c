/* db/pool: owns the PostgreSQL connections, their state machines, the FIFO of
 * waiting units and the per-connection FIFO of units in flight (pipeline mode).
 * Shapes after libusual's pgsocket: one event per connection re-armed at every
 * connect step, PQfinish only after event_del, reconnect from a backoff timer.
 *
 * Hosts: the `host` list (libpq's multi-host syntax) is kept as targets; before every
 * connection attempt each target's name is resolved asynchronously (net/resolve) and
 * libpq gets one host/hostaddr/port entry per address, in order, starting at the
 * target after the last one found read-only. libpq walks that list inside
 * PQconnectPoll (with target_session_attrs), closing one socket and opening the
 * next: the registration follows PQsocket() by descriptor and socket identity.
 *
 * Prepared statements (opts.prepared > 0): a unit of one plain statement is sent as
 * a named statement of the connection's db/stmt_cache (Parse once per connection, then
 * Bind/Execute); its first use sends the Parse just before, in the same unit, so only
 * that unit can see it fail. Their results (and a DEALLOCATE ALL when the cache is
 * emptied) are read and dropped before the statement's own; a failed or skipped Parse
 * forgets the name. Units of several statements are sent unnamed as before. */
#include "db/pool.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "db/stmt_cache.h"
#include "log.h"
#include "net/cidr.h"
#include "net/resolve.h"
#include "util/clock.h"

#define MAX_TARGETS 16
#define MAX_ENTRIES 32        /* addresses handed to libpq per attempt */
#define MAX_KW_ALL 64         /* libpq keywords */

/* One entry of the host list as configured. */
struct target {
    char *host;               /* name, address or socket directory */
    char *port;               /* "" = libpq's default */
    char *hostaddr;           /* given by the configuration (or the host, an address), or NULL */
    bool needs_lookup;        /* a name to resolve */
};

/* One address handed to libpq for the current attempt. */
struct entry {
    int target;
    char addr[RESOLVE_ADDRSTRLEN];   /* "" = let libpq use host (a socket) */
};

enum conn_state { CONN_DOWN = 0, CONN_CONNECTING, CONN_READY, CONN_BACKOFF };
static const char *const state_names[] = {"down", "connecting", "ready", "backoff"};

struct unit {
    struct unit *next;
    db_callback cb;
    void *arg;
    bool (*wanted)(void *arg); /* NULL, or asked before the unit is sent */
    int n;
    int next_result;          /* statement whose results are being read */
    struct db_stmt *stmts;    /* copies, in one allocation with their params */
    PGresult **res;
    char sqlstate[6];
    char *message;
    enum db_status status;
    uint64_t sent_ms;
    int extra;                /* results of DEALLOCATE / Parse still to read before stmts[0]'s */
    uint32_t prep_id;         /* the statement cache entry it uses (0: sent unnamed) */
    bool prep_sent;           /* its Parse was sent in this unit (the last extra result) */
    bool reads;               /* every statement a SELECT: it may be packed (pick_conn) */
};

struct db_conn {
    struct db_pool *pool;
    int idx;
    enum conn_state state;
    PGconn *pg;
    struct event *io;
    short io_flags;
    int io_fd;                /* descriptor and socket identity the event watches */
    dev_t io_dev;
    ino_t io_ino;
    struct resolve_req *rq;   /* lookup in flight while CONNECTING */
    int next_target;          /* lookups: how many targets done this attempt */
    struct entry ent[MAX_ENTRIES];
    int nent;
    int cur;                  /* entry libpq is trying (-1: unknown) */
    bool read_only;           /* a statement failed with 25006 */
    struct event *timer;      /* connect timeout or backoff */
    struct unit *head, *tail; /* in flight, oldest first */
    int depth;
    int writes;               /* of them, units that are not reads (pick_conn) */
    int backoff_ms;
    bool dirty;               /* queries sent into libpq's buffer, not yet flushed */
    struct stmt_cache *stmts; /* prepared on this connection (NULL: preparing off) */
};

struct db_pool {
    struct event_base *base;
    struct db_pool_opts opts;
    struct db_conn *conns;
    struct unit *qhead, *qtail;   /* waiting for a connection */
    int queued;
    uint64_t dropped;             /* queued units dropped unsent: nobody wanted them any more */
    struct unit *dhead, *dtail;   /* completed, callbacks pending (never called inline) */
    struct event *deliver;
    struct event *flush;      /* one write per connection per loop iteration */
    struct event *tick;
    int live;
    bool grown;               /* all connections were started (pool_grow) */
    /* hosts */
    struct target targets[MAX_TARGETS];
    int ntargets;
    int start_target;         /* where attempts begin (moves past a read-only server) */
    int addr_timeout_ms;      /* per address: libpq's connect_timeout, else opts' */
    const char **kw;          /* opts keywords without host/hostaddr/port, plus ours */
    int nkw;                  /* entries before ours */
    char server[300];         /* "host:port (address)" of the last connection made */
    char *last_host, *last_addr, *last_port; /* that server, for db_pool_server_params */
    const char *sp_vals[MAX_KW_ALL + 1];
    uint64_t failovers;
};

static void conn_connect(struct db_conn *c);
static int current_entry(const struct db_conn *c);
static void arm_timer(struct db_conn *c, int ms);
static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void pool_pump(struct db_pool *p);

/* ---- units ----------------------------------------------------------------- */

static struct unit *unit_new(const struct db_stmt *stmts, int n, db_callback cb, void *arg)
{
    size_t bytes = 0;
    int nparams = 0;
    for (int i = 0; i < n; i++) {
        bytes += strlen(stmts[i].sql) + 1;
        nparams += stmts[i].nparams;
        for (int j = 0; j < stmts[i].nparams; j++)
            if (stmts[i].params[j])
                bytes += strlen(stmts[i].params[j]) + 1;
    }
    struct unit *u = calloc(1, sizeof *u);
    char *blob = NULL;
    const char **pv = NULL;
    if (!u || !(u->stmts = calloc((size_t)n, sizeof *u->stmts)) ||
        !(u->res = calloc((size_t)n, sizeof *u->res)) ||
        !(blob = malloc(bytes ? bytes : 1)) ||
        (nparams && !(pv = calloc((size_t)nparams, sizeof *pv)))) {
        if (u) {
            free(u->stmts);
            free(u->res);
        }
        free(u);
        free(blob);
        return NULL;
    }
    /* stmts[0].sql is the start of blob and stmts[0].params the start of pv. */
    char *w = blob;
    const char **pw = pv;
    u->reads = true;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(stmts[i].sql) + 1;
        if (strncmp(stmts[i].sql, "SELECT ", 7) != 0)
            u->reads = false;
        memcpy(w, stmts[i].sql, l);
        u->stmts[i].sql = w;
        w += l;
        u->stmts[i].nparams = stmts[i].nparams;
        u->stmts[i].params = pw;
        for (int j = 0; j < stmts[i].nparams; j++) {
            if (!stmts[i].params[j]) {
                *pw++ = NULL;
                continue;
            }
            l = strlen(stmts[i].params[j]) + 1;
            memcpy(w, stmts[i].params[j], l);
            *pw++ = w;
            w += l;
        }
    }
    if (!nparams)
        u->stmts[0].params = NULL;
    u->n = n;
    u->cb = cb;
    u->arg = arg;
    return u;
}

static void unit_free(struct unit *u)
{
    for (int i = 0; i < u->n; i++)
        PQclear(u->res[i]);
    free((char *)u->stmts[0].sql);
    for (int i = 0; i < u->n; i++)
        if (u->stmts[i].nparams) {
            free((void *)u->stmts[i].params);
            break;
        }
    free(u->stmts);
    free(u->res);
    free(u->message);
    free(u);
}

/* Queue the callback; it runs from the deliver event. */
static void unit_complete(struct db_pool *p, struct unit *u, enum db_status st)
{
    if (u->status == DB_OK)
        u->status = st;
    u->next = NULL;
    if (p->dtail)
        p->dtail->next = u;
    else
        p->dhead = u;
    p->dtail = u;
    event_active(p->deliver, EV_TIMEOUT, 0);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    struct unit *list = p->dhead;
    p->dhead = p->dtail = NULL;
    while (list) {
        struct unit *u = list;
        list = u->next;
        struct db_result r = {u->status, u->n, u->res, u->sqlstate,
                              u->message ? u->message : ""};
        if (u->cb)
            u->cb(&r, u->arg);
        unit_free(u);
    }
}

/* ---- connection state machine ----------------------------------------------- */

static void conn_set_state(struct db_conn *c, enum conn_state st)
{
    if (c->state == st)
        return;
    struct db_pool *p = c->pool;
    int was_live = p->live;
    if (c->state == CONN_READY)
        p->live--;
    if (st == CONN_READY)
        p->live++;
    log_debug("db conn %d: %s -> %s", c->idx, state_names[c->state], state_names[st]);
    c->state = st;
    if (p->live != was_live && p->opts.on_live_change)
        p->opts.on_live_change(p->live, p->opts.arg);
}

/* Watch libpq's current socket for `flags`. During a connect libpq may close its
 * socket and open another one (next address or host), often with the same number:
 * the kernel dropped the old registration with the old socket, so the event is kept
 * only when the descriptor, the socket behind it and the flags are all unchanged. */
static void conn_watch(struct db_conn *c, short flags)
{
    int fd = PQsocket(c->pg);
    /* Once connected the socket is libpq's for good: descriptor and flags say enough,
     * without an fstat per query. */
    if (c->state != CONN_CONNECTING && c->io && c->io_flags == flags && c->io_fd == fd)
        return;
    struct stat st;
    bool known = fd >= 0 && fstat(fd, &st) == 0;
    if (c->io && known && c->io_flags == flags && c->io_fd == fd && c->io_dev == st.st_dev &&
        c->io_ino == st.st_ino && event_pending(c->io, EV_READ | EV_WRITE, NULL))
        return;
    if (c->io) {
        event_del(c->io);
        event_free(c->io);
        c->io = NULL;
    }
    if (fd < 0)
        return;
    c->io = event_new(c->pool->base, fd, flags | EV_PERSIST, conn_io_cb, c);
    c->io_flags = flags;
    c->io_fd = fd;
    c->io_dev = known ? st.st_dev : 0;
    c->io_ino = known ? st.st_ino : 0;
    if (c->io)
        event_add(c->io, NULL);
}

static void conn_close(struct db_conn *c)
{
    if (c->io) {
        event_del(c->io); /* before PQfinish: the fd number will be reused */
        event_free(c->io);
        c->io = NULL;
    }
    evtimer_del(c->timer);
    resolve_cancel(c->rq);
    c->rq = NULL;
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    stmt_cache_clear(c->stmts); /* the server forgot them with the session */
}

/* Fail what was in flight, drop the connection and retry after a backoff. */
static void conn_broken(struct db_conn *c, const char *why)
{
    struct db_pool *p = c->pool;
    log_warn("database connection %d lost: %s", c->idx, why);
    conn_close(c);
    c->dirty = false;
    c->read_only = false;
    struct unit *u = c->head;
    c->head = c->tail = NULL;
    c->depth = 0;
    c->writes = 0;
    while (u) {
        struct unit *next = u->next;
        unit_complete(p, u, DB_UNAVAILABLE);
        u = next;
    }
    conn_set_state(c, CONN_BACKOFF);
    int base = c->backoff_ms ? c->backoff_ms : 100;
    c->backoff_ms = base * 2 > 2000 ? 2000 : base * 2;
    int jitter = base / 4 ? (int)(random() % (base / 4)) : 0;
    struct timeval tv = {(base + jitter) / 1000, ((base + jitter) % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    /* With no live connection left, waiting units would wait for nothing. */
    if (p->live == 0)
        while (p->qhead) {
            struct unit *q = p->qhead;
            p->qhead = q->next;
            if (!p->qhead)
                p->qtail = NULL;
            p->queued--;
            unit_complete(p, q, DB_UNAVAILABLE);
        }
}

static void notice_receiver(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res; /* NOTICEs (e.g. "relation already exists, skipping") are not errors */
}

static void conn_ready(struct db_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        conn_broken(c, "cannot enter pipeline mode");
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_receiver, NULL);
    evtimer_del(c->timer);
    c->backoff_ms = 0;
    struct db_pool *p = c->pool;
    const char *h = PQhost(c->pg), *ha = PQhostaddr(c->pg), *pt = PQport(c->pg);
    char server[sizeof p->server];
    snprintf(server, sizeof server, "%s:%s%s%s%s", h ? h : "", pt ? pt : "", ha && *ha ? " (" : "",
             ha && *ha ? ha : "", ha && *ha ? ")" : "");
    if (strcmp(server, p->server) != 0) {
        if (p->server[0]) {
            p->failovers++;
            log_warn("database: now connected to %s (was %s)", server, p->server);
        }
        memcpy(p->server, server, sizeof server);
    }
    if (p->ntargets) { /* remember where it is, numerically, for connections outside the pool */
        char *nh = strdup(h ? h : ""), *na = strdup(ha ? ha : ""), *np = strdup(pt ? pt : "");
        if (nh && na && np) {
            free(p->last_host);
            free(p->last_addr);
            free(p->last_port);
            p->last_host = nh, p->last_addr = na, p->last_port = np;
        } else {
            free(nh), free(na), free(np);
        }
    }
    conn_set_state(c, CONN_READY);
    log_info("database connection %d ready on %s", c->idx, server);
    conn_watch(c, EV_READ);
    pool_pump(c->pool);
}

static void connect_step(struct db_conn *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int cur = current_entry(c);
    if (cur != c->cur && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        c->cur = cur;   /* libpq moved on to another address: a fresh timeout for it */
        arm_timer(c, c->pool->addr_timeout_ms);
    }
    switch (st) {
    case PGRES_POLLING_READING:
        conn_watch(c, EV_READ); /* PQsocket() may change between steps */
        break;
    case PGRES_POLLING_WRITING:
        conn_watch(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        conn_ready(c);
        break;
    default: {
        char why[256];
        const char *m = PQerrorMessage(c->pg);
        size_t l = strcspn(m, "\n");
        snprintf(why, sizeof why, "connect failed: %.*s", (int)(l > 200 ? 200 : l), m);
        conn_broken(c, why);
    }
    }
}

/* The entry libpq is on now (matched by address and port), or -1. */
static int current_entry(const struct db_conn *c)
{
    const struct db_pool *p = c->pool;
    if (!c->pg || !p->ntargets)
        return -1;
    const char *ha = PQhostaddr(c->pg), *pt = PQport(c->pg), *h = PQhost(c->pg);
    for (int i = 0; i < c->nent; i++) {
        const struct target *t = &p->targets[c->ent[i].target];
        const char *want = c->ent[i].addr[0] ? c->ent[i].addr : t->host;
        const char *have = c->ent[i].addr[0] ? ha : h;
        if (have && strcmp(want, have) == 0 && (!t->port[0] || (pt && strcmp(t->port, pt) == 0)))
            return i;
    }
    return -1;
}

static void arm_timer(struct db_conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void conn_start(struct db_conn *c);

/* Each address gets its own connect timeout (libpq's connect_timeout semantics, which
 * libpq itself enforces only in blocking connects): a silent server must not keep the
 * pool from the next address or host. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    if (c->state == CONN_BACKOFF) {
        conn_connect(c);
        return;
    }
    if (c->state != CONN_CONNECTING)
        return;
    int i = current_entry(c);
    if (i >= 0 && i + 1 < c->nent) {
        log_warn("database connection %d: %s:%s timed out, trying the next address", c->idx,
                 c->ent[i].addr[0] ? c->ent[i].addr : c->pool->targets[c->ent[i].target].host,
                 c->pool->targets[c->ent[i].target].port);
        if (c->io) {
            event_del(c->io);
            event_free(c->io);
            c->io = NULL;
        }
        PQfinish(c->pg);
        c->pg = NULL;
        memmove(c->ent, c->ent + i + 1, (size_t)(c->nent - i - 1) * sizeof c->ent[0]);
        c->nent -= i + 1;
        conn_start(c);
        return;
    }
    conn_broken(c, "connect timed out");
}

/* Join one field of the entries with commas into a new string. */
static char *join_entries(const struct db_conn *c, int field)
{
    const struct db_pool *p = c->pool;
    size_t len = 1;
    for (int i = 0; i < c->nent; i++) {
        const struct target *t = &p->targets[c->ent[i].target];
        len += strlen(field == 0 ? t->host : field == 1 ? c->ent[i].addr : t->port) + 1;
    }
    char *s = malloc(len), *w = s;
    if (!s)
        return NULL;
    for (int i = 0; i < c->nent; i++) {
        const struct target *t = &p->targets[c->ent[i].target];
        const char *v = field == 0 ? t->host : field == 1 ? c->ent[i].addr : t->port;
        if (i)
            *w++ = ',';
        size_t l = strlen(v);
        memcpy(w, v, l);
        w += l;
    }
    *w = '\0';
    return s;
}

/* Every target looked up: hand libpq the list. */
static void conn_start(struct db_conn *c)
{
    struct db_pool *p = c->pool;
    if (p->ntargets == 0) {
        c->pg = PQconnectStartParams(p->opts.keywords, p->opts.values, 0);
    } else {
        if (c->nent == 0) {
            conn_broken(c, "no address for any database host");
            return;
        }
        char *v[3] = {join_entries(c, 0), join_entries(c, 1), join_entries(c, 2)};
        const char *vals[MAX_KW_ALL + 1];
        int n = 0;
        for (const char *const *k = p->opts.keywords; *k && n < p->nkw; k++)
            if (strcmp(*k, "host") != 0 && strcmp(*k, "hostaddr") != 0 && strcmp(*k, "port") != 0)
                vals[n++] = p->opts.values[k - p->opts.keywords];
        vals[n++] = v[0];
        vals[n++] = v[1];
        vals[n++] = v[2];
        vals[n] = NULL;
        c->pg = v[0] && v[1] && v[2] ? PQconnectStartParams(p->kw, vals, 0) : NULL;
        for (int i = 0; i < 3; i++)
            free(v[i]);
    }
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        char why[256];
        const char *m = c->pg ? PQerrorMessage(c->pg) : "out of memory";
        size_t l = strcspn(m, "\n");
        snprintf(why, sizeof why, "connect failed: %.*s", (int)(l > 200 ? 200 : l), m);
        conn_broken(c, why);
        return;
    }
    c->cur = current_entry(c);
    arm_timer(c, p->ntargets ? p->addr_timeout_ms : p->opts.connect_timeout_ms);
    conn_watch(c, EV_WRITE);
}

static void resolve_next(struct db_conn *c);

static void on_resolved(const struct resolve_addr *addrs, int n, const char *error, void *arg)
{
    struct db_conn *c = arg;
    struct db_pool *p = c->pool;
    c->rq = NULL;
    int ti = (p->start_target + c->next_target) % p->ntargets;
    if (n == 0)
        log_warn("database connection %d: cannot resolve %s: %s", c->idx, p->targets[ti].host, error);
    for (int i = 0; i < n && c->nent < MAX_ENTRIES; i++) {
        c->ent[c->nent].target = ti;
        memcpy(c->ent[c->nent].addr, addrs[i].text, sizeof addrs[i].text);
        c->nent++;
    }
    c->next_target++;
    resolve_next(c);
}

/* Look up the targets one after the other, from start_target on. */
static void resolve_next(struct db_conn *c)
{
    struct db_pool *p = c->pool;
    while (c->next_target < p->ntargets) {
        int ti = (p->start_target + c->next_target) % p->ntargets;
        const struct target *t = &p->targets[ti];
        if (t->needs_lookup && p->opts.resolver) {
            c->rq = resolve_start(p->opts.resolver, t->host, on_resolved, c);
            if (!c->rq) {
                conn_broken(c, "out of memory");
                return;
            }
            return;
        }
        if (c->nent < MAX_ENTRIES) {
            c->ent[c->nent].target = ti;
            snprintf(c->ent[c->nent].addr, sizeof c->ent[c->nent].addr, "%s", t->hostaddr ? t->hostaddr : "");
            c->nent++;
        }
        c->next_target++;
    }
    conn_start(c);
}

static void conn_connect(struct db_conn *c)
{
    struct db_pool *p = c->pool;
    conn_set_state(c, CONN_CONNECTING);
    arm_timer(c, p->opts.connect_timeout_ms);   /* the lookups; each address then gets its own */
    c->nent = 0;
    c->next_target = 0;
    resolve_next(c);
}

/* ---- pipeline I/O ---------------------------------------------------------- */

static int conn_flush(struct db_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_broken(c, "flush failed");
        return -1;
    }
    conn_watch(c, r == 1 ? (EV_READ | EV_WRITE) : EV_READ);
    return 0;
}

/* Send u's single statement as a named one; 1 when it was sent unnamed instead (not
 * eligible, or no room), 0 when sent, -1 on a libpq failure. */
static int send_prepared(struct db_conn *c, struct unit *u)
{
    const struct db_stmt *s = &u->stmts[0];
    if (!c->stmts || u->n != 1 || !stmt_cache_eligible(s->sql))
        return 1;
    char name[STMT_NAME_MAX];
    uint32_t id = 0;
    enum stmt_lookup k = stmt_cache_lookup(c->stmts, s->sql, name, &id);
    if (k == STMT_NONE)
        return 1;
    u->prep_id = id;
    if (k == STMT_FULL) {
        if (!PQsendQueryParams(c->pg, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0))
            return -1;
        u->extra++;
    }
    if (k != STMT_HIT) {
        if (!PQsendPrepare(c->pg, name, s->sql, s->nparams, NULL))
            return -1;
        u->extra++;
        u->prep_sent = true;
    }
    return PQsendQueryPrepared(c->pg, name, s->nparams, s->params, NULL, NULL, 0) ? 0 : -1;
}

static int conn_send(struct db_conn *c, struct unit *u)
{
    int rc = send_prepared(c, u);
    if (rc < 0)
        return -1;
    for (int i = 0; rc == 1 && i < u->n; i++) {
        const struct db_stmt *s = &u->stmts[i];
        if (!PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0))
            return -1;
    }
    if (!PQpipelineSync(c->pg))
        return -1;
    u->sent_ms = clock_mono_ms();
    u->next = NULL;
    if (c->tail)
        c->tail->next = u;
    else
        c->head = u;
    c->tail = u;
    c->depth++;
    c->writes += !u->reads;
    return 0;
}

static void record_error(struct unit *u, const PGresult *res)
{
    if (u->status != DB_OK)
        return;
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* Connection failures and server shutdown (class 08, 57P01-57P03) mean the
     * statement did not run to completion: the caller sees "unavailable". */
    u->status = !st || strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
                        strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0 ||
                        strcmp(st, "25006") == 0
                    ? DB_UNAVAILABLE
                    : DB_SQL_ERROR;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(u->sqlstate, sizeof u->sqlstate, "%s", st ? st : "");
    free(u->message);
    u->message = strdup(msg ? msg : "unknown database error");
}

/* Read every complete result; returns -1 if the connection broke. */
static int conn_read(struct db_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_broken(c, "connection closed by server");
        return -1;
    }
    while (c->head && !PQisBusy(c->pg)) {
        struct unit *u = c->head;
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            /* end of one statement's results */
            if (u->extra > 0)
                u->extra--;
            else if (u->next_result < u->n)
                u->next_result++;
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (u->extra > 0 && st != PGRES_PIPELINE_SYNC) {
            /* DEALLOCATE ALL or the Parse of the unit's statement: an error is the
             * unit's (the execution then reports the pipeline aborted) */
            if (st != PGRES_COMMAND_OK) {
                if (st != PGRES_PIPELINE_ABORTED)
                    record_error(u, res);
                if (u->extra == 1 && u->prep_sent)
                    stmt_cache_drop(c->stmts, u->prep_id);
            }
            PQclear(res);
            continue;
        }
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            c->head = u->next;
            if (!c->head)
                c->tail = NULL;
            c->depth--;
            c->writes -= !u->reads;
            unit_complete(c->pool, u, DB_OK);
            continue;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || st == PGRES_BAD_RESPONSE ||
            st == PGRES_NONFATAL_ERROR) {
            if (st != PGRES_PIPELINE_ABORTED)
                record_error(u, res);
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (code && strcmp(code, "25006") == 0)
                c->read_only = true;
            /* the server does not have the statement (any more), or its plan no longer
             * fits the tables: prepare it afresh next time */
            if (u->prep_id && code && (strcmp(code, "26000") == 0 || strcmp(code, "0A000") == 0))
                stmt_cache_drop(c->stmts, u->prep_id);
        }
        int i = u->next_result < u->n ? u->next_result : u->n - 1;
        PQclear(u->res[i]);
        u->res[i] = res;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, "connection bad");
        return -1;
    }
    if (c->read_only) {
        /* An old primary back as a standby: start the next attempts after it. */
        struct db_pool *p = c->pool;
        int i = current_entry(c);
        if (i >= 0)
            p->start_target = (c->ent[i].target + 1) % p->ntargets;
        conn_broken(c, "the server is read-only (SQLSTATE 25006)");
        return -1;
    }
    return 0;
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    if (c->state == CONN_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->state != CONN_READY)
        return;
    if ((what & EV_READ) && conn_read(c) < 0)
        return;
    if (conn_flush(c) < 0)
        return;
    pool_pump(c->pool);
}

/* Start-up opens one connection: a fresh backend costs the server a fork and its
 * catalog caches, and the first requests need one connection only. The others are
 * opened once, when a second unit is in flight on a connection (demand) or at the
 * first tick with a connection live, whichever comes first. */
static void pool_grow(struct db_pool *p, const char *why)
{
    if (p->grown)
        return;
    p->grown = true;
    if (p->opts.size > 1)
        log_info("database pool: opening the other %d connections (%s)", p->opts.size - 1, why);
    for (int i = 0; i < p->opts.size; i++)
        if (p->conns[i].state == CONN_DOWN)
            conn_connect(&p->conns[i]);
}

/* A connection whose oldest unit in flight was sent at most this long ago is answering
 * promptly: new reads join it (up to PACK_DEPTH in flight) rather than wake another
 * backend. With the database on the same cores, one backend kept busy costs far less than
 * several woken in turn (an uncached read ran 20-30% faster packed, 8 clients, 2 cores); a
 * connection stuck on a slow statement gets no more than it has. Writes are not packed,
 * nor reads behind them: each commit waits for its WAL flush (commits on several backends
 * share one), and a read queued behind a commit waits for that flush too. */
#define PACK_FRESH_MS 1
#define PACK_DEPTH 8

/* The connection for unit u: for a read, the one already written to in this loop
 * iteration (the units leave in one write), else the fullest one answering promptly
 * below PACK_DEPTH, either with no write in flight; else (and for a write) the least
 * loaded. NULL when every ready one is at the depth limit. */
static struct db_conn *pick_conn(struct db_pool *p, const struct unit *u)
{
    struct db_conn *best = NULL, *busy = NULL;
    uint64_t now = 0;
    for (int i = 0; i < p->opts.size; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->state != CONN_READY || c->depth >= p->opts.max_depth)
            continue;
        if (u->reads && c->dirty && !c->writes)
            return c;
        if (u->reads && c->depth > 0 && c->depth < PACK_DEPTH && !c->writes) {
            if (!now)
                now = clock_mono_ms();
            if (now - c->head->sent_ms <= PACK_FRESH_MS && (!busy || c->depth > busy->depth))
                busy = c;
        }
        if (!best || c->depth < best->depth)
            best = c;
    }
    return busy ? busy : best;
}

/* Hand waiting units to ready connections (pick_conn). */
static void pool_pump(struct db_pool *p)
{
    while (p->qhead) {
        struct db_conn *best = pick_conn(p, p->qhead);
        if (!best)
            return;
        struct unit *u = p->qhead;
        p->qhead = u->next;
        if (!p->qhead)
            p->qtail = NULL;
        p->queued--;
        if (u->wanted && !u->wanted(u->arg)) {
            p->dropped++; /* e.g. its client hung up: the database never sees it */
            unit_complete(p, u, DB_UNAVAILABLE);
            continue;
        }
        if (conn_send(best, u) < 0) {
            unit_complete(p, u, DB_UNAVAILABLE);
            conn_broken(best, "send failed");
            continue;
        }
        if (best->depth > 1) /* the pool has more work than one connection at a time */
            pool_grow(p, "a second statement in flight");
        if (!best->dirty) {
            best->dirty = true;
            event_active(p->flush, EV_TIMEOUT, 0);
        }
    }
}

/* Flush every connection that was given queries during this loop iteration, so
 * units submitted by several requests leave in one write. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    for (int i = 0; i < p->opts.size; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->dirty) {
            c->dirty = false;
            if (c->state == CONN_READY)
                conn_flush(c);
        }
    }
}

/* Once a second: break connections whose oldest unit has stalled; grow the pool. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    uint64_t now = clock_mono_ms();
    if (p->live > 0)
        pool_grow(p, "a tick with a connection live");
    for (int i = 0; i < p->opts.size; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->state == CONN_READY && c->head &&
            now - c->head->sent_ms > (uint64_t)p->opts.stall_timeout_ms)
            conn_broken(c, "query stalled");
    }
}

/* ---- public ---------------------------------------------------------------- */

static const char *kw_get(const struct db_pool_opts *o, const char *k)
{
    for (int i = 0; o->keywords[i]; i++)
        if (strcmp(o->keywords[i], k) == 0)
            return o->values[i];
    return NULL;
}

/* Split a comma list into at most max new strings; returns the count or -1. */
static int split_list(const char *s, char **out, int max)
{
    int n = 0;
    for (;;) {
        size_t l = strcspn(s, ",");
        if (n == max || !(out[n] = strndup(s, l)))
            return -1;
        n++;
        if (!s[l])
            return n;
        s += l + 1;
    }
}

/* host / hostaddr / port as libpq reads them, into targets. */
static int parse_targets(struct db_pool *p, char *err, size_t errlen)
{
    const char *host = kw_get(&p->opts, "host"), *addr = kw_get(&p->opts, "hostaddr"),
               *port = kw_get(&p->opts, "port");
    if (!host || !*host)
        return 0;   /* libpq's default (local socket), or a hostaddr alone: as given */
    char *hosts[MAX_TARGETS] = {0}, *addrs[MAX_TARGETS] = {0}, *ports[MAX_TARGETS] = {0};
    int nh = split_list(host, hosts, MAX_TARGETS);
    int na = addr && *addr ? split_list(addr, addrs, MAX_TARGETS) : 0;
    int np = port && *port ? split_list(port, ports, MAX_TARGETS) : 0;
    int rc = 0;
    if (nh < 0 || na < 0 || np < 0) {
        snprintf(err, errlen, "the database settings name more than %d hosts, addresses or ports", MAX_TARGETS);
        rc = -1;
    } else if (na && na != nh) {
        snprintf(err, errlen, "the database settings give %d hostaddr values for %d hosts", na, nh);
        rc = -1;
    } else if (np > 1 && np != nh) {
        snprintf(err, errlen, "the database settings give %d ports for %d hosts", np, nh);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < nh; i++) {
        struct target *t = &p->targets[i];
        t->host = hosts[i];
        hosts[i] = NULL;
        t->port = strdup(np == 0 ? "" : np == 1 ? ports[0] : ports[i]);
        if (na && addrs[i][0]) {
            t->hostaddr = addrs[i];
            addrs[i] = NULL;
        }
        p->ntargets++;
        if (!t->port) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        /* an address written as the host is its own hostaddr: the first connection
         * starts here, without waiting a loop iteration for the resolver's answer */
        if (!t->hostaddr && cidr_is_address(t->host) && !(t->hostaddr = strdup(t->host))) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        /* a socket directory (or abstract socket) and a given address are used as is */
        t->needs_lookup = !t->hostaddr && t->host[0] && t->host[0] != '/' && t->host[0] != '@';
    }
    for (int i = 0; i < MAX_TARGETS; i++) {
        free(hosts[i]);
        free(addrs[i]);
        free(ports[i]);
    }
    if (rc < 0)
        return -1;
    int n = 0;
    p->kw = calloc(MAX_KW_ALL + 1, sizeof *p->kw);
    if (!p->kw) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (const char *const *k = p->opts.keywords; *k; k++)
        if (strcmp(*k, "host") != 0 && strcmp(*k, "hostaddr") != 0 && strcmp(*k, "port") != 0 &&
            n < MAX_KW_ALL - 3)
            p->kw[n++] = *k;
    p->nkw = n;
    p->kw[n++] = "host";
    p->kw[n++] = "hostaddr";
    p->kw[n++] = "port";
    return 0;
}

struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_opts *opts, char *err, size_t errlen)
{
    struct db_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->base = base;
    p->opts = *opts;
    if (parse_targets(p, err, errlen) < 0) {
        db_pool_free(p);
        return NULL;
    }
    p->addr_timeout_ms = opts->connect_timeout_ms;
    const char *ct = kw_get(opts, "connect_timeout");
    if (ct && *ct) {
        char *end;
        long v = strtol(ct, &end, 10);
        if (*end || v < 0 || v > 3600) {
            snprintf(err, errlen, "connect_timeout must be a number of seconds from 0 to 3600");
            db_pool_free(p);
            return NULL;
        }
        if (v > 0)
            p->addr_timeout_ms = (int)v * 1000;
    }
    p->conns = calloc((size_t)opts->size, sizeof *p->conns);
    p->deliver = event_new(base, -1, 0, deliver_cb, p);
    p->flush = event_new(base, -1, 0, flush_cb, p);
    p->tick = event_new(base, -1, EV_PERSIST, tick_cb, p);
    if (!p->conns || !p->deliver || !p->flush || !p->tick) {
        snprintf(err, errlen, "out of memory");
        db_pool_free(p);
        return NULL;
    }
    struct timeval one = {1, 0};
    event_add(p->tick, &one);
    for (int i = 0; i < opts->size; i++) {
        struct db_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        c->timer = evtimer_new(base, timer_cb, c);
        c->stmts = stmt_cache_new(opts->prepared);
        if (!c->timer || (opts->prepared > 0 && !c->stmts)) {
            snprintf(err, errlen, "out of memory");
            db_pool_free(p);
            return NULL;
        }
    }
    /* One connection first: the rest when there is work for them or a tick after (pool_grow),
     * so a start-up does not make the server fork every backend before the first answer. */
    conn_connect(&p->conns[0]);
    return p;
}

static void free_list(struct unit *u)
{
    while (u) {
        struct unit *next = u->next;
        unit_free(u);
        u = next;
    }
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    if (p->conns)
        for (int i = 0; i < p->opts.size; i++) {
            struct db_conn *c = &p->conns[i];
            if (c->pool) {
                conn_close(c);
                stmt_cache_free(c->stmts);
                if (c->timer)
                    event_free(c->timer);
                free_list(c->head);
            }
        }
    free_list(p->qhead);
    free_list(p->dhead);
    if (p->deliver)
        event_free(p->deliver);
    if (p->tick)
        event_free(p->tick);
    if (p->flush)
        event_free(p->flush);
    free(p->conns);
    for (int i = 0; i < p->ntargets; i++) {
        free(p->targets[i].host);
        free(p->targets[i].port);
        free(p->targets[i].hostaddr);
    }
    free(p->kw);
    free(p->last_host);
    free(p->last_addr);
    free(p->last_port);
    free(p);
}

int db_pool_server_params(struct db_pool *p, const char *const **kw, const char *const **vals)
{
    if (p->ntargets == 0) { /* nothing to resolve (a socket directory): as configured */
        *kw = p->opts.keywords;
        *vals = p->opts.values;
        return 0;
    }
    if (!p->last_addr || !*p->last_addr)
        return -1;
    int n = 0;
    for (const char *const *k = p->opts.keywords; *k && n < p->nkw; k++)
        if (strcmp(*k, "host") != 0 && strcmp(*k, "hostaddr") != 0 && strcmp(*k, "port") != 0)
            p->sp_vals[n++] = p->opts.values[k - p->opts.keywords];
    p->sp_vals[n++] = p->last_host;
    p->sp_vals[n++] = p->last_addr;
    p->sp_vals[n++] = p->last_port;
    p->sp_vals[n] = NULL;
    *kw = p->kw;
    *vals = p->sp_vals;
    return 0;
}

void db_submit(struct db_pool *p, const struct db_stmt *stmts, int n, db_callback cb, void *arg)
{
    db_submit_if(p, stmts, n, cb, arg, NULL);
}

void db_submit_if(struct db_pool *p, const struct db_stmt *stmts, int n, db_callback cb, void *arg,
                  bool (*wanted)(void *arg))
{
    struct unit *u = unit_new(stmts, n, cb, arg);
    if (!u) {
        /* Out of memory: still answer from the loop, with a unit that has no statements. */
        static const struct db_stmt none = {"", 0, NULL};
        u = unit_new(&none, 1, cb, arg);
        if (!u)
            return; /* nothing left to report with */
        unit_complete(p, u, DB_UNAVAILABLE);
        return;
    }
    u->wanted = wanted;
    if (p->live == 0 || p->queued >= p->opts.max_queue) {
        unit_complete(p, u, DB_UNAVAILABLE);
        return;
    }
    if (p->qtail)
        p->qtail->next = u;
    else
        p->qhead = u;
    p->qtail = u;
    p->queued++;
    pool_pump(p);
}

void db_query(struct db_pool *p, const char *sql, int nparams, const char *const *params,
              db_callback cb, void *arg)
{
    struct db_stmt s = {sql, nparams, params};
    db_submit(p, &s, 1, cb, arg);
}

int db_pool_live(const struct db_pool *p)
{
    return p->live;
}

int db_pool_size(const struct db_pool *p)
{
    return p->opts.size;
}

uint64_t db_pool_dropped(const struct db_pool *p)
{
    return p->dropped;
}

int db_pool_queued(const struct db_pool *p)
{
    return p->queued;
}

const char *db_pool_server(const struct db_pool *p)
{
    return p->server;
}

uint64_t db_pool_failovers(const struct db_pool *p)
{
    return p->failovers;
}

int db_pool_in_flight(const struct db_pool *p)
{
    int n = 0;
    for (int i = 0; i < p->opts.size; i++)
        n += p->conns[i].depth;
    return n;
}

bool db_is_unique_violation(const struct db_result *r)
{
    return r->status == DB_SQL_ERROR && strcmp(r->sqlstate, "23505") == 0;
}
