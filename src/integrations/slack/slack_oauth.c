/* integrations/slack_oauth: owns the webhook installation and the token rotation.
 *
 * Installation, a state machine bound to the request (r->handler_state):
 *   OAUTH_COUNT     count the request against the creation limit (every request
 *                   counts, whatever its outcome)          -> 429, or OAUTH_VALIDATE
 *   OAUTH_VALIDATE  parse the body: code (required), userId (ignored unless valid)
 *                                                          -> 400, or OAUTH_EXCHANGE
 *   OAUTH_EXCHANGE  POST SLACK_API_URL (form: client_id, client_secret, code,
 *                   redirect_uri = FRONTEND_URL/integrations/slack); ok:false -> 400
 *                   with Slack's error name; fields checked one by one with the
 *                   reference messages; secrets encrypted (scheme A) -> OAUTH_STORE
 *   OAUTH_STORE     INSERT, owner = caller, organization = caller's -> 201, event
 *
 * Rotation, one webhook at a time, driven by a timer (REFRESH_TICK_MS):
 *   REFRESH_IDLE -> REFRESH_CLAIM (lease one webhook whose token expires within
 *   REFRESH_LEAD_S; the lease keeps other instances off it) -> REFRESH_CALL
 *   (grant_type=refresh_token) -> REFRESH_SAVE (new token, refresh token, expiry) or
 *   REFRESH_DEACTIVATE (Slack refused) -> REFRESH_CLAIM again until none is due.
 *   The lease is the one slack_post takes to refresh an expired token on demand, so a
 *   token is never refreshed twice at once. Both machines have the util/machine.h
 *   shape; the refresh call, its answer and the save are shared with slack_post.
 *   Network failures leave the lease to expire and the webhook to be retried. */
#include "integrations/slack_oauth.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth/tenant.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "http/reply.h"
#include "integrations/handler.h"
#include "integrations/slack_ratelimit.h"
#include "integrations/slack_store.h"
#include "integrations/slack_webhooks.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"
#include "util/machine.h"

#define FIELD_MAX 255             /* VARCHAR(255) columns */
#define SECRET_MAX 2048           /* bot token, refresh token, webhook URL */
#define REFRESH_TICK_MS 5000
#define REFRESH_LEAD_S 600        /* refresh when the token has less than this left */
#define OAUTH_FAIL "Failed to validate Slack OAuth code"

/* ---- shared: the form body and Slack's answer ------------------------------------ */

/* Append k=v (percent-encoded) to *buf; returns 0 or -1. */
static int form_add(char **buf, size_t *len, const char *k, const char *v)
{
    size_t vl = strlen(v), need = *len + strlen(k) + 2 + 3 * vl + 1;
    char *n = realloc(*buf, need);
    if (!n)
        return -1;
    *buf = n;
    char *p = n + *len;
    if (*len)
        *p++ = '&';
    p += sprintf(p, "%s=", k);
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    *len = (size_t)(p - n);
    return 0;
}

static void form_free(char *buf, size_t len)
{
    secrets_free_plain(buf, len);   /* it carries the client secret */
}

/* A POST to SLACK_API_URL with a form body (copied by the fetch layer). */
static struct fetch_request form_request(const struct app *a, const char *body, size_t len)
{
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    return (struct fetch_request){
        .method = "POST",
        .url = a->cfg.slack_api_url,
        .headers = headers,
        .body = body,
        .body_len = len,
        .timeout_ms = 10000,
        .connect_timeout_ms = 5000,
        .max_response = 256 * 1024,
        .target = "slack_oauth",
    };
}

/* A string member (non-empty after trimming), or NULL. */
static const char *str_field(json_t *o, const char *k, size_t *len)
{
    const char *s;
    size_t n;
    if (json_get_string(o, k, &s, &n) != 1)
        return NULL;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || memchr(s, '\0', n))
        return NULL;
    *len = n;
    return s;
}

/* Slack's error name, printable and bounded. */
static void error_name(json_t *j, char out[96])
{
    const char *e = json_string_value(json_object_get(j, "error"));
    size_t k = 0;
    for (; e && *e && k + 1 < 96; e++)
        out[k++] = (*e >= 0x20 && *e < 0x7f) ? *e : '?';
    out[k] = '\0';
    if (!k)
        snprintf(out, 96, "unknown_error");
}

