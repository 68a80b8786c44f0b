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
 *        A spare's init (sandbox_spare.c) is made ahead: set up, it waits
 *        for its one request before it forks the program.
 *          └─ the program: pid 2 (sup_exec.c), capabilities dropped, then
 *             Landlock (landlock.c, with o.landlock), then seccomp's
 *             AB_SECCOMP_SANDBOX profile, then execve.
 *
 * uid/gid maps. A normal user's uid and gid map to themselves (one line
 * each, all an unprivileged process may write, written by init itself):
 * files in work_dir keep their owner, and the code sees the caller's uid.
 * A root caller's do not: uid 0 of the host owns every root file, and mode
 * 0600 or 0640 means nothing to an owner (/etc/shadow, ssh host keys, a
 * root-only file under a read_only path), capabilities or not. So uid 0
 * and gid 0 inside map to AB_SANDBOX_HOST_UID (sup.h), which owns nothing
 * on the host. Only a process with CAP_SETUID over the parent namespace
 * may write such a map: the supervisor (root, host namespaces) writes it
 * while init waits (ab_sb_shared.go), and idmaps the writable paths, which
 * it cloned as detached mounts before the clone (open_tree; init inherits
 * them and moves them in): through the idmapped mount the code is their
 * owner, and what it creates there is root's on the host. init opens the
 * read-only paths while it is still the host's uid 0 (the interpreter's
 * prefix may be under /root, 0700), then drops its groups and becomes uid
 * 0 of the namespace. A filesystem that cannot be idmapped fails closed
 * (the probe tries work_dir at construction). Either way the program holds
 * no capability: an empty bounding set and SECBIT_NOROOT locked, in any
 * namespace, even across execve of a setuid file; seccomp.c refuses it the
 * setuid and setgid bits (files it leaves in work_dir are the caller's).
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
  int32_t go;                  /* a root caller's init waits (futex) until the supervisor has
                                  written its maps and idmapped its mounts: 1, or -errno with step */
  char step[512];
  ab_landlock_out ll;          /* with o.landlock: what the program runs under */
} ab_sb_shared;

/* Clone init in the new namespaces; its pid (host PID ns), or -1 with
 * errno (the namespaces could not be made: EPERM, ENOSPC, EINVAL). With
 * a->argv NULL, init only sets up, installs the seccomp filter and exits 0
 * (the probe). */
pid_t ab_sandbox_start(const ab_sup_args *a, ab_sb_shared *sh);

/* The same, for a spare (sandbox_spare.c): init sets up, then waits on
 * req[0] (a socket pair; req[1] is the supervisor's end) for the run's spawn
 * message and its descriptors, and runs that (whose mounts must be the
 * ones a's were: the spawn server checks), or exits 0 at EOF. */
pid_t ab_sandbox_start_go(const ab_sup_args *a, ab_sb_shared *sh, const int req[2]);

/* The host paths bound inside (sandbox_fs.c): the read_only and
 * read_write paths and work_dir, parents first. fd: an O_PATH of the
 * source, or with tree a detached mount of it (open_tree, a root caller's
 * writable paths), -1 until opened. */
#define AB_SB_BINDS 64         /* AB_SANDBOX_MAX_PATHS (spawnproto.h) and work_dir */
typedef struct {
  int n;
  const char *src[AB_SB_BINDS];
  int fd[AB_SB_BINDS];
  unsigned char rw[AB_SB_BINDS], tree[AB_SB_BINDS];
} ab_sb_paths;

/* The list, sorted, nothing opened: 0 or -E2BIG. */
int ab_sb_paths_list(const ab_sup_args *a, ab_sb_paths *p);
/* In the supervisor of a root caller, before the clone: each writable path
 * as a detached mount (recursive, or its own mount only: the probe). 0, or
 * -errno with the path that failed in *bad. */
int ab_sb_trees_clone(ab_sb_paths *p, int recursive, const char **bad);
/* After the maps are written: the detached mounts idmapped to userns (and
 * nosuid, nodev). 0, or -errno with *bad. */
int ab_sb_trees_idmap(ab_sb_paths *p, int userns, int recursive, const char **bad);
/* In init, before it gives up the host's uid 0: an O_PATH of each path not
 * open yet. 0 or -errno. */
int ab_sb_paths_open(ab_sb_paths *p);
void ab_sb_paths_close(ab_sb_paths *p);

/* sandbox_fs.c, in init after the uid maps and ab_sb_paths_open: the mount
 * namespace's view (pivot_root into it). 0, or -errno with *step naming
 * what failed. */
int ab_sandbox_fs(const ab_sup_args *a, ab_sb_paths *p, const char **step);

/* In the program's process, after the mounts and before seccomp: drop every
 * capability (bounding set, ambient, securebits locked). 0 or -errno. */
int ab_sandbox_drop_caps(void);

/* Run the setup in a child and report: 0, or -errno with the failing step
 * copied into step (cap bytes). For core.sandbox_probe. For a root caller,
 * the n paths (work_dir, the read_write paths) are also given an idmapped
 * mount (their own mount only), which their filesystem must support. */
int ab_sandbox_probe(char *step, size_t cap, char *const *paths, int n);

#endif
