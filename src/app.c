/* app: owns the wiring: the route table, CORS policy, the request pipeline
 * (route -> CORS -> auth -> read cache -> body -> handler), the database connection
 * settings, the schema bootstrap and the LISTEN connection that keeps the caches coherent. */
#include "app.h"

#include "autoconfig.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "auth/member_cache.h"
#include "auth/tenant.h"
#include "cache/read_cache.h"
#include "db/listener.h"
#include "auth/middleware.h"
#include "db/pool.h"
#include "db/schema.h"
#include "http/reply.h"
#include "http/server.h"
#include "integrations/github.h"
#include "integrations/llm_keys.h"
#include "integrations/slack.h"
#include "integrations/mlflow.h"
#include "net/fetch.h"
#include "net/resolve.h"
#include "events/events.h"
#include "log.h"
#include "ops/health.h"
#include "ops/looplag.h"
#include "ops/metrics.h"
#include "ops/openapi.h"
#include "util/json.h"

#define AUTH ROUTE_AUTH
#define ADMIN ROUTE_ADMIN
#define BODY ROUTE_JSON_BODY
#define CACHED ROUTE_CACHED
#define PER_USER ROUTE_CACHE_USER

static const struct route routes[] = {
    {HTTP_GET, "/healthz", health_live, ROUTE_PUBLIC, "healthz"},
    {HTTP_GET, "/readyz", health_ready, ROUTE_PUBLIC, "readyz"},
    {HTTP_GET, "/metrics", metrics_handler, ROUTE_PUBLIC, "metrics"},
    {HTTP_GET, "/api/integrations/openapi.json", openapi_handler, ROUTE_PUBLIC, "openapi"},
    {HTTP_GET, "/api/llm-keys", llm_keys_list, AUTH | CACHED, "llm_keys_list"},
    {HTTP_POST, "/api/llm-keys", llm_keys_create, AUTH | BODY, "llm_keys_create"},
    {HTTP_GET, "/api/llm-keys/status", llm_keys_status, AUTH | CACHED, "llm_keys_status"},
    {HTTP_GET, "/api/llm-keys/:name", llm_keys_by_name, AUTH | CACHED, "llm_keys_by_name"},
    {HTTP_PATCH, "/api/llm-keys/:id", llm_keys_update, AUTH | BODY, "llm_keys_update"},
    {HTTP_DELETE, "/api/llm-keys/:id", llm_keys_delete, AUTH, "llm_keys_delete"},
    {HTTP_POST, "/api/llm-keys/:id/verify", llm_keys_verify, AUTH, "llm_keys_verify"},
    {HTTP_GET, "/api/integrations/github/token", github_token_get, AUTH | ADMIN | CACHED, "github_token_get"},
    {HTTP_POST, "/api/integrations/github/token", github_token_save, AUTH | ADMIN | BODY, "github_token_save"},
    {HTTP_DELETE, "/api/integrations/github/token", github_token_delete, AUTH | ADMIN, "github_token_delete"},
    {HTTP_POST, "/api/integrations/github/token/test", github_token_test, AUTH | ADMIN | BODY, "github_token_test"},
    /* Slack: both spellings; creation parses its own body (every request is counted) */
#define SLACK_ROUTES(base, tag)                                                                    \
    {HTTP_GET, base, slack_webhooks_list, AUTH | CACHED | PER_USER, "slack_webhooks_list" tag},                       \
    {HTTP_POST, base, slack_webhooks_create, AUTH, "slack_webhooks_create" tag},                  \
    {HTTP_GET, base "/:id", slack_webhooks_get, AUTH, "slack_webhooks_get" tag},                  \
    {HTTP_PATCH, base "/:id", slack_webhooks_update, AUTH | BODY, "slack_webhooks_update" tag},   \
    {HTTP_DELETE, base "/:id", slack_webhooks_delete, AUTH, "slack_webhooks_delete" tag},         \
    {HTTP_POST, base "/:id/send", slack_webhooks_send, AUTH | BODY, "slack_webhooks_send" tag}
    SLACK_ROUTES("/api/slackWebhooks", ""),
    SLACK_ROUTES("/api/slack-webhooks", "_dash"),
    {HTTP_POST, "/api/notifications", slack_notifications_post, AUTH | BODY, "notifications_post"},
    {HTTP_POST, "/api/integrations/mlflow/test", mlflow_test, AUTH | BODY, "mlflow_test"},
    {HTTP_GET, "/api/integrations/mlflow/config", mlflow_config_get, AUTH | CACHED, "mlflow_config"},
    {HTTP_POST, "/api/integrations/mlflow/configure", mlflow_configure, AUTH | BODY, "mlflow_configure"},
    {HTTP_GET, "/api/integrations/mlflow/models", mlflow_models, AUTH, "mlflow_models"},
    {HTTP_GET, "/api/integrations/mlflow/sync-status", mlflow_sync_status, AUTH | CACHED, "mlflow_sync_status"},
    {HTTP_GET, "/api/integrations/mlflow/health", mlflow_health, AUTH, "mlflow_health"},
    {HTTP_POST, "/api/integrations/mlflow/sync", mlflow_sync_now, AUTH, "mlflow_sync"},
    {HTTP_GET, "/api/integrations/mlflow/sync-history", mlflow_sync_history, AUTH, "mlflow_sync_history"},
};

