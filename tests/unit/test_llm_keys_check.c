/* Unit tests for integrations/llm_keys_check: the /api/llm-keys body rules (create
 * and PATCH) from both sides of every bound, wrong types, missing fields, the order
 * the checks run in, and the one table of statuses and VerifyWise messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "integrations/llm_keys.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &e);
    assert_non_null(j);
    return j;
}

/* n copies of the UTF-8 character c (1 to 4 bytes), NUL-terminated. */
static char *repeat(const char *c, size_t n)
{
    size_t cl = strlen(c);
    char *s = malloc(cl * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * cl, c, cl);
    s[cl * n] = '\0';
    return s;
}

/* The error of a body given as JSON text. */
static enum llm_key_err check(const char *text, bool patch)
{
    json_t *j = parse(text);
    struct llm_key_input in;
    enum llm_key_err e = llm_keys_check_body(j, patch, &in);
    json_decref(j);
    return e;
}

/* A create body with key and model (and name OpenAI) set to these values. */
static enum llm_key_err check_values(bool patch, json_t *key, json_t *model)
{
    json_t *j = json_pack("{s:s,s:o,s:o}", "name", "OpenAI", "key", key, "model", model);
    assert_non_null(j);
    struct llm_key_input in;
    enum llm_key_err e = llm_keys_check_body(j, patch, &in);
    json_decref(j);
    return e;
}

static void create_ok(void **state)
{
    (void)state;
    json_t *j = parse("{\"name\":\"OpenAI\",\"key\":\"sk-abc\",\"model\":\"gpt-4o\",\"extra\":1}");
    struct llm_key_input in;
    assert_int_equal(llm_keys_check_body(j, false, &in), LLM_KEY_OK);
    assert_ptr_equal(in.name, json_string_value(json_object_get(j, "name")));
    assert_ptr_equal(in.key, json_string_value(json_object_get(j, "key")));
    assert_ptr_equal(in.model, json_string_value(json_object_get(j, "model")));
    assert_string_equal(in.url, "https://api.openai.com/v1/");
    assert_int_equal(in.klen, 6);
    assert_int_equal(in.mlen, 6);
    json_decref(j);
    assert_int_equal(check("{\"name\":\"Anthropic\",\"key\":\"k\",\"model\":\"m\"}", false), LLM_KEY_OK);
    assert_int_equal(check("{\"name\":\"OpenRouter\",\"key\":\"k\",\"model\":\"m\"}", false), LLM_KEY_OK);
}

static void create_required(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{}",
        "{\"key\":\"k\",\"model\":\"m\"}",
        "{\"name\":\"OpenAI\",\"model\":\"m\"}",
        "{\"name\":\"\",\"key\":\"k\",\"model\":\"m\"}",
        "{\"name\":\"OpenAI\",\"key\":\"\",\"model\":\"m\"}",
        "{\"name\":null,\"key\":\"k\",\"model\":\"m\"}",
        "{\"name\":\"OpenAI\",\"key\":null,\"model\":\"m\"}",
        "{\"name\":5,\"key\":\"k\",\"model\":\"m\"}",
        "{\"name\":\"OpenAI\",\"key\":[\"k\"],\"model\":\"m\"}",
        "{\"name\":\"Nope\",\"key\":5}", /* required comes before the provider */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_int_equal(check(bodies[i], false), LLM_KEY_ERR_REQUIRED);
}

static void create_provider_and_model(void **state)
{
    (void)state;
    assert_int_equal(check("{\"name\":\"openai\",\"key\":\"k\",\"model\":\"m\"}", false), LLM_KEY_ERR_PROVIDER);
    assert_int_equal(check("{\"name\":\"OpenAI \",\"key\":\"k\",\"model\":\"m\"}", false), LLM_KEY_ERR_PROVIDER);
    assert_int_equal(check("{\"name\":\"OpenAI\\u0000x\",\"key\":\"k\",\"model\":\"m\"}", false),
                     LLM_KEY_ERR_PROVIDER);
    /* the provider comes before the model */
    assert_int_equal(check("{\"name\":\"Bad\",\"key\":\"k\"}", false), LLM_KEY_ERR_PROVIDER);
    static const char *const no_model[] = {
        "{\"name\":\"OpenAI\",\"key\":\"k\"}",
        "{\"name\":\"OpenAI\",\"key\":\"k\",\"model\":\"\"}",
        "{\"name\":\"OpenAI\",\"key\":\"k\",\"model\":null}",
        "{\"name\":\"OpenAI\",\"key\":\"k\",\"model\":7}",
    };
    for (size_t i = 0; i < sizeof no_model / sizeof no_model[0]; i++)
        assert_int_equal(check(no_model[i], false), LLM_KEY_ERR_MODEL_REQUIRED);
}

