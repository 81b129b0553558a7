/* log: owns the log level/format and the writing of one line per event to stderr.
 * Timestamps are UTC ISO-8601 with milliseconds. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static void write_line(const char *s, size_t n)
{
    /* One write per line keeps lines whole when several processes share stderr. */
    char *line = malloc(n + 1);
    if (!line)
        return;
    memcpy(line, s, n);
    line[n] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n + 1);
    (void)r;
    free(line);
}

void log_fields(enum log_level lvl, const char *msg, json_t *fields)
{
    if (!log_enabled(lvl)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    now_iso(ts, sizeof ts);
    if (format == LOG_FORMAT_JSON) {
        json_t *o = json_object();
        if (!o) {
            json_decref(fields);
            return;
        }
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "level", json_string(level_names[lvl]));
        json_t *m = json_string(msg);
        json_object_set_new(o, "msg", m ? m : json_string("(invalid utf-8)"));
        if (fields)
            json_object_update(o, fields);
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (s) {
            write_line(s, strlen(s));
            free(s);
        }
        json_decref(o);
    } else {
        char *extra = fields ? json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
        char *line = NULL;
        int n = asprintf(&line, "%s %s %s%s%s", ts, level_names[lvl], msg, extra ? " " : "",
                         extra ? extra : "");
        if (n >= 0) {
            write_line(line, (size_t)n);
            free(line);
        }
        free(extra);
    }
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
