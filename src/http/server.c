/* http/server: owns libevhtp (listener, connections, hooks) and the lifetime of
 * struct http_req. Transport-level rejections (413, 414, bad framing) are
 * answered here from the on_headers hook, before a body is buffered. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <evhtp.h>
#pragma GCC diagnostic pop
#include <event2/buffer.h>
#include <event2/bufferevent.h>
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

#include "app.h"
#include "http/reply.h"
#include "log.h"
#include "ops/metrics.h"

#define URI_MAX 2048
#define LINE_HOLD_MAX 8192 /* past this, a request line without LF goes to libevhtp as is */

struct conn_track {
    struct http_server *srv;
    evhtp_connection_t *conn;
    struct event *wait;   /* armed while a complete request is awaited (slowloris guard) */
    bool line_pending;    /* a new request line is awaited (see line_guard_readcb) */
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
    uint64_t next_id;
    uint32_t id_salt;
};

static const char ERR_413[] = "{\"message\":\"Payload Too Large\",\"data\":\"Request body too large\"}";
static const char ERR_414[] = "{\"message\":\"URI Too Long\",\"data\":\"URI too long\"}";
static const char ERR_400_FRAMING[] =
    "{\"message\":\"Bad Request\",\"data\":\"Conflicting Content-Length or Transfer-Encoding headers\"}";
static const char ERR_415[] =
    "{\"message\":\"Unsupported Media Type\",\"data\":\"Content-Type must be application/json\"}";

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

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
    evhtp_headers_add_header(req->headers_out, evhtp_header_new(k, v, 0, copy_value));
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

/* Answer from a hook before the body is read: close afterwards, swallow the body. */
static evhtp_res drain_body(evhtp_request_t *req, struct evbuffer *buf, void *arg)
{
    evbuffer_drain(buf, evbuffer_get_length(buf));
    return EVHTP_RES_OK;
}

static void early_reply(evhtp_request_t *req, int status, const char *body, size_t len)
{
    struct http_server *s = req->htp->arg;
    evhtp_request_disable_flag(req, EVHTP_REQ_FLAG_KEEPALIVE);
    evhtp_kv_t *e = evhtp_kvs_find_kv(req->headers_in, "Expect");
    if (e)
        evhtp_kv_rm_and_free(req->headers_in, e);
    evhtp_request_set_max_body_size(req, UINT64_MAX);
    evhtp_request_set_hook(req, evhtp_hook_on_read, (evhtp_hook)drain_body, NULL);
    add_standard_headers(req);
    evbuffer_add(req->buffer_out, body, len);
    evhtp_send_reply(req, (evhtp_res)status);
    json_t *f = json_pack("{s:s,s:s,s:i}", "method", htparser_get_methodstr_m(req->method),
                          "path", "(rejected)", "status", status);
    (void)s;
    log_fields(LOG_INFO, "request rejected", f);
    metrics_observe_request("rejected", status, 0);
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

static evhtp_res on_headers(evhtp_request_t *req, evhtp_headers_t *hdrs, void *arg)
{
    struct http_server *s = arg;
    size_t plen = req->uri && req->uri->path && req->uri->path->full ? strlen(req->uri->path->full) : 0;
    size_t qlen = req->uri && req->uri->query_raw ? strlen((const char *)req->uri->query_raw) : 0;
    if (plen + qlen > URI_MAX) {
        early_reply(req, 414, ERR_414, sizeof ERR_414 - 1);
        return EVHTP_RES_OK;
    }
    struct header_scan h = {0, false};
    evhtp_headers_for_each(hdrs, scan_header, &h);
    if (h.content_length > 1 || (h.content_length && h.transfer_encoding)) {
        early_reply(req, 400, ERR_400_FRAMING, sizeof ERR_400_FRAMING - 1);
        return EVHTP_RES_OK;
    }
    const char *cl = evhtp_header_find(hdrs, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || n > s->opts.max_body_bytes) {
            early_reply(req, 413, ERR_413, sizeof ERR_413 - 1);
            return EVHTP_RES_OK;
        }
    }
    /* libevhtp parses form bodies into stack arrays (upstream #118): never let one through. */
    const char *ct = evhtp_header_find(hdrs, "Content-Type");
    if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
        early_reply(req, 415, ERR_415, sizeof ERR_415 - 1);
        return EVHTP_RES_OK;
    }
    return EVHTP_RES_OK;
}

/* ---- connections ----------------------------------------------------------- */

