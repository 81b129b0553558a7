/* integrations/slack_store: owns the Slack integration's SQL (installation, token
 * rotation and on-demand refresh, send, deliveries and routing), the column enums of
 * their SELECT lists (include/integrations/slack_store.h) and the decoding of their
 * rows, including the decryption of the stored secrets (scheme A). */
#include "integrations/slack_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secrets.h"


/* Does the webhook (column w.id) have a refresh token, i.e. a rotating bot token? */
#define HAS_REFRESH(w)                                                                                  \
    "EXISTS (SELECT 1 FROM public.integrationsd_slack_webhooks x WHERE x.webhook_id = " w               \
    " AND x.refresh_token IS NOT NULL)"

const char SLACK_SQL_SEND_LOAD[] =
    "SELECT " SLACK_WEBHOOK_COLS ", access_token, access_token_iv, url, url_iv, " HAS_REFRESH("slack_webhooks.id")
    " FROM public.slack_webhooks WHERE id = $1::int AND " SLACK_SQL_ORG " = $2::int";

const char SLACK_SQL_DLV_CLAIM[] =
    "WITH d AS (UPDATE public.slack_deliveries SET attempts = attempts + 1, updated_at = now(), "
    "lease_until = now() + interval '" SLACK_DELIVERY_LEASE "' "
    "WHERE id = $1::bigint AND status = 'pending' AND owner = $2 "
    "RETURNING webhook_id, title, message, attempts, routing_type, idempotency_key, organization_id, "
    "actor_user_id) "
    "SELECT d.title, d.message, d.attempts, d.routing_type, d.idempotency_key, d.organization_id, "
    "d.actor_user_id, w.channel_id, w.access_token, w.access_token_iv, w.url, w.url_iv, w.is_active, "
    HAS_REFRESH("w.id") " FROM d JOIN public.slack_webhooks w ON w.id = d.webhook_id";

const char SLACK_SQL_DLV_RETRY[] =
    "UPDATE public.slack_deliveries SET last_error = $2, updated_at = now(), "
    "next_attempt_at = now() + make_interval(secs => $3::int) WHERE id = $1::bigint";

const char SLACK_SQL_DLV_RECORD[] =
    "UPDATE public.slack_deliveries SET status = $2, last_error = $3, slack_ts = $4, owner = NULL, "
    "updated_at = now() WHERE id = $1::bigint";

const char SLACK_SQL_DLV_RELEASE[] =
    "UPDATE public.slack_deliveries SET owner = NULL, lease_until = now() "
    "WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint) AND status = 'pending'";

const char SLACK_SQL_ROUTE[] =
    "WITH w AS (SELECT id FROM public.slack_webhooks WHERE is_active AND " SLACK_SQL_ORG " = $1::int "
    "AND routing_type @> ARRAY[$2::text] AND ($3::int IS NULL OR user_id = $3::int)), "
    "ins AS (INSERT INTO public.slack_deliveries (webhook_id, organization_id, idempotency_key, routing_type, "
    "title, message, actor_user_id, owner, lease_until) "
    "SELECT id, $1::int, $4, $2, $5, $6, $7::int, $8, now() + interval '" SLACK_DELIVERY_LEASE "' FROM w ORDER BY id "
    "ON CONFLICT (webhook_id, idempotency_key) DO NOTHING RETURNING id, webhook_id) "
    "SELECT ins.id, ins.webhook_id, m.n FROM (SELECT count(*) AS n FROM w) m LEFT JOIN ins ON true";

const char SLACK_SQL_DLV_RENEW[] =
    "UPDATE public.slack_deliveries SET lease_until = now() + interval '" SLACK_DELIVERY_LEASE "' "
    "WHERE owner = $1 AND status = 'pending'";

const char SLACK_SQL_DLV_SWEEP[] =
    "UPDATE public.slack_deliveries d SET owner = $1, lease_until = now() + interval '" SLACK_DELIVERY_LEASE "' "
    "WHERE d.id IN (SELECT id FROM public.slack_deliveries WHERE status = 'pending' "
    "AND lease_until < now() AND owner IS DISTINCT FROM $1 ORDER BY id LIMIT $2::int "
    "FOR UPDATE SKIP LOCKED) "
    "RETURNING d.id, d.webhook_id, "
    "GREATEST(0, ceil(extract(epoch FROM (d.next_attempt_at - now())) * 1000))::bigint";

