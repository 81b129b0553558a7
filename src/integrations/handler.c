/* integrations/handler: owns the helpers every integration handler shares (tenant
 * table names, the id path parameter, the reply to a failed statement). */
#include "integrations/handler.h"

#include <stdarg.h>
#include <stdio.h>

#include "db/pool.h"
#include "db/schema.h"
#include "http/reply.h"
#include "http/router.h"
#include "log.h"

int handler_table(struct http_req *r, const char *name, char *buf, size_t len)
{
    if (db_table(buf, len, r->auth.tenant, name) < 0) {
        log_error("tenant table name for %s does not fit", name);
        reply_internal(r);
        return -1;
    }
    return 0;
}

long long handler_id_param(const struct http_req *r, const char *name, char buf[HANDLER_ID_TEXT])
{
    const char *v;
    int len = route_param(&r->params, name, &v);
    if (len < 1 || len > 10 || v[0] == '0')
        return -1;
    long long id = 0;
    for (int i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        id = id * 10 + (v[i] - '0');
    }
    if (id > 2147483647LL)
        return -1;
    snprintf(buf, HANDLER_ID_TEXT, "%lld", id);
    return id;
}

int handler_sql(struct http_req *r, char *sql, size_t len, const char *tmpl, ...)
{
    va_list ap;
    va_start(ap, tmpl);
    int n = vsnprintf(sql, len, tmpl, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        log_error("statement does not fit its buffer (%zu bytes)", len);
        if (r)
            reply_internal(r);
        return -1;
    }
    return 0;
}

void reply_sql_failure(struct http_req *r, const struct db_result *res, const char *module, const char *what)
{
    if (res->status == DB_UNAVAILABLE) {
        reply_db_unavailable(r);
        return;
    }
    log_error("%s: %s failed: %s (%s)", module, what, res->message, res->sqlstate);
    reply_internal(r);
}
