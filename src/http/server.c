/* http/server: owns libevhtp (listener, connections, hooks) and the lifetime of
 * struct http_req. Each connection's input goes through a guard: libevhtp sees a new
 * request only once its whole header block is buffered (under HTTP_MAX_HEADER_BYTES and
 * HTTP_MAX_HEADERS, else 431). Everything that can be refused on the headers (413, 414,
 * bad framing, 415, and the app's route/method/token checks) is answered from the
 * on_headers hook with Connection: close, before a body byte is read; accepted bodies
 * draw on a global budget (MAX_BUFFERED_BODY_BYTES, else 503). A request waiting for its
 * answer has its socket watched, so a client that hangs up abandons it (logged 499). A
 * Connection: close answer ends the connection's parsing; once flushed the connection
 * lingers (write side shut, input dropped) before it closes, so no reset loses answers. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <evhtp.h>
#pragma GCC diagnostic pop
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h> /* ev_write, for write_now */
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/reply.h"
#include "log.h"
#include "util/clock.h"
#include "util/json_out.h"

#define URI_MAX 2048

/* What the input guard lets libevhtp see (see guard_readcb). */
enum in_phase {
    IN_HEAD,    /* a new request: held until its whole header block is buffered */
    IN_PASS,    /* the header block is complete: libevhtp parses headers and body */
    IN_CLOSING, /* answered with Connection: close: nothing more is read until it is flushed */
    IN_LINGER,  /* flushed, write side shut: what still arrives is dropped until the client
                 * closes or HTTP_LINGER_MS pass (conn_linger) */
};

/* A connection past its Connection: close answer (nothing more is parsed). */
#define CONN_CLOSING(t) ((t)->phase >= IN_CLOSING)

/* Requests one keep-alive connection may carry: the last answer says Connection: close
 * (libevhtp's own limit closed the connection without saying so). */
#define HTTP_KEEPALIVE_REQUESTS 10000u

/* How long a closing connection drops what its client still sends (conn_linger). */
#define HTTP_LINGER_MS 2000

struct conn_track {
    struct http_server *srv;
    evhtp_connection_t *conn;
    struct event *wait;   /* armed while a complete request is awaited (slowloris guard) */
    struct event *hup;    /* armed while a request waits for its answer with the socket not
                           * read (client hang-up) */
    bool guarded;         /* guard_install wrapped libevhtp's callbacks */
    unsigned served;      /* requests started on this connection (HTTP_KEEPALIVE_REQUESTS) */
    bool waiting;         /* a request waits for its answer while the socket is still read:
                           * end-of-file or an error then abandons it (guard_eventcb) */
    enum in_phase phase;
    size_t scan_off;      /* IN_HEAD: bytes of the input scanned so far */
    size_t line_start;    /* IN_HEAD: offset of the line being scanned */
    unsigned nlines;      /* IN_HEAD: non-empty lines seen (request line included) */
    struct evbuffer *stash; /* input hidden from libevhtp during one of its callbacks */
    int busy;             /* inside a libevhtp callback called by the guard */
    bool dead;            /* the connection was freed while busy: free this afterwards */
    size_t body_reserved; /* bytes of the body budget held by the request being read */
    size_t head_held;     /* IN_HEAD: input bytes counted in srv->head_buffered */
    struct conn_track *prev, *next;
};

struct http_server {
    struct event_base *base;
    evhtp_t *htp;
    struct app *app;
    http_dispatch_fn dispatch;
    struct http_server_opts opts;
    struct conn_track *conns;
    int nconns;
    int pending;
    bool draining;
    bool listening;
    struct event *accept_retry;
    size_t body_buffered; /* bytes reserved by request bodies being read or held */
    size_t head_buffered; /* bytes of incomplete header blocks held by the input guard */
    bool early_close;     /* the event backend reports a peer's close (EV_CLOSED) */
    uint64_t next_id;
    uint32_t id_salt;
};

static const char ERR_413[] = "{\"message\":\"Payload Too Large\",\"data\":\"Request body too large\"}";
static const char ERR_414[] = "{\"message\":\"URI Too Long\",\"data\":\"URI too long\"}";
static const char ERR_400_FRAMING[] =
    "{\"message\":\"Bad Request\",\"data\":\"Conflicting Content-Length or Transfer-Encoding headers\"}";
static const char ERR_415[] =
    "{\"message\":\"Unsupported Media Type\",\"data\":\"Content-Type must be application/json\"}";
static const char ERR_431[] = "{\"message\":\"Request Header Fields Too Large\",\"data\":"
                              "\"Request header fields too large\"}";
static const char ERR_503_HEAD[] = "{\"message\":\"Service Unavailable\",\"error\":"
                                   "\"too many request headers in flight, retry later\"}";
static const char ERR_503_BODY[] = "{\"message\":\"Service Unavailable\",\"error\":"
                                   "\"too many request bodies in flight, retry later\"}";

/* ---- standard headers ------------------------------------------------------ */

static const char *http_date(void)
{
    static char buf[40];
    static time_t cached;
    time_t t = time(NULL);
    if (t != cached) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = t;
    }
    return buf;
}

static void add_header(evhtp_request_t *req, const char *k, const char *v, int copy_value)
{
    evhtp_headers_add_header(req->headers_out, evhtp_header_new(k, v, 0, (char)copy_value));
}

static void add_standard_headers_ct(evhtp_request_t *req, const char *content_type)
{
    add_header(req, "Content-Type", content_type, 0);
    add_header(req, "Cache-Control", "no-store", 0);
    add_header(req, "X-Content-Type-Options", "nosniff", 0);
    add_header(req, "Referrer-Policy", "no-referrer", 0);
    add_header(req, "X-Frame-Options", "SAMEORIGIN", 0);
    add_header(req, "Cross-Origin-Resource-Policy", "same-origin", 0);
    add_header(req, "Date", http_date(), 1);
}

static void add_standard_headers(evhtp_request_t *req)
{
    add_standard_headers_ct(req, "application/json; charset=utf-8");
}

/* ---- the input guard ------------------------------------------------------------ */

