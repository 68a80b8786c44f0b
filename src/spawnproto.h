/* The spawn server protocol between the host (spawner.c) and agentbox-sup
 * --server (spawnsrv.c), over a SOCK_SEQPACKET socket pair.
 * Request: ab_spawn_req, then (spawn only) NUL-terminated strings: cwd ("" =
 * none), quota_dir ("" = no quota), argv[0..argc), env[0..envc); the
 * program's stdin, stdout, stderr
 * and the status pipe travel as SCM_RIGHTS. Reply: ab_spawn_rep. */
#ifndef AGENTBOX_SPAWNPROTO_H
#define AGENTBOX_SPAWNPROTO_H

#include <stdint.h>

/* AB_KILL cancels a run (its supervisor kills the tree and reports);
 * AB_KILL_HARD is the host's deadline for a supervisor that did not report
 * in time (stopped, say): SIGKILL to the supervisor, and the server, a
 * subreaper, kills everything of the run that it then adopts. */
enum { AB_SPAWN = 1, AB_KILL = 2, AB_KILL_HARD = 3 };
enum { AB_SPAWN_SECCOMP = 1 };   /* flags: install seccomp.c's filter */
#define AB_SPAWN_MAX_MSG 65536

typedef struct {
  uint32_t type, id;
  int64_t timeout_ms, grace_ms;
  int64_t rlimit[4];
  int32_t nice, argc, envc, flags;
  int64_t quota_bytes, quota_files;   /* with quota_dir; <= 0: off */
} ab_spawn_req;

typedef struct {
  uint32_t id;
  int32_t pid;        /* > 0, or -errno */
} ab_spawn_rep;

#endif