static evhtp_res on_conn_fini(evhtp_connection_t *c, void *arg)
{
    struct conn_track *t = arg;
    struct http_server *s = t->srv;
    if (t->wait)
        event_free(t->wait);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    s->nconns--;
    free(t);
    return EVHTP_RES_OK;
}

/* The connection's own tracker (NULL for a connection we do not track). */
static struct conn_track *track_of(evhtp_connection_t *c)
{
    if (!c || !c->hooks || c->hooks->on_connection_fini != (evhtp_hook_connection_fini_cb)on_conn_fini)
        return NULL;
    return c->hooks->on_connection_fini_arg;
}

/* libevhtp's read timeout restarts on every byte, so a client dripping a request (slowloris
 * headers, a body byte by byte) would hold its connection forever. A whole request, headers
 * and body, must arrive within idle_timeout_s of the accept or of the previous reply; an idle
 * keep-alive connection gets the same bound. */
static void conn_wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn_track *t = arg;
    log_debug("closing a connection: no complete request within %d s", t->srv->opts.idle_timeout_s);
    evhtp_connection_free(t->conn); /* runs on_conn_fini, which frees t and this event */
}

static void conn_wait_arm(struct conn_track *t)
{
    if (!t || !t->wait)
        return;
    t->line_pending = true;
    struct timeval tv = {t->srv->opts.idle_timeout_s, 0};
    evtimer_add(t->wait, &tv);
}

/* libevhtp 1.2.18 corrupts the URI path when the request line arrives in more than one
 * read (upstream #128/#131: "GET /now" + "here" is routed as "/nowehere"; measured with
 * every split point, and with a request sent byte by byte). Its bufferevent read callback
 * is wrapped so that, while a request line is awaited (from the accept or a reply until
 * the parser reports the line done in on_headers_start), it runs only once the whole line
 * (up to LF, after any empty lines) is buffered. Headers and bodies split across reads are
 * parsed correctly and pass straight through. */
static bufferevent_data_cb evhtp_readcb;

static bool request_line_buffered(struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), i = 0;
    if (len >= LINE_HOLD_MAX)
        return true; /* let libevhtp reject it */
    const unsigned char *p = len ? evbuffer_pullup(in, (ev_ssize_t)len) : NULL;
    if (!p)
        return false;
    while (i < len && (p[i] == '\r' || p[i] == '\n'))
        i++;
    return memchr(p + i, '\n', len - i) != NULL;
}

static void line_guard_readcb(struct bufferevent *bev, void *arg)
{
    struct conn_track *t = track_of(arg);
    if (t && t->line_pending && !request_line_buffered(bufferevent_get_input(bev)))
        return; /* wait for the rest of the line; conn_wait_cb bounds the wait */
    evhtp_readcb(bev, arg); /* may free the connection and t */
}

static evhtp_res on_headers_start(evhtp_request_t *req, void *arg)
{
    struct conn_track *t = track_of(req->conn);
    if (t)
        t->line_pending = false; /* the request line is parsed */
    return EVHTP_RES_OK;
}

static void line_guard_install(evhtp_connection_t *c)
{
    bufferevent_data_cb rcb = NULL, wcb = NULL;
    bufferevent_event_cb ecb = NULL;
    void *cbarg = NULL;
    if (!c->bev)
        return;
    bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &cbarg);
    if (!rcb || rcb == line_guard_readcb || cbarg != (void *)c)
        return;
    if (evhtp_readcb && evhtp_readcb != rcb)
        return; /* not the callback we know: leave the connection alone */
    evhtp_readcb = rcb;
    bufferevent_setcb(c->bev, line_guard_readcb, wcb, ecb, cbarg);
}

static void conn_wait_disarm(struct conn_track *t)
{
    if (t && t->wait)
        evtimer_del(t->wait);
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
    evhtp_connection_set_hook(c, evhtp_hook_on_headers, (evhtp_hook)on_headers, s);
    evhtp_connection_set_hook(c, evhtp_hook_on_headers_start, (evhtp_hook)on_headers_start, s);
    evhtp_connection_set_hook(c, evhtp_hook_on_connection_fini, (evhtp_hook)on_conn_fini, t);
    conn_wait_arm(t);
    line_guard_install(c);
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
    return r->app->http;
}

