/* integrations/mlflow_config: the pure validation of a POST /test or /configure body
 * (reference 1.1 table): types, enums, ranges and lengths, with a typed error, and
 * the one table of the MLflow configuration routes' domain errors -> HTTP status and
 * message. No I/O: tests/unit/test_mlflow_config.c and the fuzz targets call it. */
#ifndef IDX_INTEGRATIONS_MLFLOW_CONFIG_H
#define IDX_INTEGRATIONS_MLFLOW_CONFIG_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "integrations/mlflow_client.h"
#include "util/compiler.h"

enum mlflow_config_error {
    MLFLOW_CONFIG_OK = 0,
    MLFLOW_CONFIG_URL_REQUIRED,     /* configure: no (or a falsy) trackingServerUrl */
    MLFLOW_CONFIG_URL_TYPE,
    MLFLOW_CONFIG_URL_INVALID,      /* holds a NUL */
    MLFLOW_CONFIG_AUTH_METHOD,
    MLFLOW_CONFIG_TIMEOUT,
    MLFLOW_CONFIG_VERIFY_SSL,
    MLFLOW_CONFIG_USERNAME_TYPE, MLFLOW_CONFIG_USERNAME_LONG, MLFLOW_CONFIG_USERNAME_CHARS,
    MLFLOW_CONFIG_PASSWORD_TYPE, MLFLOW_CONFIG_PASSWORD_LONG, MLFLOW_CONFIG_PASSWORD_CHARS,
    MLFLOW_CONFIG_TOKEN_TYPE, MLFLOW_CONFIG_TOKEN_LONG, MLFLOW_CONFIG_TOKEN_CHARS,
    /* after merging with the stored row */
    MLFLOW_CONFIG_BASIC_REQUIRED,
    MLFLOW_CONFIG_TOKEN_REQUIRED,
    MLFLOW_CONFIG_INSECURE_CREDS,
    /* internal failures of each route (500) */
    MLFLOW_CONFIG_TEST_FAILED,
    MLFLOW_CONFIG_LOAD_FAILED,
    MLFLOW_CONFIG_SAVE_FAILED,
    MLFLOW_CONFIG_STATUS_FAILED,
    MLFLOW_CONFIG_ERROR_COUNT
};

struct mlflow_config_cred {
    const char *s;     /* trimmed, NULL when absent or empty; borrowed from the body */
    size_t len;
};

/* A checked body; strings are borrowed from the JSON. */
struct mlflow_config_input {
    const char *url;   /* NULL when absent */
    size_t url_len;
    bool has_auth, has_timeout, has_verify;
    enum mlflow_auth auth;
    int timeout;
    bool verify;
    struct mlflow_config_cred user, pass, token;
};

/* POST /test and the fields of POST /configure: MLFLOW_CONFIG_OK and *in filled, or
 * the first error. */
enum mlflow_config_error mlflow_config_check_body(const json_t *body, struct mlflow_config_input *in) MUSTCHECK;
/* POST /configure: the URL must be a non-empty string (checked first), then as above. */
enum mlflow_config_error mlflow_config_check_configure(const json_t *body, struct mlflow_config_input *in)
    MUSTCHECK;

/* The HTTP status and the message of an error (the one table). */
int mlflow_config_error_status(enum mlflow_config_error e);
const char *mlflow_config_error_message(enum mlflow_config_error e);

#endif
