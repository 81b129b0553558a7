/* util/json_out: JSON text written straight into one growing buffer, byte for byte what
 * json_dumps(JSON_COMPACT) writes for the same values (strings escaped the same way, UTF-8
 * checked the same way), for the answers built on every request: no json_t per value. */
#ifndef IDX_UTIL_JSON_OUT_H
#define IDX_UTIL_JSON_OUT_H
#include <stdbool.h>
#include <stddef.h>
#include "util/compiler.h"

struct json_out {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory, or a string that is not valid UTF-8 (jansson refuses it) */
};

void json_out_init(struct json_out *o);
/* Text copied as it is (punctuation, member names known to need no escaping). */
void json_out_raw(struct json_out *o, const char *s, size_t n);
#define json_out_lit(o, lit) json_out_raw((o), (lit), sizeof(lit) - 1)
/* A string value: quoted and escaped. Not valid UTF-8: the output fails. */
void json_out_str(struct json_out *o, const char *s, size_t n);
/* Would json_out_str take s[0..n) (valid UTF-8, as jansson requires)? */
bool json_out_valid(const char *s, size_t n);
void json_out_int(struct json_out *o, long long v);
/* A real as json_dumps with JSON_REAL_PRECISION(precision) writes it (1-17 digits). Not
 * finite (jansson refuses it): the output fails. */
void json_out_real(struct json_out *o, double v, int precision);
/* The text (malloc'd, NUL-terminated, *len without the NUL), or NULL when anything failed;
 * either way o is emptied. */
MUSTCHECK char *json_out_finish(struct json_out *o, size_t *len);
void json_out_free(struct json_out *o);

#endif
