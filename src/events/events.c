/* events: owns the two Redis links (publisher and subscriber), their state machines,
 * the bounded FIFO of encoded events waiting for the publisher (max_queue events and
 * QUEUE_MAX_BYTES, oldest dropped first; at most MAX_INFLIGHT PUBLISHes unanswered),
 * and the dispatch of `<prefix>notify` messages to opts->on_notify (SPEC 6 and 7).
 *
 * Each link is one hiredis 0.14 async context on the shared event_base and one
 * evtimer whose meaning follows the state:
 *
 *   DISABLED    REDIS_URL is empty; nothing ever connects.
 *   CONNECTING  TCP connect, then AUTH / SELECT when the URL asks for them, then PING
 *               (publisher) or SUBSCRIBE (subscriber); the timer is the deadline
 *               (hiredis 0.14 has no connect timeout).
 *   UP          usable; for the publisher the timer is a reply watchdog while
 *               PUBLISHes are in flight.
 *   BACKOFF     the context is gone; the timer reconnects after a capped, jittered,
 *               exponential delay.
 *
 * hiredis rules followed here (see c-stack.md A4): every callback copes with
 * reply == NULL; the context is dead after the connect-failure or disconnect callback
 * and is never freed there; redisAsyncFree is only called from our timers, from reply
 * callbacks (where hiredis defers it) or from events_free; a context we dropped is
 * recognised in its late callbacks by link->ac no longer pointing at it.
 *
 * Where a link connects is decided again at every attempt (CONNECTING covers it, under
 * the same deadline): without Sentinel, the REDIS_URL host is resolved (net/resolve,
 * asynchronously) and the link dials one of its addresses (the next one after a
 * failure); with Sentinel (REDIS_SENTINELS), the Sentinels are asked in list order
 * (each resolved, then one short-lived context sending SENTINEL
 * get-master-addr-by-name) and the link dials the answer, then checks with ROLE that
 * it reached a master. A watcher context subscribed to +switch-master on one Sentinel
 * drops links that are not on the new master; a -READONLY reply drops the publisher.
 * Every drop ends in BACKOFF and the next attempt asks again; the queue and the
 * notify subscription survive, as across a restart.
 * on_notify runs inside a hiredis callback: it may call events_publish, but must
 * not call events_free. */
#include "events/events.h"

#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "events/codec.h"
#include "log.h"
#include "util/machine.h"
#include "net/resolve.h"
#include "util/codec.h"
#include "util/clock.h"
#include "util/seed.h"

#define DEFAULT_PREFIX "verifywise:integrations:"
#define DEFAULT_MAX_QUEUE 10000
#define MAX_INFLIGHT 1000          /* PUBLISH commands sent and not yet answered */
#define CONNECT_TIMEOUT_MS 3000    /* TCP connect plus the AUTH/SELECT/PING handshake */
#define REPLY_TIMEOUT_MS 10000     /* publisher: longest wait for the next reply */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_SENTINELS 16
#define WATCH_RETRY_MS 1000       /* +switch-master watcher: delay before the next Sentinel */
#define MAX_TYPE_LEN 128
#define EVENT_MAX_BYTES (1024 * 1024)         /* one encoded event */
#define QUEUE_MAX_BYTES (16 * 1024 * 1024)    /* all queued events, besides the count bound */

enum link_state { LINK_DISABLED = 0, LINK_CONNECTING, LINK_UP, LINK_BACKOFF };
static const char *const link_state_names[] = {"disabled", "connecting", "up", "backoff"};
static const struct machine_def link_def = MACHINE_DEF("redis link", link_state_names);

enum link_role { ROLE_PUBLISHER, ROLE_SUBSCRIBER };

/* Handshake steps after TCP connect; each is skipped when it has nothing to do. */
enum hs_step { HS_NONE = 0, HS_AUTH, HS_SELECT, HS_ROLE, HS_FINAL };

/* What a CONNECTING link is waiting for. */
enum phase { PH_NONE = 0, PH_SENTINEL, PH_RESOLVE, PH_DIAL };

struct link {
    struct events *e;
    enum link_role role;
    const char *name;             /* "publisher" or "subscriber" */
    enum link_state state;
    redisAsyncContext *ac;        /* owned while non-NULL; hiredis frees it after callbacks */
    struct event *timer;          /* deadline, watchdog or backoff, by state */
    enum hs_step step;
    unsigned failures;            /* consecutive, reset when UP */
    int addr_idx;                 /* which resolved address to try */
    const char *fail_why;         /* static reason for a failure deferred to the timer */
    enum phase phase;
    struct resolve_req *rq;       /* lookup in flight (master or Sentinel host) */
    redisAsyncContext *sac;       /* Sentinel being asked, owned while non-NULL */
    int sidx;                     /* which Sentinel is being asked */
    int stried;                   /* Sentinels asked in this attempt */
    int sfirst;                   /* where the next attempt starts (past a hung one) */
    char addr[RESOLVE_ADDRSTRLEN];/* where this attempt dials */
    char target[300];             /* host being resolved */
    int port;
};

struct sentinel {
    char *host;
    int port;
};

/* The +switch-master watcher: one subscribed context on one Sentinel at a time. */
struct watch {
    struct events *e;
    redisAsyncContext *ac;        /* owned while non-NULL */
    struct resolve_req *rq;
    struct event *timer;          /* retry delay, or connect deadline */
    int sidx;
    bool subscribed;
};

/* One events_incr command: owned by hiredis while sent, by the deferred list otherwise. */
struct incr_op {
    struct incr_op *next;
    struct events *e;
    events_incr_cb cb;
    void *arg;
};

/* One encoded event: channel and payload in a single allocation, owned by the queue. */
struct qitem {
    struct qitem *next;
    size_t chan_len;
    size_t data_len;
    char bytes[];                 /* channel, then payload */
};

struct ratelog {
    uint64_t last_ms;
    uint64_t suppressed;
};

