/* crypto/secrets: the two VerifyWise encryption formats, masking and fingerprints.
 * Scheme A: AES-256-CBC, key = scrypt(ENCRYPTION_PASSWORD, "default-salt", N=16384,
 *           r=8, p=1, 32 bytes), ciphertext and IV stored as separate lowercase hex.
 * Scheme B: AES-256-CBC, key = ENCRYPTION_KEY right-padded with '0' and cut to 32
 *           bytes, stored as "ivhex:cipherhex".
 * Keys live only in struct secrets; every temporary copy is cleansed. */
#ifndef IDX_CRYPTO_SECRETS_H
#define IDX_CRYPTO_SECRETS_H
#include <stddef.h>
#include "util/compiler.h"

struct secrets_a_job;

struct secrets {
    unsigned char key_a[32];
    unsigned char key_b[32];
    unsigned char key_fp[32];   /* HMAC key for fingerprints, derived from key_b */
    /* Scheme A's scrypt (16 MiB, ~0.1-0.3 s) runs on a thread of its own, started by
     * secrets_a_start once start-up is done (so it does not take a core from it): the
     * loop joins it when it ends (secrets_a_done_fd), or the first scheme A call before
     * that does (MLflow and Slack only; scheme B and fingerprints never wait). */
    struct secrets_a_job *a_job;
    int a_state;                /* enum secrets_a_state */
};

enum secrets_a_state {
    SECRETS_A_FAILED = -1,      /* the derivation failed: scheme A cannot be used */
    SECRETS_A_READY = 0,        /* key_a is derived (and the thread joined) */
    SECRETS_A_DERIVING = 1,     /* on its thread, not joined yet */
    SECRETS_A_PENDING = 2,      /* not started yet */
};

/* 0 when encryption_key can be scheme B's key (its first 32 bytes are ASCII), -1 when
 * not: the check secrets_init makes, without touching OpenSSL, so start-up can refuse
 * the configuration before it opens any connection. */
MUSTCHECK int secrets_key_check(const char *encryption_key);
/* Derive scheme B's key and the fingerprint key; keep the password for scheme A's
 * scrypt, which secrets_a_start (or the first secrets_a_wait) begins. password and key
 * are NUL-terminated. Returns 0, or -1 when a derivation fails, memory runs out or the
 * first 32 bytes of key are not all ASCII (Node throws "Invalid key length" for those). */
MUSTCHECK int secrets_init(struct secrets *s, const char *encryption_password, const char *encryption_key);
/* Wipe the keys (joins the scrypt thread first). */
void secrets_clear(struct secrets *s);
/* Begin scheme A's derivation on its own thread (here when no thread can be started);
 * nothing once begun. 0, or -1 when the key is already known to have failed. */
MUSTCHECK int secrets_a_start(struct secrets *s);
/* Wait for scheme A's key (deriving it here if it was never started); 0 when ready, -1
 * when its derivation failed. */
MUSTCHECK int secrets_a_wait(const struct secrets *s);
/* A descriptor that becomes readable when the derivation has ended (then secrets_a_wait
 * joins at once), or -1 when none could be made (then only secrets_a_wait knows). It
 * stays readable after the join; secrets_clear closes it, so stop watching it before. */
int secrets_a_done_fd(const struct secrets *s);
/* enum secrets_a_state. */
int secrets_a_state(const struct secrets *s);

/* Scheme A. encrypt: random IV; *hex_out is malloc'd lowercase hex of the
 * ciphertext, iv_hex gets 32 hex chars + NUL. Returns 0 or -1. */
MUSTCHECK int secrets_a_encrypt(const struct secrets *s, const char *pt, size_t len,
                      char **hex_out, char iv_hex[33]);
/* Same with a caller-chosen 16-byte IV (test vectors). */
MUSTCHECK int secrets_a_encrypt_iv(const struct secrets *s, const char *pt, size_t len,
                         const unsigned char iv[16], char **hex_out, char iv_hex[33]);
/* decrypt: *pt_out is malloc'd, NUL-terminated, length in *len_out.
 * Returns 0, or -1 for bad hex, bad IV length, bad padding or a bad key. */
MUSTCHECK int secrets_a_decrypt(const struct secrets *s, const char *hex, const char *iv_hex,
                      char **pt_out, size_t *len_out);

/* Scheme B. An empty plaintext is refused (-1), as in VerifyWise. *out is malloc'd. */
MUSTCHECK int secrets_b_encrypt(const struct secrets *s, const char *pt, size_t len, char **out);
MUSTCHECK int secrets_b_encrypt_iv(const struct secrets *s, const char *pt, size_t len,
                         const unsigned char iv[16], char **out);
/* Rejects anything that is not exactly "hex:hex" with a 16-byte IV. */
MUSTCHECK int secrets_b_decrypt(const struct secrets *s, const char *in, char **pt_out, size_t *len_out);

/* "****..." + the last 4 characters (UTF-8 code points), or "****" when the
 * secret has fewer than 4. out holds at least SECRETS_MASK_MAX bytes. */
#define SECRETS_MASK_MAX 24
void secrets_mask(const char *pt, size_t len, char out[SECRETS_MASK_MAX]);

/* HMAC-SHA256(key_fp, pt) as 64 lowercase hex chars + NUL. Returns 0 or -1. */
MUSTCHECK int secrets_fingerprint(const struct secrets *s, const char *pt, size_t len, char out[65]);

/* Free a plaintext returned by a decrypt function after wiping it. NULL is fine. */
void secrets_free_plain(char *pt, size_t len);

#endif
