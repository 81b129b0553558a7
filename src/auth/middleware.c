/* auth/middleware: owns the authentication state machine of one request:
 *   TOKEN -> (sync) VERIFY -> MEMBERSHIP (member cache, else db) -> TENANT_CHECK ->
 *   ENSURE_TENANT (db, first time only) -> ROLE_GATE -> next.
 * Every failure answers with VerifyWise's status and body and stops. TOKEN and VERIFY
 * also run alone (auth_check_token) on the headers of a request with a body, so a
 * request without a valid token is refused before its body is read. */
#include "auth/middleware.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "app.h"
#include "auth/jwt.h"
#include "auth/member_cache.h"
#include "auth/token_cache.h"
#include "auth/tenant.h"
#include "db/pool.h"
#include "db/schema.h"
#include "http/reply.h"
#include "log.h"
#include "util/clock.h"

struct auth_job {
    struct http_req *r;
    auth_next_fn next;
    struct jwt_claims claims;
    uint64_t member_gen;         /* the member cache's generation when the lookup was sent */
};

static const char *const role_names[] = {NULL, "Admin", "Reviewer", "Editor", "Auditor"};

const char *auth_role_name(long long role_id)
{
    return role_id >= 1 && role_id <= 4 ? role_names[role_id] : NULL;
}

static void reply_bare_message(struct http_req *r, int status, const char *msg)
{
    reply_json(r, status, json_pack("{s:s}", "message", msg));
}

static void job_end(struct auth_job *j)
{
    http_req_unref(j->r);
    free(j);
}

static void finish(struct auth_job *j)
{
    struct http_req *r = j->r;
    if (http_req_alive(r)) {
        if ((r->route->flags & ROUTE_ADMIN) && !r->auth.is_admin)
            reply_bare_message(r, 403, "Access denied");
        else
            j->next(r);
    }
    job_end(j);
}

static void on_tenant_ready(const struct db_result *res, void *arg)
{
    struct auth_job *j = arg;
    struct http_req *r = j->r;
    if (res->status != DB_OK) {
        if (res->status == DB_UNAVAILABLE)
            reply_db_unavailable(r);
        else {
            log_error("creating tenant schema %s failed: %s", r->auth.tenant, res->message);
            reply_internal(r);
        }
        job_end(j);
        return;
    }
    if (tenant_set_add(r->app->tenants, r->auth.tenant) < 0)
        log_warn("tenant cache full; tenant %s will be re-checked", r->auth.tenant);
    finish(j);
}

/* Steps 7 and 8 (tenant), then the tenant's schema. */
static void check_tenant(struct auth_job *j)
{
    struct http_req *r = j->r;
    const struct jwt_claims *c = &j->claims;
    if (!c->has_tenant || !tenant_name_valid(c->tenant_id)) {
        reply_bare_message(r, 400, "Invalid tenant format");
        job_end(j);
        return;
    }
    char expect[TENANT_HASH_LEN + 1];
    if (tenant_hash(c->organization_id, expect) < 0 || strcmp(expect, c->tenant_id) != 0) {
        reply_bare_message(r, 400, "Invalid token");
        job_end(j);
        return;
    }
    memcpy(r->auth.tenant, expect, sizeof expect);
    if (tenant_set_has(r->app->tenants, expect)) {
        finish(j);
        return;
    }
    db_schema_ensure_tenant(r->app->db, expect, c->organization_id, on_tenant_ready, j);
}

/* Steps 5 and 6 on a (possibly cached) public.users lookup. */
static void check_member(struct auth_job *j, const struct member_entry *e)
{
    struct http_req *r = j->r;
    if (e->found == MEMBER_NO_TABLE) { /* no public.users: the check is skipped */
        check_tenant(j);
        return;
    }
    if (e->found != MEMBER_ROW || e->org_id != j->claims.organization_id) {
        reply_bare_message(r, 403, "User does not belong to this organization");
        job_end(j);
        return;
    }
    const char *role = auth_role_name(e->role_id);
    if (!role || strcmp(role, j->claims.role_name) != 0) {
        reply_bare_message(r, 403, "Not allowed to access");
        job_end(j);
        return;
    }
    check_tenant(j);
}

