/* integrations/mlflow_models: owns the MLflow routes that read or start syncs:
 *   models:       from mlflow_model_records (live, not stale) in VerifyWise's element
 *                 shape (reference 5.5). Without ?refresh the answer waits for a sync
 *                 (started, or joined when one runs here) unless the last successful one
 *                 is younger than MLFLOW_MODELS_MAX_AGE_S: the frontend's "Re-run sync"
 *                 and "Refresh" send exactly that. A failed sync falls back to the stored
 *                 records with the failure in message/error. ?refresh=true always syncs
 *                 and maps a failure to the reference 1.1 shapes; ?refresh=false never
 *   sync:         start a manual sync (202 with its id; 400 without configuration;
 *                 409 while one runs for the tenant here or on another instance)
 *   sync-history: the last 50 runs with their counts. */
#include "integrations/mlflow.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "db/pool.h"
#include "http/reply.h"
#include "integrations/mlflow_store.h"
#include "integrations/mlflow_sync.h"
#include "log.h"

/* A waiting GET /models answers from the database after the configured MLflow timeout,
 * and always before the server's 30 s request deadline. */
#define MODELS_WAIT_MAX_S 25

static const char MSG_NOT_CONFIGURED[] = "MLFlow integration is not configured";
static const char MSG_BUSY[] = "A sync is already running for this organization";

static void fail(struct http_req *r, int status, const char *error)
{
    reply_json(r, status, json_pack("{s:b,s:s}", "success", 0, "error", error));
}

static void fetch_failed(struct http_req *r)
{
    reply_json(r, 200, json_pack("{s:b,s:b,s:[],s:s}", "configured", 1, "connected", 0, "models", "error",
                                 "Failed to fetch MLFlow models"));
}

/* ---- GET /models -------------------------------------------------------------------- */

/* Fields to add to the answer (the outcome of a sync that did not succeed), owned by
 * the request while the records are read. */
static void free_extra(void *p)
{
    json_decref(p);
}

static void on_models(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading model records failed: %s (%s)", res->message, res->sqlstate);
        fetch_failed(r);
        return;
    }
    if (PQntuples(res->res[0]) == 0) {
        reply_json(r, 200, json_pack("{s:b,s:[]}", "configured", 0, "models"));
        return;
    }
    const PGresult *pr = res->res[1];
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(pr); i++)
        json_array_append_new(arr, mlflow_store_model_json(pr, i));
    json_t *body = json_pack("{s:b,s:o}", "configured", 1, "models", arr);
    if (body && r->handler_state_free == free_extra && r->handler_state)
        json_object_update(body, r->handler_state);
    reply_json(r, 200, body);
}

static void read_models_with(struct http_req *r, json_t *extra);

static void read_models(struct http_req *r)
{
    read_models_with(r, NULL);
}

/* Read the stored records; extra (stolen, may be NULL) is merged into the answer. */
static void read_models_with(struct http_req *r, json_t *extra)
{
    if (extra) {
        if (r->handler_state_free)
            r->handler_state_free(r->handler_state);
        r->handler_state = extra;
        r->handler_state_free = free_extra;
    }
    char sql1[MLFLOW_SQL_MAX], sql2[MLFLOW_SQL_MAX];
    if (mlflow_store_sql(sql1, sizeof sql1, MLFLOW_SQL_MODELS_CONFIGURED, r->auth.tenant) < 0 ||
        mlflow_store_sql(sql2, sizeof sql2, MLFLOW_SQL_MODELS_LIST, r->auth.tenant) < 0) {
        fetch_failed(r);
        return;
    }
    const struct db_stmt stmts[] = {{sql1, 0, NULL}, {sql2, 0, NULL}};
    app_submit(r, stmts, 2, on_models);
}

static void refresh_gate(struct http_req *r, enum mlflow_sync_gate g, long long sync_id)
{
    (void)sync_id;
    switch (g) {
    case MLFLOW_GATE_STARTED:
        return; /* answered when it ends */
    case MLFLOW_GATE_NOT_CONFIGURED:
        reply_json(r, 200, json_pack("{s:b,s:[]}", "configured", 0, "models"));
        return;
    case MLFLOW_GATE_BUSY:
    case MLFLOW_GATE_SKIPPED:
        read_models(r); /* another sync is writing: answer with what is stored */
        return;
    case MLFLOW_GATE_DB_UNAVAILABLE:
        reply_db_unavailable(r);
        return;
    case MLFLOW_GATE_FAILED:
        fetch_failed(r);
        return;
    }
}

