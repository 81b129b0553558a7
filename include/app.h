/* app: the process-wide context every module reaches through a request:
 * configuration, secrets, the loop, the database pool, the HTTP server. */
#ifndef IDX_APP_H
#define IDX_APP_H
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <jansson.h>

#include "config.h"
#include "crypto/secrets.h"
#include "http/router.h"
#include "routes.h"
#include "util/compiler.h"

struct event_base;
struct db_pool;
struct http_server;
struct tenant_set;
struct member_cache;
struct fetch_client;
struct resolver;
struct events;
struct looplag;
struct notify_msg;
struct db_conninfo;
struct db_schema_keeper;
struct cors;

struct app {
    struct config cfg;
    struct secrets secrets;
    struct event_base *base;
    struct db_pool *db;
    struct http_server *http;
    struct fetch_client *fetch;  /* outbound HTTP */
    struct events *events;       /* Redis pub/sub */
    struct resolver *resolver;   /* asynchronous name lookups (database, Redis) */
    struct looplag *looplag;     /* event-loop lag timer (ops/looplag) */
    struct tenant_set *tenants;
    struct member_cache *members; /* public.users lookups, AUTH_CACHE_MS */
    struct token_cache *tokens;   /* verified tokens, TOKEN_CACHE_ENTRIES */
    struct read_cache *cache;    /* read answers per tenant, CACHE_BYTES */
    struct listener *listener;   /* LISTEN integrationsd_cache: keeps both caches coherent */
    struct db_conninfo *conninfo; /* libpq settings of the pool and the LISTEN connection */
    struct db_schema_keeper *schema; /* creates the public objects, retrying */
    bool schema_ready;           /* public objects created */
    struct event *key_derived;   /* readable when scheme A's key derivation ends: join it */
    struct event *key_start;     /* begins that derivation once the schema is ready */
    const struct route *routes;  /* src/routes.c */
    size_t nroutes;
    struct cors *cors;           /* allowed origins (http/cors) */
    bool stopping;
    int64_t started_us;          /* when main() began (CLOCK_MONOTONIC), for start-up logs */
};

/* Microseconds since main() began. */
int64_t app_uptime_us(const struct app *a);

/* A change the database will not announce (none today: every table a cached answer
 * reads has a trigger) or that must be visible before the NOTIFY arrives: drop the
 * tenant's cached answers now. */
void app_cache_invalidate(struct app *a, const char *tenant);

/* Create the modules in order, the connections to PostgreSQL and Redis first, then set
 * up the encryption keys (a->cfg's, already checked with secrets_key_check), then start
 * the integrations (src/integrations.c).
 * Returns 0 or -1 with err set; either way app_free undoes what was done. */
MUSTCHECK int app_init(struct app *a, struct event_base *base, char *err, size_t errlen);
/* Stop the integrations (reverse order), then free the modules in reverse order. */
void app_free(struct app *a);

/* Parse the request body into r->json (a JSON object; empty = {}). Returns 0, or -1
 * after answering 400 ("Invalid JSON body" / "Request body must be a JSON object"). */
MUSTCHECK int app_parse_body(struct http_req *r);

/* The request pipeline: routing, CORS, authentication, body parsing, handler. */
void app_dispatch(struct http_req *r);
/* Its first steps (CORS, route, method, token), run on the headers of a request with a
 * body: answers r only to refuse it. */
void app_precheck(struct http_req *r);



/* Run one statement for a request: holds r until the result arrives, answers 503
 * itself when the database is unavailable, drops the result if the client left,
 * otherwise calls done(r, res). */
struct db_result;
struct db_stmt;
typedef void (*app_query_done)(struct http_req *r, const struct db_result *res);
void app_query(struct http_req *r, const char *sql, int nparams, const char *const *params,
               app_query_done done);
/* Several statements as one transaction (one pipeline sync); same rules as app_query. */
void app_submit(struct http_req *r, const struct db_stmt *stmts, int n, app_query_done done);

/* An outbound call for a request: cancelled if the request is abandoned (client
 * gone, deadline), otherwise done(r, res) runs while r can still be answered. */
struct fetch_request;
struct fetch_response;
typedef void (*app_fetch_done)(struct http_req *r, const struct fetch_response *res);
void app_fetch(struct http_req *r, const struct fetch_request *req, app_fetch_done done);

/* Publish an integration event (SPEC section 6) after the change committed.
 * data is stolen (a JSON object; never a secret); actor_user_id 0 = none. */
void app_event(struct app *a, const char *type, long long organization_id, const char *tenant,
               long long actor_user_id, json_t *data);
#endif
