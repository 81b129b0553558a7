/* crypto/secrets: VerifyWise-compatible secrets at rest (scheme A: scrypt key,
 * separate hex columns; scheme B: padded ENCRYPTION_KEY, "iv:ct"), plus the
 * key mask shown to users and the HMAC fingerprint used for duplicate checks. */
#include "crypto/secrets.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "util/codec.h"

#define SECRETS_IV_LEN 16
#define SECRETS_BLOCK 16
#define SECRETS_KEY_LEN 32

#define SCRYPT_SALT "default-salt"
#define SCRYPT_N 16384
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_MAXMEM (64u * 1024u * 1024u)

#define FP_LABEL "integrationsd:llm-key-fingerprint:v1"

/* Scheme B key, exactly as Node builds it: the JavaScript string padEnd(32,
 * '0').slice(0, 32), UTF-8 encoded, must be 32 bytes. Any non-ASCII character
 * among the first 32 characters makes it longer, and Node throws "Invalid key
 * length"; in bytes that is "the first min(32, len) bytes are all ASCII". */
static int secrets_key_b(const char *key, unsigned char out[SECRETS_KEY_LEN])
{
    size_t len = strlen(key);
    size_t take = len < SECRETS_KEY_LEN ? len : SECRETS_KEY_LEN;

    for (size_t i = 0; i < take; i++)
        if ((unsigned char)key[i] >= 0x80)
            return -1;
    memcpy(out, key, take);
    memset(out + take, '0', SECRETS_KEY_LEN - take);
    return 0;
}

int secrets_key_check(const char *encryption_key)
{
    unsigned char k[SECRETS_KEY_LEN];
    int rc = encryption_key ? secrets_key_b(encryption_key, k) : -1;
    OPENSSL_cleanse(k, sizeof k);
    return rc;
}

/* The scrypt derivation, on its own thread: touches nothing but the job. */
struct secrets_a_job {
    pthread_t thread;
    char *password;
    size_t password_len;
    unsigned char key[SECRETS_KEY_LEN];
    int ok;
    int done_fd; /* eventfd written when the derivation ends (-1: none, join blindly);
                  * it may still be watched after the join, so only secrets_clear closes it */
};

static int derive_a(const char *pw, size_t len, unsigned char out[SECRETS_KEY_LEN])
{
    return EVP_PBE_scrypt(pw, len, (const unsigned char *)SCRYPT_SALT, sizeof SCRYPT_SALT - 1, SCRYPT_N,
                          SCRYPT_R, SCRYPT_P, SCRYPT_MAXMEM, out, SECRETS_KEY_LEN) == 1;
}

/* The derivation has ended: its descriptor turns readable. */
static void signal_done(const struct secrets_a_job *j)
{
    if (j->done_fd >= 0) {
        uint64_t one = 1;
        (void)!write(j->done_fd, &one, sizeof one); /* an eventfd counter: cannot be short */
    }
}

static void *derive_a_thread(void *arg)
{
    struct secrets_a_job *j = arg;
    /* Normal priority: a scheme A call made before the end waits for it on the loop, so
     * it must not be starved on a busy machine. */
    j->ok = derive_a(j->password, j->password_len, j->key);
    signal_done(j);
    return NULL;
}

/* Keep a copy of the password for the derivation, which secrets_a_start begins later
 * (so it does not compete with start-up for the CPU). 0, or -1 when out of memory. */
static int prepare_a(struct secrets *s, const char *pw)
{
    size_t len = strlen(pw);
    struct secrets_a_job *j = calloc(1, sizeof *j);
    if (!j || !(j->password = malloc(len + 1))) {
        free(j);
        return -1;
    }
    memcpy(j->password, pw, len + 1);
    j->password_len = len;
    j->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->a_job = j;
    s->a_state = SECRETS_A_PENDING;
    return 0;
}

/* The job's outcome into s, and the password copy wiped. */
static void finish_a(struct secrets *s, struct secrets_a_job *j)
{
    if (j->ok)
        memcpy(s->key_a, j->key, sizeof s->key_a);
    s->a_state = j->ok ? SECRETS_A_READY : SECRETS_A_FAILED;
    OPENSSL_cleanse(j->key, sizeof j->key);
    OPENSSL_cleanse(j->password, j->password_len);
    free(j->password);
    j->password = NULL;
}