const char SLACK_SQL_OAUTH_STORE[] =
    "WITH w AS (INSERT INTO public.slack_webhooks (access_token, access_token_iv, scope, user_id, "
    "team_name, team_id, channel, channel_id, configuration_url, url, url_iv, is_active) VALUES ($1, $2, "
    "$3, $4::int, $6, $7, $8, $9, $10, $11, $12, true) RETURNING *), "
    "x AS (INSERT INTO public.integrationsd_slack_webhooks (webhook_id, organization_id, refresh_token, "
    "refresh_token_iv, token_expires_at) SELECT id, $5::int, $13::text, $14::text, "
    "now() + make_interval(secs => $15::int) FROM w) "
    "SELECT " SLACK_WEBHOOK_COLS_ORG("$5::int") " FROM w";

/* The refresh lease: one refresh of a webhook's token at a time, across instances and
 * between the rotation tick and on-demand refreshes. */
#define REFRESH_LEASE "refresh_lease_until = now() + interval '2 minutes'"
#define REFRESH_LEASE_FREE "(x.refresh_lease_until IS NULL OR x.refresh_lease_until < now())"

const char SLACK_SQL_REFRESH_CLAIM[] =
    "UPDATE public.integrationsd_slack_webhooks SET " REFRESH_LEASE " "
    "WHERE webhook_id = (SELECT x.webhook_id FROM public.integrationsd_slack_webhooks x "
    "JOIN public.slack_webhooks w ON w.id = x.webhook_id WHERE w.is_active AND x.refresh_token IS NOT NULL "
    "AND x.token_expires_at < now() + make_interval(secs => $1::int) "
    "AND " REFRESH_LEASE_FREE " "
    "ORDER BY x.token_expires_at LIMIT 1 FOR UPDATE OF x SKIP LOCKED) "
    "RETURNING webhook_id, refresh_token, refresh_token_iv";

const char SLACK_SQL_REFRESH_LEASE[] =
    "UPDATE public.integrationsd_slack_webhooks x SET " REFRESH_LEASE " "
    "WHERE x.webhook_id = $1::int AND x.refresh_token IS NOT NULL AND " REFRESH_LEASE_FREE " "
    "AND (SELECT w.access_token FROM public.slack_webhooks w WHERE w.id = $1::int) = $2 "
    "RETURNING x.webhook_id, x.refresh_token, x.refresh_token_iv";

const char SLACK_SQL_TOKEN_READ[] =
    "SELECT access_token, access_token_iv FROM public.slack_webhooks WHERE id = $1::int AND is_active";

const char SLACK_SQL_REFRESH_SAVE[] =
    "WITH x AS (UPDATE public.integrationsd_slack_webhooks SET "
    "refresh_token = COALESCE($4, refresh_token), refresh_token_iv = COALESCE($5, refresh_token_iv), "
    "token_expires_at = CASE WHEN $6::int IS NULL THEN NULL "
    "ELSE now() + make_interval(secs => $6::int) END, "
    "refresh_lease_until = NULL WHERE webhook_id = $1::int) "
    "UPDATE public.slack_webhooks SET access_token = $2, access_token_iv = $3, "
    "updated_at = now() WHERE id = $1::int RETURNING " SLACK_WEBHOOK_COLS;

/* ---- rows --------------------------------------------------------------------------- */

void slack_post_target_clear(struct slack_post_target *t)
{
    secrets_free_plain(t->token, t->token_len);
    secrets_free_plain(t->url, t->url_len);
    free(t->token_ct);
    t->token_ct = NULL;
    t->token = t->url = NULL;
    t->token_len = t->url_len = 0;
}

/* Decrypt a (ciphertext, iv) column pair; NULL when absent or not decryptable. */
static void decrypt_pair(const struct secrets *s, const PGresult *pr, int col, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (PQgetisnull(pr, 0, col) || PQgetisnull(pr, 0, col + 1) ||
        secrets_a_decrypt(s, PQgetvalue(pr, 0, col), PQgetvalue(pr, 0, col + 1), out, len) < 0) {
        *out = NULL;
        *len = 0;
    }
}

static bool is_true(const PGresult *pr, int col)
{
    return PQgetvalue(pr, 0, col)[0] == 't';
}

bool slack_store_send_active(const PGresult *pr)
{
    return is_true(pr, SLACK_WH_COL_IS_ACTIVE);
}

/* A post target from the columns of either load (send or delivery). */
static void fill_target(const struct secrets *s, const PGresult *pr, int col_channel, int col_token,
                        int col_url, int col_refresh, struct slack_post_target *t)
{
    snprintf(t->channel_id, sizeof t->channel_id, "%s", PQgetvalue(pr, 0, col_channel));
    decrypt_pair(s, pr, col_token, &t->token, &t->token_len);
    t->token_ct = t->token ? strdup(PQgetvalue(pr, 0, col_token)) : NULL;
    decrypt_pair(s, pr, col_url, &t->url, &t->url_len);
    t->has_refresh = is_true(pr, col_refresh);
}

