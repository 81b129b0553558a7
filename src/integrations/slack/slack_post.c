/* integrations/slack_post: owns the one Slack post machine (include/integrations/
 * slack_post.h has its states): chat.postMessage, the on-demand refresh of an expired
 * rotating bot token under the rotation lease with one retry, the incoming-webhook
 * fallback and the deactivation of a webhook whose channel is gone; and its default
 * I/O (app_query/app_fetch with a request, db_query/fetch_start and a timer without).
 * Decrypted secrets live in the job and are wiped when it is freed; none reaches a
 * log line, a reply or an event. */
#include "integrations/slack_post.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "http/request.h"
#include "integrations/slack_oauth.h"
#include "integrations/slack_webhooks.h"
#include "log.h"
#include "net/fetch.h"

static const char *const post_state_names[] = {"load",  "api",     "lease",      "reread", "refresh",
                                               "save",  "retry", "webhook", "deactivate", "done"};
static const struct machine_def post_def = MACHINE_DEF("slack post", post_state_names);
_Static_assert(sizeof post_state_names / sizeof post_state_names[0] == SLACK_POST_DONE + 1, "a name per state");

struct slack_post {
    enum slack_post_state state;
    struct slack_post_opts o;     /* load_params are not kept */
    const struct slack_post_io *io;
    char who[48];
    char load_buf[SLACK_POST_LOAD_PARAMS][64];   /* LOAD's parameters, copied */
    const char *load_params[SLACK_POST_LOAD_PARAMS];
    struct slack_post_target t;
    char *refresh;                /* decrypted refresh token while REFRESH runs; wiped */
    size_t refresh_len;
    struct slack_refresh_answer ans;
    struct slack_post_outcome out;   /* the answer that decides the end */
    struct slack_post_outcome first; /* the expired-token answer, kept while refreshing */
    const char *via;
    bool refreshed;               /* one refresh, one retry */
    char reason[192];
    /* default I/O */
    struct fetch *f;
    struct event *timer;
};

static void enter(struct slack_post *j);

static void set_state(struct slack_post *j, enum slack_post_state s)
{
    machine_trace(&post_def, j->who, j->state, s);
    j->state = s;
}

static void *hook_arg(struct slack_post *j)
{
    return j->o.req ? (void *)j->o.req : j->o.arg;
}

/* The end: DONE, then the driver (which may free j: nothing touches it afterwards). */
static void finish(struct slack_post *j, enum slack_post_end end)
{
    set_state(j, SLACK_POST_DONE);
    j->o.finished(hook_arg(j), end, &j->out, j->via);
}

static void go(struct slack_post *j, enum slack_post_state s)
{
    set_state(j, s);
    enter(j);
}

/* Token refused, or the refresh path gave up: the incoming webhook when there is one. */
static void fall_back(struct slack_post *j)
{
    if (j->t.url) {
        log_info("slack post %s: bot token of webhook %s refused (%s); using the incoming webhook", j->who,
                 j->o.webhook_id, j->out.error);
        go(j, SLACK_POST_WEBHOOK);
        return;
    }
    finish(j, SLACK_POST_END_FAILED);
}

static void channel_gone(struct slack_post *j)
{
    snprintf(j->reason, sizeof j->reason, "Slack answered %s", j->out.error);
    go(j, SLACK_POST_DEACTIVATE);
}

/* The errors that mean the bot token expired (token rotation), not that it is wrong. */
static bool token_expired(const struct slack_post_outcome *o)
{
    return o->result == SLACK_POST_TOKEN_REJECTED && strcmp(o->error, "token_expired") == 0;
}

