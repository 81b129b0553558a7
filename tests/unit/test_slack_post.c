/* Unit tests for integrations/slack_post: the post machine driven through
 * slack_post_step with scripted inputs, no network and no database. A recording I/O
 * (struct slack_post_io) stands in for the pool, the fetch client and the timer;
 * results are PGresults built with libpq's PQmakeEmptyPGresult/PQsetvalue and
 * fetch_responses built by hand. Every transition, the failure ones included: sent;
 * token expired -> lease -> refresh -> save -> retry; refresh refused / unreachable,
 * retry refused, lease held (re-read: same or newer token), lease error -> webhook;
 * channel gone (API or webhook) -> deactivate; load failure; cancel; pacing; an
 * impossible input aborts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "integrations/slack_post.h"
#include "integrations/slack_store.h"
#include "net/fetch.h"

#define MAXREC 16

/* ---- the recording I/O and driver ---------------------------------------------------- */

static struct rec {
    int nquery;
    const char *sql[MAXREC];
    int nparams[MAXREC];
    char param[MAXREC][8][512];
    bool param_null[MAXREC][8];
    int nfetch;
    char url[MAXREC][256];
    char auth[MAXREC][256];   /* the Authorization header, "" when none */
    char body[MAXREC][4096];
    int ntimer;
    long long timer_ms;
    int ncancel, ndeactivated, nrotated;
    char reason[256];
    /* driver */
    int nloaded;
    enum db_status loaded_status;
    bool loaded_ret;
    bool with_token, with_url;
    int nfinished;
    enum slack_post_end end;
    struct slack_post_outcome out;
    const char *via;
    long long pace_ms;
    int npace;
} R;

static struct app A;

static void io_query(struct slack_post *j, const char *sql, int nparams, const char *const *params)
{
    (void)j;
    assert_true(R.nquery < MAXREC);
    int i = R.nquery++;
    R.sql[i] = sql;
    R.nparams[i] = nparams;
    for (int k = 0; k < nparams && k < 8; k++) {
        R.param_null[i][k] = params[k] == NULL;
        snprintf(R.param[i][k], sizeof R.param[i][k], "%s", params[k] ? params[k] : "");
    }
}

static void io_fetch(struct slack_post *j, const struct fetch_request *fr)
{
    (void)j;
    assert_true(R.nfetch < MAXREC);
    int i = R.nfetch++;
    snprintf(R.url[i], sizeof R.url[i], "%s", fr->url);
    R.auth[i][0] = '\0';
    for (const char *const *h = fr->headers; h && *h; h++)
        if (strncmp(*h, "Authorization: ", 15) == 0)
            snprintf(R.auth[i], sizeof R.auth[i], "%s", *h);
    snprintf(R.body[i], sizeof R.body[i], "%.*s", (int)fr->body_len, fr->body ? fr->body : "");
}

static void io_timer(struct slack_post *j, long long ms)
{
    (void)j;
    R.ntimer++;
    R.timer_ms = ms;
}

static void io_cancel(struct slack_post *j)
{
    (void)j;
    R.ncancel++;
}

static void io_deactivated(struct slack_post *j, const PGresult *res, const char *reason)
{
    (void)j;
    (void)res;
    R.ndeactivated++;
    snprintf(R.reason, sizeof R.reason, "%s", reason);
}

static void io_rotated(struct slack_post *j, const PGresult *res)
{
    (void)j;
    (void)res;
    R.nrotated++;
}

static const struct slack_post_io IO = {io_query, io_fetch, io_timer, io_cancel, io_deactivated, io_rotated};

static bool loaded(void *arg, const struct db_result *res, struct slack_post_target *t)
{
    assert_ptr_equal(arg, &R);
    R.nloaded++;
    R.loaded_status = res->status;
    if (!R.loaded_ret)
        return false;
    t->title = "Title";
    t->message = "Message";
    snprintf(t->channel_id, sizeof t->channel_id, "C1");
    t->token = R.with_token ? strdup("xoxb-old") : NULL;
    t->token_len = t->token ? strlen(t->token) : 0;
    t->token_ct = R.with_token ? strdup("ciphertext-old") : NULL;
    t->url = R.with_url ? strdup("https://hooks.example/services/T/B/secret") : NULL;
    t->url_len = t->url ? strlen(t->url) : 0;
    t->has_refresh = true;
    return true;
}