struct events {
    struct event_base *base;
    bool disabled;
    struct resolver *resolver;
    bool own_resolver;
    struct sentinel sentinels[MAX_SENTINELS];
    int nsentinels;
    char *master_name;
    struct watch watch;
    char server[300];             /* "address:port" the publisher is (or was last) on */
    uint64_t failovers;
    int port;
    char *host;                   /* as written in the URL */
    char hostport[272];           /* "host:port" or "[v6]:port", for logs */
    char *user;                   /* NULL unless the URL names one */
    char *password;               /* NULL when none; wiped on free */
    long db;
    char *prefix;
    char *notify_channel;
    size_t max_queue;
    void (*on_notify)(const struct notify_msg *m, void *arg);
    void *arg;

    struct link pub, sub;
    struct qitem *qhead, *qtail;
    size_t qlen;
    size_t qbytes;
    unsigned inflight;
    struct events_stats stats;

    uint64_t rng;                 /* xorshift64* state for jitter */
    uint64_t id_counter;
    struct ratelog log_malformed, log_dropped, log_publish_err;
    struct incr_op *deferred;     /* events_incr callbacks due with ok=false, FIFO */
    struct incr_op *deferred_tail;
    struct event *defer_timer;    /* fires them from the loop */
};

static void link_connect(struct link *l);
static void link_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t rng_next(struct events *e)
{
    uint64_t x = e->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* True when a line should be logged now (at most one per second per kind); *n gets
 * the number of occurrences suppressed since the last logged one. */
static bool ratelog_allow(struct ratelog *r, uint64_t *n)
{
    uint64_t t = clock_mono_ms();
    if (r->last_ms && t - r->last_ms < 1000) {
        r->suppressed++;
        return false;
    }
    r->last_ms = t;
    *n = r->suppressed;
    r->suppressed = 0;
    return true;
}

static void timer_arm(struct event *ev, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* Copy a Redis error text for a log line: printable ASCII, bounded. */
static void sanitize(char *dst, size_t dlen, const char *src, size_t slen)
{
    size_t j = 0;
    for (size_t i = 0; i < slen && j + 1 < dlen && j < 120; i++)
        dst[j++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[j] = '\0';
}

/* 16 random bytes as 32 hex characters; falls back to time, pid and a counter. */
static void make_id(struct events *e, char out[33])
{
    unsigned char r[16];
    e->id_counter++;
    if (RAND_bytes(r, sizeof r) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            out[2 * i] = hex[r[i] >> 4];
            out[2 * i + 1] = hex[r[i] & 15];
        }
        out[32] = '\0';
        return;
    }
    snprintf(out, 33, "%012llx%08x%012llx", (unsigned long long)clock_real_ms() & 0xffffffffffffULL,
             (unsigned)getpid(), (unsigned long long)(e->id_counter & 0xffffffffffffULL));
}

/* ---- queue -------------------------------------------------------------------- */

static struct qitem *queue_pop(struct events *e)
{
    struct qitem *it = e->qhead;
    if (!it)
        return NULL;
    e->qhead = it->next;
    if (!e->qhead)
        e->qtail = NULL;
    e->qlen--;
    e->qbytes -= it->chan_len + it->data_len;
    return it;
}

static void queue_push(struct events *e, struct qitem *it)
{
    size_t sz = it->chan_len + it->data_len;
    while (e->qhead && (e->qlen >= e->max_queue || e->qbytes + sz > QUEUE_MAX_BYTES)) {
        free(queue_pop(e));
        e->stats.dropped++;
        uint64_t n;
        if (ratelog_allow(&e->log_dropped, &n))
            log_warn("events: queue full (%zu events or %d MiB), oldest event dropped (%llu more not logged)",
                     e->max_queue, QUEUE_MAX_BYTES / (1024 * 1024), (unsigned long long)n);
    }
    it->next = NULL;
    if (e->qtail)
        e->qtail->next = it;
    else
        e->qhead = it;
    e->qtail = it;
    e->qlen++;
    e->qbytes += sz;
}

/* ---- link state machine -------------------------------------------------------- */

static void link_set_state(struct link *l, enum link_state st)
{
    if (l->state == st)
        return;
    log_debug("redis %s: %s -> %s", l->name, link_state_names[l->state], link_state_names[st]);
    l->state = st;
}

/* Cancel a lookup and free a hiredis context (its reply callbacks, run by the free, see
 * that it is no longer ours). */
static void abandon_async(struct resolve_req **rq, redisAsyncContext **ac)
{
    resolve_cancel(*rq);
    *rq = NULL;
    redisAsyncContext *c = *ac;
    *ac = NULL;
    if (c) {
        c->data = NULL;
        redisAsyncFree(c);
    }
}

/* Drop a lookup or a Sentinel question in flight. */
static void link_abort_pending(struct link *l)
{
    l->phase = PH_NONE;
    abandon_async(&l->rq, &l->sac);
}

/* The context is already gone or released: wait, then reconnect. */
static void link_backoff(struct link *l, const char *why)
{
    struct events *e = l->e;
    bool was_up = l->state == LINK_UP;
    l->failures++;
    if (!was_up)
        l->addr_idx++;   /* next attempt: the name's next address */
    link_abort_pending(l);
    link_set_state(l, LINK_BACKOFF);

    unsigned shift = l->failures > 7 ? 6 : l->failures - 1;
    int delay = BACKOFF_MIN_MS << shift;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    delay = delay / 2 + (int)(rng_next(e) % (uint64_t)(delay / 2 + 1));   /* [d/2, d] */

    if (was_up)
        log_warn("redis %s: connection lost: %s; reconnecting in %d ms", l->name, why, delay);
    else if (l->failures == 1 || l->failures % 20 == 0)
        log_warn("redis %s: cannot connect to %s: %s (attempt %u); retrying in %d ms", l->name,
                 e->nsentinels ? "the master" : e->hostport, why, l->failures, delay);
    else
        log_debug("redis %s: connect attempt %u failed: %s", l->name, l->failures, why);
    timer_arm(l->timer, delay);
}

/* Drop the live context ourselves (timeout, refused handshake). Its late callbacks
 * see l->ac != ac and do nothing but accounting. */
static void link_fail(struct link *l, const char *why)
{
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    link_backoff(l, why);
    if (ac)
        redisAsyncFree(ac);   /* deferred by hiredis when called from a reply callback */
}

static void pump(struct events *e);

static void link_up(struct link *l)
{
    struct events *e = l->e;
    evtimer_del(l->timer);
    bool again = l->failures > 0;
    l->failures = 0;
    l->phase = PH_NONE;
    link_set_state(l, LINK_UP);
    if (l->role == ROLE_PUBLISHER) {
        char server[sizeof e->server];
        snprintf(server, sizeof server, strchr(l->addr, ':') ? "[%s]:%d" : "%s:%d", l->addr, l->port);
        if (strcmp(server, e->server) != 0) {
            if (e->server[0]) {
                e->failovers++;
                log_warn("redis: now on %s (was %s)", server, e->server);
            }
            memcpy(e->server, server, sizeof server);
        }
        log_info("redis publisher: connected to %s (%s)%s (%zu queued)", e->nsentinels ? "the master" : e->hostport,
                 server, again ? " again" : "", e->qlen);
        pump(e);
    } else {
        log_info("redis subscriber: subscribed to %s", e->notify_channel);
    }
}

static void on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata);
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Send the next handshake command. Returns 0, or -1 when hiredis refused it. */
static int handshake_next(struct link *l)
{
    struct events *e = l->e;
    for (;;) {
        l->step++;
        switch (l->step) {
        case HS_AUTH:
            if (!e->password)
                continue;
            if (e->user) {
                const char *argv[3] = {"AUTH", e->user, e->password};
                size_t lens[3] = {4, strlen(e->user), strlen(e->password)};
                return redisAsyncCommandArgv(l->ac, on_handshake_reply, l, 3, argv, lens) == REDIS_OK ? 0 : -1;
            } else {
                const char *argv[2] = {"AUTH", e->password};
                size_t lens[2] = {4, strlen(e->password)};
                return redisAsyncCommandArgv(l->ac, on_handshake_reply, l, 2, argv, lens) == REDIS_OK ? 0 : -1;
            }
        case HS_SELECT: {
            if (e->db == 0)
                continue;
            char db[24];
            int n = snprintf(db, sizeof db, "%ld", e->db);
            const char *argv[2] = {"SELECT", db};
            size_t lens[2] = {6, (size_t)n};
            return redisAsyncCommandArgv(l->ac, on_handshake_reply, l, 2, argv, lens) == REDIS_OK ? 0 : -1;
        }
        case HS_ROLE: {
            if (!e->nsentinels)
                continue;   /* with Sentinel: make sure the answer was a master */
            const char *argv[1] = {"ROLE"};
            size_t lens[1] = {4};
            return redisAsyncCommandArgv(l->ac, on_handshake_reply, l, 1, argv, lens) == REDIS_OK ? 0 : -1;
        }
        case HS_FINAL:
            if (l->role == ROLE_PUBLISHER) {
                /* PING proves the link is usable (NOAUTH, LOADING, ... show here). */
                const char *argv[1] = {"PING"};
                size_t lens[1] = {4};
                return redisAsyncCommandArgv(l->ac, on_handshake_reply, l, 1, argv, lens) == REDIS_OK ? 0 : -1;
            } else {
                const char *argv[2] = {"SUBSCRIBE", e->notify_channel};
                size_t lens[2] = {9, strlen(e->notify_channel)};
                return redisAsyncCommandArgv(l->ac, on_sub_reply, l, 2, argv, lens) == REDIS_OK ? 0 : -1;
            }
        default:
            return -1;
        }
    }
}

static void on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct link *l = privdata;
    redisReply *reply = r;
    if (!reply || l->ac != ac)
        return;   /* disconnecting: on_disconnect (or our own drop) moves the state */
    if (reply->type == REDIS_REPLY_ERROR) {
        static const char *const what[] = {"", "AUTH", "SELECT", "ROLE", "PING"};
        char txt[128], why[192];
        sanitize(txt, sizeof txt, reply->str, reply->len);
        snprintf(why, sizeof why, "%s refused: %s", what[l->step], txt);
        link_fail(l, why);
        return;
    }
    if (l->step == HS_FINAL) {   /* the publisher's PING */
        link_up(l);
        return;
    }
    if (l->step == HS_ROLE) {
        const redisReply *r0 = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 ? reply->element[0] : NULL;
        if (!r0 || r0->type != REDIS_REPLY_STRING || strcmp(r0->str, "master") != 0) {
            link_fail(l, "reached a replica, not the master: asking the Sentinels again");
            return;
        }
    }
    if (handshake_next(l) != 0)
        link_fail(l, "cannot queue handshake command");
}

