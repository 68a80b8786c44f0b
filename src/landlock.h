/* Landlock for the supervised program (landlock.c): a ruleset built from
 * read-only and read-write paths, enforced on the program's process right
 * before execve, with the best ABI the kernel offers. Raw system calls only
 * (no libc wrapper exists, and the supervisor's child shares its memory):
 * async-signal-safe, so it fits the static agentbox-sup too.
 *
 * Read-only paths get read and execute; read-write paths get every right
 * but making device nodes; a path that is a file gets only the rights a
 * file can carry. Ioctls on devices (ABI 5) only where writes are allowed: a
 * terminal opened read-only still takes TIOCSTI. With ABI 6 the domain is
 * also scoped: no signal to, and no connect to an abstract unix socket of, a
 * process outside it. */
#ifndef AGENTBOX_LANDLOCK_H
#define AGENTBOX_LANDLOCK_H

#include <stdint.h>

/* paths per run, read and write together (the wire form's bound too) */
#define AB_LANDLOCK_MAX_PATHS 64
/* the newest ABI whose rights this file knows: a newer kernel gets these */
#define AB_LANDLOCK_ABI_KNOWN 7

enum { AB_LANDLOCK_OFF = 0, AB_LANDLOCK_ON = 1, AB_LANDLOCK_REQUIRED = 2 };

/* What was enforced; lives in the supervisor's report (sup.h). */
typedef struct {
  int32_t abi;                 /* the ABI applied, 0: none */
  int32_t err;                 /* with abi 0: the errno that stopped it */
  uint32_t skipped[2];         /* bit i: paths[i] left out (absent, unreadable, refused) */
} ab_landlock_out;

/* The best Landlock ABI of the running kernel (>= 1), or -errno: -ENOSYS
 * not built in, -EOPNOTSUPP built but not enabled at boot, -EPERM a
 * seccomp profile (Docker's) refuses the call. */
int ab_landlock_abi(void);

/* Enforce on the calling process: paths[0..nread) read-only, then
 * paths[nread..nread+nwrite) read-write (absolute). Sets no_new_privs
 * first, as the kernel requires. Fills out; returns 0 when a domain is in
 * force, else -errno (nothing enforced). */
int ab_landlock_apply(char *const *paths, int nread, int nwrite, ab_landlock_out *out);

/* Words for an errno of ab_landlock_abi / ab_landlock_out.err. */
const char *ab_landlock_why(int err);

#endif
