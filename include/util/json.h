/* util/json: strict request-body parsing and small helpers for validation. */
#ifndef IDX_UTIL_JSON_H
#define IDX_UTIL_JSON_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "util/compiler.h"

#define JSON_MAX_DEPTH 32

enum json_body_status { JSON_BODY_OK, JSON_BODY_INVALID, JSON_BODY_NOT_OBJECT };

/* Parse a request body: duplicates rejected, nesting deeper than JSON_MAX_DEPTH
 * rejected, must be an object. An empty body is an empty object. */
MUSTCHECK enum json_body_status json_parse_body(const unsigned char *buf, size_t len, json_t **out);

/* Optional string member: returns 1 and sets *s and *len if a string, 0 if absent or
 * null, -1 if present with another type. */
MUSTCHECK int json_get_string(const json_t *obj, const char *key, const char **s, size_t *len);

/* Number of UTF-8 code points in a valid UTF-8 string of len bytes. */
size_t utf8_length(const char *s, size_t len);

#endif
