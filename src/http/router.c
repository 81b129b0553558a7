/* http/router: owns path pattern matching and the Allow header text. Pure. */
#include "http/router.h"

#include "util/codec.h"

#include <stdio.h>
#include <string.h>

static const struct {
    unsigned bit;
    const char *name;
} method_names[] = {
    {HTTP_GET, "GET"},     {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},
    {HTTP_PUT, "PUT"},     {HTTP_PATCH, "PATCH"},   {HTTP_DELETE, "DELETE"},
    {HTTP_OPTIONS, "OPTIONS"},
};
#define NMETHODS (sizeof method_names / sizeof method_names[0])

unsigned http_method_from_name(const char *name)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(method_names[i].name, name) == 0)
            return method_names[i].bit;
    return HTTP_OTHER;
}

const char *http_method_name(unsigned method)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (method_names[i].bit == method)
            return method_names[i].name;
    return "OTHER";
}

/* Match one pattern against the path segment by segment. */
static int match_pattern(const char *pat, const char *path, struct route_params *params)
{
    params->n = 0;
    while (*pat && *path) {
        if (*pat != '/' || *path != '/')
            return 0;
        pat++, path++;
        size_t pl = strcspn(pat, "/"), sl = strcspn(path, "/");
        if (*pat == ':') {
            if (sl == 0 || params->n == ROUTE_MAX_PARAMS)
                return 0;
            params->p[params->n].name = pat + 1;
            params->p[params->n].name_len = pl - 1;
            params->p[params->n].value = path;
            params->p[params->n].len = sl;
            params->n++;
        } else if (pl != sl || memcmp(pat, path, pl) != 0) {
            return 0;
        }
        pat += pl, path += sl;
    }
    return *pat == '\0' && *path == '\0';
}

enum route_result router_match(const struct route *routes, size_t n, unsigned method,
                               const char *path, const struct route **out,
                               struct route_params *params, unsigned *allowed)
{
    struct route_params tmp;
    unsigned allow = 0;
    for (size_t i = 0; i < n; i++) {
        if (!match_pattern(routes[i].pattern, path, &tmp))
            continue;
        if (routes[i].methods & method) {
            *out = &routes[i];
            *params = tmp;
            return ROUTE_FOUND;
        }
        allow |= routes[i].methods;
    }
    if (allowed)
        *allowed = allow;
    return allow ? ROUTE_METHOD_NOT_ALLOWED : ROUTE_NOT_FOUND;
}

int route_param(const struct route_params *params, const char *name, const char **value)
{
    size_t nl = strlen(name);
    for (int i = 0; i < params->n; i++)
        if (params->p[i].name_len == nl && memcmp(params->p[i].name, name, nl) == 0) {
            *value = params->p[i].value;
            return (int)params->p[i].len;
        }
    return -1;
}

size_t router_allow_header(unsigned methods, char *buf, size_t len)
{
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < NMETHODS; i++) {
        if (!(methods & method_names[i].bit))
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", method_names[i].name);
        if (w < 0 || (size_t)w >= len - used) {
            if (used < len)   /* len 0: nothing may be written */
                buf[used] = '\0'; /* whole names only */
            break;
        }
        used += (size_t)w;
    }
    return used;
}

int url_query_get(const char *query, const char *key, char *buf, size_t buflen)
{
    size_t kl = strlen(key);
    const char *p = query;
    while (p && *p) {
        size_t seg = strcspn(p, "&");
        const char *eq = memchr(p, '=', seg);
        size_t namelen = eq ? (size_t)(eq - p) : seg;
        if (namelen == kl && memcmp(p, key, kl) == 0) {
            if (!eq)
                return buflen ? (buf[0] = '\0', 0) : -1;
            return percent_decode(eq + 1, seg - namelen - 1, buf, buflen, 1);
        }
        p += seg;
        if (*p == '&')
            p++;
    }
    return -1;
}
