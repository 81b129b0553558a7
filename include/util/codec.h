/* util/codec: byte <-> text encodings (strict base64url, standard base64, hex).
 * Pure functions, no allocation: callers size the output with the *_len helpers. */
#ifndef IDX_UTIL_CODEC_H
#define IDX_UTIL_CODEC_H
#include <stddef.h>
#include "util/compiler.h"

/* Length of the unpadded base64url text for n bytes. */
size_t b64url_encoded_len(size_t n);
/* Encode n bytes as unpadded base64url into out (b64url_encoded_len(n)+1 bytes,
 * NUL-terminated). Returns the text length. */
size_t b64url_encode(const unsigned char *in, size_t n, char *out);
/* Strict decode: alphabet A-Z a-z 0-9 - _ only, no padding, no whitespace,
 * len % 4 != 1, unused trailing bits zero. out must hold len*3/4 bytes.
 * Returns 0 and sets *outlen, or -1 on any violation. */
MUSTCHECK int b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

/* Standard base64 (A-Z a-z 0-9 + /, '=' padding). out holds 4*ceil(n/3)+1 bytes;
 * NUL-terminated. Returns the text length. */
size_t b64_encode(const unsigned char *in, size_t n, char *out);

/* Lowercase hex. out holds 2n+1 bytes, NUL-terminated. */
void hex_encode(const unsigned char *in, size_t n, char *out);
/* Decode hex (either case). len must be even; out holds len/2 bytes.
 * Returns 0 and sets *outlen, or -1 on an odd length or a non-hex character. */
MUSTCHECK int hex_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

/* Value of one hex digit (either case), or -1. */
int hex_digit(int c);

/* Percent-decode [s, s+n) into out (outlen bytes, NUL-terminated); '+' becomes a
 * space when plus_is_space. Returns the decoded length, or -1 on a bad escape, a
 * decoded NUL, or when out is too small. */
MUSTCHECK int percent_decode(const char *s, size_t n, char *out, size_t outlen, int plus_is_space);

#endif
