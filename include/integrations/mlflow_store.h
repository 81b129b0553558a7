/* integrations/mlflow_store: every SQL statement of the MLflow integration
 * (configuration, connection tests, model records, the sync job's lease, upserts,
 * stale marking and outcome, the scheduler's claim and tenant list, the history),
 * each a template next to the column enum of its SELECT list, and the decoding of
 * their rows into structs or JSON. Tenant tables ("<tenant>".name) are formatted into
 * a template by mlflow_store_sql, which fails rather than truncate. No other MLflow
 * file reads a column by number. */
#ifndef IDX_INTEGRATIONS_MLFLOW_STORE_H
#define IDX_INTEGRATIONS_MLFLOW_STORE_H
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "integrations/mlflow_client.h"
#include "util/compiler.h"

struct secrets;

#define MLFLOW_SQL_MAX 8192          /* room for the longest statement with its table names */
#define MLFLOW_LEASE_SECONDS 60      /* a sync's lease of its tenant (public.integration_locks) */
#define MLFLOW_STALE_BATCH 1000      /* records marked stale per statement */
#define MLFLOW_MODELS_MAX 10000      /* model records in one GET /models answer */
#define MLFLOW_HISTORY_MAX 50        /* runs in one GET /sync-history answer */

enum mlflow_sql {
    /* configuration and connection tests (mlflow_config) */
    MLFLOW_SQL_CONFIG_SELECT,        /* enum mlflow_config_col; no parameters */
    MLFLOW_SQL_TEST_RECORD_ROW,      /* $1 row id, $2 status, $3 message, $4 fingerprint, $5 same */
    MLFLOW_SQL_TEST_RECORD_LAST,     /* $1 fingerprint, $2 status, $3 message */
    MLFLOW_SQL_TEST_LAST,            /* the tenant's last test: enum mlflow_last_test_col */
    MLFLOW_SQL_CONFIGURE_LOCK,       /* $1 lock name */
    MLFLOW_SQL_CONFIGURE,            /* 16 parameters (mlflow_config.c); enum mlflow_config_col */
    /* model records and history (mlflow_models) */
    MLFLOW_SQL_MODELS_CONFIGURED,    /* one row when configured */
    MLFLOW_SQL_MODELS_LIST,          /* rows for mlflow_store_model_json */
    MLFLOW_SQL_MODELS_FRESHNESS,     /* $1 max age (s): mlflow_store_freshness */
    MLFLOW_SQL_HISTORY,              /* rows for mlflow_store_history_json */
    /* the sync job (mlflow_sync) */
    MLFLOW_SQL_SYNC_ACQUIRE,         /* $1 lock, $2 holder, $3 trigger, $4 user, $5 instance */
    MLFLOW_SQL_SYNC_RENEW,           /* $1 lock, $2 holder: one row while held */
    MLFLOW_SQL_SYNC_SKIP_HISTORY,    /* $1 message, $2 instance */
    MLFLOW_SQL_SYNC_SKIP_CONFIG,     /* $1 message, $2 config id */
    MLFLOW_SQL_SYNC_UPSERT,          /* $1 batch (jsonb), $2 started_at: mlflow_store_upserted */
    MLFLOW_SQL_SYNC_STALE,           /* $1 started_at: mlflow_store_staled */
    MLFLOW_SQL_SYNC_FINISH_HISTORY,  /* $1 sync id, $2 status, $3 message, $4..$10 counts */
    MLFLOW_SQL_SYNC_FINISH_CONFIG,   /* $1 config id, $2 status, $3 message */
    MLFLOW_SQL_SYNC_RELEASE,         /* $1 lock, $2 holder */
    /* the scheduler (mlflow_scheduler), not per tenant */
    MLFLOW_SQL_SCHED_PURGE,
    MLFLOW_SQL_SCHED_CLAIM,          /* $1 tick name, $2 instance: one row when claimed */
    MLFLOW_SQL_SCHED_TENANTS,        /* mlflow_store_tenant */
    MLFLOW_SQL_COUNT
};

/* The text of statement `which` with the tables of `tenant` (NULL for the statements
 * that name no tenant table) into buf. Returns 0, or -1 when the tenant name is
 * invalid or the text does not fit (buf is then ""). */
int mlflow_store_sql(char *buf, size_t len, enum mlflow_sql which, const char *tenant) MUSTCHECK;

