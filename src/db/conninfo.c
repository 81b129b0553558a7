/* db/conninfo: owns the libpq keyword/value arrays (and the strings they point to) built
 * from the configuration: the user's settings first, then the service's own. */
#include "db/conninfo.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KW 40

struct db_conninfo {
    const char *kw[MAX_KW + 1];
    const char *val[MAX_KW + 1];
    char *owned[MAX_KW];
    int n, nowned;
    PQconninfoOption *parsed;
};

static const char *keep(struct db_conninfo *ci, char *s)
{
    if (s && ci->nowned < MAX_KW)
        ci->owned[ci->nowned++] = s;
    return s;
}

static void ci_set(struct db_conninfo *ci, const char *k, const char *v)
{
    for (int i = 0; i < ci->n; i++)
        if (strcmp(ci->kw[i], k) == 0) {
            ci->val[i] = v;
            return;
        }
    if (ci->n < MAX_KW) {
        ci->kw[ci->n] = k;
        ci->val[ci->n++] = v;
    }
}

static const char *ci_get(const struct db_conninfo *ci, const char *k)
{
    for (int i = 0; i < ci->n; i++)
        if (strcmp(ci->kw[i], k) == 0)
            return ci->val[i];
    return NULL;
}

/* The pool needs a writable server: target_session_attrs is read-write unless the
 * settings ask for any (or primary). */
static int check_session_attrs(struct db_conninfo *ci, char *err, size_t errlen)
{
    const char *t = ci_get(ci, "target_session_attrs");
    if (!t || !*t) {
        ci_set(ci, "target_session_attrs", "read-write");
        return 0;
    }
    if (strcmp(t, "read-write") != 0 && strcmp(t, "any") != 0 && strcmp(t, "primary") != 0) {
        snprintf(err, errlen, "target_session_attrs must be read-write, primary or any (the service writes)");
        return -1;
    }
    return 0;
}

static int build(struct db_conninfo *ci, const struct db_conninfo_params *c, char *err, size_t errlen)
{
    if (c->database_url && *c->database_url) {
        char *perr = NULL;
        ci->parsed = PQconninfoParse(c->database_url, &perr);
        if (!ci->parsed) {
            snprintf(err, errlen, "DATABASE_URL is not a valid connection URI");
            PQfreemem(perr);
            return -1;
        }
        for (PQconninfoOption *o = ci->parsed; o->keyword; o++)
            if (o->val && *o->val)
                ci_set(ci, o->keyword, o->val);
    } else {
        if (c->host) ci_set(ci, "host", c->host);
        if (c->port) ci_set(ci, "port", c->port);
        if (c->dbname) ci_set(ci, "dbname", c->dbname);
        if (c->user) ci_set(ci, "user", c->user);
        if (c->password) ci_set(ci, "password", c->password);
    }
    const char *opts = ci_get(ci, "options");
    char *merged = NULL;
    if (asprintf(&merged, "%s%s-c statement_timeout=%d -c idle_in_transaction_session_timeout=%d",
                 opts ? opts : "", opts ? " " : "", c->statement_timeout_ms,
                 c->idle_in_transaction_timeout_ms) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ci_set(ci, "options", keep(ci, merged));
    if (!ci_get(ci, "application_name"))
        ci_set(ci, "application_name", "integrationsd");
    ci_set(ci, "keepalives", "1");
    ci_set(ci, "keepalives_idle", "30");
    ci_set(ci, "keepalives_interval", "10");
    ci_set(ci, "keepalives_count", "3");
    ci_set(ci, "tcp_user_timeout", "15000");
    /* libpq's default, prefer, makes every connection look for a Kerberos credential
     * cache first (the Kerberos libraries' code paged in: 0.6 MiB of the process).
     * GSSAPI encryption is used when asked for: in the URL, by PGGSSENCMODE, or by a
     * connection service file entry (which a keyword set here would override). */
    bool asked = ci_get(ci, "gssencmode") || ci_get(ci, "service") ||
                 (c->env_gssencmode && *c->env_gssencmode) || (c->env_service && *c->env_service);
    if (!asked)
        ci_set(ci, "gssencmode", "disable");
    return check_session_attrs(ci, err, errlen);
}

struct db_conninfo *db_conninfo_new(const struct db_conninfo_params *p, char *err, size_t errlen)
{
    struct db_conninfo *ci = calloc(1, sizeof *ci);
    if (!ci) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (build(ci, p, err, errlen) < 0) {
        db_conninfo_free(ci);
        return NULL;
    }
    return ci;
}

void db_conninfo_free(struct db_conninfo *ci)
{
    if (!ci)
        return;
    for (int i = 0; i < ci->nowned; i++)
        free(ci->owned[i]);
    if (ci->parsed)
        PQconninfoFree(ci->parsed);
    free(ci);
}

const char *const *db_conninfo_keywords(const struct db_conninfo *ci)
{
    return ci->kw;
}

const char *const *db_conninfo_values(const struct db_conninfo *ci)
{
    return ci->val;
}
