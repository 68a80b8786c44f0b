/* Host side of the spawn server: see spawner.c and spawnproto.h. */
#ifndef AGENTBOX_SPAWNER_H
#define AGENTBOX_SPAWNER_H

#include "core.h"
#include "sup.h"

/* Ask the server (started on first use from the agentbox-sup at `sup`) to
 * run a supervisor for a (its descriptors and host are the server's
 * business) with fds = {stdin, stdout, stderr, status}. cb(owner,
 * pid) runs inside a later step with the pid (or -errno). Returns the
 * spawner that took it (for kill and forget), NULL when the server cannot
 * take it: the caller then spawns directly. */
ab_spawner *ab_spawner_spawn(ab_ctx *c, const char *sup, const ab_sup_args *a, const int fds[4],
                             void *owner, void (*cb)(void *owner, pid_t pid), uint32_t *id_out);
/* cancel: the tree dies. hard: the host's deadline passed; the server
 * SIGKILLs the supervisor and kills what it leaves (and is itself sent
 * SIGCONT first, in case code stopped it). */
void ab_spawner_kill(ab_spawner *s, uint32_t id, int hard);
/* Retire the context's spawn server's spare sandbox, if it has a server. */
void ab_spawner_drop_spare(ab_ctx *c);
void ab_spawner_forget(ab_spawner *s, uint32_t id);   /* the owner is gone */

/* A server we did not start: the connected SOCK_SEQPACKET socket sock (the
 * in-container block server, blocksrv.c), taken over. Reference counted:
 * the caller's reference, plus one per run until forget. Nothing is ever
 * forked on the host for it: a request it cannot take fails. */
ab_spawner *ab_spawner_connect(ab_ctx *c, int sock);
int ab_spawner_spawn_on(ab_spawner *s, const ab_sup_args *a, const int fds[4], void *owner,
                        void (*cb)(void *owner, pid_t pid), uint32_t *id_out);   /* 0, or -1 errno */
int ab_spawner_alive(const ab_spawner *s);   /* its socket still open (no EOF seen) */
void ab_spawner_disconnect(ab_spawner *s);
void ab_spawner_unref(ab_spawner *s);

#endif
