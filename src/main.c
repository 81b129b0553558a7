/* main: command line, the process around the app, signals and graceful shutdown.
 * Start: config -> logs (libevent's too) -> secrets -> loop -> log flush event -> sd_notify
 * watchdog -> app_init (the modules in order, then the integrations) -> signals -> dispatch.
 * SIGTERM/SIGINT: stop accepting, let answered-later requests finish (SHUTDOWN_DRAIN_MS),
 * then undo the start in reverse (app_free: integrations, then modules) and exit 0. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "http/server.h"
#include "jobs/cron.h"
#include "log.h"
#include "net/cidr.h"
#include "net/curl_lib.h"
#include "ops/metrics.h"
#include "ops/sdnotify.h"
#include "util/clock.h"

#include "autoconfig.h"

static struct app app;
/* What secrets_key_check refuses, as start-up and --check-config say it. */
static const char KEY_RULE[] = "ENCRYPTION_KEY must be ASCII (its first 32 characters are the AES key)";
static struct event *drain_tick;
static int drain_waited_ms;

static const char *env_get(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: integrationsd [--check-config | --version | --help]\n"
            "Serves the VerifyWise External Integrations API. Configuration comes from the\n"
            "environment (see integrationsd(8) and README.md).\n");
}

static void print_problem(const char *problem, void *arg)
{
    int *n = arg;
    fprintf(stderr, "integrationsd: configuration: %s\n", problem);
    (*n)++;
}

/* --check-config: every problem start-up would stop at, one line each (names, never
 * values), and a libcurl that cannot be loaded (start-up does not need it, every
 * outbound call does); 0 and "configuration OK" when there is none. */
static int check_config(void)
{
    int n = 0;
    char err[256];
    if (config_check(env_get, NULL, print_problem, &n) == 0 && config_load(&app.cfg, env_get, NULL, err, sizeof err) == 0) {
        if (secrets_key_check(app.cfg.encryption_key) < 0)
            print_problem(KEY_RULE, &n);
        struct cron_expr cron;
        char why[200];
        if (cron_parse(&cron, app.cfg.mlflow_sync_schedule, why, sizeof why) < 0) {
            snprintf(err, sizeof err, "MLFLOW_SYNC_SCHEDULE: %s", why);
            print_problem(err, &n);
        }
        struct cidr_list deny;
        memset(&deny, 0, sizeof deny);
        if (cidr_list_parse(&deny, app.cfg.outbound_deny_cidrs, why, sizeof why) != 0) {
            snprintf(err, sizeof err, "OUTBOUND_DENY_CIDRS: %s", why);
            print_problem(err, &n);
        }
        cidr_list_free(&deny);
        unsigned char addr[16];
        if (inet_pton(strchr(app.cfg.bind_address, ':') ? AF_INET6 : AF_INET, app.cfg.bind_address, addr) != 1)
            print_problem("BIND_ADDRESS must be a numeric IPv4 or IPv6 address", &n);
        config_free(&app.cfg);
    }
    if (n) {
        fprintf(stderr, "integrationsd: %d configuration problem%s; the service would not start\n", n,
                n == 1 ? "" : "s");
        return 1;
    }
    char why[128];
    if (!curl_lib_load(why, sizeof why)) {
        fprintf(stderr, "integrationsd: %s: the service would start, but every outbound call (GitHub, "
                        "Slack, MLflow, LLM providers) would fail (Debian: apt-get install libcurl4)\n", why);
        return 1;
    }
    printf("configuration OK\n");
    return 0;
}

static void drain_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    drain_waited_ms += 50;
    int pending = http_server_pending(app.http);
    if (pending == 0 || drain_waited_ms >= app.cfg.shutdown_drain_ms) {
        if (pending)
            log_warn("shutdown: %d request(s) still pending after %d ms; closing", pending, drain_waited_ms);
        event_base_loopbreak(app.base);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (app.stopping)
        return;
    app.stopping = true;
    log_info("received %s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sdnotify_stopping();
    http_server_drain(app.http);
    struct timeval tv = {0, 50000};
    event_add(drain_tick, &tv);
}

int main(int argc, char **argv)
{
    app.started_us = (int64_t)clock_mono_us();
    bool check_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("integrationsd %s\n", PACKAGE_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (check_only)
        return check_config();
    char err[256];
    if (config_load(&app.cfg, env_get, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "integrationsd: configuration error: %s\n", err);
        return 1;
    }
    log_setup(app.cfg.log_level, app.cfg.log_format);
    log_capture_libevent();
    /* Only checked here: app_init derives the keys once its connections are under way. */
    if (secrets_key_check(app.cfg.encryption_key) < 0) {
        fprintf(stderr, "integrationsd: configuration error: %s\n", KEY_RULE);
        config_free(&app.cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(0);

    int rc = 1;
    struct event *sigterm = NULL, *sigint = NULL;
    /* epoll changelist: the event changes of one iteration (a request paused and resumed,
     * writing enabled and disabled) reach the kernel as one epoll_ctl per descriptor at
     * most, or none when they cancel out. Safe here: no descriptor is ever dup()ed. */
    struct event_config *ecfg = event_config_new();
    if (ecfg) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        app.base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (!app.base) {
        log_error("cannot create the event loop");
        goto out;
    }
    if (log_attach(app.base) < 0) {
        log_error("cannot create the log flush event");
        goto out;
    }
    /* Before app_init, so the watchdog also covers start-up; logs its own error. */
    if (sdnotify_init(app.base) < 0)
        goto out;
    if (app_init(&app, app.base, err, sizeof err) < 0) { /* the modules, then the integrations */
        log_error("start-up failed: %s", err);
        goto out;
    }
    sigterm = evsignal_new(app.base, SIGTERM, on_signal, NULL);
    sigint = evsignal_new(app.base, SIGINT, on_signal, NULL);
    drain_tick = event_new(app.base, -1, EV_PERSIST, drain_tick_cb, NULL);
    if (!sigterm || !sigint || !drain_tick || event_add(sigterm, NULL) || event_add(sigint, NULL)) {
        log_error("cannot install signal handlers");
        goto out;
    }
    log_fields(LOG_INFO, "listening",
               json_pack("{s:s,s:i,s:s,s:f}", "address", app.cfg.bind_address, "port",
                         http_server_port(app.http), "version", PACKAGE_VERSION, "after_ms",
                         (double)app_uptime_us(&app) / 1000.0));
    sdnotify_ready();
    event_base_dispatch(app.base);
    log_info("stopped");
    rc = 0;
out:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (drain_tick)
        event_free(drain_tick);
    sdnotify_free();   /* its timer belongs to app.base: before event_base_free */
    app_free(&app); /* the integrations first, then the modules, in reverse order */
    log_detach();   /* its event belongs to app.base */
    if (app.base)
        event_base_free(app.base);
    metrics_free();
    libevent_global_shutdown();
    secrets_clear(&app.secrets);
    config_free(&app.cfg);
    return rc;
}