/* The derivation on the calling thread (none was started, or none can be). */
static void derive_here(struct secrets *s, struct secrets_a_job *j)
{
    j->ok = derive_a(j->password, j->password_len, j->key);
    finish_a(s, j);
    signal_done(j);
}

int secrets_a_start(struct secrets *s)
{
    struct secrets_a_job *j = s->a_job;
    if (s->a_state != SECRETS_A_PENDING)
        return s->a_state == SECRETS_A_FAILED ? -1 : 0;
    if (pthread_create(&j->thread, NULL, derive_a_thread, j) == 0) {
        s->a_state = SECRETS_A_DERIVING;
        return 0;
    }
    derive_here(s, j); /* no thread: here, then */
    return s->a_state == SECRETS_A_READY ? 0 : -1;
}

int secrets_a_wait(const struct secrets *cs)
{
    /* The secrets object itself is never const (it lives in struct app or a test's
     * stack): joining once behind the const API is the lazy part of the design. */
    struct secrets *s = (struct secrets *)cs;
    struct secrets_a_job *j = s->a_job;
    if (s->a_state == SECRETS_A_PENDING) /* never started: derive here */
        derive_here(s, j);
    else if (s->a_state == SECRETS_A_DERIVING) {
        pthread_join(j->thread, NULL);
        finish_a(s, j);
    }
    return s->a_state == SECRETS_A_READY ? 0 : -1;
}

int secrets_a_done_fd(const struct secrets *s)
{
    return s->a_job ? s->a_job->done_fd : -1;
}

int secrets_a_state(const struct secrets *s)
{
    return s->a_state;
}

int secrets_init(struct secrets *s, const char *encryption_password, const char *encryption_key)
{
    unsigned int fp_len = 0;

    if (s == NULL)
        return -1;
    memset(s, 0, sizeof *s);
    if (encryption_password == NULL || encryption_key == NULL)
        return -1;
    if (secrets_key_b(encryption_key, s->key_b) != 0)
        goto fail;
    if (HMAC(EVP_sha256(), s->key_b, (int)sizeof s->key_b,
             (const unsigned char *)FP_LABEL, sizeof FP_LABEL - 1,
             s->key_fp, &fp_len) == NULL || fp_len != sizeof s->key_fp)
        goto fail;
    if (prepare_a(s, encryption_password) < 0)
        goto fail;
    return 0;
fail:
    secrets_clear(s);
    return -1;
}

void secrets_clear(struct secrets *s)
{
    if (s != NULL) {
        struct secrets_a_job *j = s->a_job;
        if (s->a_state == SECRETS_A_DERIVING) { /* join before wiping: the outcome no longer matters */
            pthread_join(j->thread, NULL);
            finish_a(s, j);
        }
        if (j) {
            if (j->password) {
                OPENSSL_cleanse(j->password, j->password_len);
                free(j->password);
            }
            if (j->done_fd >= 0)
                close(j->done_fd);
            free(j);
        }
        OPENSSL_cleanse(s, sizeof *s);
    }
}

/* The cipher, fetched from the provider once for the process: EVP_aes_256_cbc()
 * would make every init do a locked provider lookup. Never freed (process lifetime). */
static const EVP_CIPHER *aes_256_cbc(void)
{
    static EVP_CIPHER *fetched;
    if (!fetched)
        fetched = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    return fetched;
}

/* AES-256-CBC with PKCS#7 over pt into a fresh buffer of the ciphertext.
 * Returns the buffer (length in *ct_len) or NULL. */
static unsigned char *secrets_cbc_encrypt(const unsigned char key[SECRETS_KEY_LEN],
                                          const unsigned char iv[SECRETS_IV_LEN],
                                          const char *pt, size_t len, size_t *ct_len)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *ct = NULL;
    int n = 0, total = 0;

    if (len > (size_t)INT_MAX - 2 * SECRETS_BLOCK)
        return NULL;
    ct = malloc(len + SECRETS_BLOCK);
    ctx = EVP_CIPHER_CTX_new();
    if (ct == NULL || ctx == NULL)
        goto fail;
    if (!aes_256_cbc() || EVP_EncryptInit_ex2(ctx, aes_256_cbc(), key, iv, NULL) != 1)
        goto fail;
    if (len > 0) {
        if (EVP_EncryptUpdate(ctx, ct, &n, (const unsigned char *)pt, (int)len) != 1)
            goto fail;
        total = n;
    }
    if (EVP_EncryptFinal_ex(ctx, ct + total, &n) != 1)
        goto fail;
    total += n;
    EVP_CIPHER_CTX_free(ctx);
    *ct_len = (size_t)total;
    return ct;
