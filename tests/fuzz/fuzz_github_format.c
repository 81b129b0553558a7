/* tests/fuzz/fuzz_github_format: github_token_check_format and github_token_format_error
 * (the rule POST /api/integrations/github/token applies) on arbitrary (tok, len).
 * The input is passed in a buffer of exactly len bytes, so ASan flags any read past
 * len; the same bytes followed by other bytes ("ghp_" + 'a' x 40 and a NUL) must get
 * the same answer, since only the first len bytes are the token.
 * Properties: the typed error and the message agree (the message is the one
 * github_err_message gives, a 400); an accepted token is 1..GITHUB_TOKEN_MAX bytes and
 * has a known shape (ghp_ >= 40, github_pat_ >= 30, gho_/ghu_/ghs_/ghr_ >= 40
 * alphanumeric or '_', or 40 hex digits: known_shape restates reference 6 as an
 * independent oracle); the answer does not depend on bytes after len. */
#include "fuzz.h"

#include <ctype.h>
#include <stdbool.h>

#include "integrations/github.h"

static bool known_shape(const char *t, size_t n)
{
    if (n >= 40 && memcmp(t, "ghp_", 4) == 0)
        return true;
    if (n >= 30 && memcmp(t, "github_pat_", 11) == 0)
        return true;
    if (n >= 40 && t[0] == 'g' && t[1] == 'h' && strchr("ousr", t[2]) && t[2] && t[3] == '_') {
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)t[i]) && t[i] != '_')
                return false;
        return true;
    }
    if (n == 40) {
        for (size_t i = 0; i < n; i++)
            if (!isxdigit((unsigned char)t[i]))
                return false;
        return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *exact = (char *)fuzz_memdup(data, size);
    const char *err = github_token_format_error(exact, size);
    enum github_err e = github_token_check_format(exact, size);
    FUZZ_ASSERT(e >= GITHUB_OK && e < GITHUB_ERR_COUNT);
    if (e == GITHUB_OK)
        FUZZ_ASSERT(err == NULL);
    else
        FUZZ_ASSERT(err == github_err_message(e) && github_err_status(e) == 400);

    static const char tail[] = "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    char *longer = malloc(size + sizeof tail);
    FUZZ_ASSERT(longer != NULL);
    if (size)
        memcpy(longer, data, size);
    memcpy(longer + size, tail, sizeof tail);
    const char *err2 = github_token_format_error(longer, size);
    FUZZ_ASSERT((err == NULL) == (err2 == NULL));
    if (err)
        FUZZ_ASSERT(strcmp(err, err2) == 0 && *err);
    else
        FUZZ_ASSERT(size >= 1 && size <= GITHUB_TOKEN_MAX && known_shape(exact, size));
    free(longer);
    free(exact);
    return 0;
}
