/* app: owns the wiring: the request pipeline (CORS -> route -> auth -> read cache -> body
 * -> handler, over the table of src/routes.c), requests waiting for the database or an
 * outbound call, the LISTEN connection that keeps the caches coherent, and the order in
 * which the modules and then the integrations (src/integrations.c) start and stop. */
#include "app.h"

#include "autoconfig.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/member_cache.h"
#include "auth/token_cache.h"
#include "auth/middleware.h"
#include "auth/tenant.h"
#include "cache/read_cache.h"
#include "db/conninfo.h"
#include "db/listener.h"
#include "db/pool.h"
#include "db/schema.h"
#include "events/events.h"
#include "http/cors.h"
#include "http/reply.h"
#include "http/server.h"
#include "integration.h"
#include "log.h"
#include "app_metrics.h"
#include "net/fetch.h"
#include "net/resolve.h"
#include "ops/looplag.h"
#include "ops/metrics.h"
#include "routes.h"
#include "util/clock.h"
#include "util/json.h"

int64_t app_uptime_us(const struct app *a)
{
    return (int64_t)clock_mono_us() - a->started_us;
}

/* ---- the request pipeline ---------------------------------------------------- */

int app_parse_body(struct http_req *r)
{
    size_t len;
    const unsigned char *body = http_req_body(r, &len);
    switch (json_parse_body(body, len, &r->json)) {
    case JSON_BODY_OK:
        return 0;
    case JSON_BODY_NOT_OBJECT:
        reply_text(r, 400, "Request body must be a JSON object");
        return -1;
    default:
        reply_text(r, 400, "Invalid JSON body");
        return -1;
    }
}

/* ---- the read cache ------------------------------------------------------------ */

struct cache_fill {
    struct read_cache_ticket ticket;
    char tenant[TENANT_HASH_LEN + 1];
    char key[];
};

static void cache_fill_on_reply(struct http_req *r, int status, const char *body, size_t len, void *arg)
{
    struct cache_fill *f = arg;
    if (status == 200 && body)
        read_cache_put(r->app->cache, f->tenant, f->ticket, f->key, body, len);
}

static void cache_invalidate_on_reply(struct http_req *r, int status, const char *body, size_t len, void *arg)
{
    (void)status, (void)body, (void)len, (void)arg;
    app_cache_invalidate(r->app, r->auth.tenant);
}

void app_cache_invalidate(struct app *a, const char *tenant)
{
    if (a->cache && tenant && *tenant)
        read_cache_invalidate(a->cache, tenant);
}

/* A cached route: answer a hit from the stored bytes (true), or arrange for a 200 to be
 * stored (false). The key holds everything the answer depends on besides the tenant's
 * data: route, tenant, path (with its parameters) and query string, and for per-user
 * routes the user and role. */
static bool cache_answer(struct http_req *r)
{
    struct app *a = r->app;
    if (!read_cache_enabled(a->cache))
        return false;
    bool per_user = r->route->flags & ROUTE_CACHE_USER;
    char key[4096]; /* the request line is capped well below this; longer: not cached */
    int n = snprintf(key, sizeof key, "%s|%s|%lld|%s|%s?%s", r->route->name, r->auth.tenant,
                     per_user ? r->auth.user_id : 0, per_user ? r->auth.role : "", r->path,
                     r->query ? r->query : "");
    if (n < 0 || (size_t)n >= sizeof key)
        return false;
    const char *body;
    size_t len;
    if (read_cache_get(a->cache, key, &body, &len)) {
        http_req_send_text(r, 200, "application/json; charset=utf-8", body, len);
        return true;
    }
    struct cache_fill *f = malloc(sizeof *f + (size_t)n + 1);
    if (f) {
        f->ticket = read_cache_ticket(a->cache, r->auth.tenant);
        memcpy(f->tenant, r->auth.tenant, sizeof f->tenant);
        memcpy(f->key, key, (size_t)n + 1);
        http_req_on_reply(r, cache_fill_on_reply, f, free);
    }
    return false;
}

