/* tests/unit/test_mlflow_sync_machine: drives the MLflow sync machine through
 * mlflow_sync_step with scripted inputs: no network, no database, no event loop.
 * The job's I/O (struct mlflow_sync_io) is a recording fake; database results are
 * PGresults built with libpq's PQmakeEmptyPGresult/PQsetResultAttrs/PQsetvalue, and
 * MLflow answers are struct fetch_response built by hand. Every transition is
 * covered, the failure ones included. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/pool.h"
#include "integrations/mlflow_store.h"
#include "integrations/mlflow_sync.h"
#include "log.h"
#include "net/fetch.h"
#include "util/machine.h"

#define TENANT "a4ayc80OGd"

/* ---- the recording fakes ------------------------------------------------------------ */

static struct {
    struct mlflow_sync_job *job;   /* the job of the last wait */
    int submits, last_n;           /* db units, statements in the last */
    char last_sql[MLFLOW_SQL_MAX];
    char last_param0[4096];
    int calls;
    char last_url[512], last_body[1024];
    int cancels, releases;
    int arms[2];
    long last_delay;
    int events_changed, events_completed;
    char last_change[16];
    int invalidations;
    int gates;                     /* watcher calls */
    enum mlflow_sync_gate gate;
    bool have_result;
    struct mlflow_sync_result res;
    char res_status[16], res_message[1024];
    int ended;
} rec;

static int call_token; /* the handles given out */

static void fake_submit(void *io_arg, struct mlflow_sync_job *j, const struct db_stmt *s, int n)
{
    (void)io_arg;
    rec.job = j;
    rec.submits++;
    rec.last_n = n;
    snprintf(rec.last_sql, sizeof rec.last_sql, "%s", s[0].sql);
    snprintf(rec.last_param0, sizeof rec.last_param0, "%s",
             s[0].nparams > 0 && s[0].params[0] ? s[0].params[0] : "");
}

static void *fake_call(void *io_arg, struct mlflow_sync_job *j, const struct fetch_request *req)
{
    (void)io_arg;
    rec.job = j;
    rec.calls++;
    snprintf(rec.last_url, sizeof rec.last_url, "%s", req->url ? req->url : "");
    snprintf(rec.last_body, sizeof rec.last_body, "%.*s", (int)(req->body ? req->body_len : 0),
             req->body ? req->body : "");
    return &call_token;
}

static void fake_cancel(void *io_arg, void *call)
{
    (void)io_arg;
    assert_ptr_equal(call, &call_token);
    rec.cancels++;
}

static int fake_arm(void *io_arg, struct mlflow_sync_job *j, enum mlflow_sync_timer t, long ms)
{
    (void)io_arg, (void)j;
    rec.arms[t]++;
    rec.last_delay = ms;
    return 0;
}

static void fake_release(void *io_arg, struct mlflow_sync_job *j)
{
    (void)io_arg, (void)j;
    rec.releases++;
}

static const struct mlflow_sync_io fake_io = {fake_submit, fake_call, fake_cancel, fake_arm, fake_release};

static void fake_event(void *arg, const char *type, long long org, const char *tenant, long long actor, json_t *data)
{
    (void)arg, (void)org, (void)actor;
    assert_string_equal(tenant, TENANT);
    if (strcmp(type, "mlflow.model.changed") == 0) {
        rec.events_changed++;
        snprintf(rec.last_change, sizeof rec.last_change, "%s", json_string_value(json_object_get(data, "change")));
    } else if (strcmp(type, "mlflow.sync.completed") == 0) {
        rec.events_completed++;
    }
    json_decref(data);
}

static void fake_invalidate(void *arg, const char *tenant)
{
    (void)arg;
    assert_string_equal(tenant, TENANT);
    rec.invalidations++;
}

static void watch(void *arg, enum mlflow_sync_gate g, const struct mlflow_sync_result *res)
{
    (void)arg;
    rec.gates++;
    rec.gate = g;
    rec.have_result = res != NULL;
    if (res) {
        rec.res = *res;
        snprintf(rec.res_status, sizeof rec.res_status, "%s", res->status);
        snprintf(rec.res_message, sizeof rec.res_message, "%s", res->message);
        rec.res.status = rec.res_status;
        rec.res.message = rec.res_message;
    }
}

