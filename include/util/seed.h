/* util/seed: random seeds for what must not be guessed cheaply but is no secret (hash
 * keys against collision flooding, retry jitter). Never a key or an IV: those come from
 * OpenSSL's RAND_bytes. */
#ifndef IDX_UTIL_SEED_H
#define IDX_UTIL_SEED_H
#include <stdint.h>

/* 64 bits from getrandom(2), never 0. Does not block: while the kernel's pool is not
 * yet initialised (early boot) it mixes the real time, the pid and a counter instead. */
uint64_t seed_u64(void);

#endif
