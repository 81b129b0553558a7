/* net/fetch: outbound HTTP over one libcurl multi handle per client, driven by the
 * shared libevent loop (curl's socket and timer callbacks; nothing blocks).
 *
 * Ownership:
 * - struct fetch_client owns the CURLM (made by the first transfer), one evtimer
 *   for curl's timeout, one "deliver" event (activated when finished transfers
 *   are queued), the parsed deny list, the User-Agent string, one struct
 *   fetch_sock (a persistent event) per socket curl asks us to watch, and every
 *   struct fetch not yet delivered or cancelled (on the running list or the done
 *   queue).
 * - struct fetch owns its easy handle (until the transfer ends), the request
 *   header slist (until then as well), a copy of the strings that must never
 *   appear in error text (URL userinfo, path, query; auth; cleared when freed),
 *   the response body buffer and the response headers. The user callback gets
 *   borrowed pointers into it; the fetch is freed when the callback returns.
 *
 * Rules kept here (reference c-stack.md A3): curl is only called from our own
 * event callbacks or the public functions, never from inside a libcurl callback;
 * curl_multi_remove_handle only happens there too (our libcurl callbacks abort by
 * return value and record why); curl_multi_info_read is drained after every
 * curl_multi_socket_action; a finished transfer is queued and its user callback
 * runs from the deliver event, so never inside fetch_start or inside curl.
 *
 * The SSRF guard runs twice: CURLOPT_OPENSOCKETFUNCTION refuses to create a
 * socket for a denied address (nothing is sent, not even a SYN or a TLS hello),
 * and CURLOPT_PREREQFUNCTION checks the connected address again before the
 * request is written (covers reused connections). Proxies from the environment
 * are ignored, since a proxy would make the connected address meaningless.
 * 0.0.0.0/8 and ::/128 (which Linux connects to the local host) are always denied,
 * whatever the configured list, and the IPv4-mapped form of every range with them
 * (net/cidr matches mapped addresses as IPv4). A refusal never names the address.
 *
 * Admission: at most max_total transfers in flight, and max_per_org for one
 * organization (fetch_request.org_id; 0 counts only toward the total). A transfer
 * over either completes, from the loop like any other, with FETCH_BUSY. */
#include "net/fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "net/cidr.h"
#include "net/curl_lib.h"
#include "util/machine.h"

#define FETCH_DEFAULT_TIMEOUT_MS 30000L
#define FETCH_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define FETCH_DEFAULT_MAX_RESPONSE ((size_t)8 * 1024 * 1024)
#define FETCH_MAX_RESPONSE_LIMIT (SIZE_MAX / 4)
#define FETCH_MAX_HEADER_BYTES ((size_t)64 * 1024)
#define FETCH_BODY_INITIAL_CAP ((size_t)16 * 1024)
#define FETCH_DEFAULT_USER_AGENT "integrationsd"
/* Connecting to these reaches the local host on Linux, whatever the deny list says. */
#define FETCH_ALWAYS_DENIED "0.0.0.0/8,::/128"

enum fetch_state {
    FETCH_STATE_RUNNING,    /* easy handle in the multi; on c->running */
    FETCH_STATE_DONE,       /* finished, response filled in; on c->done */
    FETCH_STATE_DELIVERING, /* its callback is running; on no list */
};
static const char *const fetch_state_names[] = {"running", "done", "delivering"};
static const struct machine_def fetch_def = MACHINE_DEF("fetch", fetch_state_names);

struct fetch_header {
    char *name; /* one allocation: "name\0value\0"; value points inside it */
    char *value;
};

struct fetch_list {
    struct fetch *head, *tail;
    size_t n;
};

struct fetch_sock {
    struct event *ev;
    struct fetch_sock *prev, *next;
};

struct org_count {
    long long org_id;
    int n;
};

struct fetch {
    struct fetch_client *c;
    long long org_id;
    bool admitted;  /* counted in c->active (and its organization's count) */
    enum fetch_state state;
    struct fetch *prev, *next;

    fetch_cb cb;
    void *arg;
    char *target; /* label for logs, may be NULL */
    char *host;   /* host part of the URL (no userinfo), may be NULL */

    /* libcurl's entry points (net/curl_lib: static, so valid after the client is freed,
     * which a callback may do before its fetch is destroyed); set before easy or
     * req_headers exist. */
    const struct curl_lib *curl;
    CURL *easy;
    struct curl_slist *req_headers;
    char *secrets; /* NUL-separated strings never to echo in error text */
    size_t secrets_len;
    char errbuf[CURL_ERROR_SIZE];