static void ended(void *arg)
{
    (void)arg;
    rec.ended++;
}

static struct mlflow_sync_ctx test_ctx = {
    .secrets = NULL, /* nothing stored is encrypted in these rows */
    .budget = {4 * 1024 * 1024, 20000, 32},
    .event = fake_event,
    .invalidate = fake_invalidate,
    .io = &fake_io,
};

static int setup(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof rec);
    mlflow_sync_init(&test_ctx);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mlflow_sync_stop_all();
    assert_int_equal(mlflow_sync_count(), 0);
    return 0;
}

static void start(enum mlflow_trigger trigger)
{
    struct mlflow_sync_opts o = {
        .org_id = 1, .user_id = trigger == MLFLOW_TRIGGER_MANUAL ? 5 : 0, .trigger = trigger,
        .watch = watch, .ended = ended,
    };
    snprintf(o.tenant, sizeof o.tenant, "%s", TENANT);
    assert_int_equal(mlflow_sync_start(&o), 0);
    assert_int_equal(rec.submits, 1); /* LOAD: the configuration row */
    assert_non_null(strstr(rec.last_sql, "FROM \"" TENANT "\".mlflow_integrations"));
    assert_string_equal(mlflow_sync_state(rec.job), "load");
}

/* ---- scripted inputs ---------------------------------------------------------------------- */

static PGresult *rows(int ncols, int nrows, const char *const *vals /* nrows * ncols, NULL = SQL NULL */)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(r);
    PGresAttDesc att[32];
    char names[32][8];
    assert_true(ncols <= 32);
    for (int c = 0; c < ncols; c++) {
        snprintf(names[c], sizeof names[c], "c%d", c);
        att[c] = (PGresAttDesc){.name = names[c], .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1};
    }
    assert_int_equal(PQsetResultAttrs(r, ncols, att), 1);
    for (int i = 0; i < nrows; i++)
        for (int c = 0; c < ncols; c++) {
            const char *v = vals[i * ncols + c];
            assert_int_equal(PQsetvalue(r, i, c, (char *)(v ? v : ""), v ? (int)strlen(v) : -1), 1);
        }
    return r;
}

static void deliver_db(enum db_status st, const char *sqlstate, PGresult *res)
{
    PGresult *arr[3] = {res, res, res};
    struct db_result r = {.status = st, .n = res ? 1 : 0, .res = arr, .sqlstate = sqlstate ? sqlstate : "",
                          .message = st == DB_OK ? "" : "scripted failure"};
    mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_DB, .db = &r});
    PQclear(res);
}

static void deliver_ok(PGresult *res)
{
    deliver_db(DB_OK, NULL, res);
}

static void deliver_fetch(enum fetch_outcome o, long status, const char *body)
{
    struct fetch_response r = {.outcome = o, .status = status, .body = body ? body : "",
                               .body_len = body ? strlen(body) : 0, .error = o == FETCH_OK ? NULL : "scripted"};
    mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_FETCH, .fetch = &r});
}

/* The configuration row (enum mlflow_config_col), test status as given. */
static void deliver_config(const char *test_status)
{
    const char *v[MC_FPR + 1] = {0};
    v[MC_ID] = "3";
    v[MC_URL] = "http://mlflow.test:5000";
    v[MC_AUTH] = "none";
    v[MC_VERIFY] = "t";
    v[MC_TIMEOUT] = "30";
    v[MC_TEST_STATUS] = test_status;
    deliver_ok(rows(MC_FPR + 1, 1, v));
}

static void deliver_lease(void)
{
    const char *v[] = {"17", "2026-12-06 20:00:00.000000"};
    deliver_ok(rows(2, 1, v));
}

