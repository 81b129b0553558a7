/* integrations/slack_post: the one Slack post of a message for a webhook row, as a
 * job machine (util/machine.h), driven by the send route (slack_send.c, a request
 * attached) and by the deliveries (slack_notify.c, no request):
 *
 *   LOAD        the driver's statement (row, token, URL); the driver's loaded() decodes
 *               it into the target, or ends the job itself   -> API, or WEBHOOK (no token)
 *   API         chat.postMessage with the bot token: ok -> sent; channel gone ->
 *               DEACTIVATE; token_expired with a rotating token (not yet refreshed)
 *               -> LEASE; other token refusal -> WEBHOOK when there is a URL; else failed
 *   LEASE       take the webhook's refresh lease (the one the rotation tick takes),
 *               if its stored token is still the expired one: taken -> REFRESH;
 *               not taken (held elsewhere, token already replaced) -> REREAD
 *   REREAD      read the stored token: another (newer) one -> RETRY with it; the same
 *               (being refreshed elsewhere right now) or none -> WEBHOOK/failed
 *   REFRESH     oauth.v2.access grant_type=refresh_token: new token -> SAVE; else ->
 *               WEBHOOK/failed (the lease runs out; the rotation tick tries again)
 *   SAVE        store the new token (ends the lease), slack.webhook.updated -> RETRY
 *   RETRY       chat.postMessage once more with the new token, mapped as API but
 *               without another refresh
 *   WEBHOOK     the incoming-webhook URL: ok -> sent; channel gone -> DEACTIVATE; failed
 *   DEACTIVATE  is_active = false with the reason, event -> deactivated
 *   DONE        waits for nothing
 *
 * Every post waits first for the driver's pacing (pace(), a timer). A cancel (MI_CANCEL:
 * the owner is gone) drops what is in flight and ends the job without a callback. */
#ifndef IDX_INTEGRATIONS_SLACK_POST_H
#define IDX_INTEGRATIONS_SLACK_POST_H
#include <libpq-fe.h>
#include <stdbool.h>

#include "integrations/slack_send.h"
#include "integrations/slack_store.h"
#include "util/compiler.h"
#include "util/machine.h"

struct app;
struct http_req;
struct db_result;
struct fetch_request;
struct slack_post;

#define SLACK_POST_LOAD_PARAMS 4

enum slack_post_state {
    SLACK_POST_LOAD,
    SLACK_POST_API,
    SLACK_POST_LEASE,
    SLACK_POST_REREAD,
    SLACK_POST_REFRESH,
    SLACK_POST_SAVE,
    SLACK_POST_RETRY,
    SLACK_POST_WEBHOOK,
    SLACK_POST_DEACTIVATE,
    SLACK_POST_DONE,
};

/* How a post ended (finished()). */
enum slack_post_end {
    SLACK_POST_END_SENT,          /* out.result == SLACK_POST_OK */
    SLACK_POST_END_FAILED,        /* out says why (rate limited, retryable, for good) */
    SLACK_POST_END_DEACTIVATED,   /* channel gone: the webhook was deactivated (or that failed, logged) */
    SLACK_POST_END_INTERNAL,      /* out of memory building a call */
};

struct slack_post_opts {
    struct app *app;
    const char *who;              /* for logs and traces: "send 12", "delivery 345" */
    char webhook_id[24];
    long long actor;              /* the user in events; 0 = none */
    /* The LOAD statement: at most SLACK_POST_LOAD_PARAMS short parameters (copied). */
    const char *load_sql;
    int load_nparams;
    const char *const *load_params;
    /* Optional request: held by the job's statements and calls (app_query/app_fetch);
     * callbacks run only while it can be answered. The job is its handler_state. */
    struct http_req *req;
    /* LOAD's result (any status). Fill t and return true to post; return false when the
     * driver ended the job itself (replied, recorded): it may be freed then. */
    bool (*loaded)(void *arg, const struct db_result *res, struct slack_post_target *t);
    /* Optional: milliseconds to wait before a post may start (0: it starts now). */
    long long (*pace)(void *arg);
    /* Once, at the end (not after a cancel). The job is DONE and may be freed in it. */
    void (*finished)(void *arg, enum slack_post_end end, const struct slack_post_outcome *out, const char *via);
    void *arg;                    /* with req set, arg is ignored: the request is passed */
};

/* The job's I/O: the real one (slack_post_io_default) or a test's. Each started wait
 * comes back as one slack_post_step input (MI_DB, MI_FETCH, MI_TIMER). */
struct slack_post_io {
    void (*query)(struct slack_post *j, const char *sql, int nparams, const char *const *params);
    void (*fetch)(struct slack_post *j, const struct fetch_request *fr);
    void (*timer)(struct slack_post *j, long long ms);
    void (*cancel)(struct slack_post *j);     /* drop the call and the timer in flight */
    /* events: the webhook was deactivated (res: its row); its token was rotated */
    void (*deactivated)(struct slack_post *j, const PGresult *res, const char *reason);
    void (*rotated)(struct slack_post *j, const PGresult *res);
};
extern const struct slack_post_io slack_post_io_default;

/* Create the job and enter LOAD. io NULL = the default. Returns the job, or NULL (out
 * of memory or too many parameters; nothing was called). With o->req set the job
 * becomes its handler_state (freed with the request: do not use the returned pointer
 * beyond a NULL check); otherwise the driver frees it with slack_post_free. */
struct slack_post *slack_post_start(const struct slack_post_opts *o, const struct slack_post_io *io) MUSTCHECK;
/* Every input. */
void slack_post_step(struct slack_post *j, const struct machine_input *in);
/* Cancel (if not DONE) and free; wipes the secrets. */
void slack_post_free(struct slack_post *j);

enum slack_post_state slack_post_state(const struct slack_post *j);
const char *slack_post_state_name(enum slack_post_state s);
/* The request of a job started with one (NULL otherwise), and the driver's arg. */
struct http_req *slack_post_req(const struct slack_post *j);
void *slack_post_arg(const struct slack_post *j);
const char *slack_post_webhook_id(const struct slack_post *j);
/* The target (after LOAD): channel and decrypted secrets. */
const struct slack_post_target *slack_post_target(const struct slack_post *j);

#endif