    /* Set by our libcurl callbacks when they abort the transfer: the outcome
     * and message apply when the transfer ends with abort_rc. */
    enum fetch_outcome abort_outcome; /* FETCH_OK: none */
    CURLcode abort_rc;
    char abort_msg[128];

    size_t max_response;
    char *body;
    size_t body_len, body_cap;
    struct fetch_header *hdrs;
    size_t nhdrs, hdrs_cap;
    size_t hdr_bytes;

    struct timespec t0;
    char error[256];
    struct fetch_response res;
};

struct fetch_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct event *deliver;
    struct cidr_list deny;
    char *user_agent;
    struct fetch_list running;
    struct fetch_list done;
    struct fetch_sock *socks;
    int in_flight;      /* started, callback not yet run, not cancelled */
    int active;         /* admitted (counted against the limits), not yet delivered */
    int max_total, max_per_org; /* 0: no limit */
    struct org_count *orgs; /* organizations with admitted transfers */
    size_t norgs, orgs_cap;
    bool closing;       /* inside fetch_client_free */
    bool *freed_flag;   /* set while on_deliver runs user callbacks */
    const struct curl_lib *curl; /* libcurl's entry points, once loaded (net/curl_lib) */
    bool curl_global;   /* we hold a curl_global_init reference */
    fetch_observer_fn observe; /* told of every finished call (metrics), or NULL */
};

/* ---- small helpers ------------------------------------------------------ */

static void list_append(struct fetch_list *l, struct fetch *f)
{
    f->next = NULL;
    f->prev = l->tail;
    if (l->tail)
        l->tail->next = f;
    else
        l->head = f;
    l->tail = f;
    l->n++;
}

static void list_remove(struct fetch_list *l, struct fetch *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        l->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        l->tail = f->prev;
    f->prev = f->next = NULL;
    l->n--;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1000.0 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static int secrets_add(struct fetch *f, const char *s)
{
    if (!s || !*s)
        return 0;
    size_t len = strlen(s) + 1;
    char *p = malloc(f->secrets_len + len); /* not realloc: no stale copy left behind */
    if (!p)
        return -1;
    if (f->secrets) {
        memcpy(p, f->secrets, f->secrets_len);
        explicit_bzero(f->secrets, f->secrets_len);
        free(f->secrets);
    }
    memcpy(p + f->secrets_len, s, len);
    f->secrets = p;
    f->secrets_len += len;
    return 0;
}

/* Would showing text reveal a credential, a header value or a URL part we keep
 * out of error messages? */
static bool text_leaks_secret(const struct fetch *f, const char *text)
{
    for (size_t off = 0; off < f->secrets_len;) {
        const char *s = f->secrets + off;
        if (strstr(text, s))
            return true;
        off += strlen(s) + 1;
    }
    for (const struct curl_slist *h = f->req_headers; h; h = h->next) {
        const char *v = strpbrk(h->data, ":;");
        if (!v)
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v && strstr(text, v))
            return true;
    }
    return false;
}

static struct org_count *org_find(struct fetch_client *c, long long org_id)
{
    for (size_t i = 0; i < c->norgs; i++)
        if (c->orgs[i].org_id == org_id)
            return &c->orgs[i];
    return NULL;
}

/* Count f against the limits, or return the name of the limit it is over. */
static const char *admit(struct fetch *f)
{
    struct fetch_client *c = f->c;
    if (c->max_total && c->active >= c->max_total)
        return "OUTBOUND_MAX_CONCURRENT";
    struct org_count *o = f->org_id ? org_find(c, f->org_id) : NULL;
    if (f->org_id && c->max_per_org && o && o->n >= c->max_per_org)
        return "OUTBOUND_MAX_PER_ORG";
    if (f->org_id && !o) {
        if (c->norgs == c->orgs_cap) {
            size_t cap = c->orgs_cap ? c->orgs_cap * 2 : 16;
            struct org_count *p = realloc(c->orgs, cap * sizeof *p);
            if (!p)
                return "out of memory";
            c->orgs = p;
            c->orgs_cap = cap;
        }
        o = &c->orgs[c->norgs++];
        o->org_id = f->org_id;
        o->n = 0;
    }
    if (o)
        o->n++;
    c->active++;
    f->admitted = true;
    return NULL;
}

/* Give back what admit counted (when the transfer is delivered or cancelled). */
static void release(struct fetch *f)
{
    if (!f->admitted)
        return;
    struct fetch_client *c = f->c;
    f->admitted = false;
    c->active--;
    struct org_count *o = f->org_id ? org_find(c, f->org_id) : NULL;
    if (o && --o->n == 0)
        *o = c->orgs[--c->norgs];
}