static void set_keepalive(int fd)
{
    /* No PING is possible on a subscribed 0.14 context: let TCP find dead peers. */
    int on = 1, idle = 15, intvl = 5, cnt = 3;
    if (fd < 0)
        return;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct link *l = ac->data;
    if (!l || l->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns; never free it here. */
        char why[160];
        sanitize(why, sizeof why, ac->errstr, strlen(ac->errstr));
        l->ac = NULL;
        link_backoff(l, why[0] ? why : "connect failed");
        return;
    }
    set_keepalive(ac->c.fd);
    l->step = HS_NONE;
    if (handshake_next(l) != 0) {
        /* Freeing inside the connect callback is unsafe in 0.14: fail from the timer. */
        l->fail_why = "cannot queue handshake command";
        timer_arm(l->timer, 0);
    }
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct link *l = ac->data;
    if (!l || l->ac != ac)
        return;   /* a context we dropped ourselves */
    char why[160];
    if (status == REDIS_OK || !ac->errstr[0])
        snprintf(why, sizeof why, "connection closed");
    else
        sanitize(why, sizeof why, ac->errstr, strlen(ac->errstr));
    l->ac = NULL;   /* hiredis frees it when this returns */
    link_backoff(l, why);
}

/* Dial l->addr:l->port. */
static void link_dial(struct link *l)
{
    struct events *e = l->e;
    l->phase = PH_DIAL;
    redisAsyncContext *ac = redisAsyncConnect(l->addr, l->port);
    if (!ac) {
        link_backoff(l, "out of memory");
        return;
    }
    if (ac->err) {
        char why[160];
        sanitize(why, sizeof why, ac->errstr, strlen(ac->errstr));
        redisAsyncFree(ac);   /* never connected, no callbacks set: freed at once */
        link_backoff(l, why[0] ? why : "connect failed");
        return;
    }
    if (redisLibeventAttach(ac, e->base) != REDIS_OK) {
        redisAsyncFree(ac);
        link_backoff(l, "cannot attach to the event loop");
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_link_resolved(const struct resolve_addr *addrs, int n, const char *error, void *arg)
{
    struct link *l = arg;
    l->rq = NULL;
    if (n == 0) {
        char why[400];
        snprintf(why, sizeof why, "cannot resolve %s: %s", l->target, error);
        link_backoff(l, why);
        return;
    }
    memcpy(l->addr, addrs[l->addr_idx % n].text, sizeof l->addr);
    link_dial(l);
}

/* Resolve `host` (a name or an address), then dial it on `port`. */
static void link_resolve(struct link *l, const char *host, int port)
{
    l->phase = PH_RESOLVE;
    l->port = port;
    snprintf(l->target, sizeof l->target, "%s", host);
    l->rq = resolve_start(l->e->resolver, host, on_link_resolved, l);
    if (!l->rq)
        link_backoff(l, "out of memory");
}

static void sentinel_ask(struct link *l);

static void sentinel_next(struct link *l, const char *why)
{
    struct events *e = l->e;
    struct sentinel *s = &e->sentinels[l->sidx];
    log_debug("redis %s: Sentinel %s:%d: %s", l->name, s->host, s->port, why);
    l->sidx = (l->sidx + 1) % e->nsentinels;
    l->stried++;
    sentinel_ask(l);
}

static void on_sentinel_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct link *l = privdata;
    redisReply *reply = r;
    if (!reply || l->sac != ac)
        return;   /* dropped or dying: its disconnect callback (or our abort) moves on */
    l->sac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);   /* deferred by hiredis until this callback returns */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        sentinel_next(l, "does not know the master");
        return;
    }
    char host[300], portbuf[8];
    sanitize(host, sizeof host, reply->element[0]->str, reply->element[0]->len);
    sanitize(portbuf, sizeof portbuf, reply->element[1]->str, reply->element[1]->len);
    int port = atoi(portbuf);
    if (!host[0] || port < 1 || port > 65535) {
        sentinel_next(l, "gave an unusable master address");
        return;
    }
    link_resolve(l, host, port);
}

