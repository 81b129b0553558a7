/* events: integration events published on Redis pub/sub, and the `notify` channel
 * subscribed to (SPEC section 6). Two hiredis async connections on the loop: one
 * for PUBLISH (and later other commands), one dedicated to SUBSCRIBE. Both
 * reconnect with capped exponential backoff; the subscriber resubscribes.
 * REDIS_URL "" runs without Redis: events are counted as dropped.
 * While Redis is down, events wait in a bounded in-memory queue (oldest dropped
 * past the bound, counted) and are published once it is back. Publishing never
 * blocks and never fails the caller. */
#ifndef IDX_EVENTS_EVENTS_H
#define IDX_EVENTS_EVENTS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

struct event_base;
struct events;
struct resolver;

/* A decoded `<prefix>notify` message (strings NUL-terminated, owned by the decoder
 * result and valid only during the callback). */
struct notify_msg {
    long long organization_id;
    bool has_user_id;
    long long user_id;
    const char *routing_type;
    const char *title;
    const char *message;
    const char *idempotency_key;    /* NULL when absent */
};

struct events_opts {
    const char *redis_url;          /* redis://[:password@]host[:port][/db]; "" = disabled */
    const char *prefix;             /* channel prefix, e.g. "verifywise:integrations:" */
    size_t max_queue;               /* events kept while Redis is down (0 = 10000) */
    const char *sentinels;          /* "host:port,..." or NULL/"": the master comes from them */
    const char *sentinel_master;    /* the master's name at the Sentinels */
    struct resolver *resolver;      /* borrowed; NULL: events owns one reading /etc/hosts */
    void (*on_notify)(const struct notify_msg *m, void *arg);  /* may be NULL */
    void *arg;
};

struct events_stats {
    uint64_t published;             /* PUBLISH acknowledged by Redis */
    uint64_t dropped;               /* lost: disabled, queue overflow, or encode failure */
    uint64_t queued;                /* waiting now */
    uint64_t notify_received;
    uint64_t notify_malformed;
};

/* Returns NULL with a reason in err (e.g. an unparsable REDIS_URL or REDIS_SENTINELS,
 * naming the variable but not the password). Host names are resolved asynchronously
 * before every connection attempt; an unresolvable name is retried, not an error. */
MUSTCHECK struct events *events_new(struct event_base *base, const struct events_opts *opts, char *err,
                          size_t errlen);
void events_free(struct events *e);

/* Publish event `type` (e.g. "llm_key.created") on <prefix><type> as a msgpack map
 * {v:1, type, id (unique string), time (ms since epoch), organization_id, tenant,
 * actor_user_id (nil when actor <= 0), data}. `data` is borrowed: a JSON object whose
 * values are converted (string->str, integer->int, real->float64, bool, null->nil,
 * arrays and objects recursively). Callers never put a secret in data. */
void events_publish(struct events *e, const char *type, long long organization_id,
                    const char *tenant, long long actor_user_id, const json_t *data);

/* A counter shared by every instance (rate limits): INCR `key` on the publisher
 * link, giving it an expiry of ttl_ms when it has none, in one EVAL. cb gets the new
 * count and the key's remaining time to live in ms, with ok true; or ok false (count
 * and ttl 0) when Redis is disabled, not connected, refuses the command, or the link
 * dies before the reply. cb runs exactly once and never inside events_incr (from the
 * loop, or from events_free with ok false). Returns 0, or -1 when out of memory (cb
 * will not run). */
typedef void (*events_incr_cb)(long long count, long long ttl_ms, bool ok, void *arg);
MUSTCHECK int events_incr(struct events *e, const char *key, long long ttl_ms, events_incr_cb cb, void *arg);

/* "disabled", "connecting", "up" or "down" (for /readyz), for the publisher link. */
const char *events_state(const struct events *e);
bool events_subscribed(const struct events *e);
/* "address:port" of the Redis server the publisher is (or last was) on, "" before. */
const char *events_server(const struct events *e);
/* Times the publisher connected to another server than the previous one. */
uint64_t events_failovers(const struct events *e);
void events_get_stats(const struct events *e, struct events_stats *out);

#endif