/* LOAD and ACQUIRE of a manual sync: now in EXPERIMENTS with its call made. */
static void to_experiments(void)
{
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_config("success");
    assert_string_equal(mlflow_sync_state(rec.job), "acquire");
    assert_int_equal(rec.submits, 2);
    assert_string_equal(rec.last_param0, "mlflow-sync:" TENANT);
    deliver_lease();
    assert_int_equal(rec.arms[MLFLOW_TIMER_RENEW], 1);
    assert_string_equal(mlflow_sync_state(rec.job), "experiments");
    assert_int_equal(rec.calls, 1);
    assert_non_null(strstr(rec.last_url, "/api/2.0/mlflow/experiments/search"));
}

static const char RUN[] =
    "{\"info\":{\"run_id\":\"r1\",\"experiment_id\":\"1\",\"status\":\"FINISHED\",\"start_time\":1,"
    "\"lifecycle_stage\":\"active\"},\"data\":{\"tags\":[{\"key\":\"model_name\",\"value\":\"fraud\"}]}}";

/* An upsert's answer: one row per change ("new", "updated", "unchanged"). */
static PGresult *upserted(const char *change)
{
    const char *v[11] = {"fraud", "1", change, "t", "f", "f", "f", "f", "production", "READY", "run"};
    return rows(11, 1, v);
}

/* ---- LOAD ---------------------------------------------------------------------------------- */

