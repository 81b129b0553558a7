/* util/seed: owns the seeds of keyed hashes and jitter (include/util/seed.h). From the
 * kernel directly, so that a seed does not build OpenSSL's DRBG (about 2,500 allocations
 * and 480 KiB) on start-up's critical path. */
#include "util/seed.h"

#include <sys/random.h>
#include <unistd.h>

#include "util/clock.h"

uint64_t seed_u64(void)
{
    static uint64_t counter;
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s || s == 0)
        s = clock_real_ms() ^ ((uint64_t)getpid() << 32) ^ (++counter * 0x9E3779B97F4A7C15ull);
    return s ? s : 1;
}
