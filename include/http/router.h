/* http/router: exact path matching with `:name` segments, independent of libevhtp.
 * Routes are tried in table order; the first one whose path and method match wins,
 * so literal routes (/api/llm-keys/status) go before parameter routes (/:name). */
#ifndef IDX_HTTP_ROUTER_H
#define IDX_HTTP_ROUTER_H
#include <stddef.h>
#include "util/compiler.h"

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_DELETE = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
    HTTP_OTHER = 1 << 7,
};

struct http_req;
typedef void (*route_handler)(struct http_req *r);

enum route_flags {
    ROUTE_PUBLIC = 0,          /* no authentication */
    ROUTE_AUTH = 1 << 0,       /* JWT + membership check, tenant ready */
    ROUTE_ADMIN = 1 << 1,      /* additionally roleName == "Admin" */
    ROUTE_JSON_BODY = 1 << 2,  /* body parsed as a JSON object before the handler */
    ROUTE_CACHED = 1 << 3,     /* GET whose 200 answers the read cache keeps, per tenant */
    ROUTE_CACHE_USER = 1 << 4, /* ... and per user and role (ownership applies) */
};

struct route {
    unsigned methods;          /* bitmask of enum http_method */
    const char *pattern;       /* "/api/llm-keys/:id" */
    route_handler handler;
    unsigned flags;
    const char *name;          /* label for metrics and logs */
};

#define ROUTE_MAX_PARAMS 4
struct route_params {
    int n;
    struct {
        const char *name;      /* points into the pattern, name_len bytes, no ':' */
        size_t name_len;
        const char *value;     /* points into the path, len bytes */
        size_t len;
    } p[ROUTE_MAX_PARAMS];
};

enum route_result { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_METHOD_NOT_ALLOWED };

/* Match `path` (no query string, NUL-terminated) against n routes. On ROUTE_FOUND
 * *out and *params are set; on ROUTE_METHOD_NOT_ALLOWED *allowed holds the union of
 * the methods of every route whose path matched. */
MUSTCHECK enum route_result router_match(const struct route *routes, size_t n, unsigned method,
                               const char *path, const struct route **out,
                               struct route_params *params, unsigned *allowed);

/* Find a parameter by name; returns its value length or -1 when absent. */
MUSTCHECK int route_param(const struct route_params *params, const char *name, const char **value);

/* "GET, POST, ..." for an Allow header. Returns the length written. */
size_t router_allow_header(unsigned methods, char *buf, size_t len);

/* Look up key in a raw query string ("a=1&b=x%20y"), percent-decoding the value
 * ('+' is a space) into buf. Returns the value length, or -1 when the key is
 * absent, malformed (bad escape, NUL) or longer than buflen-1. */
MUSTCHECK int url_query_get(const char *query, const char *key, char *buf, size_t buflen);

/* Method bit for a method name ("GET"...); HTTP_OTHER when unknown. */
unsigned http_method_from_name(const char *name);
const char *http_method_name(unsigned method);

#endif
