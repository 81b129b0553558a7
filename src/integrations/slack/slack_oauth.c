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
#include "integrations/slack_ratelimit.h"
#include "integrations/slack_webhooks.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"

#define CODE_MAX 512
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

enum oauth_state { OAUTH_COUNT, OAUTH_VALIDATE, OAUTH_EXCHANGE, OAUTH_STORE };

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

static void oauth_step(struct http_req *r);

static void on_counted(struct http_req *r, bool allowed, long retry_after_s)
{
    struct oauth_job *j = r->handler_state;
    if (!allowed) {
        slack_ratelimit_reply(r, retry_after_s);
        return;
    }
    j->state = OAUTH_VALIDATE;
    oauth_step(r);
}

static void on_stored(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("slack oauth: storing the webhook failed: %s (%s)", res->message, res->sqlstate);
        reply_internal(r);
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
    struct oauth_job *j = r->handler_state;
    char msg[256];
    if (res->outcome != FETCH_OK) {
        log_warn("slack oauth: code exchange failed: %s", fetch_outcome_name(res->outcome));
        snprintf(msg, sizeof msg, OAUTH_FAIL ": Slack could not be reached (%s)", fetch_outcome_name(res->outcome));
        reply_error(r, res->outcome == FETCH_TIMEOUT ? 504 : 502, msg);
        return;
    }
    json_error_t je;
    json_t *ans = res->status < 500 ? json_loadb(res->body ? res->body : "", res->body_len, 0, &je) : NULL;
    json_t *ok = json_object_get(ans, "ok");
    if (!json_is_boolean(ok)) {
        snprintf(msg, sizeof msg, OAUTH_FAIL ": unexpected answer from Slack (HTTP %ld)", res->status);
        reply_error(r, 502, msg);
        json_decref(ans);
        return;
    }
    if (!json_is_true(ok)) {
        char name[96];
        error_name(ans, name);
        json_decref(ans);
        log_info("slack oauth: Slack refused the code: %s", name);
        reply_text(r, 400, name);
        return;
    }
    int rc = take_fields(r, ans);
    json_decref(ans);
    if (rc < 0)
        return;
    j->state = OAUTH_STORE;
    oauth_step(r);
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
    app_query(r,
              "WITH w AS (INSERT INTO public.slack_webhooks (access_token, access_token_iv, scope, user_id, "
              "team_name, team_id, channel, channel_id, configuration_url, url, url_iv, is_active) VALUES ($1, $2, "
              "$3, $4::int, $6, $7, $8, $9, $10, $11, $12, true) RETURNING *), "
              "x AS (INSERT INTO public.integrationsd_slack_webhooks (webhook_id, organization_id, refresh_token, "
              "refresh_token_iv, token_expires_at) SELECT id, $5::int, $13::text, $14::text, "
              "now() + make_interval(secs => $15::int) FROM w) "
              "SELECT " SLACK_WEBHOOK_COLS_ORG("$5::int") " FROM w",
              15, params, on_stored);
    free(tok);
    free(url);
    free(ref);
}

static void oauth_validate(struct http_req *r)
{
    if (app_parse_body(r) < 0)
        return;
    json_t *uid = json_object_get(r->json, "userId");
    if (uid && !json_is_null(uid) && (!json_is_integer(uid) || json_integer_value(uid) < 1)) {
        reply_text(r, 400, "Valid User ID is required (must be >= 1)");
        return;
    }
    /* A userId other than the caller's is ignored: the owner is the caller. */
    const char *code;
    size_t n;
    int g = json_get_string(r->json, "code", &code, &n);
    if (g < 0 || (g == 1 && memchr(code, '\0', n))) {
        reply_text(r, 400, "code must be a string");
        return;
    }
    if (g == 0 || n == 0) {
        reply_text(r, 400, "Slack OAuth code is required");
        return;
    }
    if (n > CODE_MAX) {
        reply_text(r, 400, "Slack OAuth code must be at most 512 characters");
        return;
    }
    struct oauth_job *j = r->handler_state;
    j->state = OAUTH_EXCHANGE;
    oauth_step(r);
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
        reply_internal(r);
        return;
    }
    struct fetch_request fr = form_request(r->app, form, len);
    app_fetch(r, &fr, on_exchanged);
    form_free(form, len);
}

static void oauth_step(struct http_req *r)
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
    }
}

void slack_webhooks_create(struct http_req *r)
{
    struct oauth_job *j = calloc(1, sizeof *j);
    if (!j) {
        reply_internal(r);
        return;
    }
    j->state = OAUTH_COUNT;
    r->handler_state = j;
    r->handler_state_free = oauth_job_free;
    oauth_step(r);
}

/* ---- token rotation ------------------------------------------------------------------ */

