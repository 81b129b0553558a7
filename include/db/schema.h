/* db/schema: the tables integrationsd needs, created idempotently.
 * Public objects at start (db_schema_bootstrap), which also brings every known
 * tenant to the current tenant DDL; a tenant's schema and tables the first time the
 * tenant is seen (db_schema_ensure_tenant), recorded in public.integration_tenants.
 * VerifyWise's tables keep VerifyWise's shape; the only things ever dropped are the
 * columns earlier builds added to them, after their data moved to integrationsd's
 * own tables.
 * Both skip their DDL when the objects are already at this version (one round trip). */
#ifndef IDX_DB_SCHEMA_H
#define IDX_DB_SCHEMA_H
#include <stdbool.h>
#include "auth/tenant.h"
#include "db/pool.h"
#include "util/compiler.h"

/* Create the public objects, unless they are in place at this version (one round trip,
 * which also adds the tenants already at this version to `tenants`, if not NULL).
 * cb gets the pool result (DB_OK when ready). */
struct tenant_set;
void db_schema_bootstrap(struct db_pool *p, struct tenant_set *tenants, db_callback cb, void *arg);
/* The bootstrap kept trying in the background: started whenever the pool has a live
 * connection (db_schema_keeper_poke), retried every 2 s after a failure, until the public
 * objects are ready (on_ready runs once). Nothing is started or re-armed while
 * stopping(arg) is true. Free it after the pool (a bootstrap in flight still calls back). */
struct event_base;
struct db_schema_keeper;
struct db_schema_keeper_opts {
    struct tenant_set *tenants; /* filled with the tenants already in place (may be NULL) */
    void (*on_ready)(void *arg);
    bool (*stopping)(void *arg);
    void *arg;
};
MUSTCHECK struct db_schema_keeper *db_schema_keeper_new(struct event_base *base,
                                                        const struct db_schema_keeper_opts *o);
/* The pool p has a live connection (again): bootstrap now unless done or running. */
void db_schema_keeper_poke(struct db_schema_keeper *k, struct db_pool *p);
void db_schema_keeper_free(struct db_schema_keeper *k);

/* The schema version: a hash of the DDL (16 hex digits). */
const char *db_schema_version(void);

/* Create (if missing) the tenant schema `tenant` (validated) for organization org. */
void db_schema_ensure_tenant(struct db_pool *p, const char *tenant, long long org,
                             db_callback cb, void *arg);

/* Tenants known to be ready in this process: an open-addressing set. */
struct tenant_set;
MUSTCHECK struct tenant_set *tenant_set_new(void);
void tenant_set_free(struct tenant_set *s);
bool tenant_set_has(const struct tenant_set *s, const char *tenant);
MUSTCHECK int tenant_set_add(struct tenant_set *s, const char *tenant); /* 0 or -1 (OOM) */
size_t tenant_set_count(const struct tenant_set *s);

/* Build "\"<tenant>\".<table>" into buf; -1 if tenant is not a valid name or buf is short. */
MUSTCHECK int db_table(char *buf, size_t len, const char *tenant, const char *table);

#endif
