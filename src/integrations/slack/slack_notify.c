/* integrations/slack_notify: owns notification routing and the delivery queues.
 *
 * Routing (POST /api/notifications, within what the caller may manage and with the
 * idempotency key scoped to the caller; or a decoded notify message, trusted; notify messages wait
 * in a bounded FIFO, MAX_ROUTE_QUEUE, and are routed one at a time, so deliveries keep
 * the order of publication): one statement
 * selects the matching webhooks (organization, active, routing type, user) and
 * inserts one pending delivery per webhook, ON CONFLICT (webhook_id,
 * idempotency_key) DO NOTHING, owned by this process (owner + lease_until); the new
 * rows are queued in memory.
 *
 * Memory: one queue per webhook (struct wq) holding deliveries in order; at most
 * MAX_PER_WEBHOOK per queue and MAX_TOTAL in all. A delivery that does not fit is
 * released in the table (owner NULL) and picked up later by the sweep. Titles,
 * messages and secrets are loaded for the delivery being sent only.
 *
 * Each delivery is a job machine (util/machine.h: enum dlv_state, dlv_step):
 *   QUEUED -> POSTING (the post machine, slack_post.c: its LOAD claims the attempt
 *             (attempts+1, lease) and reads row + webhook; then chat.postMessage, an
 *             expired rotating token refreshed once, the incoming webhook when the token
 *             is refused, the deactivation when the channel is gone)
 *          -> RECORDING (sent / failed / retry later) -> freed, or QUEUED again
 * Pacing: a post starts at least PACE_MS after the previous one of the same webhook
 * (the post machine asks dlv_pace before each of its posts);
 * a retry puts the delivery back at the head of its queue after the wait (429:
 * Retry-After; otherwise exponential), so order per webhook is kept.
 *
 * The tick (TICK_MS) renews this process's leases and claims pending rows whose lease
 * ran out (a previous run that stopped, an instance that died, released rows). */
#include "integrations/slack_notify.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "auth/tenant.h"
#include "crypto/secrets.h"
#include "db/pool.h"
#include "events/events.h"
#include "http/reply.h"
#include "integrations/slack_post.h"
#include "integrations/slack_send.h"
#include "integrations/slack_store.h"
#include "integrations/slack_webhooks.h"
#include "log.h"
#include "net/fetch.h"
#include "util/json.h"
#include "util/clock.h"
#include "util/machine.h"
#include "util/seed.h"

#define PACE_MS 1000
#define TICK_MS 5000
#define MAX_TOTAL 10000
#define MAX_PER_WEBHOOK 1000
#define MAX_ATTEMPTS 6
#define BACKOFF_MAX_S 60
#define IDEM_MAX SLACK_IDEM_MAX
#define MAX_ROUTE_QUEUE 10000    /* notify messages waiting to be routed */

enum dlv_state { DLV_QUEUED, DLV_POSTING, DLV_RECORDING };
static const char *const dlv_state_names[] = {"queued", "posting", "recording"};
static const struct machine_def dlv_def = MACHINE_DEF("slack delivery", dlv_state_names);
enum dlv_end { END_NONE, END_SENT, END_FAILED, END_RETRY, END_DROP };

struct wq;

struct delivery {
    struct delivery *next;
    struct wq *q;
    long long id;
    enum dlv_state state;
    enum dlv_end end;             /* what RECORDING records */
    int attempts;
    long retry_s;
    struct slack_post *post;      /* POSTING: the post job (its secrets are its own) */
    /* loaded for the attempt in progress */
    char *title, *message;
    char channel_id[256];
    char routing_type[64];
    char idem[IDEM_MAX + 1];
    long long org, actor;
    struct slack_post_outcome out;
    const char *via;
};

struct wq {
    struct wq *next;
    long long webhook_id;
    struct delivery *head, *tail; /* waiting, in order */
    size_t n;
    struct delivery *cur;         /* in progress, or NULL */
    long long next_ms;            /* earliest start of the next post */
    struct event *timer;
};

/* A notify message waiting to be routed (strings copied into one allocation). */
struct pending_route {
    struct pending_route *next;
    long long org, user;
    const char *routing_type, *title, *message, *idem;   /* idem may be NULL */
    char buf[];
};