/* The tracker of connection c (NULL for a connection we do not track). */
static evhtp_res on_conn_fini(evhtp_connection_t *c, void *arg);
static struct conn_track *track_of(evhtp_connection_t *c)
{
    if (!c || !c->hooks || c->hooks->on_connection_fini != (evhtp_hook_connection_fini_cb)on_conn_fini)
        return NULL;
    return c->hooks->on_connection_fini_arg;
}

static void head_reset(struct conn_track *t, enum in_phase phase)
{
    t->phase = phase;
    t->scan_off = t->line_start = 0;
    t->nlines = 0;
}

enum head_state { HEAD_INCOMPLETE, HEAD_COMPLETE, HEAD_TOO_LARGE };

/* Is a whole header block (request line, header lines, the empty line) at the start of
 * the input, within the caps? Scans each byte once: the scan resumes where it stopped
 * (the input only grows while IN_HEAD, since libevhtp is not called). Leading empty
 * lines count against the byte cap. */
static enum head_state head_scan(struct conn_track *t, struct evbuffer *in)
{
    const struct http_server_opts *o = &t->srv->opts;
    size_t len = evbuffer_get_length(in);
    size_t n = len < o->max_header_bytes + 1 ? len : o->max_header_bytes + 1;
    if (n <= t->scan_off)
        return HEAD_INCOMPLETE;
    const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
    if (!p)
        return HEAD_TOO_LARGE; /* out of memory: refuse rather than hold */
    for (size_t i = t->scan_off; i < n; i++) {
        if (p[i] != '\n')
            continue;
        size_t l = i - t->line_start;
        bool empty = l == 0 || (l == 1 && p[i - 1] == '\r');
        t->line_start = i + 1;
        if (!empty) {
            if (++t->nlines > (unsigned)o->max_headers + 1)
                return HEAD_TOO_LARGE;
            continue;
        }
        if (t->nlines == 0)
            continue; /* an empty line before the request line */
        t->scan_off = i + 1;
        return i + 1 > o->max_header_bytes ? HEAD_TOO_LARGE : HEAD_COMPLETE;
    }
    t->scan_off = n;
    return n > o->max_header_bytes ? HEAD_TOO_LARGE : HEAD_INCOMPLETE;
}

/* Count the input an incomplete header block holds against MAX_BUFFERED_HEADER_BYTES. */
static void head_account(struct conn_track *t, size_t held)
{
    t->srv->head_buffered = t->srv->head_buffered - t->head_held + held;
    t->head_held = held;
}

static void conn_close_after_flush(struct conn_track *t)
{
    struct bufferevent *bev = t->conn->bev;
    head_account(t, 0);
    t->phase = IN_CLOSING;
    bufferevent_disable(bev, EV_READ);
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
    if (t->hup)
        event_del(t->hup);
}

/* The Connection: close answer is flushed: shut the write side (the client reads the
 * answers, then end-of-file) and drop what the client still sends until it closes too
 * (guard_eventcb) or HTTP_LINGER_MS pass (conn_wait_cb). Closing with input unread would
 * make the kernel reset the connection, and a reset discards the answers the client has
 * not read yet. */
static void conn_linger(struct conn_track *t)
{
    struct bufferevent *bev = t->conn->bev;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (!t->wait || fd < 0 || shutdown(fd, SHUT_WR) < 0) {
        evhtp_connection_free(t->conn); /* runs on_conn_fini, which frees t */
        return;
    }
    t->phase = IN_LINGER;
    struct timeval tv = {HTTP_LINGER_MS / 1000, (HTTP_LINGER_MS % 1000) * 1000};
    evtimer_add(t->wait, &tv);
    bufferevent_disable(bev, EV_WRITE);
    bufferevent_enable(bev, EV_READ);
}

/* An answer without a request object (libevhtp has not seen the headers: 431, 503):
 * written as is, then the connection closes; nothing more is read. */
