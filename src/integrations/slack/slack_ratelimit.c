/* integrations/slack_ratelimit: owns the webhook-creation counters: the Redis one
 * (events_incr, key <prefix>ratelimit:slack_webhook_create:<ip>) and the in-process
 * fallback table (fixed size, static storage, expired or oldest slot reused).
 * A check waits at most REDIS_WAIT_MS for Redis, then counts locally; the Redis
 * answer that comes later is only released. */
#include "integrations/slack_ratelimit.h"

#include "net/proxy.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "events/events.h"
#include "http/reply.h"
#include "log.h"
#include "util/clock.h"

#define REDIS_WAIT_MS 1000
#define LOCAL_SLOTS 4096
#define IP_MAX 64

struct local_slot {
    char ip[IP_MAX];
    long long count;
    long long window_end_ms;
};

static struct local_slot local_table[LOCAL_SLOTS];

/* One check: owned jointly by the timer side and the Redis side; freed when both are
 * done (answered, and the Redis callback has run). */
struct rl_check {
    struct http_req *r;
    slack_ratelimit_done done;
    struct event *timer;
    bool answered;
    bool redis_pending;
    char ip[IP_MAX];
};

/* Count in the in-process table; returns the count and the ms left in the window. */
static long long local_count(const char *ip, long long *ttl_ms)
{
    long long now = (long long)clock_mono_ms();
    struct local_slot *hit = NULL, *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < LOCAL_SLOTS; i++) {
        struct local_slot *s = &local_table[i];
        if (s->ip[0] && strcmp(s->ip, ip) == 0) {
            hit = s;
            break;
        }
        if (!free_slot && (!s->ip[0] || s->window_end_ms <= now))
            free_slot = s;
        if (!oldest || s->window_end_ms < oldest->window_end_ms)
            oldest = s;
    }
    if (hit && hit->window_end_ms <= now)
        hit->count = 0;
    if (!hit) {
        hit = free_slot ? free_slot : oldest;
        snprintf(hit->ip, sizeof hit->ip, "%s", ip);
        hit->count = 0;
    }
    if (hit->count == 0)
        hit->window_end_ms = now + SLACK_CREATE_WINDOW_MS;
    hit->count++;
    *ttl_ms = hit->window_end_ms - now;
    return hit->count;
}

void slack_ratelimit_client_ip(const struct http_req *r, char *buf, size_t len)
{
    char peer[IP_MAX], xff[1024];
    http_req_peer(r, peer, sizeof peer);
    const struct proxy_trust *t = &r->app->cfg.proxy_trust;
    int has = (t->hops || t->cidrs.n) ? http_req_header_all(r, "X-Forwarded-For", xff, sizeof xff) : 0;
    /* Too many hops to hold: keep the peer rather than trust a truncated list. */
    proxy_client_addr(t, peer, has > 0 ? xff : NULL, buf, len);
    if (!buf[0])
        snprintf(buf, len, "unknown");
}

void slack_ratelimit_reply(struct http_req *r, long retry_after_s)
{
    char ra[24];
    snprintf(ra, sizeof ra, "%ld", retry_after_s > 0 ? retry_after_s : 1);
    const char *hdrs[] = {"Retry-After", ra, NULL};
    http_req_send(r, 429, json_pack("{s:s}", "error", SLACK_RATE_MESSAGE), hdrs);
}

static void check_release(struct rl_check *c)
{
    if (!c->answered || c->redis_pending)
        return;
    if (c->timer)
        event_free(c->timer);
    http_req_unref(c->r);
    free(c);
}

static void check_answer(struct rl_check *c, long long count, long long ttl_ms)
{
    c->answered = true;
    if (c->timer)
        evtimer_del(c->timer);
    if (http_req_alive(c->r)) {
        long ra = (long)((ttl_ms + 999) / 1000);
        c->done(c->r, count <= SLACK_CREATE_LIMIT, ra > 0 ? ra : 1);
    }
}

static void on_incr(long long count, long long ttl_ms, bool ok, void *arg)
{
    struct rl_check *c = arg;
    c->redis_pending = false;
    if (!c->answered) {
        if (!ok) {
            long long ttl;
            count = local_count(c->ip, &ttl);
            ttl_ms = ttl;
        }
        check_answer(c, count, ttl_ms);
    }
    check_release(c);
}

static void on_redis_slow(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rl_check *c = arg;
    if (c->answered)
        return;
    log_warn("slack rate limit: no answer from Redis within %d ms; counting in this process", REDIS_WAIT_MS);
    long long ttl;
    long long count = local_count(c->ip, &ttl);
    check_answer(c, count, ttl);
    check_release(c);
}

void slack_ratelimit_count(struct http_req *r, slack_ratelimit_done done)
{
    struct rl_check *c = calloc(1, sizeof *c);
    if (!c) {
        reply_internal(r);
        return;
    }
    c->done = done;
    slack_ratelimit_client_ip(r, c->ip, sizeof c->ip);
    char key[256];
    snprintf(key, sizeof key, "%sratelimit:slack_webhook_create:%s", r->app->cfg.redis_channel_prefix, c->ip);
    c->timer = evtimer_new(r->app->base, on_redis_slow, c);
    if (!c->timer) {
        free(c);
        reply_internal(r);
        return;
    }
    c->r = http_req_ref(r);
    http_req_hold(r);
    c->redis_pending = true;
    if (events_incr(r->app->events, key, SLACK_CREATE_WINDOW_MS, on_incr, c) != 0) {
        event_free(c->timer);
        http_req_unref(c->r);
        free(c);
        reply_internal(r);
        return;
    }
    struct timeval tv = {REDIS_WAIT_MS / 1000, (REDIS_WAIT_MS % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}