static void refresh_finished(struct http_req *r, const struct mlflow_sync_result *res)
{
    if (strcmp(res->status, "error") == 0) {
        if (res->network_error)
            reply_json(r, 200, json_pack("{s:b,s:b,s:[],s:s}", "configured", 1, "connected", 0, "models",
                                         "message", "MLFlow server is not reachable"));
        else
            fetch_failed(r);
        return;
    }
    read_models(r);
}

static int start_job(struct http_req *r, void (*gate_fn)(struct http_req *, enum mlflow_sync_gate, long long),
                     void (*finished_fn)(struct http_req *, const struct mlflow_sync_result *))
{
    struct mlflow_sync_opts o = {
        .org_id = r->auth.org_id,
        .user_id = r->auth.user_id,
        .trigger = MLFLOW_TRIGGER_MANUAL,
        .req = r,
        .gate = gate_fn,
        .finished = finished_fn,
    };
    snprintf(o.tenant, sizeof o.tenant, "%s", r->auth.tenant);
    http_req_hold(r);
    return mlflow_sync_start(&o);
}

/* ---- GET /models without ?refresh: sync when the stored records are old ----------- */

/* One request waiting for a sync's outcome (a watcher of the job). Owned by the job's
 * watcher list until the watcher is called; the request reference is dropped as soon
 * as the request is answered (by the outcome or by the wait bound). */
struct models_wait {
    struct http_req *r;      /* NULL once answered */
    struct event *timer;     /* the wait bound */
};

static void wait_release(struct models_wait *w)
{
    if (w->timer)
        evtimer_del(w->timer);
    if (w->r)
        http_req_unref(w->r);
    w->r = NULL;
}

static void wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct models_wait *w = arg;
    struct http_req *r = w->r;
    if (!r)
        return;
    w->r = NULL;
    if (http_req_alive(r))
        read_models_with(r, json_pack("{s:s}", "message", "MLFlow sync is still running; showing the stored models"));
    http_req_unref(r);
}

/* The sync's outcome (or its refused start): answer unless the wait bound already did. */
static void wait_done(void *arg, enum mlflow_sync_gate g, const struct mlflow_sync_result *res)
{
    struct models_wait *w = arg;
    struct http_req *r = w->r;
    if (g == MLFLOW_GATE_STARTED && !res)
        g = MLFLOW_GATE_FAILED; /* not a watcher call: treat as a failed start */
    if (r && http_req_alive(r)) {
        switch (g) {
        case MLFLOW_GATE_STARTED:
            if (strcmp(res->status, "error") != 0)
                read_models(r);
            else if (res->network_error)
                read_models_with(r, json_pack("{s:b,s:s}", "connected", 0, "message", "MLFlow server is not reachable"));
            else
                read_models_with(r, json_pack("{s:b,s:s}", "connected", 0, "error", "Failed to fetch MLFlow models"));
            break;
        case MLFLOW_GATE_NOT_CONFIGURED:
            reply_json(r, 200, json_pack("{s:b,s:[]}", "configured", 0, "models"));
            break;
        case MLFLOW_GATE_BUSY:
        case MLFLOW_GATE_SKIPPED:
            read_models(r); /* another instance is syncing: what is stored */
            break;
        case MLFLOW_GATE_DB_UNAVAILABLE:
            reply_db_unavailable(r);
            break;
        case MLFLOW_GATE_FAILED:
            read_models_with(r, json_pack("{s:b,s:s}", "connected", 0, "error", "Failed to fetch MLFlow models"));
            break;
        }
    }
    wait_release(w);
    if (w->timer)
        event_free(w->timer);
    free(w);
}

/* Wait for the tenant's running sync, or start one; at most timeout_s seconds. Once the
 * watcher is attached, w belongs to the job (wait_done frees it, possibly before the
 * attach returns), so it is not touched afterwards. */