static void run_handler(struct http_req *r)
{
    if (r->route->flags & ROUTE_CACHED) {
        if (r->method == HTTP_GET && cache_answer(r))
            return;
    } else if (r->method != HTTP_GET && (r->route->flags & ROUTE_AUTH)) {
        /* a write: its own instance sees it on the very next read, before the NOTIFY */
        http_req_on_reply(r, cache_invalidate_on_reply, NULL, NULL);
    }
    if ((r->route->flags & ROUTE_JSON_BODY) && app_parse_body(r) < 0)
        return;
    r->route->handler(r);
}

static void reply_not_found(struct http_req *r)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Cannot %s %.120s", http_method_name(r->method), r->path);
    json_t *s = json_string(msg);
    reply_data(r, 404, s ? s : json_string("Not found"));
}

void app_dispatch(struct http_req *r)
{
    struct app *a = r->app;
    cors_apply(r->app->cors, r);
    if (r->method == HTTP_OPTIONS) {
        cors_preflight(r);
        return;
    }
    const struct route *route;
    unsigned allowed = 0;
    switch (router_match(a->routes, a->nroutes, r->method, r->path, &route, &r->params, &allowed)) {
    case ROUTE_NOT_FOUND:
        reply_not_found(r);
        return;
    case ROUTE_METHOD_NOT_ALLOWED: {
        char allow[96];
        router_allow_header(allowed | HTTP_OPTIONS, allow, sizeof allow);
        const char *hdrs[] = {"Allow", allow, NULL};
        http_req_send(r, 405,
                      json_pack("{s:s,s:s}", "message", "Method Not Allowed", "data", "Method not allowed"),
                      hdrs);
        return;
    }
    case ROUTE_FOUND:
        break;
    }
    r->route = route;
    if (route->flags & ROUTE_AUTH) {
        if (!a->schema_ready) {
            reply_db_unavailable(r);
            return;
        }
        auth_run(r, run_handler);
        return;
    }
    run_handler(r);
}

/* The part of the pipeline settled on the headers of a request that announces a body:
 * CORS, route, method and the token (not the membership lookup, which may wait for the
 * body). A refusal here is answered at once and the body is never read. */
void app_precheck(struct http_req *r)
{
    struct app *a = r->app;
    cors_apply(r->app->cors, r);
    if (r->method == HTTP_OPTIONS)
        return;
    const struct route *route;
    unsigned allowed = 0;
    switch (router_match(a->routes, a->nroutes, r->method, r->path, &route, &r->params, &allowed)) {
    case ROUTE_NOT_FOUND:
    case ROUTE_METHOD_NOT_ALLOWED:
        app_dispatch(r); /* answers 404 / 405 exactly as after the body */
        return;
    case ROUTE_FOUND:
        break;
    }
    r->route = route;
    if (route->flags & ROUTE_AUTH)
        auth_check_token(r);
}

/* ---- requests that wait for the database ------------------------------------ */

struct pending_query {
    struct http_req *r;
    app_query_done done;
};

static void on_query(const struct db_result *res, void *arg)
{
    struct pending_query *q = arg;
    struct http_req *r = q->r;
    if (http_req_alive(r)) {
        if (res->status == DB_UNAVAILABLE)
            reply_db_unavailable(r);
        else
            q->done(r, res);
    }
    http_req_unref(r);
    free(q);
}

static bool query_wanted(void *arg)
{
    return http_req_alive(((struct pending_query *)arg)->r);
}

void app_submit(struct http_req *r, const struct db_stmt *stmts, int n, app_query_done done)
{
    struct pending_query *q = malloc(sizeof *q);
    if (!q) {
        reply_internal(r);
        return;
    }
    q->r = http_req_ref(r);
    q->done = done;
    http_req_hold(r);
    db_submit_if(r->app->db, stmts, n, on_query, q, query_wanted);
}

void app_query(struct http_req *r, const char *sql, int nparams, const char *const *params,
               app_query_done done)
{
    struct db_stmt s = {sql, nparams, params};
    app_submit(r, &s, 1, done);
}

/* ---- requests that wait for an outbound call --------------------------------- */

struct pending_fetch {
    struct http_req *r;
    app_fetch_done done;
    struct fetch *f;
};

static void fetch_abandoned(struct http_req *r, void *arg)
{
    struct pending_fetch *pf = arg;
    fetch_cancel(pf->f); /* its callback will not run: release here */
    http_req_unref(pf->r);
    free(pf);
}

