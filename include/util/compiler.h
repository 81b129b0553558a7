/* util/compiler: the attributes the compiler checks for us. MUSTCHECK marks every
 * public function whose failure the caller must handle (pgbouncer's _MUSTCHECK). */
#ifndef IDX_UTIL_COMPILER_H
#define IDX_UTIL_COMPILER_H

#define MUSTCHECK __attribute__((warn_unused_result))

#endif