const struct route *app_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* ---- CORS ------------------------------------------------------------------ */

/* "scheme://host[:port]" of a URL, or -1. */
static int origin_of(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://");
    if (!p)
        return -1;
    p += 3;
    size_t host = strcspn(p, "/?#");
    int n = snprintf(out, len, "%.*s%.*s", (int)(p - url), url, (int)host, p);
    return n < 0 || (size_t)n >= len || host == 0 ? -1 : 0;
}

/* VerifyWise's rule: hostname localhost, 127.0.0.1 or ::1, any port, http(s). */
static bool localhost_origin(const char *o)
{
    const char *p;
    if (strncmp(o, "http://", 7) == 0)
        p = o + 7;
    else if (strncmp(o, "https://", 8) == 0)
        p = o + 8;
    else
        return false;
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(hosts[i]);
        if (strncmp(p, hosts[i], l) != 0)
            continue;
        const char *q = p + l;
        if (*q == '\0')
            return true;
        if (*q != ':' || !q[1] || strlen(q + 1) > 5)
            return false;
        for (q++; *q; q++)
            if (*q < '0' || *q > '9')
                return false;
        return true;
    }
    return false;
}

static bool origin_allowed(const struct app *a, const char *o)
{
    for (size_t i = 0; i < a->norigins; i++)
        if (strcmp(a->origins[i], o) == 0)
            return true;
    return a->cfg.allowed_origins == NULL && localhost_origin(o);
}

static int add_origin(struct app *a, const char *o)
{
    char **n = realloc(a->origins, (a->norigins + 1) * sizeof *n);
    if (!n)
        return -1;
    a->origins = n;
    if (!(a->origins[a->norigins] = strdup(o)))
        return -1;
    a->norigins++;
    return 0;
}

static int cors_init(struct app *a, char *err, size_t errlen)
{
    char o[512];
    if (!a->cfg.allowed_origins) {
        if (origin_of(a->cfg.frontend_url, o, sizeof o) < 0 || add_origin(a, o) < 0) {
            snprintf(err, errlen, "FRONTEND_URL has no usable origin");
            return -1;
        }
        return 0;
    }
    char *list = strdup(a->cfg.allowed_origins), *save = NULL;
    if (!list)
        return -1;
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (origin_of(tok, o, sizeof o) < 0 || strcmp(o, tok) != 0 || add_origin(a, tok) < 0) {
            snprintf(err, errlen, "ALLOWED_ORIGINS entries must be scheme://host[:port]");
            free(list);
            return -1;
        }
    }
    free(list);
    return 0;
}

static void cors_apply(struct http_req *r)
{
    const char *o = http_req_header(r, "Origin");
    if (!o || strlen(o) >= sizeof r->cors_buf || !origin_allowed(r->app, o))
        return;
    memcpy(r->cors_buf, o, strlen(o) + 1);
    r->cors_origin = r->cors_buf;
}

static void preflight(struct http_req *r)
{
    static const char *const hdrs[] = {
        "Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE",
        "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Requested-With",
        "Access-Control-Max-Age", "600",
        NULL};
    http_req_send(r, 204, NULL, r->cors_origin ? hdrs : NULL);
}