/* ---- installation ----------------------------------------------------------------- */

enum oauth_state { OAUTH_COUNT, OAUTH_VALIDATE, OAUTH_EXCHANGE, OAUTH_STORE, OAUTH_DONE };
static const char *const oauth_state_names[] = {"count", "validate", "exchange", "store", "done"};
static const struct machine_def oauth_def = MACHINE_DEF("slack oauth", oauth_state_names);

/* A checked field of Slack's answer: where it is, and the message when missing. */
struct oauth_field {
    const char *parent;           /* NULL: top level */
    const char *key;
    const char *missing;
    const char *label;            /* for the length message */
    size_t max;
};

static const struct oauth_field oauth_fields[] = {
    {NULL, "access_token", "Access Token is required", "Access Token", SECRET_MAX},
    {NULL, "scope", "Slack scope is required", "Slack scope", FIELD_MAX},
    {"team", "id", "Team ID is required", "Team ID", FIELD_MAX},
    {"team", "name", "Team Name is required", "Team Name", FIELD_MAX},
    {"incoming_webhook", "channel", "Slack Channel is required", "Slack Channel", FIELD_MAX},
    {"incoming_webhook", "channel_id", "Slack Channel ID is required", "Slack Channel ID", FIELD_MAX},
    {"incoming_webhook", "configuration_url", "Configuration URL is required", "Configuration URL", FIELD_MAX},
    {"incoming_webhook", "url", "Slack URL is required", "Slack URL", SECRET_MAX},
};
#define NFIELDS (sizeof oauth_fields / sizeof oauth_fields[0])
enum { F_TOKEN, F_SCOPE, F_TEAM_ID, F_TEAM_NAME, F_CHANNEL, F_CHANNEL_ID, F_CONFIG_URL, F_URL };

struct oauth_job {
    enum oauth_state state;
    char *field[NFIELDS];         /* trimmed copies; [F_TOKEN] and [F_URL] are secrets */
    size_t field_len[NFIELDS];
    char *refresh;                /* secret, or NULL */
    size_t refresh_len;
    long long expires_in;         /* 0: no rotation */
};

/* The creation limit's answer (MI_EVENT). */
struct oauth_counted {
    bool allowed;
    long retry_after_s;
};

static void oauth_job_free(void *p)
{
    struct oauth_job *j = p;
    if (!j)
        return;
    for (size_t i = 0; i < NFIELDS; i++)
        secrets_free_plain(j->field[i], j->field_len[i]);
    secrets_free_plain(j->refresh, j->refresh_len);
    free(j);
}

static void oauth_enter(struct http_req *r);
static void on_counted(struct http_req *r, bool allowed, long retry_after_s);
static void on_exchanged_cb(struct http_req *r, const struct fetch_response *res);
static void on_stored_cb(struct http_req *r, const struct db_result *res);

static void oauth_set_state(struct oauth_job *j, enum oauth_state s)
{
    machine_trace(&oauth_def, "install", j->state, s);
    j->state = s;
}

static void oauth_go(struct http_req *r, enum oauth_state s)
{
    oauth_set_state(r->handler_state, s);
    oauth_enter(r);
}

/* The request is answered (or about to be): nothing is waited for any more. */
static void oauth_done(struct http_req *r)
{
    oauth_set_state(r->handler_state, OAUTH_DONE);
}

static void on_stored(struct http_req *r, const struct db_result *res)
{
    oauth_done(r);
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, "slack oauth", "storing the webhook");
        return;
    }
    const PGresult *pr = db_last(res);
    app_event(r->app, "slack.webhook.created", r->auth.org_id, r->auth.tenant, r->auth.user_id,
              slack_webhook_json(pr, 0, 0));
    reply_data(r, 201, slack_webhook_json(pr, 0, 0));
}

