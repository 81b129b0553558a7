/* integrations/llm_keys: /api/llm-keys (reference 1.4 and 8, SPEC sections 3-5).
 * Keys are stored in scheme B with an HMAC fingerprint for duplicate detection and
 * only ever returned masked. The body checks are pure (no request, no database) so
 * the unit tests and the fuzz targets call the very rules the routes apply.
 * Inside (src/integrations/llm_keys/): llm_keys.c the handlers (check -> store ->
 * event -> reply), llm_keys_check.c the body rules and the one error -> status table,
 * llm_keys_store.c the SQL and the decoding of its rows (llm_keys_store.h). */
#ifndef IDX_INTEGRATIONS_LLM_KEYS_H
#define IDX_INTEGRATIONS_LLM_KEYS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"
#include "util/compiler.h"

void llm_keys_list(struct http_req *r);
void llm_keys_status(struct http_req *r);
void llm_keys_by_name(struct http_req *r);
void llm_keys_create(struct http_req *r);
void llm_keys_update(struct http_req *r);
void llm_keys_delete(struct http_req *r);
/* POST /api/llm-keys/:id/verify: check the key against its provider. */
void llm_keys_verify(struct http_req *r);

/* The fixed provider table: url for a provider name, or NULL if unknown. */
const char *llm_provider_url(const char *name) MUSTCHECK;

#define LLM_KEY_MAX_CHARS 512   /* key, in code points */
#define LLM_MODEL_MAX_CHARS 255 /* model, in code points */

/* Every way a key request is refused for what it says (not for what the database
 * holds), in the order the checks run. Each maps to one status and one message
 * (llm_keys_err_status / llm_keys_err_message: the table in llm_keys_check.c). */
enum llm_key_err {
    LLM_KEY_OK = 0,
    LLM_KEY_ERR_BAD_ID,         /* the :id path parameter */
    LLM_KEY_ERR_REQUIRED,       /* create: name or key missing, empty or not a string */
    LLM_KEY_ERR_PROVIDER,       /* name not one of the providers; the :name parameter too */
    LLM_KEY_ERR_MODEL_REQUIRED, /* create: model missing, empty or not a string */
    LLM_KEY_ERR_NAME_TYPE,      /* PATCH: name of another type than string */
    LLM_KEY_ERR_KEY_TYPE,       /* PATCH: key of another type than string */
    LLM_KEY_ERR_MODEL_TYPE,     /* PATCH: model of another type than string */
    LLM_KEY_ERR_NO_FIELDS,      /* PATCH: none of name, key, model */
    LLM_KEY_ERR_KEY_TOO_LONG,   /* key over LLM_KEY_MAX_CHARS */
    LLM_KEY_ERR_MODEL_TOO_LONG, /* model over LLM_MODEL_MAX_CHARS */
    LLM_KEY_ERR_NUL,            /* key or model with a NUL character */
    LLM_KEY_ERR_MASKED,         /* a masked key ("****...") that is not the row's own mask */
    LLM_KEY_ERR_DUP_CREATE,     /* create: the key is already stored */
    LLM_KEY_ERR_DUP_UPDATE,     /* PATCH: the key is already stored */
    LLM_KEY_ERR_COUNT
};

/* A checked body. Strings point into the body (alive as long as it is); NULL when a
 * PATCH leaves the field unchanged. url is the provider's url when name is set. */
struct llm_key_input {
    const char *name, *url, *key, *model;
    size_t klen, mlen;
};

/* Check a POST (patch false) or PATCH (patch true) /api/llm-keys body. On LLM_KEY_OK
 * *out holds the fields to write; otherwise *out is zeroed. A PATCH key that looks
 * masked passes here: whether it is the row's own mask needs the row. */
enum llm_key_err llm_keys_check_body(const json_t *body, bool patch, struct llm_key_input *out) MUSTCHECK;

/* Does a key look like a mask the list could have shown ("****..." )? */
bool llm_key_looks_masked(const char *key, size_t len);

/* The HTTP status and the exact VerifyWise message of an error (LLM_KEY_OK: 200, ""). */
int llm_keys_err_status(enum llm_key_err e);
const char *llm_keys_err_message(enum llm_key_err e);

#endif
