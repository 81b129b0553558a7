/* events/codec: msgpack encoding of events and strict decoding of notify messages. Pure. */
#ifndef IDX_EVENTS_CODEC_H
#define IDX_EVENTS_CODEC_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "events/events.h"
#include "util/compiler.h"

#define NOTIFY_MAX_BYTES (64 * 1024)

/* Encode the event map described in events.h into a malloc'd buffer (*out, *len).
 * Returns 0 or -1 (allocation failure, or data not an object / too deep). */
MUSTCHECK int event_encode(const char *type, const char *id, int64_t time_ms, long long organization_id,
                 const char *tenant, long long actor_user_id, const json_t *data, char **out,
                 size_t *len);

/* Decoded notify message: owns copies of its strings. */
struct notify_decoded {
    struct notify_msg msg;
    char *buf;                      /* storage for the strings */
};

/* Strict decode of a notify payload: a msgpack map with str keys; required
 * organization_id (positive int), routing_type, title, message (non-empty str);
 * optional user_id (positive int or nil), idempotency_key (str <= 255 bytes or
 * nil); unknown keys ignored; duplicate keys, trailing bytes, truncation, wrong
 * types, containers claiming more elements than bytes remain, and inputs over
 * NOTIFY_MAX_BYTES are rejected. Returns 0, or -1 with a reason in err. */
MUSTCHECK int notify_decode(const char *buf, size_t len, struct notify_decoded *out, char *err, size_t errlen);
void notify_decoded_free(struct notify_decoded *d);

#endif