static void fetch_destroy(struct fetch *f)
{
    release(f);
    if (f->easy)
        f->curl->easy_cleanup(f->easy); /* only reached when not in a multi */
    if (f->req_headers)
        f->curl->slist_free_all(f->req_headers);
    if (f->secrets) {
        explicit_bzero(f->secrets, f->secrets_len);
        free(f->secrets);
    }
    for (size_t i = 0; i < f->nhdrs; i++)
        free(f->hdrs[i].name);
    free(f->hdrs);
    free(f->body);
    free(f->target);
    free(f->host);
    free(f);
}

static void set_abort(struct fetch *f, enum fetch_outcome o, CURLcode rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_abort(struct fetch *f, enum fetch_outcome o, CURLcode rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->abort_msg, sizeof f->abort_msg, fmt, ap);
    va_end(ap);
    f->abort_outcome = o;
    f->abort_rc = rc;
}

const char *fetch_outcome_name(enum fetch_outcome o)
{
    switch (o) {
    case FETCH_OK: return "ok";
    case FETCH_DNS: return "dns";
    case FETCH_CONNECT: return "connect";
    case FETCH_TIMEOUT: return "timeout";
    case FETCH_TLS: return "tls";
    case FETCH_TOO_LARGE: return "too_large";
    case FETCH_DENIED: return "denied";
    case FETCH_BAD_URL: return "bad_url";
    case FETCH_RESET: return "reset";
    case FETCH_ERROR: return "error";
    case FETCH_BUSY: return "busy";
    }
    return "unknown";
}

static enum fetch_outcome map_curlcode(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return FETCH_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return FETCH_DNS;
    case CURLE_COULDNT_CONNECT:
        return FETCH_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return FETCH_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return FETCH_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return FETCH_TOO_LARGE;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
        return FETCH_RESET;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return FETCH_BAD_URL;
    default:
        return FETCH_ERROR;
    }
}

/* ---- libcurl per-transfer callbacks (never call curl from here) ---------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct fetch *f = userp;
    size_t n = size * nmemb;
    if (n > f->max_response - f->body_len) {
        set_abort(f, FETCH_TOO_LARGE, CURLE_WRITE_ERROR, "response larger than %zu bytes",
                  f->max_response);
        return CURL_WRITEFUNC_ERROR;
    }
    size_t need = f->body_len + n + 1; /* <= max_response + 1, no overflow */
    if (need > f->body_cap) {
        size_t cap = f->body_cap ? f->body_cap : FETCH_BODY_INITIAL_CAP;
        while (cap < need)
            cap *= 2;
        if (cap > f->max_response + 1)
            cap = f->max_response + 1;
        char *p = realloc(f->body, cap);
        if (!p) {
            set_abort(f, FETCH_ERROR, CURLE_WRITE_ERROR,
                      "out of memory reading the response");
            return CURL_WRITEFUNC_ERROR;
        }
        f->body = p;
        f->body_cap = cap;
    }
    memcpy(f->body + f->body_len, data, n);
    f->body_len += n;
    f->body[f->body_len] = '\0';
    return n;
}

static void headers_clear(struct fetch *f)
{
    for (size_t i = 0; i < f->nhdrs; i++)
        free(f->hdrs[i].name);
    f->nhdrs = 0;
}

static int header_store(struct fetch *f, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    char *block = malloc(nlen + vlen + 2);
    if (!block)
        return -1;
    memcpy(block, name, nlen);
    block[nlen] = '\0';
    memcpy(block + nlen + 1, value, vlen);
    block[nlen + 1 + vlen] = '\0';

    for (size_t i = 0; i < f->nhdrs; i++) {
        if (strcasecmp(f->hdrs[i].name, block) == 0) {
            free(f->hdrs[i].name);
            f->hdrs[i].name = block;
            f->hdrs[i].value = block + nlen + 1;
            return 0;
        }
    }
    if (f->nhdrs == f->hdrs_cap) {
        size_t cap = f->hdrs_cap ? f->hdrs_cap * 2 : 16;
        struct fetch_header *p = realloc(f->hdrs, cap * sizeof *p);
        if (!p) {
            free(block);
            return -1;
        }
        f->hdrs = p;
        f->hdrs_cap = cap;
    }
    f->hdrs[f->nhdrs].name = block;
    f->hdrs[f->nhdrs].value = block + nlen + 1;
    f->nhdrs++;
    return 0;
}

