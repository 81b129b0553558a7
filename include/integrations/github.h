/* integrations/github: /api/integrations/github (reference 1.2 and 6): one personal
 * access token per organization, stored in scheme B, and a connection test. The body
 * checks are pure (no request, no database) so the unit tests and the fuzz targets
 * call the very rules the routes apply. Inside (src/integrations/github/): github.c
 * the handlers (check -> store -> event -> reply), github_check.c the token rules and
 * the one error -> status table, github_store.c the SQL and its rows (github_store.h). */
#ifndef IDX_INTEGRATIONS_GITHUB_H
#define IDX_INTEGRATIONS_GITHUB_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"
#include "util/compiler.h"

void github_token_get(struct http_req *r);
void github_token_save(struct http_req *r);
void github_token_delete(struct http_req *r);
void github_token_test(struct http_req *r);

#define GITHUB_TOKEN_MAX 255      /* bytes of a trimmed token */
#define GITHUB_NAME_MAX_CHARS 100 /* token_name, in code points */

/* Every way a token request is refused, in the order the checks run. Each maps to
 * one status and one message (github_err_status / github_err_message: the table in
 * github_check.c). */
enum github_err {
    GITHUB_OK = 0,
    GITHUB_ERR_REQUIRED,       /* token missing, empty or not a string */
    GITHUB_ERR_NUL,            /* token with a NUL character */
    GITHUB_ERR_EMPTY,          /* token of white space only */
    GITHUB_ERR_TOO_LONG,       /* over GITHUB_TOKEN_MAX */
    GITHUB_ERR_CLASSIC_SHORT,  /* ghp_ shorter than 40 */
    GITHUB_ERR_FINE_SHORT,     /* github_pat_ shorter than 30 */
    GITHUB_ERR_APP_MALFORMED,  /* gho_/ghu_/ghs_/ghr_ shorter than 40 or not alphanumeric */
    GITHUB_ERR_UNRECOGNIZED,   /* no known shape */
    GITHUB_ERR_NAME_TYPE,      /* token_name of another type than string */
    GITHUB_ERR_NAME_TOO_LONG,  /* token_name over GITHUB_NAME_MAX_CHARS, or with a NUL */
    GITHUB_ERR_NOT_FOUND,      /* no token stored (DELETE, test of the stored token) */
    GITHUB_ERR_COUNT
};

/* A checked body. token points into the body, trimmed (len bytes, not terminated);
 * name is NULL when the stored name (or the default) is kept. stored: a test body
 * without a token, which tests the stored one (token NULL). */
struct github_token_input {
    const char *token;
    size_t len;
    const char *name;
    bool stored;
};

/* Format check of a trimmed token (len bytes, not necessarily NUL-terminated). */
enum github_err github_token_check_format(const char *tok, size_t len) MUSTCHECK;
/* The same as a message: NULL when acceptable. */
const char *github_token_format_error(const char *tok, size_t len) MUSTCHECK;

/* POST /token: token, then token_name. On GITHUB_OK *out holds them; else zeroed. */
enum github_err github_check_save_body(const json_t *body, struct github_token_input *out) MUSTCHECK;
/* POST /token/test: the token if the body has one (else out->stored). */
enum github_err github_check_test_body(const json_t *body, struct github_token_input *out) MUSTCHECK;

/* The HTTP status and the exact VerifyWise message of an error (GITHUB_OK: 200, ""). */
int github_err_status(enum github_err e);
const char *github_err_message(enum github_err e);

#endif
