/* net/proxy: owns the parsed TRUST_PROXY setting and the client-address rule built on
 * it (Express's proxy-addr: the first untrusted address counting from the socket peer
 * leftwards through X-Forwarded-For). No I/O, no globals. */
#include "net/proxy.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOPS 64
#define ADDR_MAX 64

static const struct {
    const char *name, *cidrs;
} named[] = {
    {"loopback", "127.0.0.0/8,::1/128"},
    {"linklocal", "169.254.0.0/16,fe80::/10"},
    {"uniquelocal", "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"},
};

int proxy_trust_parse(struct proxy_trust *t, const char *text, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    while (text && isspace((unsigned char)*text))
        text++;
    if (!text || !*text || strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0 ||
        strcasecmp(text, "off") == 0)
        return 0;
    if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0 || strcasecmp(text, "on") == 0) {
        t->hops = 1;
        return 0;
    }
    if (isdigit((unsigned char)*text)) {
        char *end;
        long v = strtol(text, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end == '\0') {
            if (v < 0 || v > MAX_HOPS) {
                snprintf(err, errlen, "TRUST_PROXY hop count must be from 0 to %d", MAX_HOPS);
                return -1;
            }
            t->hops = (int)v;
            return 0;
        }
    }
    /* A list: expand the names, then parse as CIDRs. */
    size_t cap = strlen(text) * 8 + 64;
    char *expanded = malloc(cap), *copy = strdup(text), *save = NULL;
    if (!expanded || !copy) {
        free(expanded);
        free(copy);
        snprintf(err, errlen, "out of memory reading TRUST_PROXY");
        return -1;
    }
    expanded[0] = '\0';
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        const char *item = tok;
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (strcasecmp(tok, named[i].name) == 0)
                item = named[i].cidrs;
        strcat(expanded, expanded[0] ? "," : "");
        strcat(expanded, item);
    }
    free(copy);
    char why[160];
    int rc = cidr_list_parse(&t->cidrs, expanded, why, sizeof why);
    free(expanded);
    if (rc < 0 || t->cidrs.n == 0) {
        cidr_list_free(&t->cidrs);
        snprintf(err, errlen, "TRUST_PROXY must be true, false, a hop count or a list of proxy "
                              "addresses/CIDRs%s%s", rc < 0 ? ": " : "", rc < 0 ? why : "");
        return -1;
    }
    return 0;
}

void proxy_trust_free(struct proxy_trust *t)
{
    cidr_list_free(&t->cidrs);
    memset(t, 0, sizeof *t);
}

static bool trusted(const struct proxy_trust *t, const char *addr, int index)
{
    if (t->cidrs.n)
        return cidr_is_address(addr) && cidr_list_match(&t->cidrs, addr);
    return index < t->hops;
}

void proxy_client_addr(const struct proxy_trust *t, const char *peer, const char *xff, char *buf,
                       size_t len)
{
    snprintf(buf, len, "%s", peer ? peer : "");
    if ((!t->hops && !t->cidrs.n) || !xff || !trusted(t, buf, 0))
        return;
    /* Walk the list from its right end. */
    const char *end = xff + strlen(xff);
    for (int index = 1; end > xff; index++) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        end = start > xff ? start - 1 : xff;
        if (a == b) {
            index--; /* an empty item is no hop */
            continue;
        }
        char addr[ADDR_MAX];
        if ((size_t)(b - a) >= sizeof addr)
            return; /* not an address: keep the hop that reported it */
        memcpy(addr, a, (size_t)(b - a));
        addr[b - a] = '\0';
        if (!cidr_is_address(addr))
            return;
        snprintf(buf, len, "%s", addr);
        if (!trusted(t, addr, index))
            return;
    }
}
