/* integrations/mlflow_sync: owns the MLflow sync job: its state machine, the lease
 * of the tenant (public.integration_locks), the paging through MLflow, the batch
 * upserts with change detection, stale marking, the outcome and its records
 * (configuration row, mlflow_sync_history, events), and the list of live jobs.
 *
 * States (one step function, sync_step, takes every input):
 *   LOAD -> [SKIP ->] ACQUIRE -> EXPERIMENTS <-> RUNS <-> UPSERT -> MODELS -> VERSIONS <-> UPSERT
 *        -> STALE -> FINISH -> DONE
 * (UPSERT repeats for each slice of UPSERT_SLICE records of one page.)
 * Each state waits for exactly one thing (a query, a call, or a retry timer), so a
 * job is freed only in DONE or by mlflow_sync_stop_all (then the pool and the fetch
 * client drop their callbacks; see app_free's order).
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
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "db/pool.h"
#include "db/schema.h"
#include "http/request.h"
#include "integrations/mlflow_client.h"
#include "integrations/mlflow_map.h"
#include "jobs/retry.h"
#include "log.h"
#include "net/fetch.h"
#include "util/clock.h"

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
#define STALE_BATCH 1000
#define UPSERT_SLICE 200        /* records mapped and stored per step: a page holding more
                                 * (a server ignoring max_results) is stored in slices, so
                                 * no loop iteration maps or records an unbounded number */
#define TOKEN_MAX 4096
#define LEASE_SECONDS 60
#define LEASE_INTERVAL "60 seconds" /* = LEASE_SECONDS */
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

enum sync_input_kind { IN_ENTER, IN_DB, IN_FETCH, IN_TIMER };

struct sync_input {
    enum sync_input_kind kind;
    const struct db_result *db;
    const struct fetch_response *fetch;
};

struct sync_watch {
    struct sync_watch *next;
    mlflow_sync_watch_fn fn;
    void *arg;
};

struct sync_job {
    struct sync_job *next;
    struct sync_watch *watchers; /* called once each, then freed */
    struct mlflow_sync_opts o;
    enum mlflow_sync_state state;
    unsigned seq;
    bool gated;                 /* o.gate already called */
    bool leased;
    char holder[64], lock_name[64];
    char config_id[24], sync_id_s[24], started_at[40];
    long long sync_id;
    char test_status[16];
    struct mlflow_conn conn;
    struct fetch *fetch;
    struct event *timer;        /* retry wait */
    struct event *renew;        /* lease renewal */
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

static struct sync_job *jobs;
static unsigned job_seq;
static char instance_id[33];
static uint64_t rng_state;

static void sync_step(struct sync_job *j, const struct sync_input *in);

/* ---- small helpers ------------------------------------------------------------- */

static double rand01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

int mlflow_sync_init(void)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(instance_id + 2 * i, 3, "%02x", b[i]);
    memcpy(&rng_state, b, sizeof rng_state);
    if (!rng_state)
        rng_state = 0x9e3779b97f4a7c15ull;
    return 0;
}

const char *mlflow_instance_id(void)
{
    return instance_id;
}

bool mlflow_sync_running(const char *tenant)
{
    for (struct sync_job *j = jobs; j; j = j->next)
        if (strcmp(j->o.tenant, tenant) == 0)
            return true;
    return false;
}

int mlflow_sync_count(void)
{
    int n = 0;
    for (struct sync_job *j = jobs; j; j = j->next)
        n++;
    return n;
}

static const char *trigger_name(const struct sync_job *j)
{
    return j->o.trigger == MLFLOW_TRIGGER_SCHEDULED ? "scheduled" : "manual";
}

static int table(const struct sync_job *j, const char *name, char *buf, size_t len)
{
    return db_table(buf, len, j->o.tenant, name);
}

static void set_state(struct sync_job *j, enum mlflow_sync_state s)
{
    if (log_enabled(LOG_DEBUG))
        log_debug("mlflow sync %s/%u: %s -> %s", j->o.tenant, j->seq, state_names[j->state], state_names[s]);
    j->state = s;
}

static void note_failure(struct sync_job *j, const char *msg)
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
static void notify_watchers(struct sync_job *j, enum mlflow_sync_gate g, const struct mlflow_sync_result *res)
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

static int add_watch(struct sync_job *j, mlflow_sync_watch_fn fn, void *arg)
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
    for (struct sync_job *j = jobs; j; j = j->next)
        if (strcmp(j->o.tenant, tenant) == 0 && j->state != SYNC_DONE)
            return add_watch(j, fn, arg);
    return -1;
}

