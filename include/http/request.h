/* http/request: one HTTP request as handlers see it, independent of libevhtp.
 * Ownership: server.c creates it with one reference held by the HTTP side, which
 * it drops when libevhtp frees the request. Asynchronous work takes its own
 * reference (http_req_ref) and drops it when done. Replying to a request whose
 * HTTP side is gone is a no-op, so late callbacks are safe. */
#ifndef IDX_HTTP_REQUEST_H
#define IDX_HTTP_REQUEST_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/tenant.h"
#include "http/router.h"
#include "util/compiler.h"

struct app;
struct event;
struct http_server;

struct auth_identity {
    long long user_id;
    long long org_id;
    char role[64];
    char tenant[TENANT_HASH_LEN + 1];
    bool is_admin;
};

struct http_req {
    int refs;
    void *ev;                    /* evhtp_request_t *; NULL once the HTTP side is gone */
    struct app *app;             /* opaque here: what handlers reach the service through */
    struct http_server *server;  /* the server that made it (http/server) */
    unsigned method;
    char *path;                  /* raw path (not percent-decoded), no query */
    char *query;                 /* raw query string or NULL */
    const struct route *route;
    struct route_params params;  /* values point into path */
    struct auth_identity auth;
    json_t *json;                /* parsed body for ROUTE_JSON_BODY routes */
    const char *cors_origin;     /* allowed Origin to echo, points into headers, or NULL */
    char cors_buf[256];
    char id[17];                 /* request id (hex), also in logs */
    uint64_t start_us;
    int status;                  /* 0 until answered */
    bool paused;
    bool early;                  /* checked on its headers (http_server_opts.precheck) */
    size_t body_reserved;        /* bytes of the server's body budget held by this body */
    struct event *deadline;
    void (*on_abandon)(struct http_req *r, void *arg); /* see http_req_on_abandon */
    void *abandon_arg;
    void *handler_state;         /* owned by the request: freed with handler_state_free */
    void (*handler_state_free)(void *state);
    /* see http_req_on_reply */
    void (*on_reply)(struct http_req *r, int status, const char *body, size_t len, void *arg);
    void *on_reply_arg;
    void (*on_reply_free)(void *arg);
};

struct http_req *http_req_ref(struct http_req *r);
void http_req_unref(struct http_req *r);
/* true while a reply can still be sent */
bool http_req_alive(const struct http_req *r);

/* Request header (first match, case-insensitive) or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* Every value of header `name`, in order, joined with commas into buf. Returns 1, 0
 * when absent, -1 when they do not fit (buf then holds what fitted, whole values). */
MUSTCHECK int http_req_header_all(const struct http_req *r, const char *name, char *buf, size_t len);
/* Body bytes (not NUL-terminated) and length; NULL/0 when empty. */
const unsigned char *http_req_body(struct http_req *r, size_t *len);
/* Query parameter, percent-decoded into buf (NUL-terminated). Returns its length,
 * or -1 when absent or longer than buflen-1. */
MUSTCHECK int http_req_query(const struct http_req *r, const char *key, char *buf, size_t buflen);
/* Peer address as text. */
void http_req_peer(const struct http_req *r, char *buf, size_t len);

/* Send status with a JSON body (stolen, may be NULL for an empty body) and the
 * standard headers. Extra headers: NULL-terminated name/value pairs or NULL.
 * Returns once queued; a second call, or a call after the client left, is ignored. */
void http_req_send(struct http_req *r, int status, json_t *body, const char *const *extra_headers);
/* The same with the body already written as JSON text (len bytes), e.g. by util/json_out. */
void http_req_send_json_text(struct http_req *r, int status, const char *text, size_t len);

/* Call fn(r, arg) once if the request is abandoned before it is answered (the
 * client went away, or the request deadline passed): the place to cancel outbound
 * work. Replaces an earlier hook; fn NULL removes it. Not called after a reply. */
void http_req_on_abandon(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg);

/* Call fn(r, status, body, len, arg) once, with the serialized JSON body, just before a
 * JSON answer (http_req_send) is sent; arg is freed with free_fn when the request is freed.
 * Replaces an earlier hook (freeing its arg). For caches and invalidation on writes. */
void http_req_on_reply(struct http_req *r,
                       void (*fn)(struct http_req *r, int status, const char *body, size_t len, void *arg),
                       void *arg, void (*free_fn)(void *arg));

/* Send a non-JSON body (e.g. /metrics) with the standard headers. */
void http_req_send_text(struct http_req *r, int status, const char *content_type, const char *body,
                        size_t len);

/* Keep the request open after the handler returns; the server arms the request
 * deadline. Called by the dispatcher before going asynchronous. */
void http_req_hold(struct http_req *r);

#endif