static void load_not_configured(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_ok(rows(MC_FPR + 1, 0, NULL));
    assert_int_equal(rec.gates, 1);
    assert_int_equal(rec.gate, MLFLOW_GATE_NOT_CONFIGURED);
    assert_false(rec.have_result);
    assert_int_equal(rec.ended, 1);
    assert_int_equal(rec.releases, 1);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void load_tables_missing(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_db(DB_SQL_ERROR, "42P01", NULL);
    assert_int_equal(rec.gate, MLFLOW_GATE_NOT_CONFIGURED);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void load_db_unavailable(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_db(DB_UNAVAILABLE, NULL, NULL);
    assert_int_equal(rec.gate, MLFLOW_GATE_DB_UNAVAILABLE);
    assert_int_equal(rec.submits, 1); /* nothing else was tried */
    assert_int_equal(mlflow_sync_count(), 0);
}

static void load_sql_error(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_db(DB_SQL_ERROR, "42501", NULL);
    assert_int_equal(rec.gate, MLFLOW_GATE_FAILED);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void scheduled_skip_untested(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_SCHEDULED);
    deliver_config(NULL);
    assert_string_equal(mlflow_sync_state(rec.job), "skip");
    assert_int_equal(rec.submits, 2);
    assert_int_equal(rec.last_n, 2); /* history row + configuration row */
    assert_string_equal(rec.last_param0, "Scheduled sync skipped: run a successful connection test.");
    assert_int_equal(rec.calls, 0);
    deliver_ok(rows(0, 0, NULL));
    assert_int_equal(rec.gate, MLFLOW_GATE_SKIPPED);
    assert_int_equal(rec.ended, 1);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void scheduled_skip_failed_test(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_SCHEDULED);
    deliver_config("error");
    assert_string_equal(mlflow_sync_state(rec.job), "skip");
    assert_string_equal(rec.last_param0, "Scheduled sync skipped: last connection test failed");
    deliver_db(DB_UNAVAILABLE, NULL, NULL); /* recording it failed: still skipped */
    assert_int_equal(rec.gate, MLFLOW_GATE_SKIPPED);
}

static void scheduled_tested_runs(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_SCHEDULED);
    deliver_config("success");
    assert_string_equal(mlflow_sync_state(rec.job), "acquire");
}

/* ---- ACQUIRE ------------------------------------------------------------------------------- */

static void acquire_lease_held(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_config("success");
    deliver_ok(rows(2, 0, NULL));
    assert_int_equal(rec.gate, MLFLOW_GATE_BUSY);
    assert_int_equal(rec.arms[MLFLOW_TIMER_RENEW], 0);
    assert_int_equal(rec.calls, 0);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void acquire_db_unavailable(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    deliver_config("success");
    deliver_db(DB_UNAVAILABLE, NULL, NULL);
    assert_int_equal(rec.gate, MLFLOW_GATE_DB_UNAVAILABLE);
    assert_int_equal(mlflow_sync_count(), 0);
}

/* ---- the whole way: experiments, runs, upsert, models, versions, upsert, stale, finish --- */

static void full_sync(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{\"experiments\":[{\"experiment_id\":\"1\",\"name\":\"e1\"}]}");
    assert_string_equal(mlflow_sync_state(rec.job), "runs");
    assert_non_null(strstr(rec.last_url, "/api/2.0/mlflow/runs/search"));
    assert_non_null(strstr(rec.last_body, "\"experiment_ids\":[\"1\"]"));
    assert_non_null(strstr(rec.last_body, "\"max_results\":50"));

    char page[1024];
    snprintf(page, sizeof page, "{\"runs\":[%s]}", RUN);
    deliver_fetch(FETCH_OK, 200, page);
    assert_string_equal(mlflow_sync_state(rec.job), "upsert");
    assert_non_null(strstr(rec.last_sql, "jsonb_to_recordset"));
    assert_non_null(strstr(rec.last_param0, "\"model_name\":\"fraud\""));
    deliver_ok(upserted("new"));
    assert_int_equal(rec.events_changed, 1);
    assert_string_equal(rec.last_change, "new");

    /* the last experiments page and its only chunk are done: the registry */
    assert_string_equal(mlflow_sync_state(rec.job), "models");
    assert_non_null(strstr(rec.last_url, "/api/2.0/mlflow/registered-models/search?max_results=200"));
    deliver_fetch(FETCH_OK, 200,
                  "{\"registered_models\":[{\"name\":\"fraud\",\"aliases\":[{\"alias\":\"prod\",\"version\":\"1\"}]}],"
                  "\"next_page_token\":\"p2\"}");
    assert_string_equal(mlflow_sync_state(rec.job), "models");
    assert_non_null(strstr(rec.last_url, "page_token=p2"));
    deliver_fetch(FETCH_OK, 200, "{\"registered_models\":[]}");
    assert_string_equal(mlflow_sync_state(rec.job), "versions");
    assert_non_null(strstr(rec.last_url, "/api/2.0/mlflow/model-versions/search"));
    deliver_fetch(FETCH_OK, 200, "{\"model_versions\":[{\"name\":\"fraud\",\"version\":\"1\",\"status\":\"READY\"}]}");
    assert_string_equal(mlflow_sync_state(rec.job), "upsert");
    assert_non_null(strstr(rec.last_param0, "prod")); /* the alias of the version */
    deliver_ok(upserted("updated"));
    assert_string_equal(rec.last_change, "updated");

    /* complete and without failures: records not seen become stale */
    assert_string_equal(mlflow_sync_state(rec.job), "stale");
    assert_int_equal(rec.last_n, 1);
    assert_non_null(strstr(rec.last_sql, "deleted_at"));
    const char *st[] = {"old", "9", NULL, "READY", "model_version"};
    deliver_ok(rows(5, 1, st));
    assert_string_equal(rec.last_change, "stale");

    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    assert_int_equal(rec.last_n, 3); /* history, configuration row, lease */
    assert_string_equal(rec.last_param0, "17");
    assert_int_equal(rec.gates, 0); /* the watcher is told at the end */
    deliver_ok(rows(0, 0, NULL));
    assert_int_equal(rec.gates, 1);
    assert_int_equal(rec.gate, MLFLOW_GATE_STARTED);
    assert_true(rec.have_result);
    assert_string_equal(rec.res_status, "success");
    assert_int_equal(rec.res.sync_id, 17);
    assert_int_equal(rec.res.fetched, 2);
    assert_int_equal(rec.res.created, 1);
    assert_int_equal(rec.res.updated, 1);
    assert_int_equal(rec.res.stale, 1);
    assert_int_equal(rec.res.failures, 0);
    assert_int_equal(rec.events_completed, 1);
    assert_int_equal(rec.invalidations, 1);
    assert_int_equal(rec.ended, 1);
    assert_int_equal(rec.cancels, 0);
    assert_int_equal(mlflow_sync_count(), 0);
}

/* ---- failed calls ---------------------------------------------------------------------------- */

static void experiments_retry_then_give_up(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_CONNECT, 0, NULL);
    assert_string_equal(mlflow_sync_state(rec.job), "experiments"); /* waits for its retry timer */
    assert_int_equal(rec.arms[MLFLOW_TIMER_RETRY], 1);
    assert_true(rec.last_delay > 0);
    assert_int_equal(rec.calls, 1); /* not before the timer */
    mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_TIMER});
    assert_int_equal(rec.calls, 2);
    deliver_fetch(FETCH_CONNECT, 0, NULL);
    assert_int_equal(rec.arms[MLFLOW_TIMER_RETRY], 2);
    mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_TIMER});
    assert_int_equal(rec.calls, 3);
    deliver_fetch(FETCH_CONNECT, 0, NULL); /* attempts exhausted: unreachable, nothing else is tried */
    assert_int_equal(rec.arms[MLFLOW_TIMER_RETRY], 2);
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    assert_int_equal(rec.calls, 3);
    deliver_ok(rows(0, 0, NULL));
    assert_string_equal(rec.res_status, "error");
    assert_true(rec.res.network_error);
    assert_int_equal(rec.res.failures, 1);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void experiments_retry_then_ok(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 503, "{}");
    assert_int_equal(rec.arms[MLFLOW_TIMER_RETRY], 1);
    mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_TIMER});
    deliver_fetch(FETCH_OK, 200, "{\"experiments\":[]}");
    assert_string_equal(mlflow_sync_state(rec.job), "models"); /* no experiments: the registry */
}

