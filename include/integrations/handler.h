/* integrations/handler: what every integration's request handlers share: the
 * tenant table name, the numeric id path parameter, the reply to a failed statement.
 * Each helper that replies says so; the request must not be answered twice. */
#ifndef IDX_INTEGRATIONS_HANDLER_H
#define IDX_INTEGRATIONS_HANDLER_H
#include <stddef.h>

#include "http/request.h"
#include "util/compiler.h"

struct db_result;

#define HANDLER_ID_TEXT 24 /* room for the canonical text of an id */

/* "\"<tenant>\".<name>" of the caller's tenant into buf. On failure (an invalid tenant,
 * a short buffer) replies 500 and returns -1; 0 otherwise. */
int handler_table(struct http_req *r, const char *name, char *buf, size_t len) MUSTCHECK;

/* The path parameter `name` as a positive int4 (1..2147483647, no sign, no leading
 * zero). Writes its canonical text into buf and returns it; -1 if absent or invalid
 * (nothing is replied: the caller's message differs per integration). */
long long handler_id_param(const struct http_req *r, const char *name, char buf[HANDLER_ID_TEXT])
    MUSTCHECK;

/* Format an SQL template (its %s are the caller's table names) into sql. When it does not
 * fit: logs, replies 500 to r if there is one, and returns -1; 0 otherwise. */
int handler_sql(struct http_req *r, char *sql, size_t len, const char *tmpl, ...)
    __attribute__((format(printf, 4, 5))) MUSTCHECK;

/* A statement failed: log "<module>: <what> failed: <message> (<sqlstate>)" and reply
 * 503 if the database is unavailable, else 500. */
void reply_sql_failure(struct http_req *r, const struct db_result *res, const char *module, const char *what);

#endif
