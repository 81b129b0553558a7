/* integrations/mlflow_scheduler: owns the scheduled MLflow sync: a libevent timer at
 * the next time matching MLFLOW_SYNC_SCHEDULE (UTC). At each tick one instance
 * claims the tick (a row "mlflow-schedule:<epoch>" in public.integration_locks;
 * the others see it taken and do nothing), lists every tenant in
 * public.integration_tenants that has the MLflow tables, and runs their syncs with
 * at most SCHED_PARALLEL in flight. Each sync still takes its tenant's lease, so a
 * manual sync running elsewhere is never doubled. It also gives the sync jobs their
 * context (struct mlflow_sync_ctx) from the app.
 * The tick is a machine (util/machine.h), one step function for every input:
 *   IDLE -(tick timer)-> CLAIM (db) -> LIST (db) -> RUNNING (jobs end: MI_EVENT) -> IDLE
 * The tick timer can fire in any state (a tick still running skips the next one). */
#include "integrations/mlflow.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "app.h"
#include "auth/tenant.h"
#include "db/pool.h"
#include "integrations/mlflow_store.h"
#include "integrations/mlflow_sync.h"
#include "jobs/cron.h"
#include "log.h"
#include "util/machine.h"

#define SCHED_PARALLEL 4

enum tick_state { TICK_IDLE, TICK_CLAIM, TICK_LIST, TICK_RUNNING };
static const char *const tick_names[] = {"idle", "claim", "list", "running"};
static const struct machine_def tick_def = MACHINE_DEF("mlflow schedule", tick_names);

struct sched_tenant {
    char tenant[TENANT_HASH_LEN + 1];
    long long org;
};

static struct {
    struct app *app;
    struct mlflow_sync_net net;
    struct cron_expr cron;
    struct event *timer;
    time_t next_fire;
    enum tick_state state;
    time_t tick;
    struct sched_tenant *tenants;
    size_t n, pos;
    int in_flight, started, skipped;
} sched;

static void arm(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    time_t after = now.tv_sec;
    if (sched.next_fire > after)
        after = sched.next_fire; /* a timer that fired a little early must not fire twice */
    time_t next = cron_next(&sched.cron, after);
    if (next < 0) {
        log_error("MLFLOW_SYNC_SCHEDULE has no future fire time; scheduled syncs stop");
        return;
    }
    sched.next_fire = next;
    long long ms = (long long)(next - now.tv_sec) * 1000 - now.tv_usec / 1000;
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(sched.timer, &tv);
    log_debug("mlflow: next scheduled sync in %lld ms", ms);
}

/* The only writer of sched.state. */
static void set_state(enum tick_state st)
{
    machine_trace(&tick_def, "tick", sched.state, st);
    sched.state = st;
}

static void tick_step(const struct machine_input *in);

static void tick_done(void)
{
    log_fields(LOG_INFO, "mlflow scheduled sync tick finished",
               json_pack("{s:I,s:i,s:i}", "tick", (json_int_t)sched.tick, "tenants", (int)sched.n, "started",
                         sched.started));
    free(sched.tenants);
    sched.tenants = NULL;
    sched.n = sched.pos = 0;
    set_state(TICK_IDLE);
}

static void job_ended(void *arg)
{
    (void)arg;
    tick_step(&(struct machine_input){.kind = MI_EVENT});
}

/* RUNNING: start syncs up to SCHED_PARALLEL; the tick ends with the last one. */
static void launch(void)
{
    while (sched.in_flight < SCHED_PARALLEL && sched.pos < sched.n) {
        struct sched_tenant *t = &sched.tenants[sched.pos++];
        if (mlflow_sync_running(t->tenant)) /* a manual sync of this tenant runs here */
            continue;
        struct mlflow_sync_opts o = {
            .org_id = t->org,
            .trigger = MLFLOW_TRIGGER_SCHEDULED,
            .ended = job_ended,
        };
        memcpy(o.tenant, t->tenant, sizeof o.tenant);
        if (mlflow_sync_start(&o) < 0) {
            log_error("mlflow: out of memory starting the scheduled sync of %s", t->tenant);
            continue;
        }
        sched.in_flight++;
        sched.started++;
    }
    if (sched.in_flight == 0 && sched.pos >= sched.n)
        tick_done();
}

static void on_db(const struct db_result *res, void *arg)
{
    (void)arg;
    tick_step(&(struct machine_input){.kind = MI_DB, .db = res});
}

/* Enter the current state: start its one wait. */
static void enter(void)
{
    char q1[MLFLOW_SQL_MAX], q2[MLFLOW_SQL_MAX];
    switch (sched.state) {
    case TICK_IDLE:
        return;
    case TICK_CLAIM: {
        char name[64];
        snprintf(name, sizeof name, "mlflow-schedule:%lld", (long long)sched.tick);
        const char *params[] = {name, mlflow_instance_id()};
        if (mlflow_store_sql(q1, sizeof q1, MLFLOW_SQL_SCHED_PURGE, NULL) < 0 ||
            mlflow_store_sql(q2, sizeof q2, MLFLOW_SQL_SCHED_CLAIM, NULL) < 0)
            MACHINE_IMPOSSIBLE(&tick_def, sched.state); /* fixed text: cannot fail */
        const struct db_stmt stmts[] = {{q1, 0, NULL}, {q2, 2, params}};
        db_submit(sched.app->db, stmts, 2, on_db, NULL);
        return;
    }
    case TICK_LIST:
        if (mlflow_store_sql(q1, sizeof q1, MLFLOW_SQL_SCHED_TENANTS, NULL) < 0)
            MACHINE_IMPOSSIBLE(&tick_def, sched.state);
        db_query(sched.app->db, q1, 0, NULL, on_db, NULL);
        return;
    case TICK_RUNNING:
        launch();
        return;
    default:
        MACHINE_IMPOSSIBLE(&tick_def, sched.state);
    }
}