/* Start the post of the current state (after its pacing wait). */
static void post(struct slack_post *j)
{
    if (j->o.pace) {
        long long ms = j->o.pace(hook_arg(j));   /* asked again when the timer fires */
        if (ms > 0) {
            j->io->timer(j, ms);
            return;
        }
    }
    struct slack_call c;
    bool api = slack_post_state(j) != SLACK_POST_WEBHOOK;
    int rc = api ? slack_call_api(&c, j->o.app, j->t.token, j->t.channel_id, j->t.title, j->t.message)
                 : slack_call_webhook(&c, j->t.url, j->t.title, j->t.message);
    if (rc < 0) {
        memset(&j->out, 0, sizeof j->out);
        j->out.result = SLACK_POST_RETRYABLE;
        snprintf(j->out.error, sizeof j->out.error, "out of memory");
        finish(j, SLACK_POST_END_INTERNAL);
        return;
    }
    j->via = api ? "chat.postMessage" : "incoming_webhook";
    c.fr.org_id = j->t.org; /* counted against OUTBOUND_MAX_PER_ORG; FETCH_BUSY is retryable */
    j->io->fetch(j, &c.fr);
    slack_call_clear(&c);
}

static void enter(struct slack_post *j)
{
    switch (j->state) {
    case SLACK_POST_LOAD:
        j->io->query(j, j->o.load_sql, j->o.load_nparams, j->load_params);
        return;
    case SLACK_POST_API:
    case SLACK_POST_RETRY:
    case SLACK_POST_WEBHOOK:
        post(j);
        return;
    case SLACK_POST_LEASE: {
        const char *params[] = {j->o.webhook_id, j->t.token_ct};
        j->io->query(j, SLACK_SQL_REFRESH_LEASE, 2, params);
        return;
    }
    case SLACK_POST_REREAD: {
        const char *params[] = {j->o.webhook_id};
        j->io->query(j, SLACK_SQL_TOKEN_READ, 1, params);
        return;
    }
    case SLACK_POST_REFRESH: {
        struct slack_refresh_call c;
        int rc = slack_refresh_call(&c, j->o.app, j->refresh);
        secrets_free_plain(j->refresh, j->refresh_len);   /* the form has it now */
        j->refresh = NULL;
        j->refresh_len = 0;
        if (rc < 0) {
            j->out = j->first;
            fall_back(j);
            return;
        }
        j->io->fetch(j, &c.fr);   /* with a request, a refusal answers it: j may be gone */
        slack_refresh_call_clear(&c);
        return;
    }
    case SLACK_POST_SAVE: {
        struct slack_refresh_save sv;
        if (slack_refresh_save_prepare(&sv, &j->o.app->secrets, j->o.webhook_id, &j->ans) < 0) {
            log_error("slack post %s: encrypting the new bot token of webhook %s failed", j->who, j->o.webhook_id);
            go(j, SLACK_POST_RETRY);   /* the message still goes with the new token */
            return;
        }
        j->io->query(j, SLACK_SQL_REFRESH_SAVE, 6, sv.params);
        slack_refresh_save_clear(&sv);
        return;
    }
    case SLACK_POST_DEACTIVATE: {
        const char *params[] = {j->o.webhook_id, j->reason};
        j->io->query(j, SLACK_SQL_DEACTIVATE, 2, params);
        return;
    }
    case SLACK_POST_DONE:
        return;
    default:
        MACHINE_IMPOSSIBLE(&post_def, j->state);
    }
}

/* The answer of chat.postMessage (API, RETRY). */
static void on_api(struct slack_post *j, const struct fetch_response *res)
{
    slack_classify_api(res, &j->out);
    switch (j->out.result) {
    case SLACK_POST_OK:
        finish(j, SLACK_POST_END_SENT);
        return;
    case SLACK_POST_CHANNEL_GONE:
        channel_gone(j);
        return;
    case SLACK_POST_TOKEN_REJECTED:
        if (token_expired(&j->out) && j->t.has_refresh && !j->refreshed) {
            log_info("slack post %s: bot token of webhook %s expired; refreshing it", j->who, j->o.webhook_id);
            j->refreshed = true;
            j->first = j->out;
            go(j, SLACK_POST_LEASE);
            return;
        }
        fall_back(j);
        return;
    default:
        finish(j, SLACK_POST_END_FAILED);
    }
}