/* An obsolete folded line continues the previous header's value. */
static int header_continue(struct fetch *f, const char *more, size_t mlen)
{
    if (f->nhdrs == 0 || mlen == 0)
        return 0;
    struct fetch_header *h = &f->hdrs[f->nhdrs - 1];
    size_t nlen = strlen(h->name), vlen = strlen(h->value);
    char *block = malloc(nlen + 1 + vlen + 1 + mlen + 1);
    if (!block)
        return -1;
    memcpy(block, h->name, nlen + 1);
    char *v = block + nlen + 1;
    memcpy(v, h->value, vlen);
    size_t at = vlen;
    if (vlen)
        v[at++] = ' ';
    memcpy(v + at, more, mlen);
    v[at + mlen] = '\0';
    free(h->name);
    h->name = block;
    h->value = v;
    return 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct fetch *f = userp;
    size_t n = size * nmemb;
    if (n > FETCH_MAX_HEADER_BYTES - f->hdr_bytes) {
        set_abort(f, FETCH_TOO_LARGE, CURLE_WRITE_ERROR, "response headers larger than %zu bytes",
                  FETCH_MAX_HEADER_BYTES);
        return 0; /* any other count than n aborts with CURLE_WRITE_ERROR */
    }
    f->hdr_bytes += n;

    size_t len = n;
    while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len == 0)
        return n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        headers_clear(f); /* a new (interim or final) response starts */
        return n;
    }
    if (data[0] == ' ' || data[0] == '\t') {
        size_t b = 0;
        while (b < len && (data[b] == ' ' || data[b] == '\t'))
            b++;
        if (header_continue(f, data + b, len - b) != 0)
            goto oom;
        return n;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return n;
    size_t nlen = (size_t)(colon - data);
    while (nlen && (data[nlen - 1] == ' ' || data[nlen - 1] == '\t'))
        nlen--;
    if (nlen == 0)
        return n;
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (header_store(f, data, nlen, v, (size_t)(end - v)) != 0)
        goto oom;
    return n;
oom:
    set_abort(f, FETCH_ERROR, CURLE_WRITE_ERROR,
              "out of memory reading the response headers");
    return 0;
}

static bool sockaddr_text(const struct curl_sockaddr *a, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    size_t len = a->addrlen < sizeof ss ? a->addrlen : sizeof ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, &a->addr, len);
    if (a->family == AF_INET && len >= sizeof(struct sockaddr_in))
        return inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
    if (a->family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out,
                         (socklen_t)outlen);
    return false;
}

/* rc: how curl reports the refusal (COULDNT_CONNECT when no socket was made,
 * ABORTED_BY_CALLBACK from the pre-request check). The message does not name the
 * address: it would tell a caller what an internal name resolves to. */
static void set_denied(struct fetch *f, CURLcode rc)
{
    set_abort(f, FETCH_DENIED, rc, "destination address is not allowed (OUTBOUND_DENY_CIDRS)");
}