fail:
    EVP_CIPHER_CTX_free(ctx);
    free(ct);
    return NULL;
}

/* Decrypt ct into a fresh NUL-terminated buffer. Returns 0 or -1 (the
 * partial plaintext is wiped on failure). */
static int secrets_cbc_decrypt(const unsigned char key[SECRETS_KEY_LEN],
                               const unsigned char iv[SECRETS_IV_LEN],
                               const unsigned char *ct, size_t ct_len,
                               char **pt_out, size_t *len_out)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *pt = NULL;
    size_t cap;
    int n = 0, total = 0;

    if (ct_len == 0 || ct_len % SECRETS_BLOCK != 0 || ct_len > (size_t)INT_MAX - 2 * SECRETS_BLOCK)
        return -1;
    cap = ct_len + SECRETS_BLOCK + 1;
    pt = malloc(cap);
    ctx = EVP_CIPHER_CTX_new();
    if (pt == NULL || ctx == NULL)
        goto fail;
    if (!aes_256_cbc() || EVP_DecryptInit_ex2(ctx, aes_256_cbc(), key, iv, NULL) != 1)
        goto fail;
    if (EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ct_len) != 1)
        goto fail;
    total = n;
    if (EVP_DecryptFinal_ex(ctx, pt + total, &n) != 1)
        goto fail;
    total += n;
    EVP_CIPHER_CTX_free(ctx);
    pt[total] = '\0';
    *pt_out = (char *)pt;
    *len_out = (size_t)total;
    return 0;
fail:
    EVP_CIPHER_CTX_free(ctx);
    if (pt != NULL) {
        OPENSSL_cleanse(pt, cap);
        free(pt);
    }
    return -1;
}

