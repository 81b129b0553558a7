/* Unit tests for ops/openapi: the built-in document is the JSON of doc/openapi.yaml, and its
 * set of (method, path) equals the server's route table (src/app.c) exactly: a route
 * added to one and not the other fails here. Path parameters compare by position only
 * (":id" in the table, "{id}" in the document). Public routes must say `security: []`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "http/router.h"
#include "ops/openapi.h"

#define MAXR 128

static const struct {
    unsigned bit;
    const char *name;
} methods[] = {{HTTP_GET, "get"},       {HTTP_POST, "post"},     {HTTP_PUT, "put"},
               {HTTP_PATCH, "patch"},   {HTTP_DELETE, "delete"}, {HTTP_HEAD, "head"},
               {HTTP_OPTIONS, "options"}};

/* "/a/:id/b" or "/a/{id}/b" -> "/a/{}/b" */
static void normalize(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 3 < len;) {
        if ((*p == ':' && p > in && p[-1] == '/') || *p == '{') {
            memcpy(out + o, "{}", 2);
            o += 2;
            char end = *p == '{' ? '}' : '/';
            while (*p && *p != end)
                p++;
            if (*p == '}')
                p++;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

struct set {
    char items[MAXR][160];
    size_t n;
};

static void add(struct set *s, const char *method, const char *path)
{
    char norm[128];
    normalize(path, norm, sizeof norm);
    assert_true(s->n < MAXR);
    snprintf(s->items[s->n++], sizeof s->items[0], "%s %s", method, norm);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void document_parses(void **state)
{
    json_error_t e;
    assert_int_equal(strlen(openapi_json), openapi_json_len);
    json_t *doc = json_loadb(openapi_json, openapi_json_len, 0, &e);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    assert_non_null(json_object_get(json_object_get(json_object_get(doc, "components"), "securitySchemes"), "Bearer"));
    json_decref(doc);
}

static void routes_equal_route_table(void **state)
{
    static struct set table, doc;
    table.n = doc.n = 0;
    size_t n;
    const struct route *r = app_routes(&n);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++)
            if (r[i].methods & methods[m].bit)
                add(&table, methods[m].name, r[i].pattern);

    json_t *j = json_loadb(openapi_json, openapi_json_len, 0, NULL);
    assert_non_null(j);
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(j, "paths"), path, item) {
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
            json_t *op = json_object_get(item, methods[m].name);
            if (!op)
                continue;
            add(&doc, methods[m].name, path);
            /* public in the table <=> security: [] in the document */
            bool is_public = false;
            for (size_t i = 0; i < n; i++) {
                char a[128], b[128];
                normalize(r[i].pattern, a, sizeof a);
                normalize(path, b, sizeof b);
                if ((r[i].methods & methods[m].bit) && strcmp(a, b) == 0)
                    is_public = !(r[i].flags & ROUTE_AUTH);
            }
            json_t *sec = json_object_get(op, "security");
            if (is_public != (sec && json_array_size(sec) == 0))
                fail_msg("%s %s: public in the route table: %d; security: [] in the document: %d",
                         methods[m].name, path, is_public, !is_public);
        }
    }
    json_decref(j);

    qsort(table.items, table.n, sizeof table.items[0], cmp);
    qsort(doc.items, doc.n, sizeof doc.items[0], cmp);
    for (size_t i = 0, k = 0; i < table.n || k < doc.n;) {
        int c = i == table.n ? 1 : k == doc.n ? -1 : strcmp(table.items[i], doc.items[k]);
        if (c < 0)
            fail_msg("route %s is in the route table but not in doc/openapi.yaml", table.items[i]);
        if (c > 0)
            fail_msg("route %s is in doc/openapi.yaml but not in the route table", doc.items[k]);
        i++, k++;
    }
    assert_int_equal(table.n, doc.n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(document_parses),
        cmocka_unit_test(routes_equal_route_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
