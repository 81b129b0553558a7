/* integrations/mlflow_sync: owns the MLflow sync job: its state machine, the lease
 * of the tenant (public.integration_locks), the paging through MLflow, the batch
 * upserts with change detection, stale marking, the outcome and its records
 * (configuration row, mlflow_sync_history, events), and the list of live jobs.
 *
 * States (one step function, mlflow_sync_step, takes every input: util/machine.h):
 *   LOAD -> [SKIP ->] ACQUIRE -> EXPERIMENTS <-> RUNS <-> UPSERT -> MODELS -> VERSIONS <-> UPSERT
 *        -> STALE -> FINISH -> DONE
 * (UPSERT repeats for each slice of UPSERT_SLICE records of one page.)
 * Each state waits for exactly one thing (a query, a call, or a retry timer), so a
 * job is freed only in DONE or by a cancel (mlflow_sync_stop_all: the call and the
 * timers are dropped; the pool drops its callbacks, see app_free's order).
 * Every wait starts through the context's struct mlflow_sync_io (the real one at the
 * end of this file), and the job knows the process only through its struct
 * mlflow_sync_ctx (secrets, page budget, events, cache invalidation): no app.
 * Memory: one page of MLflow objects at a time; each page is mapped, sent as one
 * bound jsonb parameter and freed before the next page is requested. Kept across
 * pages: the aliases of registered models ("name\x1fversion" -> "a,b") and the names
 * of prompt models, which grow with the registry, not with runs.
 * The lease is a row of public.integration_locks (INSERT .. ON CONFLICT .. WHERE
 * expired), renewed every RENEW_SECONDS and deleted by its holder: it works with or
 * without Redis and needs no session state, which the pipelined pool cannot keep
 * (no session advisory locks). A Redis SET NX PX variant is a follow-up. */
#include "integrations/mlflow_sync.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "db/pool.h"
#include "http/request.h"
#include "integrations/mlflow_client.h"
#include "integrations/mlflow_map.h"
#include "integrations/mlflow_store.h"
#include "jobs/retry.h"
#include "log.h"
#include "net/fetch.h"
#include "util/clock.h"
#include "util/machine.h"
#include "util/seed.h"

#define EXP_PAGE 100            /* experiments per page */
#define RUN_CHUNK 50            /* experiment ids per runs/search (VerifyWise's chunk) */
/* Page sizes keep each answer inside MLFLOW_PAGE_MAX_VALUES (20,000 by default, about
 * 35 ms of parsing on a busy 2-core machine): a run with 20 metrics, 30 params and 12
 * tags is about 256 values (5 KB), so 50 runs are about 12,800 values (0.25 MB). A runs
 * page over the budget is asked again with a quarter of the runs (down to 1) before
 * it counts as a failure, so runs with very many params still sync. */
#define RUN_PAGE 50             /* runs per page (at first) */
#define MODEL_PAGE 200          /* registered models per page */
#define VERSION_PAGE 200        /* model versions per page */
#define UPSERT_SLICE 200        /* records mapped and stored per step: a page holding more
                                 * (a server ignoring max_results) is stored in slices, so
                                 * no loop iteration maps or records an unbounded number */
#define TOKEN_MAX 4096
#define MAX_REQUESTS 200000     /* a server that pages forever is cut off */
#define RENEW_SECONDS 20
#define MESSAGE_MAX 1000        /* VerifyWise truncates sync messages to 1000 characters */

enum mlflow_sync_state {
    SYNC_LOAD,          /* read the configuration row */
    SYNC_SKIP,          /* scheduled pre-check failed: record the skip */
    SYNC_ACQUIRE,       /* take the tenant's lease and open a history row */
    SYNC_EXPERIMENTS,   /* one page of experiments */
    SYNC_RUNS,          /* one page of runs of the current chunk of experiments */
    SYNC_UPSERT,        /* store the records of the page just fetched */
    SYNC_MODELS,        /* one page of registered models (aliases, prompts) */
    SYNC_VERSIONS,      /* one page of model versions */
    SYNC_STALE,         /* mark records not seen by this (complete) sync as stale */
    SYNC_FINISH,        /* record the outcome, release the lease */
    SYNC_DONE,
};

static const char *const state_names[] = {"load", "skip", "acquire", "experiments", "runs", "upsert",
                                          "models", "versions", "stale", "finish", "done"};
static const struct machine_def sync_def = MACHINE_DEF("mlflow sync", state_names);

struct sync_watch {
    struct sync_watch *next;
    mlflow_sync_watch_fn fn;
    void *arg;
};

struct mlflow_sync_job {
    struct mlflow_sync_job *next;
    struct sync_watch *watchers; /* called once each, then freed */
    struct mlflow_sync_opts o;
    enum mlflow_sync_state state;
    unsigned seq;
    char who[TENANT_HASH_LEN + 16];    /* "<tenant>/<seq>" in the state log */
    const char *skip_msg;              /* SKIP: why (a static string) */
    bool gated;                 /* o.gate already called */
    bool leased;
    char holder[64], lock_name[64];
    char config_id[24], sync_id_s[24], started_at[40];
    long long sync_id;
    char test_status[16];
    struct mlflow_conn conn;
    void *call;                 /* the outbound call in flight (io handle) */
    struct event *timer;        /* retry wait (mlflow_sync_io_default's) */
    struct event *renew;        /* lease renewal (mlflow_sync_io_default's) */
    int attempt;
    /* experiments and runs */
    json_t *exps;               /* experiments of the current page (owned) */
    json_t *exp_index;          /* experiment_id -> experiment of exps (owned) */
    char *exp_token;            /* next experiments page, or NULL */
    bool exp_started;
    size_t chunk_start, chunk_len, split_pos;
    bool split;                 /* the chunk failed: its experiments one by one */
    char *runs_token;
    int run_page;               /* runs asked per page: RUN_PAGE, less after an oversized page */
    int exps_total, failed_experiments;
    /* registry */
    json_t *aliases, *prompts;
    char *models_token, *versions_token;
    bool models_started, versions_started;
    /* the batch waiting for (or in) its upsert */
    char *batch;
    int batch_n;
    enum mlflow_sync_state after_upsert;
    json_t *items;              /* the page's runs or versions not yet stored (owned) */
    size_t items_pos;
    /* outcome */
    int fetched, created, updated, unchanged, stale, skipped, failures;
    int statements, requests;
    bool fatal, network_error;
    bool over_budget;           /* the last call's answer was over MLFLOW_PAGE_MAX_* */
    char first_error[320];
    int64_t t0_us;
};

