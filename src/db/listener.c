/* db/listener: owns the LISTEN connection: its libpq handle, its socket event (rebuilt at
 * every connect step, since PQsocket() may change while libpq tries hosts), the connect
 * timeout and the reconnect backoff. */
#include "db/listener.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/machine.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

enum lstate { L_DOWN, L_CONNECTING, L_SUBSCRIBING, L_LISTENING, L_BACKOFF };
static const char *const lstate_names[] = {"down", "connecting", "subscribing", "listening", "backoff"};
static const struct machine_def listener_def = MACHINE_DEF("listener", lstate_names);

struct listener {
    struct event_base *base;
    struct listener_opts o;
    char channel[64];
    enum lstate state;
    PGconn *pg;
    struct event *io;
    struct event *timer;      /* connect timeout, or backoff wait */
    int backoff_ms;
    bool ever_listened;
    unsigned long reconnects;
};

static void start_connect(struct listener *l);
static void on_io(evutil_socket_t fd, short what, void *arg);

static void set_state(struct listener *l, enum lstate s)
{
    if (log_enabled(LOG_DEBUG))
        log_debug("listener: %s -> %s", lstate_names[l->state], lstate_names[s]);
    bool was = l->state == L_LISTENING;
    l->state = s;
    if (was && s != L_LISTENING && l->o.on_state)
        l->o.on_state(false, l->o.arg);
}

