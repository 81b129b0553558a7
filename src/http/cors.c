/* http/cors: owns the CORS policy: the list of allowed origins, the localhost rule,
 * and the preflight answer. */
#include "http/cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/request.h"

struct cors {
    char **origins; /* exact "scheme://host[:port]" */
    size_t n;
    bool localhost; /* VerifyWise's default rule (no ALLOWED_ORIGINS) */
};

/* "scheme://host[:port]" of a URL, or -1. */
static int origin_of(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://");
    if (!p)
        return -1;
    p += 3;
    size_t host = strcspn(p, "/?#");
    int n = snprintf(out, len, "%.*s%.*s", (int)(p - url), url, (int)host, p);
    return n < 0 || (size_t)n >= len || host == 0 ? -1 : 0;
}

/* VerifyWise's rule: hostname localhost, 127.0.0.1 or ::1, any port, http(s). */
static bool localhost_origin(const char *o)
{
    const char *p;
    if (strncmp(o, "http://", 7) == 0)
        p = o + 7;
    else if (strncmp(o, "https://", 8) == 0)
        p = o + 8;
    else
        return false;
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(hosts[i]);
        if (strncmp(p, hosts[i], l) != 0)
            continue;
        const char *q = p + l;
        if (*q == '\0')
            return true;
        if (*q != ':' || !q[1] || strlen(q + 1) > 5)
            return false;
        for (q++; *q; q++)
            if (*q < '0' || *q > '9')
                return false;
        return true;
    }
    return false;
}

bool cors_allowed(const struct cors *c, const char *o)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->origins[i], o) == 0)
            return true;
    return c->localhost && localhost_origin(o);
}

static int add_origin(struct cors *c, const char *o)
{
    char **n = realloc(c->origins, (c->n + 1) * sizeof *n);
    if (!n)
        return -1;
    c->origins = n;
    if (!(c->origins[c->n] = strdup(o)))
        return -1;
    c->n++;
    return 0;
}

static int parse_list(struct cors *c, const char *allowed_origins, char *err, size_t errlen)
{
    char o[512];
    char *list = strdup(allowed_origins), *save = NULL;
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (origin_of(tok, o, sizeof o) < 0 || strcmp(o, tok) != 0 || add_origin(c, tok) < 0) {
            snprintf(err, errlen, "ALLOWED_ORIGINS entries must be scheme://host[:port]");
            free(list);
            return -1;
        }
    }
    free(list);
    return 0;
}

struct cors *cors_new(const char *frontend_url, const char *allowed_origins, char *err, size_t errlen)
{
    struct cors *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (allowed_origins) {
        if (parse_list(c, allowed_origins, err, errlen) < 0)
            goto fail;
        return c;
    }
    c->localhost = true;
    char o[512];
    if (origin_of(frontend_url, o, sizeof o) < 0 || add_origin(c, o) < 0) {
        snprintf(err, errlen, "FRONTEND_URL has no usable origin");
        goto fail;
    }
    return c;
fail:
    cors_free(c);
    return NULL;
}

void cors_free(struct cors *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c);
}

void cors_apply(const struct cors *c, struct http_req *r)
{
    const char *o = http_req_header(r, "Origin");
    if (!o || strlen(o) >= sizeof r->cors_buf || !cors_allowed(c, o))
        return;
    memcpy(r->cors_buf, o, strlen(o) + 1);
    r->cors_origin = r->cors_buf;
}

void cors_preflight(struct http_req *r)
{
    static const char *const hdrs[] = {
        "Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE",
        "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Requested-With",
        "Access-Control-Max-Age", "600",
        NULL};
    http_req_send(r, 204, NULL, r->cors_origin ? hdrs : NULL);
}