/* Check Slack's success answer field by field into the job; replies and returns -1. */
static int take_fields(struct http_req *r, json_t *ans)
{
    struct oauth_job *j = r->handler_state;
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct oauth_field *f = &oauth_fields[i];
        json_t *obj = f->parent ? json_object_get(ans, f->parent) : ans;
        size_t n = 0;
        const char *s = json_is_object(obj) ? str_field(obj, f->key, &n) : NULL;
        if (!s) {
            reply_text(r, 400, f->missing);
            return -1;
        }
        if (utf8_length(s, n) > f->max) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s must be at most %zu characters", f->label, f->max);
            reply_text(r, 400, msg);
            return -1;
        }
        if (!(j->field[i] = strndup(s, n))) {
            reply_internal(r);
            return -1;
        }
        j->field_len[i] = n;
    }
    const char *u = j->field[F_URL];
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0) {
        reply_text(r, 400, "Slack URL must be an http(s) URL");
        return -1;
    }
    size_t n = 0;
    const char *rt = str_field(ans, "refresh_token", &n);
    json_t *exp = json_object_get(ans, "expires_in");
    if (rt && n <= SECRET_MAX && json_is_integer(exp) && json_integer_value(exp) > 0) {
        if (!(j->refresh = strndup(rt, n))) {
            reply_internal(r);
            return -1;
        }
        j->refresh_len = n;
        j->expires_in = json_integer_value(exp) > 100000000 ? 100000000 : json_integer_value(exp);
    }
    return 0;
}

static void on_exchanged(struct http_req *r, const struct fetch_response *res)
{
    char msg[256];
    if (res->outcome != FETCH_OK) {
        oauth_done(r);
        log_warn("slack oauth: code exchange failed: %s", fetch_outcome_name(res->outcome));
        snprintf(msg, sizeof msg, OAUTH_FAIL ": Slack could not be reached (%s)", fetch_outcome_name(res->outcome));
        reply_error(r, res->outcome == FETCH_TIMEOUT ? 504 : 502, msg);
        return;
    }
    json_error_t je;
    json_t *ans = res->status < 500 ? json_loadb(res->body ? res->body : "", res->body_len, 0, &je) : NULL;
    json_t *ok = json_object_get(ans, "ok");
    if (!json_is_boolean(ok)) {
        oauth_done(r);
        snprintf(msg, sizeof msg, OAUTH_FAIL ": unexpected answer from Slack (HTTP %ld)", res->status);
        reply_error(r, 502, msg);
        json_decref(ans);
        return;
    }
    if (!json_is_true(ok)) {
        oauth_done(r);
        char name[96];
        error_name(ans, name);
        json_decref(ans);
        log_info("slack oauth: Slack refused the code: %s", name);
        reply_text(r, 400, name);
        return;
    }
    int rc = take_fields(r, ans);
    json_decref(ans);
    if (rc < 0) {
        oauth_done(r);
        return;
    }
    oauth_go(r, OAUTH_STORE);
}

static void oauth_store(struct http_req *r)
{
    struct oauth_job *j = r->handler_state;
    const struct secrets *s = &r->app->secrets;
    char *tok = NULL, *url = NULL, *ref = NULL, tok_iv[33], url_iv[33], ref_iv[33];
    if (secrets_a_encrypt(s, j->field[F_TOKEN], j->field_len[F_TOKEN], &tok, tok_iv) < 0 ||
        secrets_a_encrypt(s, j->field[F_URL], j->field_len[F_URL], &url, url_iv) < 0 ||
        (j->refresh && secrets_a_encrypt(s, j->refresh, j->refresh_len, &ref, ref_iv) < 0)) {
        free(tok);
        free(url);
        oauth_done(r);
        log_error("slack oauth: encryption failed");
        reply_internal(r);
        return;
    }
    char user[24], org[24], exp[24];
    snprintf(user, sizeof user, "%lld", r->auth.user_id);
    snprintf(org, sizeof org, "%lld", r->auth.org_id);
    snprintf(exp, sizeof exp, "%lld", j->expires_in);
    const char *params[] = {tok, tok_iv, j->field[F_SCOPE], user, org, j->field[F_TEAM_NAME], j->field[F_TEAM_ID],
                            j->field[F_CHANNEL], j->field[F_CHANNEL_ID], j->field[F_CONFIG_URL], url, url_iv,
                            ref, ref ? ref_iv : NULL, ref ? exp : NULL};
    app_query(r, SLACK_SQL_OAUTH_STORE, 15, params, on_stored_cb);
    free(tok);
    free(url);
    free(ref);
}

