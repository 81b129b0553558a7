/* ops/metrics: owns the metric series (a small open-addressing table keyed by
 * "family{labels}") and their Prometheus text rendering. Single-threaded like the
 * rest of the service, so no locking. */
#include "ops/metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cache/read_cache.h"
#include "db/listener.h"
#include "db/pool.h"
#include "events/events.h"
#include "http/reply.h"
#include "http/server.h"
#include "net/fetch.h"

#define MAX_SERIES 4096
static const double bucket_ms[] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define NBUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

struct series {
    char *key;          /* "family{labels}" or "family" */
    size_t family_len;
    uint64_t value;
    /* histograms only */
    bool histogram;
    uint64_t buckets[NBUCKETS];
    double sum_ms;
};

static struct series *table;
static size_t used, cap;
static uint64_t overflow; /* observations dropped because the table was full */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct series *lookup(const char *family, const char *labels, bool histogram)
{
    char key[256];
    int n = labels && *labels ? snprintf(key, sizeof key, "%s{%s}", family, labels)
                              : snprintf(key, sizeof key, "%s", family);
    if (n < 0 || (size_t)n >= sizeof key)
        return NULL;
    if (used * 2 >= cap) {
        if (cap >= MAX_SERIES)
            return NULL;
        size_t ncap = cap ? cap * 2 : 64;
        struct series *nt = calloc(ncap, sizeof *nt);
        if (!nt)
            return NULL;
        for (size_t i = 0; i < cap; i++)
            if (table[i].key) {
                size_t j = hash(table[i].key) & (ncap - 1);
                while (nt[j].key)
                    j = (j + 1) & (ncap - 1);
                nt[j] = table[i];
            }
        free(table);
        table = nt;
        cap = ncap;
    }
    size_t j = hash(key) & (cap - 1);
    while (table[j].key) {
        if (strcmp(table[j].key, key) == 0)
            return &table[j];
        j = (j + 1) & (cap - 1);
    }
    if (!(table[j].key = strdup(key)))
        return NULL;
    table[j].family_len = strlen(family);
    table[j].histogram = histogram;
    used++;
    return &table[j];
}

void metrics_inc(const char *family, const char *labels, uint64_t by)
{
    struct series *s = lookup(family, labels, false);
    if (s)
        s->value += by;
    else
        overflow++;
}

static void observe(struct series *h, double ms)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        if (ms <= bucket_ms[i])
            h->buckets[i]++;
    h->value++;
    h->sum_ms += ms;
}

void metrics_observe(const char *family, const char *labels, double ms)
{
    struct series *h = lookup(family, labels, true);
    if (h)
        observe(h, ms);
    else
        overflow++;
}

void metrics_observe_request(const char *route, int status, uint64_t duration_us)
{
    char labels[160];
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route ? route : "unmatched", status);
    metrics_inc("integrationsd_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", route ? route : "unmatched");
    struct series *h = lookup("integrationsd_http_request_duration_ms", labels, true);
    if (!h) {
        overflow++;
        return;
    }
    observe(h, (double)duration_us / 1000.0);
}

/* ---- rendering --------------------------------------------------------------- */