enum refresh_state { REFRESH_IDLE, REFRESH_CLAIM, REFRESH_CALL, REFRESH_SAVE, REFRESH_DEACTIVATE };

static struct refresher {
    struct app *a;
    struct event *timer;
    enum refresh_state state;
    bool busy;                    /* a statement or call is in flight */
    struct fetch *f;
    char id[24];
    long long org;
    char *refresh;                /* decrypted, wiped when done */
    size_t refresh_len;
    char *new_token, *new_refresh; /* from Slack, wiped when done */
    long long expires_in;
    char reason[160];
} R;

static void refresh_step(void);

static void refresh_clear(void)
{
    secrets_free_plain(R.refresh, R.refresh_len);
    secrets_free_plain(R.new_token, R.new_token ? strlen(R.new_token) : 0);
    secrets_free_plain(R.new_refresh, R.new_refresh ? strlen(R.new_refresh) : 0);
    R.refresh = R.new_token = R.new_refresh = NULL;
    R.refresh_len = 0;
}

/* Done with one webhook: look for the next one at once. */
static void refresh_next(void)
{
    refresh_clear();
    R.state = REFRESH_CLAIM;
    refresh_step();
}

static void refresh_event(const PGresult *res, bool deactivated)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 10))
        return;
    if (deactivated) {
        slack_event_deactivated(R.a, res, R.reason, 0);
        return;
    }
    char tenant[TENANT_HASH_LEN + 1];
    long long org = strtoll(PQgetvalue(res, 0, 10), NULL, 10);
    if (tenant_hash(org, tenant) == 0) {
        json_t *d = slack_webhook_json(res, 0, 0);
        json_object_set_new(d, "token_rotated", json_true());
        app_event(R.a, "slack.webhook.updated", org, tenant, 0, d);
    }
}

static void on_refresh_saved(const struct db_result *res, void *arg)
{
    (void)arg;
    R.busy = false;
    if (res->status != DB_OK) {
        log_error("slack token rotation: saving webhook %s failed: %s", R.id, res->message);
        R.state = REFRESH_IDLE;
        refresh_clear();
        return;
    }
    bool deactivated = R.state == REFRESH_DEACTIVATE;
    if (deactivated)
        log_warn("slack token rotation: webhook %s deactivated: %s", R.id, R.reason);
    else
        log_info("slack token rotation: webhook %s has a new bot token", R.id);
    refresh_event(db_last(res), deactivated);
    refresh_next();
}

static void on_refreshed(const struct fetch_response *res, void *arg)
{
    (void)arg;
    R.f = NULL;
    R.busy = false;
    if (res->outcome != FETCH_OK || res->status >= 500 || res->status == 429) {
        log_warn("slack token rotation: webhook %s: Slack unreachable or busy (%s, HTTP %ld); retried later", R.id,
                 fetch_outcome_name(res->outcome), res->status);
        R.state = REFRESH_IDLE;   /* the lease expires, then it is tried again */
        refresh_clear();
        return;
    }
    json_error_t je;
    json_t *ans = json_loadb(res->body ? res->body : "", res->body_len, 0, &je);
    json_t *ok = json_object_get(ans, "ok");
    size_t n = 0, m = 0;
    const char *tok = json_is_true(ok) ? str_field(ans, "access_token", &n) : NULL;
    if (tok && n <= SECRET_MAX) {
        const char *rt = str_field(ans, "refresh_token", &m);
        json_t *exp = json_object_get(ans, "expires_in");
        R.new_token = strndup(tok, n);
        R.new_refresh = rt && m <= SECRET_MAX ? strndup(rt, m) : NULL;
        R.expires_in = json_is_integer(exp) && json_integer_value(exp) > 0 ? json_integer_value(exp) : 0;
        if (R.expires_in > 100000000)
            R.expires_in = 100000000;
        R.state = R.new_token ? REFRESH_SAVE : REFRESH_IDLE;
    } else {
        char name[96];
        if (json_is_boolean(ok))
            error_name(ans, name);
        else
            snprintf(name, sizeof name, "unexpected answer (HTTP %ld)", res->status);
        snprintf(R.reason, sizeof R.reason, "Slack token refresh failed: %s", name);
        R.state = REFRESH_DEACTIVATE;
    }
    json_decref(ans);
    refresh_step();
}