static long long pace(void *arg)
{
    (void)arg;
    R.npace++;
    return R.pace_ms;
}

static void finished(void *arg, enum slack_post_end end, const struct slack_post_outcome *out, const char *via)
{
    assert_ptr_equal(arg, &R);
    R.nfinished++;
    R.end = end;
    R.out = *out;
    R.via = via;
}

/* ---- inputs ------------------------------------------------------------------------- */

static PGresult *mkres(int ncols, const char *const *vals, int nrows)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(r);
    PGresAttDesc attrs[16];
    char names[16][8];
    assert_true(ncols <= 16);
    memset(attrs, 0, sizeof attrs);
    for (int i = 0; i < ncols; i++) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        attrs[i].name = names[i];
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(r, ncols, attrs), 1);
    for (int row = 0; row < nrows; row++)
        for (int i = 0; i < ncols; i++)
        {
            char *v = vals[i] ? strdup(vals[i]) : NULL;   /* PQsetvalue copies; it takes char * */
            assert_int_equal(PQsetvalue(r, row, i, v, v ? (int)strlen(v) : -1), 1);
            free(v);
        }
    return r;
}

static void feed_db(struct slack_post *j, enum db_status st, PGresult *pr)
{
    PGresult *arr[1] = {pr};
    struct db_result res = {.status = st, .n = pr ? 1 : 0, .res = arr, .sqlstate = st == DB_OK ? "" : "08006",
                            .message = st == DB_OK ? "" : "connection lost"};
    struct machine_input in = {.kind = MI_DB, .db = &res};
    slack_post_step(j, &in);
    if (pr)
        PQclear(pr);
}

static void feed_rows(struct slack_post *j, int ncols, const char *const *vals, int nrows)
{
    feed_db(j, DB_OK, mkres(ncols, vals, nrows));
}

static void feed_fetch(struct slack_post *j, enum fetch_outcome oc, long status, const char *body)
{
    struct fetch_response res = {.outcome = oc, .status = status, .body = body, .body_len = body ? strlen(body) : 0};
    struct machine_input in = {.kind = MI_FETCH, .fetch = &res};
    slack_post_step(j, &in);
}

static void feed(struct slack_post *j, enum machine_input_kind k)
{
    struct machine_input in = {.kind = k};
    slack_post_step(j, &in);
}

/* The webhook row SLACK_SQL_REFRESH_SAVE / SLACK_SQL_DEACTIVATE return. */
static const char *const WEBHOOK_ROW[SLACK_WEBHOOK_NCOLS] = {"7", "incoming-webhook", "2", "Team", "T1", "#alerts", "C1",
                                                        "2026-01-01T00:00:00.000Z", "t", NULL, "1"};

/* ---- fixtures ----------------------------------------------------------------------- */

static int setup_all(void **state)
{
    (void)state;
    memset(&A, 0, sizeof A);
    static char base[] = "https://slack.example/api", url[] = "https://slack.example/api/oauth.v2.access",
                id[] = "client-id", secret[] = "client-secret";
    A.cfg.slack_api_base = base;
    A.cfg.slack_api_url = url;
    A.cfg.slack_client_id = id;
    A.cfg.slack_client_secret = secret;
    if (secrets_init(&A.secrets, "default-password", "default-key-change-this-in-production-32chars!!") != 0)
        return -1;
    return secrets_a_wait(&A.secrets) == 0 ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    secrets_clear(&A.secrets);
    return 0;
}

static struct slack_post *start(void)
{
    memset(&R, 0, sizeof R);
    R.loaded_ret = true;
    R.with_token = true;
    R.with_url = true;
    const char *params[] = {"7", "1"};
    struct slack_post_opts o = {
        .app = &A,
        .who = "test",
        .webhook_id = "7",
        .load_sql = SLACK_SQL_SEND_LOAD,
        .load_nparams = 2,
        .load_params = params,
        .loaded = loaded,
        .pace = pace,
        .finished = finished,
        .arg = &R,
    };
    struct slack_post *j = slack_post_start(&o, &IO);
    assert_non_null(j);
    assert_int_equal(slack_post_state(j), SLACK_POST_LOAD);
    assert_int_equal(R.nquery, 1);
    assert_ptr_equal(R.sql[0], SLACK_SQL_SEND_LOAD);
    assert_string_equal(R.param[0][0], "7");
    assert_string_equal(R.param[0][1], "1");
    return j;
}

