/* util/machine: the one shape of every job state machine in src/ (MLflow sync and
 * scheduler, Slack OAuth, token refresh, post, delivery).
 *
 *   enum x_state { X_LOAD, X_POST, ..., X_DONE };                  the states
 *   static const char *const x_state_names[] = {"load", ...};      one name each
 *   static const struct machine_def x_def = MACHINE_DEF("x", x_state_names);
 *
 *   static void set_state(struct x *j, enum x_state s)             the only writer of j->state:
 *   {   machine_trace(&x_def, j->id, j->state, s);  j->state = s; }   logs "from -> to" at debug
 *
 *   static void enter(struct x *j)       starts the one thing the current state waits for
 *   static void x_step(struct x *j, const struct machine_input *in)
 *                                        every input (a query's result, a call's answer, a
 *                                        timer, a cancel) arrives here; switch (j->state)
 *                                        with a `default: MACHINE_IMPOSSIBLE(&x_def, j->state)`.
 *
 * Callbacks do nothing but package their input into a struct machine_input and call the
 * step function. A state that waits for nothing (DONE) ignores inputs. */
#ifndef IDX_UTIL_MACHINE_H
#define IDX_UTIL_MACHINE_H

struct db_result;
struct fetch_response;

struct machine_def {
    const char *name;                /* "mlflow sync", "slack post", ... */
    const char *const *state_names;
    unsigned nstates;
};

#define MACHINE_DEF(name, names) {(name), (names), (unsigned)(sizeof(names) / sizeof((names)[0]))}

/* What arrives at a step function. Exactly one payload is set, by kind. */
enum machine_input_kind {
    MI_ENTER,   /* (re)enter the current state: start its wait */
    MI_DB,      /* db: the result of the state's statement(s) */
    MI_FETCH,   /* fetch: the answer of the state's outbound call */
    MI_TIMER,   /* the state's timer fired */
    MI_CANCEL,  /* the owner (request, shutdown) is gone */
    MI_EVENT,   /* arg: a machine-specific event */
};

struct machine_input {
    enum machine_input_kind kind;
    const struct db_result *db;
    const struct fetch_response *fetch;
    const void *arg;
};

/* Name of a state, or "?" outside the table. */
const char *machine_state_name(const struct machine_def *m, unsigned state);
/* Log "<name> <who>: <from> -> <to>" at debug level (nothing is formatted otherwise). */
void machine_trace(const struct machine_def *m, const char *who, unsigned from, unsigned to);
/* An input in a state that cannot receive it, or a state outside the enum: a bug.
 * Logs what it can and aborts (pgbouncer's fatal(), curl's DEBUGASSERT). */
_Noreturn void machine_impossible(const struct machine_def *m, unsigned state, const char *file, int line);

#define MACHINE_IMPOSSIBLE(m, state) machine_impossible((m), (unsigned)(state), __FILE__, __LINE__)

#endif
