/* integrations/slack_send: POST /api/slackWebhooks/:id/send (reference 1.3, 7.3), and
 * what every Slack post shares: the Block Kit message (header, section, context with
 * the UTC date; text "Notification from VerifyWise"), its limits, the two ways out
 * (chat.postMessage at SLACK_API_BASE with the bot token; the incoming-webhook URL,
 * which answers plain text) and the classification of Slack's answers. */
#ifndef IDX_INTEGRATIONS_SLACK_SEND_H
#define IDX_INTEGRATIONS_SLACK_SEND_H
#include <stdbool.h>
#include <stddef.h>
#include "http/request.h"
#include "net/fetch.h"
#include "util/compiler.h"

struct app;

void slack_webhooks_send(struct http_req *r);

#define SLACK_HEADER_MAX 150     /* Block Kit header plain_text */
#define SLACK_SECTION_MAX 3000   /* Block Kit section text */
#define SLACK_TIMEOUT_MS 10000
#define SLACK_FALLBACK_TEXT "Notification from VerifyWise"

/* NULL when title and message are acceptable, else the 400 message. */
const char *slack_text_error(const char *title, size_t tlen, const char *message, size_t mlen) MUSTCHECK;

enum slack_post_result {
    SLACK_POST_OK,
    SLACK_POST_TOKEN_REJECTED,   /* the bot token was refused: try the webhook URL */
    SLACK_POST_CHANNEL_GONE,     /* channel_not_found, is_archived, ...: deactivate */
    SLACK_POST_RATE_LIMITED,     /* HTTP 429: wait retry_after_s */
    SLACK_POST_RETRYABLE,        /* 5xx, timeouts, connection failures, garbage */
    SLACK_POST_FAILED,           /* anything else, for good */
};

struct slack_post_outcome {
    enum slack_post_result result;
    long retry_after_s;
    char error[128];             /* Slack's error name or a short reason; never a secret */
    char ts[64];                 /* chat.postMessage: message ts */
    char channel[64];            /* chat.postMessage: channel id */
};

void slack_classify_api(const struct fetch_response *res, struct slack_post_outcome *out);
void slack_classify_webhook(const struct fetch_response *res, struct slack_post_outcome *out);

/* One outbound post, built for fetch_start/app_fetch. The Authorization line is the
 * only secret; slack_call_clear wipes it (call it right after starting the fetch). */
struct slack_call {
    char url[2048];
    char *auth;
    char *body;
    const char *headers[4];
    struct fetch_request fr;
};
/* chat.postMessage to channel_id with the bot token. Returns 0 or -1. */
int slack_call_api(struct slack_call *c, const struct app *a, const char *token, const char *channel_id,
                   const char *title, const char *message) MUSTCHECK;
/* The incoming-webhook URL (no channel field). Returns 0 or -1. */
int slack_call_webhook(struct slack_call *c, const char *url, const char *title, const char *message) MUSTCHECK;
void slack_call_clear(struct slack_call *c);

#endif