static struct mlflow_sync_job *jobs;
static unsigned job_seq;
static char instance_id[33];
static uint64_t rng_state;
static struct mlflow_sync_ctx ctx;

static const struct mlflow_sync_io *io(void)
{
    return ctx.io ? ctx.io : &mlflow_sync_io_default;
}

/* ---- small helpers ------------------------------------------------------------- */

static double rand01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

void mlflow_sync_init(const struct mlflow_sync_ctx *c)
{
    ctx = *c;
    /* unique among instances, not secret: from util/seed (no DRBG at start-up) */
    uint64_t hi = seed_u64(), lo = seed_u64();
    snprintf(instance_id, sizeof instance_id, "%016llx%016llx", (unsigned long long)hi, (unsigned long long)lo);
    rng_state = lo; /* never 0 */
}

const char *mlflow_instance_id(void)
{
    return instance_id;
}

bool mlflow_sync_running(const char *tenant)
{
    for (struct mlflow_sync_job *j = jobs; j; j = j->next)
        if (strcmp(j->o.tenant, tenant) == 0)
            return true;
    return false;
}

int mlflow_sync_count(void)
{
    int n = 0;
    for (struct mlflow_sync_job *j = jobs; j; j = j->next)
        n++;
    return n;
}

static const char *trigger_name(const struct mlflow_sync_job *j)
{
    return j->o.trigger == MLFLOW_TRIGGER_SCHEDULED ? "scheduled" : "manual";
}

/* The only writer of j->state. */
static void set_state(struct mlflow_sync_job *j, enum mlflow_sync_state s)
{
    machine_trace(&sync_def, j->who, j->state, s);
    j->state = s;
}

const char *mlflow_sync_state(const struct mlflow_sync_job *j)
{
    return machine_state_name(&sync_def, j->state);
}

static void note_failure(struct mlflow_sync_job *j, const char *msg)
{
    j->failures++;
    if (!j->first_error[0])
        snprintf(j->first_error, sizeof j->first_error, "%s", msg);
}

static void replace_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

/* Tell every watcher (once) and forget them. */
static void notify_watchers(struct mlflow_sync_job *j, enum mlflow_sync_gate g, const struct mlflow_sync_result *res)
{
    struct sync_watch *w = j->watchers;
    j->watchers = NULL;
    while (w) {
        struct sync_watch *next = w->next;
        w->fn(w->arg, g, res);
        free(w);
        w = next;
    }
}

static int add_watch(struct mlflow_sync_job *j, mlflow_sync_watch_fn fn, void *arg)
{
    struct sync_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->fn = fn;
    w->arg = arg;
    w->next = j->watchers;
    j->watchers = w;
    return 0;
}

int mlflow_sync_watch(const char *tenant, mlflow_sync_watch_fn fn, void *arg)
{
    for (struct mlflow_sync_job *j = jobs; j; j = j->next)
        if (strcmp(j->o.tenant, tenant) == 0 && j->state != SYNC_DONE)
            return add_watch(j, fn, arg);
    return -1;
}

