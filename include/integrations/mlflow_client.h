/* integrations/mlflow_client: how integrationsd talks to an MLflow tracking server:
 * the connection settings (from a stored row, decrypted, or from a request body),
 * URL validation, building REST calls (auth headers, timeouts, TLS), turning a
 * failed call into VerifyWise's messages (reference 5.3), and parsing bodies.
 * The stored configuration row (its columns, summary, decrypted settings) is
 * integrations/mlflow_store's. */
#ifndef IDX_INTEGRATIONS_MLFLOW_CLIENT_H
#define IDX_INTEGRATIONS_MLFLOW_CLIENT_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "net/fetch.h"
#include "util/compiler.h"

struct secrets;

#define MLFLOW_URL_MAX 255        /* tracking_server_url VARCHAR(255) */
#define MLFLOW_CRED_MAX 111       /* plaintext bytes whose scheme A hex fits VARCHAR(255) */
#define MLFLOW_TIMEOUT_MIN 1
#define MLFLOW_TIMEOUT_MAX 300
#define MLFLOW_TIMEOUT_DEFAULT 30

enum mlflow_auth { MLFLOW_AUTH_NONE = 0, MLFLOW_AUTH_BASIC, MLFLOW_AUTH_TOKEN };

/* Resolved settings. Credentials are malloc'd plaintext owned here, wiped by
 * mlflow_conn_clear; never logged. */
struct mlflow_conn {
    char url[MLFLOW_URL_MAX + 1];   /* normalized: no trailing '/' */
    enum mlflow_auth auth;
    char *username, *password, *api_token;
    int timeout_s;
    bool verify_ssl;
};

void mlflow_conn_clear(struct mlflow_conn *c);
const char *mlflow_auth_name(enum mlflow_auth a);
/* "none"/"basic"/"token" -> 0 and *out; -1 otherwise. */
int mlflow_auth_parse(const char *s, enum mlflow_auth *out) MUSTCHECK;

/* Trim, strip one trailing '/', and check: http(s), a host, no user info, no query
 * or fragment, no spaces or control characters, at most MLFLOW_URL_MAX characters.
 * Returns NULL (ok, out filled) or the 400 message. */
const char *mlflow_url_normalize(const char *in, size_t len, char out[MLFLOW_URL_MAX + 1]) MUSTCHECK;

/* HMAC fingerprint of what a connection test proves: URL, method, credentials and
 * whether the certificate was verified. */
int mlflow_conn_fingerprint(const struct secrets *s, const struct mlflow_conn *c, char out[65]) MUSTCHECK;

/* ---- calls --------------------------------------------------------------------- */
struct mlflow_call {
    char *url;
    char *auth_header;   /* wiped on clear */
    char *body;
    const char *headers[4];
    struct fetch_request req;
};

/* Build a call of `method` to <url><path>[?query] with an optional JSON body
 * (borrowed). query must already be encoded (see mlflow_query_add). */
int mlflow_call_build(struct mlflow_call *call, const struct mlflow_conn *c, const char *method,
                      const char *path, const char *query, const json_t *body, size_t max_response) MUSTCHECK;
void mlflow_call_clear(struct mlflow_call *call);

/* Append "&key=value" (percent-encoded) to a query buffer. Returns 0 or -1 (too long). */
int mlflow_query_add(char *buf, size_t len, const char *key, const char *value) MUSTCHECK;

/* The message of reference 5.3 for a call that did not answer 2xx. */
void mlflow_failure_message(const struct fetch_response *res, char *buf, size_t len);
/* Network-type failure (the /models "not reachable" case). */
bool mlflow_failure_is_network(const struct fetch_response *res);

/* What one MLflow answer may make the service hold (MLFLOW_PAGE_MAX_*): its bytes
 * (the fetch aborts past them), and the values and nesting jansson would build from
 * it (pre-scanned before parsing). */
struct mlflow_page_budget {
    size_t max_bytes;
    size_t max_values;
    int max_depth;
};

/* Parse a 2xx body as a JSON object within the budget (pre-scan first, nothing is
 * parsed past the budget). NULL with a message when not; *over_budget (may be NULL)
 * then says whether the budget was the reason. */
json_t *mlflow_parse_object(const struct fetch_response *res, const struct mlflow_page_budget *b,
                            bool *over_budget, char *err, size_t errlen) MUSTCHECK;
/* The message for a page the fetch cut at b->max_bytes. */
void mlflow_page_too_large_message(const struct mlflow_page_budget *b, char *buf, size_t len);

#endif