static void on_sentinel_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct link *l = ac->data;
    if (!l || l->sac != ac || status == REDIS_OK)
        return;
    l->sac = NULL;   /* hiredis frees it when this returns */
    sentinel_next(l, "cannot connect");
}

static void on_sentinel_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct link *l = ac->data;
    if (!l || l->sac != ac)
        return;
    l->sac = NULL;
    sentinel_next(l, "closed the connection");
}

static void on_sentinel_resolved(const struct resolve_addr *addrs, int n, const char *error, void *arg)
{
    struct link *l = arg;
    struct events *e = l->e;
    l->rq = NULL;
    if (n == 0) {
        sentinel_next(l, error);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(addrs[0].text, e->sentinels[l->sidx].port);
    if (!ac) {
        link_backoff(l, "out of memory");
        return;
    }
    if (ac->err || redisLibeventAttach(ac, e->base) != REDIS_OK) {
        redisAsyncFree(ac);
        sentinel_next(l, "cannot connect");
        return;
    }
    ac->data = l;
    l->sac = ac;
    redisAsyncSetConnectCallback(ac, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(ac, on_sentinel_disconnect);
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", e->master_name};
    size_t lens[3] = {8, 23, strlen(e->master_name)};
    if (redisAsyncCommandArgv(ac, on_sentinel_reply, l, 3, argv, lens) != REDIS_OK) {
        l->sac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
        sentinel_next(l, "cannot queue the question");
    }
}

/* Ask Sentinel l->sidx (and the following ones) where the master is. */
static void sentinel_ask(struct link *l)
{
    struct events *e = l->e;
    if (l->stried >= e->nsentinels) {
        char why[200];
        snprintf(why, sizeof why, "no Sentinel gave the address of master %s", e->master_name);
        link_backoff(l, why);
        return;
    }
    l->phase = PH_SENTINEL;
    l->rq = resolve_start(e->resolver, e->sentinels[l->sidx].host, on_sentinel_resolved, l);
    if (!l->rq)
        link_backoff(l, "out of memory");
}

static void link_connect(struct link *l)
{
    struct events *e = l->e;
    link_set_state(l, LINK_CONNECTING);
    l->fail_why = NULL;
    l->step = HS_NONE;
    timer_arm(l->timer, CONNECT_TIMEOUT_MS);   /* the deadline covers lookups and Sentinels */
    if (e->nsentinels) {
        l->sidx = l->sfirst;
        l->stried = 0;
        sentinel_ask(l);
    } else {
        link_resolve(l, e->host, e->port);
    }
}

static void link_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct link *l = arg;
    switch (l->state) {
    case LINK_CONNECTING:
        if (l->phase == PH_SENTINEL)   /* a Sentinel that does not answer: start after it next time */
            l->sfirst = (l->sidx + 1) % l->e->nsentinels;
        link_fail(l, l->fail_why ? l->fail_why : "connect timed out");
        break;
    case LINK_BACKOFF:
        link_connect(l);
        break;
    case LINK_UP:
        if (l->role == ROLE_PUBLISHER && l->e->inflight > 0)
            link_fail(l, "no reply to PUBLISH in time");
        break;
    case LINK_DISABLED:
        break;
    default:
        MACHINE_IMPOSSIBLE(&link_def, l->state);
    }
}

/* ---- publishing ----------------------------------------------------------------- */

static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct events *e = privdata;
    redisReply *reply = r;
    e->inflight--;
    if (!reply) {
        e->stats.dropped++;   /* outcome unknown: connection lost before the reply */
    } else if (reply->type == REDIS_REPLY_ERROR) {
        e->stats.dropped++;
        uint64_t n;
        if (ratelog_allow(&e->log_publish_err, &n)) {
            char txt[128];
            sanitize(txt, sizeof txt, reply->str, reply->len);
            log_warn("redis publisher: PUBLISH refused: %s (%llu more not logged)", txt, (unsigned long long)n);
        }
    } else {
        e->stats.published++;
    }
    if (!reply || e->pub.ac != ac || e->pub.state != LINK_UP)
        return;   /* a dropped or dying context: nothing more to do with it */
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0) {
        link_fail(&e->pub, "the server is a replica (READONLY)");
        return;
    }
    if (e->inflight == 0)
        evtimer_del(e->pub.timer);
    else
        timer_arm(e->pub.timer, REPLY_TIMEOUT_MS);
    pump(e);
}