static void on_webhook(struct slack_post *j, const struct fetch_response *res)
{
    slack_classify_webhook(res, &j->out);
    if (j->out.result == SLACK_POST_OK)
        finish(j, SLACK_POST_END_SENT);
    else if (j->out.result == SLACK_POST_CHANNEL_GONE)
        channel_gone(j);
    else
        finish(j, SLACK_POST_END_FAILED);
}

static void on_lease(struct slack_post *j, const struct db_result *res)
{
    const PGresult *pr = res->status == DB_OK ? db_last(res) : NULL;
    char id[24];
    if (!pr) {
        log_warn("slack post %s: taking the refresh lease of webhook %s failed: %s", j->who, j->o.webhook_id,
                 res->message ? res->message : "");
        j->out = j->first;
        fall_back(j);
        return;
    }
    if (PQntuples(pr) != 1) {   /* refreshed or being refreshed elsewhere */
        go(j, SLACK_POST_REREAD);
        return;
    }
    if (slack_store_refresh_row(&j->o.app->secrets, pr, id, &j->refresh, &j->refresh_len) < 0) {
        log_warn("slack post %s: the stored refresh token of webhook %s cannot be decrypted", j->who,
                 j->o.webhook_id);
        j->out = j->first;
        fall_back(j);
        return;
    }
    go(j, SLACK_POST_REFRESH);
}

static void on_reread(struct slack_post *j, const struct db_result *res)
{
    int rc = res->status == DB_OK ? slack_store_token_row(&j->o.app->secrets, db_last(res), &j->t) : 0;
    if (rc == 1) {
        log_info("slack post %s: webhook %s has a newer bot token; posting with it", j->who, j->o.webhook_id);
        go(j, SLACK_POST_RETRY);
        return;
    }
    log_info("slack post %s: the bot token of webhook %s is being refreshed elsewhere", j->who, j->o.webhook_id);
    j->out = j->first;
    fall_back(j);
}

static void on_refresh(struct slack_post *j, const struct fetch_response *res)
{
    enum slack_refresh_result r = slack_refresh_parse(res, &j->ans);
    if (r != SLACK_REFRESH_OK) {
        log_warn("slack post %s: refreshing the bot token of webhook %s failed (%s)", j->who, j->o.webhook_id,
                 r == SLACK_REFRESH_REFUSED ? j->ans.reason : "Slack unreachable or busy");
        slack_refresh_answer_clear(&j->ans);
        j->out = j->first;
        fall_back(j);
        return;
    }
    /* the job posts with the new token from now on */
    secrets_free_plain(j->t.token, j->t.token_len);
    j->t.token_len = strlen(j->ans.token);
    j->t.token = strdup(j->ans.token);
    if (!j->t.token) {
        j->t.token_len = 0;
        slack_refresh_answer_clear(&j->ans);
        j->out = j->first;
        fall_back(j);
        return;
    }
    go(j, SLACK_POST_SAVE);
}

static void on_saved(struct slack_post *j, const struct db_result *res)
{
    slack_refresh_answer_clear(&j->ans);
    if (res->status != DB_OK)
        log_error("slack post %s: saving the new bot token of webhook %s failed: %s", j->who, j->o.webhook_id,
                  res->message ? res->message : "");
    else {
        log_info("slack post %s: webhook %s has a new bot token", j->who, j->o.webhook_id);
        j->io->rotated(j, db_last(res));
    }
    go(j, SLACK_POST_RETRY);
}

static void on_deactivated(struct slack_post *j, const struct db_result *res)
{
    if (res->status != DB_OK)
        log_error("slack post %s: deactivating webhook %s failed: %s", j->who, j->o.webhook_id,
                  res->message ? res->message : "");
    else
        j->io->deactivated(j, db_last(res), j->reason);
    finish(j, SLACK_POST_END_DEACTIVATED);
}

static void on_loaded(struct slack_post *j, const struct db_result *res)
{
    if (!j->o.loaded(hook_arg(j), res, &j->t))
        return;   /* the driver ended it: j may be gone */
    go(j, j->t.token ? SLACK_POST_API : SLACK_POST_WEBHOOK);
}