static struct notifier {
    struct app *a;
    struct wq *queues;
    size_t total;                 /* deliveries in memory */
    struct pending_route *rq_head, *rq_tail;   /* routed one at a time, in arrival order */
    size_t rq_len;
    bool rq_busy;
    char owner[48];
    struct event *tick;
    bool lease_busy, sweep_busy;
} N;

/* The post job's end (MI_EVENT). */
struct dlv_posted {
    enum slack_post_end end;
    const struct slack_post_outcome *out;
    const char *via;
};

static void dlv_step(struct delivery *d, const struct machine_input *in);
static void dlv_go(struct delivery *d, enum dlv_state s);
static void wq_kick(struct wq *q);

static void arm(struct event *ev, long long ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

/* ---- memory --------------------------------------------------------------------- */

static void dlv_set_state(struct delivery *d, enum dlv_state s)
{
    if (log_enabled(LOG_DEBUG)) {
        char who[24];
        snprintf(who, sizeof who, "%lld", d->id);
        machine_trace(&dlv_def, who, d->state, s);
    }
    d->state = s;
}

/* The post job is over (ended, or its delivery is): free it, wiping its secrets. */
static void dlv_drop_post(struct delivery *d)
{
    struct slack_post *p = d->post;
    d->post = NULL;
    slack_post_free(p);
}

static void dlv_forget(struct delivery *d)
{
    free(d->title);
    free(d->message);
    d->title = d->message = NULL;
}

static void dlv_free(struct delivery *d)
{
    if (d->post)
        dlv_drop_post(d);
    dlv_forget(d);
    free(d);
    N.total--;
}

static void wq_timer_cb(evutil_socket_t fd, short what, void *arg);

static struct wq *wq_get(long long webhook_id, bool create)
{
    for (struct wq *q = N.queues; q; q = q->next)
        if (q->webhook_id == webhook_id)
            return q;
    if (!create)
        return NULL;
    struct wq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    if (!(q->timer = evtimer_new(N.a->base, wq_timer_cb, q))) {
        free(q);
        return NULL;
    }
    q->webhook_id = webhook_id;
    q->next = N.queues;
    N.queues = q;
    return q;
}

static void wq_free(struct wq *q)
{
    struct wq **pp = &N.queues;
    while (*pp && *pp != q)
        pp = &(*pp)->next;
    if (*pp)
        *pp = q->next;
    event_free(q->timer);
    free(q);
}

static bool wq_has(const struct wq *q, long long id)
{
    if (q->cur && q->cur->id == id)
        return true;
    for (const struct delivery *d = q->head; d; d = d->next)
        if (d->id == id)
            return true;
    return false;
}

/* Queue delivery id of webhook wid, due in delay_ms. Returns 0, 1 (already queued)
 * or -1 (no room: the caller releases the row). */
static int enqueue(long long id, long long wid, long long delay_ms)
{
    if (N.total >= MAX_TOTAL)
        return -1;
    struct wq *q = wq_get(wid, true);
    if (!q)
        return -1;
    if (wq_has(q, id))
        return 1;
    if (q->n >= MAX_PER_WEBHOOK) {
        wq_kick(q);
        return -1;
    }
    struct delivery *d = malloc(sizeof *d);
    if (!d) {
        wq_kick(q);
        return -1;
    }
    *d = (struct delivery){.id = id, .q = q, .state = DLV_QUEUED};
    if (q->tail)
        q->tail->next = d;
    else
        q->head = d;
    q->tail = d;
    q->n++;
    N.total++;
    long long due = (long long)clock_mono_ms() + delay_ms;
    if (delay_ms > 0 && due > q->next_ms)
        q->next_ms = due;
    wq_kick(q);
    return 0;
}

static void on_released(const struct db_result *res, void *arg)
{
    (void)arg;
    if (res->status != DB_OK)
        log_warn("slack deliveries: releasing rows failed: %s (their lease runs out)", res->message);
}

/* Hand rows back to the table (JSON array of ids) so the sweep takes them later. */
static void release_rows(json_t *ids)
{
    if (json_array_size(ids) == 0)
        return;
    char *s = json_dumps(ids, JSON_COMPACT);
    if (!s)
        return;
    const char *params[] = {s};
    db_query(N.a->db, SLACK_SQL_DLV_RELEASE, 1, params, on_released, NULL);
    free(s);
}

/* Queue the rows of a routing (no delay) or sweep result (with_delay). */
static int queue_rows(const PGresult *pr, bool with_delay)
{
    json_t *over = json_array();
    int queued = 0;
    for (int i = 0; i < PQntuples(pr); i++) {
        long long id, wid, delay;
        if (!slack_store_queue_row(pr, i, with_delay, &id, &wid, &delay))
            continue;
        int rc = enqueue(id, wid, delay);
        if (rc < 0)
            json_array_append_new(over, json_integer(id));
        else
            queued++;
    }
    if (json_array_size(over))
        log_warn("slack deliveries: queue full, %zu deliveries left pending for later", json_array_size(over));
    release_rows(over);
    json_decref(over);
    return queued;
}

/* ---- the queue of one webhook --------------------------------------------------------- */

static void wq_kick(struct wq *q)
{
    if (q->cur)
        return;
    long long now = (long long)clock_mono_ms();
    if (!q->head) {
        if (now >= q->next_ms)
            wq_free(q);   /* idle, and the pacing window is over */
        else
            arm(q->timer, q->next_ms - now);
        return;
    }
    if (now < q->next_ms) {
        arm(q->timer, q->next_ms - now);
        return;
    }
    struct delivery *d = q->head;
    q->head = d->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    d->next = NULL;
    q->cur = d;
    dlv_go(d, DLV_POSTING);
}

static void wq_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wq_kick(arg);
}