/* key and model lengths count code points: both sides of each bound, one- and
 * two-byte characters, create and PATCH alike. */
static void lengths(void **state)
{
    (void)state;
    for (int patch = 0; patch <= 1; patch++) {
        static const char *const chars[] = {"k", "\xc3\xa9", "\xf0\x9f\x94\x91"};
        for (size_t c = 0; c < 3; c++) {
            char *k512 = repeat(chars[c], LLM_KEY_MAX_CHARS), *k513 = repeat(chars[c], LLM_KEY_MAX_CHARS + 1);
            char *m255 = repeat(chars[c], LLM_MODEL_MAX_CHARS), *m256 = repeat(chars[c], LLM_MODEL_MAX_CHARS + 1);
            assert_int_equal(check_values(patch, json_string(k512), json_string(m255)), LLM_KEY_OK);
            assert_int_equal(check_values(patch, json_string(k513), json_string(m255)), LLM_KEY_ERR_KEY_TOO_LONG);
            assert_int_equal(check_values(patch, json_string(k512), json_string(m256)), LLM_KEY_ERR_MODEL_TOO_LONG);
            /* the key's length is looked at first */
            assert_int_equal(check_values(patch, json_string(k513), json_string(m256)), LLM_KEY_ERR_KEY_TOO_LONG);
            free(k512), free(k513), free(m255), free(m256);
        }
    }
    assert_int_equal(LLM_KEY_MAX_CHARS, 512);
    assert_int_equal(LLM_MODEL_MAX_CHARS, 255);
}

static void nul_characters(void **state)
{
    (void)state;
    for (int patch = 0; patch <= 1; patch++) {
        assert_int_equal(check_values(patch, json_stringn("a\0b", 3), json_string("m")), LLM_KEY_ERR_NUL);
        assert_int_equal(check_values(patch, json_string("k"), json_stringn("m\0", 2)), LLM_KEY_ERR_NUL);
        /* a length error is named before the NUL */
        char *k = repeat("k", LLM_KEY_MAX_CHARS + 1);
        k[3] = '\0';
        assert_int_equal(check_values(patch, json_stringn(k, LLM_KEY_MAX_CHARS + 1), json_string("m")),
                         LLM_KEY_ERR_KEY_TOO_LONG);
        free(k);
    }
}

static void masked(void **state)
{
    (void)state;
    assert_int_equal(check("{\"name\":\"OpenAI\",\"key\":\"****abcd\",\"model\":\"m\"}", false), LLM_KEY_ERR_MASKED);
    assert_int_equal(check("{\"name\":\"OpenAI\",\"key\":\"****\",\"model\":\"m\"}", false), LLM_KEY_ERR_MASKED);
    assert_int_equal(check("{\"name\":\"OpenAI\",\"key\":\"***abcd\",\"model\":\"m\"}", false), LLM_KEY_OK);
    assert_int_equal(check("{\"name\":\"OpenAI\",\"key\":\"a****\",\"model\":\"m\"}", false), LLM_KEY_OK);
    /* PATCH: a masked key passes (compared with the row's own mask later) */
    json_t *j = parse("{\"key\":\"****abcd\"}");
    struct llm_key_input in;
    assert_int_equal(llm_keys_check_body(j, true, &in), LLM_KEY_OK);
    assert_string_equal(in.key, "****abcd");
    assert_int_equal(in.klen, 8);
    json_decref(j);
    assert_true(llm_key_looks_masked("****", 4));
    assert_false(llm_key_looks_masked("****", 3));
    assert_false(llm_key_looks_masked("***x", 4));
}