/* start and load: the machine waits for chat.postMessage */
static struct slack_post *at_api(void)
{
    struct slack_post *j = start();
    static const char *const one[] = {"x"};
    feed_rows(j, 1, one, 1);
    assert_int_equal(R.nloaded, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_API);
    assert_int_equal(R.nfetch, 1);
    assert_string_equal(R.url[0], "https://slack.example/api/chat.postMessage");
    assert_string_equal(R.auth[0], "Authorization: Bearer xoxb-old");
    assert_non_null(strstr(R.body[0], "\"channel\":\"C1\""));
    return j;
}

static char *encrypt(const char *pt, char iv[33])
{
    char *ct = NULL;
    assert_int_equal(secrets_a_encrypt(&A.secrets, pt, strlen(pt), &ct, iv), 0);
    return ct;
}

/* at_api, then Slack says token_expired: the lease is asked for the token as loaded */
static struct slack_post *at_lease(void)
{
    struct slack_post *j = at_api();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"token_expired\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_LEASE);
    assert_int_equal(R.nquery, 2);
    assert_ptr_equal(R.sql[1], SLACK_SQL_REFRESH_LEASE);
    assert_string_equal(R.param[1][0], "7");
    assert_string_equal(R.param[1][1], "ciphertext-old");
    return j;
}

/* at_lease, the lease taken: oauth.v2.access with the decrypted refresh token */
static struct slack_post *at_refresh(void)
{
    struct slack_post *j = at_lease();
    char iv[33];
    char *ct = encrypt("xoxe-1-refresh", iv);
    const char *row[] = {"7", ct, iv};
    feed_rows(j, 3, row, 1);
    free(ct);
    assert_int_equal(slack_post_state(j), SLACK_POST_REFRESH);
    assert_int_equal(R.nfetch, 2);
    assert_string_equal(R.url[1], "https://slack.example/api/oauth.v2.access");
    assert_non_null(strstr(R.body[1], "grant_type=refresh_token"));
    assert_non_null(strstr(R.body[1], "refresh_token=xoxe-1-refresh"));
    return j;
}

static void assert_webhook_post(int i)
{
    assert_string_equal(R.url[i], "https://hooks.example/services/T/B/secret");
    assert_string_equal(R.auth[i], "");
    assert_null(strstr(R.body[i], "\"channel\""));
}

/* ---- the transitions ------------------------------------------------------------------ */

static void token_ok_sent(void **state)
{
    (void)state;
    struct slack_post *j = at_api();
    assert_int_equal(R.npace, 1);
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true,\"ts\":\"1.2\",\"channel\":\"C1\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_DONE);
    assert_int_equal(R.nfinished, 1);
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    assert_string_equal(R.via, "chat.postMessage");
    assert_string_equal(R.out.ts, "1.2");
    assert_int_equal(R.nfetch, 1);
    assert_int_equal(R.nquery, 1);
    /* DONE waits for nothing: a late input is ignored */
    feed(j, MI_TIMER);
    assert_int_equal(R.nfinished, 1);
    slack_post_free(j);
    assert_int_equal(R.ncancel, 0);
}

static void expired_refresh_retry_sent(void **state)
{
    (void)state;
    struct slack_post *j = at_refresh();
    feed_fetch(j, FETCH_OK, 200,
               "{\"ok\":true,\"access_token\":\"xoxe.xoxb-new\",\"refresh_token\":\"xoxe-1-next\",\"expires_in\":43200}");
    assert_int_equal(slack_post_state(j), SLACK_POST_SAVE);
    assert_int_equal(R.nquery, 3);
    assert_ptr_equal(R.sql[2], SLACK_SQL_REFRESH_SAVE);
    assert_string_equal(R.param[2][0], "7");
    char *pt = NULL;
    size_t len = 0;
    assert_int_equal(secrets_a_decrypt(&A.secrets, R.param[2][1], R.param[2][2], &pt, &len), 0);
    assert_string_equal(pt, "xoxe.xoxb-new");
    secrets_free_plain(pt, len);
    assert_null(strstr(R.param[2][1], "xoxb-new"));   /* stored encrypted */
    feed_rows(j, SLACK_WEBHOOK_NCOLS, WEBHOOK_ROW, 1);
    assert_int_equal(R.nrotated, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_RETRY);
    assert_int_equal(R.nfetch, 3);
    assert_string_equal(R.url[2], "https://slack.example/api/chat.postMessage");
    assert_string_equal(R.auth[2], "Authorization: Bearer xoxe.xoxb-new");
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true,\"ts\":\"3.4\",\"channel\":\"C1\"}");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    assert_string_equal(R.via, "chat.postMessage");
    assert_int_equal(R.nfetch, 3);   /* no webhook fallback */
    assert_int_equal(R.nfinished, 1);
    slack_post_free(j);
}

