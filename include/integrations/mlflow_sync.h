/* integrations/mlflow_sync: one MLflow sync of one tenant as an explicit state
 * machine (enum mlflow_sync_state, one step function). It reads the configuration,
 * takes the tenant's lease (public.integration_locks, so one sync per tenant across
 * instances), pages through experiments -> runs (chunks of experiment ids) and
 * registered models -> model versions, upserts each page as it arrives (bounded
 * memory), marks records that disappeared upstream as stale, counts new / updated /
 * unchanged / stale, and records the outcome (success / partial / error) in the
 * configuration row and in mlflow_sync_history, with events.
 * Jobs live in a process-wide list; mlflow_sync_stop_all frees them at shutdown. */
#ifndef IDX_INTEGRATIONS_MLFLOW_SYNC_H
#define IDX_INTEGRATIONS_MLFLOW_SYNC_H
#include <jansson.h>
#include <stdbool.h>

#include "auth/tenant.h"
#include "integrations/mlflow_client.h"
#include "util/compiler.h"

struct db_stmt;
struct db_pool;
struct event_base;
struct fetch_client;
struct fetch_request;
struct http_req;
struct machine_input;
struct mlflow_sync_job;
struct secrets;

enum mlflow_trigger { MLFLOW_TRIGGER_MANUAL, MLFLOW_TRIGGER_SCHEDULED };

/* How a job's start went, reported once to the request that asked for it. */
enum mlflow_sync_gate {
    MLFLOW_GATE_STARTED,          /* lease taken, sync running: sync_id set */
    MLFLOW_GATE_NOT_CONFIGURED,   /* no configuration row */
    MLFLOW_GATE_BUSY,             /* a sync of this tenant runs here or on another instance */
    MLFLOW_GATE_SKIPPED,          /* scheduled pre-check failed (recorded) */
    MLFLOW_GATE_DB_UNAVAILABLE,
    MLFLOW_GATE_FAILED,           /* database error or out of memory */
};

struct mlflow_sync_result {
    const char *status;           /* "success", "partial", "error" */
    const char *message;
    bool network_error;           /* the failure was the server being unreachable */
    long long sync_id;
    int fetched, created, updated, unchanged, stale, skipped, failures;
};

/* A party waiting for a job's outcome besides its request (GET /models callers).
 * Called exactly once: when the start is refused (g != MLFLOW_GATE_STARTED, res NULL),
 * when the job ends (g == MLFLOW_GATE_STARTED, res set), or with MLFLOW_GATE_FAILED
 * and res NULL when the job is freed without an outcome (shutdown). */
typedef void (*mlflow_sync_watch_fn)(void *arg, enum mlflow_sync_gate g, const struct mlflow_sync_result *res);

struct mlflow_sync_opts {
    char tenant[TENANT_HASH_LEN + 1];
    long long org_id;
    long long user_id;            /* 0 = none (scheduled) */
    enum mlflow_trigger trigger;
    /* Optional request: held (ref) by the job; gate() once the start is decided,
     * finished() at the end when set; both only while the request is alive. */
    struct http_req *req;
    void (*gate)(struct http_req *r, enum mlflow_sync_gate g, long long sync_id);
    void (*finished)(struct http_req *r, const struct mlflow_sync_result *res);
    /* Optional first watcher (see mlflow_sync_watch_fn), attached before the job starts. */
    mlflow_sync_watch_fn watch;
    void *watch_arg;
    /* Optional: called once when the job ends, whatever happened (scheduler). */
    void (*ended)(void *arg);
    void *arg;
};

/* The job's I/O: every wait of the machine starts through one of these, so a test can
 * script the answers (tests/unit/test_mlflow_sync_machine.c). The answers come back
 * through mlflow_sync_step, always from the loop (never inside the call that started
 * the wait). mlflow_sync_io_default (io_arg: struct mlflow_sync_net) is the real one. */
enum mlflow_sync_timer {
    MLFLOW_TIMER_RETRY,     /* one shot: MI_TIMER to the state that armed it */
    MLFLOW_TIMER_RENEW,     /* periodic: renews the job's lease (no input to the machine) */
};
struct mlflow_sync_io {
    /* Send statements as one unit; their result arrives as MI_DB. */
    void (*submit)(void *io_arg, struct mlflow_sync_job *j, const struct db_stmt *stmts, int n);
    /* Start an outbound call; its answer arrives as MI_FETCH (also when it could not
     * start). Returns a handle for cancel, or NULL. */
    void *(*call)(void *io_arg, struct mlflow_sync_job *j, const struct fetch_request *req);
    /* Drop a call that has not answered: its answer never arrives. */
    void (*cancel)(void *io_arg, void *call);
    /* Arm a timer of the job after ms (re-arming replaces). Returns 0 or -1. */
    int (*arm)(void *io_arg, struct mlflow_sync_job *j, enum mlflow_sync_timer t, long ms);
    /* The job is being freed: drop its timers. */
    void (*release)(void *io_arg, struct mlflow_sync_job *j);
};
struct mlflow_sync_net {
    struct event_base *base;
    struct db_pool *db;
    struct fetch_client *fetch;
};
extern const struct mlflow_sync_io mlflow_sync_io_default;

/* What a job needs from the process (not the app: mlflow_start fills it). */
struct mlflow_sync_ctx {
    const struct secrets *secrets;          /* to decrypt the stored credentials */
    struct mlflow_page_budget budget;       /* MLFLOW_PAGE_MAX_* */
    /* An event of a tenant (data stolen); and: the tenant's cached reads are stale. */
    void (*event)(void *arg, const char *type, long long org_id, const char *tenant, long long actor_user_id,
                  json_t *data);
    void (*invalidate)(void *arg, const char *tenant);
    void *arg;
    const struct mlflow_sync_io *io;        /* NULL: mlflow_sync_io_default */
    void *io_arg;
};

/* Start a job. Returns 0, or -1 (out of memory; nothing was called). */
int mlflow_sync_start(const struct mlflow_sync_opts *o) MUSTCHECK;
/* Every input of a job (the io's answers, a timer, a cancel) arrives here. */
void mlflow_sync_step(struct mlflow_sync_job *j, const struct machine_input *in);
/* The name of a job's state ("load", "acquire", ...). */
const char *mlflow_sync_state(const struct mlflow_sync_job *j);
/* Attach a watcher to the job of this tenant running in this process. Returns 0, or
 * -1 when none runs here or out of memory (fn is then never called). */
int mlflow_sync_watch(const char *tenant, mlflow_sync_watch_fn fn, void *arg) MUSTCHECK;
/* Is a job of this tenant running in this process? */
bool mlflow_sync_running(const char *tenant);
int mlflow_sync_count(void);
/* This process's lease holder id (random, set by mlflow_sync_init). */
const char *mlflow_instance_id(void);
/* Set the context (copied) and the instance id. */
void mlflow_sync_init(const struct mlflow_sync_ctx *ctx);
/* Free every job: cancels outbound calls and timers, drops requests. No callbacks. */
void mlflow_sync_stop_all(void);

#endif
