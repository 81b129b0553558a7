/* ops/metrics: process-wide counters and histograms rendered in the Prometheus
 * text format at GET /metrics. Series are identified by a family name and a
 * label string from a bounded set (route names, statuses, targets, outcomes):
 * never put request data (paths, ids, user input) in labels. */
#ifndef IDX_OPS_METRICS_H
#define IDX_OPS_METRICS_H
#include <stdint.h>

struct http_req;

/* Add `by` to the counter family{labels}; labels like "target=\"github\",result=\"ok\"". */
void metrics_inc(const char *family, const char *labels, uint64_t by);

/* One observation (milliseconds) into the histogram family{labels} (labels may be NULL). */
void metrics_observe(const char *family, const char *labels, double ms);

/* One answered HTTP request: counts by route and status, latency histogram by route. */
void metrics_observe_request(const char *route, int status, uint64_t duration_us);

/* Render every series plus the gauges sampled from the app into a malloc'd
 * NUL-terminated text (caller frees), or NULL on allocation failure. */
struct app;
char *metrics_render(const struct app *a);

/* GET /metrics. */
void metrics_handler(struct http_req *r);

/* Free everything (at exit). */
void metrics_free(void);

#endif
