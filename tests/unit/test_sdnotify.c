/* Unit tests for ops/sdnotify: the datagrams systemd would receive (READY=1,
 * STOPPING=1, STATUS=, WATCHDOG=1) on a path socket and on an abstract socket, the
 * WATCHDOG_PID rule, malformed variables, sends that never block and fail loudly
 * only once, and silence without NOTIFY_SOCKET. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ops/sdnotify.h"

/* ---- helpers --------------------------------------------------------------- */

struct receiver {
    int fd;
    char dir[128];
    char path[160];   /* "" for an abstract socket */
};

static void clear_env(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

/* Bind a datagram socket at <tmpdir>/XXXXXX/notify and point NOTIFY_SOCKET at it. */
static void receiver_open_path(struct receiver *r)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 80)
        tmp = "/tmp";
    snprintf(r->dir, sizeof r->dir, "%s/sdnotify-XXXXXX", tmp);
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->path, sizeof r->path, "%s/notify", r->dir);
    r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(r->path) < sizeof a.sun_path);
    strcpy(a.sun_path, r->path);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", r->path, 1), 0);
}

/* Bind an abstract-namespace datagram socket and set NOTIFY_SOCKET=@name. */
static void receiver_open_abstract(struct receiver *r)
{
    char name[64];
    snprintf(name, sizeof name, "integrationsd-test-sdnotify-%ld-%ld", (long)getpid(),
             (long)time(NULL));
    r->dir[0] = r->path[0] = '\0';
    r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(a.sun_path + 1, name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, alen), 0);
    char env[80];
    snprintf(env, sizeof env, "@%s", name);
    assert_int_equal(setenv("NOTIFY_SOCKET", env, 1), 0);
}

static void receiver_close(struct receiver *r)
{
    close(r->fd);
    if (r->path[0])
        unlink(r->path);
    if (r->dir[0])
        rmdir(r->dir);
}

/* Next datagram within timeout_ms as a string, or -1 when none arrived. */
static int recv_msg(struct receiver *r, char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    ssize_t n = recv(r->fd, buf, len - 1, MSG_DONTWAIT);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return (int)n;
}

/* Redirect stderr (the logger's output) into a temporary file. */
struct capture {
    int saved;
    FILE *f;
};