/* Before connect: vet the address curl is about to connect to. */
static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct fetch *f = clientp;
    char ip[INET6_ADDRSTRLEN];
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!sockaddr_text(a, ip, sizeof ip) || cidr_list_match(&f->c->deny, ip)) {
        set_denied(f, CURLE_COULDNT_CONNECT);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* After connect (and TLS), before the request is sent, also on reuse. */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    struct fetch *f = clientp;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (cidr_list_match(&f->c->deny, primary_ip)) {
        set_denied(f, CURLE_ABORTED_BY_CALLBACK);
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* ---- completion and delivery -------------------------------------------- */

static void log_done(const struct fetch *f)
{
    if (f->c->observe)
        f->c->observe(f->target ? f->target : "other", fetch_outcome_name(f->res.outcome));
    enum log_level lvl = f->res.outcome == FETCH_DENIED ? LOG_WARN : LOG_DEBUG;
    if (!log_enabled(lvl))
        return;
    json_t *fields = json_pack("{s:s?, s:s?, s:s, s:I, s:f}", "target", f->target, "host", f->host,
                               "outcome", fetch_outcome_name(f->res.outcome), "status",
                               (json_int_t)f->res.status, "ms", f->res.total_ms);
    log_fields(lvl, f->res.outcome == FETCH_DENIED ? "outbound request denied" : "fetch done",
               fields);
}

/* The only writer of f->state (its initial RUNNING is the zeroed allocation). */
static void set_state(struct fetch *f, enum fetch_state st)
{
    machine_trace(&fetch_def, f->target ? f->target : "other", f->state, st);
    f->state = st;
}

static void queue_done(struct fetch *f)
{
    struct fetch_client *c = f->c;
    set_state(f, FETCH_STATE_DONE);
    list_append(&c->done, f);
    event_active(c->deliver, EV_TIMEOUT, 0);
}

/* Fill in a response for a transfer that never reached curl. */
static void fail_early(struct fetch *f, enum fetch_outcome o, const char *msg)
{
    if (f->easy) {
        f->curl->easy_cleanup(f->easy); /* never added to the multi */
        f->easy = NULL;
    }
    snprintf(f->error, sizeof f->error, "%s", msg);
    f->res.outcome = o;
    f->res.status = 0;
    f->res.body = "";
    f->res.body_len = 0;
    f->res.error = f->error;
    f->res.total_ms = ms_since(&f->t0);
    log_done(f);
    queue_done(f);
}

/* The transfer ended (from drain, outside any libcurl callback). */
static void transfer_finished(struct fetch *f, CURLcode rc)
{
    struct fetch_client *c = f->c;
    long status = 0;
    c->curl->easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    c->curl->multi_remove_handle(c->multi, f->easy);
    c->curl->easy_cleanup(f->easy);
    f->easy = NULL;
    list_remove(&c->running, f);

    bool ours = rc != CURLE_OK && f->abort_outcome != FETCH_OK && rc == f->abort_rc;
    enum fetch_outcome o = ours ? f->abort_outcome : map_curlcode(rc);

    if (o == FETCH_OK) {
        f->error[0] = '\0';
    } else if (ours) {
        snprintf(f->error, sizeof f->error, "%s", f->abort_msg);
    } else {
        size_t n = strlen(f->errbuf);
        while (n && (f->errbuf[n - 1] == '\n' || f->errbuf[n - 1] == '\r'))
            f->errbuf[--n] = '\0';
        const char *detail = n ? f->errbuf : c->curl->easy_strerror(rc);
        if (text_leaks_secret(f, detail))
            detail = c->curl->easy_strerror(rc);
        snprintf(f->error, sizeof f->error, "%s", detail);
    }

    /* The request side is no longer needed. */
    c->curl->slist_free_all(f->req_headers);
    f->req_headers = NULL;
    if (f->secrets) {
        explicit_bzero(f->secrets, f->secrets_len);
        free(f->secrets);
        f->secrets = NULL;
        f->secrets_len = 0;
    }

    f->res.outcome = o;
    f->res.status = o == FETCH_OK ? status : 0;
    if (o == FETCH_OK && f->body) {
        f->res.body = f->body;
        f->res.body_len = f->body_len;
    } else {
        /* Never hand out a partial body. */
        free(f->body);
        f->body = NULL;
        f->body_len = f->body_cap = 0;
        f->res.body = "";
        f->res.body_len = 0;
    }
    f->res.error = f->error;
    f->res.total_ms = ms_since(&f->t0);
    log_done(f);
    queue_done(f);
}

static void drain(struct fetch_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = c->curl->multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode rc = msg->data.result; /* read before the handle is removed */
        char *priv = NULL;
        c->curl->easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        if (priv)
            transfer_finished((struct fetch *)priv, rc);
    }
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct fetch_client *c = arg;
    bool freed = false;
    (void)fd;
    (void)what;

    /* Only what is queued now; transfers that fail during a callback wait for
     * the next round, so a callback that keeps starting bad fetches cannot
     * starve the loop. */
    size_t budget = c->done.n;
    c->freed_flag = &freed;
    while (budget-- > 0 && c->done.head) {
        struct fetch *f = c->done.head;
        list_remove(&c->done, f);
        set_state(f, FETCH_STATE_DELIVERING);
        c->in_flight--;
        release(f); /* before the callback: it may start the next call, or free c */
        f->cb(&f->res, f->arg);
        fetch_destroy(f);
        if (freed)
            return; /* the callback freed the client */
    }
    c->freed_flag = NULL;
    if (c->done.head)
        event_active(c->deliver, EV_TIMEOUT, 0);
}

/* ---- multi handle <-> libevent ------------------------------------------ */

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct fetch_client *c = arg;
    int flags = 0, running = 0;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    CURLMcode mc = c->curl->multi_socket_action(c->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        log_error("fetch: curl_multi_socket_action: %s", c->curl->multi_strerror(mc));
    drain(c);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    struct fetch_client *c = arg;
    int running = 0;
    (void)fd;
    (void)what;
    CURLMcode mc = c->curl->multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK)
        log_error("fetch: curl_multi_socket_action: %s", c->curl->multi_strerror(mc));
    drain(c);
}

