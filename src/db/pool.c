/* db/pool: owns the PostgreSQL connections, their state machines, the FIFO of
 * waiting units and the per-connection FIFO of units in flight (pipeline mode).
 * Shapes after libusual's pgsocket: one event per connection re-armed at every
 * connect step, PQfinish only after event_del, reconnect from a backoff timer. */
#include "db/pool.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

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
};

struct db_conn {
    struct db_pool *pool;
    int idx;
    enum conn_state state;
    PGconn *pg;
    struct event *io;
    short io_flags;
    struct event *timer;      /* connect timeout or backoff */
    struct unit *head, *tail; /* in flight, oldest first */
    int depth;
    int backoff_ms;
    bool dirty;               /* queries sent into libpq's buffer, not yet flushed */
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
};

static void conn_connect(struct db_conn *c);
static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void pool_pump(struct db_pool *p);

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
    for (int i = 0; i < n; i++) {
        size_t l = strlen(stmts[i].sql) + 1;
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

static void conn_watch(struct db_conn *c, short flags)
{
    if (c->io && c->io_flags == flags && event_pending(c->io, EV_READ | EV_WRITE, NULL))
        return;
    if (c->io) {
        event_del(c->io);
        event_free(c->io);
        c->io = NULL;
    }
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return;
    c->io = event_new(c->pool->base, fd, flags | EV_PERSIST, conn_io_cb, c);
    c->io_flags = flags;
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
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
}

/* Fail what was in flight, drop the connection and retry after a backoff. */
static void conn_broken(struct db_conn *c, const char *why)
{
    struct db_pool *p = c->pool;
    log_warn("database connection %d lost: %s", c->idx, why);
    conn_close(c);
    c->dirty = false;
    struct unit *u = c->head;
    c->head = c->tail = NULL;
    c->depth = 0;
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
    conn_set_state(c, CONN_READY);
    log_info("database connection %d ready", c->idx);
    conn_watch(c, EV_READ);
    pool_pump(c->pool);
}

static void connect_step(struct db_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
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

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    if (c->state == CONN_CONNECTING)
        conn_broken(c, "connect timed out");
    else if (c->state == CONN_BACKOFF)
        conn_connect(c);
}

static void conn_connect(struct db_conn *c)
{
    struct db_pool *p = c->pool;
    conn_set_state(c, CONN_CONNECTING);
    c->pg = PQconnectStartParams(p->opts.keywords, p->opts.values, 0);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    struct timeval tv = {p->opts.connect_timeout_ms / 1000, (p->opts.connect_timeout_ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    conn_watch(c, EV_WRITE);
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

static int conn_send(struct db_conn *c, struct unit *u)
{
    for (int i = 0; i < u->n; i++) {
        const struct db_stmt *s = &u->stmts[i];
        if (!PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0))
            return -1;
    }
    if (!PQpipelineSync(c->pg))
        return -1;
    u->sent_ms = mono_ms();
    u->next = NULL;
    if (c->tail)
        c->tail->next = u;
    else
        c->head = u;
    c->tail = u;
    c->depth++;
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
                        strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0
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
            if (u->next_result < u->n)
                u->next_result++;
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            c->head = u->next;
            if (!c->head)
                c->tail = NULL;
            c->depth--;
            unit_complete(c->pool, u, DB_OK);
            continue;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || st == PGRES_BAD_RESPONSE ||
            st == PGRES_NONFATAL_ERROR) {
            if (st != PGRES_PIPELINE_ABORTED)
                record_error(u, res);
        }
        int i = u->next_result < u->n ? u->next_result : u->n - 1;
        PQclear(u->res[i]);
        u->res[i] = res;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, "connection bad");
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

/* Hand waiting units to the least-loaded ready connections. */
static void pool_pump(struct db_pool *p)
{
    while (p->qhead) {
        struct db_conn *best = NULL;
        for (int i = 0; i < p->opts.size; i++) {
            struct db_conn *c = &p->conns[i];
            if (c->state == CONN_READY && c->depth < p->opts.max_depth &&
                (!best || c->depth < best->depth))
                best = c;
        }
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

/* Once a second: break connections whose oldest unit has stalled. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    uint64_t now = mono_ms();
    for (int i = 0; i < p->opts.size; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->state == CONN_READY && c->head &&
            now - c->head->sent_ms > (uint64_t)p->opts.stall_timeout_ms)
            conn_broken(c, "query stalled");
    }
}

/* ---- public ---------------------------------------------------------------- */

struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_opts *opts)
{
    struct db_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = base;
    p->opts = *opts;
    p->conns = calloc((size_t)opts->size, sizeof *p->conns);
    p->deliver = event_new(base, -1, 0, deliver_cb, p);
    p->flush = event_new(base, -1, 0, flush_cb, p);
    p->tick = event_new(base, -1, EV_PERSIST, tick_cb, p);
    if (!p->conns || !p->deliver || !p->flush || !p->tick) {
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
        if (!c->timer) {
            db_pool_free(p);
            return NULL;
        }
    }
    for (int i = 0; i < opts->size; i++)
        conn_connect(&p->conns[i]);
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
    free(p);
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