static void job_free(struct mlflow_sync_job *j)
{
    notify_watchers(j, MLFLOW_GATE_FAILED, NULL);
    for (struct mlflow_sync_job **p = &jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    if (j->call)
        io()->cancel(ctx.io_arg, j->call);
    io()->release(ctx.io_arg, j);
    if (j->o.req)
        http_req_unref(j->o.req);
    mlflow_conn_clear(&j->conn);
    json_decref(j->exps);
    json_decref(j->exp_index);
    json_decref(j->items);
    json_decref(j->aliases);
    json_decref(j->prompts);
    free(j->exp_token);
    free(j->runs_token);
    free(j->models_token);
    free(j->versions_token);
    free(j->batch);
    free(j);
}

/* Tell the request how the start went (once), then let go of it unless it waits
 * for the end. */
static void gate(struct mlflow_sync_job *j, enum mlflow_sync_gate g)
{
    if (j->gated)
        return;
    j->gated = true;
    struct http_req *r = j->o.req;
    if (r && j->o.gate && http_req_alive(r))
        j->o.gate(r, g, j->sync_id);
    if (g != MLFLOW_GATE_STARTED)
        notify_watchers(j, g, NULL);
    if (r && (!j->o.finished || g != MLFLOW_GATE_STARTED)) {
        http_req_unref(r);
        j->o.req = NULL;
    }
}

static void job_end(struct mlflow_sync_job *j)
{
    set_state(j, SYNC_DONE);
    if (!j->gated)
        gate(j, MLFLOW_GATE_FAILED);
    void (*ended)(void *) = j->o.ended;
    void *arg = j->o.arg;
    job_free(j);
    if (ended)
        ended(arg);
}

/* ---- I/O: every wait of the machine starts here -------------------------------- */

static void submit(struct mlflow_sync_job *j, const struct db_stmt *stmts, int n)
{
    j->statements += n;
    io()->submit(ctx.io_arg, j, stmts, n);
}

/* A statement of the store for this job's tenant. The tenant is checked at the start
 * and every template fits MLFLOW_SQL_MAX (tests/unit/test_mlflow_config.c builds each
 * one), so a failure here is a bug. */
static void sql(struct mlflow_sync_job *j, char *buf, size_t len, enum mlflow_sql which)
{
    if (mlflow_store_sql(buf, len, which, j->o.tenant) < 0) {
        log_msg(LOG_ERROR, "mlflow sync %s: statement %d cannot be built", j->o.tenant, (int)which);
        MACHINE_IMPOSSIBLE(&sync_def, j->state);
    }
}

static struct mlflow_page_budget budget(const struct mlflow_sync_job *j)
{
    (void)j;
    return ctx.budget;
}

static void call(struct mlflow_sync_job *j, const char *method, const char *path, const char *query,
                 const json_t *body)
{
    struct mlflow_call c;
    if (mlflow_call_build(&c, &j->conn, method, path, query, body, budget(j).max_bytes) < 0) {
        /* out of memory: answer like a failed call, from the loop */
        log_error("mlflow sync %s: cannot build a request", j->o.tenant);
        struct fetch_request bad = {.url = "", .target = "mlflow"};
        j->call = io()->call(ctx.io_arg, j, &bad);
        return;
    }
    j->requests++;
    c.req.org_id = j->o.org_id;
    j->call = io()->call(ctx.io_arg, j, &c.req);
    mlflow_call_clear(&c);
}

/* A failed call: schedule another attempt when it is worth one. Returns true when
 * a retry is pending (the state stays). */
static bool maybe_retry(struct mlflow_sync_job *j, const struct fetch_response *res)
{
    long status = res->outcome == FETCH_OK ? res->status : 0;
    if (!retry_retryable(res->outcome, status))
        return false;
    long after = -1;
    if (res->outcome == FETCH_OK && status == 429)
        after = retry_after_ms(fetch_response_header(res, "Retry-After"), (long long)time(NULL));
    long delay = retry_delay_ms(&retry_default, j->attempt + 2, after, rand01()); /* attempt = retries so far */
    if (delay < 0)
        return false;
    if (io()->arm(ctx.io_arg, j, MLFLOW_TIMER_RETRY, delay) < 0)
        return false;
    j->attempt++;
    log_fields(LOG_INFO, "mlflow sync: retrying a request",
               json_pack("{s:s,s:s,s:i,s:I,s:s,s:I}", "tenant", j->o.tenant, "state", state_names[j->state],
                         "attempt", j->attempt, "delay_ms", (json_int_t)delay, "outcome",
                         fetch_outcome_name(res->outcome), "status", (json_int_t)status));
    return true;
}

/* Classify a finished call: returns the parsed body (2xx JSON object), or NULL
 * after recording why (and whether the whole sync must stop). */
static json_t *call_result(struct mlflow_sync_job *j, const struct fetch_response *res, bool *retrying)
{
    *retrying = false;
    j->over_budget = false;
    char msg[300];
    struct mlflow_page_budget b = budget(j);
    if (res->outcome == FETCH_OK && res->status >= 200 && res->status < 300) {
        json_t *o = mlflow_parse_object(res, &b, &j->over_budget, msg, sizeof msg);
        if (o) {
            j->attempt = 0;
            return o;
        }
    } else if (res->outcome == FETCH_TOO_LARGE) {
        mlflow_page_too_large_message(&b, msg, sizeof msg);
        j->over_budget = true;
    } else {
        if (maybe_retry(j, res)) {
            *retrying = true;
            return NULL;
        }
        mlflow_failure_message(res, msg, sizeof msg);
        if (res->outcome == FETCH_OK && (res->status == 401 || res->status == 403))
            j->fatal = true; /* the credentials are wrong: every further call would fail too */
        if (mlflow_failure_is_network(res)) {
            /* unreachable after every attempt: the following calls would only wait too */
            if (!j->first_error[0])
                j->network_error = true;
            j->fatal = true;
        }
    }
    j->attempt = 0;
    log_fields(LOG_WARN, "mlflow sync: request failed",
               json_pack("{s:s,s:s,s:s,s:I,s:s}", "tenant", j->o.tenant, "state", state_names[j->state],
                         "outcome", fetch_outcome_name(res->outcome), "status", (json_int_t)res->status,
                         "error", msg));
    note_failure(j, msg);
    return NULL;
}

/* The next page token of a page, or NULL when it is the last (or the token is absurd). */
static const char *page_token(struct mlflow_sync_job *j, const json_t *page)
{
    const char *t = mlflow_str(page, "next_page_token");
    if (t && strlen(t) > TOKEN_MAX) {
        note_failure(j, "MLFlow server returned an oversized page token");
        return NULL;
    }
    if (t && j->requests >= MAX_REQUESTS) {
        note_failure(j, "MLFlow server kept returning more pages; stopped");
        return NULL;
    }
    return t;
}

/* ---- experiments and runs --------------------------------------------------------- */

static void issue_experiments(struct mlflow_sync_job *j)
{
    json_t *body = json_pack("{s:i}", "max_results", EXP_PAGE);
    if (j->exp_token)
        json_object_set_new(body, "page_token", json_string(j->exp_token));
    call(j, "POST", "/api/2.0/mlflow/experiments/search", NULL, body);
    json_decref(body);
}

static const char *exp_id_at(const struct mlflow_sync_job *j, size_t i)
{
    return mlflow_str(json_array_get(j->exps, i), "experiment_id");
}

static void issue_runs(struct mlflow_sync_job *j)
{
    json_t *ids = json_array();
    if (j->split) {
        const char *id = exp_id_at(j, j->chunk_start + j->split_pos);
        json_array_append_new(ids, json_string(id ? id : ""));
    } else {
        for (size_t i = j->chunk_start; i < j->chunk_start + j->chunk_len; i++) {
            const char *id = exp_id_at(j, i);
            if (id)
                json_array_append_new(ids, json_string(id));
        }
    }
    json_t *body = json_pack("{s:o,s:i,s:s}", "experiment_ids", ids, "max_results", j->run_page,
                             "run_view_type", "ACTIVE_ONLY");
    if (j->runs_token)
        json_object_set_new(body, "page_token", json_string(j->runs_token));
    call(j, "POST", "/api/2.0/mlflow/runs/search", NULL, body);
    json_decref(body);
}

/* After the runs of the current chunk (or split element) are done: the next chunk,
 * the next experiments page, or the registry. */
static enum mlflow_sync_state runs_advance(struct mlflow_sync_job *j)
{
    replace_str(&j->runs_token, NULL);
    if (j->split && ++j->split_pos < j->chunk_len)
        return SYNC_RUNS;
    j->split = false;
    j->split_pos = 0;
    j->chunk_start += j->chunk_len;
    size_t n = json_array_size(j->exps);
    if (j->chunk_start < n) {
        j->chunk_len = n - j->chunk_start < RUN_CHUNK ? n - j->chunk_start : RUN_CHUNK;
        return SYNC_RUNS;
    }
    json_decref(j->exps);
    json_decref(j->exp_index);
    j->exps = j->exp_index = NULL;
    return j->exp_token && !j->fatal ? SYNC_EXPERIMENTS : SYNC_MODELS;
}

/* Map elements [from, to) of a page into the batch text. Returns 0 or -1 (out of memory). */
static int build_batch(struct mlflow_sync_job *j, const json_t *items, size_t from, size_t to, bool runs)
{
    json_t *arr = json_array();
    if (!arr)
        return -1;
    for (size_t i = from; i < to; i++) {
        const json_t *it = json_array_get(items, i);
        struct mlflow_record rec;
        enum mlflow_map_result mr;
        j->fetched++;
        if (runs) {
            struct mlflow_experiment_info eb;
            const json_t *info = json_object_get(it, "info");
            mr = mlflow_map_run(it, mlflow_find_experiment(j->exp_index, mlflow_str(info, "experiment_id"), &eb), &rec);
        } else {
            const char *name = mlflow_str(it, "name"), *ver = mlflow_str(it, "version");
            const char *al = NULL;
            if (name && json_object_get(j->prompts, name)) {
                j->skipped++;
                continue;
            }
            if (name && ver && j->aliases) {
                char key[1024];
                snprintf(key, sizeof key, "%s\x1f%s", name, ver);
                al = mlflow_str(j->aliases, key);
            }
            mr = mlflow_map_version(it, al, &rec);
        }
        if (mr != MLFLOW_MAP_OK) {
            j->skipped++;
            continue;
        }
        json_t *o = mlflow_record_json(&rec);
        mlflow_record_clear(&rec);
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return -1;
        }
    }
    j->batch_n = (int)json_array_size(arr);
    free(j->batch);
    j->batch = j->batch_n ? json_dumps(arr, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(arr);
    return j->batch_n && !j->batch ? -1 : 0;
}

/* The next slice of the page being stored (UPSERT), or, when the page is done, what
 * follows it. */
static enum mlflow_sync_state next_slice(struct mlflow_sync_job *j)
{
    bool runs = j->after_upsert == SYNC_RUNS;
    size_t n = json_array_size(j->items);
    while (j->items_pos < n) {
        size_t to = n - j->items_pos > UPSERT_SLICE ? j->items_pos + UPSERT_SLICE : n;
        if (build_batch(j, j->items, j->items_pos, to, runs) < 0) {
            note_failure(j, runs ? "Out of memory while mapping runs" : "Out of memory while mapping model versions");
            j->fatal = true;
            return SYNC_FINISH;
        }
        j->items_pos = to;
        if (j->batch_n)
            return SYNC_UPSERT;
    }
    json_decref(j->items);
    j->items = NULL;
    if (runs)
        return j->runs_token ? SYNC_RUNS : runs_advance(j);
    return j->versions_token ? SYNC_VERSIONS : SYNC_STALE;
}

static void take_items(struct mlflow_sync_job *j, json_t *page, const char *key, enum mlflow_sync_state kind)
{
    json_decref(j->items);
    j->items = json_incref(json_object_get(page, key));
    j->items_pos = 0;
    j->after_upsert = kind;
}

static enum mlflow_sync_state on_runs_page(struct mlflow_sync_job *j, json_t *page)
{
    replace_str(&j->runs_token, page_token(j, page));
    take_items(j, page, "runs", SYNC_RUNS);
    return next_slice(j);
}

/* ---- registry ------------------------------------------------------------------- */

/* A GET of one registry page. The token is at most TOKEN_MAX (page_token), so the
 * query always fits; if it did not, the call is made without a URL and fails like
 * any failed call (from the loop). */
static void registry_call(struct mlflow_sync_job *j, const char *path, int page, const char *token)
{
    char q[TOKEN_MAX * 3 + 64] = "";
    char n[16];
    snprintf(n, sizeof n, "%d", page);
    if (mlflow_query_add(q, sizeof q, "max_results", n) < 0 ||
        (token && mlflow_query_add(q, sizeof q, "page_token", token) < 0)) {
        log_error("mlflow sync %s: a page token does not fit the query", j->o.tenant);
        struct fetch_request bad = {.url = "", .target = "mlflow"};
        j->call = io()->call(ctx.io_arg, j, &bad);
        return;
    }
    call(j, "GET", path, q, NULL);
}

static void issue_models(struct mlflow_sync_job *j)
{
    registry_call(j, "/api/2.0/mlflow/registered-models/search", MODEL_PAGE, j->models_token);
}

static void issue_versions(struct mlflow_sync_job *j)
{
    registry_call(j, "/api/2.0/mlflow/model-versions/search", VERSION_PAGE, j->versions_token);
}

/* Remember aliases ("name\x1fversion" -> "a,b") and prompt names of one page. */
static void collect_models(struct mlflow_sync_job *j, const json_t *page)
{
    if (!j->aliases)
        j->aliases = json_object();
    if (!j->prompts)
        j->prompts = json_object();
    size_t i, k;
    const json_t *m, *a;
    json_array_foreach(json_object_get(page, "registered_models"), i, m) {
        const char *name = mlflow_str(m, "name");
        if (!name)
            continue;
        if (mlflow_tags_is_prompt(json_object_get(m, "tags"))) {
            json_object_set_new(j->prompts, name, json_true());
            continue;
        }
        json_array_foreach(json_object_get(m, "aliases"), k, a) {
            const char *alias = mlflow_str(a, "alias"), *ver = mlflow_str(a, "version");
            if (!alias || !ver)
                continue;
            char key[1024], val[1024];
            snprintf(key, sizeof key, "%s\x1f%s", name, ver);
            const char *old = mlflow_str(j->aliases, key);
            snprintf(val, sizeof val, "%s%s%s", old ? old : "", old ? "," : "", alias);
            json_object_set_new(j->aliases, key, json_string(val));
        }
    }
}

static enum mlflow_sync_state on_versions_page(struct mlflow_sync_job *j, json_t *page)
{
    replace_str(&j->versions_token, page_token(j, page));
    take_items(j, page, "model_versions", SYNC_VERSIONS);
    return next_slice(j);
}

/* ---- statements (their text is mlflow_store's) ----------------------------------- */

static void issue_upsert(struct mlflow_sync_job *j)
{
    char q[MLFLOW_SQL_MAX];
    sql(j, q, sizeof q, MLFLOW_SQL_SYNC_UPSERT);
    const char *params[] = {j->batch, j->started_at};
    struct db_stmt s = {q, 2, params};
    submit(j, &s, 1);
    free(j->batch); /* the pool copied it */
    j->batch = NULL;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void model_event(struct mlflow_sync_job *j, const struct mlflow_store_change *c, json_t *changed)
{
    ctx.event(ctx.arg, "mlflow.model.changed", j->o.org_id, j->o.tenant, j->o.user_id,
              json_pack("{s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:I}", "name", c->name, "version", c->version, "kind",
                        str_or_null(c->record_kind), "change", c->change, "changed",
                        changed ? changed : json_array(), "stage", str_or_null(c->stage), "status",
                        str_or_null(c->status), "syncId", (json_int_t)j->sync_id));
}

static void on_upserted(struct mlflow_sync_job *j, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow sync %s: storing %d record(s) failed: %s (%s)", j->o.tenant, j->batch_n,
                  res->message, res->sqlstate);
        note_failure(j, "Failed to store model records");
        return;
    }
    static const char *const fields[MLFLOW_CHANGED_FIELDS] = {"stage", "aliases", "status", "description", "tags"};
    const PGresult *pr = db_last(res);
    for (int i = 0; i < PQntuples(pr); i++) {
        struct mlflow_store_change c;
        mlflow_store_upserted(pr, i, &c);
        if (strcmp(c.change, "unchanged") == 0) {
            j->unchanged++;
            continue;
        }
        json_t *changed = json_array();
        if (c.change[0] == 'n') {
            j->created++;
        } else {
            j->updated++;
            for (int f = 0; f < MLFLOW_CHANGED_FIELDS; f++)
                if (c.changed[f])
                    json_array_append_new(changed, json_string(fields[f]));
        }
        model_event(j, &c, changed);
    }
}

