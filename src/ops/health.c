/* ops/health: owns /healthz (the process answers) and /readyz (the database pool
 * has a live connection and the schema is in place; Redis and key states reported). */
#include "ops/health.h"

#include "app.h"
#include "db/pool.h"
#include "events/events.h"
#include "http/reply.h"

void health_live(struct http_req *r)
{
    reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void health_ready(struct http_req *r)
{
    struct app *a = r->app;
    int live = db_pool_live(a->db);
    bool ready = live > 0 && a->schema_ready;
    /* Redis carries events only: its state is reported, never a reason to be unready.
     * Nor is the ENCRYPTION_PASSWORD key while it is derived (it begins 100 ms after the
     * schema is ready): only MLflow and Slack need it, and their first use waits for it. */
    static const char *const key_states[] = {
        [SECRETS_A_READY] = "ready", [SECRETS_A_DERIVING] = "deriving", [SECRETS_A_PENDING] = "pending"};
    int ks = secrets_a_state(&a->secrets);
    const char *keys = ks >= 0 && ks <= SECRETS_A_PENDING ? key_states[ks] : "failed";
    struct events_stats es;
    events_get_stats(a->events, &es);
    reply_json(r, ready ? 200 : 503,
               json_pack("{s:s,s:s,s:s,s:s,s:{s:i,s:i,s:i},s:s,s:s,s:{s:I,s:I},s:{s:b,s:I,s:I}}", "status",
                         ready ? "ready" : "unavailable", "keys", keys, "database", live > 0 ? "up" : "down",
                         "database_server", db_pool_server(a->db), "pool", "live", live, "size",
                         db_pool_size(a->db), "queued", db_pool_queued(a->db), "redis",
                         events_state(a->events), "redis_server", events_server(a->events),
                         "failovers", "database", (json_int_t)db_pool_failovers(a->db), "redis",
                         (json_int_t)events_failovers(a->events), "events", "subscribed",
                         events_subscribed(a->events), "queued", (json_int_t)es.queued, "dropped",
                         (json_int_t)es.dropped));
}
