/* ops/health: liveness and readiness probes (no authentication). */
#ifndef IDX_OPS_HEALTH_H
#define IDX_OPS_HEALTH_H
#include "http/request.h"

void health_live(struct http_req *r);    /* GET /healthz */
void health_ready(struct http_req *r);   /* GET /readyz */

#endif
