/* config: one table of every environment variable (name, type, default, bounds)
 * and its validation. Only systemd's own NOTIFY_SOCKET/WATCHDOG_* are read elsewhere (ops/sdnotify). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum cf_type { CF_STR, CF_INT, CF_BOOL, CF_SIZE, CF_LEVEL, CF_FORMAT };

struct cf_key {
    const char *name;
    enum cf_type type;
    size_t off;
    const char *def;     /* NULL: no default (required when `required`) */
    long long min, max;
    bool required;
};

#define OFF(f) offsetof(struct config, f)
static const struct cf_key keys[] = {
    {"PORT", CF_INT, OFF(port), "3000", 0, 65535, false},
    {"BIND_ADDRESS", CF_STR, OFF(bind_address), "0.0.0.0", 0, 0, false},
    {"DATABASE_URL", CF_STR, OFF(database_url), NULL, 0, 0, false},
    {"DB_HOST", CF_STR, OFF(db_host), NULL, 0, 0, false},
    {"DB_PORT", CF_STR, OFF(db_port), NULL, 0, 0, false},
    {"DB_NAME", CF_STR, OFF(db_name), NULL, 0, 0, false},
    {"DB_USER", CF_STR, OFF(db_user), NULL, 0, 0, false},
    {"DB_PASSWORD", CF_STR, OFF(db_password), NULL, 0, 0, false},
    {"DB_POOL_SIZE", CF_INT, OFF(db_pool_size), "4", 1, 64, false},
    {"DB_PIPELINE_DEPTH", CF_INT, OFF(db_pipeline_depth), "64", 1, 1024, false},
    {"DB_PREPARED_STATEMENTS", CF_INT, OFF(db_prepared_statements), "64", 0, 4096, false},
    {"DB_MAX_QUEUE", CF_INT, OFF(db_max_queue), "8192", 1, 1000000, false},
    {"DB_CONNECT_TIMEOUT_MS", CF_INT, OFF(db_connect_timeout_ms), "5000", 100, 600000, false},
    {"DB_STALL_TIMEOUT_MS", CF_INT, OFF(db_stall_timeout_ms), "15000", 100, 3600000, false},
    {"DB_STATEMENT_TIMEOUT_MS", CF_INT, OFF(db_statement_timeout_ms), "5000", 1, 3600000, false},
    {"DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", CF_INT, OFF(db_idle_in_transaction_timeout_ms), "10000", 1, 3600000, false},
    {"REDIS_URL", CF_STR, OFF(redis_url), "redis://localhost:6379/0", 0, 0, false},
    {"REDIS_CHANNEL_PREFIX", CF_STR, OFF(redis_channel_prefix), "verifywise:integrations:", 0, 0, false},
    {"REDIS_SENTINELS", CF_STR, OFF(redis_sentinels), "", 0, 0, false},
    {"REDIS_SENTINEL_MASTER", CF_STR, OFF(redis_sentinel_master), "mymaster", 0, 0, false},
    {"RESOLVER_HOSTS_FILE", CF_STR, OFF(resolver_hosts_file), "/etc/hosts", 0, 0, false},
    {"JWT_SECRET", CF_STR, OFF(jwt_secret), NULL, 0, 0, true},
    {"ENCRYPTION_KEY", CF_STR, OFF(encryption_key), NULL, 0, 0, true},
    {"ENCRYPTION_PASSWORD", CF_STR, OFF(encryption_password), NULL, 0, 0, true},
    {"ENCRYPTION_ALGORITHM", CF_STR, OFF(encryption_algorithm), NULL, 0, 0, true},
    {"SLACK_API_URL", CF_STR, OFF(slack_api_url), "https://slack.com/api/oauth.v2.access", 0, 0, false},
    {"SLACK_API_BASE", CF_STR, OFF(slack_api_base), "https://slack.com/api", 0, 0, false},
    {"SLACK_CLIENT_ID", CF_STR, OFF(slack_client_id), "", 0, 0, false},
    {"SLACK_CLIENT_SECRET", CF_STR, OFF(slack_client_secret), "", 0, 0, false},
    {"FRONTEND_URL", CF_STR, OFF(frontend_url), "http://localhost:5173", 0, 0, false},
    {"GITHUB_API_URL", CF_STR, OFF(github_api_url), "https://api.github.com", 0, 0, false},
    {"ANTHROPIC_API_URL", CF_STR, OFF(anthropic_api_url), "https://api.anthropic.com/v1", 0, 0, false},
    {"OPENAI_API_URL", CF_STR, OFF(openai_api_url), "https://api.openai.com/v1", 0, 0, false},
    {"OPENROUTER_API_URL", CF_STR, OFF(openrouter_api_url), "https://openrouter.ai/api/v1", 0, 0, false},
    {"MLFLOW_SYNC_SCHEDULE", CF_STR, OFF(mlflow_sync_schedule), "0 * * * *", 0, 0, false},
    {"MLFLOW_MODELS_MAX_AGE_S", CF_INT, OFF(mlflow_models_max_age_s), "60", 0, 86400, false},
    {"OUTBOUND_DENY_CIDRS", CF_STR, OFF(outbound_deny_cidrs), OUTBOUND_DENY_DEFAULT, 0, 0, false},
    {"OUTBOUND_MAX_CONCURRENT", CF_INT, OFF(outbound_max_concurrent), "512", 1, 100000, false},
    {"OUTBOUND_MAX_PER_ORG", CF_INT, OFF(outbound_max_per_org), "64", 1, 100000, false},
    {"MLFLOW_PAGE_MAX_BYTES", CF_SIZE, OFF(mlflow_page_max_bytes), "4194304", 65536, 64LL * 1024 * 1024, false},
    {"MLFLOW_PAGE_MAX_VALUES", CF_SIZE, OFF(mlflow_page_max_values), "20000", 1000, 10000000, false},
    {"MLFLOW_PAGE_MAX_DEPTH", CF_INT, OFF(mlflow_page_max_depth), "32", 8, 256, false},
    {"ALLOWED_ORIGINS", CF_STR, OFF(allowed_origins), NULL, 0, 0, false},
    {"AUTH_CACHE_MS", CF_INT, OFF(auth_cache_ms), "1000", 0, 60000, false},
    {"CACHE_BYTES", CF_SIZE, OFF(cache_bytes), "8388608", 0, 1024LL * 1024 * 1024, false},
    {"TRUST_PROXY", CF_STR, OFF(trust_proxy), "false", 0, 0, false},
    {"MAX_BODY_BYTES", CF_SIZE, OFF(max_body_bytes), "1048576", 1, 64LL * 1024 * 1024, false},
    {"MAX_BUFFERED_BODY_BYTES", CF_SIZE, OFF(max_buffered_body_bytes), "33554432", 1,
     4LL * 1024 * 1024 * 1024, false},
    {"HTTP_MAX_HEADER_BYTES", CF_SIZE, OFF(http_max_header_bytes), "32768", 1024, 1024 * 1024, false},
    {"HTTP_MAX_HEADERS", CF_INT, OFF(http_max_headers), "100", 1, 10000, false},
    {"MAX_BUFFERED_HEADER_BYTES", CF_SIZE, OFF(max_buffered_header_bytes), "16777216", 1024,
     4LL * 1024 * 1024 * 1024, false},
    {"HTTP_IDLE_TIMEOUT_S", CF_INT, OFF(http_idle_timeout_s), "60", 1, 3600, false},
    {"HTTP_MAX_CONNECTIONS", CF_INT, OFF(http_max_connections), "10000", 1, 1000000, false},
    {"HTTP_REQUEST_TIMEOUT_S", CF_INT, OFF(http_request_timeout_s), "30", 1, 3600, false},
    {"SHUTDOWN_DRAIN_MS", CF_INT, OFF(shutdown_drain_ms), "10000", 0, 600000, false},
    {"EVENTS_MAX_QUEUE", CF_INT, OFF(events_max_queue), "10000", 1, 10000000, false},
    {"AUTH_CACHE_ENTRIES", CF_INT, OFF(auth_cache_entries), "4096", 1, 1048576, false},
    {"TOKEN_CACHE_ENTRIES", CF_INT, OFF(token_cache_entries), "1024", 0, 65536, false},
    {"LOG_LEVEL", CF_LEVEL, OFF(log_level), "info", 0, 0, false},
    {"LOG_FORMAT", CF_FORMAT, OFF(log_format), "json", 0, 0, false},
};
#undef OFF
#define NKEYS (sizeof keys / sizeof keys[0])

