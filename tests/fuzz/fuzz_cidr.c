/* tests/fuzz/fuzz_cidr: cidr_list_parse on an arbitrary deny list and cidr_list_match
 * of arbitrary addresses against it.
 * Input: "LIST\nIP\nIP..." (NUL bytes end a part, as in the C strings the service has).
 * Properties: a parsed item has a valid family and prefix and no host bits set; the list
 * printed back ("addr/prefix,...") parses to the same items; every item's network
 * address (and, for IPv4, its IPv4-mapped IPv6 form) matches the list; an unparsable
 * address always matches (fail closed); an empty list matches only unparsable
 * addresses; a failed parse leaves an empty list and a NUL-terminated reason. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "net/cidr.h"

static bool host_bits_clear(const struct cidr *c)
{
    int nbytes = c->family == AF_INET ? 4 : 16;
    for (int i = 0; i < 16; i++) {
        int bits = c->prefix - i * 8;
        unsigned char mask = i >= nbytes || bits <= 0 ? 0 : bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if (c->addr[i] & ~mask)
            return false;
    }
    return true;
}

static void check_list(const struct cidr_list *l)
{
    FUZZ_ASSERT((l->n == 0) == (l->items == NULL));
    size_t cap = l->n * 64 + 1;
    char *text = malloc(cap);
    FUZZ_ASSERT(text != NULL);
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        const struct cidr *c = &l->items[i];
        FUZZ_ASSERT(c->family == AF_INET || c->family == AF_INET6);
        FUZZ_ASSERT(c->prefix >= 0 && c->prefix <= (c->family == AF_INET ? 32 : 128));
        FUZZ_ASSERT(host_bits_clear(c));
        char a[INET6_ADDRSTRLEN], mapped[INET6_ADDRSTRLEN + 8];
        FUZZ_ASSERT(inet_ntop(c->family, c->addr, a, sizeof a) != NULL);
        FUZZ_ASSERT(cidr_list_match(l, a));
        if (c->family == AF_INET) {
            snprintf(mapped, sizeof mapped, "::ffff:%s", a);
            FUZZ_ASSERT(cidr_list_match(l, mapped));
        } else {
            snprintf(mapped, sizeof mapped, "[%s]", a);
            FUZZ_ASSERT(cidr_list_match(l, mapped));
        }
        used += (size_t)snprintf(text + used, cap - used, "%s%s/%d", i ? "," : "", a, c->prefix);
        FUZZ_ASSERT(used < cap);
    }
    struct cidr_list again;
    char err[160];
    FUZZ_ASSERT(cidr_list_parse(&again, text, err, sizeof err) == 0);
    FUZZ_ASSERT(again.n == l->n);
    for (size_t i = 0; i < l->n; i++)
        FUZZ_ASSERT(again.items[i].family == l->items[i].family && again.items[i].prefix == l->items[i].prefix &&
                    memcmp(again.items[i].addr, l->items[i].addr, 16) == 0);
    cidr_list_free(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024)
        return 0;
    const uint8_t *part[9];
    size_t len[9];
    size_t n = fuzz_split(data, size, '\n', part, len, 9);

    char *text = fuzz_strndup(part[0], len[0]);
    struct cidr_list l;
    static const size_t errlens[] = {200, 8, 1};
    char err[200];
    int rc = 0;
    for (size_t i = 0; i < 3; i++) {
        memset(err, 'x', sizeof err);
        int r = cidr_list_parse(&l, text, err, errlens[i]);
        fuzz_check_cstr(err, errlens[i]);
        if (i == 0)
            rc = r;
        FUZZ_ASSERT(r == rc);
        if (r != 0) {
            FUZZ_ASSERT(r == -1 && l.items == NULL && l.n == 0);
            if (errlens[i] > 1)
                FUZZ_ASSERT(err[0] != '\0');
        } else if (i < 2) {
            cidr_list_free(&l);
        }
    }
    if (rc != 0) {
        FUZZ_ASSERT(cidr_list_parse(&l, text, NULL, 0) == -1);
        free(text);
        return 0;
    }
    check_list(&l);

    struct cidr_list empty = {NULL, 0};
    for (size_t i = 1; i < n; i++) {
        char *ip = fuzz_strndup(part[i], len[i]);
        bool m = cidr_list_match(&l, ip);
        bool e = cidr_list_match(&empty, ip);
        bool z = cidr_list_match(NULL, ip);
        FUZZ_ASSERT(e == z);
        if (e)               /* unparsable: fail closed everywhere */
            FUZZ_ASSERT(m);
        free(ip);
    }
    cidr_list_free(&l);
    free(text);
    return 0;
}