static void on_membership(const struct db_result *res, void *arg)
{
    struct auth_job *j = arg;
    struct http_req *r = j->r;
    if (!http_req_alive(r)) {
        job_end(j);
        return;
    }
    if (res->status == DB_UNAVAILABLE) {
        reply_db_unavailable(r);
        job_end(j);
        return;
    }
    struct member_entry e = {.user_id = j->claims.id};
    if (res->status == DB_SQL_ERROR) {
        if (strcmp(res->sqlstate, "42P01") != 0) {
            log_error("membership check failed: %s", res->message);
            reply_internal(r);
            job_end(j);
            return;
        }
        e.found = MEMBER_NO_TABLE;
    } else {
        const PGresult *pr = db_last(res);
        e.found = PQntuples(pr) == 1 ? MEMBER_ROW : MEMBER_NO_ROW;
        if (e.found == MEMBER_ROW) {
            e.org_id = PQgetisnull(pr, 0, 0) ? 0 : strtoll(PQgetvalue(pr, 0, 0), NULL, 10);
            e.role_id = PQgetisnull(pr, 0, 1) ? 0 : strtoll(PQgetvalue(pr, 0, 1), NULL, 10);
        }
    }
    member_cache_put(r->app->members, j->member_gen, e.user_id, e.found, e.org_id, e.role_id, (int64_t)clock_real_ms());
    check_member(j, &e);
}

/* The token: second space-separated word of Authorization (scheme unchecked). */
static const char *token_of(const char *h, size_t *len)
{
    if (!h)
        return NULL;
    const char *sp = strchr(h, ' ');
    if (!sp)
        return NULL;
    const char *t = sp + 1;
    *len = strcspn(t, " ");
    return *len ? t : NULL;
}

/* Steps 1-4: the token itself (presence, signature, expiry, claims). Answers and returns
 * -1 on failure. */
static int check_token(struct http_req *r, struct jwt_claims *claims)
{
    size_t tlen = 0;
    const char *tok = token_of(http_req_header(r, "Authorization"), &tlen);
    if (!tok) {
        reply_data_message(r, 400, "Token not found");
        return -1;
    }
    struct app *a = r->app;
    int64_t now = (int64_t)clock_real_ms();
    enum jwt_status st;
    if (!token_cache_get(a->tokens, tok, tlen, now, &st, claims)) {
        st = jwt_verify_hs256(tok, tlen, (const unsigned char *)a->cfg.jwt_secret,
                              strlen(a->cfg.jwt_secret), now, claims);
        if (st == JWT_OK)
            token_cache_put(a->tokens, tok, tlen, claims);
    }
    if (st == JWT_INVALID) {
        reply_data_message(r, 401, "Unauthorized **");
        return -1;
    }
    if (st == JWT_EXPIRED) {
        reply_data_message(r, 406, "Token expired");
        return -1;
    }
    if (!claims->has_id || claims->id <= 0 || !claims->has_role) {
        reply_bare_message(r, 400, "Invalid token");
        return -1;
    }
    if (!claims->has_org || claims->organization_id <= 0) {
        /* VerifyWise throws a 500 here; a token without an organization is simply invalid. */
        reply_bare_message(r, 400, "Invalid token");
        return -1;
    }
    return 0;
}

void auth_check_token(struct http_req *r)
{
    struct jwt_claims claims;
    (void)check_token(r, &claims);
}

static bool membership_wanted(void *arg)
{
    struct auth_job *j = arg;
    return http_req_alive(j->r);
}

void auth_run(struct http_req *r, auth_next_fn next)
{
    struct app *a = r->app;
    struct jwt_claims claims;
    if (check_token(r, &claims) < 0)
        return;
    struct auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        reply_internal(r);
        return;
    }
    j->r = http_req_ref(r);
    j->next = next;
    j->claims = claims;
    r->auth.user_id = claims.id;
    r->auth.org_id = claims.organization_id;
    snprintf(r->auth.role, sizeof r->auth.role, "%s", claims.role_name);
    r->auth.is_admin = strcmp(claims.role_name, "Admin") == 0;
    struct member_entry cached;
    if (member_cache_get(a->members, claims.id, (int64_t)clock_real_ms(), &cached)) {
        check_member(j, &cached);
        return;
    }
    http_req_hold(r);
    j->member_gen = member_cache_gen(a->members);
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%lld", claims.id);
    const char *params[] = {idbuf};
    struct db_stmt stmt = {"SELECT organization_id, role_id FROM public.users WHERE id = $1::bigint", 1,
                           params};
    db_submit_if(a->db, &stmt, 1, on_membership, j, membership_wanted);
}