const char *const *config_variable_names(void)
{
    static const char *names[NKEYS + 1];
    for (size_t i = 0; i < NKEYS; i++)
        names[i] = keys[i].name;
    names[NKEYS] = NULL;
    return names;
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    return -1;
}

static int set_key(struct config *c, const struct cf_key *k, const char *v, char *err, size_t errlen)
{
    char *base = (char *)c + k->off;
    long long n;
    switch (k->type) {
    case CF_STR: {
        char *dup = strdup(v);
        if (!dup) {
            snprintf(err, errlen, "out of memory reading %s", k->name);
            return -1;
        }
        *(char **)base = dup;
        return 0;
    }
    case CF_INT:
    case CF_SIZE:
        if (parse_ll(v, &n) < 0 || n < k->min || n > k->max) {
            snprintf(err, errlen, "%s must be an integer from %lld to %lld", k->name, k->min, k->max);
            return -1;
        }
        if (k->type == CF_INT)
            *(int *)base = (int)n;
        else
            *(size_t *)base = (size_t)n;
        return 0;
    case CF_BOOL:
        if (parse_bool(v, (bool *)base) < 0) {
            snprintf(err, errlen, "%s must be true or false", k->name);
            return -1;
        }
        return 0;
    case CF_LEVEL: {
        static const char *lv[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (strcasecmp(v, lv[i]) == 0)
                return *(enum log_level *)base = (enum log_level)i, 0;
        if (strcasecmp(v, "warning") == 0)
            return *(enum log_level *)base = LOG_WARN, 0;
        snprintf(err, errlen, "%s must be one of debug, info, warn, error", k->name);
        return -1;
    }
    case CF_FORMAT:
        if (strcasecmp(v, "json") == 0)
            return *(enum log_format *)base = LOG_FORMAT_JSON, 0;
        if (strcasecmp(v, "text") == 0)
            return *(enum log_format *)base = LOG_FORMAT_TEXT, 0;
        snprintf(err, errlen, "%s must be json or text", k->name);
        return -1;
    }
    return -1;
}

static bool has_scheme(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

int config_load(struct config *c, config_getenv_fn get, void *arg, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cf_key *k = &keys[i];
        const char *v = get(k->name, arg);
        if (!v || (k->required && !*v)) {
            if (k->required) {
                snprintf(err, errlen, "%s is not set: refusing to start without it", k->name);
                goto fail;
            }
            v = k->def;
        }
        if (!v)
            continue;
        if (set_key(c, k, v, err, errlen) < 0)
            goto fail;
    }
    if (strcasecmp(c->encryption_algorithm, "aes-256-cbc") != 0) {
        snprintf(err, errlen, "ENCRYPTION_ALGORITHM must be aes-256-cbc");
        goto fail;
    }
    if (c->database_url && *c->database_url &&
        strncmp(c->database_url, "postgres://", 11) != 0 &&
        strncmp(c->database_url, "postgresql://", 13) != 0) {
        snprintf(err, errlen, "DATABASE_URL must start with postgres:// or postgresql://");
        goto fail;
    }
    const struct {
        const char *name;
        const char *v;
    } urls[] = {
        {"SLACK_API_URL", c->slack_api_url},     {"SLACK_API_BASE", c->slack_api_base},
        {"FRONTEND_URL", c->frontend_url},       {"GITHUB_API_URL", c->github_api_url},
        {"ANTHROPIC_API_URL", c->anthropic_api_url}, {"OPENAI_API_URL", c->openai_api_url},
        {"OPENROUTER_API_URL", c->openrouter_api_url},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++)
        if (!has_scheme(urls[i].v)) {
            snprintf(err, errlen, "%s must be an http:// or https:// URL", urls[i].name);
            goto fail;
        }
    if (!*c->resolver_hosts_file) {
        snprintf(err, errlen, "RESOLVER_HOSTS_FILE must not be empty");
        goto fail;
    }
    if (*c->redis_sentinels && !*c->redis_sentinel_master) {
        snprintf(err, errlen, "REDIS_SENTINEL_MASTER must not be empty when REDIS_SENTINELS is set");
        goto fail;
    }
    if (c->max_buffered_body_bytes < c->max_body_bytes) {
        snprintf(err, errlen, "MAX_BUFFERED_BODY_BYTES must be at least MAX_BODY_BYTES");
        goto fail;
    }
    if (c->max_buffered_header_bytes < c->http_max_header_bytes) {
        snprintf(err, errlen, "MAX_BUFFERED_HEADER_BYTES must be at least HTTP_MAX_HEADER_BYTES");
        goto fail;
    }
    if (proxy_trust_parse(&c->proxy_trust, c->trust_proxy, err, errlen) < 0)
        goto fail;
    if (!*c->bind_address) {
        snprintf(err, errlen, "BIND_ADDRESS must not be empty");
        goto fail;
    }
    return 0;
fail:
    config_free(c);
    return -1;
}

/* Every problem config_load would stop at, not only the first: each variable on its own
 * (missing required ones, values out of range), then config_load's cross checks. */
int config_check(config_getenv_fn get, void *arg, config_report_fn report, void *rarg)
{
    int n = 0;
    char err[256];
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cf_key *k = &keys[i];
        const char *v = get(k->name, arg);
        if (!v || (k->required && !*v)) {
            if (k->required) {
                snprintf(err, sizeof err, "%s is not set (required)", k->name);
                report(err, rarg);
                n++;
            }
            continue;
        }
        struct config scratch;
        memset(&scratch, 0, sizeof scratch);
        if (set_key(&scratch, k, v, err, sizeof err) < 0) {
            report(err, rarg);
            n++;
        }
        config_free(&scratch);
    }
    if (n == 0) {
        struct config c;
        if (config_load(&c, get, arg, err, sizeof err) < 0) {
            report(err, rarg);
            n++;
        } else {
            config_free(&c);
        }
    }
    return n;
}

void config_free(struct config *c)
{
    proxy_trust_free(&c->proxy_trust);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == CF_STR) {
            char **p = (char **)((char *)c + keys[i].off);
            free(*p);
            *p = NULL;
        }
}
