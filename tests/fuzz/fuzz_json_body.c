/* tests/fuzz/fuzz_json_body: json_parse_body (every JSON route's body) on arbitrary bytes,
 * then the field checks of the routes that take a body, as far as public functions
 * reach them: POST/PATCH /api/llm-keys (name, key, model; scheme B encryption and the
 * fingerprint of an accepted key), POST /api/integrations/github/token[/test] (token
 * trimming and github_token_format_error, token_name) and POST
 * /api/integrations/mlflow/configure|test (mlflow_url_normalize, mlflow_auth_parse).
 * Properties: JSON_BODY_OK gives an object no deeper than JSON_MAX_DEPTH, anything else
 * gives NULL; an accepted body dumped and parsed again is accepted and equal; an accepted
 * key decrypts back to itself; a normalized URL is an http(s) URL of at most
 * MLFLOW_URL_MAX characters. Nothing may leak. */
#include "fuzz.h"

#include <ctype.h>
#include <stdbool.h>

#include "crypto/secrets.h"
#include "integrations/github.h"
#include "integrations/llm_keys.h"
#include "integrations/mlflow_client.h"
#include "util/json.h"

#define KEY_MAX_CHARS 512     /* src/integrations/llm_keys.c */
#define MODEL_MAX_CHARS 255
#define NAME_MAX_CHARS 100    /* src/integrations/github.c */

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

/* POST /api/llm-keys (create) and PATCH /api/llm-keys/:id (patch). */
static void llm_key_fields(const json_t *j, bool patch)
{
    const char *name = NULL, *key = NULL, *model = NULL;
    size_t nlen = 0, klen = 0, mlen = 0;
    int gn = json_get_string(j, "name", &name, &nlen);
    int gk = json_get_string(j, "key", &key, &klen);
    int gm = json_get_string(j, "model", &model, &mlen);
    FUZZ_ASSERT(gn >= -1 && gn <= 1 && gk >= -1 && gk <= 1 && gm >= -1 && gm <= 1);
    if (patch) {
        if (gn < 0 || gk < 0 || gm < 0)
            return;
        if (gn == 0 || nlen == 0)
            name = NULL;
        if (gk == 0 || klen == 0)
            key = NULL;
        if (gm == 0 || mlen == 0)
            model = NULL;
        if (!name && !key && !model)
            return;
    } else if (gn != 1 || nlen == 0 || gk != 1 || klen == 0 || gm != 1 || mlen == 0) {
        return;
    }
    if (name) {
        const char *url = llm_provider_url(name);
        if (!url || strlen(name) != nlen)
            return;
        FUZZ_ASSERT(strncmp(url, "https://", 8) == 0);
    }
    if (key && (utf8_length(key, klen) > KEY_MAX_CHARS || strlen(key) != klen))
        return;
    if (model && (utf8_length(model, mlen) > MODEL_MAX_CHARS || strlen(model) != mlen))
        return;
    if (key)
        store_secret(key, klen);
}

/* POST /api/integrations/github/token and /token/test. */
static void github_fields(const json_t *j)
{
    const char *s, *name;
    size_t n, nlen;
    if (json_get_string(j, "token", &s, &n) == 1 && n > 0) {
        while (n && isspace((unsigned char)*s))
            s++, n--;
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        const char *err = memchr(s, '\0', n) ? "nul" : github_token_format_error(s, n);
        if (!err) {
            FUZZ_ASSERT(n > 0 && n <= 255);
            store_secret(s, n);
        }
    }
    if (json_get_string(j, "token_name", &name, &nlen) == 1 && nlen > 0)
        (void)(utf8_length(name, nlen) > NAME_MAX_CHARS || strlen(name) != nlen);
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
    mlflow_fields(j);
    json_decref(j);
    return 0;
}
