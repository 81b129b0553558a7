/* http/reply: owns the JSON envelopes and the reason-phrase table. */
#include "http/reply.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"}, {201, "Created"}, {202, "Accepted"}, {204, "No Content"},
    {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
    {405, "Method Not Allowed"}, {406, "Not Acceptable"}, {408, "Request Timeout"},
    {409, "Conflict"}, {413, "Payload Too Large"}, {414, "URI Too Long"},
    {415, "Unsupported Media Type"}, {422, "Unprocessable Entity"},
    {429, "Too Many Requests"}, {500, "Internal Server Error"}, {501, "Not Implemented"},
    {502, "Bad Gateway"}, {503, "Service Unavailable"}, {504, "Gateway Timeout"},
};

const char *http_reason(int status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status >= 500 ? "Internal Server Error" : "Unknown";
}

void reply_json(struct http_req *r, int status, json_t *body)
{
    http_req_send(r, status, body, NULL);
}

void reply_data(struct http_req *r, int status, json_t *data)
{
    if (status >= 500) {
        json_decref(data);
        reply_error(r, status, http_reason(status));
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string(http_reason(status)));
    json_object_set_new(o, "data", data ? data : json_object());
    reply_json(r, status, o);
}

void reply_data_begin(struct json_out *o, int status)
{
    const char *reason = http_reason(status);
    json_out_init(o);
    json_out_lit(o, "{\"message\":");
    json_out_str(o, reason, strlen(reason));
    json_out_lit(o, ",\"data\":");
}

int reply_data_end(struct http_req *r, int status, struct json_out *o)
{
    json_out_lit(o, "}");
    size_t len = 0;
    char *text = json_out_finish(o, &len);
    if (!text)
        return -1;
    http_req_send_json_text(r, status, text, len);
    free(text);
    return 0;
}

void reply_text(struct http_req *r, int status, const char *text)
{
    reply_data(r, status, json_string(text));
}

void reply_data_message(struct http_req *r, int status, const char *text)
{
    reply_data(r, status, json_pack("{s:s}", "message", text));
}

void reply_error(struct http_req *r, int status, const char *text)
{
    reply_json(r, status, json_pack("{s:s,s:s}", "message", http_reason(status), "error", text));
}

void reply_db_unavailable(struct http_req *r)
{
    reply_error(r, 503, "database unavailable");
}

void reply_internal(struct http_req *r)
{
    reply_error(r, 500, "internal error");
}
