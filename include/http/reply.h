/* http/reply: the two response conventions of VerifyWise.
 * Envelope: {"message":"<reason phrase>","data":...} for 1xx-4xx and
 * {"message":"Internal Server Error","error":"..."} for 5xx. */
#ifndef IDX_HTTP_REPLY_H
#define IDX_HTTP_REPLY_H
#include <jansson.h>
#include "http/request.h"
#include "util/compiler.h"
#include "util/json_out.h"

const char *http_reason(int status);

/* Envelope with data (stolen; NULL means {}). */
void reply_data(struct http_req *r, int status, json_t *data);
/* The same envelope written straight as text (util/json_out), for answers built on every
 * request: begin writes {"message":...,"data": into o (initialized here), the caller
 * writes the data, end closes and sends it. end returns -1, having sent nothing, when
 * writing failed (out of memory, or a string jansson would refuse): answer another way. */
void reply_data_begin(struct json_out *o, int status);
MUSTCHECK int reply_data_end(struct http_req *r, int status, struct json_out *o);
/* Envelope whose data is a string. */
void reply_text(struct http_req *r, int status, const char *text);
/* Envelope whose data is {"message": text}. */
void reply_data_message(struct http_req *r, int status, const char *text);
/* 5xx: {"message":<reason>,"error":text}. */
void reply_error(struct http_req *r, int status, const char *text);
/* A bare JSON object (MLflow routes, "Invalid token"), stolen. */
void reply_json(struct http_req *r, int status, json_t *body);

/* Common cases. */
void reply_db_unavailable(struct http_req *r);
void reply_internal(struct http_req *r);

#endif