static void reject_raw(struct conn_track *t, int status, const char *reason, const char *body,
                       size_t len, const char *extra)
{
    struct bufferevent *bev = t->conn->bev;
    conn_close_after_flush(t);
    evbuffer_add_printf(bufferevent_get_output(bev),
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: application/json; charset=utf-8\r\n"
                        "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                        "Referrer-Policy: no-referrer\r\nX-Frame-Options: SAMEORIGIN\r\n"
                        "Cross-Origin-Resource-Policy: same-origin\r\nDate: %s\r\n%s"
                        "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                        status, reason, http_date(), extra, len);
    evbuffer_add(bufferevent_get_output(bev), body, len);
    bufferevent_enable(bev, EV_WRITE);
    json_t *f = json_pack("{s:s,s:i}", "path", "(rejected)", "status", status);
    log_fields(status >= 500 ? LOG_WARN : LOG_INFO,
               status == 431 ? "request rejected: header fields too large"
                             : "request rejected: too many request headers buffered",
               f);
    if (t->srv->opts.on_answer)
        t->srv->opts.on_answer("rejected", status, 0);
}

/* libevhtp 1.2.18 corrupts the URI path when the request line arrives in more than one
 * read (upstream #128/#131: "GET /now" + "here" is routed as "/nowehere"), and holds every
 * header line it is given (a 96 MiB header flood took 144 MiB). So libevhtp sees a new
 * request only once its whole header block is buffered: its three entry points (the
 * bufferevent's read and write callbacks, which it also calls directly, and its resume
 * event) are wrapped. While a header block is incomplete the read callback returns
 * without calling libevhtp, and the other two run with the input hidden. Past the caps:
 * 431. Bodies and everything after the header block pass straight through; a request
 * always ends with its connection paused (on_request), so the next request's bytes wait
 * in the input for the guard. */
static bufferevent_data_cb evhtp_readcb, evhtp_writecb;
static bufferevent_event_cb evhtp_eventcb;
static event_callback_fn evhtp_resumecb;
static void hup_arm(struct conn_track *t);

static void track_free(struct conn_track *t)
{
    if (t->wait)
        event_free(t->wait);
    if (t->hup)
        event_free(t->hup);
    if (t->stash)
        evbuffer_free(t->stash);
    free(t);
}

/* May libevhtp see the input now? Rejects (431) when the header block is over the caps. */
static bool input_ready(struct conn_track *t)
{
    if (t->phase != IN_HEAD)
        return true;
    struct evbuffer *in = bufferevent_get_input(t->conn->bev);
    switch (head_scan(t, in)) {
    case HEAD_COMPLETE:
        head_account(t, 0);
        head_reset(t, IN_PASS);
        return true;
    case HEAD_TOO_LARGE:
        reject_raw(t, 431, "Request Header Fields Too Large", ERR_431, sizeof ERR_431 - 1, "");
        return false;
    default:
        head_account(t, evbuffer_get_length(in));
        if (t->srv->head_buffered > t->srv->opts.max_buffered_header_bytes) {
            log_warn("request refused: %zu bytes of incomplete request headers buffered "
                     "(MAX_BUFFERED_HEADER_BYTES %zu)",
                     t->srv->head_buffered, t->srv->opts.max_buffered_header_bytes);
            reject_raw(t, 503, "Service Unavailable", ERR_503_HEAD, sizeof ERR_503_HEAD - 1,
                       "Retry-After: 1\r\n");
        }
        return false;
    }
}

static void guard_readcb(struct bufferevent *bev, void *arg)
{
    struct conn_track *t = track_of(arg);
    if (t && CONN_CLOSING(t)) {
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return;
    }
    if (t && (t->conn->flags & (EVHTP_CONN_FLAG_PAUSED | EVHTP_CONN_FLAG_WAITING))) {
        /* A request not answered yet, or an answer still being flushed (see pause_flag):
         * keep what arrived, read no more until libevhtp's write callback resumes
         * reading (as when evhtp_request_pause had stopped the reads). A request still
         * waiting is then watched for a hang-up on the socket itself. */
        bufferevent_disable(bev, EV_READ);
        if (t->waiting)
            hup_arm(t);
        return;
    }
    if (t && !input_ready(t))
        return; /* wait for the rest of the header block; conn_wait_cb bounds the wait */
    evhtp_readcb(bev, arg); /* may free the connection and t */
}

/* Run a libevhtp callback that may parse the input, hiding an incomplete header block.
 * False when the connection (and t) went away meanwhile. */
static bool call_hidden(struct conn_track *t, void (*fn)(struct conn_track *t, void *x), void *x)
{
    struct evbuffer *in = bufferevent_get_input(t->conn->bev);
    bool hide = t->phase == IN_HEAD && evbuffer_get_length(in) > 0;
    if (hide && !t->stash && !(t->stash = evbuffer_new())) {
        conn_close_after_flush(t); /* out of memory: give up on this connection */
        return true;
    }
    if (hide)
        evbuffer_add_buffer(t->stash, in);
    t->busy++;
    fn(t, x);
    t->busy--;
    if (t->dead) {
        track_free(t);
        return false;
    }
    if (hide)
        evbuffer_prepend_buffer(bufferevent_get_input(t->conn->bev), t->stash);
    return true;
}

static void run_writecb(struct conn_track *t, void *bev)
{
    evhtp_writecb(bev, t->conn);
}

static void guard_writecb(struct bufferevent *bev, void *arg)
{
    struct conn_track *t = track_of(arg);
    if (!t) {
        evhtp_writecb(bev, arg);
        return;
    }
    if (t->phase == IN_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_linger(t);
        return;
    }
    if (t->phase == IN_LINGER)
        return;
    /* The next request may be waiting in the input: input_ready answers a 431 or 503
     * for it, which closes. */
    if (!(t->conn->flags & EVHTP_CONN_FLAG_PAUSED) && !input_ready(t) && t->phase == IN_CLOSING)
        return; /* that answer is flushed, then the connection closed above */
    call_hidden(t, run_writecb, bev);
}

/* The answer is written in the loop iteration that queued it. libevhtp's resume left it
 * in the output, the connection waiting for its flush (EVHTP_CONN_FLAG_WAITING) and the
 * bufferevent's write event added (a change libevent keeps in its changelist until the
 * next epoll_wait). Activating that write event now runs libevent's own write callback
 * at once: it writes the output, deletes the write event once the output is empty (the
 * add and the delete cancel in the changelist: no epoll_ctl) and runs libevhtp's write
 * callback, which finishes the request (keep-alive, close, the next pipelined request)
 * exactly as after a writable event. A socket that cannot take it all keeps the write
 * event and the rest waits for it, as before. */
static void write_now(struct conn_track *t)
{
    struct bufferevent *bev = t->conn->bev;
    if (!bev || !(t->conn->flags & EVHTP_CONN_FLAG_WAITING) ||
        evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        return;
    if (!(bufferevent_get_enabled(bev) & EV_WRITE) || !event_pending(&bev->ev_write, EV_WRITE, NULL))
        return; /* not a write libevent is about to wait for */
    event_active(&bev->ev_write, EV_WRITE, 1);
}

static void run_resumecb(struct conn_track *t, void *x)
{
    (void)x;
    evhtp_resumecb(-1, EV_WRITE, t->conn);
}

static void guard_resumecb(evutil_socket_t fd, short what, void *arg)
{
    struct conn_track *t = track_of(arg);
    if (!t) {
        evhtp_resumecb(fd, what, arg);
        return;
    }
    if (CONN_CLOSING(t))
        return; /* the reply is flushing; guard_writecb then closes the connection */
    if (!input_ready(t) && t->phase == IN_CLOSING)
        return; /* input_ready answered a 431 or 503 for the next request: flushing */
    if (call_hidden(t, run_resumecb, NULL))
        write_now(t);
}

/* libevhtp's event callback keeps a connection whose request is paused (it frees it only
 * once the answer is given), so a client that hangs up while its request waits with the
 * socket still read (t->waiting) is dropped here: its request is abandoned (499) and the
 * work done for it cancelled, as hup_cb does when the socket is not read. */
static void guard_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn_track *t = track_of(arg);
    if (t && t->phase == IN_LINGER) { /* the client closed too, or an error: done */
        evhtp_connection_free(t->conn); /* runs on_conn_fini, which frees t */
        return;
    }
    if (t && t->waiting && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
        log_debug("the client closed its connection before its answer");
        evhtp_connection_free(t->conn); /* abandons the request (on_request_fini), frees t */
        return;
    }
    evhtp_eventcb(bev, what, arg);
}

static void guard_install(struct conn_track *t)
{
    evhtp_connection_t *c = t->conn;
    bufferevent_data_cb rcb = NULL, wcb = NULL;
    bufferevent_event_cb ecb = NULL;
    void *cbarg = NULL;
    if (!c->bev || !c->resume_ev)
        return;
    bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &cbarg);
    event_callback_fn resume = event_get_callback(c->resume_ev);
    if (!rcb || !wcb || cbarg != (void *)c || event_get_callback_arg(c->resume_ev) != (void *)c)
        return;
    if (!ecb || (evhtp_readcb && evhtp_readcb != rcb) || (evhtp_writecb && evhtp_writecb != wcb) ||
        (evhtp_eventcb && evhtp_eventcb != ecb) || (evhtp_resumecb && evhtp_resumecb != resume))
        return; /* not the callbacks we know: leave the connection alone */
    evhtp_readcb = rcb;
    evhtp_writecb = wcb;
    evhtp_eventcb = ecb;
    evhtp_resumecb = resume;
    event_del(c->resume_ev);
    event_assign(c->resume_ev, event_get_base(c->resume_ev), -1, EV_READ | EV_PERSIST, guard_resumecb, c);
    event_add(c->resume_ev, NULL);
    bufferevent_setcb(c->bev, guard_readcb, guard_writecb, guard_eventcb, cbarg);
    t->guarded = true;
}

