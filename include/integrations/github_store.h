/* integrations/github_store: the SQL of /api/integrations/github and the decoding of
 * its rows, on the caller's tenant table <tenant>.github_tokens. Each
 * github_store_* statement function either submits its statement for r (done runs as
 * with app_query) or, when the statement cannot be built (invalid tenant, text too
 * long), answers r 500 itself. */
#ifndef IDX_INTEGRATIONS_GITHUB_STORE_H
#define IDX_INTEGRATIONS_GITHUB_STORE_H
#include <jansson.h>
#include <libpq-fe.h>

#include "app.h"

/* The newest token's status row (none when no token). */
void github_store_status(struct http_req *r, app_query_done done);
/* Save enc (scheme B) with name (NULL: keep the stored name, or the default) under
 * the tenant's lock: the newest row is updated, or one inserted. Returns the status
 * row as the last result. */
void github_store_save(struct http_req *r, const char *enc, const char *name, app_query_done done);
/* Delete every token, returning one row each. */
void github_store_delete(struct http_req *r, app_query_done done);
/* The newest token's id and ciphertext. */
void github_store_stored(struct http_req *r, app_query_done done);
/* Record that token id was used (last_used_at); done gets the UPDATE's result. */
void github_store_touch(struct http_req *r, const char *id, app_query_done done);

/* The reference status object ({configured, token_name?, last_used_at?, created_at?})
 * of a status row set. */
json_t *github_status_json(const PGresult *res);
/* The token_name of a status row set (NULL when none). */
const char *github_status_name(const PGresult *res);
/* The row of github_store_stored (strings borrowed from res). */
void github_stored_row(const PGresult *res, int row, const char **id, const char **enc);

#endif
