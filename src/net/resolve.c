/* net/resolve: owns the evdns base, the in-memory copy of the hosts file (re-read when
 * it changes) and the pending lookups. Each request is one of:
 *   answered at once (numeric, hosts file, localhost): its result waits in the request
 *     and a zero-delay event delivers it from the loop;
 *   waiting on evdns: the evdns callback stores the result and activates the same
 *     event (or frees the request when it was cancelled meanwhile).
 * Reading the hosts file (a stat per lookup, a read when it changed) is the one
 * file-system access on the lookup path: a small local file, as libc does. */
#include "net/resolve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOSTS_MAX_BYTES (1024 * 1024)
#define NAME_MAX_LEN 253

struct resolve_req {
    struct resolver *r;
    struct resolve_req *prev, *next;   /* pending list */
    resolve_cb cb;
    void *arg;
    struct evdns_getaddrinfo_request *dns;   /* non-NULL while evdns holds it */
    bool cancelled;                    /* evdns still holds it: its callback frees */
    struct event *done;                /* delivers the result from the loop */
    struct resolve_addr addrs[RESOLVE_MAX_ADDRS];
    int n;
    char error[160];
    char name[];
};

struct resolver {
    struct event_base *base;
    struct evdns_base *dns;
    char *hosts_path;
    char *hosts;                       /* file contents, NUL-terminated; NULL if unreadable */
    bool hosts_seen;                   /* identity below is valid */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct resolve_req *pending;
    int zombies;                       /* cancelled while evdns held them, not yet called back */
    bool orphaned;                     /* resolver_free ran: the last zombie frees the rest */
    struct resolver_stats stats;
};

static void resolver_destroy(struct resolver *r);

/* From the loop, outside any evdns callback. */
static void final_free_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolver_destroy(arg);
}

/* ---- hosts file ------------------------------------------------------------ */

static void hosts_refresh(struct resolver *r)
{
    struct stat st;
    if (stat(r->hosts_path, &st) != 0) {
        free(r->hosts);
        r->hosts = NULL;
        r->hosts_seen = false;
        return;
    }
    if (r->hosts_seen && st.st_dev == r->dev && st.st_ino == r->ino && st.st_size == r->size &&
        st.st_mtim.tv_sec == r->mtime.tv_sec && st.st_mtim.tv_nsec == r->mtime.tv_nsec)
        return;
    free(r->hosts);
    r->hosts = NULL;
    r->hosts_seen = true;
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    r->size = st.st_size;
    r->mtime = st.st_mtim;
    if (st.st_size > HOSTS_MAX_BYTES)
        return;
    int fd = open(r->hosts_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (buf) {
        buf[got] = '\0';
        r->hosts = buf;
    }
}

static bool add_addr(struct resolve_req *q, int family, const void *bin)
{
    if (q->n >= RESOLVE_MAX_ADDRS)
        return false;
    char text[RESOLVE_ADDRSTRLEN];
    if (!inet_ntop(family, bin, text, sizeof text))
        return true;
    for (int i = 0; i < q->n; i++)
        if (strcmp(q->addrs[i].text, text) == 0)
            return true;
    q->addrs[q->n].family = family;
    memcpy(q->addrs[q->n].text, text, sizeof text);
    q->n++;
    return true;
}

/* Parse one textual address (IPv4 or IPv6) into q. Returns true when it was one. */
static bool add_numeric(struct resolve_req *q, const char *s)
{
    unsigned char bin[16];
    if (inet_pton(AF_INET, s, bin) == 1)
        return add_addr(q, AF_INET, bin), true;
    if (inet_pton(AF_INET6, s, bin) == 1)
        return add_addr(q, AF_INET6, bin), true;
    return false;
}

/* Every line of the hosts file naming q->name (canonical name or alias), in order. */
static void hosts_lookup(struct resolver *r, struct resolve_req *q)
{
    hosts_refresh(r);
    if (!r->hosts)
        return;
    const char *p = r->hosts;
    while (*p) {
        size_t len = strcspn(p, "\n");
        size_t content = strcspn(p, "#\n");
        char line[1024];
        if (content >= sizeof line)
            content = sizeof line - 1;
        memcpy(line, p, content);
        line[content] = '\0';
        p += len + (p[len] == '\n');
        char *save = NULL;
        char *addr = strtok_r(line, " \t\r", &save);
        if (!addr)
            continue;
        for (char *tok; (tok = strtok_r(NULL, " \t\r", &save));)
            if (strcasecmp(tok, q->name) == 0) {
                add_numeric(q, addr);
                break;
            }
    }
}

static bool is_localhost(const char *name)
{
    size_t l = strlen(name);
    if (l && name[l - 1] == '.')
        l--;
    return (l == 9 && strncasecmp(name, "localhost", 9) == 0) ||
           (l > 10 && strncasecmp(name + l - 10, ".localhost", 10) == 0);
}

/* ---- requests --------------------------------------------------------------- */

static void req_unlink(struct resolve_req *q)
{
    struct resolver *r = q->r;
    if (q->prev)
        q->prev->next = q->next;
    else if (r->pending == q)
        r->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static void req_free(struct resolve_req *q)
{
    if (q->done)
        event_free(q->done);
    free(q);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct resolve_req *q = arg;
    req_unlink(q);
    if (q->n == 0 && !q->error[0])
        snprintf(q->error, sizeof q->error, "no IPv4 or IPv6 address");
    q->cb(q->addrs, q->n, q->n ? NULL : q->error, q->arg);
    req_free(q);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct resolve_req *q = arg;
    q->dns = NULL;
    if (q->cancelled) {   /* unlinked already; nobody waits */
        struct resolver *r = q->r;
        if (res)
            evutil_freeaddrinfo(res);
        req_free(q);
        if (--r->zombies == 0 && r->orphaned) {
            struct timeval now = {0, 0};
            if (event_base_once(r->base, -1, EV_TIMEOUT, final_free_cb, r, &now) != 0)
                resolver_destroy(r);   /* last resort; evdns is done with this request */
        }
        return;
    }
    if (result == 0) {
        for (struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET)
                add_addr(q, AF_INET, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr);
            else if (ai->ai_family == AF_INET6)
                add_addr(q, AF_INET6, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr);
        }
    } else {
        snprintf(q->error, sizeof q->error, "%s", evutil_gai_strerror(result));
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (q->n)
        q->r->stats.dns++;
    else
        q->r->stats.failed++;
    event_active(q->done, EV_TIMEOUT, 0);
}

struct resolve_req *resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *arg)
{
    if (!r || !name || !cb)
        return NULL;
    size_t nl = strlen(name);
    struct resolve_req *q = calloc(1, sizeof *q + nl + 1);
    if (!q)
        return NULL;
    memcpy(q->name, name, nl + 1);
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    if (!(q->done = event_new(r->base, -1, 0, done_cb, q))) {
        free(q);
        return NULL;
    }
    q->next = r->pending;
    if (r->pending)
        r->pending->prev = q;
    r->pending = q;

    bool bad = nl == 0 || nl > NAME_MAX_LEN;
    for (size_t i = 0; i < nl && !bad; i++)
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f || name[i] == '/' || name[i] == ',')
            bad = true;
    if (bad) {
        snprintf(q->error, sizeof q->error, "not a host name");
        r->stats.failed++;
    } else if (add_numeric(q, name)) {
        r->stats.numeric++;
    } else {
        hosts_lookup(r, q);
        if (q->n) {
            r->stats.hosts_file++;
        } else if (is_localhost(name)) {
            struct in_addr v4 = {htonl(INADDR_LOOPBACK)};
            add_addr(q, AF_INET, &v4);
            add_addr(q, AF_INET6, &in6addr_loopback);
            r->stats.hosts_file++;
        } else {
            struct evutil_addrinfo hints;
            memset(&hints, 0, sizeof hints);
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_protocol = IPPROTO_TCP;
            /* evdns may answer inside this call: dns_cb then activates q->done. */
            q->dns = (struct evdns_getaddrinfo_request *)1;
            struct evdns_getaddrinfo_request *d = evdns_getaddrinfo(r->dns, name, NULL, &hints, dns_cb, q);
            if (q->dns)   /* still waiting: dns_cb has not run */
                q->dns = d;
            return q;
        }
    }
    event_active(q->done, EV_TIMEOUT, 0);
    return q;
}

