/* integrations/github_check: owns the rules of a GitHub token body (required token,
 * trimming, the known token shapes, token_name) and the one table mapping each
 * refusal to its status and VerifyWise message. Pure: no request, no database. */
#include <ctype.h>
#include <string.h>

#include "integrations/github.h"
#include "util/json.h"

static const struct {
    int status;
    const char *message;
} errors[GITHUB_ERR_COUNT] = {
    [GITHUB_OK] = {200, ""},
    [GITHUB_ERR_REQUIRED] = {400, "Token is required"},
    [GITHUB_ERR_NUL] = {400, "Token format not recognized"},
    [GITHUB_ERR_EMPTY] = {400, "Token cannot be empty"},
    [GITHUB_ERR_TOO_LONG] = {400, "Token must be at most 255 characters"},
    [GITHUB_ERR_CLASSIC_SHORT] = {400, "Classic personal access token appears to be too short"},
    [GITHUB_ERR_FINE_SHORT] = {400, "Fine-grained personal access token appears to be too short"},
    [GITHUB_ERR_APP_MALFORMED] = {400, "GitHub token appears to be too short or malformed"},
    [GITHUB_ERR_UNRECOGNIZED] = {400, "Token format not recognized. GitHub tokens typically start with 'ghp_' "
                                      "(classic) or 'github_pat_' (fine-grained)"},
    [GITHUB_ERR_NAME_TYPE] = {400, "Token name must be a string"},
    [GITHUB_ERR_NAME_TOO_LONG] = {400, "Token name must be at most 100 characters"},
    [GITHUB_ERR_NOT_FOUND] = {404, "No GitHub token found"},
};

int github_err_status(enum github_err e)
{
    return (unsigned)e < GITHUB_ERR_COUNT ? errors[e].status : 500;
}

const char *github_err_message(enum github_err e)
{
    return (unsigned)e < GITHUB_ERR_COUNT ? errors[e].message : "Internal server error";
}

static bool all_alnum(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* Does the token (len bytes, not necessarily NUL-terminated) start with p? */
static bool has_prefix(const char *tok, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(tok, p, n) == 0;
}

enum github_err github_token_check_format(const char *tok, size_t len)
{
    static const char *const app_prefixes[] = {"gho_", "ghu_", "ghs_", "ghr_"};
    if (len == 0)
        return GITHUB_ERR_EMPTY;
    if (len > GITHUB_TOKEN_MAX)
        return GITHUB_ERR_TOO_LONG;
    if (has_prefix(tok, len, "ghp_"))
        return len < 40 ? GITHUB_ERR_CLASSIC_SHORT : GITHUB_OK;
    if (has_prefix(tok, len, "github_pat_"))
        return len < 30 ? GITHUB_ERR_FINE_SHORT : GITHUB_OK;
    for (size_t i = 0; i < sizeof app_prefixes / sizeof app_prefixes[0]; i++)
        if (has_prefix(tok, len, app_prefixes[i]))
            return len < 40 || !all_alnum(tok, len) ? GITHUB_ERR_APP_MALFORMED : GITHUB_OK;
    if (len == 40) {
        size_t i = 0;
        while (i < 40 && isxdigit((unsigned char)tok[i]))
            i++;
        if (i == 40)
            return GITHUB_OK;
    }
    return GITHUB_ERR_UNRECOGNIZED;
}

const char *github_token_format_error(const char *tok, size_t len)
{
    enum github_err e = github_token_check_format(tok, len);
    return e == GITHUB_OK ? NULL : github_err_message(e);
}

/* The body's token, trimmed, into out. */
static enum github_err check_token(const json_t *body, struct github_token_input *out)
{
    const char *s;
    size_t n;
    if (json_get_string(body, "token", &s, &n) != 1 || n == 0)
        return GITHUB_ERR_REQUIRED;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (memchr(s, '\0', n))
        return GITHUB_ERR_NUL;
    enum github_err e = github_token_check_format(s, n);
    if (e != GITHUB_OK)
        return e;
    out->token = s;
    out->len = n;
    return GITHUB_OK;
}

static enum github_err check_save(const json_t *body, struct github_token_input *in)
{
    enum github_err e = check_token(body, in);
    if (e != GITHUB_OK)
        return e;
    const char *name = NULL;
    size_t nlen = 0;
    int g = json_get_string(body, "token_name", &name, &nlen);
    if (g < 0)
        return GITHUB_ERR_NAME_TYPE;
    if (g == 0 || nlen == 0)
        return GITHUB_OK; /* keep the stored name, or the default on first save */
    if (utf8_length(name, nlen) > GITHUB_NAME_MAX_CHARS || strlen(name) != nlen)
        return GITHUB_ERR_NAME_TOO_LONG;
    in->name = name;
    return GITHUB_OK;
}

enum github_err github_check_save_body(const json_t *body, struct github_token_input *out)
{
    struct github_token_input in = {0};
    enum github_err e = check_save(body, &in);
    *out = e == GITHUB_OK ? in : (struct github_token_input){0};
    return e;
}

enum github_err github_check_test_body(const json_t *body, struct github_token_input *out)
{
    struct github_token_input in = {0};
    enum github_err e = GITHUB_OK;
    if (!json_object_get(body, "token")) /* absent: test the stored token */
        in.stored = true;
    else
        e = check_token(body, &in);
    *out = e == GITHUB_OK ? in : (struct github_token_input){0};
    return e;
}