static void save_failure_still_retries(void **state)
{
    (void)state;
    struct slack_post *j = at_refresh();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true,\"access_token\":\"xoxb-new2\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_SAVE);
    assert_true(R.param_null[2][3] && R.param_null[2][5]);   /* no refresh token, no expiry */
    feed_db(j, DB_UNAVAILABLE, NULL);
    assert_int_equal(R.nrotated, 0);
    assert_int_equal(slack_post_state(j), SLACK_POST_RETRY);
    assert_string_equal(R.auth[2], "Authorization: Bearer xoxb-new2");
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true,\"ts\":\"5.6\"}");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    slack_post_free(j);
}

static void refresh_refused_falls_back(void **state)
{
    (void)state;
    struct slack_post *j = at_refresh();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"invalid_refresh_token\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_int_equal(R.nfetch, 3);
    assert_webhook_post(2);
    assert_int_equal(R.nquery, 2);   /* no save, no deactivation: the rotation tick judges */
    feed_fetch(j, FETCH_OK, 200, "ok");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    assert_string_equal(R.via, "incoming_webhook");
    slack_post_free(j);
}

static void refresh_unreachable_falls_back(void **state)
{
    (void)state;
    struct slack_post *j = at_refresh();
    feed_fetch(j, FETCH_TIMEOUT, 0, NULL);
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    feed_fetch(j, FETCH_OK, 400, "invalid_payload");
    assert_int_equal(R.end, SLACK_POST_END_FAILED);
    assert_string_equal(R.out.error, "invalid_payload");
    slack_post_free(j);
}

static void refresh_refused_no_url_fails_with_the_expiry(void **state)
{
    (void)state;
    /* without a webhook URL, the first answer (token_expired) is the failure */
    struct slack_post *j = start();
    R.with_url = false;
    static const char *const one[] = {"x"};
    feed_rows(j, 1, one, 1);
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"token_expired\"}");
    feed_db(j, DB_OK, mkres(3, (const char *const[]){"7", "a", "b"}, 0));   /* lease not taken */
    assert_int_equal(slack_post_state(j), SLACK_POST_REREAD);
    feed_db(j, DB_OK, mkres(2, (const char *const[]){"ciphertext-old", "iv"}, 1));   /* the same token */
    assert_int_equal(slack_post_state(j), SLACK_POST_DONE);
    assert_int_equal(R.end, SLACK_POST_END_FAILED);
    assert_int_equal(R.out.result, SLACK_POST_TOKEN_REJECTED);
    assert_string_equal(R.out.error, "token_expired");
    slack_post_free(j);
}

static void retry_refused_falls_back_once(void **state)
{
    (void)state;
    struct slack_post *j = at_refresh();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true,\"access_token\":\"xoxb-new3\"}");
    feed_rows(j, SLACK_WEBHOOK_NCOLS, WEBHOOK_ROW, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_RETRY);
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"token_expired\"}");
    /* one refresh only: the retry's refusal goes to the webhook */
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_int_equal(R.nquery, 3);
    assert_webhook_post(3);
    feed_fetch(j, FETCH_OK, 200, "ok");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    slack_post_free(j);
}

static void lease_held_same_token_falls_back(void **state)
{
    (void)state;
    struct slack_post *j = at_lease();
    feed_db(j, DB_OK, mkres(3, (const char *const[]){"7", "a", "b"}, 0));
    assert_int_equal(slack_post_state(j), SLACK_POST_REREAD);
    assert_ptr_equal(R.sql[2], SLACK_SQL_TOKEN_READ);
    assert_int_equal(R.nfetch, 1);   /* no refresh call */
    feed_db(j, DB_OK, mkres(2, (const char *const[]){"ciphertext-old", "iv"}, 1));
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_webhook_post(1);
    feed_fetch(j, FETCH_OK, 200, "ok");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    slack_post_free(j);
}