static void sock_destroy(struct fetch_client *c, struct fetch_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    event_free(s->ev);
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: one persistent event per socket. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct fetch_client *c = userp;
    struct fetch_sock *s = socketp;
    (void)e;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_destroy(c, s);
            if (!c->closing)
                c->curl->multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }

    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (kind == EV_PERSIST) { /* CURL_POLL_NONE: keep the socket, watch nothing */
        if (s)
            event_del(s->ev);
        return 0;
    }

    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        s->ev = event_new(c->base, fd, kind, on_socket_event, c);
        if (!s->ev) {
            free(s);
            return -1;
        }
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->curl->multi_assign(c->multi, fd, s);
    } else {
        event_del(s->ev);
        if (event_assign(s->ev, c->base, fd, kind, on_socket_event, c) != 0)
            return -1;
    }
    if (event_add(s->ev, NULL) != 0)
        return -1;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm our single timer; 0 fires on the next loop pass. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct fetch_client *c = userp;
    (void)m;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* ---- client -------------------------------------------------------------- */

/* libcurl and the multi handle, set up by the first transfer: a process that never calls
 * out never maps libcurl (net/curl_lib) nor pages in its code, and the start-up does not
 * wait for it. Safe beside the scrypt thread: this libcurl's global init is
 * thread-safe, and what it initialises below it (OpenSSL 3, libssh2's OpenSSL backend)
 * is too. A failure fails this transfer only; the next one tries again. 0, or -1 with
 * msg set. */
static int client_curl(struct fetch_client *c, char *msg, size_t msglen)
{
    if (c->multi)
        return 0;
    if (!c->curl && !(c->curl = curl_lib_load(msg, msglen)))
        return -1;
    if (!c->curl_global) {
        /* Reference-counted by libcurl, so several clients are fine. */
        if (c->curl->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(msg, msglen, "curl_global_init failed");
            return -1;
        }
        c->curl_global = true;
    }
    CURLM *m = c->curl->multi_init();
    if (!m) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (c->curl->multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        c->curl->multi_setopt(m, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        c->curl->multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        c->curl->multi_setopt(m, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
        c->curl->multi_cleanup(m);
        snprintf(msg, msglen, "curl_multi_setopt failed");
        return -1;
    }
    c->multi = m;
    return 0;
}

struct fetch_client *fetch_client_new(struct event_base *base, const char *deny_cidrs,
                                      const char *user_agent, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!base) {
        snprintf(err, errlen, "no event base");
        return NULL;
    }
    if (user_agent && strpbrk(user_agent, "\r\n")) {
        snprintf(err, errlen, "invalid User-Agent");
        return NULL;
    }

    struct fetch_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->base = base;
    size_t dlen = (deny_cidrs ? strlen(deny_cidrs) : 0) + sizeof "," FETCH_ALWAYS_DENIED;
    char *deny = malloc(dlen);
    if (!deny) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(deny, dlen, "%s,%s", deny_cidrs ? deny_cidrs : "", FETCH_ALWAYS_DENIED);
    int prc = cidr_list_parse(&c->deny, deny, err, errlen);
    free(deny);
    if (prc != 0) {
        free(c);
        return NULL;
    }
    c->user_agent = strdup(user_agent && *user_agent ? user_agent : FETCH_DEFAULT_USER_AGENT);
    c->timer = evtimer_new(base, on_timer_event, c);
    c->deliver = event_new(base, -1, 0, on_deliver, c);
    if (!c->user_agent || !c->timer || !c->deliver) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return c;

fail:
    fetch_client_free(c);
    return NULL;
}

static void cancel_running(struct fetch *f)
{
    struct fetch_client *c = f->c;
    list_remove(&c->running, f);
    if (f->easy) {
        c->curl->multi_remove_handle(c->multi, f->easy);
        c->curl->easy_cleanup(f->easy);
        f->easy = NULL;
    }
}

void fetch_client_free(struct fetch_client *c)
{
    if (!c)
        return;
    if (c->freed_flag)
        *c->freed_flag = true; /* called from a callback inside on_deliver */
    c->closing = true;

    while (c->running.head) {
        struct fetch *f = c->running.head;
        cancel_running(f);
        fetch_destroy(f);
    }
    while (c->done.head) {
        struct fetch *f = c->done.head;
        list_remove(&c->done, f);
        fetch_destroy(f);
    }
    if (c->multi)
        c->curl->multi_cleanup(c->multi); /* may report CURL_POLL_REMOVE for cached connections */
    while (c->socks)
        sock_destroy(c, c->socks);
    if (c->timer)
        event_free(c->timer);
    if (c->deliver)
        event_free(c->deliver);
    cidr_list_free(&c->deny);
    free(c->orgs);
    free(c->user_agent);
    if (c->curl_global)
        c->curl->global_cleanup();
    free(c);
}

void fetch_client_set_limits(struct fetch_client *c, int max_total, int max_per_org)
{
    c->max_total = max_total > 0 ? max_total : 0;
    c->max_per_org = max_per_org > 0 ? max_per_org : 0;
}

void fetch_client_set_observer(struct fetch_client *c, fetch_observer_fn fn)
{
    c->observe = fn;
}

bool fetch_admits(const struct fetch_client *c, long long org_id)
{
    if (c->max_total && c->active >= c->max_total)
        return false;
    if (!org_id || !c->max_per_org)
        return true;
    for (size_t i = 0; i < c->norgs; i++)
        if (c->orgs[i].org_id == org_id)
            return c->orgs[i].n < c->max_per_org;
    return true;
}

int fetch_in_flight(const struct fetch_client *c)
{
    return c ? c->in_flight : 0;
}

/* ---- starting a transfer -------------------------------------------------- */

static bool method_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 32)
        return false;
    for (const char *p = m; *p; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static bool header_line_ok(const char *h)
{
    return *h && *h != ':' && !strpbrk(h, "\r\n") && strpbrk(h, ":;");
}

/* Parse the URL once: only http(s) with a host; remember the host for logs and
 * the parts that may carry secrets so error text never shows them. */
static enum fetch_outcome check_url(struct fetch *f, const char *url, char *msg, size_t msglen)
{
    CURLU *u = f->curl->url();
    char *scheme = NULL, *host = NULL;
    enum fetch_outcome o = FETCH_OK;
    if (!u) {
        snprintf(msg, msglen, "out of memory");
        return FETCH_ERROR;
    }
    CURLUcode uc = f->curl->url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        snprintf(msg, msglen, "malformed URL (%s)", f->curl->url_strerror(uc));
        o = uc == CURLUE_OUT_OF_MEMORY ? FETCH_ERROR : FETCH_BAD_URL;
        goto out;
    }
    if (f->curl->url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(msg, msglen, "URL scheme \"%.16s\" is not allowed (http and https only)",
                 scheme ? scheme : "");
        o = FETCH_BAD_URL;
        goto out;
    }
    if (f->curl->url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        snprintf(msg, msglen, "URL has no host");
        o = FETCH_BAD_URL;
        goto out;
    }
    f->host = strdup(host);
    if (!f->host) {
        snprintf(msg, msglen, "out of memory");
        o = FETCH_ERROR;
        goto out;
    }
    static const CURLUPart parts[] = {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS,
                                      CURLUPART_PATH, CURLUPART_QUERY, CURLUPART_FRAGMENT};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] * 2; i++) {
        char *part = NULL;
        CURLUPart which = parts[i / 2];
        unsigned flags = (i % 2) ? CURLU_URLDECODE : 0; /* as written and decoded */
        if (f->curl->url_get(u, which, &part, flags) == CURLUE_OK && part) {
            int rc = (which == CURLUPART_PATH && strlen(part) <= 1) ? 0 : secrets_add(f, part);
            explicit_bzero(part, strlen(part));
            f->curl->free(part);
            if (rc != 0) {
                snprintf(msg, msglen, "out of memory");
                o = FETCH_ERROR;
                goto out;
            }
        }
    }
