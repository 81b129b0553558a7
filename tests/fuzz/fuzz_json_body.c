/* tests/fuzz/fuzz_json_body: json_parse_body (every JSON route's body) on arbitrary bytes,
 * then the very checks the routes that take a body run: llm_keys_check_body (POST/PATCH
 * /api/llm-keys; then scheme B encryption and the fingerprint of an accepted key),
 * github_check_save_body / github_check_test_body (POST /api/integrations/github/token
 * and /token/test), slack_webhooks_check_create / slack_webhooks_check_patch (POST
 * /api/slack-webhooks, PATCH /api/slack-webhooks/:id) and
 * mlflow_url_normalize, mlflow_auth_parse (POST /api/integrations/mlflow/configure|test).
 * Properties: JSON_BODY_OK gives an object no deeper than JSON_MAX_DEPTH, anything else
 * gives NULL; an accepted body dumped and parsed again is accepted and equal; a refusal
 * has a status and a message in its integration's table and leaves the output empty;
 * what a check accepts is within the limits its header states (no copy of them here);
 * an accepted key decrypts back to itself; a normalized URL is an http(s) URL of at most
 * MLFLOW_URL_MAX characters. Nothing may leak. */
#include "fuzz.h"

#include <ctype.h>
#include <stdbool.h>

#include "crypto/secrets.h"
#include "integrations/github.h"
#include "integrations/llm_keys.h"
#include "integrations/mlflow_client.h"
#include "integrations/slack_webhooks.h"
#include "util/json.h"

static struct secrets keys;   /* set once, read-only afterwards */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    json_object_seed(1);      /* deterministic hashing: reproducible runs */
    if (secrets_init(&keys, "fuzz-password", "fuzz-key-0123456789abcdef") != 0 || secrets_a_wait(&keys) != 0)
        abort();
    return 0;
}

static int depth(const json_t *v)
{
    int d = 0, m = 0;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) if ((d = depth(x)) > m) m = d;
        return m + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) if ((d = depth(x)) > m) m = d;
        return m + 1;
    }
    return 0;
}

/* Encrypt, fingerprint and decrypt a secret the way the key routes do. */
static void store_secret(const char *s, size_t n)
{
    static const unsigned char iv[16] = "fuzz-fixed-iv-1";
    char *enc = NULL, fp[65], fp2[65], mask[SECRETS_MASK_MAX];
    FUZZ_ASSERT(secrets_b_encrypt_iv(&keys, s, n, iv, &enc) == 0);
    FUZZ_ASSERT(secrets_fingerprint(&keys, s, n, fp) == 0 && strlen(fp) == 64);
    FUZZ_ASSERT(secrets_fingerprint(&keys, s, n, fp2) == 0 && strcmp(fp, fp2) == 0);
    char *pt = NULL;
    size_t pl = 0;
    FUZZ_ASSERT(secrets_b_decrypt(&keys, enc, &pt, &pl) == 0);
    FUZZ_ASSERT(pl == n && memcmp(pt, s, n) == 0 && pt[n] == '\0');
    secrets_mask(pt, pl, mask);
    fuzz_check_cstr(mask, sizeof mask);
    FUZZ_ASSERT(strncmp(mask, "****", 4) == 0);
    secrets_free_plain(pt, pl);
    free(enc);
}

/* A string field a check accepted: n bytes, no NUL, at most max code points. */
static void accepted_string(const char *s, size_t n, size_t max)
{
    FUZZ_ASSERT(s != NULL && n > 0 && strlen(s) == n && utf8_length(s, n) <= max);
}