/* Send queued events in order while the publisher is up and the in-flight cap allows. */
static void pump(struct events *e)
{
    struct link *l = &e->pub;
    while (e->qhead && l->state == LINK_UP && l->ac && e->inflight < MAX_INFLIGHT) {
        struct qitem *it = e->qhead;
        const char *argv[3] = {"PUBLISH", it->bytes, it->bytes + it->chan_len};
        size_t lens[3] = {7, it->chan_len, it->data_len};
        if (redisAsyncCommandArgv(l->ac, on_publish_reply, e, 3, argv, lens) != REDIS_OK)
            break;   /* stays queued; the link is going down */
        free(queue_pop(e));
        if (e->inflight++ == 0)
            timer_arm(l->timer, REPLY_TIMEOUT_MS);
    }
}

void events_publish(struct events *e, const char *type, long long organization_id, const char *tenant,
                    long long actor_user_id, const json_t *data)
{
    if (!e)
        return;
    if (e->disabled) {
        e->stats.dropped++;
        return;
    }
    size_t tlen = type ? strlen(type) : 0;
    if (tlen == 0 || tlen > MAX_TYPE_LEN) {
        e->stats.dropped++;
        log_error("events: event with an empty or over-long type not published");
        return;
    }
    char id[33];
    make_id(e, id);
    char *buf = NULL;
    size_t len = 0;
    if (event_encode(type, id, (int64_t)clock_real_ms(), organization_id, tenant, actor_user_id, data,
                     &buf, &len) != 0) {
        e->stats.dropped++;
        log_error("events: %s not published: cannot encode (data not an object, too deep, or no memory)", type);
        return;
    }
    if (len > EVENT_MAX_BYTES) {
        free(buf);
        e->stats.dropped++;
        log_error("events: %s not published: %zu bytes encoded, limit %d", type, len, EVENT_MAX_BYTES);
        return;
    }
    size_t plen = strlen(e->prefix);
    struct qitem *it = malloc(sizeof *it + plen + tlen + len);
    if (!it) {
        free(buf);
        e->stats.dropped++;
        return;
    }
    it->chan_len = plen + tlen;
    it->data_len = len;
    memcpy(it->bytes, e->prefix, plen);
    memcpy(it->bytes + plen, type, tlen);
    memcpy(it->bytes + it->chan_len, buf, len);
    free(buf);
    queue_push(e, it);
    pump(e);
}

/* ---- shared counters (events_incr) ------------------------------------------------ */

/* INCR, and an expiry when the key has none (also repairs a key left without one). */
static const char INCR_SCRIPT[] =
    "local n = redis.call('INCR', KEYS[1]) "
    "local t = redis.call('PTTL', KEYS[1]) "
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end "
    "return {n, t}";

static void defer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct events *e = arg;
    struct incr_op *op = e->deferred;
    e->deferred = e->deferred_tail = NULL;
    while (op) {   /* callbacks may add new ones: those wait for the next turn */
        struct incr_op *next = op->next;
        op->cb(0, 0, false, op->arg);
        free(op);
        op = next;
    }
}

static void incr_defer(struct events *e, struct incr_op *op)
{
    op->next = NULL;
    if (e->deferred_tail)
        e->deferred_tail->next = op;
    else
        e->deferred = op;
    e->deferred_tail = op;
    timer_arm(e->defer_timer, 0);
}

static void on_incr_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct incr_op *op = privdata;
    struct events *e = op->e;
    redisReply *reply = r;
    e->inflight--;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
              reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[1]->type == REDIS_REPLY_INTEGER;
    op->cb(ok ? reply->element[0]->integer : 0, ok ? reply->element[1]->integer : 0, ok, op->arg);
    free(op);
    if (!reply || e->pub.ac != ac || e->pub.state != LINK_UP)
        return;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0) {
        link_fail(&e->pub, "the server is a replica (READONLY)");
        return;
    }
    if (e->inflight == 0)
        evtimer_del(e->pub.timer);
    else
        timer_arm(e->pub.timer, REPLY_TIMEOUT_MS);
    pump(e);
}

int events_incr(struct events *e, const char *key, long long ttl_ms, events_incr_cb cb, void *arg)
{
    if (!e || !key || !cb)
        return -1;
    if (!e->defer_timer && !(e->defer_timer = evtimer_new(e->base, defer_fire, e)))
        return -1;
    struct incr_op *op = calloc(1, sizeof *op);
    if (!op)
        return -1;
    op->e = e;
    op->cb = cb;
    op->arg = arg;
    struct link *l = &e->pub;
    if (e->disabled || l->state != LINK_UP || !l->ac || e->inflight >= MAX_INFLIGHT) {
        incr_defer(e, op);
        return 0;
    }
    char ttl[24];
    int n = snprintf(ttl, sizeof ttl, "%lld", ttl_ms > 0 ? ttl_ms : 1);
    const char *argv[5] = {"EVAL", INCR_SCRIPT, "1", key, ttl};
    size_t lens[5] = {4, sizeof INCR_SCRIPT - 1, 1, strlen(key), (size_t)n};
    if (redisAsyncCommandArgv(l->ac, on_incr_reply, op, 5, argv, lens) != REDIS_OK) {
        incr_defer(e, op);
        return 0;
    }
    if (e->inflight++ == 0)
        timer_arm(l->timer, REPLY_TIMEOUT_MS);
    return 0;
}

/* ---- subscriber ----------------------------------------------------------------- */