out:
    f->curl->free(scheme);
    f->curl->free(host);
    f->curl->url_cleanup(u);
    return o;
}

#define SETOPT(opt, val)                                  \
    do {                                                  \
        if (c->curl->easy_setopt(e, (opt), (val)) != CURLE_OK) \
            return -1;                                    \
    } while (0)

static int setup_easy(struct fetch *f, const struct fetch_request *req)
{
    struct fetch_client *c = f->c;
    CURL *e = f->easy;
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : FETCH_DEFAULT_TIMEOUT_MS;
    long connect = req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                               : FETCH_DEFAULT_CONNECT_TIMEOUT_MS;
    if (connect > timeout)
        connect = timeout;

    SETOPT(CURLOPT_PRIVATE, (void *)f);
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_MAXREDIRS, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROXY, ""); /* ignore *_proxy from the environment */
    /* Cancelling or timing out a transfer while the threaded resolver is still in
     * getaddrinfo would otherwise join that thread, blocking the loop; with this
     * the thread is detached and frees its own data when getaddrinfo returns. */
    SETOPT(CURLOPT_QUICK_EXIT, 1L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, connect);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_ERRORBUFFER, f->errbuf);
    SETOPT(CURLOPT_USERAGENT, c->user_agent);
    SETOPT(CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);

    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)f);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)f);

    SETOPT(CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    SETOPT(CURLOPT_OPENSOCKETDATA, (void *)f);
    SETOPT(CURLOPT_PREREQFUNCTION, on_prereq);
    SETOPT(CURLOPT_PREREQDATA, (void *)f);

    if (req->username) {
        SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(CURLOPT_USERNAME, req->username);
        SETOPT(CURLOPT_PASSWORD, req->password ? req->password : "");
    }

    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *n = c->curl->slist_append(f->req_headers, *h);
        if (!n)
            return -1;
        f->req_headers = n;
    }
    struct curl_slist *n = c->curl->slist_append(f->req_headers, "Expect:");
    if (!n)
        return -1;
    f->req_headers = n;
    SETOPT(CURLOPT_HTTPHEADER, f->req_headers);

    const char *m = req->method && *req->method ? req->method : "GET";
    bool has_body = req->body != NULL;
    if (strcmp(m, "HEAD") != 0) /* refuse early when Content-Length is over the cap */
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_response);
    if (strcmp(m, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") == 0 && !has_body) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        bool send_body = has_body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
                         strcmp(m, "PATCH") == 0;
        if (send_body) {
            /* Size first: COPYPOSTFIELDS then copies exactly that many bytes. */
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? req->body_len : 0));
            SETOPT(CURLOPT_COPYPOSTFIELDS, has_body ? req->body : "");
        }
        if (strcmp(m, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, m);
    }
    return 0;
}