/* VALIDATE waits for nothing: the body is checked at once. */
static void oauth_validate(struct http_req *r)
{
    if (app_parse_body(r) < 0) {
        oauth_done(r);
        return;
    }
    /* A userId other than the caller's is ignored: the owner is the caller. */
    const char *code;
    size_t n;
    enum slack_wh_err e = slack_webhooks_check_create(r->json, &code, &n);
    if (e != SLACK_WH_OK) {
        oauth_done(r);
        reply_text(r, slack_webhooks_err_status(e), slack_webhooks_err_message(e));
        return;
    }
    oauth_go(r, OAUTH_EXCHANGE);
}

static void oauth_exchange(struct http_req *r)
{
    const struct config *c = &r->app->cfg;
    const char *code = json_string_value(json_object_get(r->json, "code"));
    char redirect[1024];
    int n = snprintf(redirect, sizeof redirect, "%s/integrations/slack", c->frontend_url);
    char *form = NULL;
    size_t len = 0;
    if (n < 0 || (size_t)n >= sizeof redirect || form_add(&form, &len, "client_id", c->slack_client_id) < 0 ||
        form_add(&form, &len, "client_secret", c->slack_client_secret) < 0 ||
        form_add(&form, &len, "code", code) < 0 || form_add(&form, &len, "redirect_uri", redirect) < 0) {
        form_free(form, len);
        oauth_done(r);
        reply_internal(r);
        return;
    }
    struct fetch_request fr = form_request(r->app, form, len);
    app_fetch(r, &fr, on_exchanged_cb);
    form_free(form, len);
}

static void oauth_enter(struct http_req *r)
{
    struct oauth_job *j = r->handler_state;
    switch (j->state) {
    case OAUTH_COUNT:
        slack_ratelimit_count(r, on_counted);
        return;
    case OAUTH_VALIDATE:
        oauth_validate(r);
        return;
    case OAUTH_EXCHANGE:
        oauth_exchange(r);
        return;
    case OAUTH_STORE:
        oauth_store(r);
        return;
    case OAUTH_DONE:
        return;
    default:
        MACHINE_IMPOSSIBLE(&oauth_def, j->state);
    }
}

static void oauth_step(struct http_req *r, const struct machine_input *in)
{
    struct oauth_job *j = r->handler_state;
    if (in->kind == MI_ENTER) {
        oauth_enter(r);
        return;
    }
    switch (j->state) {
    case OAUTH_COUNT: {
        if (in->kind != MI_EVENT)
            break;
        const struct oauth_counted *c = in->arg;
        if (!c->allowed) {
            oauth_done(r);
            slack_ratelimit_reply(r, c->retry_after_s);
            return;
        }
        oauth_go(r, OAUTH_VALIDATE);
        return;
    }
    case OAUTH_EXCHANGE:
        if (in->kind != MI_FETCH)
            break;
        on_exchanged(r, in->fetch);
        return;
    case OAUTH_STORE:
        if (in->kind != MI_DB)
            break;
        on_stored(r, in->db);
        return;
    case OAUTH_VALIDATE:   /* waits for nothing */
    case OAUTH_DONE:
        break;
    default:
        MACHINE_IMPOSSIBLE(&oauth_def, j->state);
    }
    MACHINE_IMPOSSIBLE(&oauth_def, j->state);
}

static void on_counted(struct http_req *r, bool allowed, long retry_after_s)
{
    struct oauth_counted c = {allowed, retry_after_s};
    struct machine_input in = {.kind = MI_EVENT, .arg = &c};
    oauth_step(r, &in);
}

static void on_exchanged_cb(struct http_req *r, const struct fetch_response *res)
{
    struct machine_input in = {.kind = MI_FETCH, .fetch = res};
    oauth_step(r, &in);
}

static void on_stored_cb(struct http_req *r, const struct db_result *res)
{
    struct machine_input in = {.kind = MI_DB, .db = res};
    oauth_step(r, &in);
}

void slack_webhooks_create(struct http_req *r)
{
    struct oauth_job *j = calloc(1, sizeof *j);
    if (!j) {
        reply_internal(r);
        return;
    }
    *j = (struct oauth_job){.state = OAUTH_COUNT};
    r->handler_state = j;
    r->handler_state_free = oauth_job_free;
    struct machine_input in = {.kind = MI_ENTER};
    oauth_step(r, &in);
}

