/* net/curl_lib: owns the dlopen handle of libcurl and the table of its entry points
 * (see include/net/curl_lib.h for why it is loaded at the first use). */
#include "net/curl_lib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

_Static_assert(sizeof(void (*)(void)) == sizeof(void *),
               "entry points are stored through dlsym's void pointer");

static struct curl_lib lib;
static const struct curl_lib *loaded;

/* Resolve every entry point into lib; the name of the first missing one, or NULL. */
static const char *resolve(void *h)
{
#define SYM(name)                                                    \
    do {                                                             \
        void *p_ = dlsym(h, "curl_" #name);                          \
        if (!p_)                                                     \
            return "curl_" #name;                                    \
        memcpy(&lib.name, &p_, sizeof p_); /* POSIX: same representation */ \
    } while (0);
    CURL_LIB_ENTRY_POINTS(SYM)
#undef SYM
    return NULL;
}

const struct curl_lib *curl_lib_load(char *msg, size_t msglen)
{
    if (loaded)
        return loaded;
    void *h = dlopen(CURL_LIB_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        /* The loader's reason names files: the log gets it, the caller (whose message
         * may reach a client) only the library's name. */
        const char *why = dlerror();
        log_error("curl_lib: cannot load %s: %s", CURL_LIB_SONAME, why ? why : "unknown error");
        snprintf(msg, msglen, "cannot load %s", CURL_LIB_SONAME);
        return NULL;
    }
    const char *missing = resolve(h);
    if (missing) {
        snprintf(msg, msglen, "%s has no %s", CURL_LIB_SONAME, missing);
        dlclose(h);
        return NULL;
    }
    const curl_version_info_data *v = lib.version_info(CURLVERSION_NOW);
    if (!v || v->version_num < CURL_LIB_MIN_VERSION) {
        snprintf(msg, msglen, "%s is libcurl %s; %d.%d.%d or later is needed", CURL_LIB_SONAME,
                 v && v->version ? v->version : "of an unknown version", CURL_LIB_MIN_VERSION >> 16,
                 (CURL_LIB_MIN_VERSION >> 8) & 0xff, CURL_LIB_MIN_VERSION & 0xff);
        dlclose(h);
        return NULL;
    }
    loaded = &lib; /* the handle stays open for the life of the process */
    return loaded;
}
