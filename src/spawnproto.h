/* The spawn server protocol between the host (spawner.c) and agentbox-sup
 * --server (spawnsrv.c), over a SOCK_SEQPACKET socket pair; both ends are
 * spawnproto.c.
 * Request: ab_spawn_req, then (spawn only) NUL-terminated strings: cwd ("" =
 * none), quota_dir ("" = no quota), argv[0..argc), env[0..envc), and with
 * o.landlock the o.landlock_nread + o.landlock_nwrite Landlock paths (at
 * most AB_LANDLOCK_MAX_PATHS; the whole message at most AB_SPAWN_MAX_MSG),
 * then with o.sandbox its read_only and read_write paths (o.sb_nro,
 * o.sb_nrw, at most AB_SANDBOX_MAX_PATHS together);
 * the program's stdin, stdout, stderr and the status pipe travel as
 * SCM_RIGHTS. Reply: ab_spawn_rep. */
#ifndef AGENTBOX_SPAWNPROTO_H
#define AGENTBOX_SPAWNPROTO_H

#include <stdint.h>
#include <sys/types.h>
#include "sup.h"

/* AB_SPARE_DROP: retire the spare sandbox (sandbox_spare.c), if any.
 * AB_KILL cancels a run (its supervisor kills the tree and reports);
 * AB_KILL_HARD is the host's deadline for a supervisor that did not report
 * in time (stopped, say): SIGKILL to the supervisor, and the server, a
 * subreaper, kills everything of the run that it then adopts. */
enum { AB_SPAWN = 1, AB_KILL = 2, AB_KILL_HARD = 3, AB_SPARE_DROP = 4 };
#define AB_SPAWN_MAX_MSG 65536
#define AB_SANDBOX_MAX_PATHS 63    /* sandbox_fs.c binds these and work_dir */
#define AB_SPAWN_NFDS 4          /* stdin, stdout, stderr, status */

typedef struct {
  uint32_t type, id;
  int32_t argc, envc;
  ab_run_opts o;               /* sup.h: the run's numbers, as they are */
} ab_spawn_req;

typedef struct {
  uint32_t id;
  int32_t pid;        /* > 0, or -errno */
} ab_spawn_rep;

/* Host side. Sends a spawn of a (its argv, envp, cwd, quota_dir and o)
 * with fds. Returns 0; -2 when nothing was sent because it does not fit in
 * one message or there is no memory (the caller runs it another way); -1
 * with errno when the send failed (EAGAIN: the socket is full). */
int ab_proto_send_spawn(int sock, uint32_t id, const ab_sup_args *a, const int fds[AB_SPAWN_NFDS]);
/* The spawn message of a (type AB_SPAWN, id) into buf (AB_SPAWN_MAX_MSG
 * bytes), its size in *len: 0, or -1 when it does not fit. */
int ab_proto_encode(char *buf, size_t *len, uint32_t id, const ab_sup_args *a);
/* One whole message with fds: 0, or -1 with errno (EAGAIN: full). */
int ab_proto_send_msg(int sock, const char *buf, size_t len, const int fds[AB_SPAWN_NFDS]);
/* AB_KILL or AB_KILL_HARD for run id; errors are ignored (the server is
 * gone or busy: the host's deadline still holds). */
void ab_proto_send_kill(int sock, uint32_t id, int hard);
/* AB_SPARE_DROP; errors are ignored (no server: no spare). */
void ab_proto_send_spare_drop(int sock);
/* One reply: its size (sizeof *rep when whole), 0 at EOF, -1 with errno. */
ssize_t ab_proto_recv_rep(int sock, ab_spawn_rep *rep);

/* Server side. One request into buf (AB_SPAWN_MAX_MSG + 1 bytes) and *rq,
 * its descriptors (close-on-exec) into fds: returns the message's size
 * (< sizeof *rq: not a request, its descriptors already closed), 0 when the
 * host is gone, -1 with errno. *nfds is how many descriptors came. */
ssize_t ab_proto_recv(int sock, char *buf, ab_spawn_req *rq, int fds[AB_SPAWN_NFDS], int *nfds);
/* The spawn request in buf[0..n) as supervisor arguments (a is filled but
 * for the descriptors and host); *vec (malloc'd, to free) holds argv and
 * envp, which point into buf. Returns 0, or -1 for a malformed request. */
int ab_proto_decode(char *buf, size_t n, const ab_spawn_req *rq, ab_sup_args *a, char ***vec);
void ab_proto_send_rep(int sock, uint32_t id, int32_t pid);

#endif