/* POST /api/llm-keys (create) and PATCH /api/llm-keys/:id (patch). */
static void llm_key_fields(const json_t *j, bool patch)
{
    struct llm_key_input in;
    memset(&in, 0xa5, sizeof in);
    enum llm_key_err e = llm_keys_check_body(j, patch, &in);
    FUZZ_ASSERT(e >= LLM_KEY_OK && e < LLM_KEY_ERR_COUNT);
    if (e != LLM_KEY_OK) {
        FUZZ_ASSERT(llm_keys_err_status(e) == 400 && *llm_keys_err_message(e));
        FUZZ_ASSERT(!in.name && !in.url && !in.key && !in.model && !in.klen && !in.mlen);
        return;
    }
    if (!patch)
        FUZZ_ASSERT(in.name && in.key && in.model && !llm_key_looks_masked(in.key, in.klen));
    else
        FUZZ_ASSERT(in.name || in.key || in.model);
    if (in.name) {
        FUZZ_ASSERT(in.url && in.url == llm_provider_url(in.name));
        FUZZ_ASSERT(strncmp(in.url, "https://", 8) == 0);
    } else {
        FUZZ_ASSERT(in.url == NULL);
    }
    if (in.model)
        accepted_string(in.model, in.mlen, LLM_MODEL_MAX_CHARS);
    if (in.key) {
        accepted_string(in.key, in.klen, LLM_KEY_MAX_CHARS);
        store_secret(in.key, in.klen);
    }
}

/* A token a GitHub check accepted: trimmed, no NUL, of a known shape. */
static void accepted_token(const struct github_token_input *in)
{
    FUZZ_ASSERT(in->token && in->len > 0 && in->len <= GITHUB_TOKEN_MAX);
    FUZZ_ASSERT(!memchr(in->token, '\0', in->len));
    FUZZ_ASSERT(!isspace((unsigned char)in->token[0]) && !isspace((unsigned char)in->token[in->len - 1]));
    FUZZ_ASSERT(github_token_check_format(in->token, in->len) == GITHUB_OK);
    FUZZ_ASSERT(github_token_format_error(in->token, in->len) == NULL);
}

static void github_refused(enum github_err e, const struct github_token_input *in)
{
    FUZZ_ASSERT(e > GITHUB_OK && e < GITHUB_ERR_COUNT && e != GITHUB_ERR_NOT_FOUND);
    FUZZ_ASSERT(github_err_status(e) == 400 && *github_err_message(e));
    FUZZ_ASSERT(!in->token && !in->len && !in->name && !in->stored);
}

/* POST /api/integrations/github/token and /token/test. */
static void github_fields(const json_t *j)
{
    struct github_token_input in;
    memset(&in, 0xa5, sizeof in);
    enum github_err e = github_check_save_body(j, &in);
    if (e != GITHUB_OK) {
        github_refused(e, &in);
    } else {
        accepted_token(&in);
        FUZZ_ASSERT(!in.stored);
        if (in.name)
            accepted_string(in.name, strlen(in.name), GITHUB_NAME_MAX_CHARS);
        store_secret(in.token, in.len);
    }
    memset(&in, 0xa5, sizeof in);
    e = github_check_test_body(j, &in);
    if (e != GITHUB_OK) {
        github_refused(e, &in);
        FUZZ_ASSERT(json_object_get(j, "token") != NULL);
    } else if (in.stored) {
        FUZZ_ASSERT(json_object_get(j, "token") == NULL && !in.token);
    } else {
        accepted_token(&in);
    }
}

