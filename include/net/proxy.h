/* net/proxy: TRUST_PROXY with Express's semantics (proxy-addr): which hops of
 * X-Forwarded-For are trusted, and so which address is the client's. Pure. */
#ifndef IDX_NET_PROXY_H
#define IDX_NET_PROXY_H
#include <stddef.h>

#include "net/cidr.h"
#include "util/compiler.h"

struct proxy_trust {
    int hops;                /* trust this many hops from the right (0: TRUST_PROXY off) */
    struct cidr_list cidrs;  /* or trust exactly these proxies (when cidrs.n > 0) */
};

/* Parse TRUST_PROXY: "false"/"0"/"" (off), "true" (one hop: the right-most address), a
 * hop count, or a comma-separated list of proxy addresses/CIDRs, which may use Express's
 * names loopback, linklocal and uniquelocal. Returns 0, or -1 with a reason in err. */
MUSTCHECK int proxy_trust_parse(struct proxy_trust *t, const char *text, char *err, size_t errlen);
void proxy_trust_free(struct proxy_trust *t);

/* The client address: walk [peer, X-Forwarded-For entries from right to left] and take
 * the first address that is not trusted (all trusted: the left-most). An entry that is
 * not an IP address ends the walk at the hop that reported it. xff may be NULL (or the
 * values of several X-Forwarded-For headers joined with commas). Writes into buf. */
void proxy_client_addr(const struct proxy_trust *t, const char *peer, const char *xff, char *buf,
                       size_t len);

#endif
