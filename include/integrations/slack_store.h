/* integrations/slack_store: the SQL of the Slack integration's installation, token
 * rotation, send, post and deliveries (all on public.* tables, so the statements are
 * constants), the column index of every SELECT list, and the decoding of their rows.
 * No other Slack file reads a column by number. (The webhook CRUD statements and
 * SLACK_SQL_DEACTIVATE live with slack_webhooks.) */
#ifndef IDX_INTEGRATIONS_SLACK_STORE_H
#define IDX_INTEGRATIONS_SLACK_STORE_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "integrations/slack_webhooks.h"
#include "util/compiler.h"

struct secrets;

#define SLACK_DELIVERY_LEASE "15 seconds"
#define SLACK_IDEM_MAX 255

/* The webhook columns come first in several SELECTs: enum slack_webhook_col (slack_webhooks.h). */

/* ---- statements ------------------------------------------------------------------ */

/* $1 id, $2 org: the webhook columns, then enum slack_send_col. */
extern const char SLACK_SQL_SEND_LOAD[];
enum slack_send_col {
    SLACK_SEND_COL_TOKEN = SLACK_WEBHOOK_NCOLS,
    SLACK_SEND_COL_TOKEN_IV,
    SLACK_SEND_COL_URL,
    SLACK_SEND_COL_URL_IV,
    SLACK_SEND_COL_HAS_REFRESH,
};

/* $1 delivery id, $2 owner: claim one attempt (attempts + 1, lease) and read it with
 * its webhook; columns enum slack_dlv_col. */
extern const char SLACK_SQL_DLV_CLAIM[];
enum slack_dlv_col {
    SLACK_DLV_COL_TITLE,
    SLACK_DLV_COL_MESSAGE,
    SLACK_DLV_COL_ATTEMPTS,
    SLACK_DLV_COL_ROUTING_TYPE,
    SLACK_DLV_COL_IDEM,
    SLACK_DLV_COL_ORG,
    SLACK_DLV_COL_ACTOR,
    SLACK_DLV_COL_CHANNEL_ID,
    SLACK_DLV_COL_TOKEN,
    SLACK_DLV_COL_TOKEN_IV,
    SLACK_DLV_COL_URL,
    SLACK_DLV_COL_URL_IV,
    SLACK_DLV_COL_IS_ACTIVE,
    SLACK_DLV_COL_HAS_REFRESH,
};
/* $1 id, $2 last error, $3 seconds until the next attempt. */
extern const char SLACK_SQL_DLV_RETRY[];
/* $1 id, $2 status, $3 last error, $4 slack ts. */
extern const char SLACK_SQL_DLV_RECORD[];
/* $1 JSON array of ids: back to the table (owner NULL). */
extern const char SLACK_SQL_DLV_RELEASE[];
/* $1 org, $2 routing type, $3 user or NULL, $4 idempotency key, $5 title, $6 message,
 * $7 actor or NULL, $8 owner. Rows: enum slack_queue_col (id NULL when nothing new). */
extern const char SLACK_SQL_ROUTE[];
/* $1 owner: renew this process's leases. */
extern const char SLACK_SQL_DLV_RENEW[];
/* $1 owner, $2 room: claim pending rows whose lease ran out; rows enum slack_queue_col. */
extern const char SLACK_SQL_DLV_SWEEP[];
enum slack_queue_col {
    SLACK_QUEUE_COL_ID,
    SLACK_QUEUE_COL_WEBHOOK_ID,
    SLACK_QUEUE_COL_ROUTE_MATCHED = 2,   /* SLACK_SQL_ROUTE */
    SLACK_QUEUE_COL_SWEEP_DELAY_MS = 2,  /* SLACK_SQL_DLV_SWEEP */
};

/* Installation: $1 token, $2 token iv, $3 scope, $4 user, $5 org, $6 team name,
 * $7 team id, $8 channel, $9 channel id, $10 configuration url, $11 url, $12 url iv,
 * $13 refresh token, $14 its iv, $15 expires_in; returns the webhook columns. */
