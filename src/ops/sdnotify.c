/* ops/sdnotify: owns the AF_UNIX datagram socket to systemd's $NOTIFY_SOCKET, the
 * destination address, and the watchdog timer (a persistent libevent timer at half of
 * $WATCHDOG_USEC that sends WATCHDOG=1, so a stalled loop stops the pings and systemd
 * restarts the service). The protocol is sd_notify(3)'s: one datagram of
 * newline-separated VAR=value lines. Sends use MSG_DONTWAIT|MSG_NOSIGNAL on a
 * non-blocking socket, so they never block the loop; the first failure is logged and
 * later ones are dropped silently (a lost READY=1 shows up as a systemd start timeout).
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID itself: they are systemd's
 * protocol, not service configuration (src/config.c). */
#include "ops/sdnotify.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define STATUS_MAX 200

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;
static struct event *watchdog_timer;
static bool send_failure_logged;

static void notify_send(const char *msg)
{
    if (notify_fd < 0)
        return;
    size_t len = strlen(msg);
    ssize_t n = sendto(notify_fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&notify_addr, notify_addr_len);
    if (n == (ssize_t)len || send_failure_logged)
        return;
    send_failure_logged = true;
    if (n < 0)
        log_warn("sdnotify: cannot send to NOTIFY_SOCKET: %s (further failures not logged)",
                 strerror(errno));
    else
        log_warn("sdnotify: short send to NOTIFY_SOCKET (further failures not logged)");
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    notify_send("WATCHDOG=1");
}

/* Parse a non-negative decimal integer with nothing after it. */
static int parse_ull(const char *s, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Fill notify_addr from NOTIFY_SOCKET's value. */
static int set_address(const char *path)
{
    size_t len = strlen(path);
    memset(&notify_addr, 0, sizeof notify_addr);
    notify_addr.sun_family = AF_UNIX;
    if (path[0] == '/') {
        if (len >= sizeof notify_addr.sun_path)
            return -1;
        memcpy(notify_addr.sun_path, path, len + 1);
        notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
    }
    if (path[0] == '@' && len >= 2) {
        /* Abstract namespace: a leading NUL byte, the rest of the name, no terminator;
         * the length given to the kernel delimits the name. */
        if (len > sizeof notify_addr.sun_path)
            return -1;
        notify_addr.sun_path[0] = '\0';
        memcpy(notify_addr.sun_path + 1, path + 1, len - 1);
        notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        return 0;
    }
    return -1;
}

/* Arm the watchdog timer when WATCHDOG_USEC is meant for this process. */
static int watchdog_init(struct event_base *base)
{
    const char *usec_s = getenv("WATCHDOG_USEC");
    if (!usec_s || !*usec_s)
        return 0;
    const char *pid_s = getenv("WATCHDOG_PID");
    if (pid_s && *pid_s) {
        unsigned long long pid;
        if (parse_ull(pid_s, &pid) < 0) {
            log_error("sdnotify: WATCHDOG_PID is not a process id");
            return -1;
        }
        if (pid != (unsigned long long)getpid()) {
            log_debug("sdnotify: WATCHDOG_PID is another process: no watchdog pings");
            return 0;
        }
    }
    unsigned long long usec;
    if (parse_ull(usec_s, &usec) < 0 || usec == 0) {
        log_error("sdnotify: WATCHDOG_USEC must be a positive number of microseconds");
        return -1;
    }
    unsigned long long half = usec / 2;
    if (half == 0)
        half = 1;
    struct timeval tv = {(time_t)(half / 1000000), (suseconds_t)(half % 1000000)};
    watchdog_timer = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
    if (!watchdog_timer || event_add(watchdog_timer, &tv) < 0) {
        log_error("sdnotify: cannot arm the watchdog timer");
        return -1;
    }
    log_debug("sdnotify: watchdog pings every %llu ms", half / 1000);
    return 0;
}

int sdnotify_init(struct event_base *base)
{
    sdnotify_free();
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    if (set_address(path) < 0) {
        log_error("sdnotify: NOTIFY_SOCKET must be an absolute path or an '@' abstract "
                  "socket name that fits a unix socket address");
        return -1;
    }
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (notify_fd < 0) {
        log_error("sdnotify: cannot create the notify socket: %s", strerror(errno));
        return -1;
    }
    if (watchdog_init(base) < 0) {
        sdnotify_free();
        return -1;
    }
    return 0;
}

void sdnotify_status(const char *text)
{
    if (notify_fd < 0 || !text)
        return;
    char msg[sizeof "STATUS=" + STATUS_MAX];
    size_t n = strlen(text);
    if (n > STATUS_MAX) {
        n = STATUS_MAX;
        /* Do not cut a UTF-8 sequence: back off over continuation bytes. */
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(msg, "STATUS=", 7);
    for (size_t i = 0; i < n; i++)
        msg[7 + i] = (text[i] == '\n' || text[i] == '\r') ? ' ' : text[i];
    msg[7 + n] = '\0';
    notify_send(msg);
}

void sdnotify_ready(void)
{
    notify_send("READY=1\nSTATUS=Serving requests");
}

void sdnotify_stopping(void)
{
    notify_send("STOPPING=1\nSTATUS=Draining requests in flight");
}

void sdnotify_free(void)
{
    if (watchdog_timer) {
        event_free(watchdog_timer);
        watchdog_timer = NULL;
    }
    if (notify_fd >= 0) {
        close(notify_fd);
        notify_fd = -1;
    }
    memset(&notify_addr, 0, sizeof notify_addr);
    notify_addr_len = 0;
    send_failure_logged = false;
}