static bool is(const struct machine_input *in, enum machine_input_kind k)
{
    return in->kind == k;
}

void slack_post_step(struct slack_post *j, const struct machine_input *in)
{
    if (is(in, MI_CANCEL)) {
        if (j->state != SLACK_POST_DONE) {
            j->io->cancel(j);
            set_state(j, SLACK_POST_DONE);
        }
        return;
    }
    if (is(in, MI_ENTER)) {
        enter(j);
        return;
    }
    switch (j->state) {
    case SLACK_POST_LOAD:
        if (!is(in, MI_DB))
            break;
        on_loaded(j, in->db);
        return;
    case SLACK_POST_API:
    case SLACK_POST_RETRY:
        if (is(in, MI_TIMER)) {   /* the pacing wait is over */
            post(j);
            return;
        }
        if (!is(in, MI_FETCH))
            break;
        on_api(j, in->fetch);
        return;
    case SLACK_POST_WEBHOOK:
        if (is(in, MI_TIMER)) {
            post(j);
            return;
        }
        if (!is(in, MI_FETCH))
            break;
        on_webhook(j, in->fetch);
        return;
    case SLACK_POST_LEASE:
        if (!is(in, MI_DB))
            break;
        on_lease(j, in->db);
        return;
    case SLACK_POST_REREAD:
        if (!is(in, MI_DB))
            break;
        on_reread(j, in->db);
        return;
    case SLACK_POST_REFRESH:
        if (!is(in, MI_FETCH))
            break;
        on_refresh(j, in->fetch);
        return;
    case SLACK_POST_SAVE:
        if (!is(in, MI_DB))
            break;
        on_saved(j, in->db);
        return;
    case SLACK_POST_DEACTIVATE:
        if (!is(in, MI_DB))
            break;
        on_deactivated(j, in->db);
        return;
    case SLACK_POST_DONE:
        return;   /* waits for nothing */
    default:
        MACHINE_IMPOSSIBLE(&post_def, j->state);
    }
    MACHINE_IMPOSSIBLE(&post_def, j->state);   /* an input this state never waits for */
}

/* ---- the job ------------------------------------------------------------------------ */

static void post_free(void *p)
{
    struct slack_post *j = p;
    if (!j)
        return;
    if (j->state != SLACK_POST_DONE)
        j->io->cancel(j);
    if (j->timer)
        event_free(j->timer);
    slack_post_target_clear(&j->t);
    secrets_free_plain(j->refresh, j->refresh_len);
    slack_refresh_answer_clear(&j->ans);
    free(j);
}

void slack_post_free(struct slack_post *j)
{
    post_free(j);
}

struct slack_post *slack_post_start(const struct slack_post_opts *o, const struct slack_post_io *io)
{
    struct slack_post *j = malloc(sizeof *j);
    if (!j)
        return NULL;
    *j = (struct slack_post){.state = SLACK_POST_LOAD, .o = *o};   /* the initial state: nothing to trace */
    j->io = io ? io : &slack_post_io_default;
    snprintf(j->who, sizeof j->who, "%s", o->who ? o->who : "");
    j->o.who = j->who;
    if (o->load_nparams < 0 || o->load_nparams > SLACK_POST_LOAD_PARAMS) {
        free(j);
        return NULL;
    }
    for (int i = 0; i < o->load_nparams; i++) {
        if (!o->load_params[i])
            continue;
        snprintf(j->load_buf[i], sizeof j->load_buf[i], "%s", o->load_params[i]);
        j->load_params[i] = j->load_buf[i];
    }
    j->o.load_params = NULL;
    if (o->req) {
        o->req->handler_state = j;
        o->req->handler_state_free = post_free;
    }
    enter(j);   /* with a request, j may be gone once this returns (a reply frees it) */
    return j;
}

enum slack_post_state slack_post_state(const struct slack_post *j)
{
    return j->state;
}