static void on_claimed(const struct db_result *res, void *arg)
{
    (void)arg;
    R.busy = false;
    if (res->status != DB_OK) {
        if (res->status == DB_SQL_ERROR)
            log_warn("slack token rotation: claim failed: %s", res->message);
        R.state = REFRESH_IDLE;
        return;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) == 0) {
        R.state = REFRESH_IDLE;
        return;
    }
    snprintf(R.id, sizeof R.id, "%s", PQgetvalue(pr, 0, 0));
    if (secrets_a_decrypt(&R.a->secrets, PQgetvalue(pr, 0, 1), PQgetvalue(pr, 0, 2), &R.refresh, &R.refresh_len) < 0) {
        R.refresh = NULL;
        snprintf(R.reason, sizeof R.reason, "Slack token refresh failed: the stored refresh token cannot be decrypted");
        R.state = REFRESH_DEACTIVATE;
    } else {
        R.state = REFRESH_CALL;
    }
    refresh_step();
}

static void refresh_step(void)
{
    if (R.busy || !R.a || R.a->stopping)
        return;
    switch (R.state) {
    case REFRESH_IDLE:
        return;
    case REFRESH_CLAIM: {
        static const char sql[] =
            "UPDATE public.integrationsd_slack_webhooks SET refresh_lease_until = now() + interval '2 minutes' "
            "WHERE webhook_id = (SELECT x.webhook_id FROM public.integrationsd_slack_webhooks x "
            "JOIN public.slack_webhooks w ON w.id = x.webhook_id WHERE w.is_active AND x.refresh_token IS NOT NULL "
            "AND x.token_expires_at < now() + make_interval(secs => $1::int) "
            "AND (x.refresh_lease_until IS NULL OR x.refresh_lease_until < now()) "
            "ORDER BY x.token_expires_at LIMIT 1 FOR UPDATE OF x SKIP LOCKED) "
            "RETURNING webhook_id, refresh_token, refresh_token_iv";
        char lead[16];
        snprintf(lead, sizeof lead, "%d", REFRESH_LEAD_S);
        const char *params[] = {lead};
        R.busy = true;
        db_query(R.a->db, sql, 1, params, on_claimed, NULL);
        return;
    }
    case REFRESH_CALL: {
        const struct config *c = &R.a->cfg;
        char *form = NULL;
        size_t len = 0;
        if (form_add(&form, &len, "client_id", c->slack_client_id) < 0 ||
            form_add(&form, &len, "client_secret", c->slack_client_secret) < 0 ||
            form_add(&form, &len, "grant_type", "refresh_token") < 0 ||
            form_add(&form, &len, "refresh_token", R.refresh) < 0) {
            form_free(form, len);
            R.state = REFRESH_IDLE;
            refresh_clear();
            return;
        }
        struct fetch_request fr = form_request(R.a, form, len);
        R.busy = true;
        R.f = fetch_start(R.a->fetch, &fr, on_refreshed, NULL);
        form_free(form, len);
        return;
    }
    case REFRESH_SAVE: {
        const struct secrets *s = &R.a->secrets;
        char *tok = NULL, *ref = NULL, tok_iv[33], ref_iv[33], exp[24];
        if (secrets_a_encrypt(s, R.new_token, strlen(R.new_token), &tok, tok_iv) < 0 ||
            (R.new_refresh && secrets_a_encrypt(s, R.new_refresh, strlen(R.new_refresh), &ref, ref_iv) < 0)) {
            free(tok);
            R.state = REFRESH_IDLE;
            refresh_clear();
            return;
        }
        snprintf(exp, sizeof exp, "%lld", R.expires_in);
        const char *params[] = {R.id, tok, tok_iv, ref, ref ? ref_iv : NULL, R.expires_in ? exp : NULL};
        R.busy = true;
        db_query(R.a->db,
                 "WITH x AS (UPDATE public.integrationsd_slack_webhooks SET "
                 "refresh_token = COALESCE($4, refresh_token), refresh_token_iv = COALESCE($5, refresh_token_iv), "
                 "token_expires_at = CASE WHEN $6::int IS NULL THEN NULL "
                 "ELSE now() + make_interval(secs => $6::int) END, "
                 "refresh_lease_until = NULL WHERE webhook_id = $1::int) "
                 "UPDATE public.slack_webhooks SET access_token = $2, access_token_iv = $3, "
                 "updated_at = now() WHERE id = $1::int RETURNING " SLACK_WEBHOOK_COLS,
                 6, params, on_refresh_saved, NULL);
        free(tok);
        free(ref);
        return;
    }
    case REFRESH_DEACTIVATE: {
        const char *params[] = {R.id, R.reason};
        R.busy = true;
        db_query(R.a->db, SLACK_SQL_DEACTIVATE, 2, params, on_refresh_saved, NULL);
        return;
    }
    }
}

static void refresh_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (R.state == REFRESH_IDLE && !R.busy && R.a->schema_ready) {
        R.state = REFRESH_CLAIM;
        refresh_step();
    }
}

int slack_oauth_start(struct app *a)
{
    R.a = a;
    R.state = REFRESH_IDLE;
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
