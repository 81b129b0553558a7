/* integrations/mlflow_scheduler: owns the scheduled MLflow sync: a libevent timer at
 * the next time matching MLFLOW_SYNC_SCHEDULE (UTC). At each tick one instance
 * claims the tick (a row "mlflow-schedule:<epoch>" in public.integration_locks;
 * the others see it taken and do nothing), lists every tenant in
 * public.integration_tenants that has the MLflow tables, and runs their syncs with
 * at most SCHED_PARALLEL in flight. Each sync still takes its tenant's lease, so a
 * manual sync running elsewhere is never doubled.
 * Tick states: IDLE -> CLAIM (db) -> LIST (db) -> RUNNING (jobs) -> IDLE. */
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
#include "integrations/mlflow_sync.h"
#include "jobs/cron.h"
#include "log.h"

#define SCHED_PARALLEL 4

enum tick_state { TICK_IDLE, TICK_CLAIM, TICK_LIST, TICK_RUNNING };

struct sched_tenant {
    char tenant[TENANT_HASH_LEN + 1];
    long long org;
};

static struct {
    struct app *app;
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

static void tick_done(void)
{
    log_fields(LOG_INFO, "mlflow scheduled sync tick finished",
               json_pack("{s:I,s:i,s:i}", "tick", (json_int_t)sched.tick, "tenants", (int)sched.n, "started",
                         sched.started));
    free(sched.tenants);
    sched.tenants = NULL;
    sched.n = sched.pos = 0;
    sched.state = TICK_IDLE;
}

static void job_ended(void *arg);

static void launch(void)
{
    while (sched.in_flight < SCHED_PARALLEL && sched.pos < sched.n) {
        struct sched_tenant *t = &sched.tenants[sched.pos++];
        if (mlflow_sync_running(t->tenant)) /* a manual sync of this tenant runs here */
            continue;
        struct mlflow_sync_opts o = {
            .app = sched.app,
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

static void job_ended(void *arg)
{
    (void)arg;
    sched.in_flight--;
    launch();
}

static void on_tenants(const struct db_result *res, void *arg)
{
    (void)arg;
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
        if (!tenant_name_valid(PQgetvalue(pr, i, 0)))
            continue;
        struct sched_tenant *t = &sched.tenants[sched.n++];
        snprintf(t->tenant, sizeof t->tenant, "%s", PQgetvalue(pr, i, 0));
        t->org = strtoll(PQgetvalue(pr, i, 1), NULL, 10);
    }
    sched.state = TICK_RUNNING;
    launch();
}

static void on_claim(const struct db_result *res, void *arg)
{
    (void)arg;
    if (res->status != DB_OK) {
        log_error("mlflow: claiming the scheduled sync failed: %s",
                  res->status == DB_UNAVAILABLE ? "database unavailable" : res->message);
        sched.state = TICK_IDLE;
        return;
    }
    if (PQntuples(db_last(res)) == 0) {
        log_info("mlflow: scheduled sync of this tick runs on another instance");
        sched.state = TICK_IDLE;
        return;
    }
    sched.state = TICK_LIST;
    sched.started = 0;
    db_query(sched.app->db,
             "SELECT schema_name, organization_id FROM public.integration_tenants"
             " WHERE schema_name ~ '^[A-Za-z0-9]{10}$'"
             " AND to_regclass(quote_ident(schema_name) || '.mlflow_integrations') IS NOT NULL"
             " ORDER BY schema_name",
             0, NULL, on_tenants, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
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
    sched.state = TICK_CLAIM;
    sched.tick = tick;
    char name[64];
    snprintf(name, sizeof name, "mlflow-schedule:%lld", (long long)tick);
    const char *params[] = {name, mlflow_instance_id()};
    const struct db_stmt stmts[] = {
        {"DELETE FROM public.integration_locks WHERE name LIKE 'mlflow-schedule:%' AND expires_at < now()", 0, NULL},
        {"INSERT INTO public.integration_locks (name, holder, expires_at) VALUES ($1, $2, now() + interval '1 day')"
         " ON CONFLICT (name) DO NOTHING RETURNING name",
         2, params},
    };
    db_submit(a->db, stmts, 2, on_claim, NULL);
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
    if (mlflow_sync_init() < 0) {
        snprintf(err, errlen, "cannot generate the instance id (no randomness)");
        return -1;
    }
    sched.app = a;
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
