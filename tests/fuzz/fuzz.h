/* tests/fuzz/fuzz.h: helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c).
 * Every target defines LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize for one-time
 * setup), keeps no state that grows between inputs, and frees everything it
 * allocates: libFuzzer's leak check runs on every input. A broken property aborts
 * through FUZZ_ASSERT, which libFuzzer reports as a crash with the input saved. */
#ifndef IDX_TESTS_FUZZ_H
#define IDX_TESTS_FUZZ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                                    \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* A malloc'd NUL-terminated copy of n bytes (embedded NULs kept); aborts on OOM. */
static inline char *fuzz_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* A malloc'd copy of exactly n bytes (at least 1 byte allocated), so that ASan sees any
 * read past the end. */
static inline unsigned char *fuzz_memdup(const void *p, size_t n)
{
    unsigned char *s = malloc(n ? n : 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, p, n);
    return s;
}

/* An output buffer of exactly n bytes that ends where its heap block ends, so ASan
 * catches a write past it even for n == 0 (ASan gives malloc(0) one usable byte).
 * Free with free(*block). */
static inline char *fuzz_out_buf(size_t n, void **block)
{
    char *b = malloc(n + 16);
    if (!b)
        abort();
    *block = b;
    return b + 16;
}

/* Split [data, data+size) at the first max-1 occurrences of sep: part[i] points into
 * data with len[i] bytes. Returns the number of parts (1..max). */
static inline size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **part,
                                size_t *len, size_t max)
{
    size_t n = 0;
    while (n + 1 < max) {
        const uint8_t *q = size ? memchr(data, sep, size) : NULL;
        if (!q)
            break;
        part[n] = data;
        len[n] = (size_t)(q - data);
        n++;
        size -= (size_t)(q - data) + 1;
        data = q + 1;
    }
    part[n] = data;
    len[n] = size;
    return n + 1;
}

/* err buffers must come back NUL-terminated within their size. */
static inline void fuzz_check_cstr(const char *buf, size_t cap)
{
    if (cap)
        FUZZ_ASSERT(memchr(buf, '\0', cap) != NULL);
}

#endif