struct out {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = (o->cap + (size_t)n + 1) * 2;
        char *nb = realloc(o->buf, ncap);
        if (!nb) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

static void gauge(struct out *o, const char *name, const char *help, double v)
{
    put(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static const char *help_of(const char *family, size_t len)
{
    static const struct {
        const char *family, *help;
    } helps[] = {
        {"integrationsd_http_requests_total", "HTTP requests answered, by route and status."},
        {"integrationsd_http_request_duration_ms", "HTTP request latency in milliseconds, by route."},
        {"integrationsd_event_loop_lag_ms",
         "How late a 50 ms timer ran (due time to run), in milliseconds: event-loop stalls."},
        {"integrationsd_outbound_requests_total", "Outbound HTTP calls, by target and result."},
        {"integrationsd_mlflow_syncs_total", "MLflow syncs finished, by outcome."},
        {"integrationsd_slack_deliveries_total", "Slack deliveries finished, by result."},
    };
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (strlen(helps[i].family) == len && strncmp(helps[i].family, family, len) == 0)
            return helps[i].help;
    return "Counter.";
}

/* A Prometheus label value: backslash, quote and newline escaped, bounded. */
static void label_value(char *dst, size_t dlen, const char *src)
{
    size_t j = 0;
    for (; *src && j + 3 < dlen; src++) {
        if (*src == '\\' || *src == '"') {
            dst[j++] = '\\';
            dst[j++] = *src;
        } else if (*src == '\n') {
            dst[j++] = '\\';
            dst[j++] = 'n';
        } else {
            dst[j++] = *src;
        }
    }
    dst[j] = '\0';
}

char *metrics_render(const struct app *a)
{
    struct out o = {0};
    struct series **sorted = used ? calloc(used, sizeof *sorted) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < cap; i++)
        if (table[i].key && sorted)
            sorted[n++] = &table[i];
    if (n)
        qsort(sorted, n, sizeof *sorted, cmp_series);
    const char *last = NULL;
    size_t last_len = 0;
    for (size_t i = 0; i < n; i++) {
        struct series *s = sorted[i];
        if (!last || last_len != s->family_len || strncmp(last, s->key, s->family_len) != 0) {
            last = s->key;
            last_len = s->family_len;
            put(&o, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)last_len, last, help_of(last, last_len),
                (int)last_len, last, s->histogram ? "histogram" : "counter");
        }
        if (!s->histogram) {
            put(&o, "%s %llu\n", s->key, (unsigned long long)s->value);
            continue;
        }
        const char *labels = s->key + s->family_len; /* "{...}" or "" */
        size_t ll = strlen(labels);
        const char *inner = ll > 2 ? labels + 1 : "";
        int il = ll > 2 ? (int)(ll - 2) : 0;
        for (size_t b = 0; b < NBUCKETS; b++)
            put(&o, "%.*s_bucket{%.*s%sle=\"%g\"} %llu\n", (int)s->family_len, s->key, il, inner,
                il ? "," : "", bucket_ms[b], (unsigned long long)s->buckets[b]);
        put(&o, "%.*s_bucket{%.*s%sle=\"+Inf\"} %llu\n", (int)s->family_len, s->key, il, inner,
            il ? "," : "", (unsigned long long)s->value);
        put(&o, "%.*s_sum%s %.6f\n", (int)s->family_len, s->key, labels, s->sum_ms);
        put(&o, "%.*s_count%s %llu\n", (int)s->family_len, s->key, labels, (unsigned long long)s->value);
    }
    free(sorted);
    if (a) {
        gauge(&o, "integrationsd_db_pool_size", "Configured database connections.", db_pool_size(a->db));
        gauge(&o, "integrationsd_db_pool_live", "Database connections up.", db_pool_live(a->db));
        gauge(&o, "integrationsd_db_queue_depth", "Statements waiting for a connection.",
              db_pool_queued(a->db));
        gauge(&o, "integrationsd_db_in_flight", "Statement units sent and not yet answered.",
              db_pool_in_flight(a->db));
        gauge(&o, "integrationsd_http_connections", "Open client connections.",
              http_server_connections(a->http));
        gauge(&o, "integrationsd_http_pending", "Requests waiting for an answer.",
              http_server_pending(a->http));
        gauge(&o, "integrationsd_http_header_buffered_bytes",
              "Bytes of incomplete request headers held, against MAX_BUFFERED_HEADER_BYTES.",
              (double)http_server_header_buffered(a->http));
        gauge(&o, "integrationsd_http_body_buffered_bytes",
              "Request-body bytes reserved against MAX_BUFFERED_BODY_BYTES.",
              (double)http_server_body_buffered(a->http));
        put(&o, "# HELP integrationsd_db_dropped_total Queued statements dropped unsent because "
                "their request was abandoned.\n# TYPE integrationsd_db_dropped_total counter\n"
                "integrationsd_db_dropped_total %llu\n",
            (unsigned long long)db_pool_dropped(a->db));
        gauge(&o, "integrationsd_outbound_in_flight", "Outbound HTTP calls in flight.",
              fetch_in_flight(a->fetch));
        struct read_cache_stats cs;
        read_cache_stats(a->cache, &cs);
        gauge(&o, "integrationsd_cache_listen_up", "1 while the LISTEN connection is up (caches on).",
              listener_listening(a->listener));
        gauge(&o, "integrationsd_cache_bytes", "Bytes held by the read cache.", (double)cs.bytes);
        gauge(&o, "integrationsd_cache_budget_bytes", "The read cache's budget (CACHE_BYTES).", (double)cs.budget);
        gauge(&o, "integrationsd_cache_entries", "Answers held by the read cache.", (double)cs.entries);
        put(&o, "# HELP integrationsd_cache_total Read-cache operations.\n"
                "# TYPE integrationsd_cache_total counter\n"
                "integrationsd_cache_total{op=\"hit\"} %llu\n"
                "integrationsd_cache_total{op=\"miss\"} %llu\n"
                "integrationsd_cache_total{op=\"store\"} %llu\n"
                "integrationsd_cache_total{op=\"eviction\"} %llu\n"
                "integrationsd_cache_total{op=\"invalidation\"} %llu\n"
                "integrationsd_cache_total{op=\"flush\"} %llu\n",
            (unsigned long long)cs.hits, (unsigned long long)cs.misses, (unsigned long long)cs.stores,
            (unsigned long long)cs.evictions, (unsigned long long)cs.invalidations,
            (unsigned long long)cs.flushes);
        put(&o, "# HELP integrationsd_cache_listen_reconnects_total Times the LISTEN connection came back.\n"
                "# TYPE integrationsd_cache_listen_reconnects_total counter\n"
                "integrationsd_cache_listen_reconnects_total %lu\n",
            listener_reconnects(a->listener));
        struct events_stats es;
        events_get_stats(a->events, &es);
        gauge(&o, "integrationsd_redis_up", "1 when the Redis publisher link is up.",
              strcmp(events_state(a->events), "up") == 0);
        gauge(&o, "integrationsd_events_queued", "Events waiting for Redis.", (double)es.queued);
        put(&o, "# HELP integrationsd_events_total Events by outcome.\n"
                "# TYPE integrationsd_events_total counter\n"
                "integrationsd_events_total{result=\"published\"} %llu\n"
                "integrationsd_events_total{result=\"dropped\"} %llu\n",
            (unsigned long long)es.published, (unsigned long long)es.dropped);
        put(&o, "# HELP integrationsd_notify_messages_total Messages on the notify channel.\n"
                "# TYPE integrationsd_notify_messages_total counter\n"
                "integrationsd_notify_messages_total{result=\"received\"} %llu\n"
                "integrationsd_notify_messages_total{result=\"malformed\"} %llu\n",
            (unsigned long long)es.notify_received, (unsigned long long)es.notify_malformed);
        char lv[320];
        label_value(lv, sizeof lv, db_pool_server(a->db));
        put(&o, "# HELP integrationsd_db_server Database server of the last connection made (host:port (address)).\n"
                "# TYPE integrationsd_db_server gauge\n"
                "integrationsd_db_server{server=\"%s\"} 1\n", lv);
        label_value(lv, sizeof lv, events_server(a->events));
        put(&o, "# HELP integrationsd_redis_server Redis server the publisher is on (address:port).\n"
                "# TYPE integrationsd_redis_server gauge\n"
                "integrationsd_redis_server{server=\"%s\"} 1\n", lv);
        put(&o, "# HELP integrationsd_failovers_total New connections that landed on another server than the previous one.\n"
                "# TYPE integrationsd_failovers_total counter\n"
                "integrationsd_failovers_total{service=\"database\"} %llu\n"
                "integrationsd_failovers_total{service=\"redis\"} %llu\n",
            (unsigned long long)db_pool_failovers(a->db), (unsigned long long)events_failovers(a->events));
    }
    put(&o, "# HELP integrationsd_metrics_dropped_total Observations lost because the series table was full.\n"
            "# TYPE integrationsd_metrics_dropped_total counter\n"
            "integrationsd_metrics_dropped_total %llu\n",
        (unsigned long long)overflow);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}

void metrics_handler(struct http_req *r)
{
    char *text = metrics_render(r->app);
    if (!text) {
        reply_internal(r);
        return;
    }
    http_req_send_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

void metrics_free(void)
{
    for (size_t i = 0; i < cap; i++)
        free(table[i].key);
    free(table);
    table = NULL;
    used = cap = 0;
}