void resolve_cancel(struct resolve_req *q)
{
    if (!q)
        return;
    req_unlink(q);
    if (q->dns) {
        q->cancelled = true;
        q->r->zombies++;
        evdns_getaddrinfo_cancel(q->dns);   /* dns_cb frees q, now or later */
        return;
    }
    event_del(q->done);
    req_free(q);
}

/* ---- resolver --------------------------------------------------------------- */

struct resolver *resolver_new(struct event_base *base, const char *hosts_file, char *err, size_t errlen)
{
    struct resolver *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "resolver: out of memory");
        return NULL;
    }
    r->base = base;
    r->hosts_path = strdup(hosts_file && *hosts_file ? hosts_file : "/etc/hosts");
    /* No flags: resolv.conf is read below without its hosts-file part, which is ours. */
    r->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!r->hosts_path || !r->dns) {
        snprintf(err, errlen, "resolver: cannot create the DNS resolver");
        resolver_free(r);
        return NULL;
    }
    /* Errors (no resolv.conf) leave evdns with its default nameserver, 127.0.0.1. */
    (void)evdns_base_resolv_conf_parse(r->dns, DNS_OPTION_SEARCH | DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
                                       "/etc/resolv.conf");
    (void)evdns_base_set_option(r->dns, "timeout:", "2");
    (void)evdns_base_set_option(r->dns, "attempts:", "2");
    return r;
}

/* evdns answers a cancelled lookup from the loop, and that answer still uses the evdns
 * base: with cancelled lookups outstanding, the last one's answer frees the resolver. */
void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    while (r->pending)
        resolve_cancel(r->pending);
    if (r->zombies > 0) {
        r->orphaned = true;
        return;
    }
    resolver_destroy(r);
}

static void resolver_destroy(struct resolver *r)
{
    if (r->dns)
        evdns_base_free(r->dns, 0);
    free(r->hosts_path);
    free(r->hosts);
    free(r);
}

void resolver_get_stats(const struct resolver *r, struct resolver_stats *out)
{
    memset(out, 0, sizeof *out);
    if (r)
        *out = r->stats;
}
