/* app_metrics: owns what /metrics samples from the modules: one small reader per series,
 * registered with ops/metrics at start-up in the order they are rendered, and the hooks
 * through which http/ and net/ report answers and outbound calls. The modules know nothing
 * of ops/metrics; ops/metrics knows nothing of them. */
#include "app_metrics.h"

#include <string.h>

#include "app.h"
#include "cache/read_cache.h"
#include "db/listener.h"
#include "db/pool.h"
#include "events/events.h"
#include "http/server.h"
#include "net/fetch.h"
#include "ops/metrics.h"

#define APP(arg) ((const struct app *)(arg))

static double db_size(void *a) { return db_pool_size(APP(a)->db); }
static double db_live(void *a) { return db_pool_live(APP(a)->db); }
static double db_queued(void *a) { return db_pool_queued(APP(a)->db); }
static double db_in_flight(void *a) { return db_pool_in_flight(APP(a)->db); }
static uint64_t db_dropped(void *a) { return db_pool_dropped(APP(a)->db); }
static const char *db_server(void *a) { return db_pool_server(APP(a)->db); }
static uint64_t db_failovers(void *a) { return db_pool_failovers(APP(a)->db); }
static double http_conns(void *a) { return http_server_connections(APP(a)->http); }
static double http_pending(void *a) { return http_server_pending(APP(a)->http); }
static double http_header_buf(void *a) { return (double)http_server_header_buffered(APP(a)->http); }
static double http_body_buf(void *a) { return (double)http_server_body_buffered(APP(a)->http); }
static double outbound_in_flight(void *a) { return fetch_in_flight(APP(a)->fetch); }
static double listen_up(void *a) { return listener_listening(APP(a)->listener); }
static uint64_t listen_reconnects(void *a) { return listener_reconnects(APP(a)->listener); }
static double redis_up(void *a) { return strcmp(events_state(APP(a)->events), "up") == 0; }
static const char *redis_server(void *a) { return events_server(APP(a)->events); }
static uint64_t redis_failovers(void *a) { return events_failovers(APP(a)->events); }

static struct read_cache_stats cache_stats(void *a)
{
    struct read_cache_stats cs;
    read_cache_stats(APP(a)->cache, &cs);
    return cs;
}
static double cache_bytes(void *a) { return (double)cache_stats(a).bytes; }
static double cache_budget(void *a) { return (double)cache_stats(a).budget; }
static double cache_entries(void *a) { return (double)cache_stats(a).entries; }
static uint64_t cache_hits(void *a) { return cache_stats(a).hits; }
static uint64_t cache_misses(void *a) { return cache_stats(a).misses; }
static uint64_t cache_stores(void *a) { return cache_stats(a).stores; }
static uint64_t cache_evictions(void *a) { return cache_stats(a).evictions; }
static uint64_t cache_invalidations(void *a) { return cache_stats(a).invalidations; }
static uint64_t cache_flushes(void *a) { return cache_stats(a).flushes; }

static struct events_stats ev_stats(void *a)
{
    struct events_stats es;
    events_get_stats(APP(a)->events, &es);
    return es;
}
static double ev_queued(void *a) { return (double)ev_stats(a).queued; }
static uint64_t ev_published(void *a) { return ev_stats(a).published; }
static uint64_t ev_dropped(void *a) { return ev_stats(a).dropped; }
static uint64_t notify_received(void *a) { return ev_stats(a).notify_received; }
static uint64_t notify_malformed(void *a) { return ev_stats(a).notify_malformed; }

