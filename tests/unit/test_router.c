/* Unit tests for http/router: exact matching, :params, 404 vs 405, Allow text,
 * query-string decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/router.h"

static void h_list(struct http_req *r) { (void)r; }
static void h_status(struct http_req *r) { (void)r; }
static void h_name(struct http_req *r) { (void)r; }
static void h_id(struct http_req *r) { (void)r; }
static void h_send(struct http_req *r) { (void)r; }

static const struct route routes[] = {
    {HTTP_GET | HTTP_POST, "/api/llm-keys", h_list, 0, "list"},
    {HTTP_GET, "/api/llm-keys/status", h_status, 0, "status"},
    {HTTP_GET, "/api/llm-keys/:name", h_name, 0, "name"},
    {HTTP_PATCH | HTTP_DELETE, "/api/llm-keys/:id", h_id, 0, "id"},
    {HTTP_POST, "/api/slack/:id/send", h_send, 0, "send"},
};
#define N (sizeof routes / sizeof routes[0])

static enum route_result match(unsigned m, const char *path, const struct route **rt,
                               struct route_params *p, unsigned *allowed)
{
    return router_match(routes, N, m, path, rt, p, allowed);
}

static void exact_paths_only(void **state)
{
    const struct route *rt;
    struct route_params p;
    unsigned allowed;
    assert_int_equal(match(HTTP_GET, "/api/llm-keys", &rt, &p, &allowed), ROUTE_FOUND);
    assert_ptr_equal(rt->handler, h_list);
    /* libevhtp would match these by prefix; we must not */
    assert_int_equal(match(HTTP_GET, "/api/llm-keysX", &rt, &p, &allowed), ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/api/llm-keys/", &rt, &p, &allowed), ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/api/llm-keys/a/b", &rt, &p, &allowed), ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/api", &rt, &p, &allowed), ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "", &rt, &p, &allowed), ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/", &rt, &p, &allowed), ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "//api/llm-keys", &rt, &p, &allowed), ROUTE_NOT_FOUND);
}

static void literal_before_param(void **state)
{
    const struct route *rt;
    struct route_params p;
    assert_int_equal(match(HTTP_GET, "/api/llm-keys/status", &rt, &p, NULL), ROUTE_FOUND);
    assert_ptr_equal(rt->handler, h_status);
    assert_int_equal(p.n, 0);
    assert_int_equal(match(HTTP_GET, "/api/llm-keys/OpenAI", &rt, &p, NULL), ROUTE_FOUND);
    assert_ptr_equal(rt->handler, h_name);
    const char *v;
    assert_int_equal(route_param(&p, "name", &v), 6);
    assert_memory_equal(v, "OpenAI", 6);
    assert_int_equal(route_param(&p, "id", &v), -1);
}

static void params_and_methods(void **state)
{
    const struct route *rt;
    struct route_params p;
    const char *v;
    assert_int_equal(match(HTTP_DELETE, "/api/llm-keys/42", &rt, &p, NULL), ROUTE_FOUND);
    assert_ptr_equal(rt->handler, h_id);
    assert_int_equal(route_param(&p, "id", &v), 2);
    assert_memory_equal(v, "42", 2);
    assert_int_equal(match(HTTP_POST, "/api/slack/7/send", &rt, &p, NULL), ROUTE_FOUND);
    assert_int_equal(route_param(&p, "id", &v), 1);
    assert_int_equal(match(HTTP_POST, "/api/slack//send", &rt, &p, NULL), ROUTE_NOT_FOUND);
}

static void method_not_allowed_lists_all(void **state)
{
    const struct route *rt;
    struct route_params p;
    unsigned allowed = 0;
    assert_int_equal(match(HTTP_PUT, "/api/llm-keys", &rt, &p, &allowed), ROUTE_METHOD_NOT_ALLOWED);
    assert_int_equal(allowed, HTTP_GET | HTTP_POST);
    assert_int_equal(match(HTTP_PUT, "/api/llm-keys/5", &rt, &p, &allowed), ROUTE_METHOD_NOT_ALLOWED);
    assert_int_equal(allowed, HTTP_GET | HTTP_PATCH | HTTP_DELETE);
    char buf[64];
    router_allow_header(allowed, buf, sizeof buf);
    assert_string_equal(buf, "GET, PATCH, DELETE");
    router_allow_header(0, buf, sizeof buf);
    assert_string_equal(buf, "");
    router_allow_header(HTTP_GET | HTTP_POST, buf, 8); /* truncates whole names only */
    assert_string_equal(buf, "GET");
}

static void method_names(void **state)
{
    assert_int_equal(http_method_from_name("PATCH"), HTTP_PATCH);
    assert_int_equal(http_method_from_name("patch"), HTTP_OTHER);
    assert_int_equal(http_method_from_name("BREW"), HTTP_OTHER);
    assert_string_equal(http_method_name(HTTP_DELETE), "DELETE");
}

static void query_strings(void **state)
{
    char buf[32];
    assert_int_equal(url_query_get("a=1&refresh=true", "refresh", buf, sizeof buf), 4);
    assert_string_equal(buf, "true");
    assert_int_equal(url_query_get("x=a%20b+c", "x", buf, sizeof buf), 5);
    assert_string_equal(buf, "a b c");
    assert_int_equal(url_query_get("flag", "flag", buf, sizeof buf), 0);
    assert_int_equal(url_query_get("a=1", "b", buf, sizeof buf), -1);
    assert_int_equal(url_query_get("ab=1", "a", buf, sizeof buf), -1);
    assert_int_equal(url_query_get("x=%zz", "x", buf, sizeof buf), -1);
    assert_int_equal(url_query_get("x=%4", "x", buf, sizeof buf), -1);
    assert_int_equal(url_query_get("x=%00", "x", buf, sizeof buf), -1);
    assert_int_equal(url_query_get("x=0123456789", "x", buf, 5), -1);
    assert_int_equal(url_query_get("", "x", buf, sizeof buf), -1);
    assert_int_equal(url_query_get("&&x=1&", "x", buf, sizeof buf), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_paths_only),
        cmocka_unit_test(literal_before_param),
        cmocka_unit_test(params_and_methods),
        cmocka_unit_test(method_not_allowed_lists_all),
        cmocka_unit_test(method_names),
        cmocka_unit_test(query_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