static void on_fetch(const struct fetch_response *res, void *arg)
{
    struct pending_fetch *pf = arg;
    struct http_req *r = pf->r;
    http_req_on_abandon(r, NULL, NULL);
    if (http_req_alive(r))
        pf->done(r, res);
    http_req_unref(r);
    free(pf);
}

void app_fetch(struct http_req *r, const struct fetch_request *req, app_fetch_done done)
{
    struct fetch_request counted = *req;
    counted.org_id = r->auth.org_id;
    if (!fetch_admits(r->app->fetch, counted.org_id)) {
        log_warn("outbound call refused: too many in flight (OUTBOUND_MAX_CONCURRENT / OUTBOUND_MAX_PER_ORG)");
        reply_error(r, 503, "Too many outbound calls in flight; try again shortly");
        return;
    }
    req = &counted;
    struct pending_fetch *pf = calloc(1, sizeof *pf);
    if (!pf) {
        reply_internal(r);
        return;
    }
    pf->r = http_req_ref(r);
    pf->done = done;
    http_req_hold(r);
    pf->f = fetch_start(r->app->fetch, req, on_fetch, pf);
    if (pf->f)
        http_req_on_abandon(r, fetch_abandoned, pf);
}

/* ---- events ------------------------------------------------------------------ */

void app_event(struct app *a, const char *type, long long organization_id, const char *tenant,
               long long actor_user_id, json_t *data)
{
    events_publish(a->events, type, organization_id, tenant, actor_user_id, data);
    json_decref(data);
}

/* ---- the schema ------------------------------------------------------------- */

#define KEY_FAILED_MSG \
    "start-up: ENCRYPTION_PASSWORD key derivation failed: MLflow and Slack secrets cannot be read"

/* Scheme A's scrypt begins this long after the schema is ready: the first requests after
 * a start (the ones waiting on its 503s) then have both cores. A scheme A call before it
 * derives the key itself (crypto/secrets). */
#define KEY_DERIVE_AFTER_MS 100

static void on_key_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct app *a = arg;
    /* Its end is logged by on_key_derived, or here when nothing watches for it. */
    if (secrets_a_start(&a->secrets) < 0 && !a->key_derived)
        log_error(KEY_FAILED_MSG);
}

static void on_schema_ready(void *arg)
{
    struct app *a = arg;
    a->schema_ready = true;
    if (secrets_a_state(&a->secrets) == SECRETS_A_PENDING && !evtimer_pending(a->key_start, NULL)) {
        struct timeval tv = {0, KEY_DERIVE_AFTER_MS * 1000};
        if (evtimer_add(a->key_start, &tv) < 0)
            on_key_start(-1, 0, a); /* no timer: now, then */
    }
    log_fields(LOG_INFO, "start-up: database schema ready",
               json_pack("{s:s,s:I,s:f}", "version", db_schema_version(), "tenants",
                         (json_int_t)tenant_set_count(a->tenants), "after_ms", (double)app_uptime_us(a) / 1000.0));
}

static bool app_stopping(void *arg)
{
    return ((struct app *)arg)->stopping;
}

static void on_live_change(int live, void *arg)
{
    struct app *a = arg;
    if (live > 0)
        db_schema_keeper_poke(a->schema, a->db);
}

/* ---- cache coherence: NOTIFY integrationsd_cache ------------------------------- */

static void invalidate_org(struct app *a, const char *org)
{
    char *end;
    long long id = strtoll(org, &end, 10);
    char t[TENANT_HASH_LEN + 1];
    if (end != org && *end == '\0' && id > 0 && tenant_hash(id, t) == 0)
        read_cache_invalidate(a->cache, t);
}

static void on_cache_notify(const char *payload, void *arg)
{
    struct app *a = arg;
    if (strncmp(payload, "t:", 2) == 0 && tenant_name_valid(payload + 2)) {
        read_cache_invalidate(a->cache, payload + 2);
    } else if (strncmp(payload, "o:", 2) == 0) {
        invalidate_org(a, payload + 2);
    } else if (strncmp(payload, "u:", 2) == 0) {
        char *end;
        long long uid = strtoll(payload + 2, &end, 10);
        member_cache_drop(a->members, uid);
        if (*end == ':' && end[1])
            invalidate_org(a, end + 1); /* per-user answers depend on the role */
    } else { /* "all", or a payload of a newer version */
        read_cache_flush(a->cache);
        member_cache_set_enabled(a->members, true);
    }
}

