/* log: structured logs on stderr, one JSON object (or one text line) per event.
 * Callers never pass secrets, header values or bodies. */
#ifndef IDX_LOG_H
#define IDX_LOG_H
#include <jansson.h>
#include "config.h"
#include "util/compiler.h"

void log_setup(enum log_level min, enum log_format fmt);
/* Gather lines and write them once per loop iteration (see log.c). 0 or -1. */
struct event_base;
MUSTCHECK int log_attach(struct event_base *base);
/* Route libevent's own log messages through here (debug, msg, warn, err -> debug, info,
 * warn, error), marked "source":"libevent". Call once, before the loop is created.
 * (libevhtp has no log hook: its errors reach us as return values.) */
void log_capture_libevent(void);
/* Write what is gathered; then one write per line again. */
void log_detach(void);
void log_flush(void);
int log_enabled(enum log_level lvl);

/* Log `msg` with extra fields (stolen; may be NULL). */
void log_fields(enum log_level lvl, const char *msg, json_t *fields);
/* The same line with its fields already written as JSON object members ("a":1,"b":"x"
 * without the braces; util/json_out; NULL: none): no json_t, for the line of every
 * request. log_fields composes its lines through it. */
void log_members(enum log_level lvl, const char *msg, const char *members, size_t n);

/* printf-style message without extra fields. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
