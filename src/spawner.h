/* Host side of the spawn server: see spawner.c and spawnproto.h. */
#ifndef AGENTBOX_SPAWNER_H
#define AGENTBOX_SPAWNER_H

#include "core.h"
#include "sup.h"

/* Ask the server (started on first use from the agentbox-sup at `sup`) to
 * run a supervisor for a (its descriptors and host are the server's
 * business) with fds = {stdin, stdout, stderr, status}. cb(owner,
 * pid) runs inside a later step with the pid (or -errno). Returns -1 when
 * the server cannot take it: the caller then spawns directly. */
int ab_spawner_spawn(ab_ctx *c, const char *sup, const ab_sup_args *a, const int fds[4],
                     void *owner, void (*cb)(void *owner, pid_t pid), uint32_t *id_out);
/* cancel: the tree dies. hard: the host's deadline passed; the server
 * SIGKILLs the supervisor and kills what it leaves (and is itself sent
 * SIGCONT first, in case code stopped it). */
void ab_spawner_kill(ab_ctx *c, uint32_t id, int hard);
void ab_spawner_forget(ab_ctx *c, uint32_t id);   /* the owner is gone */

#endif
