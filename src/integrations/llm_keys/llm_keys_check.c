/* integrations/llm_keys_check: owns the rules of an /api/llm-keys body (required
 * fields, provider, lengths, NUL, masked keys) and the one table mapping each refusal
 * to its status and VerifyWise message. Pure: no request, no database, no clock. */
#include <string.h>

#include "integrations/llm_keys.h"
#include "util/json.h"

static const struct {
    const char *name;
    const char *url;
} providers[] = {
    {"Anthropic", "https://api.anthropic.com/v1"},
    {"OpenAI", "https://api.openai.com/v1/"},
    {"OpenRouter", "https://openrouter.ai/api/v1/"},
};

static const struct {
    int status;
    const char *message;
} errors[LLM_KEY_ERR_COUNT] = {
    [LLM_KEY_OK] = {200, ""},
    [LLM_KEY_ERR_BAD_ID] = {400, "Invalid id"},
    [LLM_KEY_ERR_REQUIRED] = {400, "Name and key are required"},
    [LLM_KEY_ERR_PROVIDER] = {400, "Invalid provider name. Must be one of: Anthropic, OpenAI, OpenRouter"},
    [LLM_KEY_ERR_MODEL_REQUIRED] = {400, "Model is required"},
    [LLM_KEY_ERR_NAME_TYPE] = {400, "name must be a string"},
    [LLM_KEY_ERR_KEY_TYPE] = {400, "key must be a string"},
    [LLM_KEY_ERR_MODEL_TYPE] = {400, "model must be a string"},
    [LLM_KEY_ERR_NO_FIELDS] = {400, "No fields to update"},
    [LLM_KEY_ERR_KEY_TOO_LONG] = {400, "Key must be at most 512 characters"},
    [LLM_KEY_ERR_MODEL_TOO_LONG] = {400, "Model must be at most 255 characters"},
    [LLM_KEY_ERR_NUL] = {400, "Key and model must not contain NUL characters"},
    [LLM_KEY_ERR_MASKED] = {400, "Key looks masked: type the full key to change it"},
    [LLM_KEY_ERR_DUP_CREATE] = {400, "This API key is already configured. Please use a different API key or edit "
                                     "the existing entry."},
    [LLM_KEY_ERR_DUP_UPDATE] = {400, "This API key is already configured. Please use a different API key."},
};

int llm_keys_err_status(enum llm_key_err e)
{
    return (unsigned)e < LLM_KEY_ERR_COUNT ? errors[e].status : 500;
}

const char *llm_keys_err_message(enum llm_key_err e)
{
    return (unsigned)e < LLM_KEY_ERR_COUNT ? errors[e].message : "Internal server error";
}

const char *llm_provider_url(const char *name)
{
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
        if (strcmp(providers[i].name, name) == 0)
            return providers[i].url;
    return NULL;
}

bool llm_key_looks_masked(const char *key, size_t len)
{
    return len >= 4 && memcmp(key, "****", 4) == 0;
}

/* The provider's url for a name of nlen bytes (no NUL inside), else NULL. */
static const char *provider_of(const char *name, size_t nlen)
{
    const char *url = llm_provider_url(name);
    return url && strlen(name) == nlen ? url : NULL;
}

/* Lengths, then NUL characters, of the fields given (NULL: not given). */
static enum llm_key_err check_values(const struct llm_key_input *in)
{
    if (in->key && utf8_length(in->key, in->klen) > LLM_KEY_MAX_CHARS)
        return LLM_KEY_ERR_KEY_TOO_LONG;
    if (in->model && utf8_length(in->model, in->mlen) > LLM_MODEL_MAX_CHARS)
        return LLM_KEY_ERR_MODEL_TOO_LONG;
    if ((in->key && strlen(in->key) != in->klen) || (in->model && strlen(in->model) != in->mlen))
        return LLM_KEY_ERR_NUL;
    return LLM_KEY_OK;
}

static enum llm_key_err check_create(const json_t *body, struct llm_key_input *in)
{
    size_t nlen = 0;
    if (json_get_string(body, "name", &in->name, &nlen) != 1 || nlen == 0 ||
        json_get_string(body, "key", &in->key, &in->klen) != 1 || in->klen == 0)
        return LLM_KEY_ERR_REQUIRED;
    if (!(in->url = provider_of(in->name, nlen)))
        return LLM_KEY_ERR_PROVIDER;
    if (json_get_string(body, "model", &in->model, &in->mlen) != 1 || in->mlen == 0)
        return LLM_KEY_ERR_MODEL_REQUIRED;
    enum llm_key_err e = check_values(in);
    if (e != LLM_KEY_OK)
        return e;
    return llm_key_looks_masked(in->key, in->klen) ? LLM_KEY_ERR_MASKED : LLM_KEY_OK;
}

/* A PATCH field: absent, null and "" leave it unchanged (*s NULL); another type is
 * an error. */
static bool patch_field(const json_t *body, const char *field, const char **s, size_t *len)
{
    int g = json_get_string(body, field, s, len);
    if (g < 0)
        return false;
    if (g == 0 || *len == 0) {
        *s = NULL;
        *len = 0;
    }
    return true;
}

static enum llm_key_err check_patch(const json_t *body, struct llm_key_input *in)
{
    size_t nlen = 0;
    if (!patch_field(body, "name", &in->name, &nlen))
        return LLM_KEY_ERR_NAME_TYPE;
    if (!patch_field(body, "key", &in->key, &in->klen))
        return LLM_KEY_ERR_KEY_TYPE;
    if (!patch_field(body, "model", &in->model, &in->mlen))
        return LLM_KEY_ERR_MODEL_TYPE;
    if (!in->name && !in->key && !in->model)
        return LLM_KEY_ERR_NO_FIELDS;
    if (in->name && !(in->url = provider_of(in->name, nlen)))
        return LLM_KEY_ERR_PROVIDER;
    return check_values(in);
}

enum llm_key_err llm_keys_check_body(const json_t *body, bool patch, struct llm_key_input *out)
{
    struct llm_key_input in = {0};
    enum llm_key_err e = patch ? check_patch(body, &in) : check_create(body, &in);
    *out = e == LLM_KEY_OK ? in : (struct llm_key_input){0};
    return e;
}