static const struct {
    char kind; /* g: gauge, c: counter, i: info */
    const char *name, *labels, *help;
    double (*gauge)(void *);
    uint64_t (*counter)(void *);
    const char *(*info)(void *);
} series[] = {
#define G(n, h, f) {'g', n, NULL, h, f, NULL, NULL}
#define C(n, l, h, f) {'c', n, l, h, NULL, f, NULL}
#define I(n, l, h, f) {'i', n, l, h, NULL, NULL, f}
    G("integrationsd_db_pool_size", "Configured database connections.", db_size),
    G("integrationsd_db_pool_live", "Database connections up.", db_live),
    G("integrationsd_db_queue_depth", "Statements waiting for a connection.", db_queued),
    G("integrationsd_db_in_flight", "Statement units sent and not yet answered.", db_in_flight),
    G("integrationsd_http_connections", "Open client connections.", http_conns),
    G("integrationsd_http_pending", "Requests waiting for an answer.", http_pending),
    G("integrationsd_http_header_buffered_bytes",
      "Bytes of incomplete request headers held, against MAX_BUFFERED_HEADER_BYTES.", http_header_buf),
    G("integrationsd_http_body_buffered_bytes", "Request-body bytes reserved against MAX_BUFFERED_BODY_BYTES.",
      http_body_buf),
    C("integrationsd_db_dropped_total", NULL,
      "Queued statements dropped unsent because their request was abandoned.", db_dropped),
    G("integrationsd_outbound_in_flight", "Outbound HTTP calls in flight.", outbound_in_flight),
    G("integrationsd_cache_listen_up", "1 while the LISTEN connection is up (caches on).", listen_up),
    G("integrationsd_cache_bytes", "Bytes held by the read cache.", cache_bytes),
    G("integrationsd_cache_budget_bytes", "The read cache's budget (CACHE_BYTES).", cache_budget),
    G("integrationsd_cache_entries", "Answers held by the read cache.", cache_entries),
    C("integrationsd_cache_total", "op=\"hit\"", "Read-cache operations.", cache_hits),
    C("integrationsd_cache_total", "op=\"miss\"", "Read-cache operations.", cache_misses),
    C("integrationsd_cache_total", "op=\"store\"", "Read-cache operations.", cache_stores),
    C("integrationsd_cache_total", "op=\"eviction\"", "Read-cache operations.", cache_evictions),
    C("integrationsd_cache_total", "op=\"invalidation\"", "Read-cache operations.", cache_invalidations),
    C("integrationsd_cache_total", "op=\"flush\"", "Read-cache operations.", cache_flushes),
    C("integrationsd_cache_listen_reconnects_total", NULL, "Times the LISTEN connection came back.",
      listen_reconnects),
    G("integrationsd_redis_up", "1 when the Redis publisher link is up.", redis_up),
    G("integrationsd_events_queued", "Events waiting for Redis.", ev_queued),
    C("integrationsd_events_total", "result=\"published\"", "Events by outcome.", ev_published),
    C("integrationsd_events_total", "result=\"dropped\"", "Events by outcome.", ev_dropped),
    C("integrationsd_notify_messages_total", "result=\"received\"", "Messages on the notify channel.",
      notify_received),
    C("integrationsd_notify_messages_total", "result=\"malformed\"", "Messages on the notify channel.",
      notify_malformed),
    I("integrationsd_db_server", "server",
      "Database server of the last connection made (host:port (address)).", db_server),
    I("integrationsd_redis_server", "server", "Redis server the publisher is on (address:port).", redis_server),
    C("integrationsd_failovers_total", "service=\"database\"",
      "New connections that landed on another server than the previous one.", db_failovers),
    C("integrationsd_failovers_total", "service=\"redis\"",
      "New connections that landed on another server than the previous one.", redis_failovers),
#undef G
#undef C
#undef I
};

int app_metrics_register(struct app *a)
{
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
        int rc;
        switch (series[i].kind) {
        case 'g':
            rc = metrics_gauge_register(series[i].name, series[i].help, series[i].gauge, a);
            break;
        case 'c':
            rc = metrics_counter_register(series[i].name, series[i].labels, series[i].help, series[i].counter, a);
            break;
        default:
            rc = metrics_info_register(series[i].name, series[i].labels, series[i].help, series[i].info, a);
            break;
        }
        if (rc < 0)
            return -1;
    }
    fetch_client_set_observer(a->fetch, metrics_observe_outbound);
    return 0;
}