int64_t app_uptime_us(const struct app *a)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - a->started_us;
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
    cors_apply(r);
    if (r->method == HTTP_OPTIONS) {
        preflight(r);
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
    cors_apply(r);
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

/* ---- database settings and schema ------------------------------------------- */

#define MAX_KW 40
struct conninfo {
    const char *kw[MAX_KW + 1];
    const char *val[MAX_KW + 1];
    char *owned[MAX_KW];
    int n, nowned;
    PQconninfoOption *parsed;
};

static const char *keep(struct conninfo *ci, char *s)
{
    if (s && ci->nowned < MAX_KW)
        ci->owned[ci->nowned++] = s;
    return s;
}

static void ci_set(struct conninfo *ci, const char *k, const char *v)
{
    for (int i = 0; i < ci->n; i++)
        if (strcmp(ci->kw[i], k) == 0) {
            ci->val[i] = v;
            return;
        }
    if (ci->n < MAX_KW) {
        ci->kw[ci->n] = k;
        ci->val[ci->n++] = v;
    }
}

static const char *ci_get(const struct conninfo *ci, const char *k)
{
    for (int i = 0; i < ci->n; i++)
        if (strcmp(ci->kw[i], k) == 0)
            return ci->val[i];
    return NULL;
}

static struct conninfo conninfo;

/* Host names are resolved by the pool before every attempt (net/resolve), never by
 * libpq on the loop. The pool needs a writable server: target_session_attrs is
 * read-write unless the settings ask for any (or primary). */
static int check_session_attrs(struct conninfo *ci, char *err, size_t errlen)
{
    const char *t = ci_get(ci, "target_session_attrs");
    if (!t || !*t) {
        ci_set(ci, "target_session_attrs", "read-write");
        return 0;
    }
    if (strcmp(t, "read-write") != 0 && strcmp(t, "any") != 0 && strcmp(t, "primary") != 0) {
        snprintf(err, errlen, "target_session_attrs must be read-write, primary or any (the service writes)");
        return -1;
    }
    return 0;
}

static int conninfo_build(struct conninfo *ci, const struct config *c, char *err, size_t errlen)
{
    memset(ci, 0, sizeof *ci);
    if (c->database_url && *c->database_url) {
        char *perr = NULL;
        ci->parsed = PQconninfoParse(c->database_url, &perr);
        if (!ci->parsed) {
            snprintf(err, errlen, "DATABASE_URL is not a valid connection URI");
            PQfreemem(perr);
            return -1;
        }
        for (PQconninfoOption *o = ci->parsed; o->keyword; o++)
            if (o->val && *o->val)
                ci_set(ci, o->keyword, o->val);
    } else {
        if (c->db_host) ci_set(ci, "host", c->db_host);
        if (c->db_port) ci_set(ci, "port", c->db_port);
        if (c->db_name) ci_set(ci, "dbname", c->db_name);
        if (c->db_user) ci_set(ci, "user", c->db_user);
        if (c->db_password) ci_set(ci, "password", c->db_password);
    }
    const char *opts = ci_get(ci, "options");
    char *merged = NULL;
    if (asprintf(&merged, "%s%s-c statement_timeout=%d -c idle_in_transaction_session_timeout=%d",
                 opts ? opts : "", opts ? " " : "", c->db_statement_timeout_ms,
                 c->db_idle_in_transaction_timeout_ms) < 0)
        return -1;
    ci_set(ci, "options", keep(ci, merged));
    if (!ci_get(ci, "application_name"))
        ci_set(ci, "application_name", "integrationsd");
    ci_set(ci, "keepalives", "1");
    ci_set(ci, "keepalives_idle", "30");
    ci_set(ci, "keepalives_interval", "10");
    ci_set(ci, "keepalives_count", "3");
    ci_set(ci, "tcp_user_timeout", "15000");
    return check_session_attrs(ci, err, errlen);
}

static void conninfo_free(struct conninfo *ci)
{
    for (int i = 0; i < ci->nowned; i++)
        free(ci->owned[i]);
    if (ci->parsed)
        PQconninfoFree(ci->parsed);
    memset(ci, 0, sizeof *ci);
}

static struct event *schema_retry;

static void bootstrap(struct app *a);

static void on_bootstrap(const struct db_result *res, void *arg)
{
    struct app *a = arg;
    a->schema_running = false;
    if (res->status == DB_OK) {
        a->schema_ready = true;
        log_fields(LOG_INFO, "start-up: database schema ready",
                   json_pack("{s:s,s:f}", "version", db_schema_version(), "after_ms", app_uptime_us(a) / 1000.0));
        return;
    }
    if (res->status == DB_SQL_ERROR)
        log_error("creating the public schema objects failed: %s (%s); retrying", res->message,
                  res->sqlstate);
    struct timeval tv = {2, 0};
    if (!a->stopping)
        evtimer_add(schema_retry, &tv);
}

static void bootstrap(struct app *a)
{
    if (a->schema_ready || a->schema_running || a->stopping || db_pool_live(a->db) == 0)
        return;
    a->schema_running = true;
    db_schema_bootstrap(a->db, on_bootstrap, a);
}

static void schema_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    bootstrap(arg);
}