void slack_store_send_target(const struct secrets *s, const PGresult *pr, struct slack_post_target *t)
{
    fill_target(s, pr, SLACK_WH_COL_CHANNEL_ID, SLACK_SEND_COL_TOKEN, SLACK_SEND_COL_URL,
                SLACK_SEND_COL_HAS_REFRESH, t);
}

int slack_store_dlv_row(const PGresult *pr, struct slack_dlv_row *d)
{
    memset(d, 0, sizeof *d);
    d->title = strdup(PQgetvalue(pr, 0, SLACK_DLV_COL_TITLE));
    d->message = strdup(PQgetvalue(pr, 0, SLACK_DLV_COL_MESSAGE));
    if (!d->title || !d->message) {
        free(d->title);
        free(d->message);
        d->title = d->message = NULL;
        return -1;
    }
    d->attempts = atoi(PQgetvalue(pr, 0, SLACK_DLV_COL_ATTEMPTS));
    snprintf(d->routing_type, sizeof d->routing_type, "%s", PQgetvalue(pr, 0, SLACK_DLV_COL_ROUTING_TYPE));
    snprintf(d->idem, sizeof d->idem, "%s", PQgetvalue(pr, 0, SLACK_DLV_COL_IDEM));
    d->org = strtoll(PQgetvalue(pr, 0, SLACK_DLV_COL_ORG), NULL, 10);
    d->actor = PQgetisnull(pr, 0, SLACK_DLV_COL_ACTOR) ? 0 : strtoll(PQgetvalue(pr, 0, SLACK_DLV_COL_ACTOR), NULL, 10);
    d->active = is_true(pr, SLACK_DLV_COL_IS_ACTIVE);
    return 0;
}

void slack_store_dlv_target(const struct secrets *s, const PGresult *pr, struct slack_post_target *t)
{
    fill_target(s, pr, SLACK_DLV_COL_CHANNEL_ID, SLACK_DLV_COL_TOKEN, SLACK_DLV_COL_URL,
                SLACK_DLV_COL_HAS_REFRESH, t);
    t->org = strtoll(PQgetvalue(pr, 0, SLACK_DLV_COL_ORG), NULL, 10);
}

bool slack_store_queue_row(const PGresult *pr, int i, bool with_delay, long long *id, long long *webhook_id,
                           long long *delay_ms)
{
    if (PQgetisnull(pr, i, SLACK_QUEUE_COL_ID))
        return false;
    *id = strtoll(PQgetvalue(pr, i, SLACK_QUEUE_COL_ID), NULL, 10);
    *webhook_id = strtoll(PQgetvalue(pr, i, SLACK_QUEUE_COL_WEBHOOK_ID), NULL, 10);
    *delay_ms = with_delay ? strtoll(PQgetvalue(pr, i, SLACK_QUEUE_COL_SWEEP_DELAY_MS), NULL, 10) : 0;
    return true;
}

long long slack_store_route_matched(const PGresult *pr)
{
    return PQntuples(pr) ? strtoll(PQgetvalue(pr, 0, SLACK_QUEUE_COL_ROUTE_MATCHED), NULL, 10) : 0;
}

int slack_store_refresh_row(const struct secrets *s, const PGresult *pr, char id[24], char **refresh,
                            size_t *refresh_len)
{
    snprintf(id, 24, "%s", PQgetvalue(pr, 0, SLACK_REFRESH_COL_ID));
    decrypt_pair(s, pr, SLACK_REFRESH_COL_TOKEN, refresh, refresh_len);
    return *refresh ? 0 : -1;
}

int slack_store_token_row(const struct secrets *s, const PGresult *pr, struct slack_post_target *t)
{
    if (PQntuples(pr) != 1 || PQgetisnull(pr, 0, SLACK_TOKEN_COL_TOKEN))
        return 0;
    const char *ct = PQgetvalue(pr, 0, SLACK_TOKEN_COL_TOKEN);
    if (t->token_ct && strcmp(ct, t->token_ct) == 0)
        return 0;
    char *tok, *copy = strdup(ct);
    size_t len;
    decrypt_pair(s, pr, SLACK_TOKEN_COL_TOKEN, &tok, &len);
    if (!copy || !tok) {
        free(copy);
        secrets_free_plain(tok, len);
        return -1;
    }
    secrets_free_plain(t->token, t->token_len);
    free(t->token_ct);
    t->token = tok;
    t->token_len = len;
    t->token_ct = copy;
    return 1;
}

long long slack_store_webhook_org(const PGresult *pr)
{
    if (PQntuples(pr) != 1 || PQnfields(pr) <= SLACK_WH_COL_ORG || PQgetisnull(pr, 0, SLACK_WH_COL_ORG))
        return -1;
    return strtoll(PQgetvalue(pr, 0, SLACK_WH_COL_ORG), NULL, 10);
}