/* The delivery in progress is finished with (recorded, dropped, or due again). */
static void dlv_finish(struct delivery *d)
{
    struct wq *q = d->q;
    q->cur = NULL;
    if (d->end == END_RETRY) {
        dlv_forget(d);
        dlv_set_state(d, DLV_QUEUED);
        d->end = END_NONE;
        d->next = q->head;   /* back at the head: order per webhook is kept */
        q->head = d;
        if (!q->tail)
            q->tail = d;
        q->n++;
        long long due = (long long)clock_mono_ms() + d->retry_s * 1000;
        if (due > q->next_ms)
            q->next_ms = due;
    } else {
        dlv_free(d);
    }
    wq_kick(q);
}

/* ---- one delivery --------------------------------------------------------------------- */

static void dlv_event(struct delivery *d, bool sent)
{
    char tenant[TENANT_HASH_LEN + 1];
    if (tenant_hash(d->org, tenant) < 0)
        return;
    json_t *data = json_pack("{s:I,s:I,s:s,s:s,s:s,s:i,s:s,s:s}", "delivery_id", (json_int_t)d->id, "webhook_id",
                             (json_int_t)d->q->webhook_id, "channel_id", d->channel_id, "routing_type",
                             d->routing_type, "idempotency_key", d->idem, "attempts", d->attempts, "source",
                             "notification", "via", d->via ? d->via : "none");
    if (sent)
        json_object_set_new(data, "ts", d->out.ts[0] ? json_string(d->out.ts) : json_null());
    else
        json_object_set_new(data, "error", json_string(d->out.error));
    app_event(N.a, sent ? "slack.message.sent" : "slack.message.failed", d->org, tenant, d->actor, data);
}

static void on_recorded(struct delivery *d, const struct db_result *res)
{
    if (res->status != DB_OK)
        log_error("slack delivery %lld: recording the outcome failed: %s", d->id, res->message);
    else if (d->end == END_SENT || d->end == END_FAILED)
        dlv_event(d, d->end == END_SENT);
    if (d->end == END_FAILED)
        log_warn("slack delivery %lld to webhook %lld failed after %d attempt(s): %s", d->id, d->q->webhook_id,
                 d->attempts, d->out.error);
    dlv_finish(d);
}

/* Decide what to record after a post (or a load that cannot post). */
static void dlv_conclude(struct delivery *d)
{
    switch (d->out.result) {
    case SLACK_POST_OK:
        d->end = END_SENT;
        break;
    case SLACK_POST_RATE_LIMITED:
    case SLACK_POST_RETRYABLE:
        if (d->attempts >= MAX_ATTEMPTS) {
            d->end = END_FAILED;
            break;
        }
        d->end = END_RETRY;
        if (d->out.result == SLACK_POST_RATE_LIMITED) {
            d->retry_s = d->out.retry_after_s > 0 ? d->out.retry_after_s : 1;
        } else {
            d->retry_s = 1L << (d->attempts > 6 ? 6 : d->attempts - 1);
            if (d->retry_s > BACKOFF_MAX_S)
                d->retry_s = BACKOFF_MAX_S;
        }
        break;
    default:
        d->end = END_FAILED;
    }
    dlv_go(d, DLV_RECORDING);
}

