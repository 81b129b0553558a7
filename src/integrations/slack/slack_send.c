/* integrations/slack_send: owns the Slack message format, the classification of
 * Slack's answers, and the interactive send route. The route drives the post machine
 * (slack_post.c) with the request attached: its LOAD reads the row in the caller's
 * organization, this file checks ownership (403/404), activity (409) and the
 * credentials (500), and maps the end: sent -> 200; rate limited -> 429 with
 * Retry-After; channel gone -> 502 naming Slack's error after the deactivation;
 * other failures -> 502 (504 on a timeout). Decrypted secrets live in the post job,
 * are wiped when it is freed, and appear in no reply, log line or event. */
#include "integrations/slack_send.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "http/reply.h"
#include "integrations/handler.h"
#include "integrations/slack_post.h"
#include "integrations/slack_store.h"
#include "integrations/slack_webhooks.h"
#include "log.h"
#include "util/json.h"

#define RETRY_AFTER_MAX 3600

/* ---- the message ------------------------------------------------------------------ */

const char *slack_text_error(const char *title, size_t tlen, const char *message, size_t mlen)
{
    if (!title || tlen == 0)
        return "Title is required";
    if (!message || mlen == 0)
        return "Message is required";
    if (memchr(title, '\0', tlen) || memchr(message, '\0', mlen))
        return "Title and message must not contain NUL characters";
    if (utf8_length(title, tlen) > SLACK_HEADER_MAX)
        return "Title must be at most 150 characters";
    if (utf8_length(message, mlen) > SLACK_SECTION_MAX)
        return "Message must be at most 3000 characters";
    return NULL;
}

/* "📅 1/17/2026, 7:47:16 PM UTC": the en-US date of VerifyWise's context block. */
static void context_date(char out[64])
{
    struct tm tm;
    time_t t = time(NULL);
    gmtime_r(&t, &tm);
    int h = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
    snprintf(out, 64, "\xF0\x9F\x93\x85 %d/%d/%d, %d:%02d:%02d %s UTC", tm.tm_mon + 1, tm.tm_mday,
             tm.tm_year + 1900, h, tm.tm_min, tm.tm_sec, tm.tm_hour < 12 ? "AM" : "PM");
}

static char *message_body(const char *channel_id, const char *title, const char *message)
{
    char date[64];
    context_date(date);
    json_t *o = json_pack("{s:s,s:[{s:s,s:{s:s,s:s,s:b}},{s:s,s:{s:s,s:s}},{s:s,s:[{s:s,s:s}]}]}", "text",
                          SLACK_FALLBACK_TEXT, "blocks", "type", "header", "text", "type", "plain_text", "text",
                          title, "emoji", 1, "type", "section", "text", "type", "mrkdwn", "text", message, "type",
                          "context", "elements", "type", "mrkdwn", "text", date);
    if (!o)
        return NULL;
    if (channel_id)
        json_object_set_new(o, "channel", json_string(channel_id));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}


/* The POST of a prepared call: its url, headers and JSON body. */
static void call_post(struct slack_call *c, size_t max_response, const char *target)
{
    c->fr = (struct fetch_request){
        .method = "POST",
        .url = c->url,
        .headers = c->headers,
        .body = c->body,
        .body_len = strlen(c->body),
        .timeout_ms = SLACK_TIMEOUT_MS,
        .connect_timeout_ms = 5000,
        .max_response = max_response,
        .target = target,
    };
}

int slack_call_api(struct slack_call *c, const struct app *a, const char *token, const char *channel_id,
                   const char *title, const char *message)
{
    memset(c, 0, sizeof *c);
    int n = snprintf(c->url, sizeof c->url, "%s/chat.postMessage", a->cfg.slack_api_base);
    if (n < 0 || (size_t)n >= sizeof c->url || !(c->body = message_body(channel_id, title, message)) ||
        asprintf(&c->auth, "Authorization: Bearer %s", token) < 0) {
        c->auth = NULL;
        slack_call_clear(c);
        return -1;
    }
    c->headers[0] = c->auth;
    c->headers[1] = "Content-Type: application/json; charset=utf-8";
    c->headers[2] = NULL;
    call_post(c, 256 * 1024, "slack");
    return 0;
}

