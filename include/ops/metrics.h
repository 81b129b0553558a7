/* ops/metrics: process-wide counters and histograms rendered in the Prometheus
 * text format at GET /metrics. Series are identified by a family name and a
 * label string from a bounded set (route names, statuses, targets, outcomes):
 * never put request data (paths, ids, user input) in labels. */
#ifndef IDX_OPS_METRICS_H
#define IDX_OPS_METRICS_H
#include <stdint.h>

#include "util/compiler.h"

struct http_req;

/* Add `by` to the counter family{labels}; labels like "target=\"github\",result=\"ok\"". */
void metrics_inc(const char *family, const char *labels, uint64_t by);

/* One observation (milliseconds) into the histogram family{labels} (labels may be NULL). */
void metrics_observe(const char *family, const char *labels, double ms);

/* One answered HTTP request: counts by route and status, latency histogram by route. */
void metrics_observe_request(const char *route, int status, uint64_t duration_us);

/* One outbound call finished: integrationsd_outbound_requests_total{target,result}
 * (a fetch_observer_fn). */
void metrics_observe_outbound(const char *target, const char *result);

/* Sampled series: read from fn(arg) at every rendering, after the counters and
 * histograms, in registration order; consecutive registrations of one family share its
 * HELP and TYPE lines. name, help and labels must outlive the registry (string
 * literals). Each returns 0, or -1 when out of memory. Registered by app at start-up,
 * so that metrics knows no other module; metrics_free forgets them. */
/* A gauge without labels: "name value". */
MUSTCHECK int metrics_gauge_register(const char *name, const char *help, double (*fn)(void *arg),
                                     void *arg);
/* A counter kept by another module: "name{labels} value" (labels NULL: "name value"). */
MUSTCHECK int metrics_counter_register(const char *name, const char *labels, const char *help,
                                       uint64_t (*fn)(void *arg), void *arg);
/* An info gauge: "name{label=\"<fn(arg), escaped>\"} 1". */
MUSTCHECK int metrics_info_register(const char *name, const char *label, const char *help,
                                    const char *(*fn)(void *arg), void *arg);

/* Render every series into a malloc'd NUL-terminated text (caller frees), or NULL on
 * allocation failure. */
MUSTCHECK char *metrics_render(void);

/* GET /metrics. */
void metrics_handler(struct http_req *r);

/* Free everything (at exit). */
void metrics_free(void);

#endif