static void issue_stale(struct mlflow_sync_job *j)
{
    char q[MLFLOW_SQL_MAX];
    sql(j, q, sizeof q, MLFLOW_SQL_SYNC_STALE);
    const char *params[] = {j->started_at};
    struct db_stmt s = {q, 1, params};
    submit(j, &s, 1);
}

static void issue_load(struct mlflow_sync_job *j)
{
    char q[MLFLOW_SQL_MAX];
    sql(j, q, sizeof q, MLFLOW_SQL_CONFIG_SELECT);
    submit(j, &(struct db_stmt){q, 0, NULL}, 1);
}

static void issue_acquire(struct mlflow_sync_job *j)
{
    char q[MLFLOW_SQL_MAX], user[24];
    sql(j, q, sizeof q, MLFLOW_SQL_SYNC_ACQUIRE);
    snprintf(user, sizeof user, "%lld", j->o.user_id);
    const char *params[] = {j->lock_name, j->holder, trigger_name(j), user, instance_id};
    submit(j, &(struct db_stmt){q, 5, params}, 1);
}

static void issue_skip(struct mlflow_sync_job *j)
{
    char q1[MLFLOW_SQL_MAX], q2[MLFLOW_SQL_MAX];
    sql(j, q1, sizeof q1, MLFLOW_SQL_SYNC_SKIP_HISTORY);
    sql(j, q2, sizeof q2, MLFLOW_SQL_SYNC_SKIP_CONFIG);
    const char *p1[] = {j->skip_msg, instance_id}, *p2[] = {j->skip_msg, j->config_id};
    const struct db_stmt s[] = {{q1, 2, p1}, {q2, 2, p2}};
    submit(j, s, 2);
}

