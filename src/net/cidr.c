/* net/cidr: parsing and matching of IPv4/IPv6 CIDR lists (the outbound deny list).
 *
 * Owns nothing but the items array of a struct cidr_list (freed by cidr_list_free).
 * Pure: no I/O, no globals. Addresses are stored in network byte order with the
 * host bits cleared. IPv4-mapped IPv6 ("::ffff:a.b.c.d") is treated as IPv4 on
 * both sides: a mapped address is matched against the IPv4 ranges, and a range
 * written inside ::ffff:0:0/96 is stored as the equivalent IPv4 range. */
#include "net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Longest textual item we accept: a full IPv6 address with an embedded IPv4
 * address is 45 characters, plus "/128". */
#define CIDR_ITEM_MAX 64

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_err(char *err, size_t errlen, const char *item, size_t itemlen, const char *why)
{
    if (!err || errlen == 0)
        return;
    int shown = itemlen > CIDR_ITEM_MAX ? CIDR_ITEM_MAX : (int)itemlen;
    snprintf(err, errlen, "invalid CIDR \"%.*s%s\" (%s)", shown, item,
             itemlen > CIDR_ITEM_MAX ? "..." : "", why);
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static void clear_host_bits(unsigned char *addr, int nbytes, int prefix)
{
    for (int i = 0; i < nbytes; i++) {
        int bits = prefix - i * 8;
        if (bits >= 8)
            continue;
        if (bits <= 0)
            addr[i] = 0;
        else
            addr[i] &= (unsigned char)(0xff << (8 - bits));
    }
}

/* Parse a decimal prefix length in [0, max]. */
static int parse_prefix(const char *s, int max, int *out)
{
    if (*s == '\0')
        return -1;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* One trimmed, non-empty item of length len (not NUL-terminated). */
static int parse_item(struct cidr *out, const char *item, size_t len, char *err, size_t errlen)
{
    char buf[CIDR_ITEM_MAX + 1];
    if (len > CIDR_ITEM_MAX) {
        set_err(err, errlen, item, len, "too long");
        return -1;
    }
    memcpy(buf, item, len);
    buf[len] = '\0';

    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';

    memset(out, 0, sizeof *out);
    int max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        set_err(err, errlen, item, len, "not an IPv4 or IPv6 address");
        return -1;
    }

    out->prefix = max;
    if (slash && parse_prefix(slash + 1, max, &out->prefix) != 0) {
        set_err(err, errlen, item, len,
                max == 32 ? "prefix must be 0..32" : "prefix must be 0..128");
        return -1;
    }

    /* A range inside ::ffff:0:0/96 is an IPv4 range. */
    if (out->family == AF_INET6 && out->prefix >= 96 &&
        memcmp(out->addr, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }

    clear_host_bits(out->addr, out->family == AF_INET ? 4 : 16, out->prefix);
    return 0;
}

int cidr_list_parse(struct cidr_list *out, const char *text, char *err, size_t errlen)
{
    out->items = NULL;
    out->n = 0;
    if (err && errlen)
        err[0] = '\0';
    if (!text)
        return 0;

    /* Upper bound on the number of items: commas + 1. */
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        if (*p == ',')
            cap++;
    struct cidr *items = calloc(cap, sizeof *items);
    if (!items) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return -1;
    }

    size_t n = 0;
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (e > b) {
            if (parse_item(&items[n], b, (size_t)(e - b), err, errlen) != 0) {
                free(items);
                return -1;
            }
            n++;
        }
        if (*end == '\0')
            break;
        p = end + 1;
    }

    if (n == 0) {
        free(items);
        items = NULL;
    }
    out->items = items;
    out->n = n;
    return 0;
}

void cidr_list_free(struct cidr_list *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (full && memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((a[full] & mask) != net[full])
            return false;
    }
    return true;
}

bool cidr_list_match(const struct cidr_list *l, const char *ip)
{
    if (!ip)
        return true;

    /* Accept "[v6]" and strip an IPv6 zone ("fe80::1%eth0"). */
    char buf[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(ip);
    if (len >= 2 && ip[0] == '[' && ip[len - 1] == ']') {
        ip++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof buf)
        return true;
    memcpy(buf, ip, len);
    buf[len] = '\0';
    char *pct = strchr(buf, '%');
    if (pct)
        *pct = '\0';

    unsigned char addr[16];
    int family;
    if (inet_pton(AF_INET, buf, addr) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, buf, addr) == 1) {
        family = AF_INET6;
        if (memcmp(addr, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
            memmove(addr, addr + 12, 4);
            family = AF_INET;
        }
    } else {
        return true; /* fail closed */
    }

    if (!l)
        return false;
    for (size_t i = 0; i < l->n; i++) {
        const struct cidr *c = &l->items[i];
        if (c->family == family && prefix_equal(addr, c->addr, c->prefix))
            return true;
    }
    return false;
}

bool cidr_is_address(const char *s)
{
    unsigned char probe[16];
    return inet_pton(AF_INET, s, probe) == 1 || inet_pton(AF_INET6, s, probe) == 1;
}
