/* auth/tenant: VerifyWise's tenant hash (the per-organization schema name)
 * and the check that a string is a well-formed one. */
#include "auth/tenant.h"

#include <stdio.h>

#include <openssl/evp.h>

#include "util/codec.h"

static bool tenant_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int tenant_hash(long long org_id, char out[TENANT_HASH_LEN + 1])
{
    char dec[32];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    size_t n = 0;

    int dec_len = snprintf(dec, sizeof dec, "%lld", org_id);
    if (dec_len <= 0 || (size_t)dec_len >= sizeof dec)
        return -1;
    if (EVP_Digest(dec, (size_t)dec_len, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32)
        return -1;
    b64_encode(digest, dlen, b64);
    for (const char *p = b64; *p != '\0' && n < TENANT_HASH_LEN; p++)
        if (tenant_char_ok(*p))
            out[n++] = *p;
    out[n] = '\0';
    /* 44 characters with at most one '=' and, in practice, a few '+' or '/':
     * fewer than 10 alphanumerics would need a freak digest, but do not
     * return a short schema name if it ever happens. */
    return n == TENANT_HASH_LEN ? 0 : -1;
}

bool tenant_name_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < TENANT_HASH_LEN; i++)
        if (!tenant_char_ok(s[i]))      /* also stops at an early NUL */
            return false;
    return s[TENANT_HASH_LEN] == '\0';
}