extern const char SLACK_SQL_OAUTH_STORE[];
/* Rotation: $1 lead seconds; leases the webhook whose token expires first within it.
 * Columns enum slack_refresh_col. */
extern const char SLACK_SQL_REFRESH_CLAIM[];
/* On demand: $1 webhook id, $2 the bot token (ciphertext) Slack called expired; the
 * same lease on one webhook, when free and its token is still that one. Columns enum
 * slack_refresh_col. */
extern const char SLACK_SQL_REFRESH_LEASE[];
enum slack_refresh_col { SLACK_REFRESH_COL_ID, SLACK_REFRESH_COL_TOKEN, SLACK_REFRESH_COL_TOKEN_IV };
/* $1 webhook id: its current bot token (enum slack_token_col), while active. */
extern const char SLACK_SQL_TOKEN_READ[];
enum slack_token_col { SLACK_TOKEN_COL_TOKEN, SLACK_TOKEN_COL_TOKEN_IV };
/* $1 id, $2 token, $3 iv, $4 refresh token or NULL, $5 its iv, $6 expires_in or NULL;
 * ends the lease; returns the webhook columns. */
extern const char SLACK_SQL_REFRESH_SAVE[];

/* ---- rows ------------------------------------------------------------------------- */

/* What a post needs of a webhook row. token and url are decrypted secrets (NULL when
 * absent or not decryptable); slack_post_target_clear wipes them. title and message
 * are the driver's (borrowed until the post ends). */
struct slack_post_target {
    const char *title, *message;
    char channel_id[256];
    char *token, *url;
    size_t token_len, url_len;
    char *token_ct;               /* the token as stored (ciphertext), to tell a newer one */
    bool has_refresh;             /* a refresh token is stored: the bot token rotates */
    long long org;                /* counted against OUTBOUND_MAX_PER_ORG; 0 = none */
};
void slack_post_target_clear(struct slack_post_target *t);

/* The send row (SLACK_SQL_SEND_LOAD, row 0). */
bool slack_store_send_active(const PGresult *pr);
void slack_store_send_target(const struct secrets *s, const PGresult *pr, struct slack_post_target *t);

/* The claimed delivery (SLACK_SQL_DLV_CLAIM, row 0). title and message are copies the
 * caller frees; returns -1 when out of memory (nothing allocated). */
struct slack_dlv_row {
    char *title, *message;
    int attempts;
    char routing_type[64];
    char idem[SLACK_IDEM_MAX + 1];
    long long org, actor;
    bool active;
};
int slack_store_dlv_row(const PGresult *pr, struct slack_dlv_row *d) MUSTCHECK;
void slack_store_dlv_target(const struct secrets *s, const PGresult *pr, struct slack_post_target *t);

/* Row i of a routing or sweep result: false when its id is NULL (nothing new). */
bool slack_store_queue_row(const PGresult *pr, int i, bool with_delay, long long *id, long long *webhook_id,
                           long long *delay_ms);
/* The number of matched webhooks of a routing result ("0" when no row). */
long long slack_store_route_matched(const PGresult *pr);

/* A leased refresh (row 0): the webhook id into id, the decrypted refresh token.
 * Returns -1 when it cannot be decrypted (*refresh NULL). */
int slack_store_refresh_row(const struct secrets *s, const PGresult *pr, char id[24], char **refresh,
                            size_t *refresh_len) MUSTCHECK;

/* SLACK_SQL_TOKEN_READ's row: 1 when it holds another token than t's (t then has it),
 * 0 when the same or none, -1 out of memory or not decryptable. */
int slack_store_token_row(const struct secrets *s, const PGresult *pr, struct slack_post_target *t) MUSTCHECK;

/* The organization of a row of webhook columns (row 0), or -1 when NULL/absent. */
long long slack_store_webhook_org(const PGresult *pr);

#endif
