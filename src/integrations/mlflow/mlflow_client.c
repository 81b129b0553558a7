/* integrations/mlflow_client: owns MLflow connection settings (struct, fingerprint;
 * the stored row is mlflow_store's), URL validation, REST call construction, the
 * mapping of failed calls to VerifyWise's messages and the budgeted parse of answers. Plaintext credentials live
 * only in struct mlflow_conn and in the Authorization line of a call being built. */
#include "integrations/mlflow_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/secrets.h"
#include "http/reply.h"
#include "util/json_scan.h"

static const char *const auth_names[] = {"none", "basic", "token"};

const char *mlflow_auth_name(enum mlflow_auth a)
{
    return (unsigned)a < 3 ? auth_names[a] : "none";
}

int mlflow_auth_parse(const char *s, enum mlflow_auth *out)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, auth_names[i]) == 0) {
            *out = (enum mlflow_auth)i;
            return 0;
        }
    return -1;
}

static void wipe_free(char **p)
{
    if (*p) {
        secrets_free_plain(*p, strlen(*p));
        *p = NULL;
    }
}

void mlflow_conn_clear(struct mlflow_conn *c)
{
    wipe_free(&c->username);
    wipe_free(&c->password);
    wipe_free(&c->api_token);
}

const char *mlflow_url_normalize(const char *in, size_t len, char out[MLFLOW_URL_MAX + 1])
{
    static const char bad[] = "MLFlow tracking server URL must be an http(s) URL with a host";
    while (len && isspace((unsigned char)*in))
        in++, len--;
    while (len && isspace((unsigned char)in[len - 1]))
        len--;
    if (len && in[len - 1] == '/')
        len--;
    if (len == 0)
        return "MLFlow tracking server URL is required";
    if (len > MLFLOW_URL_MAX)
        return "MLFlow tracking server URL must be at most 255 characters";
    size_t skip;
    if (len > 7 && strncasecmp(in, "http://", 7) == 0)
        skip = 7;
    else if (len > 8 && strncasecmp(in, "https://", 8) == 0)
        skip = 8;
    else
        return bad;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '?' || ch == '#' || ch == '\\')
            return bad;
    }
    size_t host = skip;
    while (host < len && in[host] != '/')
        host++;
    if (host == skip || memchr(in + skip, '@', host - skip))
        return bad;
    if (in[skip] == ':' || in[host - 1] == ':')
        return bad;
    memcpy(out, in, len);
    out[len] = '\0';
    for (size_t i = 0; i < skip; i++) /* scheme in lower case */
        out[i] = (char)tolower((unsigned char)out[i]);
    return NULL;
}

int mlflow_conn_fingerprint(const struct secrets *s, const struct mlflow_conn *c, char out[65])
{
    const char *u = c->username ? c->username : "", *p = c->password ? c->password : "",
               *t = c->api_token ? c->api_token : "";
    size_t n = strlen(c->url) + strlen(u) + strlen(p) + strlen(t) + 32;
    char *buf = malloc(n);
    if (!buf)
        return -1;
    int len = snprintf(buf, n, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", c->url, mlflow_auth_name(c->auth), u, p, t,
                       c->verify_ssl ? "verify" : "insecure");
    int rc = len < 0 ? -1 : secrets_fingerprint(s, buf, (size_t)len, out);
    secrets_free_plain(buf, strlen(buf));
    return rc;
}

/* ---- calls --------------------------------------------------------------------- */

int mlflow_query_add(char *buf, size_t len, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(buf);
    int w = snprintf(buf + n, len - n, "%s%s=", n ? "&" : "", key);
    if (w < 0 || (size_t)w >= len - n)
        return -1;
    n += (size_t)w;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (n + 4 > len)
            return -1;
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf[n++] = (char)*p;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        }
    }
    buf[n] = '\0';
    return 0;
}

