/* net/cidr: parsing and matching of IPv4/IPv6 CIDR lists (the outbound deny list), and the
 * test for an address in text form. Pure. */
#ifndef IDX_NET_CIDR_H
#define IDX_NET_CIDR_H
#include <stdbool.h>
#include <stddef.h>
#include "util/compiler.h"

struct cidr {
    int family;                /* AF_INET or AF_INET6 */
    unsigned char addr[16];    /* network address, host bits cleared */
    int prefix;                /* 0..32 or 0..128 */
};

struct cidr_list {
    struct cidr *items;
    size_t n;
};

/* Parse "a.b.c.d/n, x:y::/m" (spaces and empty items ignored; a bare address is a
 * /32 or /128). Returns 0, or -1 with the offending item quoted in err. */
MUSTCHECK int cidr_list_parse(struct cidr_list *out, const char *text, char *err, size_t errlen);
void cidr_list_free(struct cidr_list *l);
/* Does the textual address ip (as libcurl reports it; IPv4-mapped IPv6 counts as
 * IPv4) fall in any range? An unparsable address counts as a match (fail closed). */
bool cidr_list_match(const struct cidr_list *l, const char *ip);
/* Is s an IPv4 or IPv6 address in text form (no brackets, no zone, no prefix)? */
bool cidr_is_address(const char *s);

#endif
