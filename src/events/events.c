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
 * recognised in its late callbacks by link->ac no longer pointing at it. The host
 * name is resolved once, in events_new, and links connect by numeric address.
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
#include "util/codec.h"

#define DEFAULT_PREFIX "verifywise:integrations:"
#define DEFAULT_MAX_QUEUE 10000
#define MAX_INFLIGHT 1000          /* PUBLISH commands sent and not yet answered */
#define CONNECT_TIMEOUT_MS 3000    /* TCP connect plus the AUTH/SELECT/PING handshake */
#define REPLY_TIMEOUT_MS 10000     /* publisher: longest wait for the next reply */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_ADDRS 8
#define MAX_TYPE_LEN 128
#define EVENT_MAX_BYTES (1024 * 1024)         /* one encoded event */
#define QUEUE_MAX_BYTES (16 * 1024 * 1024)    /* all queued events, besides the count bound */

enum link_state { LINK_DISABLED = 0, LINK_CONNECTING, LINK_UP, LINK_BACKOFF };
static const char *const link_state_names[] = {"disabled", "connecting", "up", "backoff"};

enum link_role { ROLE_PUBLISHER, ROLE_SUBSCRIBER };

/* Handshake steps after TCP connect; each is skipped when it has nothing to do. */
enum hs_step { HS_NONE = 0, HS_AUTH, HS_SELECT, HS_FINAL };

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
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    int naddrs;
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

static uint64_t now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
    uint64_t t = now_ms(CLOCK_MONOTONIC);
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
    snprintf(out, 33, "%012llx%08x%012llx", (unsigned long long)now_ms(CLOCK_REALTIME) & 0xffffffffffffULL,
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

/* The context is already gone or released: wait, then reconnect. */
static void link_backoff(struct link *l, const char *why)
{
    struct events *e = l->e;
    bool was_up = l->state == LINK_UP;
    l->failures++;
    if (!was_up && e->naddrs > 1)
        l->addr_idx = (l->addr_idx + 1) % e->naddrs;
    link_set_state(l, LINK_BACKOFF);

    unsigned shift = l->failures > 7 ? 6 : l->failures - 1;
    int delay = BACKOFF_MIN_MS << shift;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    delay = delay / 2 + (int)(rng_next(e) % (uint64_t)(delay / 2 + 1));   /* [d/2, d] */

    if (was_up)
        log_warn("redis %s: connection lost: %s; reconnecting in %d ms", l->name, why, delay);
    else if (l->failures == 1 || l->failures % 20 == 0)
        log_warn("redis %s: cannot connect to %s: %s (attempt %u); retrying in %d ms", l->name, e->hostport, why,
                 l->failures, delay);
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
    link_set_state(l, LINK_UP);
    if (l->role == ROLE_PUBLISHER) {
        log_info("redis publisher: connected to %s%s (%zu queued)", e->hostport, again ? " again" : "", e->qlen);
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
        static const char *const what[] = {"", "AUTH", "SELECT", "PING"};
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

static void link_connect(struct link *l)
{
    struct events *e = l->e;
    link_set_state(l, LINK_CONNECTING);
    l->fail_why = NULL;
    l->step = HS_NONE;
    redisAsyncContext *ac = redisAsyncConnect(e->addrs[l->addr_idx], e->port);
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
    timer_arm(l->timer, CONNECT_TIMEOUT_MS);
}

static void link_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct link *l = arg;
    switch (l->state) {
    case LINK_CONNECTING:
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
    if (event_encode(type, id, (int64_t)now_ms(CLOCK_REALTIME), organization_id, tenant, actor_user_id, data,
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

/* Resolve once (blocking, at start-up only) into numeric addresses. */
static int resolve(struct events *e, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* no AI_ADDRCONFIG: "::1" must resolve on an IPv4-only host too; an
     * unreachable family just fails over to the next address */
    int rc = getaddrinfo(e->host, NULL, &hints, &res);
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "REDIS_URL: cannot resolve host %s: %s", e->host, gai_strerror(rc));
        return -1;
    }
    e->naddrs = 0;
    for (struct addrinfo *ai = res; ai && e->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        const void *a;
        if (ai->ai_family == AF_INET)
            a = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
        else if (ai->ai_family == AF_INET6)
            a = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
        else
            continue;
        char buf[INET6_ADDRSTRLEN];
        if (!inet_ntop(ai->ai_family, a, buf, sizeof buf))
            continue;
        bool dup = false;
        for (int i = 0; i < e->naddrs; i++)
            if (strcmp(e->addrs[i], buf) == 0)
                dup = true;
        if (!dup)
            memcpy(e->addrs[e->naddrs++], buf, sizeof buf);
    }
    freeaddrinfo(res);
    if (e->naddrs == 0) {
        if (err && errlen)
            snprintf(err, errlen, "REDIS_URL: host %s has no IPv4 or IPv6 address", e->host);
        return -1;
    }
    return 0;
}

/* ---- life cycle -------------------------------------------------------------------- */

static void link_init(struct events *e, struct link *l, enum link_role role)
{
    l->e = e;
    l->role = role;
    l->name = role == ROLE_PUBLISHER ? "publisher" : "subscriber";
    l->state = LINK_DISABLED;
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

    uint64_t seed = 0;
    if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1 || seed == 0)
        seed = now_ms(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    e->rng = seed ? seed : 1;

    if (!opts->redis_url || !opts->redis_url[0]) {
        e->disabled = true;
        log_info("events: REDIS_URL is empty, running without Redis (events are dropped)");
        return e;
    }
    if (parse_url(e, opts->redis_url, err, errlen) != 0 || resolve(e, err, errlen) != 0) {
        events_free(e);
        return NULL;
    }
    e->pub.timer = evtimer_new(base, link_timer_cb, &e->pub);
    e->sub.timer = evtimer_new(base, link_timer_cb, &e->sub);
    if (!e->pub.timer || !e->sub.timer)
        goto oom;
    snprintf(e->hostport, sizeof e->hostport, strchr(e->host, ':') ? "[%s]:%d" : "%s:%d", e->host, e->port);
    log_info("events: Redis at %s (%s)%s%s, db %ld, channel prefix %s", e->hostport, e->addrs[0],
             e->password ? ", with AUTH" : "", e->user ? " as a named user" : "", e->db, e->prefix);
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
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->state = LINK_DISABLED;
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
    }
    return "down";
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
