/* tests/unit/test_events_redis: the events module against a real redis-server that
 * this test starts on a free 127.0.0.1 port (skipped when redis-server is missing).
 * The module runs on a libevent loop driven in bounded slices; the checks use plain
 * synchronous hiredis clients (one PSUBSCRIBEd, one for PUBLISH) and msgpack-c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "events/events.h"
#include "log.h"

extern char **environ;

#define PREFIX "t:ev:"

static bool have_redis;

/* ---- fixture ---------------------------------------------------------------------- */

struct fixture {
    struct event_base *base;
    struct events *ev;
    pid_t redis_pid;
    int port;
    const char *password;          /* of the running redis-server, or NULL */
    redisContext *sub;             /* PSUBSCRIBEd to PREFIX* */
    redisContext *cmd;             /* for PUBLISH */
    int notify_count;
    long long last_org;
    bool last_has_user;
    long long last_user;
    char last_rt[64], last_title[64], last_message[64], last_key[64];
};

static struct fixture fx;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool find_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", *dir ? dir : ".", prog);
        found = access(full, X_OK) == 0;
    }
    free(copy);
    return found;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

static redisContext *connect_client(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", fx.port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    struct timeval rt = {3, 0};
    redisSetTimeout(c, rt);
    if (fx.password) {
        redisReply *r = redisCommand(c, "AUTH %s", fx.password);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static void start_redis(const char *password)
{
    char port[16];
    snprintf(port, sizeof port, "%d", fx.port);
    const char *argv[16] = {"redis-server", "--port", port, "--save", "", "--appendonly", "no",
                            "--bind", "127.0.0.1", "--daemonize", "no"};
    int n = 11;
    if (password) {
        argv[n++] = "--requirepass";
        argv[n++] = password;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    int rc = posix_spawnp(&fx.redis_pid, "redis-server", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    fx.password = password;

    uint64_t end = mono_ms() + 5000;
    for (;;) {
        redisContext *c = connect_client();
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        }
        if (mono_ms() > end)
            fail_msg("redis-server did not start on port %d", fx.port);
        usleep(20000);
    }
}

static void stop_redis(void)
{
    if (fx.redis_pid > 0) {
        kill(fx.redis_pid, SIGKILL);
        waitpid(fx.redis_pid, NULL, 0);
        fx.redis_pid = 0;
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    fx.base = event_base_new();
    return fx.base ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    events_free(fx.ev);
    if (fx.sub)
        redisFree(fx.sub);
    if (fx.cmd)
        redisFree(fx.cmd);
    stop_redis();
    event_base_free(fx.base);
    memset(&fx, 0, sizeof fx);
    return 0;
}

/* ---- driving the loop ------------------------------------------------------------------ */

static void run_for(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(fx.base, &tv);
    event_base_dispatch(fx.base);
}

static bool run_until(bool (*pred)(void), int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    while (!pred()) {
        if (mono_ms() >= end)
            return false;
        run_for(10);
    }
    return true;
}

static bool is_ready(void)
{
    return strcmp(events_state(fx.ev), "up") == 0 && events_subscribed(fx.ev);
}

static bool is_down(void)
{
    return strcmp(events_state(fx.ev), "down") == 0 && !events_subscribed(fx.ev);
}

static struct events_stats stats(void)
{
    struct events_stats s;
    events_get_stats(fx.ev, &s);
    return s;
}

static uint64_t want_published;
static bool published_enough(void)
{
    return stats().published >= want_published;
}

static int want_notify;
static bool notified_enough(void)
{
    return fx.notify_count >= want_notify;
}

static void on_notify(const struct notify_msg *m, void *arg)
{
    assert_ptr_equal(arg, &fx);
    fx.notify_count++;
    fx.last_org = m->organization_id;
    fx.last_has_user = m->has_user_id;
    fx.last_user = m->user_id;
    snprintf(fx.last_rt, sizeof fx.last_rt, "%s", m->routing_type);
    snprintf(fx.last_title, sizeof fx.last_title, "%s", m->title);
    snprintf(fx.last_message, sizeof fx.last_message, "%s", m->message);
    snprintf(fx.last_key, sizeof fx.last_key, "%s", m->idempotency_key ? m->idempotency_key : "(none)");
}

static void new_events(const char *url, size_t max_queue)
{
    struct events_opts o = {.redis_url = url, .prefix = PREFIX, .max_queue = max_queue, .on_notify = on_notify,
                            .arg = &fx};
    char err[256];
    fx.ev = events_new(fx.base, &o, err, sizeof err);
    if (!fx.ev)
        fail_msg("events_new: %s", err);
}

static void url_for(char *buf, size_t len, const char *userinfo, const char *host, const char *db)
{
    snprintf(buf, len, "redis://%s%s%s:%d%s%s", userinfo ? userinfo : "", userinfo ? "@" : "", host, fx.port,
             db ? "/" : "", db ? db : "");
}

/* Connect the sync subscriber (PSUBSCRIBE PREFIX*) and the sync publisher. */
static void open_clients(void)
{
    fx.sub = connect_client();
    assert_non_null(fx.sub);
    redisReply *r = redisCommand(fx.sub, "PSUBSCRIBE %s*", PREFIX);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    fx.cmd = connect_client();
    assert_non_null(fx.cmd);
}

/* ---- reading events with msgpack-c ---------------------------------------------------------- */

struct got_event {
    char channel[128];
    char type[64];
    char id[64];
    long long org;
    long long actor;      /* 0 when nil */
    long long seq;        /* data.seq, -1 when absent */
    char tenant[64];
    uint64_t time;
};

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        assert_int_equal(k->type, MSGPACK_OBJECT_STR);
        if (k->via.str.size == strlen(key) && memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static void copy_str(char *dst, size_t dlen, const msgpack_object *o)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_true(o->via.str.size < dlen);
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
}

/* The next event seen by the PSUBSCRIBEd client (the test's own notify messages,
 * which the pattern also matches, are skipped). */
static void read_event(struct got_event *g)
{
    memset(g, 0, sizeof *g);
    redisReply *r = NULL;
    for (;;) {
        assert_int_equal(redisGetReply(fx.sub, (void **)&r), REDIS_OK);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 4);
        assert_string_equal(r->element[0]->str, "pmessage");
        if (strcmp(r->element[2]->str, PREFIX "notify") != 0)
            break;
        freeReplyObject(r);
    }
    snprintf(g->channel, sizeof g->channel, "%s", r->element[2]->str);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, r->element[3]->str, r->element[3]->len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, r->element[3]->len);
    const msgpack_object *m = &u.data;
    assert_int_equal(m->via.map.size, 8);
    const msgpack_object *v = map_get(m, "v");
    assert_non_null(v);
    assert_int_equal(v->via.u64, 1);
    copy_str(g->type, sizeof g->type, map_get(m, "type"));
    copy_str(g->id, sizeof g->id, map_get(m, "id"));
    const msgpack_object *t = map_get(m, "time");
    assert_int_equal(t->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    g->time = t->via.u64;
    const msgpack_object *o = map_get(m, "organization_id");
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    g->org = (long long)o->via.u64;
    copy_str(g->tenant, sizeof g->tenant, map_get(m, "tenant"));
    const msgpack_object *a = map_get(m, "actor_user_id");
    assert_non_null(a);
    g->actor = a->type == MSGPACK_OBJECT_NIL ? 0 : (long long)a->via.u64;
    const msgpack_object *d = map_get(m, "data");
    assert_non_null(d);
    assert_int_equal(d->type, MSGPACK_OBJECT_MAP);
    const msgpack_object *seq = map_get(d, "seq");
    g->seq = seq ? (long long)seq->via.u64 : -1;
    msgpack_unpacked_destroy(&u);
    freeReplyObject(r);
}

static void publish_seq(const char *type, long long seq)
{
    json_t *data = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "name", "test");
    events_publish(fx.ev, type, 42, "tenant42", 7, data);
    json_decref(data);
}

/* ---- notify messages from a test publisher ----------------------------------------------------- */

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void publish_raw(const void *buf, size_t len)
{
    redisReply *r = redisCommand(fx.cmd, "PUBLISH %s %b", PREFIX "notify", buf, len);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static void publish_notify(long long org, long long user, const char *title, const char *key)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)(4 + (user > 0) + (key != NULL)));
    msgpack_pack_str_with_body(&pk, "organization_id", 15);
    msgpack_pack_int64(&pk, org);
    if (user > 0) {
        msgpack_pack_str_with_body(&pk, "user_id", 7);
        msgpack_pack_int64(&pk, user);
    }
    pack_kv_str(&pk, "routing_type", "policies");
    pack_kv_str(&pk, "title", title);
    pack_kv_str(&pk, "message", "Body text");
    if (key)
        pack_kv_str(&pk, "idempotency_key", key);
    publish_raw(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- tests ---------------------------------------------------------------------------------------- */

#define NEED_REDIS()                                                   \
    do {                                                               \
        if (!have_redis) {                                             \
            print_message("redis-server not installed: skipped\n");    \
            skip();                                                    \
        }                                                              \
    } while (0)

static void test_publish_delivers(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", "0");
    new_events(url, 0);
    assert_string_equal(events_state(fx.ev), "connecting");
    assert_true(run_until(is_ready, 3000));
    open_clients();

    json_t *data = json_pack("{s:i, s:s, s:[s,s], s:f, s:b, s:n}", "key_id", 3, "name", "OpenAI", "list", "a",
                             "b", "ratio", 0.5, "flag", 1, "nothing");
    events_publish(fx.ev, "llm_key.created", 42, "a1b2c3", 7, data);
    json_decref(data);
    events_publish(fx.ev, "llm_key.deleted", 42, "a1b2c3", 0, NULL);
    want_published = 2;
    assert_true(run_until(published_enough, 3000));

    struct got_event g1, g2;
    read_event(&g1);
    read_event(&g2);
    assert_string_equal(g1.channel, PREFIX "llm_key.created");
    assert_string_equal(g1.type, "llm_key.created");
    assert_int_equal(g1.org, 42);
    assert_int_equal(g1.actor, 7);
    assert_string_equal(g1.tenant, "a1b2c3");
    assert_int_equal(strlen(g1.id), 32);
    assert_int_equal(strspn(g1.id, "0123456789abcdef"), 32);
    uint64_t now = (uint64_t)time(NULL) * 1000u;
    assert_true(g1.time > now - 60000 && g1.time < now + 60000);
    assert_string_equal(g2.channel, PREFIX "llm_key.deleted");
    assert_int_equal(g2.actor, 0);
    assert_string_not_equal(g1.id, g2.id);

    struct events_stats s = stats();
    assert_int_equal(s.published, 2);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.queued, 0);

    /* refused without reaching Redis: over 1 MiB encoded, data not an object, no type */
    char *big = malloc(2u << 20);
    memset(big, 'x', (2u << 20) - 1);
    big[(2u << 20) - 1] = '\0';
    data = json_pack("{s:s}", "blob", big);
    events_publish(fx.ev, "llm_key.updated", 42, "a1b2c3", 7, data);
    json_decref(data);
    free(big);
    data = json_array();
    events_publish(fx.ev, "llm_key.updated", 42, "a1b2c3", 7, data);
    json_decref(data);
    events_publish(fx.ev, "", 42, "a1b2c3", 7, NULL);
    events_publish(fx.ev, NULL, 42, "a1b2c3", 7, NULL);
    s = stats();
    assert_int_equal(s.dropped, 4);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.published, 2);
}