static void experiments_unauthorized_is_fatal(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 401, "{}");
    assert_int_equal(rec.arms[MLFLOW_TIMER_RETRY], 0);
    assert_string_equal(mlflow_sync_state(rec.job), "finish"); /* every other call would fail too */
    deliver_ok(rows(0, 0, NULL));
    assert_string_equal(rec.res_status, "error");
    assert_false(rec.res.network_error);
}

static void experiments_page_error_goes_to_registry(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "not json");
    assert_string_equal(mlflow_sync_state(rec.job), "models");
}

static void runs_over_budget_asks_fewer(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{\"experiments\":[{\"experiment_id\":\"1\"}]}");
    deliver_fetch(FETCH_TOO_LARGE, 0, NULL);
    assert_string_equal(mlflow_sync_state(rec.job), "runs");
    assert_non_null(strstr(rec.last_body, "\"max_results\":12"));
    deliver_fetch(FETCH_TOO_LARGE, 0, NULL);
    assert_non_null(strstr(rec.last_body, "\"max_results\":3"));
    deliver_fetch(FETCH_TOO_LARGE, 0, NULL);
    assert_non_null(strstr(rec.last_body, "\"max_results\":1"));
    deliver_fetch(FETCH_TOO_LARGE, 0, NULL); /* one run is still too large: a failed experiment */
    assert_string_equal(mlflow_sync_state(rec.job), "models");
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 200, "{}");
    assert_string_equal(mlflow_sync_state(rec.job), "finish"); /* failures: no stale marking */
    deliver_ok(rows(0, 0, NULL));
    assert_string_equal(rec.res_status, "error");
    assert_int_equal(rec.res.failures, 1);
}

static void runs_chunk_split_and_paging(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200,
                  "{\"experiments\":[{\"experiment_id\":\"1\"},{\"experiment_id\":\"2\"}],\"next_page_token\":\"e2\"}");
    assert_non_null(strstr(rec.last_body, "\"experiment_ids\":[\"1\",\"2\"]"));
    deliver_fetch(FETCH_OK, 400, "{\"error_code\":\"INVALID_PARAMETER_VALUE\"}");
    /* the chunk failed: its experiments one by one */
    assert_string_equal(mlflow_sync_state(rec.job), "runs");
    assert_non_null(strstr(rec.last_body, "\"experiment_ids\":[\"1\"]"));
    deliver_fetch(FETCH_OK, 200, "{\"runs\":[],\"next_page_token\":\"r2\"}");
    assert_string_equal(mlflow_sync_state(rec.job), "runs"); /* the next page of the same experiment */
    assert_non_null(strstr(rec.last_body, "\"page_token\":\"r2\""));
    assert_non_null(strstr(rec.last_body, "\"experiment_ids\":[\"1\"]"));
    deliver_fetch(FETCH_OK, 200, "{\"runs\":[]}");
    assert_non_null(strstr(rec.last_body, "\"experiment_ids\":[\"2\"]"));
    deliver_fetch(FETCH_OK, 400, "{}"); /* this one fails alone */
    /* the chunk is done: the next experiments page */
    assert_string_equal(mlflow_sync_state(rec.job), "experiments");
    assert_non_null(strstr(rec.last_body, "\"page_token\":\"e2\""));
    deliver_fetch(FETCH_OK, 200, "{\"experiments\":[]}");
    assert_string_equal(mlflow_sync_state(rec.job), "models");
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 200, "{}");
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    deliver_ok(rows(0, 0, NULL));
    assert_int_equal(rec.res.failures, 1);
    assert_int_equal(rec.res.fetched, 0);
}