int slack_call_webhook(struct slack_call *c, const char *url, const char *title, const char *message)
{
    memset(c, 0, sizeof *c);
    int n = snprintf(c->url, sizeof c->url, "%s", url);
    if (n < 0 || (size_t)n >= sizeof c->url || !(c->body = message_body(NULL, title, message))) {
        slack_call_clear(c);
        return -1;
    }
    c->headers[0] = "Content-Type: application/json; charset=utf-8";
    c->headers[1] = NULL;
    call_post(c, 64 * 1024, "slack_webhook");
    return 0;
}

void slack_call_clear(struct slack_call *c)
{
    if (c->auth)
        secrets_free_plain(c->auth, strlen(c->auth));
    c->auth = NULL;
    free(c->body);
    c->body = NULL;
    OPENSSL_cleanse(c->url, sizeof c->url);   /* an incoming-webhook URL is a secret too */
}

/* ---- Slack's answers ---------------------------------------------------------------- */

static void set_error(struct slack_post_outcome *o, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < sizeof o->error; i++) {
        unsigned char ch = (unsigned char)s[i];
        o->error[j++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    o->error[j] = '\0';
}

static long retry_after(const struct fetch_response *res)
{
    const char *v = fetch_response_header(res, "Retry-After");
    if (!v)
        return 1;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || n < 1)
        return 1;
    return n > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : n;
}