/* The LISTEN connection goes where the pool's connections went (the primary). */
static int listen_params(void *arg, const char *const **kw, const char *const **vals)
{
    struct app *a = arg;
    return db_pool_server_params(a->db, kw, vals);
}

/* Up: from now on no change is missed; start from empty caches. Down: changes may be
 * missed, so nothing is served from either cache until the connection is back. */
static void on_listen_state(bool listening, void *arg)
{
    struct app *a = arg;
    read_cache_set_enabled(a->cache, listening);
    member_cache_set_enabled(a->members, listening);
    if (!listening)
        log_warn("read cache off until the LISTEN connection is back");
}

/* ---- start and stop ---------------------------------------------------------- */

/* The core modules, in the order they are created; app_free frees them in reverse.
 * The integrations (src/integrations.c) start last and stop first: their jobs hold
 * requests, outbound calls and queries of the modules below. */
/* Scheme A's key derivation (crypto/secrets) has ended: join its thread now, so its
 * 16 MiB of scratch is gone and no scheme A call has to wait for it. */
static void on_key_derived(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct app *a = arg;
    event_free(a->key_derived); /* one-shot: the descriptor stays readable */
    a->key_derived = NULL;
    if (secrets_a_wait(&a->secrets) < 0)
        log_error(KEY_FAILED_MSG);
    else
        log_fields(LOG_INFO, "start-up: ENCRYPTION_PASSWORD key derived",
                   json_pack("{s:f}", "after_ms", (double)app_uptime_us(a) / 1000.0));
}