static void go(enum tick_state st)
{
    set_state(st);
    enter();
}

static void step_claimed(const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: claiming the scheduled sync failed: %s",
                  res->status == DB_UNAVAILABLE ? "database unavailable" : res->message);
        set_state(TICK_IDLE);
        return;
    }
    if (PQntuples(db_last(res)) == 0) {
        log_info("mlflow: scheduled sync of this tick runs on another instance");
        set_state(TICK_IDLE);
        return;
    }
    sched.started = 0;
    go(TICK_LIST);
}

static void step_listed(const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow: listing tenants for the scheduled sync failed: %s",
                  res->status == DB_UNAVAILABLE ? "database unavailable" : res->message);
        tick_done();
        return;
    }
    const PGresult *pr = db_last(res);
    int n = PQntuples(pr);
    sched.tenants = n ? calloc((size_t)n, sizeof *sched.tenants) : NULL;
    if (n && !sched.tenants) {
        log_error("mlflow: out of memory listing tenants");
        tick_done();
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *schema;
        long long org;
        mlflow_store_tenant(pr, i, &schema, &org);
        if (!tenant_name_valid(schema))
            continue;
        struct sched_tenant *t = &sched.tenants[sched.n++];
        snprintf(t->tenant, sizeof t->tenant, "%s", schema);
        t->org = org;
    }
    go(TICK_RUNNING);
}

/* The cron timer fired: claim this tick unless one still runs or the database is not ready. */
static void step_tick(void)
{
    time_t tick = sched.next_fire;
    arm();
    struct app *a = sched.app;
    if (a->stopping)
        return;
    if (sched.state != TICK_IDLE) {
        log_warn("mlflow: the previous scheduled sync is still running; this tick is skipped");
        return;
    }
    if (!a->schema_ready || db_pool_live(a->db) == 0) {
        log_warn("mlflow: database not ready; this scheduled sync tick is skipped");
        return;
    }
    sched.tick = tick;
    go(TICK_CLAIM);
}

/* The one step function of the tick. */
static void tick_step(const struct machine_input *in)
{
    switch (in->kind) {
    case MI_TIMER:
        step_tick(); /* any state: a tick still running skips this one */
        return;
    case MI_DB:
        switch (sched.state) {
        case TICK_CLAIM:
            step_claimed(in->db);
            return;
        case TICK_LIST:
            step_listed(in->db);
            return;
        default: /* only CLAIM and LIST wait for the database */
            MACHINE_IMPOSSIBLE(&tick_def, sched.state);
        }
    case MI_EVENT: /* a sync of the tick ended */
        switch (sched.state) {
        case TICK_RUNNING:
            sched.in_flight--;
            launch();
            return;
        default: /* syncs are started in RUNNING only, and the tick stays until the last ends */
            MACHINE_IMPOSSIBLE(&tick_def, sched.state);
        }
    case MI_ENTER:
        enter();
        return;
    case MI_FETCH:
    case MI_CANCEL:
    default:
        MACHINE_IMPOSSIBLE(&tick_def, sched.state);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    tick_step(&(struct machine_input){.kind = MI_TIMER});
}

static void ctx_event(void *arg, const char *type, long long org_id, const char *tenant, long long actor,
                      json_t *data)
{
    app_event(arg, type, org_id, tenant, actor, data);
}

static void ctx_invalidate(void *arg, const char *tenant)
{
    app_cache_invalidate(arg, tenant);
}

int mlflow_start(struct app *a, char *err, size_t errlen)
{
    char why[160];
    if (cron_parse(&sched.cron, a->cfg.mlflow_sync_schedule, why, sizeof why) < 0) {
        snprintf(err, errlen, "MLFLOW_SYNC_SCHEDULE is not a valid 5-field cron expression: %s", why);
        return -1;
    }
    if (cron_next(&sched.cron, time(NULL)) < 0) {
        snprintf(err, errlen, "MLFLOW_SYNC_SCHEDULE never matches a date (e.g. February 30)");
        return -1;
    }
    sched.app = a;
    sched.net = (struct mlflow_sync_net){a->base, a->db, a->fetch};
    const struct mlflow_sync_ctx ctx = {
        .secrets = &a->secrets,
        .budget = {a->cfg.mlflow_page_max_bytes, a->cfg.mlflow_page_max_values, a->cfg.mlflow_page_max_depth},
        .event = ctx_event,
        .invalidate = ctx_invalidate,
        .arg = a,
        .io = &mlflow_sync_io_default,
        .io_arg = &sched.net,
    };
    mlflow_sync_init(&ctx);
    if (!(sched.timer = evtimer_new(a->base, on_timer, NULL))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    arm();
    log_fields(LOG_INFO, "mlflow scheduled sync armed",
               json_pack("{s:s,s:I}", "schedule", a->cfg.mlflow_sync_schedule, "next", (json_int_t)sched.next_fire));
    return 0;
}

void mlflow_stop(struct app *a)
{
    (void)a;
    if (sched.timer) {
        event_free(sched.timer);
        sched.timer = NULL;
    }
    mlflow_sync_stop_all();
    free(sched.tenants);
    memset(&sched, 0, sizeof sched);
}