/* The post job's end. */
static void dlv_posted(struct delivery *d, const struct dlv_posted *p)
{
    d->out = *p->out;
    d->via = p->via;
    dlv_drop_post(d);
    if (p->end == SLACK_POST_END_DEACTIVATED) {
        d->end = END_FAILED;
        dlv_go(d, DLV_RECORDING);
        return;
    }
    dlv_conclude(d);
}

/* ---- the post machine's hooks: they package their input or decide at once --------- */

static void post_finished(void *arg, enum slack_post_end end, const struct slack_post_outcome *out, const char *via)
{
    struct dlv_posted p = {end, out, via};
    struct machine_input in = {.kind = MI_EVENT, .arg = &p};
    dlv_step(arg, &in);
}

/* Start a post now, or after the webhook's pacing window. */
static long long dlv_pace(void *arg)
{
    struct delivery *d = arg;
    struct wq *q = d->q;
    long long now = (long long)clock_mono_ms();
    if (now < q->next_ms)
        return q->next_ms - now;
    q->next_ms = now + PACE_MS;
    return 0;
}

/* The claimed attempt: post it (true), or record / drop / retry it without a post. */
static bool dlv_loaded(void *arg, const struct db_result *res, struct slack_post_target *t)
{
    struct delivery *d = arg;
    if (res->status != DB_OK) {
        log_warn("slack delivery %lld: loading failed: %s; retried", d->id, res->message ? res->message : "");
        dlv_drop_post(d);
        d->end = END_RETRY;
        d->retry_s = 2;
        dlv_finish(d);
        return false;
    }
    const PGresult *pr = db_last(res);
    if (PQntuples(pr) != 1) {   /* no longer ours, no longer pending, or the webhook was deleted */
        dlv_drop_post(d);
        d->end = END_DROP;
        dlv_finish(d);
        return false;
    }
    struct slack_dlv_row row;
    memset(&d->out, 0, sizeof d->out);
    if (slack_store_dlv_row(pr, &row) < 0) {
        dlv_drop_post(d);
        d->end = END_RETRY;
        d->retry_s = 2;
        dlv_finish(d);
        return false;
    }
    d->title = row.title;
    d->message = row.message;
    d->attempts = row.attempts;
    snprintf(d->routing_type, sizeof d->routing_type, "%s", row.routing_type);
    snprintf(d->idem, sizeof d->idem, "%s", row.idem);
    d->org = row.org;
    d->actor = row.actor;
    slack_store_dlv_target(&N.a->secrets, pr, t);
    snprintf(d->channel_id, sizeof d->channel_id, "%s", t->channel_id);
    if (!row.active || (!t->token && !t->url)) {
        d->out.result = SLACK_POST_FAILED;
        snprintf(d->out.error, sizeof d->out.error, "%s",
                 !row.active ? "the webhook is inactive" : "stored Slack credentials cannot be decrypted");
        dlv_drop_post(d);
        dlv_conclude(d);
        return false;
    }
    t->title = d->title;
    t->message = d->message;
    return true;
}

/* ---- the delivery machine ------------------------------------------------------------ */

static void db_recorded(const struct db_result *res, void *arg)
{
    struct machine_input in = {.kind = MI_DB, .db = res};
    dlv_step(arg, &in);
}

static void dlv_enter(struct delivery *d)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", d->id);
    switch (d->state) {
    case DLV_QUEUED:
        return;
    case DLV_POSTING: {
        char who[48];
        snprintf(who, sizeof who, "delivery %lld", d->id);
        const char *params[] = {id, N.owner};
        struct slack_post_opts o = {
            .app = N.a,
            .who = who,
            .load_sql = SLACK_SQL_DLV_CLAIM,
            .load_nparams = 2,
            .load_params = params,
            .loaded = dlv_loaded,
            .pace = dlv_pace,
            .finished = post_finished,
            .arg = d,
        };
        snprintf(o.webhook_id, sizeof o.webhook_id, "%lld", d->q->webhook_id);
        if (!(d->post = slack_post_start(&o, NULL))) {
            log_warn("slack delivery %lld: out of memory; retried", d->id);
            d->end = END_RETRY;
            d->retry_s = 2;
            dlv_finish(d);
        }
        return;
    }
    case DLV_RECORDING: {
        if (d->end == END_RETRY) {
            char secs[24];
            snprintf(secs, sizeof secs, "%ld", d->retry_s);
            const char *params[] = {id, d->out.error, secs};
            db_query(N.a->db, SLACK_SQL_DLV_RETRY, 3, params, db_recorded, d);
            return;
        }
        const char *params[] = {id, d->end == END_SENT ? "sent" : "failed",
                                d->end == END_SENT ? NULL : d->out.error, d->out.ts[0] ? d->out.ts : NULL};
        db_query(N.a->db, SLACK_SQL_DLV_RECORD, 4, params, db_recorded, d);
        return;
    }
    default:
        MACHINE_IMPOSSIBLE(&dlv_def, d->state);
    }
}