static void on_live_change(int live, void *arg)
{
    if (live > 0)
        bootstrap(arg);
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

int app_init(struct app *a, struct event_base *base, char *err, size_t errlen)
{
    a->base = base;
    a->routes = routes;
    a->nroutes = sizeof routes / sizeof routes[0];
    if (cors_init(a, err, errlen) < 0)
        return -1;
    if (!(a->members = member_cache_new((unsigned)a->cfg.auth_cache_entries, a->cfg.auth_cache_ms)) ||
        !(a->cache = read_cache_new(a->cfg.cache_bytes)) ||
        !(a->tenants = tenant_set_new()) || !(schema_retry = evtimer_new(base, schema_retry_cb, a))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (conninfo_build(&conninfo, &a->cfg, err, errlen) < 0)
        return -1;
    if (!(a->resolver = resolver_new(base, a->cfg.resolver_hosts_file, err, errlen)))
        return -1;
    struct db_pool_opts po = {
        .keywords = conninfo.kw,
        .values = conninfo.val,
        .size = a->cfg.db_pool_size,
        .max_depth = a->cfg.db_pipeline_depth,
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
    };
    char ua[64];
    snprintf(ua, sizeof ua, "integrationsd/%s", PACKAGE_VERSION);
    if (!(a->fetch = fetch_client_new(base, a->cfg.outbound_deny_cidrs, ua, err, errlen)))
        return -1;
    fetch_client_set_limits(a->fetch, a->cfg.outbound_max_concurrent, a->cfg.outbound_max_per_org);
    struct events_opts eo = {
        .redis_url = a->cfg.redis_url,
        .prefix = a->cfg.redis_channel_prefix,
        .max_queue = (size_t)a->cfg.events_max_queue,
        .sentinels = a->cfg.redis_sentinels,
        .sentinel_master = a->cfg.redis_sentinel_master,
        .resolver = a->resolver,
        .on_notify = a->on_notify,
        .arg = a,
    };
    if (!(a->events = events_new(base, &eo, err, errlen)))
        return -1;
    if (!(a->http = http_server_new(base, a, &ho, app_dispatch, err, errlen)))
        return -1;
    if (mlflow_start(a, err, errlen) < 0) /* validates MLFLOW_SYNC_SCHEDULE */
        return -1;
    if (!(a->looplag = looplag_start(base))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void app_free(struct app *a)
{
    mlflow_stop(a); /* first: its jobs hold requests, calls and queries */
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
    db_pool_free(a->db);
    a->db = NULL;
    read_cache_free(a->cache);
    a->cache = NULL;
    resolver_free(a->resolver);
    a->resolver = NULL;
    member_cache_free(a->members);
    a->members = NULL;
    tenant_set_free(a->tenants);
    a->tenants = NULL;
    if (schema_retry) {
        event_free(schema_retry);
        schema_retry = NULL;
    }
    conninfo_free(&conninfo);
    for (size_t i = 0; i < a->norigins; i++)
        free(a->origins[i]);
    free(a->origins);
    a->origins = NULL;
    a->norigins = 0;
}