/* ---- the refresh call, shared with slack_post ----------------------------------------- */

int slack_refresh_call(struct slack_refresh_call *c, const struct app *a, const char *refresh_token)
{
    const struct config *cf = &a->cfg;
    memset(c, 0, sizeof *c);
    if (form_add(&c->form, &c->len, "client_id", cf->slack_client_id) < 0 ||
        form_add(&c->form, &c->len, "client_secret", cf->slack_client_secret) < 0 ||
        form_add(&c->form, &c->len, "grant_type", "refresh_token") < 0 ||
        form_add(&c->form, &c->len, "refresh_token", refresh_token) < 0) {
        slack_refresh_call_clear(c);
        return -1;
    }
    c->fr = form_request(a, c->form, c->len);
    return 0;
}

void slack_refresh_call_clear(struct slack_refresh_call *c)
{
    form_free(c->form, c->len);
    c->form = NULL;
    c->len = 0;
}

enum slack_refresh_result slack_refresh_parse(const struct fetch_response *res, struct slack_refresh_answer *a)
{
    memset(a, 0, sizeof *a);
    if (res->outcome != FETCH_OK || res->status >= 500 || res->status == 429)
        return SLACK_REFRESH_UNREACHABLE;
    json_error_t je;
    json_t *ans = json_loadb(res->body ? res->body : "", res->body_len, 0, &je);
    json_t *ok = json_object_get(ans, "ok");
    size_t n = 0, m = 0;
    const char *tok = json_is_true(ok) ? str_field(ans, "access_token", &n) : NULL;
    enum slack_refresh_result r;
    if (tok && n <= SECRET_MAX) {
        const char *rt = str_field(ans, "refresh_token", &m);
        json_t *exp = json_object_get(ans, "expires_in");
        a->token = strndup(tok, n);
        a->refresh = rt && m <= SECRET_MAX ? strndup(rt, m) : NULL;
        a->expires_in = json_is_integer(exp) && json_integer_value(exp) > 0 ? json_integer_value(exp) : 0;
        if (a->expires_in > 100000000)
            a->expires_in = 100000000;
        r = a->token ? SLACK_REFRESH_OK : SLACK_REFRESH_UNREACHABLE;
        if (!a->token)
            slack_refresh_answer_clear(a);
    } else {
        char name[96];
        if (json_is_boolean(ok))
            error_name(ans, name);
        else
            snprintf(name, sizeof name, "unexpected answer (HTTP %ld)", res->status);
        snprintf(a->reason, sizeof a->reason, "Slack token refresh failed: %s", name);
        r = SLACK_REFRESH_REFUSED;
    }
    json_decref(ans);
    return r;
}

void slack_refresh_answer_clear(struct slack_refresh_answer *a)
{
    secrets_free_plain(a->token, a->token ? strlen(a->token) : 0);
    secrets_free_plain(a->refresh, a->refresh ? strlen(a->refresh) : 0);
    a->token = a->refresh = NULL;
}

int slack_refresh_save_prepare(struct slack_refresh_save *sv, const struct secrets *s, const char *id,
                               const struct slack_refresh_answer *a)
{
    memset(sv, 0, sizeof *sv);
    if (secrets_a_encrypt(s, a->token, strlen(a->token), &sv->tok, sv->tok_iv) < 0 ||
        (a->refresh && secrets_a_encrypt(s, a->refresh, strlen(a->refresh), &sv->ref, sv->ref_iv) < 0)) {
        slack_refresh_save_clear(sv);
        return -1;
    }
    snprintf(sv->exp, sizeof sv->exp, "%lld", a->expires_in);
    const char *p[6] = {id, sv->tok, sv->tok_iv, sv->ref, sv->ref ? sv->ref_iv : NULL, a->expires_in ? sv->exp : NULL};
    memcpy(sv->params, p, sizeof p);
    return 0;
}

void slack_refresh_save_clear(struct slack_refresh_save *sv)
{
    free(sv->tok);
    free(sv->ref);
    sv->tok = sv->ref = NULL;
}