/* The outcome of a sync that got its lease. */
static void outcome(const struct mlflow_sync_job *j, const char **status, char *msg, size_t len)
{
    int landed = j->created + j->updated + j->unchanged;
    const char *via = j->o.trigger == MLFLOW_TRIGGER_SCHEDULED ? "scheduled job" : "manual sync";
    if (j->failures == 0) {
        *status = "success";
        snprintf(msg, len, "Synced %d model(s) via %s", landed, via);
    } else if (landed == 0) {
        *status = "error";
        snprintf(msg, len, "%s", j->first_error);
    } else {
        *status = "partial";
        if (j->failed_experiments)
            snprintf(msg, len, "Synced %d model(s) via %s; %d of %d experiment(s) and %d other request(s) failed: %s",
                     landed, via, j->failed_experiments, j->exps_total, j->failures - j->failed_experiments,
                     j->first_error);
        else
            snprintf(msg, len, "Synced %d model(s) via %s; %d request(s) failed: %s", landed, via, j->failures,
                     j->first_error);
    }
    if (strlen(msg) > MESSAGE_MAX)
        msg[MESSAGE_MAX] = '\0';
}

static void issue_finish(struct mlflow_sync_job *j)
{
    const char *status;
    char msg[1200];
    outcome(j, &status, msg, sizeof msg);
    char q1[MLFLOW_SQL_MAX], q2[MLFLOW_SQL_MAX], q3[MLFLOW_SQL_MAX];
    sql(j, q1, sizeof q1, MLFLOW_SQL_SYNC_FINISH_HISTORY);
    sql(j, q2, sizeof q2, MLFLOW_SQL_SYNC_FINISH_CONFIG);
    sql(j, q3, sizeof q3, MLFLOW_SQL_SYNC_RELEASE);
    char n[7][16];
    int v[7] = {j->fetched, j->created, j->updated, j->unchanged, j->stale, j->skipped, j->failures};
    for (int i = 0; i < 7; i++)
        snprintf(n[i], sizeof n[i], "%d", v[i]);
    const char *p1[] = {j->sync_id_s, status, msg, n[0], n[1], n[2], n[3], n[4], n[5], n[6]};
    const char *p2[] = {j->config_id, status, msg};
    const char *p3[] = {j->lock_name, j->holder};
    const struct db_stmt s[] = {{q1, 10, p1}, {q2, 3, p2}, {q3, 2, p3}};
    submit(j, s, 3);
}