static void job_free(struct sync_job *j)
{
    notify_watchers(j, MLFLOW_GATE_FAILED, NULL);
    for (struct sync_job **p = &jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    if (j->fetch)
        fetch_cancel(j->fetch);
    if (j->timer)
        event_free(j->timer);
    if (j->renew)
        event_free(j->renew);
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
static void gate(struct sync_job *j, enum mlflow_sync_gate g)
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

static void job_end(struct sync_job *j)
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

static void on_db(const struct db_result *res, void *arg)
{
    struct sync_input in = {IN_DB, res, NULL};
    sync_step(arg, &in);
}

static void submit(struct sync_job *j, const struct db_stmt *stmts, int n)
{
    j->statements += n;
    db_submit(j->o.app->db, stmts, n, on_db, j);
}

static struct mlflow_page_budget budget(const struct sync_job *j)
{
    const struct config *cf = &j->o.app->cfg;
    return (struct mlflow_page_budget){cf->mlflow_page_max_bytes, cf->mlflow_page_max_values,
                                       cf->mlflow_page_max_depth};
}

static void on_fetch(const struct fetch_response *res, void *arg)
{
    struct sync_job *j = arg;
    j->fetch = NULL;
    struct sync_input in = {IN_FETCH, NULL, res};
    sync_step(j, &in);
}

static void call(struct sync_job *j, const char *method, const char *path, const char *query,
                 const json_t *body)
{
    struct mlflow_call c;
    if (mlflow_call_build(&c, &j->conn, method, path, query, body, budget(j).max_bytes) < 0) {
        /* out of memory: answer like a failed call, from the loop */
        log_error("mlflow sync %s: cannot build a request", j->o.tenant);
        struct fetch_request bad = {.url = "", .target = "mlflow"};
        j->fetch = fetch_start(j->o.app->fetch, &bad, on_fetch, j);
        return;
    }
    j->requests++;
    c.req.org_id = j->o.org_id;
    j->fetch = fetch_start(j->o.app->fetch, &c.req, on_fetch, j);
    mlflow_call_clear(&c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sync_input in = {IN_TIMER, NULL, NULL};
    sync_step(arg, &in);
}

static void on_renewed(const struct db_result *res, void *arg)
{
    (void)arg;
    if (res->status != DB_OK)
        log_warn("mlflow sync: renewing a lease failed");
    else if (PQntuples(db_last(res)) == 0)
        log_warn("mlflow sync: a lease was lost before it was renewed");
}

static void on_renew(evutil_socket_t fd, short what, void *arg)
{
    struct sync_job *j = arg;
    const char *params[] = {j->lock_name, j->holder};
    db_query(j->o.app->db,
             "UPDATE public.integration_locks SET expires_at = now() + interval '" LEASE_INTERVAL "' "
             "WHERE name = $1 AND holder = $2 RETURNING name",
             2, params, on_renewed, NULL);
}

/* A failed call: schedule another attempt when it is worth one. Returns true when
 * a retry is pending (the state stays). */
static bool maybe_retry(struct sync_job *j, const struct fetch_response *res)
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
    if (!j->timer && !(j->timer = evtimer_new(j->o.app->base, on_timer, j)))
        return false;
    j->attempt++;
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(j->timer, &tv);
    log_fields(LOG_INFO, "mlflow sync: retrying a request",
               json_pack("{s:s,s:s,s:i,s:I,s:s,s:I}", "tenant", j->o.tenant, "state", state_names[j->state],
                         "attempt", j->attempt, "delay_ms", (json_int_t)delay, "outcome",
                         fetch_outcome_name(res->outcome), "status", (json_int_t)status));
    return true;
}

/* Classify a finished call: returns the parsed body (2xx JSON object), or NULL
 * after recording why (and whether the whole sync must stop). */
static json_t *call_result(struct sync_job *j, const struct fetch_response *res, bool *retrying)
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
static const char *page_token(struct sync_job *j, const json_t *page)
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

static void issue_experiments(struct sync_job *j)
{
    json_t *body = json_pack("{s:i}", "max_results", EXP_PAGE);
    if (j->exp_token)
        json_object_set_new(body, "page_token", json_string(j->exp_token));
    call(j, "POST", "/api/2.0/mlflow/experiments/search", NULL, body);
    json_decref(body);
}

static const char *exp_id_at(const struct sync_job *j, size_t i)
{
    return mlflow_str(json_array_get(j->exps, i), "experiment_id");
}

static void issue_runs(struct sync_job *j)
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
static enum mlflow_sync_state runs_advance(struct sync_job *j)
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
static int build_batch(struct sync_job *j, const json_t *items, size_t from, size_t to, bool runs)
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
static enum mlflow_sync_state next_slice(struct sync_job *j)
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

static void take_items(struct sync_job *j, json_t *page, const char *key, enum mlflow_sync_state kind)
{
    json_decref(j->items);
    j->items = json_incref(json_object_get(page, key));
    j->items_pos = 0;
    j->after_upsert = kind;
}

static enum mlflow_sync_state on_runs_page(struct sync_job *j, json_t *page)
{
    replace_str(&j->runs_token, page_token(j, page));
    take_items(j, page, "runs", SYNC_RUNS);
    return next_slice(j);
}

/* ---- registry ------------------------------------------------------------------- */

static void issue_models(struct sync_job *j)
{
    char q[TOKEN_MAX * 3 + 64] = "";
    char n[16];
    snprintf(n, sizeof n, "%d", MODEL_PAGE);
    mlflow_query_add(q, sizeof q, "max_results", n);
    if (j->models_token)
        mlflow_query_add(q, sizeof q, "page_token", j->models_token);
    call(j, "GET", "/api/2.0/mlflow/registered-models/search", q, NULL);
}

static void issue_versions(struct sync_job *j)
{
    char q[TOKEN_MAX * 3 + 64] = "";
    char n[16];
    snprintf(n, sizeof n, "%d", VERSION_PAGE);
    mlflow_query_add(q, sizeof q, "max_results", n);
    if (j->versions_token)
        mlflow_query_add(q, sizeof q, "page_token", j->versions_token);
    call(j, "GET", "/api/2.0/mlflow/model-versions/search", q, NULL);
}

/* Remember aliases ("name\x1fversion" -> "a,b") and prompt names of one page. */
static void collect_models(struct sync_job *j, const json_t *page)
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

static enum mlflow_sync_state on_versions_page(struct sync_job *j, json_t *page)
{
    replace_str(&j->versions_token, page_token(j, page));
    take_items(j, page, "model_versions", SYNC_VERSIONS);
    return next_slice(j);
}

/* ---- statements ------------------------------------------------------------------ */

#define CONTENT(t)                                                                                  \
    "(" t ".lifecycle_stage, " t ".run_id, " t ".description, " t ".source, " t ".status, " t           \
    ".tags, " t ".metrics, " t ".parameters, " t ".experiment_id, " t ".experiment_name, " t           \
    ".artifact_location, " t ".training_status, " t ".training_started_at, " t ".training_ended_at, " \
    t ".source_version, " t ".model_created_at, " t ".model_updated_at)"
#define MS_TS(c) "'epoch'::timestamp + r." c " * interval '1 millisecond' AS " c

static void issue_upsert(struct sync_job *j)
{
    char t[64], k[64], sql[7168];
    table(j, "mlflow_model_records", t, sizeof t);
    table(j, "integrationsd_mlflow_model_records", k, sizeof k);
    snprintf(sql, sizeof sql,
             "WITH x AS (SELECT DISTINCT ON (model_name, version) * FROM ("
             " SELECT left(r.model_name, 255) AS model_name, left(r.version, 255) AS version,"
             " left(r.lifecycle_stage, 255) AS lifecycle_stage, left(r.run_id, 255) AS run_id,"
             " left(r.description, 65535) AS description, left(r.source, 255) AS source,"
             " left(r.status, 255) AS status, COALESCE(r.tags, '{}') AS tags,"
             " COALESCE(r.metrics, '{}') AS metrics, COALESCE(r.parameters, '{}') AS parameters,"
             " left(r.experiment_id, 255) AS experiment_id, left(r.experiment_name, 255) AS experiment_name,"
             " left(r.artifact_location, 65535) AS artifact_location,"
             " left(r.training_status, 255) AS training_status, " MS_TS("training_started_at") ", "
             MS_TS("training_ended_at") ", left(r.source_version, 255) AS source_version, "
             MS_TS("model_created_at") ", " MS_TS("model_updated_at") ", left(r.record_kind, 16) AS record_kind"
             " FROM jsonb_to_recordset($1::jsonb) AS r(record_kind text, model_name text, version text,"
             " lifecycle_stage text, run_id text, description text, source text, status text,"
             " experiment_id text, experiment_name text, artifact_location text, training_status text,"
             " source_version text, tags jsonb, metrics jsonb, parameters jsonb,"
             " training_started_at bigint, training_ended_at bigint, model_created_at bigint,"
             " model_updated_at bigint)"
             " WHERE r.model_name <> '' AND r.version <> '') s ORDER BY model_name, version),"
             " old AS (SELECT o.*, d.deleted_at FROM %s o JOIN x ON o.model_name = x.model_name"
             " AND o.version = x.version LEFT JOIN %s d ON d.record_id = o.id),"
             " up AS (INSERT INTO %s AS t (model_name, version, lifecycle_stage, run_id, description, source,"
             " status, tags, metrics, parameters, experiment_id, experiment_name, artifact_location,"
             " training_status, training_started_at, training_ended_at, source_version, model_created_at,"
             " model_updated_at, last_synced_at, created_at, updated_at)"
             " SELECT model_name, version, lifecycle_stage, run_id, description, source, status, tags,"
             " metrics, parameters, experiment_id, experiment_name, artifact_location, training_status,"
             " training_started_at, training_ended_at, source_version, model_created_at, model_updated_at,"
             " $2::timestamp, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM x"
             " ON CONFLICT (model_name, version) DO UPDATE SET lifecycle_stage = EXCLUDED.lifecycle_stage,"
             " run_id = EXCLUDED.run_id, description = EXCLUDED.description, source = EXCLUDED.source,"
             " status = EXCLUDED.status, tags = EXCLUDED.tags, metrics = EXCLUDED.metrics,"
             " parameters = EXCLUDED.parameters, experiment_id = EXCLUDED.experiment_id,"
             " experiment_name = EXCLUDED.experiment_name, artifact_location = EXCLUDED.artifact_location,"
             " training_status = EXCLUDED.training_status, training_started_at = EXCLUDED.training_started_at,"
             " training_ended_at = EXCLUDED.training_ended_at, source_version = EXCLUDED.source_version,"
             " model_created_at = EXCLUDED.model_created_at, model_updated_at = EXCLUDED.model_updated_at,"
             " last_synced_at = EXCLUDED.last_synced_at,"
             " updated_at = CASE WHEN t.id IN (SELECT id FROM old WHERE deleted_at IS NOT NULL) OR "
             CONTENT("t") " IS DISTINCT FROM "
             CONTENT("EXCLUDED") " THEN now() AT TIME ZONE 'UTC' ELSE t.updated_at END"
             " RETURNING t.*),"
             /* integrationsd's own columns of each record: its kind, and live again */
             " kd AS (INSERT INTO %s (record_id, record_kind, deleted_at)"
             " SELECT u.id, x.record_kind, NULL FROM up u JOIN x ON x.model_name = u.model_name"
             " AND x.version = u.version ON CONFLICT (record_id) DO UPDATE"
             " SET record_kind = EXCLUDED.record_kind, deleted_at = NULL)"
             " SELECT u.model_name, u.version,"
             " CASE WHEN o.id IS NULL THEN 'new' WHEN o.deleted_at IS NOT NULL OR " CONTENT("o")
             " IS DISTINCT FROM " CONTENT("u") " THEN 'updated' ELSE 'unchanged' END,"
             " o.lifecycle_stage IS DISTINCT FROM u.lifecycle_stage,"
             " (o.tags -> '" MLFLOW_ALIASES_TAG "') IS DISTINCT FROM (u.tags -> '" MLFLOW_ALIASES_TAG "'),"
             " o.status IS DISTINCT FROM u.status, o.description IS DISTINCT FROM u.description,"
             " (o.tags - '" MLFLOW_ALIASES_TAG "') IS DISTINCT FROM (u.tags - '" MLFLOW_ALIASES_TAG "'),"
             " u.lifecycle_stage, u.status, x.record_kind"
             " FROM up u JOIN x ON x.model_name = u.model_name AND x.version = u.version"
             " LEFT JOIN old o ON o.model_name = u.model_name AND o.version = u.version",
             t, k, t, k);
    const char *params[] = {j->batch, j->started_at};
    struct db_stmt s = {sql, 2, params};
    submit(j, &s, 1);
    free(j->batch); /* the pool copied it */
    j->batch = NULL;
}

static json_t *str_or_null(const PGresult *res, int i, int col)
{
    return PQgetisnull(res, i, col) ? json_null() : json_string(PQgetvalue(res, i, col));
}

static void model_event(struct sync_job *j, const PGresult *res, int i, const char *change, json_t *changed,
                        int stage_col)
{
    app_event(j->o.app, "mlflow.model.changed", j->o.org_id, j->o.tenant, j->o.user_id,
              json_pack("{s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:I}", "name", PQgetvalue(res, i, 0), "version",
                        PQgetvalue(res, i, 1), "kind", str_or_null(res, i, stage_col + 2), "change", change,
                        "changed", changed ? changed : json_array(), "stage", str_or_null(res, i, stage_col),
                        "status", str_or_null(res, i, stage_col + 1), "syncId", (json_int_t)j->sync_id));
}

static void on_upserted(struct sync_job *j, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("mlflow sync %s: storing %d record(s) failed: %s (%s)", j->o.tenant, j->batch_n,
                  res->message, res->sqlstate);
        note_failure(j, "Failed to store model records");
        return;
    }
    static const char *const fields[] = {"stage", "aliases", "status", "description", "tags"};
    const PGresult *pr = db_last(res);
    for (int i = 0; i < PQntuples(pr); i++) {
        const char *kind = PQgetvalue(pr, i, 2);
        if (strcmp(kind, "unchanged") == 0) {
            j->unchanged++;
            continue;
        }
        json_t *changed = json_array();
        if (kind[0] == 'n') {
            j->created++;
        } else {
            j->updated++;
            for (int f = 0; f < 5; f++)
                if (PQgetvalue(pr, i, 3 + f)[0] == 't')
                    json_array_append_new(changed, json_string(fields[f]));
        }
        model_event(j, pr, i, kind, changed, 8);
    }
}

static void issue_stale(struct sync_job *j)
{
    char t[64], k[64], sql[1024];
    table(j, "mlflow_model_records", t, sizeof t);
    table(j, "integrationsd_mlflow_model_records", k, sizeof k);
    snprintf(sql, sizeof sql,
             "WITH s AS (SELECT r.id FROM %s r LEFT JOIN %s d ON d.record_id = r.id WHERE d.deleted_at IS NULL AND"
             " (r.last_synced_at IS NULL OR r.last_synced_at < $1::timestamp) ORDER BY r.id LIMIT %d),"
             " m AS (INSERT INTO %s AS d (record_id, deleted_at) SELECT id, now() AT TIME ZONE 'UTC' FROM s"
             " ON CONFLICT (record_id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at"
             " RETURNING d.record_id, d.record_kind)"
             " UPDATE %s r SET updated_at = now() AT TIME ZONE 'UTC'"
             " FROM m WHERE r.id = m.record_id RETURNING r.model_name, r.version, r.lifecycle_stage, r.status,"
             " m.record_kind",
             t, k, STALE_BATCH, k, t);
    const char *params[] = {j->started_at};
    struct db_stmt s = {sql, 1, params};
    submit(j, &s, 1);
}

static void issue_load(struct sync_job *j)
{
    char sql[1024];
    mlflow_config_select_sql(sql, sizeof sql, j->o.tenant);
    submit(j, &(struct db_stmt){sql, 0, NULL}, 1);
}

static void issue_acquire(struct sync_job *j)
{
    char h[64], sql[1536], user[24];
    table(j, "mlflow_sync_history", h, sizeof h);
    snprintf(user, sizeof user, "%lld", j->o.user_id);
    snprintf(sql, sizeof sql,
             "WITH l AS (INSERT INTO public.integration_locks AS k (name, holder, acquired_at, expires_at)"
             " VALUES ($1, $2, now(), now() + interval '%d seconds')"
             " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, acquired_at = now(),"
             " expires_at = EXCLUDED.expires_at WHERE k.expires_at < now() RETURNING holder),"
             " c AS (UPDATE %s SET status = 'error', finished_at = now() AT TIME ZONE 'UTC',"
             " message = 'Interrupted: the instance running this sync stopped'"
             " WHERE status = 'running' AND EXISTS (SELECT 1 FROM l))"
             " INSERT INTO %s (trigger_type, status, started_at, triggered_by, instance)"
             " SELECT $3, 'running', now() AT TIME ZONE 'UTC', NULLIF($4, '0')::int, $5 FROM l"
             " RETURNING id, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS.US')",
             LEASE_SECONDS, h, h);
    const char *params[] = {j->lock_name, j->holder, trigger_name(j), user, instance_id};
    submit(j, &(struct db_stmt){sql, 5, params}, 1);
}

static void issue_skip(struct sync_job *j, const char *msg)
{
    char h[64], c[64], sql1[512], sql2[512];
    table(j, "mlflow_sync_history", h, sizeof h);
    table(j, "mlflow_integrations", c, sizeof c);
    snprintf(sql1, sizeof sql1,
             "INSERT INTO %s (trigger_type, status, started_at, finished_at, message, instance)"
             " VALUES ('scheduled', 'error', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', $1, $2)",
             h);
    snprintf(sql2, sizeof sql2,
             "UPDATE %s SET last_synced_at = now() AT TIME ZONE 'UTC', last_sync_status = 'error',"
             " last_sync_message = $1, updated_at = now() AT TIME ZONE 'UTC' WHERE id = $2::int",
             c);
    const char *p1[] = {msg, instance_id}, *p2[] = {msg, j->config_id};
    const struct db_stmt s[] = {{sql1, 2, p1}, {sql2, 2, p2}};
    submit(j, s, 2);
}

/* The outcome of a sync that got its lease. */
static void outcome(const struct sync_job *j, const char **status, char *msg, size_t len)
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

static void issue_finish(struct sync_job *j)
{
    const char *status;
    char msg[1200];
    outcome(j, &status, msg, sizeof msg);
    char h[64], c[64], sql1[640], sql2[512];
    table(j, "mlflow_sync_history", h, sizeof h);
    table(j, "mlflow_integrations", c, sizeof c);
    snprintf(sql1, sizeof sql1,
             "UPDATE %s SET status = $2, finished_at = now() AT TIME ZONE 'UTC', message = $3,"
             " records_fetched = $4::int, records_new = $5::int, records_updated = $6::int,"
             " records_unchanged = $7::int, records_stale = $8::int, records_skipped = $9::int,"
             " failures = $10::int WHERE id = $1::int",
             h);
    snprintf(sql2, sizeof sql2,
             "UPDATE %s SET last_synced_at = now() AT TIME ZONE 'UTC', last_sync_status = $2,"
             " last_sync_message = $3, updated_at = now() AT TIME ZONE 'UTC' WHERE id = $1::int",
             c);
    char n[7][16];
    int v[7] = {j->fetched, j->created, j->updated, j->unchanged, j->stale, j->skipped, j->failures};
    for (int i = 0; i < 7; i++)
        snprintf(n[i], sizeof n[i], "%d", v[i]);
    const char *p1[] = {j->sync_id_s, status, msg, n[0], n[1], n[2], n[3], n[4], n[5], n[6]};
    const char *p2[] = {j->config_id, status, msg};
    const char *p3[] = {j->lock_name, j->holder};
    const struct db_stmt s[] = {
        {sql1, 10, p1},
        {sql2, 3, p2},
        {"DELETE FROM public.integration_locks WHERE name = $1 AND holder = $2", 2, p3},
    };
    submit(j, s, 3);
}

static void finished(struct sync_job *j, bool recorded)
{
    app_cache_invalidate(j->o.app, j->o.tenant); /* sync-status: before anyone is told */
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
        app_event(j->o.app, "mlflow.sync.completed", j->o.org_id, j->o.tenant, j->o.user_id,
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
static void enter(struct sync_job *j)
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
    case SYNC_DONE:
        return;
    }
}

static void go(struct sync_job *j, enum mlflow_sync_state s)
{
    set_state(j, s);
    enter(j);
}

/* Fatal database trouble before the lease: end quietly with the right gate. */
static void db_gate_failure(struct sync_job *j, const struct db_result *res, const char *what)
{
    if (res->status == DB_UNAVAILABLE) {
        gate(j, MLFLOW_GATE_DB_UNAVAILABLE);
    } else {
        log_error("mlflow sync %s: %s failed: %s (%s)", j->o.tenant, what, res->message, res->sqlstate);
        gate(j, MLFLOW_GATE_FAILED);
    }
    job_end(j);
}

static void step_load(struct sync_job *j, const struct db_result *res)
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
    if (PQntuples(pr) == 0) {
        gate(j, MLFLOW_GATE_NOT_CONFIGURED);
        job_end(j);
        return;
    }
    snprintf(j->config_id, sizeof j->config_id, "%s", PQgetvalue(pr, 0, MC_ID));
    snprintf(j->test_status, sizeof j->test_status, "%s", PQgetvalue(pr, 0, MC_TEST_STATUS));
    if (j->o.trigger == MLFLOW_TRIGGER_SCHEDULED && strcmp(j->test_status, "success") != 0) {
        const char *msg = PQgetisnull(pr, 0, MC_TEST_STATUS)
                              ? "Scheduled sync skipped: run a successful connection test."
                              : "Scheduled sync skipped: last connection test failed";
        set_state(j, SYNC_SKIP);
        issue_skip(j, msg);
        return;
    }
    if (mlflow_conn_from_row(&j->o.app->secrets, pr, &j->conn) < 0) {
        log_error("mlflow sync %s: stored credentials cannot be decrypted with ENCRYPTION_PASSWORD", j->o.tenant);
        j->conn.url[0] = '\0';
        note_failure(j, "Failed to decrypt the stored MLFlow credentials");
        j->fatal = true;
    }
    go(j, SYNC_ACQUIRE);
}

