/* ops/metrics: owns the metric series (a small open-addressing table keyed by
 * "family{labels}"), the sampled series registered at start-up (read from their
 * callbacks at each rendering) and the Prometheus text rendering. It knows no other
 * module: app registers what it samples. Single-threaded like the rest of the service,
 * so no locking. */
#include "ops/metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/reply.h"
#include "http/request.h"

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

void metrics_observe_outbound(const char *target, const char *result)
{
    char labels[128];
    snprintf(labels, sizeof labels, "target=\"%s\",result=\"%s\"", target, result);
    metrics_inc("integrationsd_outbound_requests_total", labels, 1);
}

/* ---- sampled series ------------------------------------------------------------ */

enum sampled_kind { SAMPLED_GAUGE, SAMPLED_COUNTER, SAMPLED_INFO };

struct sampled {
    enum sampled_kind kind;
    const char *name, *help;
    const char *labels; /* counters: fixed labels or NULL; info: the label's name */
    union {
        double (*gauge)(void *arg);
        uint64_t (*counter)(void *arg);
        const char *(*info)(void *arg);
    } fn;
    void *arg;
};

static struct sampled *sampled;
static size_t nsampled, sampled_cap;

static int add_sampled(const struct sampled *x)
{
    if (nsampled == sampled_cap) {
        size_t ncap = sampled_cap ? sampled_cap * 2 : 32;
        struct sampled *n = realloc(sampled, ncap * sizeof *n);
        if (!n)
            return -1;
        sampled = n;
        sampled_cap = ncap;
    }
    sampled[nsampled++] = *x;
    return 0;
}

int metrics_gauge_register(const char *name, const char *help, double (*fn)(void *arg), void *arg)
{
    struct sampled x = {.kind = SAMPLED_GAUGE, .name = name, .help = help, .fn.gauge = fn, .arg = arg};
    return add_sampled(&x);
}

int metrics_counter_register(const char *name, const char *labels, const char *help,
                             uint64_t (*fn)(void *arg), void *arg)
{
    struct sampled x = {.kind = SAMPLED_COUNTER, .name = name, .help = help, .labels = labels,
                        .fn.counter = fn, .arg = arg};
    return add_sampled(&x);
}

int metrics_info_register(const char *name, const char *label, const char *help,
                          const char *(*fn)(void *arg), void *arg)
{
    struct sampled x = {.kind = SAMPLED_INFO, .name = name, .help = help, .labels = label,
                        .fn.info = fn, .arg = arg};
    return add_sampled(&x);
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

char *metrics_render(void)
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
    for (size_t i = 0; i < nsampled; i++) {
        const struct sampled *x = &sampled[i];
        if (i == 0 || strcmp(sampled[i - 1].name, x->name) != 0)
            put(&o, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                x->kind == SAMPLED_COUNTER ? "counter" : "gauge");
        switch (x->kind) {
        case SAMPLED_GAUGE:
            put(&o, "%s %.17g\n", x->name, x->fn.gauge(x->arg));
            break;
        case SAMPLED_COUNTER:
            if (x->labels)
                put(&o, "%s{%s} %llu\n", x->name, x->labels, (unsigned long long)x->fn.counter(x->arg));
            else
                put(&o, "%s %llu\n", x->name, (unsigned long long)x->fn.counter(x->arg));
            break;
        case SAMPLED_INFO: {
            char lv[320];
            const char *v = x->fn.info(x->arg);
            label_value(lv, sizeof lv, v ? v : "");
            put(&o, "%s{%s=\"%s\"} 1\n", x->name, x->labels, lv);
            break;
        }
        }
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
    char *text = metrics_render();
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
    free(sampled);
    sampled = NULL;
    nsampled = sampled_cap = 0;
}