/* ---- answers decided on the headers ------------------------------------------ */

/* Answer from the on_headers hook: Connection: close, and the connection stops reading
 * (on_headers returns EVHTP_RES_PAUSE); it is freed once the answer is flushed. */
static evhtp_res early_reply(evhtp_request_t *req, int status, const char *body, size_t len,
                             const char *const *extra)
{
    evhtp_request_disable_flag(req, EVHTP_REQ_FLAG_KEEPALIVE);
    evhtp_kv_t *e = evhtp_kvs_find_kv(req->headers_in, "Expect");
    if (e)
        evhtp_kv_rm_and_free(req->headers_in, e);
    add_standard_headers(req);
    for (size_t i = 0; extra && extra[i]; i += 2)
        add_header(req, extra[i], extra[i + 1], 1);
    evbuffer_add(req->buffer_out, body, len);
    evhtp_send_reply(req, (evhtp_res)status);
    json_t *f = json_pack("{s:s,s:s,s:i}", "method", htparser_get_methodstr_m(req->method),
                          "path", "(rejected)", "status", status);
    log_fields(LOG_INFO, "request rejected", f);
    struct conn_track *t = track_of(req->conn);
    if (t && t->srv->opts.on_answer)
        t->srv->opts.on_answer("rejected", status, 0);
    if (t)
        conn_close_after_flush(t);
    return EVHTP_RES_PAUSE;
}

struct header_scan {
    int content_length;
    bool transfer_encoding;
};

static int scan_header(evhtp_kv_t *kv, void *arg)
{
    struct header_scan *h = arg;
    if (strcasecmp(kv->key, "Content-Length") == 0)
        h->content_length++;
    else if (strcasecmp(kv->key, "Transfer-Encoding") == 0)
        h->transfer_encoding = true;
    return 0;
}

static unsigned method_of(evhtp_request_t *req);
static void send_reply(struct http_req *r, int status, const char *content_type, const char *body,
                       size_t len, const char *const *extra);

/* The app's checks on the headers of a request that announces a body: a throw-away
 * http_req in "early" mode (send_reply answers with Connection: close). */
static bool precheck_refused(struct http_server *s, evhtp_request_t *req)
{
    if (!s->opts.precheck)
        return false;
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        return false; /* decided after the body then */
    r->refs = 1;
    r->ev = req;
    r->app = s->app;
    r->server = s;
    r->early = true;
    r->start_us = clock_mono_us();
    r->method = method_of(req);
    snprintf(r->id, sizeof r->id, "%08x%08x", s->id_salt, (unsigned)(s->next_id++ & 0xffffffffu));
    const char *p = req->uri && req->uri->path && req->uri->path->full ? req->uri->path->full : "/";
    if (!(r->path = strdup(p))) {
        http_req_unref(r);
        return false;
    }
    s->pending++; /* send_reply counts it down */
    s->opts.precheck(r);
    bool refused = r->status != 0;
    if (!refused)
        s->pending--;
    r->ev = NULL;
    http_req_unref(r);
    return refused;
}

static evhtp_res on_headers(evhtp_request_t *req, evhtp_headers_t *hdrs, void *arg)
{
    struct http_server *s = arg;
    size_t plen = req->uri && req->uri->path && req->uri->path->full ? strlen(req->uri->path->full) : 0;
    size_t qlen = req->uri && req->uri->query_raw ? strlen((const char *)req->uri->query_raw) : 0;
    if (plen + qlen > URI_MAX)
        return early_reply(req, 414, ERR_414, sizeof ERR_414 - 1, NULL);
    struct header_scan h = {0, false};
    evhtp_headers_for_each(hdrs, scan_header, &h);
    if (h.content_length > 1 || (h.content_length && h.transfer_encoding))
        return early_reply(req, 400, ERR_400_FRAMING, sizeof ERR_400_FRAMING - 1, NULL);
    const char *cl = evhtp_header_find(hdrs, "Content-Length");
    unsigned long long n = 0;
    if (cl) {
        char *end;
        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || n > s->opts.max_body_bytes)
            return early_reply(req, 413, ERR_413, sizeof ERR_413 - 1, NULL);
    }
    /* libevhtp parses form bodies into stack arrays (upstream #118): never let one through. */
    const char *ct = evhtp_header_find(hdrs, "Content-Type");
    if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        return early_reply(req, 415, ERR_415, sizeof ERR_415 - 1, NULL);
    if (n == 0 && !h.transfer_encoding)
        return EVHTP_RES_OK; /* no body: decided by the normal pipeline, keep-alive kept */
    /* Route, method, CORS and the token are settled before a body byte is read. */
    if (precheck_refused(s, req))
        return EVHTP_RES_PAUSE;
    /* The body budget: a chunked body reserves the largest body allowed. */
    size_t want = h.transfer_encoding ? s->opts.max_body_bytes : (size_t)n;
    if (s->body_buffered + want > s->opts.max_buffered_body_bytes) {
        static const char *const retry[] = {"Retry-After", "1", NULL};
        log_warn("request body refused: %zu bytes of bodies already buffered (MAX_BUFFERED_BODY_BYTES %zu)",
                 s->body_buffered, s->opts.max_buffered_body_bytes);
        return early_reply(req, 503, ERR_503_BODY, sizeof ERR_503_BODY - 1, retry);
    }
    struct conn_track *t = track_of(req->conn);
    if (t) {
        t->body_reserved += want;
        s->body_buffered += want;
    }
    return EVHTP_RES_OK;
}

