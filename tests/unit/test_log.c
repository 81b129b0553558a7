/* Unit tests for log: libevent's own messages come out as our lines (level mapped,
 * "source":"libevent"), in both formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

/* Run fn with stderr redirected to a temporary file; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long n = ftell(tmp);
    assert_true(n >= 0);
    char *buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    rewind(tmp);
    assert_int_equal(fread(buf, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return buf;
}

/* libevent warns (event_warnx) when no backend is left: a libevent message at warn level. */
static void provoke_libevent_warning(void)
{
    struct event_config *cfg = event_config_new();
    assert_non_null(cfg);
    static const char *const methods[] = {"epoll", "poll", "select", "kqueue", "devpoll", "evport", "win32"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        assert_int_equal(event_config_avoid_method(cfg, methods[i]), 0);
    struct event_base *b = event_base_new_with_config(cfg);
    assert_null(b);
    event_config_free(cfg);
}

static void libevent_warning_is_our_json_line(void **state)
{
    log_setup(LOG_INFO, LOG_FORMAT_JSON);
    log_capture_libevent();
    char *out = capture_stderr(provoke_libevent_warning);
    assert_non_null(strstr(out, "\"level\":\"warn\""));
    assert_non_null(strstr(out, "\"source\":\"libevent\""));
    assert_non_null(strstr(out, "no event mechanism"));
    assert_int_equal(out[strlen(out) - 1], '\n');
    free(out);
}

static void libevent_warning_respects_the_level(void **state)
{
    log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
    log_capture_libevent();
    char *out = capture_stderr(provoke_libevent_warning);
    assert_string_equal(out, ""); /* a warning below LOG_LEVEL=error */
    free(out);
    log_setup(LOG_WARN, LOG_FORMAT_TEXT);
    out = capture_stderr(provoke_libevent_warning);
    assert_non_null(strstr(out, " warn "));
    assert_non_null(strstr(out, "{\"source\":\"libevent\"}"));
    free(out);
}

/* Every line is composed in one place (log_members; log_fields goes through it): the
 * same text in both formats whichever entry point built it. Times are cut off. */
static void write_lines(void)
{
    log_fields(LOG_INFO, "a", json_pack("{s:s,s:i,s:f}", "k", "v\"", "n", 7, "d", 0.5));
    static const char members[] = "\"k\":\"v\\\"\",\"n\":7,\"d\":0.5";
    log_members(LOG_INFO, "a", members, sizeof members - 1);
    log_fields(LOG_INFO, "b", NULL);
    log_members(LOG_INFO, "b", NULL, 0);
    log_fields(LOG_INFO, "c", json_object());
    log_members(LOG_INFO, "c", "", 0);
    log_msg(LOG_INFO, "bad \xff utf-8");
    log_msg(LOG_DEBUG, "below the level");
}

/* The lines of out without their leading time ("{\"time\":\"...\"," or "... "). */
static void assert_lines(const char *out, const char *const *want, size_t n)
{
    const char *p = out;
    for (size_t i = 0; i < n; i++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        const char *cut = strstr(p, "Z") + 1; /* the time ends with Z */
        cut += (*cut == '"') ? 2 : 1;
        assert_int_equal((size_t)(nl - cut), strlen(want[i]));
        assert_memory_equal(cut, want[i], strlen(want[i]));
        p = nl + 1;
    }
    assert_string_equal(p, "");
}

static void lines_are_composed_alike(void **state)
{
    (void)state;
    log_setup(LOG_INFO, LOG_FORMAT_JSON);
    char *out = capture_stderr(write_lines);
    static const char *const json[] = {
        "\"level\":\"info\",\"msg\":\"a\",\"k\":\"v\\\"\",\"n\":7,\"d\":0.5}",
        "\"level\":\"info\",\"msg\":\"a\",\"k\":\"v\\\"\",\"n\":7,\"d\":0.5}",
        "\"level\":\"info\",\"msg\":\"b\"}",
        "\"level\":\"info\",\"msg\":\"b\"}",
        "\"level\":\"info\",\"msg\":\"c\"}",
        "\"level\":\"info\",\"msg\":\"c\"}",
        "\"level\":\"info\",\"msg\":\"(invalid utf-8)\"}",
    };
    assert_lines(out, json, sizeof json / sizeof json[0]);
    free(out);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
    out = capture_stderr(write_lines);
    static const char *const text[] = {
        "info a {\"k\":\"v\\\"\",\"n\":7,\"d\":0.5}",
        "info a {\"k\":\"v\\\"\",\"n\":7,\"d\":0.5}",
        "info b",
        "info b",
        "info c {}",
        "info c {}",
        "info bad \xff utf-8",
    };
    assert_lines(out, text, sizeof text / sizeof text[0]);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(libevent_warning_is_our_json_line),
        cmocka_unit_test(libevent_warning_respects_the_level),
        cmocka_unit_test(lines_are_composed_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
