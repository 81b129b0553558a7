/* integrations/mlflow: /api/integrations/mlflow (reference 1.1 and 5, SPEC 4 and 5):
 * configuration, connection test, models, sync status, health, manual sync and its
 * history, and the scheduled sync of every tenant. The MLflow routes answer with
 * VerifyWise's ad-hoc shapes, not the envelope. Inside (src/integrations/mlflow/):
 * mlflow_config.c and mlflow_models.c the handlers (pure body checks in
 * mlflow_config.h), mlflow_store.c every statement and the decoding of its rows,
 * mlflow_sync.c the sync job and mlflow_scheduler.c the hourly tick, both with the
 * util/machine.h shape, mlflow_client.c the calls to MLflow, mlflow_map.c the mapping
 * of its answers to records. */
#ifndef IDX_INTEGRATIONS_MLFLOW_H
#define IDX_INTEGRATIONS_MLFLOW_H
#include <stddef.h>

#include "http/request.h"
#include "util/compiler.h"

struct app;

/* mlflow_config.c */
void mlflow_test(struct http_req *r);             /* POST /test */
void mlflow_config_get(struct http_req *r);       /* GET /config */
void mlflow_configure(struct http_req *r);        /* POST /configure */
void mlflow_sync_status(struct http_req *r);      /* GET /sync-status */
void mlflow_health(struct http_req *r);           /* GET /health */
/* mlflow_models.c */
void mlflow_models(struct http_req *r);           /* GET /models[?refresh=true] */
void mlflow_sync_now(struct http_req *r);         /* POST /sync */
void mlflow_sync_history(struct http_req *r);     /* GET /sync-history */

/* mlflow_scheduler.c: validate MLFLOW_SYNC_SCHEDULE and arm the timer. Returns 0,
 * or -1 with a reason naming the variable in err. */
int mlflow_start(struct app *a, char *err, size_t errlen) MUSTCHECK;
/* Stop the timer and free every sync job (no callbacks). */
void mlflow_stop(struct app *a);

#endif