/* ---- upserts ------------------------------------------------------------------------------------ */

static void to_first_upsert(void)
{
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{\"experiments\":[{\"experiment_id\":\"1\",\"name\":\"e1\"}]}");
    char page[1024];
    snprintf(page, sizeof page, "{\"runs\":[%s]}", RUN);
    deliver_fetch(FETCH_OK, 200, page);
    assert_string_equal(mlflow_sync_state(rec.job), "upsert");
}

static void upsert_fails_then_no_stale(void **state)
{
    (void)state;
    to_first_upsert();
    deliver_db(DB_SQL_ERROR, "23514", NULL);
    assert_string_equal(mlflow_sync_state(rec.job), "models"); /* the sync goes on */
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 200, "{\"model_versions\":[{\"name\":\"fraud\",\"version\":\"2\"}]}");
    deliver_ok(upserted("unchanged"));
    /* a failure: what disappeared upstream cannot be told, STALE is passed over */
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    assert_int_equal(rec.last_n, 3);
    deliver_ok(rows(0, 0, NULL));
    assert_string_equal(rec.res_status, "partial");
    assert_int_equal(rec.res.unchanged, 1);
    assert_int_equal(rec.res.failures, 1);
    assert_non_null(strstr(rec.res_message, "Failed to store model records"));
}

static void upsert_db_unavailable_is_fatal(void **state)
{
    (void)state;
    to_first_upsert();
    deliver_db(DB_UNAVAILABLE, NULL, NULL);
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    deliver_db(DB_UNAVAILABLE, NULL, NULL); /* the outcome cannot be recorded either */
    assert_string_equal(rec.res_status, "error");
    assert_int_equal(rec.events_completed, 0); /* not recorded: no completed event */
    assert_int_equal(rec.invalidations, 1);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void upsert_in_slices(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{\"experiments\":[{\"experiment_id\":\"1\"}]}");
    /* 250 runs in one page (a server ignoring max_results): two slices of at most 200 */
    size_t cap = 250 * (sizeof RUN + 16) + 64, n = 0;
    char *page = malloc(cap);
    assert_non_null(page);
    n += (size_t)snprintf(page + n, cap - n, "{\"runs\":[");
    for (int i = 0; i < 250; i++)
        n += (size_t)snprintf(page + n, cap - n,
                              "%s{\"info\":{\"run_id\":\"r%d\",\"experiment_id\":\"1\"},\"data\":{\"tags\":[{\"key\":"
                              "\"model_name\",\"value\":\"m\"}]}}",
                              i ? "," : "", i);
    snprintf(page + n, cap - n, "]}");
    deliver_fetch(FETCH_OK, 200, page);
    free(page);
    assert_string_equal(mlflow_sync_state(rec.job), "upsert");
    int submits = rec.submits;
    deliver_ok(rows(11, 0, NULL));
    assert_string_equal(mlflow_sync_state(rec.job), "upsert"); /* the second slice */
    assert_int_equal(rec.submits, submits + 1);
    deliver_ok(rows(11, 0, NULL));
    assert_string_equal(mlflow_sync_state(rec.job), "models");
}

static void stale_in_batches(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 200, "{}");
    assert_string_equal(mlflow_sync_state(rec.job), "stale");
    /* a full batch: another one */
    const char **v = calloc(MLFLOW_STALE_BATCH * 5, sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < MLFLOW_STALE_BATCH; i++) {
        v[i * 5] = "m";
        v[i * 5 + 1] = "1";
    }
    deliver_ok(rows(5, MLFLOW_STALE_BATCH, v));
    free(v);
    assert_string_equal(mlflow_sync_state(rec.job), "stale");
    deliver_db(DB_SQL_ERROR, "40001", NULL);
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    deliver_ok(rows(0, 0, NULL));
    assert_int_equal(rec.res.stale, MLFLOW_STALE_BATCH);
    assert_int_equal(rec.res.failures, 1);
}