static void notify_malformed(struct events *e, const char *why, size_t len)
{
    e->stats.notify_malformed++;
    uint64_t n;
    if (!ratelog_allow(&e->log_malformed, &n))
        return;
    json_t *f = json_object();
    if (f) {
        json_object_set_new(f, "reason", json_string(why));
        json_object_set_new(f, "bytes", json_integer((json_int_t)len));
        json_object_set_new(f, "suppressed", json_integer((json_int_t)n));
    }
    log_fields(LOG_WARN, "malformed notify message dropped", f);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct link *l = privdata;
    redisReply *reply = r;
    if (!reply || l->ac != ac)
        return;   /* NULL: the connection is going; on_disconnect follows */
    struct events *e = l->e;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    if (strcasecmp(kind, "subscribe") == 0) {
        if (l->state == LINK_CONNECTING)
            link_up(l);
        return;
    }
    if (strcasecmp(kind, "message") != 0)
        return;
    e->stats.notify_received++;
    const redisReply *payload = reply->element[2];
    if (payload->type != REDIS_REPLY_STRING) {
        notify_malformed(e, "payload is not a string", 0);
        return;
    }
    struct notify_decoded d;
    char why[96];
    if (notify_decode(payload->str, payload->len, &d, why, sizeof why) != 0) {
        notify_malformed(e, why, payload->len);
        return;
    }
    log_debug("notify: organization %lld, routing type %s", d.msg.organization_id, d.msg.routing_type);
    if (e->on_notify)
        e->on_notify(&d.msg, e->arg);
    notify_decoded_free(&d);
}

/* ---- REDIS_URL ---------------------------------------------------------------------- */

/* Percent-decode [s, s+n) into a new string; NULL on a bad escape, NUL or no memory. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out && percent_decode(s, n, out, n + 1, 0) < 0) {
        OPENSSL_cleanse(out, n + 1);
        free(out);
        out = NULL;
    }
    return out;
}

static void url_err(char *err, size_t errlen, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "REDIS_URL: %s", why);
}

/* redis://[[user]:password@]host[:port][/db]. Fills e->host/user/password/port/db. */
static int parse_url(struct events *e, const char *url, char *err, size_t errlen)
{
    if (strncasecmp(url, "rediss://", 9) == 0) {
        url_err(err, errlen, "TLS (rediss://) is not supported by this build (hiredis 0.14); use redis:// "
                             "on a trusted network or a local TLS tunnel");
        return -1;
    }
    if (strncasecmp(url, "redis://", 8) != 0) {
        url_err(err, errlen, "expected redis://[[user]:password@]host[:port][/db]");
        return -1;
    }
    const char *p = url + 8;
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    if (*rest == '?' || *rest == '#') {
        url_err(err, errlen, "query parameters and fragments are not supported");
        return -1;
    }

    /* userinfo: the last '@' inside the authority */
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (p[i] == '@')
            at = p + i;
    const char *hp = p;
    size_t hlen = alen;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            url_err(err, errlen, "user without password (use redis://:password@host or redis://user:password@host)");
            return -1;
        }
        if (colon > p) {
            e->user = pct_decode(p, (size_t)(colon - p));
            if (!e->user || !e->user[0]) {
                url_err(err, errlen, "invalid user name");
                return -1;
            }
        }
        e->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        if (!e->password) {
            url_err(err, errlen, "invalid percent-escape in the password");
            return -1;
        }
        if (!e->password[0]) {
            free(e->password);
            e->password = NULL;
            if (e->user) {
                url_err(err, errlen, "user without password");
                return -1;
            }
        }
        hp = at + 1;
        hlen = alen - (size_t)(hp - p);
    }

    /* host[:port] or [v6][:port] */
    const char *host = hp;
    size_t host_len;
    const char *port_s = NULL;
    size_t port_len = 0;
    if (hlen > 0 && hp[0] == '[') {
        const char *close = memchr(hp, ']', hlen);
        if (!close) {
            url_err(err, errlen, "unterminated [IPv6 address]");
            return -1;
        }
        host = hp + 1;
        host_len = (size_t)(close - host);
        const char *after = close + 1;
        size_t left = hlen - (size_t)(after - hp);
        if (left > 0) {
            if (after[0] != ':') {
                url_err(err, errlen, "unexpected text after [IPv6 address]");
                return -1;
            }
            port_s = after + 1;
            port_len = left - 1;
        }
    } else {
        const char *colon = memchr(hp, ':', hlen);
        host_len = colon ? (size_t)(colon - hp) : hlen;
        if (colon) {
            port_s = colon + 1;
            port_len = hlen - host_len - 1;
        }
    }
    if (host_len == 0 || host_len > 253) {
        url_err(err, errlen, "missing or over-long host");
        return -1;
    }
    for (size_t i = 0; i < host_len; i++)
        if (host[i] == '%' || host[i] == '@' || (unsigned char)host[i] <= 0x20 || host[i] == 0x7f) {
            url_err(err, errlen, "invalid character in host");
            return -1;
        }
    e->host = strndup(host, host_len);
    if (!e->host) {
        url_err(err, errlen, "out of memory");
        return -1;
    }

    e->port = 6379;
    if (port_s) {
        long v = 0;
        if (port_len == 0 || port_len > 5) {
            url_err(err, errlen, "invalid port");
            return -1;
        }
        for (size_t i = 0; i < port_len; i++) {
            if (port_s[i] < '0' || port_s[i] > '9') {
                url_err(err, errlen, "invalid port");
                return -1;
            }
            v = v * 10 + (port_s[i] - '0');
        }
        if (v < 1 || v > 65535) {
            url_err(err, errlen, "port out of range");
            return -1;
        }
        e->port = (int)v;
    }

    e->db = 0;
    if (*rest == '/' && rest[1]) {
        const char *d = rest + 1;
        size_t dl = strlen(d);
        if (dl > 6) {
            url_err(err, errlen, "invalid database number");
            return -1;
        }
        long v = 0;
        for (size_t i = 0; i < dl; i++) {
            if (d[i] < '0' || d[i] > '9') {
                url_err(err, errlen, "invalid database number");
                return -1;
            }
            v = v * 10 + (d[i] - '0');
        }
        e->db = v;
    }
    return 0;
}