static void lease_held_newer_token_retries(void **state)
{
    (void)state;
    struct slack_post *j = at_lease();
    feed_db(j, DB_OK, mkres(3, (const char *const[]){"7", "a", "b"}, 0));
    char iv[33];
    char *ct = encrypt("xoxb-refreshed-elsewhere", iv);
    feed_db(j, DB_OK, mkres(2, (const char *const[]){ct, iv}, 1));
    free(ct);
    assert_int_equal(slack_post_state(j), SLACK_POST_RETRY);
    assert_string_equal(R.auth[1], "Authorization: Bearer xoxb-refreshed-elsewhere");
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true,\"ts\":\"7.8\"}");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    assert_int_equal(R.nrotated, 0);
    slack_post_free(j);
}

static void lease_error_falls_back(void **state)
{
    (void)state;
    struct slack_post *j = at_lease();
    feed_db(j, DB_SQL_ERROR, NULL);
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_int_equal(R.nquery, 2);
    slack_post_free(j);
    assert_int_equal(R.ncancel, 1);   /* freed while waiting: the call in flight is dropped */
}

static void undecryptable_refresh_token_falls_back(void **state)
{
    (void)state;
    struct slack_post *j = at_lease();
    feed_db(j, DB_OK, mkres(3, (const char *const[]){"7", "00ff", "0011"}, 1));
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_int_equal(R.nfetch, 2);
    assert_webhook_post(1);
    slack_post_free(j);
}

static void token_refused_without_rotation_falls_back(void **state)
{
    (void)state;
    struct slack_post *j = at_api();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"invalid_auth\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);   /* not an expiry: no refresh */
    assert_int_equal(R.nquery, 1);
    feed_fetch(j, FETCH_OK, 200, "ok");
    assert_int_equal(R.end, SLACK_POST_END_SENT);
    slack_post_free(j);
}

static void api_channel_gone_deactivates(void **state)
{
    (void)state;
    struct slack_post *j = at_api();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"is_archived\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_DEACTIVATE);
    assert_string_equal(R.sql[1], SLACK_SQL_DEACTIVATE);
    assert_string_equal(R.param[1][0], "7");
    assert_string_equal(R.param[1][1], "Slack answered is_archived");
    feed_rows(j, SLACK_WEBHOOK_NCOLS, WEBHOOK_ROW, 1);
    assert_int_equal(R.ndeactivated, 1);
    assert_string_equal(R.reason, "Slack answered is_archived");
    assert_int_equal(R.end, SLACK_POST_END_DEACTIVATED);
    assert_string_equal(R.via, "chat.postMessage");
    slack_post_free(j);
}

static void webhook_404_deactivates(void **state)
{
    (void)state;
    struct slack_post *j = at_api();
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"token_revoked\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    feed_fetch(j, FETCH_OK, 404, "channel_not_found");
    assert_int_equal(slack_post_state(j), SLACK_POST_DEACTIVATE);
    assert_string_equal(R.param[1][1], "Slack answered channel_not_found");
    feed_db(j, DB_UNAVAILABLE, NULL);   /* the deactivation failed: logged, no event */
    assert_int_equal(R.ndeactivated, 0);
    assert_int_equal(R.end, SLACK_POST_END_DEACTIVATED);
    assert_string_equal(R.via, "incoming_webhook");
    slack_post_free(j);
}

static void no_token_goes_to_the_webhook(void **state)
{
    (void)state;
    struct slack_post *j = start();
    R.with_token = false;
    feed_rows(j, 1, (const char *const[]){"x"}, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_webhook_post(0);
    feed_fetch(j, FETCH_OK, 403, "action_prohibited");
    assert_int_equal(R.end, SLACK_POST_END_FAILED);
    assert_int_equal(R.out.result, SLACK_POST_FAILED);
    slack_post_free(j);
}

/* (a 429 reads Retry-After, which only a real transfer carries: the black-box tests
 * cover it) */
static void retryable_fails(void **state)
{
    (void)state;
    struct slack_post *j = at_api();
    feed_fetch(j, FETCH_OK, 500, "<html>");
    assert_int_equal(R.end, SLACK_POST_END_FAILED);
    assert_int_equal(R.out.result, SLACK_POST_RETRYABLE);
    assert_int_equal(R.nfetch, 1);
    slack_post_free(j);
}

static void load_failure_ends_in_the_driver(void **state)
{
    (void)state;
    struct slack_post *j = start();
    R.loaded_ret = false;
    feed_db(j, DB_UNAVAILABLE, NULL);
    assert_int_equal(R.nloaded, 1);
    assert_int_equal(R.loaded_status, DB_UNAVAILABLE);
    assert_int_equal(R.nfetch, 0);
    assert_int_equal(R.nfinished, 0);   /* the driver answered it */
    slack_post_free(j);
}

static void cancel_drops_the_call(void **state)
{
    (void)state;
    struct slack_post *j = at_api();
    feed(j, MI_CANCEL);
    assert_int_equal(R.ncancel, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_DONE);
    assert_int_equal(R.nfinished, 0);   /* the owner is gone: nobody to tell */
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":true}");   /* a late answer is ignored */
    assert_int_equal(R.nfinished, 0);
    feed(j, MI_CANCEL);
    assert_int_equal(R.ncancel, 1);
    slack_post_free(j);
    assert_int_equal(R.ncancel, 1);
}

