/* net/curl_lib: libcurl, loaded by the first outbound call instead of at exec.
 *
 * The binary does not link libcurl. Linked, it and the eight libraries only it needs
 * (nghttp2, libssh2, librtmp, libpsl, zstd, brotli twice, zlib) are mapped and
 * relocated by every exec: 1-3 ms of start-up and 0.6 MiB of PSS in a process that may
 * never call out. curl_lib_load() dlopens the same SONAME the link would have
 * recorded, checks the version, and fills a table of the entry points net/fetch uses;
 * the library then stays loaded for the life of the process (the pattern systemd uses
 * for its optional libraries).
 *
 * Cost on the loop: the first load maps libcurl and its eight libraries from the page
 * cache and relocates them, 1.6-1.9 ms (measured beside libpq and libcrypto, which it
 * shares), once per process; a failed load, retried by each outbound call, costs 7-80 us
 * (the loader's search), no more than a call that fails on its URL.
 *
 * Each field has the type of libcurl's own declaration (curl/curl.h, curl/urlapi.h), so
 * a call through the table is checked against libcurl's prototype (though not by
 * typecheck-gcc.h's per-option check of curl_easy_setopt's value, which is a macro). */
#ifndef IDX_NET_CURL_LIB_H
#define IDX_NET_CURL_LIB_H
#include <stddef.h>
#include <curl/curl.h>

/* What dlopen is asked for: libcurl's SONAME since 7.16 (Debian: libcurl4). */
#define CURL_LIB_SONAME "libcurl.so.4"
/* The oldest libcurl whose API net/fetch uses (CURLOPT_PROTOCOLS_STR, QUICK_EXIT); the
 * same floor as configure's check. */
#define CURL_LIB_MIN_VERSION 0x075500 /* 7.85.0 */

/* Every libcurl function net/fetch calls, without the curl_ prefix: X(name) for each. */
#define CURL_LIB_ENTRY_POINTS(X) \
    X(global_init) X(global_cleanup) X(version_info) X(easy_init) X(easy_setopt) \
    X(easy_getinfo) X(easy_cleanup) X(easy_strerror) X(multi_init) X(multi_setopt) \
    X(multi_add_handle) X(multi_remove_handle) X(multi_socket_action) \
    X(multi_info_read) X(multi_assign) X(multi_cleanup) X(multi_strerror) \
    X(slist_append) X(slist_free_all) X(url) X(url_set) X(url_get) X(url_cleanup) \
    X(url_strerror) X(free)

#define CURL_LIB_FIELD(name) __typeof__(curl_##name) *name;
struct curl_lib {
    CURL_LIB_ENTRY_POINTS(CURL_LIB_FIELD)
};
#undef CURL_LIB_FIELD

/* libcurl's entry points, loading the library on the first call (later calls return the
 * same table at once). NULL when it cannot be loaded, lacks an entry point, or is older
 * than CURL_LIB_MIN_VERSION; msg then says why, naming the library, and the next call
 * tries again. From the loop thread only. */
const struct curl_lib *curl_lib_load(char *msg, size_t msglen);

#endif