static void patch_fields(void **state)
{
    (void)state;
    assert_int_equal(check("{}", true), LLM_KEY_ERR_NO_FIELDS);
    assert_int_equal(check("{\"name\":null,\"key\":\"\",\"model\":null,\"url\":\"x\"}", true), LLM_KEY_ERR_NO_FIELDS);
    assert_int_equal(check("{\"name\":5}", true), LLM_KEY_ERR_NAME_TYPE);
    assert_int_equal(check("{\"key\":[]}", true), LLM_KEY_ERR_KEY_TYPE);
    assert_int_equal(check("{\"model\":{}}", true), LLM_KEY_ERR_MODEL_TYPE);
    assert_int_equal(check("{\"model\":true,\"key\":1,\"name\":2}", true), LLM_KEY_ERR_NAME_TYPE);
    assert_int_equal(check("{\"model\":true,\"key\":1}", true), LLM_KEY_ERR_KEY_TYPE);
    /* a type error comes before "no fields" and the provider */
    assert_int_equal(check("{\"name\":\"Bad\",\"model\":false}", true), LLM_KEY_ERR_MODEL_TYPE);
    assert_int_equal(check("{\"name\":\"Bad\"}", true), LLM_KEY_ERR_PROVIDER);
    assert_int_equal(check("{\"name\":\"Bad\",\"key\":\"\"}", true), LLM_KEY_ERR_PROVIDER);

    json_t *j = parse("{\"model\":\"gpt\",\"name\":\"\"}");
    struct llm_key_input in;
    assert_int_equal(llm_keys_check_body(j, true, &in), LLM_KEY_OK);
    assert_null(in.name);
    assert_null(in.url);
    assert_null(in.key);
    assert_string_equal(in.model, "gpt");
    json_decref(j);
    j = parse("{\"name\":\"Anthropic\",\"key\":null}");
    assert_int_equal(llm_keys_check_body(j, true, &in), LLM_KEY_OK);
    assert_string_equal(in.url, "https://api.anthropic.com/v1");
    assert_null(in.key);
    assert_int_equal(in.klen, 0);
    json_decref(j);
}

static void zeroed_on_error(void **state)
{
    (void)state;
    json_t *j = parse("{\"name\":\"OpenAI\",\"key\":\"k\"}");
    struct llm_key_input in;
    memset(&in, 0xa5, sizeof in);
    assert_int_equal(llm_keys_check_body(j, false, &in), LLM_KEY_ERR_MODEL_REQUIRED);
    assert_null(in.name);
    assert_null(in.key);
    assert_null(in.url);
    assert_int_equal(in.klen, 0);
    json_decref(j);
}

static void error_table(void **state)
{
    (void)state;
    for (int e = 1; e < LLM_KEY_ERR_COUNT; e++) {
        assert_int_equal(llm_keys_err_status((enum llm_key_err)e), 400);
        assert_true(strlen(llm_keys_err_message((enum llm_key_err)e)) > 0);
    }
    assert_int_equal(llm_keys_err_status(LLM_KEY_OK), 200);
    assert_int_equal(llm_keys_err_status(LLM_KEY_ERR_COUNT), 500);
    /* the messages the black-box tests and the VerifyWise contract pin */
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_REQUIRED), "Name and key are required");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_MODEL_REQUIRED), "Model is required");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_PROVIDER),
                        "Invalid provider name. Must be one of: Anthropic, OpenAI, OpenRouter");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_NO_FIELDS), "No fields to update");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_BAD_ID), "Invalid id");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_KEY_TOO_LONG), "Key must be at most 512 characters");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_MODEL_TOO_LONG), "Model must be at most 255 characters");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_NAME_TYPE), "name must be a string");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_KEY_TYPE), "key must be a string");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_MODEL_TYPE), "model must be a string");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_DUP_CREATE),
                        "This API key is already configured. Please use a different API key or edit the existing "
                        "entry.");
    assert_string_equal(llm_keys_err_message(LLM_KEY_ERR_DUP_UPDATE),
                        "This API key is already configured. Please use a different API key.");
}

static void providers(void **state)
{
    (void)state;
    assert_string_equal(llm_provider_url("Anthropic"), "https://api.anthropic.com/v1");
    assert_string_equal(llm_provider_url("OpenAI"), "https://api.openai.com/v1/");
    assert_string_equal(llm_provider_url("OpenRouter"), "https://openrouter.ai/api/v1/");
    assert_null(llm_provider_url("Openai"));
    assert_null(llm_provider_url(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_ok),   cmocka_unit_test(create_required), cmocka_unit_test(create_provider_and_model),
        cmocka_unit_test(lengths),     cmocka_unit_test(nul_characters),  cmocka_unit_test(masked),
        cmocka_unit_test(patch_fields), cmocka_unit_test(zeroed_on_error), cmocka_unit_test(error_table),
        cmocka_unit_test(providers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