static void step_acquire(struct sync_job *j, const struct db_result *res)
{
    if (res->status != DB_OK) {
        db_gate_failure(j, res, "taking the sync lease");
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) == 0) {
        log_info("mlflow sync %s: a sync is already running (lease held); not starting another", j->o.tenant);
        gate(j, MLFLOW_GATE_BUSY);
        job_end(j);
        return;
    }
    j->leased = true;
    snprintf(j->sync_id_s, sizeof j->sync_id_s, "%s", PQgetvalue(pr, 0, 0));
    j->sync_id = strtoll(j->sync_id_s, NULL, 10);
    snprintf(j->started_at, sizeof j->started_at, "%s", PQgetvalue(pr, 0, 1));
    if ((j->renew = event_new(j->o.app->base, -1, EV_PERSIST, on_renew, j))) {
        struct timeval tv = {RENEW_SECONDS, 0};
        event_add(j->renew, &tv);
    }
    gate(j, MLFLOW_GATE_STARTED);
    log_fields(LOG_INFO, "mlflow sync started",
               json_pack("{s:s,s:I,s:s}", "tenant", j->o.tenant, "sync_id", (json_int_t)j->sync_id, "trigger",
                         trigger_name(j)));
    go(j, j->fatal ? SYNC_FINISH : SYNC_EXPERIMENTS);
}

