/* Spare sandboxes made ahead of their runs (sandbox_spare.c), for the
 * spawn server. */
#ifndef AGENTBOX_SANDBOX_SPARE_H
#define AGENTBOX_SANDBOX_SPARE_H

#include <stddef.h>
#include "sup.h"

/* A spare not used within this goes */
#define AB_SPARE_IDLE_MS 120000

/* What must be equal for a request to use a spare made from a: all of the
 * request but its argv. Its length in out (cap bytes), 0 when a is not a
 * sandboxed run a spare can serve, or does not fit. */
size_t ab_spare_key(const ab_sup_args *a, char *out, size_t cap);

/* The spare's process (forked by the spawn server, a its last request with
 * a->host the server): makes the sandbox, waits on sock for one request,
 * runs it and writes its report to the request's status descriptor, as a
 * supervisor does; exits 0 at EOF. Never returns. */
void ab_spare_main(const ab_sup_args *a, int sock) __attribute__((noreturn));

#endif