const char *slack_post_state_name(enum slack_post_state s)
{
    return machine_state_name(&post_def, (unsigned)s);
}

struct http_req *slack_post_req(const struct slack_post *j)
{
    return j->o.req;
}

void *slack_post_arg(const struct slack_post *j)
{
    return j->o.arg;
}

const char *slack_post_webhook_id(const struct slack_post *j)
{
    return j->o.webhook_id;
}

const struct slack_post_target *slack_post_target(const struct slack_post *j)
{
    return &j->t;
}

/* ---- the default I/O ------------------------------------------------------------------ */

static void db_input(struct slack_post *j, const struct db_result *res)
{
    struct machine_input in = {.kind = MI_DB, .db = res};
    slack_post_step(j, &in);
}

static void fetch_input(struct slack_post *j, const struct fetch_response *res)
{
    struct machine_input in = {.kind = MI_FETCH, .fetch = res};
    slack_post_step(j, &in);
}

static void on_req_db(struct http_req *r, const struct db_result *res)
{
    db_input(r->handler_state, res);
}

static void on_req_fetch(struct http_req *r, const struct fetch_response *res)
{
    fetch_input(r->handler_state, res);
}

/* The refresh's statements of a request's post: a database that is unavailable there
 * means "fall back" (or "post anyway"), not 503, so they bypass app_query. */
static void on_req_soft_db(const struct db_result *res, void *arg)
{
    struct http_req *r = arg;
    if (http_req_alive(r))
        db_input(r->handler_state, res);
    http_req_unref(r);
}

static bool req_wanted(void *arg)
{
    return http_req_alive(arg);
}

static void on_db(const struct db_result *res, void *arg)
{
    db_input(arg, res);
}

static void on_fetch(const struct fetch_response *res, void *arg)
{
    struct slack_post *j = arg;
    j->f = NULL;
    fetch_input(j, res);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct machine_input in = {.kind = MI_TIMER};
    slack_post_step(arg, &in);
}

static void io_query(struct slack_post *j, const char *sql, int nparams, const char *const *params)
{
    enum slack_post_state s = j->state;
    if (j->o.req && (s == SLACK_POST_LEASE || s == SLACK_POST_REREAD || s == SLACK_POST_SAVE)) {
        struct db_stmt st = {sql, nparams, params};
        http_req_hold(j->o.req);
        db_submit_if(j->o.app->db, &st, 1, on_req_soft_db, http_req_ref(j->o.req), req_wanted);
    } else if (j->o.req)
        app_query(j->o.req, sql, nparams, params, on_req_db);
    else
        db_query(j->o.app->db, sql, nparams, params, on_db, j);
}

static void io_fetch(struct slack_post *j, const struct fetch_request *fr)
{
    if (j->o.req)
        app_fetch(j->o.req, fr, on_req_fetch);
    else
        j->f = fetch_start(j->o.app->fetch, fr, on_fetch, j);
}

static void io_timer(struct slack_post *j, long long ms)
{
    if (!j->timer && !(j->timer = evtimer_new(j->o.app->base, on_timer, j))) {
        /* no timer: post now rather than never */
        struct machine_input in = {.kind = MI_TIMER};
        slack_post_step(j, &in);
        return;
    }
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(j->timer, &tv);
}

static void io_cancel(struct slack_post *j)
{
    if (j->f) {
        fetch_cancel(j->f);
        j->f = NULL;
    }
    if (j->timer)
        evtimer_del(j->timer);
}

static void io_deactivated(struct slack_post *j, const PGresult *res, const char *reason)
{
    slack_event_deactivated(j->o.app, res, reason, j->o.actor);
}

static void io_rotated(struct slack_post *j, const PGresult *res)
{
    slack_event_rotated(j->o.app, res);
}

const struct slack_post_io slack_post_io_default = {
    .query = io_query,
    .fetch = io_fetch,
    .timer = io_timer,
    .cancel = io_cancel,
    .deactivated = io_deactivated,
    .rotated = io_rotated,
};