static void test_notify_reaches_callback(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "localhost", NULL);   /* a name, resolved once */
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));
    open_clients();

    publish_notify(42, 7, "Hello", "idem-1");
    want_notify = 1;
    assert_true(run_until(notified_enough, 3000));
    assert_int_equal(fx.last_org, 42);
    assert_true(fx.last_has_user);
    assert_int_equal(fx.last_user, 7);
    assert_string_equal(fx.last_rt, "policies");
    assert_string_equal(fx.last_title, "Hello");
    assert_string_equal(fx.last_message, "Body text");
    assert_string_equal(fx.last_key, "idem-1");

    publish_notify(43, 0, "Second", NULL);
    want_notify = 2;
    assert_true(run_until(notified_enough, 3000));
    assert_int_equal(fx.last_org, 43);
    assert_false(fx.last_has_user);
    assert_string_equal(fx.last_key, "(none)");
    struct events_stats s = stats();
    assert_int_equal(s.notify_received, 2);
    assert_int_equal(s.notify_malformed, 0);
}

static void test_notify_malformed_dropped(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", NULL);
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));
    open_clients();

    int bad = 0;
    /* random bytes */
    unsigned int seed = 7;
    char rnd[300];
    for (int i = 0; i < 5; i++) {
        for (size_t j = 0; j < sizeof rnd; j++)
            rnd[j] = (char)rand_r(&seed);
        publish_raw(rnd, sizeof rnd);
        bad++;
    }
    /* truncated valid message */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "organization_id", 15);
    msgpack_pack_int64(&pk, 42);
    pack_kv_str(&pk, "routing_type", "policies");
    pack_kv_str(&pk, "title", "t");
    pack_kv_str(&pk, "message", "m");
    publish_raw(sb.data, sb.size - 3);
    bad++;
    /* trailing byte */
    char *tr = malloc(sb.size + 1);
    memcpy(tr, sb.data, sb.size);
    tr[sb.size] = (char)0xc0;
    publish_raw(tr, sb.size + 1);
    free(tr);
    bad++;
    msgpack_sbuffer_destroy(&sb);
    /* wrong type: organization_id as a string */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_kv_str(&pk, "organization_id", "42");
    pack_kv_str(&pk, "routing_type", "policies");
    pack_kv_str(&pk, "title", "t");
    pack_kv_str(&pk, "message", "m");
    publish_raw(sb.data, sb.size);
    bad++;
    msgpack_sbuffer_destroy(&sb);
    /* allocation bombs, empty payload, JSON text */
    publish_raw("\xdd\x0f\xff\xff\xff", 5);
    publish_raw("\xdf\x0f\xff\xff\xff", 5);
    publish_raw("", 0);
    publish_raw("{\"organization_id\":1}", 21);
    bad += 4;
    /* 10 MB */
    size_t huge = 10u * 1024 * 1024;
    char *h = calloc(1, huge);
    publish_raw(h, huge);
    free(h);
    bad++;
    /* and a valid one after all that */
    publish_notify(42, 0, "Still flowing", "k-after");

    want_notify = 1;
    assert_true(run_until(notified_enough, 5000));
    assert_string_equal(fx.last_title, "Still flowing");
    struct events_stats s = stats();
    assert_int_equal(s.notify_malformed, bad);
    assert_int_equal(s.notify_received, bad + 1);
    assert_true(is_ready());
}