static void cancel_while_refreshing(void **state)
{
    (void)state;
    struct slack_post *j = at_refresh();
    feed(j, MI_CANCEL);
    assert_int_equal(R.ncancel, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_DONE);
    slack_post_free(j);
}

static void pacing_waits_for_the_timer(void **state)
{
    (void)state;
    struct slack_post *j = start();
    R.pace_ms = 700;
    feed_rows(j, 1, (const char *const[]){"x"}, 1);
    assert_int_equal(slack_post_state(j), SLACK_POST_API);
    assert_int_equal(R.ntimer, 1);
    assert_int_equal(R.timer_ms, 700);
    assert_int_equal(R.nfetch, 0);   /* not before the window */
    R.pace_ms = 0;
    feed(j, MI_TIMER);
    assert_int_equal(R.npace, 2);    /* asked again: the window is the driver's */
    assert_int_equal(R.nfetch, 1);
    /* the fallback is paced too */
    R.pace_ms = 1000;
    feed_fetch(j, FETCH_OK, 200, "{\"ok\":false,\"error\":\"invalid_auth\"}");
    assert_int_equal(slack_post_state(j), SLACK_POST_WEBHOOK);
    assert_int_equal(R.ntimer, 2);
    assert_int_equal(R.nfetch, 1);
    R.pace_ms = 0;
    feed(j, MI_TIMER);
    assert_int_equal(R.nfetch, 2);
    assert_webhook_post(1);
    slack_post_free(j);
}

static void impossible_input_aborts(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(2);
        struct slack_post *j = at_api();
        feed_db(j, DB_OK, mkres(1, (const char *const[]){"x"}, 1));   /* API waits for a call, not a statement */
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void state_names(void **state)
{
    (void)state;
    assert_string_equal(slack_post_state_name(SLACK_POST_LOAD), "load");
    assert_string_equal(slack_post_state_name(SLACK_POST_REREAD), "reread");
    assert_string_equal(slack_post_state_name(SLACK_POST_DONE), "done");
    assert_string_equal(slack_post_state_name((enum slack_post_state)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_ok_sent),
        cmocka_unit_test(expired_refresh_retry_sent),
        cmocka_unit_test(save_failure_still_retries),
        cmocka_unit_test(refresh_refused_falls_back),
        cmocka_unit_test(refresh_unreachable_falls_back),
        cmocka_unit_test(refresh_refused_no_url_fails_with_the_expiry),
        cmocka_unit_test(retry_refused_falls_back_once),
        cmocka_unit_test(lease_held_same_token_falls_back),
        cmocka_unit_test(lease_held_newer_token_retries),
        cmocka_unit_test(lease_error_falls_back),
        cmocka_unit_test(undecryptable_refresh_token_falls_back),
        cmocka_unit_test(token_refused_without_rotation_falls_back),
        cmocka_unit_test(api_channel_gone_deactivates),
        cmocka_unit_test(webhook_404_deactivates),
        cmocka_unit_test(no_token_goes_to_the_webhook),
        cmocka_unit_test(retryable_fails),
        cmocka_unit_test(load_failure_ends_in_the_driver),
        cmocka_unit_test(cancel_drops_the_call),
        cmocka_unit_test(cancel_while_refreshing),
        cmocka_unit_test(pacing_waits_for_the_timer),
        cmocka_unit_test(impossible_input_aborts),
        cmocka_unit_test(state_names),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
