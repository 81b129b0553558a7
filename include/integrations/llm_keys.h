/* integrations/llm_keys: /api/llm-keys (reference 1.4 and 8, SPEC sections 3-5).
 * Keys are stored in scheme B with an HMAC fingerprint for duplicate detection and
 * only ever returned masked. */
#ifndef IDX_INTEGRATIONS_LLM_KEYS_H
#define IDX_INTEGRATIONS_LLM_KEYS_H
#include "http/request.h"

void llm_keys_list(struct http_req *r);
void llm_keys_status(struct http_req *r);
void llm_keys_by_name(struct http_req *r);
void llm_keys_create(struct http_req *r);
void llm_keys_update(struct http_req *r);
void llm_keys_delete(struct http_req *r);
/* POST /api/llm-keys/:id/verify: check the key against its provider. */
void llm_keys_verify(struct http_req *r);

/* The fixed provider table: url for a provider name, or NULL if unknown. */
const char *llm_provider_url(const char *name);

#endif