static void dlv_go(struct delivery *d, enum dlv_state s)
{
    dlv_set_state(d, s);
    dlv_enter(d);
}

static void dlv_step(struct delivery *d, const struct machine_input *in)
{
    if (in->kind == MI_ENTER) {
        dlv_enter(d);
        return;
    }
    switch (d->state) {
    case DLV_POSTING:
        if (in->kind != MI_EVENT)
            break;
        dlv_posted(d, in->arg);
        return;
    case DLV_RECORDING:
        if (in->kind != MI_DB)
            break;
        on_recorded(d, in->db);
        return;
    case DLV_QUEUED:   /* waits for its queue, not for an input */
        break;
    default:
        MACHINE_IMPOSSIBLE(&dlv_def, d->state);
    }
    MACHINE_IMPOSSIBLE(&dlv_def, d->state);
}

/* ---- routing ---------------------------------------------------------------------- */

static void random_key(char out[33])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        snprintf(out, 33, "%016llx%08x", (unsigned long long)(long long)clock_mono_ms(), (unsigned)getpid());
        return;
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

struct route_args {
    char org[24], user[24], actor[24], key[IDEM_MAX + 1];
    const char *params[8];
};

static void route_params(struct route_args *ra, long long org, long long user, long long actor,
                         const char *routing_type, const char *idem, const char *title, const char *message)
{
    snprintf(ra->org, sizeof ra->org, "%lld", org);
    snprintf(ra->user, sizeof ra->user, "%lld", user);
    snprintf(ra->actor, sizeof ra->actor, "%lld", actor);
    if (idem)
        snprintf(ra->key, sizeof ra->key, "%s", idem);
    else
        random_key(ra->key);
    const char *p[8] = {ra->org, routing_type, user > 0 ? ra->user : NULL, ra->key, title, message,
                        actor > 0 ? ra->actor : NULL, N.owner};
    memcpy(ra->params, p, sizeof p);
}

static void route_next(void);

static void on_routed_bg(const struct db_result *res, void *arg)
{
    (void)arg;
    N.rq_busy = false;
    if (!N.a)
        return;
    if (res->status != DB_OK) {
        log_warn("slack notify: routing failed: %s; notification dropped", res->message ? res->message : "");
    } else {
        const PGresult *pr = db_last(res);
        int q = queue_rows(pr, false);
        log_debug("slack notify: %lld webhook(s) matched, %d new deliveries", slack_store_route_matched(pr), q);
    }
    route_next();
}

/* Route the oldest waiting notify message: one statement at a time keeps the order in
 * which they were published. */
static void route_next(void)
{
    if (N.rq_busy || !N.rq_head || !N.a || N.a->stopping)
        return;
    struct pending_route *p = N.rq_head;
    N.rq_head = p->next;
    if (!N.rq_head)
        N.rq_tail = NULL;
    N.rq_len--;
    struct route_args ra;
    route_params(&ra, p->org, p->user, 0, p->routing_type, p->idem, p->title, p->message);
    N.rq_busy = true;
    db_query(N.a->db, SLACK_SQL_ROUTE, 8, ra.params, on_routed_bg, NULL);
    free(p);
}

static char *put(char **at, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(*at, s, n);
    char *r = *at;
    *at += n;
    return r;
}

static bool notify_valid_text(const char *s)
{
    return s && *s;
}