static void capture_start(struct capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    assert_non_null(c->f);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

/* Restore stderr and return what was written (caller frees). */
static char *capture_stop(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    long n = ftell(c->f);
    assert_true(n >= 0);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    rewind(c->f);
    size_t got = fread(s, 1, (size_t)n, c->f);
    s[got] = '\0';
    fclose(c->f);
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int added_events(struct event_base *base)
{
    return event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sdnotify_free();
    clear_env();
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void no_socket_is_silent_noop(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
    /* A watchdog without a socket is meaningless: no timer either. */
    setenv("WATCHDOG_USEC", "200000", 1);
    struct capture c;
    capture_start(&c);
    int rc = sdnotify_init(base);
    sdnotify_ready();
    sdnotify_status("hello");
    sdnotify_stopping();
    int events = added_events(base);
    sdnotify_free();
    sdnotify_free();
    char *out = capture_stop(&c);
    assert_int_equal(rc, 0);
    assert_int_equal(events, 0);
    assert_string_equal(out, "");
    free(out);
    /* An empty value counts as unset. */
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sdnotify_init(base), 0);
    sdnotify_ready();
    assert_int_equal(added_events(base), 0);
    sdnotify_free();
    event_base_free(base);
}

static void calls_before_init_are_noops(void **state)
{
    (void)state;
    sdnotify_ready();
    sdnotify_stopping();
    sdnotify_status("x");
    sdnotify_status(NULL);
    sdnotify_free();
}

static void ready_status_stopping_on_path_socket(void **state)
{
    (void)state;
    struct receiver r;
    receiver_open_path(&r);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(sdnotify_init(base), 0);
    assert_int_equal(added_events(base), 0);   /* no WATCHDOG_USEC: no timer */
    char buf[512];

    sdnotify_ready();
    assert_true(recv_msg(&r, buf, sizeof buf, 1000) > 0);
    assert_true(strncmp(buf, "READY=1\n", 8) == 0);
    assert_non_null(strstr(buf, "\nSTATUS="));

    sdnotify_status("draining\n3 requests");
    assert_true(recv_msg(&r, buf, sizeof buf, 1000) > 0);
    assert_string_equal(buf, "STATUS=draining 3 requests");

    char longtext[400];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    sdnotify_status(longtext);
    assert_int_equal(recv_msg(&r, buf, sizeof buf, 1000), 7 + 200);
    assert_true(strncmp(buf, "STATUS=aaaa", 11) == 0);

    /* A cut never splits a UTF-8 sequence: 199 'a' then a 2-byte character. */
    memset(longtext, 'a', 199);
    strcpy(longtext + 199, "\xc3\xa9tail");
    sdnotify_status(longtext);
    assert_int_equal(recv_msg(&r, buf, sizeof buf, 1000), 7 + 199);

    sdnotify_stopping();
    assert_true(recv_msg(&r, buf, sizeof buf, 1000) > 0);
    assert_true(strncmp(buf, "STOPPING=1", 10) == 0);

    sdnotify_free();
    sdnotify_ready();   /* after free: nothing */
    assert_int_equal(recv_msg(&r, buf, sizeof buf, 100), -1);
    event_base_free(base);
    receiver_close(&r);
}

static void abstract_socket(void **state)
{
    (void)state;
    struct receiver r;
    receiver_open_abstract(&r);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(sdnotify_init(base), 0);
    char buf[512];
    sdnotify_ready();
    assert_true(recv_msg(&r, buf, sizeof buf, 1000) > 0);
    assert_true(strncmp(buf, "READY=1\n", 8) == 0);
    sdnotify_stopping();
    assert_true(recv_msg(&r, buf, sizeof buf, 1000) > 0);
    assert_true(strncmp(buf, "STOPPING=1", 10) == 0);
    sdnotify_free();
    event_base_free(base);
    receiver_close(&r);
}

static void exit_loop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Run the loop for ms milliseconds and count the WATCHDOG=1 datagrams received. */
static int run_and_count_pings(struct event_base *base, struct receiver *r, int ms)
{
    struct event *stop = evtimer_new(base, exit_loop_cb, base);
    assert_non_null(stop);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(evtimer_add(stop, &tv), 0);
    assert_int_equal(event_base_dispatch(base), 0);
    event_free(stop);
    int pings = 0;
    char buf[128];
    while (recv_msg(r, buf, sizeof buf, 0) > 0) {
        assert_string_equal(buf, "WATCHDOG=1");
        pings++;
    }
    return pings;
}

static void watchdog_pings_at_half_interval(void **state)
{
    (void)state;
    struct receiver r;
    receiver_open_path(&r);
    setenv("WATCHDOG_USEC", "200000", 1);   /* 200 ms: a ping every 100 ms */
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(sdnotify_init(base), 0);
    assert_int_equal(added_events(base), 1);
    int pings = run_and_count_pings(base, &r, 450);
    /* 4 expected (100, 200, 300, 400 ms); slack for slow sanitizer runs. */
    assert_in_range(pings, 2, 5);
    sdnotify_free();
    assert_int_equal(added_events(base), 0);
    event_base_free(base);
    receiver_close(&r);
}

static void watchdog_pid_rule(void **state)
{
    (void)state;
    struct receiver r;
    receiver_open_path(&r);
    setenv("WATCHDOG_USEC", "200000", 1);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    char pid[32];

    /* Meant for another process (e.g. a parent that forked us): no pings. */
    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(sdnotify_init(base), 0);
    assert_int_equal(added_events(base), 0);
    assert_int_equal(run_and_count_pings(base, &r, 250), 0);

    /* Meant for us: pings. */
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(sdnotify_init(base), 0);   /* re-init releases the old state */
    assert_int_equal(added_events(base), 1);
    assert_true(run_and_count_pings(base, &r, 250) >= 1);

    sdnotify_free();
    event_base_free(base);
    receiver_close(&r);
}

static void malformed_variables_fail(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct capture c;
    capture_start(&c);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    int rc_relative = sdnotify_init(base);
    sdnotify_ready();   /* no socket: no-op */
    setenv("NOTIFY_SOCKET", "@", 1);
    int rc_empty_abstract = sdnotify_init(base);
    char longpath[200] = "/";
    memset(longpath + 1, 'x', sizeof longpath - 2);
    longpath[sizeof longpath - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    int rc_long = sdnotify_init(base);
    setenv("NOTIFY_SOCKET", "/run/does-not-matter", 1);
    setenv("WATCHDOG_USEC", "soon", 1);
    int rc_usec = sdnotify_init(base);
    setenv("WATCHDOG_USEC", "0", 1);
    int rc_zero = sdnotify_init(base);
    setenv("WATCHDOG_USEC", "200000", 1);
    setenv("WATCHDOG_PID", "me", 1);
    int rc_pid = sdnotify_init(base);
    int events = added_events(base);
    char *out = capture_stop(&c);
    assert_int_equal(rc_relative, -1);
    assert_int_equal(rc_empty_abstract, -1);
    assert_int_equal(rc_long, -1);
    assert_int_equal(rc_usec, -1);
    assert_int_equal(rc_zero, -1);
    assert_int_equal(rc_pid, -1);
    assert_int_equal(events, 0);
    assert_int_equal(count_lines(out), 6);
    assert_non_null(strstr(out, "NOTIFY_SOCKET"));
    assert_non_null(strstr(out, "WATCHDOG_USEC"));
    assert_non_null(strstr(out, "WATCHDOG_PID"));
    free(out);
    sdnotify_free();
    event_base_free(base);
}

static void failures_logged_once(void **state)
{
    (void)state;
    /* Nobody listens at this path: every send fails with ENOENT/ECONNREFUSED. */
    struct receiver r;
    receiver_open_path(&r);
    close(r.fd);
    unlink(r.path);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(sdnotify_init(base), 0);
    struct capture c;
    capture_start(&c);
    sdnotify_ready();
    sdnotify_status("a");
    sdnotify_stopping();
    char *out = capture_stop(&c);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "NOTIFY_SOCKET"));
    free(out);
    sdnotify_free();
    event_base_free(base);
    rmdir(r.dir);
}

static void full_receiver_never_blocks(void **state)
{
    (void)state;
    /* The receiver never reads: its queue fills and sends must fail at once
     * (EAGAIN) instead of blocking. The alarm turns a hang into a failure. */
    struct receiver r;
    receiver_open_path(&r);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(sdnotify_init(base), 0);
    struct capture c;
    capture_start(&c);
    alarm(10);
    for (int i = 0; i < 5000; i++)
        sdnotify_status("filling the queue");
    alarm(0);
    char *out = capture_stop(&c);
    assert_int_equal(count_lines(out), 1);
    free(out);
    char buf[128];
    assert_true(recv_msg(&r, buf, sizeof buf, 0) > 0);   /* the early ones arrived */
    assert_string_equal(buf, "STATUS=filling the queue");
    sdnotify_free();
    event_base_free(base);
    receiver_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(no_socket_is_silent_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(calls_before_init_are_noops, setup, teardown),
        cmocka_unit_test_setup_teardown(ready_status_stopping_on_path_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(abstract_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(watchdog_pings_at_half_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(watchdog_pid_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_variables_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(failures_logged_once, setup, teardown),
        cmocka_unit_test_setup_teardown(full_receiver_never_blocks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