void slack_event_rotated(struct app *a, const PGresult *res)
{
    long long org = slack_store_webhook_org(res);
    char tenant[TENANT_HASH_LEN + 1];
    if (org < 0 || tenant_hash(org, tenant) != 0)
        return;
    json_t *d = slack_webhook_json(res, 0, 0);
    json_object_set_new(d, "token_rotated", json_true());
    app_event(a, "slack.webhook.updated", org, tenant, 0, d);
}

/* ---- token rotation ------------------------------------------------------------------ */

enum refresh_state { REFRESH_IDLE, REFRESH_CLAIM, REFRESH_CALL, REFRESH_SAVE, REFRESH_DEACTIVATE };
static const char *const refresh_state_names[] = {"idle", "claim", "call", "save", "deactivate"};
static const struct machine_def refresh_def = MACHINE_DEF("slack token rotation", refresh_state_names);

static struct refresher {
    struct app *a;
    struct event *timer;
    enum refresh_state state;     /* every state but IDLE has one statement or call in flight */
    struct fetch *f;
    char id[24];
    char *refresh;                /* decrypted, wiped when done */
    size_t refresh_len;
    struct slack_refresh_answer ans; /* from Slack, wiped when done */
    char reason[160];
} R;

static void refresh_enter(void);

static void refresh_set_state(enum refresh_state s)
{
    machine_trace(&refresh_def, R.id, R.state, s);
    R.state = s;
}

static void refresh_clear(void)
{
    secrets_free_plain(R.refresh, R.refresh_len);
    R.refresh = NULL;
    R.refresh_len = 0;
    slack_refresh_answer_clear(&R.ans);
}

static void refresh_go(enum refresh_state s)
{
    refresh_set_state(s);
    refresh_enter();
}

/* Nothing more for this webhook now (the lease runs out, or nothing is due). */
static void refresh_idle(void)
{
    refresh_clear();
    refresh_set_state(REFRESH_IDLE);
}

static void on_refresh_saved(const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("slack token rotation: saving webhook %s failed: %s", R.id, res->message);
        refresh_idle();
        return;
    }
    const PGresult *pr = db_last(res);
    if (R.state == REFRESH_DEACTIVATE) {
        log_warn("slack token rotation: webhook %s deactivated: %s", R.id, R.reason);
        if (slack_store_webhook_org(pr) >= 0)
            slack_event_deactivated(R.a, pr, R.reason, 0);
    } else {
        log_info("slack token rotation: webhook %s has a new bot token", R.id);
        slack_event_rotated(R.a, pr);
    }
    refresh_clear();
    refresh_go(REFRESH_CLAIM);   /* done with one webhook: look for the next one at once */
}

static void on_refreshed(const struct fetch_response *res)
{
    switch (slack_refresh_parse(res, &R.ans)) {
    case SLACK_REFRESH_OK:
        refresh_go(REFRESH_SAVE);
        return;
    case SLACK_REFRESH_REFUSED:
        snprintf(R.reason, sizeof R.reason, "%s", R.ans.reason);
        refresh_go(REFRESH_DEACTIVATE);
        return;
    case SLACK_REFRESH_UNREACHABLE:
        if (res->outcome != FETCH_OK || res->status >= 500 || res->status == 429)
            log_warn("slack token rotation: webhook %s: Slack unreachable or busy (%s, HTTP %ld); retried later", R.id,
                     fetch_outcome_name(res->outcome), res->status);
        refresh_idle();   /* the lease expires, then it is tried again */
        return;
    default:
        MACHINE_IMPOSSIBLE(&refresh_def, R.state);
    }
}

static void on_claimed(const struct db_result *res)
{
    if (res->status != DB_OK) {
        if (res->status == DB_SQL_ERROR)
            log_warn("slack token rotation: claim failed: %s", res->message);
        refresh_idle();
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) == 0) {
        refresh_idle();
        return;
    }
    if (slack_store_refresh_row(&R.a->secrets, pr, R.id, &R.refresh, &R.refresh_len) < 0) {
        snprintf(R.reason, sizeof R.reason, "Slack token refresh failed: the stored refresh token cannot be decrypted");
        refresh_go(REFRESH_DEACTIVATE);
    } else {
        refresh_go(REFRESH_CALL);
    }
}