static void test_redis_restart(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", NULL);
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));

    stop_redis();
    assert_true(run_until(is_down, 3000));
    assert_string_equal(events_state(fx.ev), "down");
    for (int i = 0; i < 3; i++)
        publish_seq("mlflow.sync.completed", i);
    struct events_stats s = stats();
    assert_int_equal(s.queued, 3);
    assert_int_equal(s.published, 0);
    run_for(300);   /* a few failed reconnects */
    assert_true(is_down());

    /* Same port again; the test's clients subscribe before the loop runs again. */
    start_redis(NULL);
    open_clients();
    want_published = 3;
    assert_true(run_until(published_enough, 8000));
    assert_true(run_until(is_ready, 3000));
    for (int i = 0; i < 3; i++) {
        struct got_event g;
        read_event(&g);
        assert_string_equal(g.type, "mlflow.sync.completed");
        assert_int_equal(g.seq, i);   /* queued order kept */
    }
    s = stats();
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.dropped, 0);

    /* the subscriber resubscribed */
    publish_notify(5, 0, "After restart", NULL);
    want_notify = 1;
    assert_true(run_until(notified_enough, 3000));
    assert_string_equal(fx.last_title, "After restart");

    /* and live publishing works again */
    publish_seq("mlflow.sync.completed", 99);
    want_published = 4;
    assert_true(run_until(published_enough, 3000));
    struct got_event g;
    read_event(&g);
    assert_int_equal(g.seq, 99);
}