static void finished(struct mlflow_sync_job *j, bool recorded)
{
    ctx.invalidate(ctx.arg, j->o.tenant); /* sync-status: before anyone is told */
    const char *status;
    char msg[1200];
    outcome(j, &status, msg, sizeof msg);
    struct mlflow_sync_result r = {
        .status = status, .message = msg, .network_error = j->network_error, .sync_id = j->sync_id,
        .fetched = j->fetched, .created = j->created, .updated = j->updated, .unchanged = j->unchanged,
        .stale = j->stale, .skipped = j->skipped, .failures = j->failures,
    };
    log_fields(strcmp(status, "success") == 0 ? LOG_INFO : LOG_WARN, "mlflow sync completed",
               json_pack("{s:s,s:I,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:b}", "tenant",
                         j->o.tenant, "sync_id", (json_int_t)j->sync_id, "trigger", trigger_name(j), "status",
                         status, "message", msg, "fetched", j->fetched, "new", j->created, "updated", j->updated,
                         "unchanged", j->unchanged, "stale", j->stale, "skipped", j->skipped, "failures",
                         j->failures, "statements", j->statements, "requests", j->requests, "duration_ms",
                         (json_int_t)(((int64_t)clock_mono_us() - j->t0_us) / 1000), "recorded", recorded));
    if (recorded)
        ctx.event(ctx.arg, "mlflow.sync.completed", j->o.org_id, j->o.tenant, j->o.user_id,
                  json_pack("{s:I,s:s,s:s,s:s,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i}}", "syncId", (json_int_t)j->sync_id,
                            "trigger", trigger_name(j), "status", status, "message", msg, "counts", "fetched",
                            j->fetched, "new", j->created, "updated", j->updated, "unchanged", j->unchanged,
                            "stale", j->stale, "skipped", j->skipped, "failures", j->failures));
    if (j->o.req && j->o.finished && http_req_alive(j->o.req))
        j->o.finished(j->o.req, &r);
    notify_watchers(j, MLFLOW_GATE_STARTED, &r);
}

/* ---- the state machine ------------------------------------------------------------ */

/* Enter the current state: start its one wait. */
static void enter(struct mlflow_sync_job *j)
{
    switch (j->state) {
    case SYNC_LOAD:
        issue_load(j);
        return;
    case SYNC_ACQUIRE:
        issue_acquire(j);
        return;
    case SYNC_EXPERIMENTS:
        issue_experiments(j);
        return;
    case SYNC_RUNS:
        issue_runs(j);
        return;
    case SYNC_UPSERT:
        issue_upsert(j);
        return;
    case SYNC_MODELS:
        issue_models(j);
        return;
    case SYNC_VERSIONS:
        issue_versions(j);
        return;
    case SYNC_STALE:
        if (j->failures || j->fatal) { /* an incomplete view says nothing about what disappeared */
            set_state(j, SYNC_FINISH);
            enter(j);
            return;
        }
        issue_stale(j);
        return;
    case SYNC_FINISH:
        issue_finish(j);
        return;
    case SYNC_SKIP:
        issue_skip(j);
        return;
    case SYNC_DONE:
        return;
    default:
        MACHINE_IMPOSSIBLE(&sync_def, j->state);
    }
}

static void go(struct mlflow_sync_job *j, enum mlflow_sync_state s)
{
    set_state(j, s);
    enter(j);
}

/* Fatal database trouble before the lease: end quietly with the right gate. */
static void db_gate_failure(struct mlflow_sync_job *j, const struct db_result *res, const char *what)
{
    if (res->status == DB_UNAVAILABLE) {
        gate(j, MLFLOW_GATE_DB_UNAVAILABLE);
    } else {
        log_error("mlflow sync %s: %s failed: %s (%s)", j->o.tenant, what, res->message, res->sqlstate);
        gate(j, MLFLOW_GATE_FAILED);
    }
    job_end(j);
}

static void step_load(struct mlflow_sync_job *j, const struct db_result *res)
{
    if (res->status == DB_SQL_ERROR && strcmp(res->sqlstate, "42P01") == 0) {
        gate(j, MLFLOW_GATE_NOT_CONFIGURED); /* tenant tables not created by this version yet */
        job_end(j);
        return;
    }
    if (res->status != DB_OK) {
        db_gate_failure(j, res, "reading the configuration");
        return;
    }
    const PGresult *pr = db_last(res);
    struct mlflow_config_row row;
    if (!mlflow_store_config_row(pr, &row)) {
        gate(j, MLFLOW_GATE_NOT_CONFIGURED);
        job_end(j);
        return;
    }
    snprintf(j->config_id, sizeof j->config_id, "%s", row.id);
    snprintf(j->test_status, sizeof j->test_status, "%s", row.test_status ? row.test_status : "");
    if (j->o.trigger == MLFLOW_TRIGGER_SCHEDULED && strcmp(j->test_status, "success") != 0) {
        j->skip_msg = !row.test_status ? "Scheduled sync skipped: run a successful connection test."
                                       : "Scheduled sync skipped: last connection test failed";
        go(j, SYNC_SKIP);
        return;
    }
    if (mlflow_conn_from_row(ctx.secrets, pr, &j->conn) < 0) {
        log_error("mlflow sync %s: stored credentials cannot be decrypted with ENCRYPTION_PASSWORD", j->o.tenant);
        j->conn.url[0] = '\0';
        note_failure(j, "Failed to decrypt the stored MLFlow credentials");
        j->fatal = true;
    }
    go(j, SYNC_ACQUIRE);
}

static void step_acquire(struct mlflow_sync_job *j, const struct db_result *res)
{
    if (res->status != DB_OK) {
        db_gate_failure(j, res, "taking the sync lease");
        return;
    }
    if (!mlflow_store_acquired(db_last(res), j->sync_id_s, sizeof j->sync_id_s, j->started_at,
                               sizeof j->started_at)) {
        log_info("mlflow sync %s: a sync is already running (lease held); not starting another", j->o.tenant);
        gate(j, MLFLOW_GATE_BUSY);
        job_end(j);
        return;
    }
    j->leased = true;
    j->sync_id = strtoll(j->sync_id_s, NULL, 10);
    if (io()->arm(ctx.io_arg, j, MLFLOW_TIMER_RENEW, RENEW_SECONDS * 1000L) < 0)
        log_warn("mlflow sync %s: cannot arm the lease renewal", j->o.tenant);
    gate(j, MLFLOW_GATE_STARTED);
    log_fields(LOG_INFO, "mlflow sync started",
               json_pack("{s:s,s:I,s:s}", "tenant", j->o.tenant, "sync_id", (json_int_t)j->sync_id, "trigger",
                         trigger_name(j)));
    go(j, j->fatal ? SYNC_FINISH : SYNC_EXPERIMENTS);
}