/* Hex-decode a NUL-terminated string into a fresh buffer. */
static unsigned char *secrets_unhex(const char *hex, size_t hex_len, size_t *out_len)
{
    unsigned char *buf;

    if (hex_len % 2 != 0)
        return NULL;
    buf = malloc(hex_len / 2 + 1);
    if (buf == NULL)
        return NULL;
    if (hex_decode(hex, hex_len, buf, out_len) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Exactly 32 hex characters into iv. */
static int secrets_unhex_iv(const char *hex, size_t hex_len, unsigned char iv[SECRETS_IV_LEN])
{
    size_t n = 0;

    if (hex_len != 2 * SECRETS_IV_LEN || hex_decode(hex, hex_len, iv, &n) != 0 ||
        n != SECRETS_IV_LEN)
        return -1;
    return 0;
}

int secrets_a_encrypt_iv(const struct secrets *s, const char *pt, size_t len,
                         const unsigned char iv[16], char **hex_out, char iv_hex[33])
{
    unsigned char *ct;
    size_t ct_len = 0;
    char *hex;

    if (hex_out == NULL)
        return -1;
    *hex_out = NULL;
    if (s == NULL || iv == NULL || iv_hex == NULL || (pt == NULL && len > 0))
        return -1;
    if (secrets_a_wait(s) < 0)
        return -1;
    ct = secrets_cbc_encrypt(s->key_a, iv, pt, len, &ct_len);
    if (ct == NULL)
        return -1;
    hex = malloc(2 * ct_len + 1);
    if (hex == NULL) {
        free(ct);
        return -1;
    }
    hex_encode(ct, ct_len, hex);
    free(ct);
    hex_encode(iv, SECRETS_IV_LEN, iv_hex);
    *hex_out = hex;
    return 0;
}

int secrets_a_encrypt(const struct secrets *s, const char *pt, size_t len,
                      char **hex_out, char iv_hex[33])
{
    unsigned char iv[SECRETS_IV_LEN];

    if (hex_out != NULL)
        *hex_out = NULL;
    if (RAND_bytes(iv, sizeof iv) != 1)
        return -1;
    return secrets_a_encrypt_iv(s, pt, len, iv, hex_out, iv_hex);
}

int secrets_a_decrypt(const struct secrets *s, const char *hex, const char *iv_hex,
                      char **pt_out, size_t *len_out)
{
    unsigned char iv[SECRETS_IV_LEN];
    unsigned char *ct;
    size_t ct_len = 0;
    int rc;

    if (pt_out == NULL || len_out == NULL)
        return -1;
    *pt_out = NULL;
    *len_out = 0;
    if (s == NULL || hex == NULL || iv_hex == NULL)
        return -1;
    if (secrets_unhex_iv(iv_hex, strlen(iv_hex), iv) != 0)
        return -1;
    ct = secrets_unhex(hex, strlen(hex), &ct_len);
    if (ct == NULL)
        return -1;
    rc = secrets_a_wait(s) < 0 ? -1 : secrets_cbc_decrypt(s->key_a, iv, ct, ct_len, pt_out, len_out);
    free(ct);
    return rc;
}

int secrets_b_encrypt_iv(const struct secrets *s, const char *pt, size_t len,
                         const unsigned char iv[16], char **out)
{
    unsigned char *ct;
    size_t ct_len = 0;
    char *txt;

    if (out == NULL)
        return -1;
    *out = NULL;
    if (s == NULL || pt == NULL || len == 0 || iv == NULL)
        return -1;
    ct = secrets_cbc_encrypt(s->key_b, iv, pt, len, &ct_len);
    if (ct == NULL)
        return -1;
    txt = malloc(2 * SECRETS_IV_LEN + 1 + 2 * ct_len + 1);
    if (txt == NULL) {
        free(ct);
        return -1;
    }
    hex_encode(iv, SECRETS_IV_LEN, txt);
    txt[2 * SECRETS_IV_LEN] = ':';
    hex_encode(ct, ct_len, txt + 2 * SECRETS_IV_LEN + 1);
    free(ct);
    *out = txt;
    return 0;
}

int secrets_b_encrypt(const struct secrets *s, const char *pt, size_t len, char **out)
{
    unsigned char iv[SECRETS_IV_LEN];

    if (out != NULL)
        *out = NULL;
    if (RAND_bytes(iv, sizeof iv) != 1)
        return -1;
    return secrets_b_encrypt_iv(s, pt, len, iv, out);
}

int secrets_b_decrypt(const struct secrets *s, const char *in, char **pt_out, size_t *len_out)
{
    unsigned char iv[SECRETS_IV_LEN];
    unsigned char *ct;
    const char *colon;
    size_t ct_len = 0;
    int rc;

    if (pt_out == NULL || len_out == NULL)
        return -1;
    *pt_out = NULL;
    *len_out = 0;
    if (s == NULL || in == NULL)
        return -1;
    colon = strchr(in, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL)
        return -1;
    if (secrets_unhex_iv(in, (size_t)(colon - in), iv) != 0)
        return -1;
    ct = secrets_unhex(colon + 1, strlen(colon + 1), &ct_len);
    if (ct == NULL)
        return -1;
    rc = secrets_cbc_decrypt(s->key_b, iv, ct, ct_len, pt_out, len_out);
    free(ct);
    return rc;
}

void secrets_mask(const char *pt, size_t len, char out[SECRETS_MASK_MAX])
{
    static const char prefix[] = "****...";
    size_t start = len, chars = 0;

    /* The last 4 characters (code points, as VerifyWise's slice(-4) on BMP text);
     * "****" when the secret has fewer than 4. */
    while (pt != NULL && start > 0 && chars < 4) {
        start--;
        if (((unsigned char)pt[start] & 0xC0) != 0x80)
            chars++;
    }
    if (pt == NULL || chars < 4 || len - start > SECRETS_MASK_MAX - sizeof prefix) {
        memcpy(out, "****", 5);
        return;
    }
    memcpy(out, prefix, sizeof prefix - 1);
    memcpy(out + sizeof prefix - 1, pt + start, len - start);
    out[sizeof prefix - 1 + len - start] = '\0';
}

int secrets_fingerprint(const struct secrets *s, const char *pt, size_t len, char out[65])
{
    static const unsigned char empty[1] = { 0 };
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (s == NULL || out == NULL || (pt == NULL && len > 0))
        return -1;
    if (HMAC(EVP_sha256(), s->key_fp, (int)sizeof s->key_fp,
             pt != NULL ? (const unsigned char *)pt : empty, len, mac, &mac_len) == NULL ||
        mac_len != 32) {
        OPENSSL_cleanse(mac, sizeof mac);
        return -1;
    }
    hex_encode(mac, 32, out);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

void secrets_free_plain(char *pt, size_t len)
{
    if (pt == NULL)
        return;
    OPENSSL_cleanse(pt, len);
    free(pt);
}
