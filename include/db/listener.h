/* db/listener: one dedicated, non-blocking libpq connection (outside the pipelined pool)
 * that LISTENs on one channel and hands every NOTIFY payload to a callback.
 *
 * States: DOWN -> CONNECTING -> SUBSCRIBING (LISTEN sent) -> LISTENING -> (broken) ->
 * BACKOFF (100 ms doubling to 2 s) -> CONNECTING. on_state(true) is called on entering
 * LISTENING (from then on no NOTIFY is missed), on_state(false) on leaving it: between the
 * two, changes may have been missed, so what depends on them must not be trusted.
 * Callbacks always come from the loop, never from inside listener_new/listener_free. */
#ifndef IDX_DB_LISTENER_H
#define IDX_DB_LISTENER_H
#include <stdbool.h>
#include "util/compiler.h"

struct event_base;
struct listener;

struct listener_opts {
    /* Before every attempt: the libpq keywords/values to connect with (NULL-terminated,
     * numeric addresses: libpq must not resolve on the loop); -1 to try again later. */
    int (*params)(void *arg, const char *const **keywords, const char *const **values);
    const char *channel;         /* a plain identifier */
    int connect_timeout_ms;
    void (*on_notify)(const char *payload, void *arg);
    void (*on_state)(bool listening, void *arg);
    void *arg;
};

/* Starts connecting at once. NULL when out of memory or the channel is not a plain name. */
MUSTCHECK struct listener *listener_new(struct event_base *base, const struct listener_opts *o);
void listener_free(struct listener *l);
bool listener_listening(const struct listener *l);
/* Times the connection entered LISTENING after having left it (reconnects). */
unsigned long listener_reconnects(const struct listener *l);

#endif