int mlflow_call_build(struct mlflow_call *call, const struct mlflow_conn *c, const char *method,
                      const char *path, const char *query, const json_t *body, size_t max_response)
{
    memset(call, 0, sizeof *call);
    if (asprintf(&call->url, "%s%s%s%s", c->url, path, query && *query ? "?" : "", query ? query : "") < 0) {
        call->url = NULL;
        return -1;
    }
    int h = 0;
    call->headers[h++] = "Accept: application/json";
    if (body) {
        call->body = json_dumps(body, JSON_COMPACT);
        if (!call->body) {
            mlflow_call_clear(call);
            return -1;
        }
        call->headers[h++] = "Content-Type: application/json";
    }
    if (c->auth == MLFLOW_AUTH_TOKEN && c->api_token) {
        if (asprintf(&call->auth_header, "Authorization: Bearer %s", c->api_token) < 0) {
            call->auth_header = NULL;
            mlflow_call_clear(call);
            return -1;
        }
        call->headers[h++] = call->auth_header;
    }
    call->headers[h] = NULL;
    call->req.method = method;
    call->req.url = call->url;
    call->req.headers = call->headers;
    call->req.body = call->body;
    call->req.body_len = call->body ? strlen(call->body) : 0;
    if (c->auth == MLFLOW_AUTH_BASIC && c->username && c->password) {
        call->req.username = c->username;
        call->req.password = c->password;
    }
    call->req.timeout_ms = (long)c->timeout_s * 1000;
    call->req.connect_timeout_ms = call->req.timeout_ms < 10000 ? call->req.timeout_ms : 10000;
    call->req.max_response = max_response;
    call->req.insecure = !c->verify_ssl;
    call->req.target = "mlflow";
    return 0;
}

void mlflow_call_clear(struct mlflow_call *call)
{
    free(call->url);
    free(call->body);
    wipe_free(&call->auth_header);
    memset(call, 0, sizeof *call);
}

void mlflow_failure_message(const struct fetch_response *res, char *buf, size_t len)
{
    switch (res->outcome) {
    case FETCH_OK:
        if (res->status == 401 || res->status == 403)
            snprintf(buf, len, "Authentication failed - check your credentials");
        else
            snprintf(buf, len, "Connection error: MLFlow server returned status %ld: %s", res->status,
                     res->status >= 100 && res->status < 600 && strcmp(http_reason((int)res->status), "Unknown")
                         ? http_reason((int)res->status)
                         : "Unknown error");
        return;
    case FETCH_CONNECT:
        snprintf(buf, len, "Connection refused - MLFlow server may not be running");
        return;
    case FETCH_DNS:
        snprintf(buf, len, "MLFlow server not found - check the server URL");
        return;
    case FETCH_TIMEOUT:
        snprintf(buf, len, "Connection timeout - MLFlow server is not responding");
        return;
    default:
        snprintf(buf, len, "Connection error: %s", res->error && *res->error ? res->error : fetch_outcome_name(res->outcome));
        return;
    }
}

bool mlflow_failure_is_network(const struct fetch_response *res)
{
    return res->outcome == FETCH_CONNECT || res->outcome == FETCH_DNS || res->outcome == FETCH_TIMEOUT ||
           res->outcome == FETCH_RESET;
}

void mlflow_page_too_large_message(const struct mlflow_page_budget *b, char *buf, size_t len)
{
    snprintf(buf, len, "MLFlow server returned a page over the budget: larger than %zu bytes (MLFLOW_PAGE_MAX_BYTES)",
             b->max_bytes);
}

json_t *mlflow_parse_object(const struct fetch_response *res, const struct mlflow_page_budget *b,
                            bool *over_budget, char *err, size_t errlen)
{
    bool dummy;
    if (!over_budget)
        over_budget = &dummy;
    *over_budget = true;
    if (res->body_len > b->max_bytes) {
        mlflow_page_too_large_message(b, err, errlen);
        return NULL;
    }
    char why[96];
    if (json_scan(res->body ? res->body : "", res->body_len, b->max_values, b->max_depth, NULL, why, sizeof why) <
        0) {
        snprintf(err, errlen, "MLFlow server returned a page over the budget: %s (%s)", why,
                 why[0] == 'm' ? "MLFLOW_PAGE_MAX_VALUES" : "MLFLOW_PAGE_MAX_DEPTH");
        return NULL;
    }
    *over_budget = false;
    json_error_t je;
    json_t *o = json_loadb(res->body ? res->body : "", res->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        snprintf(err, errlen, "MLFlow server returned an invalid JSON response");
        return NULL;
    }
    return o;
}
