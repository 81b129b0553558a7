/* tests/unit/test_llm_keys_rows: the LLM-key list written straight as text is byte for
 * byte what jansson writes for the same rows (llm_keys_rows_json), with quotes, control
 * characters, non-ASCII text, a NULL url, every kind of stored key, and a name jansson
 * refuses (the writer then fails, so the caller answers through jansson). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "crypto/secrets.h"
#include "integrations/llm_keys_store.h"
#include "util/json_out.h"

/* columns in the order of the store's SELECT: id, name, url, model, created_at, key */
static PGresult *rows(const char *const (*v)[6], int n)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    static const char *const names[] = {"id", "name", "url", "model", "to_char", "key"};
    PGresAttDesc att[6];
    memset(att, 0, sizeof att);
    for (int i = 0; i < 6; i++) {
        att[i].name = (char *)names[i];
        att[i].typid = 25;
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(r, 6, att), 1);
    for (int row = 0; row < n; row++)
        for (int c = 0; c < 6; c++)
            assert_int_equal(PQsetvalue(r, row, c, (char *)v[row][c], v[row][c] ? (int)strlen(v[row][c]) : -1), 1);
    return r;
}

static char *ours(const struct secrets *s, const PGresult *r)
{
    struct json_out o;
    json_out_init(&o);
    llm_keys_rows_out(&o, s, r);
    size_t len;
    return json_out_finish(&o, &len);
}

static char *theirs(const struct secrets *s, const PGresult *r)
{
    json_t *j = llm_keys_rows_json(s, r);
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

static void test_same_bytes_as_jansson(void **state)
{
    (void)state;
    struct secrets s;
    assert_int_equal(secrets_init(&s, "default-password", "default-key-change-this-in-production-32chars!!"), 0);
    char *enc = NULL;
    assert_int_equal(secrets_b_encrypt(&s, "sk-abcdef0123456789", 19, &enc), 0);
    const char *const v[][6] = {
        {"3", "OpenAI", "https://api.openai.com/v1", "gpt-4o", "2026-12-01T10:00:00.000Z", enc},
        {"12", "Anthropic", NULL, "claude \"3\"\n\ttab\x01", "2026-12-02T10:00:00.000Z", "sk-plaintext-legacy"},
        {"9223372036854775807", "OpenRouter", "https://openrouter.ai/api/v1", "mod\xc3\xa8le \xe2\x80\xa8 \\/", "x", "bad:value"},
        {"0", "", "", "", "", ""},
    };
    for (int n = 0; n <= 4; n++) {
        PGresult *r = rows(v, n);
        char *a = ours(&s, r), *b = theirs(&s, r);
        assert_non_null(a);
        assert_string_equal(a, b);
        free(a);
        free(b);
        PQclear(r);
    }
    /* a model jansson refuses (not UTF-8): the writer fails instead of writing bad JSON */
    const char *const bad[][6] = {{"1", "OpenAI", NULL, "caf\xe9", "x", "sk-x"}};
    PGresult *r = rows(bad, 1);
    assert_null(ours(&s, r));
    PQclear(r);
    free(enc);
    secrets_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
