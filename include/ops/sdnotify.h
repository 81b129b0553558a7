/* ops/sdnotify: the systemd notify protocol (sd_notify(3)) spoken directly, without
 * libsystemd: READY=1, STOPPING=1, STATUS=... and the WATCHDOG=1 keep-alive, sent as
 * datagrams to $NOTIFY_SOCKET. Without NOTIFY_SOCKET every function is a no-op.
 * Sends never block the loop; a failed send is logged once and otherwise ignored. */
#ifndef IDX_OPS_SDNOTIFY_H
#define IDX_OPS_SDNOTIFY_H
#include "util/compiler.h"

struct event_base;

/* Read NOTIFY_SOCKET (an absolute path, or '@name' for the abstract namespace) and
 * open the socket; when WATCHDOG_USEC is set (and WATCHDOG_PID is unset or this
 * process), arm a persistent timer on `base` (borrowed; it must outlive
 * sdnotify_free) that sends WATCHDOG=1 every half interval.
 * Returns 0 on success and when NOTIFY_SOCKET is unset or empty (then everything
 * is a no-op); -1 (logged) when NOTIFY_SOCKET or WATCHDOG_USEC is malformed or the
 * socket or timer cannot be created. Calling it again first releases the old state. */
MUSTCHECK int sdnotify_init(struct event_base *base);

/* READY=1 with a STATUS line: call once the listener accepts connections. */
void sdnotify_ready(void);

/* STOPPING=1 with a STATUS line: call when the drain starts. */
void sdnotify_stopping(void);

/* STATUS=<text> (shown by `systemctl status`); newlines become spaces and the
 * text is cut at 200 bytes. NULL is ignored. */
void sdnotify_status(const char *text);

/* Stop the watchdog timer and close the socket. Safe to call without init and twice. */
void sdnotify_free(void);

#endif