static void test_queue_bound_drops_oldest(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();   /* nothing listens there yet */
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", NULL);
    new_events(url, 5);
    run_for(200);
    assert_string_equal(events_state(fx.ev), "down");
    for (int i = 0; i < 8; i++)
        publish_seq("slack.message.sent", i);
    struct events_stats s = stats();
    assert_int_equal(s.queued, 5);
    assert_int_equal(s.dropped, 3);

    start_redis(NULL);
    open_clients();
    want_published = 5;
    assert_true(run_until(published_enough, 8000));
    for (int i = 3; i < 8; i++) {
        struct got_event g;
        read_event(&g);
        assert_int_equal(g.seq, i);   /* 0, 1 and 2 were the oldest: dropped */
    }
    s = stats();
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.dropped, 3);
}

static void test_inflight_cap(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", NULL);
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));
    open_clients();

    kill(fx.redis_pid, SIGSTOP);   /* a Redis that does not answer */
    for (int i = 0; i < 1500; i++)
        publish_seq("mlflow.model.changed", i);
    run_for(200);
    struct events_stats s = stats();
    assert_int_equal(s.published, 0);
    assert_int_equal(s.queued, 500);   /* 1000 in flight at most */
    assert_string_equal(events_state(fx.ev), "up");
    kill(fx.redis_pid, SIGCONT);

    want_published = 1500;
    assert_true(run_until(published_enough, 5000));
    s = stats();
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.dropped, 0);
    for (int i = 0; i < 1500; i++) {
        struct got_event g;
        read_event(&g);
        assert_int_equal(g.seq, i);
    }
}

