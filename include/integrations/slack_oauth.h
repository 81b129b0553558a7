/* integrations/slack_oauth: POST /api/slackWebhooks (reference 1.3, 7.2): the OAuth
 * code exchange that installs a webhook, owned by the caller in the caller's
 * organization; and token rotation: a bot token Slack issued with refresh_token and
 * expires_in is refreshed before it expires, and a refresh Slack refuses deactivates
 * the webhook with the reason. */
#ifndef IDX_INTEGRATIONS_SLACK_OAUTH_H
#define IDX_INTEGRATIONS_SLACK_OAUTH_H
#include <libpq-fe.h>
#include <stddef.h>

#include "http/request.h"
#include "net/fetch.h"
#include "util/compiler.h"

struct app;
struct secrets;

void slack_webhooks_create(struct http_req *r);

/* The refresh sweep (a timer on the app's loop). start returns 0 or -1 (no memory);
 * stop cancels what is in flight and wipes it; both may be called once. */
int slack_oauth_start(struct app *a) MUSTCHECK;
void slack_oauth_stop(void);

/* ---- the refresh of a rotating bot token (the rotation tick and slack_post) ---- */

/* oauth.v2.access with grant_type=refresh_token. The form carries the client secret
 * and the refresh token: slack_refresh_call_clear wipes it (right after starting). */
struct slack_refresh_call {
    char *form;
    size_t len;
    struct fetch_request fr;
};
int slack_refresh_call(struct slack_refresh_call *c, const struct app *a, const char *refresh_token) MUSTCHECK;
void slack_refresh_call_clear(struct slack_refresh_call *c);

enum slack_refresh_result {
    SLACK_REFRESH_OK,             /* token (and maybe refresh, expires_in) set */
    SLACK_REFRESH_REFUSED,        /* Slack refused: reason set ("Slack token refresh failed: ...") */
    SLACK_REFRESH_UNREACHABLE,    /* network, 5xx, 429 or out of memory: try again later */
};
struct slack_refresh_answer {
    char *token, *refresh;        /* secrets, wiped by slack_refresh_answer_clear */
    long long expires_in;         /* 0: the new token does not expire */
    char reason[160];
};
enum slack_refresh_result slack_refresh_parse(const struct fetch_response *res, struct slack_refresh_answer *a)
    MUSTCHECK;
void slack_refresh_answer_clear(struct slack_refresh_answer *a);

/* The parameters of SLACK_SQL_REFRESH_SAVE (the new secrets encrypted). */
struct slack_refresh_save {
    char *tok, *ref;
    char tok_iv[33], ref_iv[33], exp[24];
    const char *params[6];
};
int slack_refresh_save_prepare(struct slack_refresh_save *sv, const struct secrets *s, const char *id,
                               const struct slack_refresh_answer *a) MUSTCHECK;
void slack_refresh_save_clear(struct slack_refresh_save *sv);

/* slack.webhook.updated with token_rotated for a saved row (SLACK_SQL_REFRESH_SAVE). */
void slack_event_rotated(struct app *a, const PGresult *res);

#endif