/* REDIS_SENTINELS: host:port[,host:port...] ([v6]:port accepted). */
static int parse_sentinels(struct events *e, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *item = p;
        p += len + (p[len] == ',');
        while (len && (*item == ' ' || *item == '\t'))
            item++, len--;
        while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            len--;
        if (!len)
            continue;
        const char *host = item, *colon;
        size_t hlen;
        if (item[0] == '[') {
            const char *close = memchr(item, ']', len);
            if (!close || close + 1 >= item + len || close[1] != ':')
                goto bad;
            host = item + 1;
            hlen = (size_t)(close - host);
            colon = close + 1;
        } else {
            colon = NULL;
            for (size_t i = 0; i < len; i++)
                if (item[i] == ':')
                    colon = item + i;
            if (!colon)
                goto bad;
            hlen = (size_t)(colon - item);
        }
        size_t plen = len - (size_t)(colon + 1 - item);
        long port = 0;
        if (hlen == 0 || hlen > 253 || plen == 0 || plen > 5)
            goto bad;
        for (size_t i = 0; i < plen; i++) {
            if (colon[1 + i] < '0' || colon[1 + i] > '9')
                goto bad;
            port = port * 10 + (colon[1 + i] - '0');
        }
        if (port < 1 || port > 65535)
            goto bad;
        if (e->nsentinels == MAX_SENTINELS) {
            snprintf(err, errlen, "REDIS_SENTINELS: more than %d Sentinels", MAX_SENTINELS);
            return -1;
        }
        if (!(e->sentinels[e->nsentinels].host = strndup(host, hlen))) {
            snprintf(err, errlen, "events: out of memory");
            return -1;
        }
        e->sentinels[e->nsentinels++].port = (int)port;
        continue;
    bad:
        snprintf(err, errlen, "REDIS_SENTINELS: expected host:port[,host:port...], got \"%.*s\"",
                 (int)(len > 80 ? 80 : len), item);
        return -1;
    }
    if (!e->nsentinels) {
        snprintf(err, errlen, "REDIS_SENTINELS: no Sentinel address");
        return -1;
    }
    return 0;
}

/* ---- +switch-master watcher ----------------------------------------------------------- */

static void watch_retry(struct watch *w)
{
    w->subscribed = false;
    abandon_async(&w->rq, &w->ac);
    w->sidx = (w->sidx + 1) % w->e->nsentinels;
    timer_arm(w->timer, WATCH_RETRY_MS);
}

/* The Sentinels switched the master to host:port: drop a link that is elsewhere (it
 * reconnects and asks them), and end the wait of a link in backoff. */
static void follow_switch(struct link *l, const char *host, int port)
{
    if (l->state == LINK_BACKOFF) {   /* waiting out a failure: the master is known now */
        evtimer_del(l->timer);
        link_connect(l);
        return;
    }
    if (l->state != LINK_UP && l->state != LINK_CONNECTING)
        return;
    if (l->state == LINK_CONNECTING && l->phase != PH_DIAL)
        return;   /* still asking the Sentinels or resolving: it will get the new master */
    if (strcmp(l->addr, host) == 0 && l->port == port)
        return;
    link_fail(l, "the Sentinels switched the master");
}

static void on_watch_message(redisAsyncContext *ac, void *r, void *privdata)
{
    struct watch *w = privdata;
    redisReply *reply = r;
    if (!reply || w->ac != ac)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcasecmp(reply->element[0]->str, "subscribe") == 0) {
        w->subscribed = true;
        evtimer_del(w->timer);
        return;
    }
    const redisReply *m = reply->element[2];
    if (strcasecmp(reply->element[0]->str, "message") != 0 || m->type != REDIS_REPLY_STRING)
        return;
    /* "<name> <old ip> <old port> <new ip> <new port>" */
    char text[600], name[256], oldh[256], newh[256];
    int oldp, newp;
    sanitize(text, sizeof text, m->str, m->len);
    if (sscanf(text, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) != 5 ||
        strcmp(name, w->e->master_name) != 0)
        return;
    log_warn("redis: Sentinel reports master %s moved from %s:%d to %s:%d", name, oldh, oldp, newh, newp);
    follow_switch(&w->e->pub, newh, newp);
    follow_switch(&w->e->sub, newh, newp);
}

static void on_watch_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct watch *w = ac->data;
    if (!w || w->ac != ac || status == REDIS_OK)
        return;
    w->ac = NULL;   /* hiredis frees it */
    watch_retry(w);
}

static void on_watch_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct watch *w = ac->data;
    if (!w || w->ac != ac)
        return;
    w->ac = NULL;
    watch_retry(w);
}

static void on_watch_resolved(const struct resolve_addr *addrs, int n, const char *error, void *arg)
{
    (void)error;
    struct watch *w = arg;
    struct events *e = w->e;
    w->rq = NULL;
    if (n == 0) {
        watch_retry(w);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(addrs[0].text, e->sentinels[w->sidx].port);
    if (!ac || ac->err || redisLibeventAttach(ac, e->base) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        watch_retry(w);
        return;
    }
    ac->data = w;
    w->ac = ac;
    redisAsyncSetConnectCallback(ac, on_watch_connect);
    redisAsyncSetDisconnectCallback(ac, on_watch_disconnect);
    set_keepalive(ac->c.fd);
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
    size_t lens[2] = {9, 14};
    if (redisAsyncCommandArgv(ac, on_watch_message, w, 2, argv, lens) != REDIS_OK)
        watch_retry(w);
    else
        timer_arm(w->timer, CONNECT_TIMEOUT_MS);
}

static void watch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct watch *w = arg;
    if (w->ac || w->rq) {   /* the deadline of an attempt passed */
        watch_retry(w);
        return;
    }
    w->rq = resolve_start(w->e->resolver, w->e->sentinels[w->sidx].host, on_watch_resolved, w);
    if (!w->rq)
        timer_arm(w->timer, WATCH_RETRY_MS);
}

/* ---- life cycle -------------------------------------------------------------------- */