static void test_disabled(void **state)
{
    (void)state;
    new_events("", 0);
    assert_string_equal(events_state(fx.ev), "disabled");
    assert_false(events_subscribed(fx.ev));
    publish_seq("github.token.saved", 1);
    publish_seq("github.token.deleted", 2);
    run_for(20);
    struct events_stats s = stats();
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.published, 0);

    /* NULL-tolerant accessors */
    assert_string_equal(events_state(NULL), "disabled");
    assert_false(events_subscribed(NULL));
    events_publish(NULL, "x.y", 1, "t", 1, NULL);
    events_get_stats(NULL, &s);
    assert_int_equal(s.dropped, 0);
    events_free(NULL);
}

static void test_auth(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis("s3cret@pw");
    char url[160];
    url_for(url, sizeof url, ":s3cret%40pw", "127.0.0.1", "3");
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));
    open_clients();
    publish_seq("slack.webhook.created", 1);
    want_published = 1;
    assert_true(run_until(published_enough, 3000));
    struct got_event g;
    read_event(&g);
    assert_int_equal(g.seq, 1);
    publish_notify(1, 0, "authed", NULL);
    want_notify = 1;
    assert_true(run_until(notified_enough, 3000));
    events_free(fx.ev);
    fx.ev = NULL;

    /* ACL form with the default user */
    url_for(url, sizeof url, "default:s3cret%40pw", "127.0.0.1", NULL);
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));
}

static bool ever_up;
static bool watch_never_up(void)
{
    if (strcmp(events_state(fx.ev), "up") == 0 || events_subscribed(fx.ev))
        ever_up = true;
    return false;
}