/* ---- the configuration row (MLFLOW_SQL_CONFIG_SELECT, MLFLOW_SQL_CONFIGURE) ---- */
enum mlflow_config_col {
    MC_ID, MC_URL, MC_AUTH, MC_USER, MC_USER_IV, MC_PASS, MC_PASS_IV, MC_TOKEN, MC_TOKEN_IV,
    MC_VERIFY, MC_TIMEOUT, MC_TESTED_AT, MC_TEST_STATUS, MC_TEST_MSG, MC_OK_AT, MC_FAIL_AT,
    MC_FAIL_MSG, MC_SYNCED_AT, MC_SYNC_STATUS, MC_SYNC_MSG, MC_UPDATED_AT, MC_UPDATED_BY, MC_FPR,
};

/* Row 0 of a configuration result, decoded (pointers into the result; NULL for SQL NULL). */
struct mlflow_config_row {
    const char *id, *url, *auth, *test_status, *fingerprint;
    int timeout_s;          /* as stored */
    bool verify_ssl;
};
/* false when the result holds no row. */
bool mlflow_store_config_row(const PGresult *res, struct mlflow_config_row *row) MUSTCHECK;
/* A stored credential (user, password, token) decrypted, or *out NULL when none is
 * stored. -1 when it cannot be decrypted. */
enum mlflow_cred_col { MLFLOW_CRED_USER, MLFLOW_CRED_PASS, MLFLOW_CRED_TOKEN };
int mlflow_store_config_cred(const struct secrets *s, const PGresult *res, enum mlflow_cred_col which, char **out)
    MUSTCHECK;
/* {"configured":false} or {"configured":true,"config":{...}} for row 0 of res. */
json_t *mlflow_config_summary(const PGresult *res);
/* Connection settings of row 0 with decrypted credentials. Returns 0, or -1 when a
 * stored credential cannot be decrypted (c is then cleared). */
int mlflow_conn_from_row(const struct secrets *s, const PGresult *res, struct mlflow_conn *c) MUSTCHECK;

/* ---- the tenant's last connection test (MLFLOW_SQL_TEST_LAST) ------------------- */
enum mlflow_last_test_col { LT_FINGERPRINT, LT_STATUS, LT_MESSAGE, LT_TESTED_AT };
struct mlflow_last_test {
    const char *fingerprint, *status, *message /* NULL when none */, *tested_at;
};
bool mlflow_store_last_test(const PGresult *res, struct mlflow_last_test *t) MUSTCHECK;

/* ---- model records (MLFLOW_SQL_MODELS_*) ------------------------------------------ */
/* Row i of MLFLOW_SQL_MODELS_LIST in VerifyWise's element shape (reference 5.5). */
json_t *mlflow_store_model_json(const PGresult *res, int i);
/* MLFLOW_SQL_MODELS_FRESHNESS: false when not configured; else the configured timeout
 * and whether the last successful sync is young enough. */
bool mlflow_store_freshness(const PGresult *res, int *timeout_s, bool *fresh) MUSTCHECK;
/* MLFLOW_SQL_HISTORY as the answer's array. */
json_t *mlflow_store_history_json(const PGresult *res);

/* ---- the sync job ---------------------------------------------------------------- */
/* MLFLOW_SQL_SYNC_ACQUIRE: false when the lease is held elsewhere (no row). */
bool mlflow_store_acquired(const PGresult *res, char *sync_id, size_t id_len, char *started_at, size_t at_len)
    MUSTCHECK;

/* What changed in one stored (or staled) record: pointers into the result. */
#define MLFLOW_CHANGED_FIELDS 5 /* stage, aliases, status, description, tags */
struct mlflow_store_change {
    const char *name, *version;
    const char *change;             /* "new", "updated", "unchanged" (upsert) or "stale" */
    const char *stage, *status, *record_kind; /* NULL for SQL NULL */
    bool changed[MLFLOW_CHANGED_FIELDS];
};
void mlflow_store_upserted(const PGresult *res, int i, struct mlflow_store_change *c);
void mlflow_store_staled(const PGresult *res, int i, struct mlflow_store_change *c);

/* ---- the scheduler ------------------------------------------------------------------ */
/* Row i of MLFLOW_SQL_SCHED_TENANTS. */
void mlflow_store_tenant(const PGresult *res, int i, const char **schema, long long *org);

#endif
