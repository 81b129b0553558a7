/* net/resolve: asynchronous host-name resolution on the event loop (libevent evdns),
 * for every (re)connect to PostgreSQL and Redis and for anything else that must turn a
 * name into addresses without blocking the loop.
 *
 * A name is looked up in this order: a numeric IPv4/IPv6 address is returned as is;
 * then the hosts file (RESOLVER_HOSTS_FILE, /etc/hosts by default), re-read whenever
 * its identity, size or modification time changed since the last lookup, so a name
 * moved there is seen by the next lookup; then "localhost" / "*.localhost" (RFC 6761)
 * answer 127.0.0.1 and ::1; then DNS through evdns (nameservers from
 * /etc/resolv.conf). Addresses come back in the order found (hosts-file line order,
 * DNS answer order), without duplicates, at most RESOLVE_MAX_ADDRS.
 *
 * The callback runs exactly once, always from the loop, never inside resolve_start,
 * unless the request is cancelled first (then never). */
#ifndef IDX_NET_RESOLVE_H
#define IDX_NET_RESOLVE_H
#include <netinet/in.h>
#include <stddef.h>
#include "util/compiler.h"

#define RESOLVE_MAX_ADDRS 16
#define RESOLVE_ADDRSTRLEN 46   /* INET6_ADDRSTRLEN */

struct event_base;
struct resolver;
struct resolve_req;

struct resolve_addr {
    int family;                     /* AF_INET or AF_INET6 */
    char text[RESOLVE_ADDRSTRLEN];  /* numeric form, e.g. "127.0.0.2" or "::1" */
};

/* n > 0 on success; n == 0 with a reason in `error` (static or owned by the request,
 * valid during the call) otherwise. */
typedef void (*resolve_cb)(const struct resolve_addr *addrs, int n, const char *error, void *arg);

/* hosts_file NULL or "" means /etc/hosts. A missing hosts file is not an error (it is
 * read again later). Returns NULL with a reason in err. */
MUSTCHECK struct resolver *resolver_new(struct event_base *base, const char *hosts_file, char *err, size_t errlen);
/* Cancels every pending request (their callbacks never run). When evdns still owes an
 * answer to a cancelled DNS lookup, what remains is freed from the loop once it comes
 * (libevent delivers it in the next loop iteration). */
void resolver_free(struct resolver *r);

/* Start resolving `name`. Returns the request handle (valid until its callback has
 * returned or it is cancelled), or NULL when out of memory (cb never runs). */
MUSTCHECK struct resolve_req *resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *arg);
/* The callback will not run. q may be NULL. Never call it for a request whose
 * callback has already started. */
void resolve_cancel(struct resolve_req *q);

/* Lookups served so far, by source (for tests and metrics). */
struct resolver_stats {
    unsigned long long numeric, hosts_file, dns, failed;
};
void resolver_get_stats(const struct resolver *r, struct resolver_stats *out);

#endif
