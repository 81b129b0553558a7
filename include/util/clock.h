/* util/clock: the process's clocks. Monotonic for every interval, deadline and rate
 * window; real time only for what is shown or stored. */
#ifndef IDX_UTIL_CLOCK_H
#define IDX_UTIL_CLOCK_H
#include <stdint.h>

/* CLOCK_MONOTONIC in microseconds / milliseconds. */
uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* CLOCK_REALTIME in milliseconds since the epoch. */
uint64_t clock_real_ms(void);

#endif