/* ---- connections ----------------------------------------------------------- */

static evhtp_res on_conn_fini(evhtp_connection_t *c, void *arg)
{
    struct conn_track *t = arg;
    struct http_server *s = t->srv;
    if (t->prev)
        t->prev->next = t->next;
    else
        s->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    s->nconns--;
    s->body_buffered -= t->body_reserved;
    t->body_reserved = 0;
    head_account(t, 0);
    if (t->wait)
        evtimer_del(t->wait);
    if (t->hup)
        event_del(t->hup);
    if (t->busy)
        t->dead = true; /* call_hidden frees it */
    else
        track_free(t);
    return EVHTP_RES_OK;
}

/* libevhtp's read timeout restarts on every byte, so a client dripping a request (slowloris
 * headers, a body byte by byte) would hold its connection forever. A whole request, headers
 * and body, must arrive within idle_timeout_s of the accept or of the previous reply; an idle
 * keep-alive connection gets the same bound. */
static void conn_wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn_track *t = arg;
    if (t->phase == IN_LINGER)
        log_debug("closing a connection: its client still sends after %d ms", HTTP_LINGER_MS);
    else if (t->phase == IN_CLOSING)
        log_debug("closing a connection: its answer is not read within %d s", t->srv->opts.idle_timeout_s);
    else
        log_debug("closing a connection: no complete request within %d s", t->srv->opts.idle_timeout_s);
    evhtp_connection_free(t->conn); /* runs on_conn_fini, which frees t and this event */
}

static void conn_wait_arm(struct conn_track *t)
{
    if (!t || !t->wait)
        return;
    struct timeval tv = {t->srv->opts.idle_timeout_s, 0};
    evtimer_add(t->wait, &tv);
}

static void conn_wait_disarm(struct conn_track *t)
{
    if (t && t->wait)
        evtimer_del(t->wait);
}

/* A waiting request's socket is normally still read, and a hang-up arrives as end-of-file
 * (guard_eventcb). Once the socket stops being read (the client sent bytes ahead, or
 * libevhtp's callbacks could not be wrapped), libevhtp never sees its client hang up: the
 * socket is then watched here: EV_CLOSED (the peer's FIN, where the backend reports it) or
 * a readable socket that peeks as end-of-file or an error. Pipelined bytes are left alone
 * (then only EV_CLOSED is watched). */
static void hup_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn_track *t = arg;
    if (!(what & EV_CLOSED)) {
        char b;
        ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n > 0) {
            event_del(t->hup);
            if (t->srv->early_close) {
                event_assign(t->hup, t->srv->base, fd, EV_CLOSED | EV_PERSIST, hup_cb, t);
                event_add(t->hup, NULL);
            }
            return;
        }
    }
    log_debug("the client closed its connection before its answer");
    evhtp_connection_free(t->conn); /* abandons the request (on_request_fini), frees t */
}

static void hup_arm(struct conn_track *t)
{
    if (!t || CONN_CLOSING(t))
        return;
    evutil_socket_t fd = bufferevent_getfd(t->conn->bev);
    if (fd < 0)
        return;
    short what = EV_READ | EV_PERSIST | (t->srv->early_close ? EV_CLOSED : 0);
    if (!t->hup)
        t->hup = event_new(t->srv->base, fd, what, hup_cb, t);
    else {
        event_del(t->hup);
        event_assign(t->hup, t->srv->base, fd, what, hup_cb, t);
    }
    if (t->hup)
        event_add(t->hup, NULL);
}

static void hup_disarm(struct conn_track *t)
{
    if (t && t->hup)
        event_del(t->hup);
}

static evhtp_res on_post_accept(evhtp_connection_t *c, void *arg)
{
    struct http_server *s = arg;
    if (s->draining || s->nconns >= s->opts.max_connections)
        return EVHTP_RES_ERROR;
    struct conn_track *t = calloc(1, sizeof *t);
    if (!t)
        return EVHTP_RES_ERROR;
    t->srv = s;
    t->conn = c;
    if (!(t->wait = evtimer_new(s->base, conn_wait_cb, t))) {
        free(t);
        return EVHTP_RES_ERROR;
    }
    t->next = s->conns;
    if (s->conns)
        s->conns->prev = t;
    s->conns = t;
    s->nconns++;
    head_reset(t, IN_HEAD);
    evhtp_connection_set_hook(c, evhtp_hook_on_headers, (evhtp_hook)on_headers, s);
    evhtp_connection_set_hook(c, evhtp_hook_on_connection_fini, (evhtp_hook)on_conn_fini, t);
    conn_wait_arm(t);
    guard_install(t);
    return EVHTP_RES_OK;
}
/* EMFILE/ENFILE: stop accepting for a moment instead of spinning on the listener. */
static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *s = arg;
    if (s->listening && !s->draining)
        evconnlistener_enable(s->htp->server);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    /* The listener's argument is libevhtp's evhtp_t (evhtp_bind_socket registered it), not
     * ours: taking it for struct http_server crashed the service on the first EMFILE. */
    struct http_server *s = ((evhtp_t *)arg)->arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("accept failed: %s; pausing accepts for 250 ms", evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = {0, 250000};
    evtimer_add(s->accept_retry, &tv);
}