static void step_experiments(struct sync_job *j, const struct fetch_response *res)
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

static void step_runs(struct sync_job *j, const struct fetch_response *res)
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

static void step_upsert(struct sync_job *j, const struct db_result *res)
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

static void step_models(struct sync_job *j, const struct fetch_response *res)
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

static void step_versions(struct sync_job *j, const struct fetch_response *res)
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

static void step_stale(struct sync_job *j, const struct db_result *res)
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
        j->stale++;
        model_event(j, pr, i, "stale", NULL, 2);
    }
    go(j, n == STALE_BATCH ? SYNC_STALE : SYNC_FINISH);
}

static void step_finish(struct sync_job *j, const struct db_result *res)
{
    bool ok = res->status == DB_OK;
    if (!ok)
        log_error("mlflow sync %s: recording the outcome failed: %s", j->o.tenant,
                  res->status == DB_UNAVAILABLE ? "database unavailable" : res->message);
    finished(j, ok);
    job_end(j);
}

/* The one step function: every input of a job arrives here. */
static void sync_step(struct sync_job *j, const struct sync_input *in)
{
    if (in->kind == IN_ENTER || in->kind == IN_TIMER) {
        enter(j);
        return;
    }
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
        return;
    }
}

int mlflow_sync_start(const struct mlflow_sync_opts *o)
{
    struct sync_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->o = *o;
    j->seq = ++job_seq;
    j->run_page = RUN_PAGE;
    j->t0_us = (int64_t)clock_mono_us();
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
    j->state = SYNC_LOAD;
    struct sync_input in = {IN_ENTER, NULL, NULL};
    sync_step(j, &in);
    return 0;
}

void mlflow_sync_stop_all(void)
{
    while (jobs) {
        struct sync_job *j = jobs;
        if (j->state != SYNC_DONE && j->leased)
            log_warn("mlflow sync %s: stopped while running; its lease expires within %d s", j->o.tenant,
                     LEASE_SECONDS);
        j->o.ended = NULL;
        job_free(j);
    }
}