static void step_experiments(struct mlflow_sync_job *j, const struct fetch_response *res)
{
    bool retrying;
    json_t *page = call_result(j, res, &retrying);
    if (retrying)
        return;
    if (!page) {
        /* without this page the rest of the experiments cannot be listed */
        go(j, j->fatal ? SYNC_FINISH : SYNC_MODELS);
        return;
    }
    replace_str(&j->exp_token, page_token(j, page));
    json_decref(j->exps);
    j->exps = json_incref(json_object_get(page, "experiments"));
    json_decref(page);
    if (!json_is_array(j->exps)) {
        json_decref(j->exps);
        j->exps = json_array();
    }
    json_decref(j->exp_index);
    if (!(j->exp_index = mlflow_experiment_index(j->exps))) {
        note_failure(j, "Out of memory while indexing experiments");
        j->fatal = true;
        go(j, SYNC_FINISH);
        return;
    }
    size_t n = json_array_size(j->exps);
    j->exps_total += (int)n;
    j->chunk_start = 0;
    j->chunk_len = n < RUN_CHUNK ? n : RUN_CHUNK;
    j->split = false;
    j->split_pos = 0;
    replace_str(&j->runs_token, NULL);
    if (n)
        go(j, SYNC_RUNS);
    else
        go(j, runs_advance(j));
}

static void step_runs(struct mlflow_sync_job *j, const struct fetch_response *res)
{
    bool retrying;
    int failures_before = j->failures;
    bool had_error = j->first_error[0] != '\0';
    json_t *page = call_result(j, res, &retrying);
    if (retrying)
        return;
    if (!page) {
        if (j->fatal) {
            go(j, SYNC_FINISH);
            return;
        }
        if (j->over_budget && j->run_page > 1) {
            /* the same page again with fewer runs: not a failure yet */
            j->failures = failures_before;
            if (!had_error)
                j->first_error[0] = '\0';
            j->run_page = j->run_page / 4 > 1 ? j->run_page / 4 : 1;
            log_info("mlflow sync %s: a runs page was over the budget; asking %d run(s) per page", j->o.tenant,
                     j->run_page);
            go(j, SYNC_RUNS);
            return;
        }
        if (!j->split && j->chunk_len > 1) {
            /* isolate the experiment(s) that fail: retry this chunk one by one */
            j->failures = failures_before;
            j->split = true;
            j->split_pos = 0;
            replace_str(&j->runs_token, NULL);
            go(j, SYNC_RUNS);
            return;
        }
        j->failed_experiments++;
        go(j, runs_advance(j));
        return;
    }
    enum mlflow_sync_state next = on_runs_page(j, page);
    json_decref(page);
    go(j, next);
}

static void step_upsert(struct mlflow_sync_job *j, const struct db_result *res)
{
    if (res->status == DB_UNAVAILABLE) {
        note_failure(j, "Database unavailable while storing model records");
        j->fatal = true;
    } else {
        on_upserted(j, res);
    }
    if (j->fatal) {
        go(j, SYNC_FINISH);
        return;
    }
    go(j, next_slice(j));
}

static void step_models(struct mlflow_sync_job *j, const struct fetch_response *res)
{
    bool retrying;
    json_t *page = call_result(j, res, &retrying);
    if (retrying)
        return;
    if (!page) { /* without aliases and prompt names the versions would be wrong */
        go(j, SYNC_FINISH);
        return;
    }
    collect_models(j, page);
    replace_str(&j->models_token, page_token(j, page));
    json_decref(page);
    go(j, j->models_token ? SYNC_MODELS : SYNC_VERSIONS);
}

static void step_versions(struct mlflow_sync_job *j, const struct fetch_response *res)
{
    bool retrying;
    json_t *page = call_result(j, res, &retrying);
    if (retrying)
        return;
    if (!page) {
        go(j, SYNC_FINISH);
        return;
    }
    enum mlflow_sync_state next = on_versions_page(j, page);
    json_decref(page);
    go(j, next);
}

static void step_stale(struct mlflow_sync_job *j, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow sync %s: marking stale records failed: %s", j->o.tenant, res->message);
        note_failure(j, "Failed to mark stale model records");
        go(j, SYNC_FINISH);
        return;
    }
    const PGresult *pr = db_last(res);
    int n = PQntuples(pr);
    for (int i = 0; i < n; i++) {
        struct mlflow_store_change c;
        mlflow_store_staled(pr, i, &c);
        j->stale++;
        model_event(j, &c, NULL);
    }
    go(j, n == MLFLOW_STALE_BATCH ? SYNC_STALE : SYNC_FINISH);
}

static void step_finish(struct mlflow_sync_job *j, const struct db_result *res)
{
    bool ok = res->status == DB_OK;
    if (!ok)
        log_error("mlflow sync %s: recording the outcome failed: %s", j->o.tenant,
                  res->status == DB_UNAVAILABLE ? "database unavailable" : res->message);
    finished(j, ok);
    job_end(j);
}

/* A cancel (shutdown): free the job without telling anyone but its watchers; its
 * call and timers are dropped, its lease expires on its own. */
static void cancel(struct mlflow_sync_job *j)
{
    if (j->leased)
        log_warn("mlflow sync %s: stopped while running; its lease expires within %d s", j->o.tenant,
                 MLFLOW_LEASE_SECONDS);
    j->o.ended = NULL;
    set_state(j, SYNC_DONE);
    job_free(j);
}

/* Does the state wait for a query (else for a call)? DONE waits for nothing: the job is
 * freed on reaching it. */
static bool waits_for_query(const struct mlflow_sync_job *j)
{
    switch (j->state) {
    case SYNC_LOAD:
    case SYNC_SKIP:
    case SYNC_ACQUIRE:
    case SYNC_UPSERT:
    case SYNC_STALE:
    case SYNC_FINISH:
        return true;
    case SYNC_EXPERIMENTS:
    case SYNC_RUNS:
    case SYNC_MODELS:
    case SYNC_VERSIONS:
        return false;
    case SYNC_DONE:
    default:
        MACHINE_IMPOSSIBLE(&sync_def, j->state);
    }
}

