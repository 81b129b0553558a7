/* Unit tests for doc/integrationsd.8: the bold names (\fBNAME\fR) in its ENVIRONMENT
 * section are exactly the variables the code reads (config_variable_names()), each
 * with a .TP entry of its own. The page is read from $TOP_SRCDIR (exported by
 * `make check`), or from the current directory when that is unset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define MAX_NAMES 128
#define MAX_NAME_LEN 64

struct name_set {
    int n;
    char names[MAX_NAMES][MAX_NAME_LEN];
};

static bool set_has(const struct name_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

static void set_add(struct name_set *s, const char *name, size_t len)
{
    char buf[MAX_NAME_LEN];
    assert_true(len < sizeof buf);
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (set_has(s, buf))
        return;
    assert_true(s->n < MAX_NAMES);
    strcpy(s->names[s->n++], buf);
}

/* Whole file as a NUL-terminated string (caller frees). */
static char *read_page(void)
{
    const char *top = getenv("TOP_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/doc/integrationsd.8", top && *top ? top : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (set TOP_SRCDIR to the source tree)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    char *s = malloc((size_t)size + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)size, f), (size_t)size);
    s[size] = '\0';
    fclose(f);
    return s;
}

/* Is the line at p a section heading (.SH), and if so is it `title`?
 * Accepts `.SH TITLE` and `.SH "TITLE"`. */
static bool is_sh(const char *p)
{
    return strncmp(p, ".SH", 3) == 0 && (p[3] == ' ' || p[3] == '\t' || p[3] == '\n' || p[3] == '\0');
}

static bool sh_is(const char *p, const char *title)
{
    if (!is_sh(p))
        return false;
    p += 3;
    while (*p == ' ' || *p == '\t')
        p++;
    bool quoted = *p == '"';
    if (quoted)
        p++;
    size_t n = strlen(title);
    if (strncmp(p, title, n) != 0)
        return false;
    p += n;
    if (quoted && *p == '"')
        p++;
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return *p == '\n' || *p == '\0';
}

/* The text of section `title`: from the line after its .SH to the next .SH (or the
 * end). Sets *len; returns NULL when the section is missing. */
static const char *section(const char *page, const char *title, size_t *len)
{
    const char *start = NULL;
    for (const char *line = page; *line;) {
        const char *next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        if (start && is_sh(line)) {
            *len = (size_t)(line - start);
            return start;
        }
        if (!start && sh_is(line, title))
            start = next;
        line = next;
    }
    if (!start)
        return NULL;
    *len = strlen(start);
    return start;
}

/* Every \fB[A-Z][A-Z0-9_]+\fR in text[0..len). */
static void bold_names(const char *text, size_t len, struct name_set *out)
{
    out->n = 0;
    for (size_t i = 0; i + 3 < len; i++) {
        if (strncmp(text + i, "\\fB", 3) != 0)
            continue;
        size_t b = i + 3, e = b;
        if (e >= len || !(text[e] >= 'A' && text[e] <= 'Z'))
            continue;
        e++;
        while (e < len && ((text[e] >= 'A' && text[e] <= 'Z') || (text[e] >= '0' && text[e] <= '9') ||
                           text[e] == '_'))
            e++;
        if (e - b < 2 || e + 3 > len || strncmp(text + e, "\\fR", 3) != 0)
            continue;
        set_add(out, text + b, e - b);
    }
}

/* Does text[0..len) hold a `.TP` line directly followed by the line `\fBname\fR`? */
static bool has_tp_entry(const char *text, size_t len, const char *name)
{
    char want[MAX_NAME_LEN + 16];
    int n = snprintf(want, sizeof want, ".TP\n\\fB%s\\fR\n", name);
    assert_true(n > 0 && (size_t)n < sizeof want);
    for (const char *p = text; p + n <= text + len; p++)
        if ((p == text || p[-1] == '\n') && strncmp(p, want, (size_t)n) == 0)
            return true;
    return false;
}

/* ---- the extraction itself, on a synthetic page ------------------------------- */

static void extraction_rules(void **state)
{
    (void)state;
    const char *page = ".TH X 8\n"
                       ".SH DESCRIPTION\n\\fBOUTSIDE\\fR is not counted.\n"
                       ".SH \"ENVIRONMENT\"\n"
                       ".TP\n\\fBALPHA_1\\fR\nuses \\fBBETA\\fR and again \\fBALPHA_1\\fR.\n"
                       "not names: \\fBlower\\fR \\fB_X\\fR \\fBA\\fR \\fBOPEN \\fBGAMMA\\fP "
                       "\\fIITALIC\\fR\n"
                       ".SH ENVIRONMENT_NOT\n\\fBLATER\\fR\n";
    size_t len = 0;
    const char *env = section(page, "ENVIRONMENT", &len);
    assert_non_null(env);
    struct name_set s;
    bold_names(env, len, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "ALPHA_1");
    assert_string_equal(s.names[1], "BETA");
    assert_true(has_tp_entry(env, len, "ALPHA_1"));
    assert_false(has_tp_entry(env, len, "BETA"));
    assert_null(section(page, "FILES", &len));
    /* Last section: runs to the end of the page. */
    const char *last = section(page, "ENVIRONMENT_NOT", &len);
    assert_non_null(last);
    assert_int_equal(len, strlen("\\fBLATER\\fR\n"));
}

/* ---- the real page ------------------------------------------------------------- */

static void environment_matches_config(void **state)
{
    (void)state;
    char *page = read_page();
    size_t len = 0;
    const char *env = section(page, "ENVIRONMENT", &len);
    if (!env)
        fail_msg("doc/integrationsd.8 has no .SH ENVIRONMENT section");
    struct name_set documented;
    bold_names(env, len, &documented);

    struct name_set code = {0};
    for (const char *const *n = config_variable_names(); *n; n++)
        set_add(&code, *n, strlen(*n));
    assert_true(code.n > 0);

    int problems = 0;
    for (int i = 0; i < code.n; i++)
        if (!set_has(&documented, code.names[i])) {
            print_error("read by the code but not documented in ENVIRONMENT: %s\n", code.names[i]);
            problems++;
        }
    for (int i = 0; i < documented.n; i++)
        if (!set_has(&code, documented.names[i])) {
            print_error("documented in ENVIRONMENT but not read by the code: %s\n",
                        documented.names[i]);
            problems++;
        }
    free(page);
    assert_int_equal(problems, 0);
    assert_int_equal(documented.n, code.n);
}

static void each_variable_has_its_own_entry(void **state)
{
    (void)state;
    char *page = read_page();
    size_t len = 0;
    const char *env = section(page, "ENVIRONMENT", &len);
    assert_non_null(env);
    int missing = 0;
    for (const char *const *n = config_variable_names(); *n; n++)
        if (!has_tp_entry(env, len, *n)) {
            print_error("no `.TP` entry with the tag line \\fB%s\\fR in ENVIRONMENT\n", *n);
            missing++;
        }
    free(page);
    assert_int_equal(missing, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extraction_rules),
        cmocka_unit_test(environment_matches_config),
        cmocka_unit_test(each_variable_has_its_own_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