/* POST and PATCH /api/slack-webhooks[/:id]. */
static void slack_webhook_fields(const json_t *j)
{
    const char *code = (const char *)1;
    size_t clen = 1;
    enum slack_wh_err ce = slack_webhooks_check_create(j, &code, &clen);
    if (ce == SLACK_WH_OK) {
        FUZZ_ASSERT(code && clen > 0 && clen <= SLACK_CODE_MAX && !memchr(code, '\0', clen));
    } else {
        FUZZ_ASSERT(ce == SLACK_WH_ERR_USER_ID || ce == SLACK_WH_ERR_CODE_TYPE || ce == SLACK_WH_ERR_CODE_REQUIRED ||
                    ce == SLACK_WH_ERR_CODE_TOO_LONG);
        FUZZ_ASSERT(slack_webhooks_err_status(ce) == 400 && slack_webhooks_err_message(ce) && !code && !clen);
    }

    struct slack_webhook_patch p;
    memset(&p, 0xa5, sizeof p);
    enum slack_wh_err e = slack_webhooks_check_patch(j, &p);
    if (e != SLACK_WH_OK) {
        FUZZ_ASSERT(e == SLACK_WH_ERR_ACTIVE_TYPE || e == SLACK_WH_ERR_ROUTING_SHAPE ||
                    e == SLACK_WH_ERR_ROUTING_VALUE || e == SLACK_WH_ERR_NOTHING);
        FUZZ_ASSERT(slack_webhooks_err_status(e) == 400 && slack_webhooks_err_message(e));
        FUZZ_ASSERT(!p.active && !p.routing);
        return;
    }
    FUZZ_ASSERT(p.active || p.routing);
    if (p.active)
        FUZZ_ASSERT(strcmp(p.active, "true") == 0 || strcmp(p.active, "false") == 0);
    if (p.routing) { /* a JSON array of distinct routing types */
        json_error_t je;
        json_t *list = json_loads(p.routing, 0, &je);
        FUZZ_ASSERT(json_is_array(list) && json_array_size(list) <= SLACK_ROUTING_TYPES);
        size_t i, k;
        json_t *it, *other;
        json_array_foreach(list, i, it) {
            FUZZ_ASSERT(slack_routing_type_valid(json_string_value(it), json_string_length(it)));
            json_array_foreach(list, k, other) FUZZ_ASSERT(k == i || !json_equal(it, other));
        }
        json_decref(list);
    }
    slack_webhook_patch_clear(&p);
    FUZZ_ASSERT(!p.active && !p.routing);
}

/* POST /api/integrations/mlflow/configure and /test. */
static void mlflow_fields(const json_t *j)
{
    const char *s;
    size_t n;
    if (json_get_string(j, "trackingServerUrl", &s, &n) == 1 && !memchr(s, '\0', n)) {
        char out[MLFLOW_URL_MAX + 1];
        memset(out, 'x', sizeof out);
        if (mlflow_url_normalize(s, n, out) == NULL) {
            size_t l = strnlen(out, sizeof out);
            FUZZ_ASSERT(l < sizeof out && l > 7);
            FUZZ_ASSERT(strncmp(out, "http://", 7) == 0 || strncmp(out, "https://", 8) == 0);
            FUZZ_ASSERT(strpbrk(out, " ?#\\\t\r\n") == NULL);
        }
    }
    enum mlflow_auth a;
    if (json_get_string(j, "authMethod", &s, &n) == 1 && mlflow_auth_parse(s, &a) == 0)
        FUZZ_ASSERT(strcmp(mlflow_auth_name(a), s) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    json_t *j = (json_t *)1;
    enum json_body_status st = json_parse_body(data, size, &j);
    if (st != JSON_BODY_OK) {
        FUZZ_ASSERT(st == JSON_BODY_INVALID || st == JSON_BODY_NOT_OBJECT);
        FUZZ_ASSERT(j == NULL);
        return 0;
    }
    FUZZ_ASSERT(json_is_object(j));
    FUZZ_ASSERT(depth(j) <= JSON_MAX_DEPTH);

    /* dump and parse again: still accepted, and equal */
    char *dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_ASSERT(dump != NULL);
    json_t *again = NULL;
    FUZZ_ASSERT(json_parse_body((const unsigned char *)dump, strlen(dump), &again) == JSON_BODY_OK);
    FUZZ_ASSERT(json_equal(j, again));
    json_decref(again);
    free(dump);

    /* every member through json_get_string */
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        const char *s = NULL;
        size_t n = 0;
        int g = json_get_string(j, k, &s, &n);
        if (json_is_string(v)) {
            FUZZ_ASSERT(g == 1 && s == json_string_value(v) && n == json_string_length(v));
            size_t cps = 0;
            for (size_t i = 0; i < n; i++)
                cps += ((unsigned char)s[i] & 0xC0) != 0x80;
            FUZZ_ASSERT(utf8_length(s, n) == cps && cps <= n);
        } else {
            FUZZ_ASSERT(g == (json_is_null(v) ? 0 : -1));
        }
    }

    llm_key_fields(j, false);
    llm_key_fields(j, true);
    github_fields(j);
    slack_webhook_fields(j);
    mlflow_fields(j);
    json_decref(j);
    return 0;
}
