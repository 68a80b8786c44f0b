/* core.spawn's request (spawnreq.c): from the Lua option table to a started
 * supervisor, by the spawn server or a fork. The handle that then watches
 * the run is proc.c's. */
#ifndef AGENTBOX_SPAWNREQ_H
#define AGENTBOX_SPAWNREQ_H

#include "core.h"
#include "sup.h"

/* What one core.spawn call asks for: the supervisor's request itself, as
 * the fork path and the spawn server take it, and what only the host
 * needs. The strings stay anchored in the option table and the vectors on
 * the Lua stack. */
typedef struct {
  ab_sup_args a;
  const char *sup;             /* agentbox-sup for the spawn server, NULL: fork */
  ab_spawner *server;          /* `server`: a connected block server (spawnconn.c); never a fork */
  const char *in;              /* stdin, NULL: /dev/null */
  size_t inlen;
  double max_output;
  int stream;
  int landlock_names;          /* stack index of the Landlock paths' names (read, then write); 0 none */
} ab_spawn_call;

/* The option table at 1 into r; misuse raises. Leaves on the stack: 2 argv
 * table, 3 env strings, 4 argv vector, 5 env vector, and with landlock 6
 * its names table (r->landlock_names), 7 its vector. */
void ab_spawn_parse(lua_State *L, ab_spawn_call *r);

/* The run's descriptors: child[] = the program's stdin, stdout, stderr and
 * the status pipe's write end (what the supervisor gets), host[] = stdout,
 * stderr, status read ends and the stdin feeder (-1: none). NULL, or what
 * failed (errno set); what was made is in the arrays, for the caller to
 * close. */
const char *ab_spawn_pipes(const ab_spawn_call *r, int child[4], int host[4]);

/* Hands the run to r->server, else to the spawn server when there is one
 * (cb(owner, pid) later, *id names the run, *sp the server that took it);
 * if the spawn server cannot take it (no agentbox-sup, or a message too
 * large), the supervisor is forked here; a connected server's run is
 * never forked here. Returns the supervisor's pid, 0 when a server took
 * it, -1 with errno. */
pid_t ab_spawn_dispatch(ab_ctx *c, ab_spawn_call *r, const int child[4], void *owner,
                        void (*cb)(void *owner, pid_t pid), uint32_t *id, ab_spawner **sp);

/* spawnconn.c: the server option's handle at idx (raises when closed or
 * not one) */
ab_spawner *ab_spawnconn_check(lua_State *L, int idx);

#endif