static void link_init(struct events *e, struct link *l, enum link_role role)
{
    l->e = e;
    l->role = role;
    l->name = role == ROLE_PUBLISHER ? "publisher" : "subscriber";
    link_set_state(l, LINK_DISABLED);
}

struct events *events_new(struct event_base *base, const struct events_opts *opts, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!base || !opts) {
        if (err && errlen)
            snprintf(err, errlen, "events: missing event base or options");
        return NULL;
    }
    struct events *e = calloc(1, sizeof *e);
    if (!e)
        goto oom;
    e->base = base;
    e->on_notify = opts->on_notify;
    e->arg = opts->arg;
    e->max_queue = opts->max_queue ? opts->max_queue : DEFAULT_MAX_QUEUE;
    e->prefix = strdup(opts->prefix ? opts->prefix : DEFAULT_PREFIX);
    if (!e->prefix)
        goto oom;
    if (asprintf(&e->notify_channel, "%snotify", e->prefix) < 0) {
        e->notify_channel = NULL;
        goto oom;
    }
    link_init(e, &e->pub, ROLE_PUBLISHER);
    link_init(e, &e->sub, ROLE_SUBSCRIBER);

    e->rng = seed_u64();

    if (!opts->redis_url || !opts->redis_url[0]) {
        e->disabled = true;
        log_info("events: REDIS_URL is empty, running without Redis (events are dropped)");
        return e;
    }
    if (parse_url(e, opts->redis_url, err, errlen) != 0) {
        events_free(e);
        return NULL;
    }
    if (opts->sentinels && opts->sentinels[0]) {
        if (!opts->sentinel_master || !opts->sentinel_master[0]) {
            snprintf(err, errlen, "REDIS_SENTINEL_MASTER must not be empty when REDIS_SENTINELS is set");
            events_free(e);
            return NULL;
        }
        if (parse_sentinels(e, opts->sentinels, err, errlen) != 0) {
            events_free(e);
            return NULL;
        }
        if (!(e->master_name = strdup(opts->sentinel_master)))
            goto oom;
    }
    e->resolver = opts->resolver;
    if (!e->resolver) {
        if (!(e->resolver = resolver_new(base, NULL, err, errlen))) {
            events_free(e);
            return NULL;
        }
        e->own_resolver = true;
    }
    e->pub.timer = evtimer_new(base, link_timer_cb, &e->pub);
    e->sub.timer = evtimer_new(base, link_timer_cb, &e->sub);
    if (!e->pub.timer || !e->sub.timer)
        goto oom;
    snprintf(e->hostport, sizeof e->hostport, strchr(e->host, ':') ? "[%s]:%d" : "%s:%d", e->host, e->port);
    if (e->nsentinels)
        log_info("events: Redis master %s from %d Sentinels%s%s, db %ld, channel prefix %s", e->master_name,
                 e->nsentinels, e->password ? ", with AUTH" : "", e->user ? " as a named user" : "", e->db,
                 e->prefix);
    else
        log_info("events: Redis at %s%s%s, db %ld, channel prefix %s", e->hostport,
                 e->password ? ", with AUTH" : "", e->user ? " as a named user" : "", e->db, e->prefix);
    if (e->nsentinels) {
        e->watch.e = e;
        if (!(e->watch.timer = evtimer_new(base, watch_timer_cb, &e->watch)))
            goto oom;
        timer_arm(e->watch.timer, 0);
    }
    link_connect(&e->pub);
    link_connect(&e->sub);
    return e;
oom:
    if (err && errlen)
        snprintf(err, errlen, "events: out of memory");
    events_free(e);
    return NULL;
}

static void link_close(struct link *l)
{
    if (l->timer) {
        evtimer_del(l->timer);
        event_free(l->timer);
        l->timer = NULL;
    }
    link_abort_pending(l);
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    link_set_state(l, LINK_DISABLED);
    if (ac) {
        ac->data = NULL;      /* connect/disconnect callbacks: nothing to find */
        redisAsyncFree(ac);   /* pending callbacks run now with NULL and see a dropped link */
    }
}

void events_free(struct events *e)
{
    if (!e)
        return;
    link_close(&e->pub);   /* commands in flight: their callbacks run now, ok false */
    link_close(&e->sub);
    if (e->watch.timer) {
        evtimer_del(e->watch.timer);
        event_free(e->watch.timer);
        e->watch.timer = NULL;
        resolve_cancel(e->watch.rq);
        e->watch.rq = NULL;
        redisAsyncContext *wac = e->watch.ac;
        e->watch.ac = NULL;
        if (wac) {
            wac->data = NULL;
            redisAsyncFree(wac);
        }
    }
    if (e->defer_timer) {
        event_free(e->defer_timer);
        e->defer_timer = NULL;
        defer_fire(-1, 0, e);
    }
    struct qitem *it;
    while ((it = queue_pop(e)))
        free(it);
    if (e->password) {
        OPENSSL_cleanse(e->password, strlen(e->password));
        free(e->password);
    }
    free(e->user);
    free(e->host);
    for (int i = 0; i < e->nsentinels; i++)
        free(e->sentinels[i].host);
    free(e->master_name);
    if (e->own_resolver)
        resolver_free(e->resolver);
    free(e->prefix);
    free(e->notify_channel);
    free(e);
}

/* ---- state for /readyz and /metrics ---------------------------------------------------- */

const char *events_state(const struct events *e)
{
    if (!e)
        return "disabled";
    switch (e->pub.state) {
    case LINK_DISABLED:
        return "disabled";
    case LINK_UP:
        return "up";
    case LINK_CONNECTING:
        return e->pub.failures == 0 ? "connecting" : "down";
    case LINK_BACKOFF:
        return "down";
    default:
        MACHINE_IMPOSSIBLE(&link_def, e->pub.state);
    }
}

const char *events_server(const struct events *e)
{
    return e ? e->server : "";
}

uint64_t events_failovers(const struct events *e)
{
    return e ? e->failovers : 0;
}

bool events_subscribed(const struct events *e)
{
    return e && e->sub.state == LINK_UP;
}

void events_get_stats(const struct events *e, struct events_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!e)
        return;
    *out = e->stats;
    out->queued = e->qlen;
}
