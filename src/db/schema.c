/* db/schema: owns the DDL. Public objects are created in one transaction under an
 * advisory lock (several instances may start at once); tenant objects by a
 * PL/pgSQL function that takes a per-tenant advisory lock, so the first requests
 * of a new tenant, from any instance, cannot race each other. */
#include "db/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext('integrationsd:bootstrap'))";

static const char SQL_PUBLIC[] =
    "DO $do$ BEGIN\n"
    "  IF to_regtype('public.enum_llm_keys_provider') IS NULL THEN\n"
    "    CREATE TYPE public.enum_llm_keys_provider AS ENUM ('Anthropic', 'OpenAI', 'OpenRouter');\n"
    "  END IF;\n"
    "  CREATE TABLE IF NOT EXISTS public.integration_tenants (\n"
    "    schema_name VARCHAR(10) PRIMARY KEY,\n"
    "    organization_id BIGINT NOT NULL,\n"
    "    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now());\n"
    "END $do$";

/* Tenant tables: VerifyWise's definitions (reference section 3) plus our additions. */
static const char SQL_TENANT_FN[] =
    "CREATE OR REPLACE FUNCTION public.integrationsd_ensure_tenant(p_schema text, p_org bigint)\n"
    "RETURNS void LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF p_schema !~ '^[A-Za-z0-9]{10}$' THEN\n"
    "    RAISE EXCEPTION 'invalid tenant schema name';\n"
    "  END IF;\n"
    "  PERFORM pg_advisory_xact_lock(hashtext('integrationsd:tenant:' || p_schema));\n"
    "  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', p_schema);\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.llm_keys (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      key TEXT NOT NULL UNIQUE,\n"
    "      name public.enum_llm_keys_provider NOT NULL,\n"
    "      url TEXT,\n"
    "      model TEXT NOT NULL,\n"
    "      created_at TIMESTAMPTZ NOT NULL DEFAULT NOW())', p_schema);\n"
    "  EXECUTE format('ALTER TABLE %I.llm_keys ADD COLUMN IF NOT EXISTS key_fingerprint TEXT', p_schema);\n"
    "  EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS llm_keys_key_fingerprint_key\n"
    "      ON %I.llm_keys (key_fingerprint)', p_schema);\n"
    "  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.github_tokens (\n"
    "      id SERIAL PRIMARY KEY,\n"
    "      encrypted_token TEXT NOT NULL,\n"
    "      token_name VARCHAR(100) DEFAULT ''GitHub Personal Access Token'',\n"
    "      created_by INTEGER NOT NULL,\n"
    "      created_at TIMESTAMPTZ DEFAULT NOW(),\n"
    "      updated_at TIMESTAMPTZ DEFAULT NOW(),\n"
    "      last_used_at TIMESTAMPTZ)', p_schema);\n"
    "  INSERT INTO public.integration_tenants (schema_name, organization_id)\n"
    "    VALUES (p_schema, p_org)\n"
    "    ON CONFLICT (schema_name) DO UPDATE SET last_seen_at = now();\n"
    "END $fn$";

void db_schema_bootstrap(struct db_pool *p, db_callback cb, void *arg)
{
    const struct db_stmt stmts[] = {
        {SQL_LOCK, 0, NULL},
        {SQL_PUBLIC, 0, NULL},
        {SQL_TENANT_FN, 0, NULL},
    };
    db_submit(p, stmts, 3, cb, arg);
}

void db_schema_ensure_tenant(struct db_pool *p, const char *tenant, long long org,
                             db_callback cb, void *arg)
{
    char orgbuf[24];
    snprintf(orgbuf, sizeof orgbuf, "%lld", org);
    const char *params[] = {tenant, orgbuf};
    db_query(p, "SELECT public.integrationsd_ensure_tenant($1, $2::bigint)", 2, params, cb, arg);
}

int db_table(char *buf, size_t len, const char *tenant, const char *table)
{
    if (!tenant_name_valid(tenant))
        return -1;
    int n = snprintf(buf, len, "\"%s\".%s", tenant, table);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- tenant set ------------------------------------------------------------ */

struct tenant_set {
    size_t cap, used;
    char (*slots)[TENANT_HASH_LEN + 1];
};

static size_t slot_of(const char *t, size_t cap)
{
    size_t h = 1469598103934665603ull & (size_t)-1;
    for (; *t; t++)
        h = (h ^ (unsigned char)*t) * 1099511628211ull;
    return h & (cap - 1);
}

struct tenant_set *tenant_set_new(void)
{
    struct tenant_set *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cap = 64;
    s->slots = calloc(s->cap, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return NULL;
    }
    return s;
}

void tenant_set_free(struct tenant_set *s)
{
    if (s) {
        free(s->slots);
        free(s);
    }
}

bool tenant_set_has(const struct tenant_set *s, const char *t)
{
    for (size_t i = slot_of(t, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i][0])
            return false;
        if (strcmp(s->slots[i], t) == 0)
            return true;
    }
}

static void put(char (*slots)[TENANT_HASH_LEN + 1], size_t cap, const char *t)
{
    size_t i = slot_of(t, cap);
    while (slots[i][0])
        i = (i + 1) & (cap - 1);
    snprintf(slots[i], TENANT_HASH_LEN + 1, "%s", t);
}

int tenant_set_add(struct tenant_set *s, const char *t)
{
    if (!tenant_name_valid(t))
        return -1;
    if (tenant_set_has(s, t))
        return 0;
    if ((s->used + 1) * 2 > s->cap) {
        size_t ncap = s->cap * 2;
        char(*ns)[TENANT_HASH_LEN + 1] = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i][0])
                put(ns, ncap, s->slots[i]);
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    put(s->slots, s->cap, t);
    s->used++;
    return 0;
}
