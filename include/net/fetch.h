/* net/fetch: outbound HTTP for every integration, over one libcurl multi handle
 * driven by the event loop (socket and timer callbacks; nothing blocks).
 *
 * Every transfer: http and https only, no redirects, a total and a connect
 * timeout, a response-size cap (aborted in the write callback), TLS verification
 * unless the request says insecure, a User-Agent naming integrationsd, and the
 * SSRF guard: every address is checked against the deny list (plus 0.0.0.0/8 and
 * ::/128, always) before a socket connects to it, and the connected address again
 * before a byte of the request is sent. Concurrency limits: fetch_client_set_limits.
 *
 * Ownership: fetch_start copies everything it needs from the request. The
 * callback runs exactly once, always from the loop (never inside fetch_start),
 * unless fetch_cancel was called first; after the callback or the cancel the
 * handle is gone. */
#ifndef IDX_NET_FETCH_H
#define IDX_NET_FETCH_H
#include <stdbool.h>
#include <stddef.h>
#include "util/compiler.h"

struct event_base;
struct fetch_client;
struct fetch;

enum fetch_outcome {
    FETCH_OK = 0,        /* an HTTP response arrived (any status: see status) */
    FETCH_DNS,           /* the host name did not resolve */
    FETCH_CONNECT,       /* connection refused or unreachable */
    FETCH_TIMEOUT,       /* connect or total timeout */
    FETCH_TLS,           /* TLS handshake or certificate failure */
    FETCH_TOO_LARGE,     /* the response exceeded max_response */
    FETCH_DENIED,        /* the connected address is in OUTBOUND_DENY_CIDRS */
    FETCH_BAD_URL,       /* not an http(s) URL, or malformed */
    FETCH_RESET,         /* connection reset / closed before a complete response */
    FETCH_ERROR,         /* anything else (out of memory, protocol error) */
    FETCH_BUSY,          /* not started: too many calls in flight (fetch_client_set_limits) */
};

struct fetch_request {
    const char *method;              /* "GET" (default when NULL), "POST", ... */
    const char *url;
    const char *const *headers;      /* "Name: value" lines, NULL-terminated, or NULL */
    const char *body;                /* request body or NULL */
    size_t body_len;
    const char *username;            /* HTTP basic auth when non-NULL */
    const char *password;
    long timeout_ms;                 /* total; 0 = 30000 */
    long connect_timeout_ms;         /* 0 = 10000 (never above timeout_ms) */
    size_t max_response;             /* 0 = 8 MiB */
    bool insecure;                   /* skip TLS verification (verify_ssl false) */
    const char *target;              /* label for metrics/logs: "github", "slack", ... */
    long long org_id;                /* organization the call is for (limits); 0 = none */
};

struct fetch_response {
    enum fetch_outcome outcome;
    long status;                     /* HTTP status when outcome == FETCH_OK, else 0 */
    const char *body;                /* NUL-terminated, body_len bytes; borrowed */
    size_t body_len;
    const char *error;               /* short human-readable reason; never a secret */
    double total_ms;
};

/* Last value of a response header (case-insensitive), or NULL. Valid in the callback. */
const char *fetch_response_header(const struct fetch_response *r, const char *name);

typedef void (*fetch_cb)(const struct fetch_response *res, void *arg);

/* deny_cidrs: comma-separated IPv4/IPv6 CIDRs ("169.254.0.0/16,fe80::/10"), may be "".
 * Returns NULL with a reason in err (e.g. a malformed CIDR, naming it). */
MUSTCHECK struct fetch_client *fetch_client_new(struct event_base *base, const char *deny_cidrs,
                                      const char *user_agent, char *err, size_t errlen);
/* Cancels every transfer (no callbacks) and frees the client. */
void fetch_client_free(struct fetch_client *c);

/* Start a transfer. Returns a handle for fetch_cancel, or NULL when the request
 * could not even be set up; even then cb runs (from the loop) with FETCH_BAD_URL or
 * FETCH_ERROR, so callers have one completion path. */
struct fetch *fetch_start(struct fetch_client *c, const struct fetch_request *req, fetch_cb cb,
                          void *arg);
/* Abort a transfer in flight and free it; its callback will not run. Safe to call
 * from any code except libcurl's own callbacks. */
void fetch_cancel(struct fetch *f);

int fetch_in_flight(const struct fetch_client *c);

/* At most max_total transfers in flight, and max_per_org for one organization
 * (0 = no limit). Past either, fetch_start completes with FETCH_BUSY. */
void fetch_client_set_limits(struct fetch_client *c, int max_total, int max_per_org);
/* Told of every finished call: its target ("github", ...; "other" when unnamed) and
 * fetch_outcome_name of its outcome. Set by app to feed /metrics (net/ knows no ops/). */
typedef void (*fetch_observer_fn)(const char *target, const char *outcome);
void fetch_client_set_observer(struct fetch_client *c, fetch_observer_fn fn);
/* Would a transfer for org_id be admitted now? */
bool fetch_admits(const struct fetch_client *c, long long org_id);

/* Name of an outcome ("ok", "dns", "connect", ...) for logs and metrics. */
const char *fetch_outcome_name(enum fetch_outcome o);

#endif
