/* util/json: owns the request-body parsing rules (strict, bounded depth). */
#include "util/json.h"

/* Count nesting outside strings; -1 when deeper than the limit. */
static int depth_ok(const unsigned char *p, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return 0;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return 1;
}

enum json_body_status json_parse_body(const unsigned char *buf, size_t len, json_t **out)
{
    *out = NULL;
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len) {
        *out = json_object();
        return *out ? JSON_BODY_OK : JSON_BODY_INVALID;
    }
    if (!depth_ok(buf, len))
        return JSON_BODY_INVALID;
    json_error_t err;
    json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root)
        return JSON_BODY_INVALID;
    if (!json_is_object(root)) {
        json_decref(root);
        return JSON_BODY_NOT_OBJECT;
    }
    *out = root;
    return JSON_BODY_OK;
}

int json_get_string(const json_t *obj, const char *key, const char **s, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}
