/* The daemonless sandbox (LocalExecutor{ sandbox = ... }): the supervisor
 * starts the program in new user, PID, mount, network, IPC and UTS
 * namespaces, in a view of only the paths the caller lists (the system
 * directories and read_only, read-only; work_dir and read_write), a
 * private /tmp, a minimal /dev and a fresh /proc, without any
 * capability, under no_new_privs and seccomp.c's filter.
 *
 *   supervisor (host PID ns)
 *     └─ init: pid 1 of the new PID ns (sandbox.c): sets the namespaces up
 *        (sandbox_fs.c), forks the program, reaps, forwards TERM; exits when
 *        the program exits, which makes the kernel kill everything left in
 *        the namespace. Killing init is killing the whole tree: nothing can
 *        leave a PID namespace, whatever it does with setsid or fork.
 *          └─ the program: pid 2 (sup_exec.c), capabilities dropped, then
 *             Landlock (landlock.c, with o.landlock), then seccomp's
 *             AB_SECCOMP_SANDBOX profile, then execve.
 *
 * uid/gid maps: the caller's uid and gid map to themselves (one line each,
 * all an unprivileged process may write): files in work_dir keep their
 * owner, and the code sees the caller's uid. As root that is uid 0 inside,
 * but with an empty bounding set and SECBIT_NOROOT locked it holds no
 * capability, in any namespace, even across execve of a setuid file.
 * Only system calls: this runs in children of a possibly multithreaded
 * host. */
#ifndef AGENTBOX_SANDBOX_H
#define AGENTBOX_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>
#include "sup.h"

/* Shared between the supervisor and init (one MAP_SHARED page): the
 * program's wait status, or the setup step that failed. */
typedef struct {
  int32_t exited;              /* status is the program's */
  int32_t status;
  int32_t fail_errno;          /* setup failed at step with this errno */
  char step[96];
  ab_landlock_out ll;          /* with o.landlock: what the program runs under */
} ab_sb_shared;

/* Clone init in the new namespaces; its pid (host PID ns), or -1 with
 * errno (the namespaces could not be made: EPERM, ENOSPC, EINVAL). With
 * a->argv NULL, init only sets up, installs the seccomp filter and exits 0
 * (the probe). */
pid_t ab_sandbox_start(const ab_sup_args *a, ab_sb_shared *sh);

/* The same, for a spare (sandbox_spare.c): init sets up, then waits on
 * go[0] (a socket pair; go[1] is the supervisor's end) for the run's spawn
 * message and its descriptors, and runs that (whose mounts must be the
 * ones a's were: the spawn server checks), or exits 0 at EOF. */
pid_t ab_sandbox_start_go(const ab_sup_args *a, ab_sb_shared *sh, const int go[2]);

/* sandbox_fs.c, in init after the uid maps: the mount namespace's view
 * (pivot_root into it). 0, or -errno with *step naming what failed. */
int ab_sandbox_fs(const ab_sup_args *a, const char **step);

/* In the program's process, after the mounts and before seccomp: drop every
 * capability (bounding set, ambient, securebits locked). 0 or -errno. */
int ab_sandbox_drop_caps(void);

/* Run the setup in a child and report: 0, or -errno with the failing step
 * copied into step (cap bytes). For core.sandbox_probe. */
int ab_sandbox_probe(char *step, size_t cap);

#endif
