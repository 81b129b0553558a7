/* config: the environment, read once at start into one immutable struct.
 * Every variable of SPEC section 2 lives in one table in src/config.c. */
#ifndef IDX_CONFIG_H
#define IDX_CONFIG_H
#include <stdbool.h>
#include <stddef.h>

#include "net/proxy.h"
#include "util/compiler.h"

/* The default outbound deny list: loopback, "this network", cloud metadata
 * addresses and link-local; private ranges stay reachable (self-hosted MLflow). */
#define OUTBOUND_DENY_DEFAULT                                                                   \
    "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,100.100.100.200/32,fd00:ec2::254/128"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_JSON = 0, LOG_FORMAT_TEXT };

struct config {
    int port;
    char *bind_address;

    /* PostgreSQL: DATABASE_URL wins over the DB_* pieces; both end up here. */
    char *database_url;
    char *db_host, *db_port, *db_name, *db_user, *db_password;
    int db_pool_size;
    int db_pipeline_depth;       /* statements in flight on one connection (pipeline mode) */
    int db_prepared_statements;  /* named statements kept per connection (0: none) */
    int db_max_queue;            /* statement units waiting for a connection; past it 503 */
    int db_connect_timeout_ms;   /* one connection attempt (pool and LISTEN) */
    int db_stall_timeout_ms;     /* an answer overdue this long: the connection is dropped */
    int db_statement_timeout_ms; /* the server's statement_timeout for our sessions */
    int db_idle_in_transaction_timeout_ms; /* the server's idle_in_transaction_session_timeout */

    char *redis_url;             /* "" = run without Redis */
    char *redis_channel_prefix;
    char *redis_sentinels;       /* "host:port,..."; empty: no Sentinel */
    char *redis_sentinel_master; /* master name asked of the Sentinels */
    char *resolver_hosts_file;   /* hosts file read by net/resolve */

    char *jwt_secret;
    char *encryption_key;
    char *encryption_password;
    char *encryption_algorithm;

    char *slack_api_url, *slack_api_base, *slack_client_id, *slack_client_secret;
    char *frontend_url;
    char *github_api_url;
    char *anthropic_api_url, *openai_api_url, *openrouter_api_url;
    char *mlflow_sync_schedule;
    int mlflow_models_max_age_s;  /* GET /models syncs first when the last good sync is older */
    char *outbound_deny_cidrs;
    int outbound_max_concurrent;  /* outbound calls in flight, all organizations */
    int outbound_max_per_org;     /* outbound calls in flight for one organization */
    size_t mlflow_page_max_bytes; /* one MLflow answer */
    size_t mlflow_page_max_values;/* JSON values in one MLflow answer (pre-scan) */
    int mlflow_page_max_depth;    /* JSON nesting of one MLflow answer (pre-scan) */
    char *allowed_origins;       /* NULL: origin of FRONTEND_URL + localhost rule */
    char *trust_proxy;           /* as given; parsed into proxy_trust */
    struct proxy_trust proxy_trust;
    int auth_cache_ms;           /* how long a public.users lookup is reused at most */
    size_t cache_bytes;          /* read-cache budget; 0 = off */
    size_t max_body_bytes;
    size_t max_buffered_body_bytes; /* request bodies held at once, all connections */
    size_t http_max_header_bytes;  /* header block of one request */
    size_t max_buffered_header_bytes; /* incomplete header blocks held at once, all connections */
    int http_max_headers;          /* header lines of one request */
    int http_idle_timeout_s;     /* a complete request must arrive within this; idle keep-alive too */
    int http_max_connections;    /* open client connections; past it new ones are closed */
    int http_request_timeout_s;  /* an answer owed later than this: 503 */
    int shutdown_drain_ms;       /* SIGTERM: how long requests in flight may still finish */
    int events_max_queue;        /* events kept while Redis is down (oldest dropped) */
    int auth_cache_entries;      /* slots of the public.users lookup cache */
    int token_cache_entries;     /* slots of the verified-token cache (0: off) */
    enum log_level log_level;
    enum log_format log_format;
};

/* A getenv-like lookup, so tests can feed a table instead of the environment. */
typedef const char *(*config_getenv_fn)(const char *name, void *arg);

/* Fill *c from the lookup. On error returns -1 and writes a one-line reason
 * naming the variable into err (never its value). On success returns 0; free
 * with config_free. */
MUSTCHECK int config_load(struct config *c, config_getenv_fn get, void *arg, char *err, size_t errlen);
void config_free(struct config *c);

/* --check-config: calls report once per problem (a line naming the variable, never its
 * value) and returns how many there were; 0 means config_load would succeed. */
typedef void (*config_report_fn)(const char *problem, void *arg);
MUSTCHECK int config_check(config_getenv_fn get, void *arg, config_report_fn report, void *rarg);

/* Names of every variable the service reads (NULL-terminated), for docs checks. */
const char *const *config_variable_names(void);

#endif