static void log_request(struct http_req *r, int status)
{
    uint64_t dur = now_us() - r->start_us;
    enum log_level lvl = status >= 500 ? LOG_WARN : LOG_INFO;
    if (!log_enabled(lvl))
        return;
    json_t *f = json_pack("{s:s,s:s,s:s,s:i,s:f}", "request_id", r->id, "method",
                          http_method_name(r->method), "path", r->path ? r->path : "", "status",
                          status, "duration_ms", (double)dur / 1000.0);
    if (f && r->route)
        json_object_set_new(f, "route", json_string(r->route->name));
    if (f && r->auth.user_id)
        json_object_set_new(f, "user_id", json_integer(r->auth.user_id));
    log_fields(lvl, "request", f);
}

/* Queue the reply: standard headers (with content_type), CORS, extra headers, body. */
static void send_reply(struct http_req *r, int status, const char *content_type, const char *body,
                       size_t len, const char *const *extra)
{
    evhtp_request_t *req = r->ev;
    struct http_server *s = server_of(r);
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
    if (s->draining)
        evhtp_request_disable_flag(req, EVHTP_REQ_FLAG_KEEPALIVE);
    conn_wait_arm(track_of(req->conn)); /* the next request on this connection */
    s->pending--;
    log_request(r, status);
    metrics_observe_request(r->route ? r->route->name : NULL, status, now_us() - r->start_us);
    if (r->paused) {
        r->paused = false;
        evhtp_request_resume(req);
    }
    evhtp_send_reply(req, (evhtp_res)status);
    http_req_unref(r);
}

void http_req_send(struct http_req *r, int status, json_t *body, const char *const *extra)
{
    if (!r->ev || r->status) {
        json_decref(body);
        return;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (r->on_reply) {
        void (*fn)(struct http_req *, int, const char *, size_t, void *) = r->on_reply;
        r->on_reply = NULL;
        fn(r, status, text, text ? strlen(text) : 0, r->on_reply_arg);
    }
    send_reply(r, status, "application/json; charset=utf-8", text, text ? strlen(text) : 0, extra);
    free(text);
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
    r->ev = NULL;
    if (!r->status) {
        server_of(r)->pending--; /* client went away before we answered */
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

static void on_request(evhtp_request_t *req, void *arg)
{
    struct http_server *s = arg;
    if (req->flags & EVHTP_REQ_FLAG_FINISHED || req->status == 413 || req->status == 414)
        return; /* answered from a hook already */
    struct http_req *r = calloc(1, sizeof *r);
    if (!r) {
        evhtp_send_reply(req, EVHTP_RES_SERVERR);
        return;
    }
    conn_wait_disarm(track_of(req->conn)); /* the request is complete */
    r->refs = 1; /* held by the HTTP side until on_request_fini */
    r->ev = req;
    r->app = s->app;
    r->start_us = now_us();
    r->method = method_of(req);
    snprintf(r->id, sizeof r->id, "%08x%08x", s->id_salt, (unsigned)(s->next_id++ & 0xffffffffu));
    const char *p = req->uri && req->uri->path && req->uri->path->full ? req->uri->path->full : "/";
    r->path = strdup(p);
    if (req->uri && req->uri->query_raw && *req->uri->query_raw)
        r->query = strdup((const char *)req->uri->query_raw);
    s->pending++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)on_request_fini, r);
    if (!r->path) {
        reply_internal(r);
        return;
    }
    if (s->draining)
        evhtp_request_disable_flag(req, EVHTP_REQ_FLAG_KEEPALIVE);
    /* Paused from the start: pipelined requests then wait their turn, and a reply
     * (now or later) always resumes. */
    r->paused = true;
    evhtp_request_pause(req);
    s->dispatch(r);
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
    s->htp = evhtp_new(base, s);
    s->accept_retry = evtimer_new(base, accept_retry_cb, s);
    if (!s->htp || !s->accept_retry) {
        snprintf(err, errlen, "out of memory");
        http_server_free(s);
        return NULL;
    }
    uint64_t seed = now_us() ^ (uint64_t)(uintptr_t)s;
    s->id_salt = (uint32_t)(seed ^ (seed >> 32));
    evhtp_enable_flag(s->htp, EVHTP_FLAG_ENABLE_NODELAY);
    evhtp_set_max_body_size(s->htp, opts->max_body_bytes + 1); /* libevhtp's cap is exclusive */
    struct timeval to = {opts->idle_timeout_s, 0};
    evhtp_set_timeouts(s->htp, &to, &to);
    evhtp_set_max_keepalive_requests(s->htp, 10000);
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
