/* integrations/github: /api/integrations/github (reference 1.2 and 6): one personal
 * access token per organization, stored in scheme B, and a connection test. */
#ifndef IDX_INTEGRATIONS_GITHUB_H
#define IDX_INTEGRATIONS_GITHUB_H
#include <stdbool.h>
#include <stddef.h>
#include "http/request.h"

void github_token_get(struct http_req *r);
void github_token_save(struct http_req *r);
void github_token_delete(struct http_req *r);
void github_token_test(struct http_req *r);

/* Format check of a trimmed token: NULL when acceptable, else the message. */
const char *github_token_format_error(const char *tok, size_t len);

#endif