static void refresh_step(const struct machine_input *in)
{
    if (in->kind == MI_ENTER) {
        refresh_enter();
        return;
    }
    switch (R.state) {
    case REFRESH_IDLE:
        if (in->kind == MI_TIMER) {
            if (R.a->schema_ready && !R.a->stopping)
                refresh_go(REFRESH_CLAIM);
            return;
        }
        break;
    case REFRESH_CLAIM:
    case REFRESH_CALL:
    case REFRESH_SAVE:
    case REFRESH_DEACTIVATE:
        if (in->kind == MI_TIMER)
            return;   /* busy: the tick finds the next webhook once this one is done */
        if (R.state == REFRESH_CALL && in->kind == MI_FETCH) {
            on_refreshed(in->fetch);
            return;
        }
        if (R.state != REFRESH_CALL && in->kind == MI_DB) {
            if (R.state == REFRESH_CLAIM)
                on_claimed(in->db);
            else
                on_refresh_saved(in->db);
            return;
        }
        break;
    default:
        MACHINE_IMPOSSIBLE(&refresh_def, R.state);
    }
    MACHINE_IMPOSSIBLE(&refresh_def, R.state);
}

static void refresh_db_cb(const struct db_result *res, void *arg)
{
    (void)arg;
    if (!R.a)
        return;
    struct machine_input in = {.kind = MI_DB, .db = res};
    refresh_step(&in);
}

static void refresh_fetch_cb(const struct fetch_response *res, void *arg)
{
    (void)arg;
    R.f = NULL;
    struct machine_input in = {.kind = MI_FETCH, .fetch = res};
    refresh_step(&in);
}

static void refresh_enter(void)
{
    if (!R.a || R.a->stopping) {   /* nothing new starts while stopping */
        refresh_idle();
        return;
    }
    switch (R.state) {
    case REFRESH_IDLE:
        return;
    case REFRESH_CLAIM: {
        char lead[16];
        snprintf(lead, sizeof lead, "%d", REFRESH_LEAD_S);
        const char *params[] = {lead};
        db_query(R.a->db, SLACK_SQL_REFRESH_CLAIM, 1, params, refresh_db_cb, NULL);
        return;
    }
    case REFRESH_CALL: {
        struct slack_refresh_call c;
        if (slack_refresh_call(&c, R.a, R.refresh) < 0) {
            refresh_idle();
            return;
        }
        R.f = fetch_start(R.a->fetch, &c.fr, refresh_fetch_cb, NULL);
        slack_refresh_call_clear(&c);
        return;
    }
    case REFRESH_SAVE: {
        struct slack_refresh_save sv;
        if (slack_refresh_save_prepare(&sv, &R.a->secrets, R.id, &R.ans) < 0) {
            refresh_idle();
            return;
        }
        db_query(R.a->db, SLACK_SQL_REFRESH_SAVE, 6, sv.params, refresh_db_cb, NULL);
        slack_refresh_save_clear(&sv);
        return;
    }
    case REFRESH_DEACTIVATE: {
        const char *params[] = {R.id, R.reason};
        db_query(R.a->db, SLACK_SQL_DEACTIVATE, 2, params, refresh_db_cb, NULL);
        return;
    }
    default:
        MACHINE_IMPOSSIBLE(&refresh_def, R.state);
    }
}

static void refresh_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct machine_input in = {.kind = MI_TIMER};
    refresh_step(&in);
}

int slack_oauth_start(struct app *a)
{
    R = (struct refresher){.a = a, .state = REFRESH_IDLE};
    R.timer = event_new(a->base, -1, EV_PERSIST, refresh_tick, NULL);
    if (!R.timer)
        return -1;
    struct timeval tv = {REFRESH_TICK_MS / 1000, (REFRESH_TICK_MS % 1000) * 1000};
    return event_add(R.timer, &tv) == 0 ? 0 : -1;
}

void slack_oauth_stop(void)
{
    if (R.timer) {
        event_free(R.timer);
        R.timer = NULL;
    }
    if (R.f) {
        fetch_cancel(R.f);
        R.f = NULL;
    }
    refresh_clear();
    R.a = NULL;   /* a statement still in flight is dropped with the pool */
}
