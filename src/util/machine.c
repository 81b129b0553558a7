/* util/machine: owns the logging of state changes and the abort on an impossible
 * state, shared by every job machine (include/util/machine.h has the shape). */
#include "util/machine.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

const char *machine_state_name(const struct machine_def *m, unsigned state)
{
    return state < m->nstates ? m->state_names[state] : "?";
}

void machine_trace(const struct machine_def *m, const char *who, unsigned from, unsigned to)
{
    if (log_enabled(LOG_DEBUG))
        log_debug("%s %s: %s -> %s", m->name, who ? who : "", machine_state_name(m, from),
                  machine_state_name(m, to));
}

void machine_impossible(const struct machine_def *m, unsigned state, const char *file, int line)
{
    log_msg(LOG_ERROR, "%s: impossible input in state %s (%u) at %s:%d", m->name, machine_state_name(m, state),
            state, file, line);
    log_flush();
    fprintf(stderr, "integrationsd: %s: impossible state %u at %s:%d\n", m->name, state, file, line);
    abort();
}
