/* integrations/slack_ratelimit: the limit on Slack webhook creation (reference 1.3 and
 * 7.6, SPEC section 4): SLACK_CREATE_LIMIT requests per client IP per hour, counted in
 * Redis (one counter with expiry shared by every instance) and, when Redis is off,
 * down or slow, in a bounded in-process table. Every request counts, whatever its
 * outcome. The client IP is the socket peer, or with TRUST_PROXY the first untrusted
 * X-Forwarded-For address counting from the right (net/proxy). */
#ifndef IDX_INTEGRATIONS_SLACK_RATELIMIT_H
#define IDX_INTEGRATIONS_SLACK_RATELIMIT_H
#include <stdbool.h>
#include <stddef.h>
#include "http/request.h"

#define SLACK_CREATE_LIMIT 10
#define SLACK_CREATE_WINDOW_MS (3600LL * 1000)
#define SLACK_RATE_MESSAGE "Too many webhook creation requests from this IP, please try again after an hour."

/* Called once, later (never inside slack_ratelimit_count), and only while r can still
 * be answered: allowed, or not with the seconds until the window ends. */
typedef void (*slack_ratelimit_done)(struct http_req *r, bool allowed, long retry_after_s);

/* Count one creation request of r's client. Holds r until done runs. */
void slack_ratelimit_count(struct http_req *r, slack_ratelimit_done done);

/* The client address used for the limit (NUL-terminated, at most len-1 bytes). */
void slack_ratelimit_client_ip(const struct http_req *r, char *buf, size_t len);

/* Answer 429 with the reference body and a Retry-After header. */
void slack_ratelimit_reply(struct http_req *r, long retry_after_s);

#endif