static void sync_and_wait(struct http_req *r, int timeout_s)
{
    struct models_wait *w = calloc(1, sizeof *w);
    if (!w || !(w->timer = evtimer_new(r->app->base, wait_timeout, w))) {
        free(w);
        fetch_failed(r);
        return;
    }
    w->r = http_req_ref(r);
    http_req_hold(r);
    if (timeout_s < 1 || timeout_s > MODELS_WAIT_MAX_S)
        timeout_s = MODELS_WAIT_MAX_S;
    struct timeval tv = {timeout_s, 0};
    evtimer_add(w->timer, &tv);
    if (mlflow_sync_watch(r->auth.tenant, wait_done, w) < 0) {
        struct mlflow_sync_opts o = {
            .org_id = r->auth.org_id,
            .user_id = r->auth.user_id,
            .trigger = MLFLOW_TRIGGER_MANUAL,
            .watch = wait_done,
            .watch_arg = w,
        };
        snprintf(o.tenant, sizeof o.tenant, "%s", r->auth.tenant);
        if (mlflow_sync_start(&o) < 0) { /* the watcher was never attached: still ours */
            fetch_failed(r);
            wait_release(w);
            event_free(w->timer);
            free(w);
        }
    }
}

static void on_freshness(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading the configuration failed: %s (%s)", res->message, res->sqlstate);
        fetch_failed(r);
        return;
    }
    int timeout_s;
    bool fresh;
    if (!mlflow_store_freshness(db_last(res), &timeout_s, &fresh)) {
        reply_json(r, 200, json_pack("{s:b,s:[]}", "configured", 0, "models"));
        return;
    }
    if (fresh) {
        read_models(r);
        return;
    }
    sync_and_wait(r, timeout_s);
}

static void models_auto(struct http_req *r)
{
    char sql[MLFLOW_SQL_MAX], age[24];
    if (mlflow_store_sql(sql, sizeof sql, MLFLOW_SQL_MODELS_FRESHNESS, r->auth.tenant) < 0) {
        fetch_failed(r);
        return;
    }
    snprintf(age, sizeof age, "%d", r->app->cfg.mlflow_models_max_age_s);
    const char *params[] = {age};
    app_query(r, sql, 1, params, on_freshness);
}

void mlflow_models(struct http_req *r)
{
    char v[16];
    int n = http_req_query(r, "refresh", v, sizeof v);
    if (n > 0 && strcmp(v, "false") == 0) {
        read_models(r);
        return;
    }
    if (n > 0 && strcmp(v, "true") == 0) {
        if (mlflow_sync_running(r->auth.tenant)) {
            read_models(r);
            return;
        }
        if (start_job(r, refresh_gate, refresh_finished) < 0)
            fetch_failed(r);
        return;
    }
    models_auto(r);
}

/* ---- POST /sync ------------------------------------------------------------------------ */

static void sync_gate(struct http_req *r, enum mlflow_sync_gate g, long long sync_id)
{
    switch (g) {
    case MLFLOW_GATE_STARTED:
        reply_json(r, 202, json_pack("{s:b,s:{s:I}}", "success", 1, "data", "syncId", (json_int_t)sync_id));
        return;
    case MLFLOW_GATE_NOT_CONFIGURED:
        fail(r, 400, MSG_NOT_CONFIGURED);
        return;
    case MLFLOW_GATE_BUSY:
    case MLFLOW_GATE_SKIPPED:
        fail(r, 409, MSG_BUSY);
        return;
    case MLFLOW_GATE_DB_UNAVAILABLE:
        reply_db_unavailable(r);
        return;
    case MLFLOW_GATE_FAILED:
        fail(r, 500, "Failed to start MLFlow sync");
        return;
    }
}

void mlflow_sync_now(struct http_req *r)
{
    if (mlflow_sync_running(r->auth.tenant)) {
        fail(r, 409, MSG_BUSY);
        return;
    }
    if (start_job(r, sync_gate, NULL) < 0)
        fail(r, 500, "Failed to start MLFlow sync");
}

/* ---- GET /sync-history -------------------------------------------------------------------- */

static void on_history(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: reading the sync history failed: %s (%s)", res->message, res->sqlstate);
        fail(r, 500, "Failed to load MLFlow sync history");
        return;
    }
    json_t *arr = mlflow_store_history_json(db_last(res));
    reply_json(r, 200, json_pack("{s:b,s:o}", "success", 1, "data", arr));
}

void mlflow_sync_history(struct http_req *r)
{
    char sql[MLFLOW_SQL_MAX];
    if (mlflow_store_sql(sql, sizeof sql, MLFLOW_SQL_HISTORY, r->auth.tenant) < 0) {
        fail(r, 500, "Failed to load MLFlow sync history");
        return;
    }
    app_query(r, sql, 0, NULL, on_history);
}
