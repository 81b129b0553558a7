/* log: owns the log level/format and the writing of one line per event to stderr.
 * Timestamps are UTC ISO-8601 with milliseconds. Once attached to the event loop, lines
 * are gathered and written with one write() per loop iteration (an event made active on
 * the first line runs after the iteration's other callbacks); warn and error lines, a
 * full buffer, log_flush() and log_detach() write at once. Without a loop, one write()
 * per line. libevent's own log goes through here too (log_capture_libevent). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/json_out.h"

#define LOG_BUF_MAX (64 * 1024)

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_FORMAT_JSON;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level min, enum log_format fmt)
{
    min_level = min;
    format = fmt;
}

int log_enabled(enum log_level lvl)
{
    return lvl >= min_level;
}

static void now_iso(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static char pending[LOG_BUF_MAX];
static size_t used;
static struct event *flush_ev;
static int flush_scheduled;
static int direct; /* inside libevent's log callback: no libevent call (event_active) allowed */

static void write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t r = write(STDERR_FILENO, s, n);
        if (r <= 0)
            return; /* nowhere to log to */
        s += r;
        n -= (size_t)r;
    }
}

void log_flush(void)
{
    if (used)
        write_all(pending, used);
    used = 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    flush_scheduled = 0;
    log_flush();
}

int log_attach(struct event_base *base)
{
    if (!flush_ev && !(flush_ev = event_new(base, -1, 0, flush_cb, NULL)))
        return -1;
    return 0;
}

void log_detach(void)
{
    log_flush();
    if (flush_ev)
        event_free(flush_ev);
    flush_ev = NULL;
    flush_scheduled = 0;
}

/* One line: buffered while attached (whole lines only), else one write(). */
static void write_line(const char *s, size_t n, enum log_level lvl)
{
    if (!flush_ev || direct || n + 1 > LOG_BUF_MAX) {
        log_flush();
        char *line = malloc(n + 1);
        if (!line)
            return;
        memcpy(line, s, n);
        line[n] = '\n';
        write_all(line, n + 1);
        free(line);
        return;
    }
    if (used + n + 1 > LOG_BUF_MAX)
        log_flush();
    memcpy(pending + used, s, n);
    pending[used + n] = '\n';
    used += n + 1;
    if (lvl >= LOG_WARN)
        log_flush(); /* problems are on disk before anything else happens */
    else if (!flush_scheduled) {
        flush_scheduled = 1;
        event_active(flush_ev, 0, 0);
    }
}

/* The one place a line is composed: time, level, msg, then the members (NULL: none). */
void log_members(enum log_level lvl, const char *msg, const char *members, size_t n)
{
    if (!log_enabled(lvl))
        return;
    char ts[40];
    now_iso(ts, sizeof ts);
    const char *level = level_names[lvl];
    size_t mlen = strlen(msg);
    struct json_out o;
    json_out_init(&o);
    if (format == LOG_FORMAT_JSON) {
        if (!json_out_valid(msg, mlen))
            msg = "(invalid utf-8)", mlen = strlen(msg);
        json_out_lit(&o, "{\"time\":");
        json_out_str(&o, ts, strlen(ts));
        json_out_lit(&o, ",\"level\":");
        json_out_str(&o, level, strlen(level));
        json_out_lit(&o, ",\"msg\":");
        json_out_str(&o, msg, mlen);
        if (members && n) {
            json_out_lit(&o, ",");
            json_out_raw(&o, members, n);
        }
        json_out_lit(&o, "}");
    } else {
        json_out_raw(&o, ts, strlen(ts));
        json_out_lit(&o, " ");
        json_out_raw(&o, level, strlen(level));
        json_out_lit(&o, " ");
        json_out_raw(&o, msg, mlen);
        if (members) {
            json_out_lit(&o, " {");
            json_out_raw(&o, members, n);
            json_out_lit(&o, "}");
        }
    }
    size_t len;
    char *line = json_out_finish(&o, &len);
    if (line) {
        write_line(line, len, lvl);
        free(line);
    }
}

void log_fields(enum log_level lvl, const char *msg, json_t *fields)
{
    if (!log_enabled(lvl)) {
        json_decref(fields);
        return;
    }
    /* "{...}": the members are what the braces hold */
    char *s = fields ? json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    size_t n = s ? strlen(s) : 0;
    log_members(lvl, msg, n >= 2 ? s + 1 : NULL, n >= 2 ? n - 2 : 0);
    free(s);
    json_decref(fields);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (!log_enabled(lvl))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fields(lvl, buf, NULL);
}

/* libevent's own messages (its warnings about descriptors, backends, DNS...), as our lines
 * with "source":"libevent". libevent forbids calling it from this callback, so the line is
 * written at once, never through the flush event. */
static void on_libevent_log(int severity, const char *msg)
{
    enum log_level lvl;
    switch (severity) {
    case EVENT_LOG_DEBUG:
        lvl = LOG_DEBUG;
        break;
    case EVENT_LOG_MSG:
        lvl = LOG_INFO;
        break;
    case EVENT_LOG_WARN:
        lvl = LOG_WARN;
        break;
    default:
        lvl = LOG_ERROR;
        break;
    }
    direct++;
    log_fields(lvl, msg ? msg : "", json_pack("{s:s}", "source", "libevent"));
    direct--;
}

void log_capture_libevent(void)
{
    event_set_log_callback(on_libevent_log);
}