/* The state's answer (a db result or a call's answer) arrived. */
static void step_answer(struct mlflow_sync_job *j, const struct machine_input *in)
{
    /* each state waits for one kind of answer; no other one is in flight */
    if (waits_for_query(j) != (in->kind == MI_DB))
        MACHINE_IMPOSSIBLE(&sync_def, j->state);
    switch (j->state) {
    case SYNC_LOAD:
        step_load(j, in->db);
        return;
    case SYNC_SKIP:
        if (in->db->status != DB_OK)
            log_error("mlflow sync %s: recording a skipped scheduled sync failed", j->o.tenant);
        gate(j, MLFLOW_GATE_SKIPPED);
        job_end(j);
        return;
    case SYNC_ACQUIRE:
        step_acquire(j, in->db);
        return;
    case SYNC_EXPERIMENTS:
        step_experiments(j, in->fetch);
        return;
    case SYNC_RUNS:
        step_runs(j, in->fetch);
        return;
    case SYNC_UPSERT:
        step_upsert(j, in->db);
        return;
    case SYNC_MODELS:
        step_models(j, in->fetch);
        return;
    case SYNC_VERSIONS:
        step_versions(j, in->fetch);
        return;
    case SYNC_STALE:
        step_stale(j, in->db);
        return;
    case SYNC_FINISH:
        step_finish(j, in->db);
        return;
    case SYNC_DONE:
    default:
        MACHINE_IMPOSSIBLE(&sync_def, j->state);
    }
}

/* The one step function: every input of a job arrives here. */
void mlflow_sync_step(struct mlflow_sync_job *j, const struct machine_input *in)
{
    switch (in->kind) {
    case MI_ENTER:
        enter(j);
        return;
    case MI_TIMER:
        /* only a state waiting for a call arms the retry timer, and stays until it fires */
        switch (j->state) {
        case SYNC_EXPERIMENTS:
        case SYNC_RUNS:
        case SYNC_MODELS:
        case SYNC_VERSIONS:
            enter(j);
            return;
        default:
            MACHINE_IMPOSSIBLE(&sync_def, j->state);
        }
    case MI_DB:
        step_answer(j, in);
        return;
    case MI_FETCH:
        j->call = NULL; /* the handle is gone with its answer */
        step_answer(j, in);
        return;
    case MI_CANCEL:
        cancel(j);
        return;
    case MI_EVENT:
    default:
        MACHINE_IMPOSSIBLE(&sync_def, j->state);
    }
}

int mlflow_sync_start(const struct mlflow_sync_opts *o)
{
    if (!tenant_name_valid(o->tenant))
        return -1;
    struct mlflow_sync_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    *j = (struct mlflow_sync_job){.o = *o, .state = SYNC_LOAD, .seq = ++job_seq, .run_page = RUN_PAGE};
    j->t0_us = (int64_t)clock_mono_us();
    snprintf(j->who, sizeof j->who, "%s/%u", o->tenant, j->seq);
    snprintf(j->holder, sizeof j->holder, "%s:%u", instance_id, j->seq);
    snprintf(j->lock_name, sizeof j->lock_name, "mlflow-sync:%s", o->tenant);
    if (o->watch && add_watch(j, o->watch, o->watch_arg) < 0) {
        free(j);
        return -1;
    }
    if (o->req)
        http_req_ref(o->req);
    j->next = jobs;
    jobs = j;
    mlflow_sync_step(j, &(struct machine_input){.kind = MI_ENTER});
    return 0;
}

void mlflow_sync_stop_all(void)
{
    while (jobs)
        mlflow_sync_step(jobs, &(struct machine_input){.kind = MI_CANCEL});
}

/* ---- the real I/O: the pool, the fetch client, libevent timers ---------------------- */

static void on_db(const struct db_result *res, void *arg)
{
    mlflow_sync_step(arg, &(struct machine_input){.kind = MI_DB, .db = res});
}

static void on_fetch(const struct fetch_response *res, void *arg)
{
    mlflow_sync_step(arg, &(struct machine_input){.kind = MI_FETCH, .fetch = res});
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    mlflow_sync_step(arg, &(struct machine_input){.kind = MI_TIMER});
}

static void on_renewed(const struct db_result *res, void *arg)
{
    (void)arg;
    if (res->status != DB_OK)
        log_warn("mlflow sync: renewing a lease failed");
    else if (PQntuples(db_last(res)) == 0)
        log_warn("mlflow sync: a lease was lost before it was renewed");
}

/* The lease renewal is housekeeping beside the machine: its answer is only logged. */
static void on_renew(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct mlflow_sync_job *j = arg;
    const struct mlflow_sync_net *net = ctx.io_arg;
    char q[MLFLOW_SQL_MAX];
    if (mlflow_store_sql(q, sizeof q, MLFLOW_SQL_SYNC_RENEW, NULL) < 0)
        return;
    const char *params[] = {j->lock_name, j->holder};
    db_query(net->db, q, 2, params, on_renewed, NULL);
}

static void net_submit(void *io_arg, struct mlflow_sync_job *j, const struct db_stmt *stmts, int n)
{
    const struct mlflow_sync_net *net = io_arg;
    db_submit(net->db, stmts, n, on_db, j);
}

static void *net_call(void *io_arg, struct mlflow_sync_job *j, const struct fetch_request *req)
{
    const struct mlflow_sync_net *net = io_arg;
    return fetch_start(net->fetch, req, on_fetch, j);
}

static void net_cancel(void *io_arg, void *f)
{
    (void)io_arg;
    fetch_cancel(f);
}

static int net_arm(void *io_arg, struct mlflow_sync_job *j, enum mlflow_sync_timer t, long ms)
{
    const struct mlflow_sync_net *net = io_arg;
    struct event **ev = t == MLFLOW_TIMER_RENEW ? &j->renew : &j->timer;
    if (!*ev) {
        *ev = t == MLFLOW_TIMER_RENEW ? event_new(net->base, -1, EV_PERSIST, on_renew, j)
                                      : evtimer_new(net->base, on_timer, j);
        if (!*ev)
            return -1;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return event_add(*ev, &tv) < 0 ? -1 : 0;
}

static void net_release(void *io_arg, struct mlflow_sync_job *j)
{
    (void)io_arg;
    if (j->timer)
        event_free(j->timer);
    if (j->renew)
        event_free(j->renew);
    j->timer = j->renew = NULL;
}

const struct mlflow_sync_io mlflow_sync_io_default = {
    .submit = net_submit,
    .call = net_call,
    .cancel = net_cancel,
    .arm = net_arm,
    .release = net_release,
};