/* Transport failures and the statuses both endpoints share. Returns true when decided. */
static bool classify_common(const struct fetch_response *res, struct slack_post_outcome *o)
{
    memset(o, 0, sizeof *o);
    if (res->outcome != FETCH_OK) {
        snprintf(o->error, sizeof o->error, "%s: %s", fetch_outcome_name(res->outcome),
                 res->error ? res->error : "network error");
        switch (res->outcome) {
        case FETCH_DENIED:
        case FETCH_BAD_URL:
        case FETCH_TOO_LARGE:
            o->result = SLACK_POST_FAILED;
            break;
        default:
            o->result = SLACK_POST_RETRYABLE;
        }
        return true;
    }
    if (res->status == 429) {
        o->result = SLACK_POST_RATE_LIMITED;
        o->retry_after_s = retry_after(res);
        snprintf(o->error, sizeof o->error, "ratelimited");
        return true;
    }
    if (res->status >= 500) {
        o->result = SLACK_POST_RETRYABLE;
        snprintf(o->error, sizeof o->error, "HTTP %ld", res->status);
        return true;
    }
    return false;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static const char *const token_errors[] = {"invalid_auth", "not_authed", "token_revoked", "token_expired",
                                           "account_inactive", "missing_scope", "not_allowed_token_type",
                                           "no_permission", "not_in_channel", NULL};
static const char *const gone_errors[] = {"channel_not_found", "is_archived", "channel_is_archived",
                                          "no_service", NULL};
static const char *const transient_errors[] = {"internal_error", "fatal_error", "service_unavailable",
                                               "request_timeout", "ratelimited", "rate_limited", NULL};

void slack_classify_api(const struct fetch_response *res, struct slack_post_outcome *o)
{
    if (classify_common(res, o))
        return;
    json_error_t je;
    json_t *j = json_loadb(res->body ? res->body : "", res->body_len, 0, &je);
    json_t *ok = json_object_get(j, "ok");
    if (!json_is_boolean(ok)) {
        o->result = SLACK_POST_RETRYABLE;
        snprintf(o->error, sizeof o->error, "unexpected answer from Slack (HTTP %ld)", res->status);
    } else if (json_is_true(ok)) {
        o->result = SLACK_POST_OK;
        const char *ts = json_string_value(json_object_get(j, "ts"));
        const char *ch = json_string_value(json_object_get(j, "channel"));
        snprintf(o->ts, sizeof o->ts, "%s", ts ? ts : "");
        snprintf(o->channel, sizeof o->channel, "%s", ch ? ch : "");
    } else {
        const char *e = json_string_value(json_object_get(j, "error"));
        set_error(o, e ? e : "unknown_error", strlen(e ? e : "unknown_error"));
        if (in_list(o->error, token_errors))
            o->result = SLACK_POST_TOKEN_REJECTED;
        else if (in_list(o->error, gone_errors))
            o->result = SLACK_POST_CHANNEL_GONE;
        else if (in_list(o->error, transient_errors))
            o->result = strstr(o->error, "rate") ? SLACK_POST_RATE_LIMITED : SLACK_POST_RETRYABLE;
        else
            o->result = SLACK_POST_FAILED;
        if (o->result == SLACK_POST_RATE_LIMITED)
            o->retry_after_s = retry_after(res);
    }
    json_decref(j);
}

void slack_classify_webhook(const struct fetch_response *res, struct slack_post_outcome *o)
{
    if (classify_common(res, o))
        return;
    const char *b = res->body ? res->body : "";
    size_t n = res->body_len;
    while (n && isspace((unsigned char)*b))
        b++, n--;
    while (n && isspace((unsigned char)b[n - 1]))
        n--;
    if (res->status >= 200 && res->status < 300) {
        if (n == 2 && memcmp(b, "ok", 2) == 0) {
            o->result = SLACK_POST_OK;
            return;
        }
        o->result = SLACK_POST_FAILED;   /* a URL that answers 200 with anything else is not Slack */
        snprintf(o->error, sizeof o->error, "unexpected webhook answer (HTTP %ld)", res->status);
        return;
    }
    if (n > 100)
        n = 100;
    set_error(o, b, n);
    if (!o->error[0])
        snprintf(o->error, sizeof o->error, "HTTP %ld", res->status);
    o->result = in_list(o->error, gone_errors) || res->status == 410 ? SLACK_POST_CHANNEL_GONE : SLACK_POST_FAILED;
}

/* ---- POST /:id/send ------------------------------------------------------------------- */

/* The request's job is a slack_post (r->handler_state); this part owns the check of
 * the loaded row and the answers. */

static void sent_event(struct http_req *r, const char *type, const struct slack_post_outcome *out, const char *via)
{
    const struct slack_post *j = r->handler_state;
    json_t *d = json_pack("{s:I,s:s,s:s,s:s}", "webhook_id",
                          (json_int_t)strtoll(slack_post_webhook_id(j), NULL, 10), "channel_id",
                          slack_post_target(j)->channel_id, "via", via, "source", "send");
    if (strcmp(type, "slack.message.sent") == 0)
        json_object_set_new(d, "ts", out->ts[0] ? json_string(out->ts) : json_null());
    else
        json_object_set_new(d, "error", json_string(out->error));
    app_event(r->app, type, r->auth.org_id, r->auth.tenant, r->auth.user_id, d);
}

static void reply_rate_limited(struct http_req *r, long wait_s)
{
    char ra[24], msg[128];
    snprintf(ra, sizeof ra, "%ld", wait_s);
    snprintf(msg, sizeof msg, "Slack rate limit reached; try again in %ld seconds", wait_s);
    const char *hdrs[] = {"Retry-After", ra, NULL};
    http_req_send(r, 429, json_pack("{s:s,s:s}", "message", "Too Many Requests", "data", msg), hdrs);
}

/* The answer for a post that did not deliver (not channel-gone). */
static void reply_post_failure(struct http_req *r, const struct slack_post_outcome *out, const char *via)
{
    char msg[256];
    sent_event(r, "slack.message.failed", out, via);
    if (out->result == SLACK_POST_RATE_LIMITED) {
        reply_rate_limited(r, out->retry_after_s);
        return;
    }
    snprintf(msg, sizeof msg, "Slack error: %s", out->error);
    reply_error(r, strncmp(out->error, "timeout", 7) == 0 ? 504 : 502, msg);
}

static void reply_sent(struct http_req *r, const struct slack_post_outcome *out, const char *via)
{
    const struct slack_post *j = r->handler_state;
    sent_event(r, "slack.message.sent", out, via);
    reply_data(r, 200, json_pack("{s:b,s:o,s:s}", "success", 1, "messageId",
                                 out->ts[0] ? json_string(out->ts) : json_null(), "channel",
                                 out->channel[0] ? out->channel : slack_post_target(j)->channel_id));
}

static void send_finished(void *arg, enum slack_post_end end, const struct slack_post_outcome *out, const char *via)
{
    struct http_req *r = arg;
    char msg[256];
    switch (end) {
    case SLACK_POST_END_SENT:
        reply_sent(r, out, via);
        return;
    case SLACK_POST_END_FAILED:
        reply_post_failure(r, out, via);
        return;
    case SLACK_POST_END_DEACTIVATED:
        sent_event(r, "slack.message.failed", out, via);
        snprintf(msg, sizeof msg, "Slack error: %s; the webhook has been deactivated", out->error);
        reply_error(r, 502, msg);
        return;
    case SLACK_POST_END_INTERNAL:
    default:
        reply_internal(r);
    }
}

/* The row: ownership, active, the decrypted token and URL. */
static bool send_loaded(void *arg, const struct db_result *res, struct slack_post_target *t)
{
    struct http_req *r = arg;
    const struct slack_post *j = r->handler_state;
    if (res->status != DB_OK) {
        reply_sql_failure(r, res, "slack send", "read");
        return false;
    }
    const PGresult *pr = db_last(res);
    int acc = slack_webhook_access(r, pr, 0, SLACK_WH_COL_ORG, SLACK_WH_COL_USER_ID);
    if (acc) {
        reply_text(r, acc, acc == 404 ? SLACK_MSG_NOT_FOUND : "Unauthorized");
        return false;
    }
    if (!slack_store_send_active(pr)) {
        reply_text(r, 409, "This slack channel is no longer active");
        return false;
    }
    slack_store_send_target(&r->app->secrets, pr, t);
    if (!t->token && !t->url) {
        log_error("slack send: webhook %s: stored token and URL cannot be decrypted with ENCRYPTION_PASSWORD",
                  slack_post_webhook_id(j));
        reply_error(r, 500, "stored Slack credentials cannot be decrypted");
        return false;
    }
    t->title = json_string_value(json_object_get(r->json, "title"));
    t->message = json_string_value(json_object_get(r->json, "message"));
    return true;
}

void slack_webhooks_send(struct http_req *r)
{
    char id[HANDLER_ID_TEXT];
    if (handler_id_param(r, "id", id) < 0) {
        reply_text(r, 400, SLACK_MSG_BAD_ID);
        return;
    }
    const char *title = NULL, *message = NULL;
    size_t tlen = 0, mlen = 0;
    int gt = json_get_string(r->json, "title", &title, &tlen);
    int gm = json_get_string(r->json, "message", &message, &mlen);
    if (gt < 0 || gm < 0) {
        reply_text(r, 400, "Title and message must be strings");
        return;
    }
    const char *err = slack_text_error(gt ? title : NULL, tlen, gm ? message : NULL, mlen);
    if (err) {
        reply_text(r, 400, err);
        return;
    }
    char org[24], who[48];
    snprintf(org, sizeof org, "%lld", r->auth.org_id);
    snprintf(who, sizeof who, "send %s", id);
    const char *params[] = {id, org};
    struct slack_post_opts o = {
        .app = r->app,
        .who = who,
        .actor = r->auth.user_id,
        .load_sql = SLACK_SQL_SEND_LOAD,
        .load_nparams = 2,
        .load_params = params,
        .req = r,
        .loaded = send_loaded,
        .finished = send_finished,
    };
    snprintf(o.webhook_id, sizeof o.webhook_id, "%s", id);
    if (!slack_post_start(&o, NULL))
        reply_internal(r);
}