/* ---- requests -------------------------------------------------------------- */

struct http_req *http_req_ref(struct http_req *r)
{
    r->refs++;
    return r;
}

void http_req_unref(struct http_req *r)
{
    if (!r || --r->refs > 0)
        return;
    if (r->deadline)
        event_free(r->deadline);
    json_decref(r->json);
    if (r->handler_state_free)
        r->handler_state_free(r->handler_state);
    if (r->on_reply_free)
        r->on_reply_free(r->on_reply_arg);
    free(r->path);
    free(r->query);
    free(r);
}

bool http_req_alive(const struct http_req *r)
{
    return r->ev != NULL && r->status == 0;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
    evhtp_request_t *req = r->ev;
    return req ? evhtp_header_find(req->headers_in, name) : NULL;
}

struct join {
    const char *name;
    char *buf;
    size_t len, used;
    bool cut;
};

static int join_header(evhtp_kv_t *kv, void *arg)
{
    struct join *j = arg;
    if (strcasecmp(kv->key, j->name) != 0 || !kv->val)
        return 0;
    size_t vl = strlen(kv->val), sep = j->used ? 1 : 0;
    if (j->used + sep + vl >= j->len) {
        j->cut = true;
        return 0;
    }
    if (sep)
        j->buf[j->used++] = ',';
    memcpy(j->buf + j->used, kv->val, vl + 1);
    j->used += vl;
    return 0;
}

int http_req_header_all(const struct http_req *r, const char *name, char *buf, size_t len)
{
    evhtp_request_t *req = r->ev;
    struct join j = {name, buf, len, 0, false};
    if (len)
        buf[0] = '\0';
    if (req && len)
        evhtp_headers_for_each(req->headers_in, join_header, &j);
    return j.cut ? -1 : j.used ? 1 : 0;
}

const unsigned char *http_req_body(struct http_req *r, size_t *len)
{
    evhtp_request_t *req = r->ev;
    *len = req ? evbuffer_get_length(req->buffer_in) : 0;
    if (*len == 0)
        return NULL;
    return evbuffer_pullup(req->buffer_in, -1);
}

int http_req_query(const struct http_req *r, const char *key, char *buf, size_t buflen)
{
    return r->query ? url_query_get(r->query, key, buf, buflen) : -1;
}

