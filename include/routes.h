/* routes: the route table of the service (src/routes.c), read-only. */
#ifndef IDX_ROUTES_H
#define IDX_ROUTES_H
#include <stddef.h>

#include "http/router.h"

/* The table; *n gets its length. Also used by tests and fuzzing. */
const struct route *app_routes(size_t *n);

#endif