void slack_on_notify(const struct notify_msg *m, void *app)
{
    struct app *a = app;
    if (!N.a || a->stopping)
        return;
    const char *err = NULL;
    if (m->organization_id > 2147483647LL || (m->has_user_id && m->user_id > 2147483647LL))
        err = "organization_id or user_id out of range";
    else if (!slack_routing_type_valid(m->routing_type, strlen(m->routing_type)))
        err = "unknown routing_type";
    else if (!notify_valid_text(m->title) || !notify_valid_text(m->message))
        err = "empty title or message";
    else
        err = slack_text_error(m->title, strlen(m->title), m->message, strlen(m->message));
    if (err) {
        log_warn("slack notify: message for organization %lld dropped: %s", m->organization_id, err);
        return;
    }
    if (N.rq_len >= MAX_ROUTE_QUEUE) {
        log_warn("slack notify: %d notifications waiting to be routed; message for organization %lld dropped",
                 MAX_ROUTE_QUEUE, m->organization_id);
        return;
    }
    size_t len = strlen(m->routing_type) + strlen(m->title) + strlen(m->message) + 3 +
                 (m->idempotency_key ? strlen(m->idempotency_key) + 1 : 0);
    struct pending_route *p = malloc(sizeof *p + len);
    if (!p) {
        log_error("slack notify: out of memory; notification dropped");
        return;
    }
    char *at = p->buf;
    p->next = NULL;
    p->org = m->organization_id;
    p->user = m->has_user_id ? m->user_id : 0;
    p->routing_type = put(&at, m->routing_type);
    p->title = put(&at, m->title);
    p->message = put(&at, m->message);
    p->idem = m->idempotency_key ? put(&at, m->idempotency_key) : NULL;
    if (N.rq_tail)
        N.rq_tail->next = p;
    else
        N.rq_head = p;
    N.rq_tail = p;
    N.rq_len++;
    route_next();
}

/* ---- POST /api/notifications ---------------------------------------------------------- */

static void on_routed(struct http_req *r, const struct db_result *res)
{
    if (res->status != DB_OK) {
        log_error("slack notify: routing failed: %s (%s)", res->message, res->sqlstate);
        reply_internal(r);
        return;
    }
    const PGresult *pr = db_last(res);
    if (N.a)
        (void)queue_rows(pr, false);   /* what does not fit stays pending for the sweep */
    int created = 0;
    for (int i = 0; i < PQntuples(pr); i++) {
        long long id, wid, delay;
        created += slack_store_queue_row(pr, i, false, &id, &wid, &delay);
    }
    long long matched = slack_store_route_matched(pr);
    reply_data(r, 202, json_pack("{s:I,s:i,s:I}", "matched", (json_int_t)matched, "queued", created, "duplicates",
                                 (json_int_t)(matched - created)));
}

/* The stored idempotency key of a REST caller: "user:<id>:<key>", or when that would
 * not fit the column "user:<id>#<sha256 of key>", so that no caller can claim (or
 * learn about) another caller's key. Keys from the trusted notify channel are stored
 * as sent. */
static int scoped_key(long long user, const char *key, size_t len, char out[IDEM_MAX + 1])
{
    int n = snprintf(out, IDEM_MAX + 1, "user:%lld:", user);
    if (n < 0 || (size_t)n >= IDEM_MAX + 1)
        return -1;
    if ((size_t)n + len <= IDEM_MAX) {
        memcpy(out + n, key, len);
        out[(size_t)n + len] = '\0';
        return 0;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (!SHA256((const unsigned char *)key, len, md))
        return -1;
    out[n - 1] = '#';
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + n + 2 * i, 3, "%02x", md[i]);
    return 0;
}

