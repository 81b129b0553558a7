/* ops/openapi: the API's OpenAPI 3.1 description (doc/openapi.yaml), built into the
 * binary as JSON and served public at GET /api/integrations/openapi.json. */
#ifndef IDX_OPS_OPENAPI_H
#define IDX_OPS_OPENAPI_H
#include <stddef.h>
#include "http/request.h"

/* The document (generated at build time from doc/openapi.json into openapi_doc.c). */
extern const char openapi_json[];
extern const size_t openapi_json_len;

void openapi_handler(struct http_req *r);

#endif
