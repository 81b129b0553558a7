/* auth/middleware: VerifyWise's authenticateJWT (reference 2.2), step by step,
 * with its exact statuses and messages, plus SPEC section 3's differences.
 * On success r->auth is filled, the tenant's schema exists, and next(r) runs. */
#ifndef IDX_AUTH_MIDDLEWARE_H
#define IDX_AUTH_MIDDLEWARE_H
#include "http/request.h"

typedef void (*auth_next_fn)(struct http_req *r);

/* Runs the checks; answers the request itself on failure. May complete later
 * (database lookups); holds a reference on r meanwhile. */
void auth_run(struct http_req *r, auth_next_fn next);

/* Only the checks on the token itself (presence, signature, expiry, claims), as run on
 * the headers before a body is read: answers the request on failure, else does nothing. */
void auth_check_token(struct http_req *r);

/* Role name for VerifyWise's hard-coded role ids (1..4), or NULL. */
const char *auth_role_name(long long role_id);

#endif
