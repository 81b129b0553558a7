/* auth/tenant: VerifyWise's tenant hash (schema name) of an organization id. */
#ifndef IDX_AUTH_TENANT_H
#define IDX_AUTH_TENANT_H
#include <stdbool.h>
#include "util/compiler.h"

#define TENANT_HASH_LEN 10

/* First 10 [A-Za-z0-9] characters of base64(sha256(decimal org_id)).
 * out holds TENANT_HASH_LEN+1 bytes. Returns 0, or -1 if the digest failed. */
MUSTCHECK int tenant_hash(long long org_id, char out[TENANT_HASH_LEN + 1]);

/* true when s matches ^[A-Za-z0-9]{10}$ (safe to double-quote as a schema name). */
bool tenant_name_valid(const char *s);

#endif
