/* net/curl_lib: libcurl, loaded by the first outbound call instead of at exec.
 *
 * The binary does not link libcurl. Linked, it and the eight libraries only it needs
 * (nghttp2, libssh2, librtmp, libpsl, zstd, brotli twice, zlib) are mapped and
 * relocated by every exec: 2-3 ms of start-up and 0.5 MiB of PSS in a process that may
 * never call out. curl_lib_load() dlopens the same SONAME the link would have
 * recorded, checks the version, and fills a table of the entry points net/fetch uses;
 * the library then stays loaded for the life of the process (the pattern systemd uses
 * for its optional libraries).
 *
 * Each field has the type of libcurl's own declaration (curl/curl.h, curl/urlapi.h),
 * so a call through the table is checked like a direct call. */
#ifndef IDX_NET_CURL_LIB_H
#define IDX_NET_CURL_LIB_H
#include <stddef.h>
#include <curl/curl.h>

/* What dlopen is asked for: libcurl's SONAME since 7.16 (Debian: libcurl4). */
#define CURL_LIB_SONAME "libcurl.so.4"
/* The oldest libcurl whose API net/fetch uses (CURLOPT_PROTOCOLS_STR, QUICK_EXIT); the
 * same floor as configure's check. */
#define CURL_LIB_MIN_VERSION 0x075500 /* 7.85.0 */

#define CURL_LIB_FN(name) __typeof__(curl_##name) *name
struct curl_lib {
    CURL_LIB_FN(global_init);
    CURL_LIB_FN(global_cleanup);
    CURL_LIB_FN(version_info);
    CURL_LIB_FN(easy_init);
    CURL_LIB_FN(easy_setopt);
    CURL_LIB_FN(easy_getinfo);
    CURL_LIB_FN(easy_cleanup);
    CURL_LIB_FN(easy_strerror);
    CURL_LIB_FN(multi_init);
    CURL_LIB_FN(multi_setopt);
    CURL_LIB_FN(multi_add_handle);
    CURL_LIB_FN(multi_remove_handle);
    CURL_LIB_FN(multi_socket_action);
    CURL_LIB_FN(multi_info_read);
    CURL_LIB_FN(multi_assign);
    CURL_LIB_FN(multi_cleanup);
    CURL_LIB_FN(multi_strerror);
    CURL_LIB_FN(slist_append);
    CURL_LIB_FN(slist_free_all);
    CURL_LIB_FN(url);
    CURL_LIB_FN(url_set);
    CURL_LIB_FN(url_get);
    CURL_LIB_FN(url_cleanup);
    CURL_LIB_FN(url_strerror);
    CURL_LIB_FN(free);
};
#undef CURL_LIB_FN

/* libcurl's entry points, loading the library on the first call (later calls return the
 * same table at once). NULL when it cannot be loaded, lacks an entry point, or is older
 * than CURL_LIB_MIN_VERSION; msg then says why, naming the library, and the next call
 * tries again. From the loop thread only. */
const struct curl_lib *curl_lib_load(char *msg, size_t msglen);

#endif
