/* tests/unit/test_curl_lib: libcurl loaded at the first use (net/curl_lib): not mapped
 * before it, every entry point resolved, one table for the life of the process, and a
 * library at least as new as net/fetch needs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "net/curl_lib.h"

static bool libcurl_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/libcurl.so.4"))
            found = true;
    fclose(f);
    return found;
}

static void test_loaded_at_the_first_call(void **state)
{
    (void)state;
    /* This program does not link libcurl either. */
    assert_false(libcurl_mapped());
    char msg[128] = "";
    const struct curl_lib *cl = curl_lib_load(msg, sizeof msg);
    assert_non_null(cl);
    assert_string_equal(msg, "");
    assert_true(libcurl_mapped());
    /* The same table afterwards, without loading again. */
    assert_ptr_equal(curl_lib_load(msg, sizeof msg), cl);

    /* Every entry point resolved: a table with a hole would crash at its first use. */
    for (size_t off = 0; off < sizeof *cl; off += sizeof(void *)) {
        void *p;
        memcpy(&p, (const char *)cl + off, sizeof p);
        assert_non_null(p);
    }

    const curl_version_info_data *v = cl->version_info(CURLVERSION_NOW);
    assert_non_null(v);
    assert_true(v->version_num >= CURL_LIB_MIN_VERSION);
}

static void test_entry_points_work(void **state)
{
    (void)state;
    char msg[128];
    const struct curl_lib *cl = curl_lib_load(msg, sizeof msg);
    assert_non_null(cl);
    /* The URL parser through the table, the way net/fetch uses it. */
    CURLU *u = cl->url();
    assert_non_null(u);
    assert_int_equal(cl->url_set(u, CURLUPART_URL, "https://api.github.com/user?x=1", 0), CURLUE_OK);
    char *host = NULL;
    assert_int_equal(cl->url_get(u, CURLUPART_HOST, &host, 0), CURLUE_OK);
    assert_string_equal(host, "api.github.com");
    cl->free(host);
    cl->url_cleanup(u);
    assert_string_equal(cl->easy_strerror(CURLE_OK), "No error");
    struct curl_slist *l = cl->slist_append(NULL, "Expect:");
    assert_non_null(l);
    assert_string_equal(l->data, "Expect:");
    cl->slist_free_all(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaded_at_the_first_call),
        cmocka_unit_test(test_entry_points_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