static void test_auth_wrong(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis("right");
    static const char *const infos[] = {":wrong", "default:wrong", NULL};
    for (int i = 0; i < 3; i++) {
        char url[160];
        url_for(url, sizeof url, infos[i], "127.0.0.1", NULL);
        new_events(url, 0);
        ever_up = false;
        publish_seq("llm_key.updated", 1);
        run_until(watch_never_up, i == 0 ? 1200 : 500);
        assert_false(ever_up);
        assert_string_not_equal(events_state(fx.ev), "up");
        struct events_stats s = stats();
        assert_int_equal(s.published, 0);
        assert_int_equal(s.queued, 1);
        events_free(fx.ev);
        fx.ev = NULL;
    }
}

static void test_free_while_busy(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", NULL);
    new_events(url, 0);
    assert_true(run_until(is_ready, 3000));
    open_clients();
    for (int i = 0; i < 50; i++)
        publish_seq("llm_key.created", i);   /* in hiredis's buffer, unanswered */
    publish_notify(1, 0, "never delivered", NULL);
    events_free(fx.ev);   /* pending callbacks run now, with NULL */
    fx.ev = NULL;
    run_for(100);
    assert_int_equal(fx.notify_count, 0);

    /* and while connecting */
    new_events(url, 0);
    events_free(fx.ev);
    fx.ev = NULL;
    run_for(50);
}

static void test_url_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "rediss://:topsecret@127.0.0.1:6379",
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
        "redis://:topsecret@",
        "redis://:topsecret@127.0.0.1:0",
        "redis://:topsecret@127.0.0.1:65536",
        "redis://:topsecret@127.0.0.1:abc",
        "redis://:topsecret@127.0.0.1:6379/x",
        "redis://:topsecret@127.0.0.1:6379/0?ssl=true",
        "redis://topsecret@127.0.0.1:6379",
        "redis://user:@127.0.0.1:6379",
        "redis://:top%zzsecret@127.0.0.1:6379",
        "redis://:topsecret@[::1:6379",
        "redis://:topsecret@127.0.0.1:",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct events_opts o = {.redis_url = bad[i], .prefix = PREFIX};
        char err[256] = "";
        struct events *e = events_new(fx.base, &o, err, sizeof err);
        if (e) {
            events_free(e);
            fail_msg("accepted %s", bad[i]);
        }
        assert_non_null(strstr(err, "REDIS_URL"));
        assert_null(strstr(err, "topsecret"));
        assert_null(strstr(err, "top%zz"));
        if (i == 0)
            assert_non_null(strstr(err, "TLS"));
    }
    /* accepted forms (nothing listens on port 1; only parsing and resolving matter) */
    static const char *const good[] = {"redis://127.0.0.1:1", "redis://[::1]:1/2", "redis://:p%40ss@127.0.0.1:1/15",
                                       "redis://u:p@localhost:1", "redis://127.0.0.1:1/"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct events_opts o = {.redis_url = good[i], .prefix = NULL};
        char err[256] = "";
        struct events *e = events_new(fx.base, &o, err, sizeof err);
        if (!e)
            fail_msg("refused %s: %s", good[i], err);
        events_free(e);
    }
}