void slack_notifications_post(struct http_req *r)
{
    const char *rt, *title = NULL, *message = NULL, *idem = NULL;
    size_t rtl, tl = 0, ml = 0, il = 0;
    int g = json_get_string(r->json, "routing_type", &rt, &rtl);
    if (g != 1 || rtl == 0) {
        reply_text(r, 400, g < 0 ? "routing_type must be a string" : "routing_type is required");
        return;
    }
    if (!slack_routing_type_valid(rt, rtl)) {
        reply_text(r, 400, SLACK_MSG_BAD_ROUTING);
        return;
    }
    int gt = json_get_string(r->json, "title", &title, &tl);
    int gm = json_get_string(r->json, "message", &message, &ml);
    if (gt < 0 || gm < 0) {
        reply_text(r, 400, "Title and message must be strings");
        return;
    }
    const char *err = slack_text_error(gt ? title : NULL, tl, gm ? message : NULL, ml);
    if (err) {
        reply_text(r, 400, err);
        return;
    }
    int gi = json_get_string(r->json, "idempotency_key", &idem, &il);
    if (gi < 0 || (gi == 1 && (il == 0 || il > IDEM_MAX || memchr(idem, '\0', il)))) {
        reply_text(r, 400, "idempotency_key must be a string of 1 to 255 characters");
        return;
    }
    json_t *uid = json_object_get(r->json, "user_id");
    if (uid && !json_is_null(uid) &&
        (!json_is_integer(uid) || json_integer_value(uid) < 1 || json_integer_value(uid) > 2147483647)) {
        reply_text(r, 400, "user_id must be a positive integer");
        return;
    }
    /* SPEC 5: a non-Admin reaches only their own webhooks; an Admin the organization's,
     * or one named user's. matched/queued then count only those. */
    long long target = uid && json_is_integer(uid) ? json_integer_value(uid) : 0;
    if (!r->auth.is_admin) {
        if (target && target != r->auth.user_id) {
            reply_text(r, 403, "Only an Admin can notify another user's webhooks");
            return;
        }
        target = r->auth.user_id;
    }
    char scoped[IDEM_MAX + 1];
    if (gi == 1 && scoped_key(r->auth.user_id, idem, il, scoped) < 0) {
        reply_internal(r);
        return;
    }
    struct route_args ra;
    route_params(&ra, r->auth.org_id, target, r->auth.user_id, rt, gi == 1 ? scoped : NULL, title, message);
    app_query(r, SLACK_SQL_ROUTE, 8, ra.params, on_routed);
}

/* ---- leases and the sweep ---------------------------------------------------------- */

static void on_lease(const struct db_result *res, void *arg)
{
    (void)arg;
    N.lease_busy = false;
    if (res->status == DB_SQL_ERROR)
        log_warn("slack deliveries: renewing leases failed: %s", res->message);
}

static void on_sweep(const struct db_result *res, void *arg)
{
    (void)arg;
    N.sweep_busy = false;
    if (res->status != DB_OK) {
        if (res->status == DB_SQL_ERROR)
            log_warn("slack deliveries: resuming pending deliveries failed: %s", res->message);
        return;
    }
    int n = queue_rows(db_last(res), true);
    if (n)
        log_info("slack deliveries: resumed %d pending deliveries", n);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct app *a = N.a;
    if (!a || !a->schema_ready || a->stopping)
        return;
    if (!N.lease_busy && N.total > 0) {
        const char *params[] = {N.owner};
        N.lease_busy = true;
        db_query(a->db, SLACK_SQL_DLV_RENEW, 1, params, on_lease, NULL);
    }
    if (!N.sweep_busy && N.total < MAX_TOTAL) {
        char room[24];
        snprintf(room, sizeof room, "%zu", (size_t)(MAX_TOTAL - N.total) > 1000 ? (size_t)1000 : MAX_TOTAL - N.total);
        const char *params[] = {N.owner, room};
        N.sweep_busy = true;
        db_query(a->db, SLACK_SQL_DLV_SWEEP, 2, params, on_sweep, NULL);
    }
}

int slack_notify_start(struct app *a)
{
    memset(&N, 0, sizeof N);
    N.a = a;
    /* unique among instances, not secret: from util/seed (no DRBG at start-up) */
    snprintf(N.owner, sizeof N.owner, "%d-%016llx", (int)getpid(), (unsigned long long)seed_u64());
    N.tick = event_new(a->base, -1, EV_PERSIST, tick, NULL);
    if (!N.tick)
        return -1;
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
    /* the first tick also resumes what a previous run left pending */
    return event_add(N.tick, &tv) == 0 ? 0 : -1;
}

void slack_notify_stop(void)
{
    if (N.tick) {
        event_free(N.tick);
        N.tick = NULL;
    }
    while (N.queues) {
        struct wq *q = N.queues;
        if (q->cur)
            dlv_free(q->cur);   /* its row stays pending: resumed by the next start */
        struct delivery *d = q->head;
        while (d) {
            struct delivery *next = d->next;
            dlv_free(d);
            d = next;
        }
        wq_free(q);
    }
    while (N.rq_head) {
        struct pending_route *p = N.rq_head;
        N.rq_head = p->next;
        free(p);
    }
    N.rq_tail = NULL;
    N.rq_len = 0;
    N.a = NULL;
}