static void timer_in(struct listener *l, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

/* Watch the connection's current socket for flags (persisting while LISTENING). */
static int watch(struct listener *l, short flags)
{
    if (l->io) {
        event_free(l->io);
        l->io = NULL;
    }
    int fd = PQsocket(l->pg);
    if (fd < 0 || !(l->io = event_new(l->base, fd, flags, on_io, l)) || event_add(l->io, NULL) < 0)
        return -1;
    return 0;
}

static void broken(struct listener *l, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s", why ? why : "");
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("listener: connection lost (%s); retrying in %d ms", msg, l->backoff_ms);
    if (l->io) {
        event_free(l->io);
        l->io = NULL;
    }
    if (l->pg) {
        PQfinish(l->pg);
        l->pg = NULL;
    }
    evtimer_del(l->timer);
    set_state(l, L_BACKOFF);
    timer_in(l, l->backoff_ms);
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void drain_notifies(struct listener *l)
{
    PGnotify *n;
    while (l->state == L_LISTENING && (n = PQnotifies(l->pg))) {
        if (l->o.on_notify)
            l->o.on_notify(n->extra ? n->extra : "", l->o.arg);
        PQfreemem(n);
    }
}

static void enter_listening(struct listener *l)
{
    evtimer_del(l->timer);
    if (watch(l, EV_READ | EV_PERSIST) < 0) {
        broken(l, "cannot watch the socket");
        return;
    }
    if (l->ever_listened)
        l->reconnects++;
    l->ever_listened = true;
    l->backoff_ms = BACKOFF_MIN_MS;
    set_state(l, L_LISTENING);
    log_info("listener: listening on %s", l->channel);
    if (l->o.on_state)
        l->o.on_state(true, l->o.arg);
    drain_notifies(l);
}

static void subscribe(struct listener *l)
{
    char sql[sizeof "LISTEN " + sizeof l->channel]; /* always fits: no truncation possible */
    snprintf(sql, sizeof sql, "LISTEN %s", l->channel);
    if (PQsetnonblocking(l->pg, 1) != 0 || !PQsendQuery(l->pg, sql)) {
        broken(l, PQerrorMessage(l->pg));
        return;
    }
    set_state(l, L_SUBSCRIBING);
    int f = PQflush(l->pg);
    if (f < 0 || watch(l, f == 1 ? EV_READ | EV_WRITE : EV_READ) < 0)
        broken(l, PQerrorMessage(l->pg));
}

static void connect_step(struct listener *l)
{
    switch (PQconnectPoll(l->pg)) {
    case PGRES_POLLING_READING:
        if (watch(l, EV_READ) < 0)
            broken(l, "cannot watch the socket");
        return;
    case PGRES_POLLING_WRITING:
        if (watch(l, EV_WRITE) < 0)
            broken(l, "cannot watch the socket");
        return;
    case PGRES_POLLING_OK:
        subscribe(l);
        return;
    case PGRES_POLLING_FAILED:
    default:
        broken(l, PQerrorMessage(l->pg));
        return;
    }
}

static void subscribe_step(struct listener *l, short what)
{
    if ((what & EV_WRITE) && PQflush(l->pg) < 0) {
        broken(l, PQerrorMessage(l->pg));
        return;
    }
    if (!PQconsumeInput(l->pg)) {
        broken(l, PQerrorMessage(l->pg));
        return;
    }
    while (!PQisBusy(l->pg)) {
        PGresult *res = PQgetResult(l->pg);
        if (!res) {
            enter_listening(l);
            return;
        }
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            broken(l, PQerrorMessage(l->pg));
            return;
        }
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct listener *l = arg;
    switch (l->state) {
    case L_CONNECTING:
        connect_step(l);
        return;
    case L_SUBSCRIBING:
        subscribe_step(l, what);
        return;
    case L_LISTENING:
        if (!PQconsumeInput(l->pg) || PQstatus(l->pg) != CONNECTION_OK) {
            broken(l, PQerrorMessage(l->pg));
            return;
        }
        drain_notifies(l);
        return;
    case L_DOWN:
    case L_BACKOFF:
        return; /* a stale event: nothing to read */
    default:
        MACHINE_IMPOSSIBLE(&listener_def, l->state);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct listener *l = arg;
    switch (l->state) {
    case L_BACKOFF:
    case L_DOWN:
        start_connect(l);
        return;
    case L_CONNECTING:
    case L_SUBSCRIBING:
        broken(l, "connect timed out");
        return;
    case L_LISTENING:
        return;
    default:
        MACHINE_IMPOSSIBLE(&listener_def, l->state);
    }
}

static void start_connect(struct listener *l)
{
    const char *const *kw, *const *vals;
    if (l->o.params(l->o.arg, &kw, &vals) < 0) {
        set_state(l, L_BACKOFF); /* no server to follow yet */
        timer_in(l, l->backoff_ms);
        return;
    }
    l->pg = PQconnectStartParams(kw, vals, 0);
    if (!l->pg || PQstatus(l->pg) == CONNECTION_BAD) {
        broken(l, l->pg ? PQerrorMessage(l->pg) : "out of memory");
        return;
    }
    set_state(l, L_CONNECTING);
    timer_in(l, l->o.connect_timeout_ms > 0 ? l->o.connect_timeout_ms : 5000);
    connect_step(l);
}

static bool plain_name(const char *s)
{
    if (!s || !*s || strlen(s) >= 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

struct listener *listener_new(struct event_base *base, const struct listener_opts *o)
{
    if (!plain_name(o->channel))
        return NULL;
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base = base;
    l->o = *o;
    snprintf(l->channel, sizeof l->channel, "%s", o->channel);
    l->o.channel = l->channel;
    l->backoff_ms = BACKOFF_MIN_MS;
    if (!(l->timer = evtimer_new(base, on_timer, l))) {
        free(l);
        return NULL;
    }
    timer_in(l, 0); /* connect from the loop, so no callback runs inside listener_new */
    return l;
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    l->o.on_state = NULL;
    l->o.on_notify = NULL;
    if (l->io)
        event_free(l->io);
    event_free(l->timer);
    if (l->pg)
        PQfinish(l->pg);
    free(l);
}

bool listener_listening(const struct listener *l)
{
    return l && l->state == L_LISTENING;
}

unsigned long listener_reconnects(const struct listener *l)
{
    return l ? l->reconnects : 0;
}
