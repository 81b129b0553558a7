/* http/server: the libevhtp glue. The only module that includes evhtp.h.
 * It owns the listener, connections, transport limits (431 header caps, 413/414/400
 * framing, the request-body budget), client hang-ups while a request waits (499),
 * the standard response headers, request deadlines, the access log and
 * graceful draining. Everything above it sees struct http_req. */
#ifndef IDX_HTTP_SERVER_H
#define IDX_HTTP_SERVER_H
#include <stddef.h>
#include "http/request.h"
#include "util/compiler.h"

struct event_base;
struct http_server;

struct http_server_opts {
    const char *bind_address;    /* IPv4/IPv6 literal */
    int port;                    /* 0: pick a free port */
    size_t max_body_bytes;       /* inclusive */
    int max_connections;         /* accepted connections beyond this are closed */
    int request_timeout_s;       /* deadline for a request answered asynchronously */
    int idle_timeout_s;          /* read/write inactivity, and the time a complete request
                                    (headers and body) may take to arrive */
    size_t max_header_bytes;     /* request line + header lines + empty line; past it 431 */
    int max_headers;             /* header lines per request; past it 431 */
    size_t max_buffered_body_bytes; /* request bodies being read or held, all connections; 503 */
    size_t max_buffered_header_bytes; /* incomplete header blocks, all connections; 503 */
    /* Checks run on the headers of a request that announces a body (route, method, CORS,
     * token), before the body is read. A reply from it (r->early is set) closes the
     * connection; r is thrown away either way, and dispatch later sees a new one. */
    void (*precheck)(struct http_req *r);
    /* Told of every answer (route name, "rejected" for one decided before routing, NULL
     * when unmatched; status, 499 for a client gone; time since the request began):
     * app wires it to /metrics (http/ knows no ops/). NULL: nobody listens. */
    void (*on_answer)(const char *route, int status, uint64_t duration_us);
};

typedef void (*http_dispatch_fn)(struct http_req *r);

/* Bind and start accepting. Returns NULL and a reason in err on failure. */
MUSTCHECK struct http_server *http_server_new(struct event_base *base, struct app *app,
                                    const struct http_server_opts *opts,
                                    http_dispatch_fn dispatch, char *err, size_t errlen);
int http_server_port(const struct http_server *s);
/* Stop accepting; answered requests from now on close their connection. */
void http_server_drain(struct http_server *s);
/* Requests that have not been answered yet. */
int http_server_pending(const struct http_server *s);
int http_server_connections(const struct http_server *s);
/* Bytes of request bodies reserved against max_buffered_body_bytes right now. */
size_t http_server_body_buffered(const struct http_server *s);
/* Bytes of incomplete request header blocks held right now (max_buffered_header_bytes). */
size_t http_server_header_buffered(const struct http_server *s);
/* Close every connection and free everything. */
void http_server_free(struct http_server *s);

#endif
