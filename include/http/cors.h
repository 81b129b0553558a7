/* http/cors: the CORS policy: which Origin a response may echo, and the preflight answer.
 * The allowed origins are exact "scheme://host[:port]" strings: ALLOWED_ORIGINS when set,
 * else the origin of FRONTEND_URL plus VerifyWise's localhost rule (hostname localhost,
 * 127.0.0.1 or [::1], any port, http or https). */
#ifndef IDX_HTTP_CORS_H
#define IDX_HTTP_CORS_H
#include <stdbool.h>
#include <stddef.h>

#include "util/compiler.h"

struct cors;
struct http_req;

/* The policy from the two settings (allowed_origins may be NULL: the default rule).
 * NULL with err set ("FRONTEND_URL has no usable origin", "ALLOWED_ORIGINS entries must be
 * scheme://host[:port]", "out of memory"). Free with cors_free. */
MUSTCHECK struct cors *cors_new(const char *frontend_url, const char *allowed_origins, char *err,
                                size_t errlen);
void cors_free(struct cors *c);

/* Whether a response to a request from origin `o` may name it. */
bool cors_allowed(const struct cors *c, const char *o);

/* Set r->cors_origin when the request's Origin is allowed (the server then echoes it). */
void cors_apply(const struct cors *c, struct http_req *r);

/* Answer an OPTIONS preflight: 204, with the allow headers when the origin is allowed. */
void cors_preflight(struct http_req *r);

#endif
