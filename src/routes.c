/* routes: owns the route table: method, path pattern, handler, the pipeline flags
 * (authentication, admin role, JSON body, read cache) and the name used in logs and
 * metrics. Nothing else: the pipeline that applies the flags is app.c. */
#include "routes.h"

#include "integrations/github.h"
#include "integrations/llm_keys.h"
#include "integrations/mlflow.h"
#include "integrations/slack.h"
#include "ops/health.h"
#include "ops/metrics.h"
#include "ops/openapi.h"

#define AUTH ROUTE_AUTH
#define ADMIN ROUTE_ADMIN
#define BODY ROUTE_JSON_BODY
#define CACHED ROUTE_CACHED
#define PER_USER ROUTE_CACHE_USER

static const struct route routes[] = {
    {HTTP_GET, "/healthz", health_live, ROUTE_PUBLIC, "healthz"},
    {HTTP_GET, "/readyz", health_ready, ROUTE_PUBLIC, "readyz"},
    {HTTP_GET, "/metrics", metrics_handler, ROUTE_PUBLIC, "metrics"},
    {HTTP_GET, "/api/integrations/openapi.json", openapi_handler, ROUTE_PUBLIC, "openapi"},
    {HTTP_GET, "/api/llm-keys", llm_keys_list, AUTH | CACHED, "llm_keys_list"},
    {HTTP_POST, "/api/llm-keys", llm_keys_create, AUTH | BODY, "llm_keys_create"},
    {HTTP_GET, "/api/llm-keys/status", llm_keys_status, AUTH | CACHED, "llm_keys_status"},
    {HTTP_GET, "/api/llm-keys/:name", llm_keys_by_name, AUTH | CACHED, "llm_keys_by_name"},
    {HTTP_PATCH, "/api/llm-keys/:id", llm_keys_update, AUTH | BODY, "llm_keys_update"},
    {HTTP_DELETE, "/api/llm-keys/:id", llm_keys_delete, AUTH, "llm_keys_delete"},
    {HTTP_POST, "/api/llm-keys/:id/verify", llm_keys_verify, AUTH, "llm_keys_verify"},
    {HTTP_GET, "/api/integrations/github/token", github_token_get, AUTH | ADMIN | CACHED, "github_token_get"},
    {HTTP_POST, "/api/integrations/github/token", github_token_save, AUTH | ADMIN | BODY, "github_token_save"},
    {HTTP_DELETE, "/api/integrations/github/token", github_token_delete, AUTH | ADMIN, "github_token_delete"},
    {HTTP_POST, "/api/integrations/github/token/test", github_token_test, AUTH | ADMIN | BODY, "github_token_test"},
    /* Slack: both spellings; creation parses its own body (every request is counted) */
#define SLACK_ROUTES(base, tag)                                                                    \
    {HTTP_GET, base, slack_webhooks_list, AUTH | CACHED | PER_USER, "slack_webhooks_list" tag},                       \
    {HTTP_POST, base, slack_webhooks_create, AUTH, "slack_webhooks_create" tag},                  \
    {HTTP_GET, base "/:id", slack_webhooks_get, AUTH, "slack_webhooks_get" tag},                  \
    {HTTP_PATCH, base "/:id", slack_webhooks_update, AUTH | BODY, "slack_webhooks_update" tag},   \
    {HTTP_DELETE, base "/:id", slack_webhooks_delete, AUTH, "slack_webhooks_delete" tag},         \
    {HTTP_POST, base "/:id/send", slack_webhooks_send, AUTH | BODY, "slack_webhooks_send" tag}
    SLACK_ROUTES("/api/slackWebhooks", ""),
    SLACK_ROUTES("/api/slack-webhooks", "_dash"),
    {HTTP_POST, "/api/notifications", slack_notifications_post, AUTH | BODY, "notifications_post"},
    {HTTP_POST, "/api/integrations/mlflow/test", mlflow_test, AUTH | BODY, "mlflow_test"},
    {HTTP_GET, "/api/integrations/mlflow/config", mlflow_config_get, AUTH | CACHED, "mlflow_config"},
    {HTTP_POST, "/api/integrations/mlflow/configure", mlflow_configure, AUTH | BODY, "mlflow_configure"},
    {HTTP_GET, "/api/integrations/mlflow/models", mlflow_models, AUTH, "mlflow_models"},
    {HTTP_GET, "/api/integrations/mlflow/sync-status", mlflow_sync_status, AUTH | CACHED, "mlflow_sync_status"},
    {HTTP_GET, "/api/integrations/mlflow/health", mlflow_health, AUTH, "mlflow_health"},
    {HTTP_POST, "/api/integrations/mlflow/sync", mlflow_sync_now, AUTH, "mlflow_sync"},
    {HTTP_GET, "/api/integrations/mlflow/sync-history", mlflow_sync_history, AUTH, "mlflow_sync_history"},
};

const struct route *app_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