static void test_sentinel_list_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", ":26379", "127.0.0.1:0", "127.0.0.1:65536",
                                      "127.0.0.1:26379,host", "[::1]26379", "[::1", "a:b", " , "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct events_opts o = {.redis_url = "redis://:topsecret@127.0.0.1:1", .prefix = PREFIX,
                                .sentinels = bad[i], .sentinel_master = "mymaster"};
        char err[256] = "";
        struct events *e = events_new(fx.base, &o, err, sizeof err);
        if (e) {
            events_free(e);
            fail_msg("accepted REDIS_SENTINELS=%s", bad[i]);
        }
        assert_non_null(strstr(err, "REDIS_SENTINELS"));
        assert_null(strstr(err, "topsecret"));
    }
    struct events_opts o = {.redis_url = "redis://127.0.0.1:1", .sentinels = "127.0.0.1:1", .sentinel_master = ""};
    char err[256] = "";
    assert_null(events_new(fx.base, &o, err, sizeof err));
    assert_non_null(strstr(err, "REDIS_SENTINEL_MASTER"));
    static const char *const good[] = {"127.0.0.1:1", " 127.0.0.1:1 , [::1]:2,localhost:3 ", "localhost:26379,"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct events_opts g = {.redis_url = "redis://127.0.0.1:1", .sentinels = good[i], .sentinel_master = "m"};
        struct events *e = events_new(fx.base, &g, err, sizeof err);
        if (!e)
            fail_msg("refused REDIS_SENTINELS=%s: %s", good[i], err);
        events_free(e);
    }
}

/* ---- events_incr (shared counters) ---------------------------------------------------- */

static int incr_calls, incr_in_call;
static long long incr_count, incr_ttl;
static bool incr_ok;

static void on_incr(long long count, long long ttl_ms, bool ok, void *arg)
{
    assert_ptr_equal(arg, &fx);
    assert_int_equal(incr_in_call, 0);   /* never inside events_incr */
    incr_calls++;
    incr_count = count;
    incr_ttl = ttl_ms;
    incr_ok = ok;
}

static int want_incr;
static bool incr_enough(void)
{
    return incr_calls >= want_incr;
}

static void incr(const char *key)
{
    incr_in_call = 1;
    assert_int_equal(events_incr(fx.ev, key, 60000, on_incr, &fx), 0);
    incr_in_call = 0;
}

static void test_incr_counts_and_expires(void **state)
{
    (void)state;
    NEED_REDIS();
    fx.port = free_port();
    start_redis(NULL);
    char url[128];
    url_for(url, sizeof url, NULL, "127.0.0.1", "0");
    new_events(url, 0);
    /* not connected yet: answered later with ok false */
    incr_calls = 0;
    incr(PREFIX "counter");
    assert_int_equal(incr_calls, 0);
    want_incr = 1;
    assert_true(run_until(incr_enough, 1000));
    assert_false(incr_ok);
    assert_true(run_until(is_ready, 3000));
    for (int i = 1; i <= 3; i++) {
        incr(PREFIX "counter");
        want_incr = i + 1;
        assert_true(run_until(incr_enough, 3000));
        assert_true(incr_ok);
        assert_int_equal(incr_count, i);
        assert_true(incr_ttl > 0 && incr_ttl <= 60000);
    }
    /* the link dies with a command in flight: the callback still runs, ok false */
    stop_redis();
    incr(PREFIX "counter");
    want_incr = 5;
    assert_true(run_until(incr_enough, 5000));
    assert_false(incr_ok);
}

static void test_incr_disabled_and_free(void **state)
{
    (void)state;
    new_events("", 0);
    incr_calls = 0;
    incr(PREFIX "x");
    incr(PREFIX "y");
    assert_int_equal(incr_calls, 0);
    want_incr = 1;
    assert_true(run_until(incr_enough, 1000));
    assert_false(incr_ok);
    /* a pending callback runs (ok false) when the module is freed */
    incr(PREFIX "z");
    int before = incr_calls;
    events_free(fx.ev);
    fx.ev = NULL;
    assert_true(incr_calls >= before + 1);
    assert_int_equal(incr_calls, 3);
}

int main(void)
{
    const char *lvl = getenv("TEST_LOG_LEVEL");
    log_setup(lvl && strcmp(lvl, "debug") == 0 ? LOG_DEBUG : LOG_ERROR, LOG_FORMAT_TEXT);
    signal(SIGPIPE, SIG_IGN);
    have_redis = find_in_path("redis-server");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_delivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_reaches_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_malformed_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sentinel_list_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr_counts_and_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr_disabled_and_free, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