static void registry_failure_ends(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 404, "{}"); /* models: without aliases the versions would be wrong */
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
    deliver_ok(rows(0, 0, NULL));
    assert_string_equal(rec.res_status, "error");
}

static void versions_failure_ends(void **state)
{
    (void)state;
    to_experiments();
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 200, "{}");
    deliver_fetch(FETCH_OK, 404, "{}");
    assert_string_equal(mlflow_sync_state(rec.job), "finish");
}

/* ---- cancel ----------------------------------------------------------------------------------- */

static void cancel_while_calling(void **state)
{
    (void)state;
    to_experiments();
    mlflow_sync_stop_all();
    assert_int_equal(rec.cancels, 1); /* the call in flight is dropped */
    assert_int_equal(rec.releases, 1);
    assert_int_equal(rec.gate, MLFLOW_GATE_FAILED); /* the watcher hears of it, without an outcome */
    assert_false(rec.have_result);
    assert_int_equal(rec.ended, 0); /* no callbacks into the owner */
    assert_int_equal(mlflow_sync_count(), 0);
}

static void cancel_while_querying(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_CANCEL});
    assert_int_equal(rec.cancels, 0); /* no call was in flight */
    assert_int_equal(rec.releases, 1);
    assert_int_equal(mlflow_sync_count(), 0);
}

static void watch_joins_running(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    assert_true(mlflow_sync_running(TENANT));
    assert_int_equal(mlflow_sync_watch(TENANT, watch, NULL), 0);
    assert_int_equal(mlflow_sync_watch("b4ayc80OGd", watch, NULL), -1);
    deliver_ok(rows(MC_FPR + 1, 0, NULL));
    assert_int_equal(rec.gates, 2); /* both watchers */
    assert_false(mlflow_sync_running(TENANT));
}

/* An input a state cannot receive is a bug: the machine aborts (MACHINE_IMPOSSIBLE). */
static void impossible_input_aborts(void **state)
{
    (void)state;
    start(MLFLOW_TRIGGER_MANUAL);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* LOAD waits for its query: a call's answer cannot arrive */
        deliver_fetch(FETCH_OK, 200, "{}");
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* no retry timer is armed while a query is awaited */
        mlflow_sync_step(rec.job, &(struct machine_input){.kind = MI_TIMER});
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    assert_string_equal(mlflow_sync_state(rec.job), "load"); /* the parent's job is untouched */
}

int main(void)
{
    log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(load_not_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(load_tables_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(load_db_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(load_sql_error, setup, teardown),
        cmocka_unit_test_setup_teardown(scheduled_skip_untested, setup, teardown),
        cmocka_unit_test_setup_teardown(scheduled_skip_failed_test, setup, teardown),
        cmocka_unit_test_setup_teardown(scheduled_tested_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(acquire_lease_held, setup, teardown),
        cmocka_unit_test_setup_teardown(acquire_db_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(full_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(experiments_retry_then_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(experiments_retry_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(experiments_unauthorized_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(experiments_page_error_goes_to_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(runs_over_budget_asks_fewer, setup, teardown),
        cmocka_unit_test_setup_teardown(runs_chunk_split_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(upsert_fails_then_no_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(upsert_db_unavailable_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(upsert_in_slices, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_failure_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(versions_failure_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_while_calling, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_while_querying, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_joins_running, setup, teardown),
        cmocka_unit_test_setup_teardown(impossible_input_aborts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