void http_req_peer(const struct http_req *r, char *buf, size_t len)
{
    evhtp_request_t *req = r->ev;
    buf[0] = '\0';
    if (!req || !req->conn || !req->conn->saddr)
        return;
    const struct sockaddr *sa = req->conn->saddr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

static struct http_server *server_of(const struct http_req *r)
{
    return r->server;
}

static void log_request(struct http_req *r, int status)
{
    uint64_t dur = clock_mono_us() - r->start_us;
    enum log_level lvl = status >= 500 ? LOG_WARN : LOG_INFO;
    if (!log_enabled(lvl))
        return;
    /* Written directly (about 4 µs a request less than through json_t on this machine).
     * A path that is not UTF-8 leaves the line without fields, as jansson did. */
    const char *path = r->path ? r->path : "", *method = http_method_name(r->method);
    struct json_out o;
    json_out_init(&o);
    json_out_lit(&o, "\"request_id\":");
    json_out_str(&o, r->id, strlen(r->id));
    json_out_lit(&o, ",\"method\":");
    json_out_str(&o, method, strlen(method));
    json_out_lit(&o, ",\"path\":");
    json_out_str(&o, path, strlen(path));
    json_out_lit(&o, ",\"status\":");
    json_out_int(&o, status);
    json_out_lit(&o, ",\"duration_ms\":");
    json_out_real(&o, (double)dur / 1000.0, 6);
    if (r->route) {
        json_out_lit(&o, ",\"route\":");
        json_out_str(&o, r->route->name, strlen(r->route->name));
    }
    if (r->auth.user_id) {
        json_out_lit(&o, ",\"user_id\":");
        json_out_int(&o, r->auth.user_id);
    }
    size_t n = 0;
    char *members = json_out_finish(&o, &n);
    log_members(lvl, "request", members, n);
    free(members);
}

/* Queue the reply: standard headers (with content_type), CORS, extra headers, body. */
static void send_reply(struct http_req *r, int status, const char *content_type, const char *body,
                       size_t len, const char *const *extra)
{
    evhtp_request_t *req = r->ev;
    struct http_server *s = server_of(r);
    struct conn_track *t = track_of(req->conn);
    http_req_ref(r); /* evhtp_send_reply may free the request (and drop its ref) */
    r->status = status;
    r->on_abandon = NULL;
    if (r->deadline)
        evtimer_del(r->deadline);
    add_standard_headers_ct(req, content_type);
    if (r->cors_origin) {
        add_header(req, "Access-Control-Allow-Origin", r->cors_origin, 1);
        add_header(req, "Access-Control-Allow-Credentials", "true", 0);
        add_header(req, "Vary", "Origin", 0);
    }
    for (size_t i = 0; extra && extra[i]; i += 2)
        add_header(req, extra[i], extra[i + 1], 1);
    if (len)
        evbuffer_add(req->buffer_out, body, len);
    if (s->draining || r->early)
        evhtp_request_disable_flag(req, EVHTP_REQ_FLAG_KEEPALIVE);
    hup_disarm(t);
    if (t)
        t->waiting = false;
    if (!r->early)
        conn_wait_arm(t); /* the next request on this connection */
    s->pending--;
    log_request(r, status);
    if (s->opts.on_answer)
        s->opts.on_answer(r->route ? r->route->name : NULL, status, clock_mono_us() - r->start_us);
    if (r->early) {
        /* Decided on the headers (precheck_refused): the body is never read. */
        evhtp_kv_t *e = evhtp_kvs_find_kv(req->headers_in, "Expect");
        if (e)
            evhtp_kv_rm_and_free(req->headers_in, e);
        evhtp_send_reply(req, (evhtp_res)status);
        if (t)
            conn_close_after_flush(t);
        http_req_unref(r);
        return;
    }
    if (r->paused) {
        r->paused = false;
        evhtp_request_resume(req);
    }
    /* Connection: close (the connection's last request, draining, or the client's own
     * close): the requests pipelined behind it are not answered; the connection closes
     * once this answer is flushed. */
    bool last = !(evhtp_request_get_flags(req) & EVHTP_REQ_FLAG_KEEPALIVE);
    evhtp_send_reply(req, (evhtp_res)status);
    if (last && t && t->guarded) {
        conn_close_after_flush(t);
        bufferevent_enable(t->conn->bev, EV_WRITE);
    }
    http_req_unref(r);
}

static void send_json_text(struct http_req *r, int status, const char *text, size_t len,
                           const char *const *extra)
{
    if (r->on_reply) {
        void (*fn)(struct http_req *, int, const char *, size_t, void *) = r->on_reply;
        r->on_reply = NULL;
        fn(r, status, text, len, r->on_reply_arg);
    }
    send_reply(r, status, "application/json; charset=utf-8", text, len, extra);
}

void http_req_send(struct http_req *r, int status, json_t *body, const char *const *extra)
{
    if (!r->ev || r->status) {
        json_decref(body);
        return;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    send_json_text(r, status, text, text ? strlen(text) : 0, extra);
    free(text);
}

void http_req_send_json_text(struct http_req *r, int status, const char *text, size_t len)
{
    if (r->ev && !r->status)
        send_json_text(r, status, text, len, NULL);
}

void http_req_send_text(struct http_req *r, int status, const char *content_type, const char *body,
                        size_t len)
{
    if (!r->ev || r->status)
        return;
    send_reply(r, status, content_type, body, len, NULL);
}

void http_req_on_reply(struct http_req *r,
                       void (*fn)(struct http_req *r, int status, const char *body, size_t len, void *arg),
                       void *arg, void (*free_fn)(void *arg))
{
    if (r->on_reply_free)
        r->on_reply_free(r->on_reply_arg);
    r->on_reply = fn;
    r->on_reply_arg = arg;
    r->on_reply_free = free_fn;
}

void http_req_on_abandon(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg)
{
    r->on_abandon = fn;
    r->abandon_arg = arg;
}

static void abandon(struct http_req *r)
{
    void (*fn)(struct http_req *, void *) = r->on_abandon;
    r->on_abandon = NULL;
    if (fn)
        fn(r, r->abandon_arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_req *r = arg;
    if (!http_req_alive(r))
        return;
    http_req_ref(r);
    abandon(r);
    reply_error(r, 504, "request timed out");
    http_req_unref(r);
}

void http_req_hold(struct http_req *r)
{
    evhtp_request_t *req = r->ev;
    if (!req || r->status || (r->deadline && evtimer_pending(r->deadline, NULL)))
        return;
    struct http_server *s = server_of(r);
    if (!r->deadline)
        r->deadline = evtimer_new(s->base, deadline_cb, r);
    if (r->deadline) {
        struct timeval tv = {s->opts.request_timeout_s, 0};
        evtimer_add(r->deadline, &tv);
    }
}

static evhtp_res on_request_fini(evhtp_request_t *req, void *arg)
{
    struct http_req *r = arg;
    struct http_server *s = server_of(r);
    r->ev = NULL;
    s->body_buffered -= r->body_reserved; /* libevhtp frees the body now */
    r->body_reserved = 0;
    if (!r->status) {
        /* The client went away before its answer: abandoned, logged 499 as nginx does. */
        s->pending--;
        r->status = 499;
        log_request(r, 499);
        if (s->opts.on_answer)
            s->opts.on_answer(r->route ? r->route->name : NULL, 499, clock_mono_us() - r->start_us);
        abandon(r);
    }
    if (r->deadline)
        evtimer_del(r->deadline);
    http_req_unref(r);
    return EVHTP_RES_OK;
}

static unsigned method_of(evhtp_request_t *req)
{
    switch (req->method) {
    case htp_method_GET: return HTTP_GET;
    case htp_method_HEAD: return HTTP_HEAD;
    case htp_method_POST: return HTTP_POST;
    case htp_method_PUT: return HTTP_PUT;
    case htp_method_PATCH: return HTTP_PATCH;
    case htp_method_DELETE: return HTTP_DELETE;
    case htp_method_OPTIONS: return HTTP_OPTIONS;
    default: return HTTP_OTHER;
    }
}

/* evhtp_request_pause without its bufferevent_disable(EV_READ): libevhtp's PAUSED flag
 * alone keeps it from parsing the input (guard_readcb checks it too). A request answered
 * in the iteration that read it then never stops the socket being read: the pause's
 * EV_READ delete and the re-enable after the flush would reach the kernel as one more
 * epoll_ctl each request. Nor does a request that waits (t->waiting), unless libevhtp's
 * callbacks could not be wrapped: guard_readcb stops reading a paused connection as soon
 * as bytes arrive (sent ahead, or while an answer is still being flushed), so what a client
 * sends ahead stays bounded by one read as before. */
static void pause_flag(evhtp_request_t *req)
{
    req->status = EVHTP_RES_PAUSE;
    req->conn->flags |= EVHTP_CONN_FLAG_PAUSED;
}

static void on_request(evhtp_request_t *req, void *arg)
{
    struct http_server *s = arg;
    struct conn_track *t = track_of(req->conn);
    if (req->flags & EVHTP_REQ_FLAG_FINISHED || req->status == 413 || req->status == 414)
        return; /* answered from a hook already */
    if (t)
        head_reset(t, IN_HEAD); /* what follows in the input is the next request */
    struct http_req *r = calloc(1, sizeof *r);
    if (!r) {
        evhtp_send_reply(req, EVHTP_RES_SERVERR);
        return;
    }
    conn_wait_disarm(t); /* the request is complete */
    r->refs = 1; /* held by the HTTP side until on_request_fini */
    r->ev = req;
    r->app = s->app;
    r->server = s;
    r->start_us = clock_mono_us();
    r->method = method_of(req);
    if (t) {
        r->body_reserved = t->body_reserved; /* released when libevhtp frees the body */
        t->body_reserved = 0;
    }
    snprintf(r->id, sizeof r->id, "%08x%08x", s->id_salt, (unsigned)(s->next_id++ & 0xffffffffu));
    const char *p = req->uri && req->uri->path && req->uri->path->full ? req->uri->path->full : "/";
    r->path = strdup(p);
    if (req->uri && req->uri->query_raw && *req->uri->query_raw)
        r->query = strdup((const char *)req->uri->query_raw);
    s->pending++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)on_request_fini, r);
    /* Paused from the start: pipelined requests then wait their turn, and a reply
     * (now or later) always resumes. The socket stops being read only if the answer
     * is not given at once (below). */
    r->paused = true;
    pause_flag(req);
    http_req_ref(r);
    if (!r->path)
        reply_internal(r);
    else {
        /* Draining, or the connection's last request: the answer says Connection: close
         * and the connection closes once it is flushed. */
        if (s->draining || (t && ++t->served >= HTTP_KEEPALIVE_REQUESTS))
            evhtp_request_disable_flag(req, EVHTP_REQ_FLAG_KEEPALIVE);
        s->dispatch(r);
    }
    bool gone = r->ev == NULL, answered = r->status != 0;
    http_req_unref(r);
    if (gone)
        return; /* the connection died while dispatching */
    if (answered) {
        /* Answered at once: the reply already queued the resume. libevhtp's parser stops
         * at the end of each message anyway; staying paused until that resume runs makes
         * the next pipelined request (perhaps half received) reach libevhtp only through
         * the guarded resume callback, as after an answer that came later (and spares
         * libevhtp's "resuming when not paused" path). */
        pause_flag(req);
        return;
    }
    if (t && t->guarded) {
        /* Waiting on the database or an upstream with the socket still read: a client
         * that sends nothing meanwhile costs no epoll_ctl, and its hang-up arrives as
         * end-of-file (guard_eventcb). Bytes sent ahead stop the reads (guard_readcb). */
        t->waiting = true;
        return;
    }
    if (req->conn->flags & EVHTP_CONN_FLAG_PAUSED)
        bufferevent_disable(req->conn->bev, EV_READ); /* what evhtp_request_pause does */
    hup_arm(t); /* waiting on the database or an upstream: watch for a hang-up */
}

/* ---- lifecycle ------------------------------------------------------------- */

struct http_server *http_server_new(struct event_base *base, struct app *app,
                                    const struct http_server_opts *opts,
                                    http_dispatch_fn dispatch, char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->app = app;
    s->dispatch = dispatch;
    s->opts = *opts;
    s->early_close = (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) != 0;
    s->htp = evhtp_new(base, s);
    s->accept_retry = evtimer_new(base, accept_retry_cb, s);
    if (!s->htp || !s->accept_retry) {
        snprintf(err, errlen, "out of memory");
        http_server_free(s);
        return NULL;
    }
    uint64_t seed = clock_mono_us() ^ (uint64_t)(uintptr_t)s;
    s->id_salt = (uint32_t)(seed ^ (seed >> 32));
    evhtp_enable_flag(s->htp, EVHTP_FLAG_ENABLE_NODELAY);
    evhtp_set_max_body_size(s->htp, opts->max_body_bytes + 1); /* libevhtp's cap is exclusive */
    struct timeval to = {opts->idle_timeout_s, 0};
    evhtp_set_timeouts(s->htp, &to, &to);
    evhtp_set_gencb(s->htp, on_request, s);
    evhtp_set_post_accept_cb(s->htp, on_post_accept, s);

    char addr[300];
    if (strchr(opts->bind_address, ':'))
        snprintf(addr, sizeof addr, "ipv6:%s", opts->bind_address);
    else
        snprintf(addr, sizeof addr, "ipv4:%s", opts->bind_address);
    struct in6_addr probe;
    if (inet_pton(strchr(opts->bind_address, ':') ? AF_INET6 : AF_INET, opts->bind_address,
                  &probe) != 1) {
        snprintf(err, errlen, "BIND_ADDRESS must be a numeric IPv4 or IPv6 address");
        http_server_free(s);
        return NULL;
    }
    if (evhtp_bind_socket(s->htp, addr, (uint16_t)opts->port, 1024) != 0) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", opts->bind_address, opts->port,
                 strerror(errno));
        http_server_free(s);
        return NULL;
    }
    s->listening = true;
    evconnlistener_set_error_cb(s->htp->server, on_accept_error);
    return s;
}

int http_server_port(const struct http_server *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!s->listening ||
        getsockname(evconnlistener_get_fd(s->htp->server), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void http_server_drain(struct http_server *s)
{
    if (s->draining)
        return;
    s->draining = true;
    if (s->listening) {
        evhtp_unbind_socket(s->htp);
        s->listening = false;
    }
    /* Idle keep-alive connections have no request to finish: close them now. */
    struct conn_track *t = s->conns, *next;
    for (; t; t = next) {
        next = t->next;
        if (!t->conn->request)
            evhtp_connection_free(t->conn); /* runs on_conn_fini, which frees t */
    }
}

int http_server_pending(const struct http_server *s)
{
    return s->pending;
}

int http_server_connections(const struct http_server *s)
{
    return s->nconns;
}

size_t http_server_body_buffered(const struct http_server *s)
{
    return s->body_buffered;
}

size_t http_server_header_buffered(const struct http_server *s)
{
    return s->head_buffered;
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    while (s->conns)
        evhtp_connection_free(s->conns->conn);
    if (s->htp) {
        if (s->listening)
            evhtp_unbind_socket(s->htp);
        evhtp_free(s->htp);
    }
    if (s->accept_retry)
        event_free(s->accept_retry);
    free(s);
}
