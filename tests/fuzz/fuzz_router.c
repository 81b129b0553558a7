/* tests/fuzz/fuzz_router: router_match against a copy of the real route table
 * (app_routes), url_query_get, route_param and router_allow_header.
 * Input: "METHOD\nPATH[?QUERY]\nKEY" (missing parts are empty); the last byte of KEY
 * doubles as the output buffer size for url_query_get and router_allow_header, which
 * get buffers of exactly that size.
 * Properties: a found route accepts the method and its pattern has as many `:name`
 * segments as parameters were returned, each a non-empty slice of the path without
 * '/'; route_param finds each of them; METHOD_NOT_ALLOWED reports a non-empty Allow
 * set without the method; a query value fits its buffer, is NUL-terminated and has
 * no NUL inside. */
#include "fuzz.h"

#include "app.h"
#include "http/router.h"

static struct route *table;   /* copy of the real table, made once */
static size_t ntable;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const struct route *r = app_routes(&ntable);
    table = malloc(ntable * sizeof *table);
    if (!table)
        abort();
    memcpy(table, r, ntable * sizeof *table);
    return 0;
}

static size_t count_params(const char *pattern)
{
    size_t n = 0;
    for (const char *p = pattern; (p = strchr(p, '/')) != NULL; p++)
        n += p[1] == ':';
    return n;
}

static void check_match(unsigned method, const char *path)
{
    const struct route *rt = NULL;
    struct route_params params;
    unsigned allowed = 0xdead;
    memset(&params, 0xa5, sizeof params);
    enum route_result res = router_match(table, ntable, method, path, &rt, &params, &allowed);
    size_t plen = strlen(path);
    switch (res) {
    case ROUTE_FOUND:
        FUZZ_ASSERT(rt >= table && rt < table + ntable);
        FUZZ_ASSERT(rt->methods & method);
        FUZZ_ASSERT(params.n >= 0 && params.n <= ROUTE_MAX_PARAMS);
        FUZZ_ASSERT((size_t)params.n == count_params(rt->pattern));
        for (int i = 0; i < params.n; i++) {
            FUZZ_ASSERT(params.p[i].value >= path && params.p[i].len > 0 &&
                        params.p[i].value + params.p[i].len <= path + plen);
            FUZZ_ASSERT(memchr(params.p[i].value, '/', params.p[i].len) == NULL);
            char name[64];
            FUZZ_ASSERT(params.p[i].name_len < sizeof name);
            memcpy(name, params.p[i].name, params.p[i].name_len);
            name[params.p[i].name_len] = '\0';
            const char *v = NULL;
            int l = route_param(&params, name, &v);
            FUZZ_ASSERT(l > 0 && v != NULL);
        }
        FUZZ_ASSERT(route_param(&params, "no-such-param", &(const char *){NULL}) == -1);
        break;
    case ROUTE_METHOD_NOT_ALLOWED:
        FUZZ_ASSERT(allowed != 0 && !(allowed & method));
        break;
    case ROUTE_NOT_FOUND:
        FUZZ_ASSERT(allowed == 0);
        break;
    default:
        FUZZ_ASSERT(0 && "unknown router_match result");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024)
        return 0;
    const uint8_t *part[3];
    size_t len[3];
    size_t n = fuzz_split(data, size, '\n', part, len, 3);
    char *method_name = fuzz_strndup(part[0], len[0]);
    char *target = n > 1 ? fuzz_strndup(part[1], len[1]) : fuzz_strndup("", 0);
    char *key = n > 2 ? fuzz_strndup(part[2], len[2]) : fuzz_strndup("", 0);
    size_t buflen = n > 2 && len[2] ? part[2][len[2] - 1] : 64;

    unsigned method = http_method_from_name(method_name);
    FUZZ_ASSERT(method != 0 && (method & (method - 1)) == 0);
    if (method != HTTP_OTHER)
        FUZZ_ASSERT(http_method_from_name(http_method_name(method)) == method);

    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    check_match(method, target);
    check_match(HTTP_GET, target);

    /* query string */
    if (query) {
        void *block;
        char *buf = fuzz_out_buf(buflen, &block);
        int r = url_query_get(query, key, buf, buflen);
        FUZZ_ASSERT(r >= -1);
        if (r >= 0) {
            FUZZ_ASSERT((size_t)r < buflen && buf[r] == '\0' && strlen(buf) == (size_t)r);
            FUZZ_ASSERT((size_t)r <= strlen(query));
        }
        free(block);
    }

    /* Allow header for any method set, into exactly buflen bytes */
    unsigned methods = method;
    for (size_t i = 0; i < size; i++)
        methods = methods * 31u + data[i];
    methods &= 0xff;
    void *block;
    char *allow = fuzz_out_buf(buflen, &block);
    size_t used = router_allow_header(methods, allow, buflen);
    if (buflen) {
        FUZZ_ASSERT(used < buflen && allow[used] == '\0' && strlen(allow) == used);
    } else {
        FUZZ_ASSERT(used == 0);
    }
    free(block);

    free(method_name);
    free(target);
    free(key);
    return 0;
}