int app_init(struct app *a, struct event_base *base, char *err, size_t errlen)
{
    a->base = base;
    a->routes = app_routes(&a->nroutes);
    if (!(a->cors = cors_new(a->cfg.frontend_url, a->cfg.allowed_origins, err, errlen)))
        return -1;
    if (!(a->tenants = tenant_set_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct db_schema_keeper_opts so = {
        .tenants = a->tenants, .on_ready = on_schema_ready, .stopping = app_stopping, .arg = a};
    if (!(a->members = member_cache_new((unsigned)a->cfg.auth_cache_entries, a->cfg.auth_cache_ms)) ||
        !(a->tokens = token_cache_new((unsigned)a->cfg.token_cache_entries)) ||
        !(a->schema = db_schema_keeper_new(base, &so))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct db_conninfo_params cp = {
        .database_url = a->cfg.database_url,
        .host = a->cfg.db_host,
        .port = a->cfg.db_port,
        .dbname = a->cfg.db_name,
        .user = a->cfg.db_user,
        .password = a->cfg.db_password,
        .statement_timeout_ms = a->cfg.db_statement_timeout_ms,
        .idle_in_transaction_timeout_ms = a->cfg.db_idle_in_transaction_timeout_ms,
        .env_gssencmode = getenv("PGGSSENCMODE"),
        .env_service = getenv("PGSERVICE"),
    };
    if (!(a->conninfo = db_conninfo_new(&cp, err, errlen)))
        return -1;
    if (!(a->resolver = resolver_new(base, a->cfg.resolver_hosts_file, err, errlen)))
        return -1;
    if (!(a->cache = read_cache_new(a->cfg.cache_bytes))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct db_pool_opts po = {
        .keywords = db_conninfo_keywords(a->conninfo),
        .values = db_conninfo_values(a->conninfo),
        .size = a->cfg.db_pool_size,
        .max_depth = a->cfg.db_pipeline_depth,
        .prepared = a->cfg.db_prepared_statements,
        .max_queue = a->cfg.db_max_queue,
        .connect_timeout_ms = a->cfg.db_connect_timeout_ms,
        .stall_timeout_ms = a->cfg.db_stall_timeout_ms,
        .resolver = a->resolver,
        .on_live_change = on_live_change,
        .arg = a,
    };
    char perr[200];
    if (!(a->db = db_pool_new(base, &po, perr, sizeof perr))) {
        snprintf(err, errlen, "cannot create the database pool: %s", perr);
        return -1;
    }
    struct listener_opts lo = {
        .params = listen_params,
        .channel = "integrationsd_cache",
        .connect_timeout_ms = a->cfg.db_connect_timeout_ms,
        .on_notify = on_cache_notify,
        .on_state = on_listen_state,
        .arg = a,
    };
    if (!(a->listener = listener_new(base, &lo))) {
        snprintf(err, errlen, "cannot create the LISTEN connection");
        return -1;
    }
    struct events_opts eo = {
        .redis_url = a->cfg.redis_url,
        .prefix = a->cfg.redis_channel_prefix,
        .max_queue = (size_t)a->cfg.events_max_queue,
        .sentinels = a->cfg.redis_sentinels,
        .sentinel_master = a->cfg.redis_sentinel_master,
        .resolver = a->resolver,
        .on_notify = integrations_on_notify,
        .arg = a,
    };
    if (!(a->events = events_new(base, &eo, err, errlen)))
        return -1;
    /* The connections are on their way: PostgreSQL forks and sets up a backend, the
     * longest wait of start-up, while OpenSSL initialises here (its first use, the
     * fingerprint key's HMAC: about 3 ms). The key itself was checked before anything
     * started (secrets_key_check in main). */
    if (secrets_init(&a->secrets, a->cfg.encryption_password, a->cfg.encryption_key) < 0) {
        snprintf(err, errlen, "cannot set up the encryption keys (out of memory, or OpenSSL failed)");
        return -1;
    }
    int kfd = secrets_a_done_fd(&a->secrets);
    if (kfd >= 0 && (!(a->key_derived = event_new(base, kfd, EV_READ, on_key_derived, a)) ||
                     event_add(a->key_derived, NULL) < 0)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(a->key_start = evtimer_new(base, on_key_start, a))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char ua[64];
    snprintf(ua, sizeof ua, "integrationsd/%s", PACKAGE_VERSION);
    if (!(a->fetch = fetch_client_new(base, a->cfg.outbound_deny_cidrs, ua, err, errlen)))
        return -1;
    fetch_client_set_limits(a->fetch, a->cfg.outbound_max_concurrent, a->cfg.outbound_max_per_org);
    struct http_server_opts ho = {
        .bind_address = a->cfg.bind_address,
        .port = a->cfg.port,
        .max_body_bytes = a->cfg.max_body_bytes,
        .max_connections = a->cfg.http_max_connections,
        .request_timeout_s = a->cfg.http_request_timeout_s,
        .idle_timeout_s = a->cfg.http_idle_timeout_s,
        .max_header_bytes = a->cfg.http_max_header_bytes,
        .max_headers = a->cfg.http_max_headers,
        .max_buffered_body_bytes = a->cfg.max_buffered_body_bytes,
        .max_buffered_header_bytes = a->cfg.max_buffered_header_bytes,
        .precheck = app_precheck,
        .on_answer = metrics_observe_request,
    };
    if (!(a->http = http_server_new(base, a, &ho, app_dispatch, err, errlen)))
        return -1;
    if (app_metrics_register(a) < 0 || !(a->looplag = looplag_start(base))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return integrations_start(a, err, errlen);
}

void app_free(struct app *a)
{
    integrations_stop(a); /* first: their jobs hold requests, calls and queries */
    if (a->key_derived) { /* the derivation is joined by secrets_clear */
        event_free(a->key_derived);
        a->key_derived = NULL;
    }
    if (a->key_start) {
        event_free(a->key_start);
        a->key_start = NULL;
    }
    looplag_free(a->looplag);
    a->looplag = NULL;
    http_server_free(a->http);
    a->http = NULL;
    fetch_client_free(a->fetch);
    a->fetch = NULL;
    events_free(a->events);
    a->events = NULL;
    listener_free(a->listener);
    a->listener = NULL;
    db_pool_free(a->db); /* a bootstrap in flight calls the schema keeper back */
    a->db = NULL;
    read_cache_free(a->cache);
    a->cache = NULL;
    resolver_free(a->resolver);
    a->resolver = NULL;
    db_conninfo_free(a->conninfo);
    a->conninfo = NULL;
    db_schema_keeper_free(a->schema);
    a->schema = NULL;
    member_cache_free(a->members);
    a->members = NULL;
    token_cache_free(a->tokens);
    a->tokens = NULL;
    tenant_set_free(a->tenants);
    a->tenants = NULL;
    cors_free(a->cors);
    a->cors = NULL;
}