#undef SETOPT

struct fetch *fetch_start(struct fetch_client *c, const struct fetch_request *req, fetch_cb cb,
                          void *arg)
{
    if (!c || !cb)
        return NULL;
    struct fetch *f = calloc(1, sizeof *f);
    if (!f) {
        /* The one case without a callback: nothing to carry it. */
        log_error("fetch: out of memory starting a transfer");
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &f->t0);
    f->c = c;
    f->cb = cb;
    f->arg = arg;
    c->in_flight++;

    char msg[160];
    enum fetch_outcome o;
    if (client_curl(c, msg, sizeof msg) < 0) {
        fail_early(f, FETCH_ERROR, msg);
        return NULL;
    }
    f->curl = c->curl;
    if (!req || !req->url || !*req->url) {
        fail_early(f, FETCH_BAD_URL, "no URL");
        return NULL;
    }
    f->org_id = req->org_id;
    const char *over = admit(f);
    if (over) {
        snprintf(msg, sizeof msg, "too many outbound calls in flight (%s)", over);
        fail_early(f, FETCH_BUSY, msg);
        return NULL;
    }
    if (req->target && !(f->target = strdup(req->target))) {
        fail_early(f, FETCH_ERROR, "out of memory");
        return NULL;
    }
    o = check_url(f, req->url, msg, sizeof msg);
    if (o != FETCH_OK) {
        fail_early(f, o, msg);
        return NULL;
    }
    if (req->method && *req->method && !method_ok(req->method)) {
        fail_early(f, FETCH_ERROR, "invalid request method");
        return NULL;
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        if (!header_line_ok(*h)) {
            fail_early(f, FETCH_ERROR, "invalid request header");
            return NULL;
        }
    }
    if (secrets_add(f, req->username) != 0 || secrets_add(f, req->password) != 0) {
        fail_early(f, FETCH_ERROR, "out of memory");
        return NULL;
    }
    f->max_response = req->max_response ? req->max_response : FETCH_DEFAULT_MAX_RESPONSE;
    if (f->max_response > FETCH_MAX_RESPONSE_LIMIT)
        f->max_response = FETCH_MAX_RESPONSE_LIMIT;

    f->easy = c->curl->easy_init();
    if (!f->easy || setup_easy(f, req) != 0) {
        fail_early(f, FETCH_ERROR, "could not set up the transfer");
        return NULL;
    }
    set_state(f, FETCH_STATE_RUNNING);
    list_append(&c->running, f);
    CURLMcode mc = c->curl->multi_add_handle(c->multi, f->easy);
    if (mc != CURLM_OK) {
        list_remove(&c->running, f);
        snprintf(msg, sizeof msg, "could not start the transfer (%s)", c->curl->multi_strerror(mc));
        fail_early(f, FETCH_ERROR, msg);
        return NULL;
    }
    return f;
}

void fetch_cancel(struct fetch *f)
{
    if (!f || f->state == FETCH_STATE_DELIVERING)
        return; /* inside its own callback: freed when the callback returns */
    struct fetch_client *c = f->c;
    if (f->state == FETCH_STATE_RUNNING)
        cancel_running(f);
    else
        list_remove(&c->done, f);
    c->in_flight--;
    fetch_destroy(f);
}

const char *fetch_response_header(const struct fetch_response *r, const char *name)
{
    if (!r || !name)
        return NULL;
    const struct fetch *f =
        (const struct fetch *)(const void *)((const char *)r - offsetof(struct fetch, res));
    for (size_t i = 0; i < f->nhdrs; i++)
        if (strcasecmp(f->hdrs[i].name, name) == 0)
            return f->hdrs[i].value;
    return NULL;
}
