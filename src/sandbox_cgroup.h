/* One cgroup per sandboxed run (sandbox_cgroup.c), around the sandbox's
 * init and so its whole namespace: memory (sandbox.memory), pids (pids.max
 * from the nproc limit: the kernel exempts uid 0 from RLIMIT_NPROC, so for
 * a root caller only this bounds a fork bomb) and, on v2, the CPU weight
 * of the run's nice (on v1, cgroup.c's cpu cgroup gives it, as for every
 * run). Named agentbox-sb-<supervisor pid>:
 *   v1: <our memory cgroup>/agentbox-sb-<pid>, <our pids cgroup>/agentbox-sb-<pid>
 *   v2: <base>/agentbox-sb-<pid>, base = our cgroup when its
 *       subtree_control enables memory and pids (the root: the kernel's
 *       no-internal-process rule lets no other cgroup that holds processes
 *       do it), else its parent when that is a cgroup delegated to our uid
 *       (owned by it) that enables them: the host sits in a leaf of it.
 * The supervisor steps in for the clone of init only, and back. Only
 * system calls: the supervisor is forked from a multithreaded host. */
#ifndef AGENTBOX_SANDBOX_CGROUP_H
#define AGENTBOX_SANDBOX_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include "sup.h"

/* Where a run's cgroup would go, found without writing anything. */
typedef struct {
  int version;          /* 0: none (why says), 1 or 2 */
  int memory, pids;     /* 1: the controller can be used */
  int cpu;              /* v2: cpu.weight in the run's cgroup; v1: cgroup.c's cpu cgroup is writable */
  int mem_dir, pids_dir;   /* v1: our cgroup in each hierarchy; v2: mem_dir is base (-1: none) */
  int origin;           /* v2: our own cgroup, where the supervisor steps back to */
  char why[200];        /* what is missing, when memory or pids is */
} ab_sbcg_where;

/* Fill w; close its directories with ab_sbcg_where_close. */
void ab_sbcg_find(ab_sbcg_where *w);
void ab_sbcg_where_close(ab_sbcg_where *w);

/* One run's cgroup. */
typedef struct {
  ab_sbcg_where w;
  char name[32];        /* agentbox-sb-<pid> */
  int mem_made, pids_made, in;
  int64_t memory;       /* the limit in force, 0: none */
} ab_sbcg;

/* Make the run's cgroup(s) with o's limits (memory_bytes, the nproc rlimit,
 * nice) and move this process in. 1 when memory (if asked for) and pids
 * are in force, else 0 with errno (nothing is left made). */
int ab_sbcg_enter(ab_sbcg *c, const ab_run_opts *o);
/* Back to our own cgroup(s): right after the clone of init, which stays. */
void ab_sbcg_step_out(ab_sbcg *c);
/* After the run: how many processes the cgroup's OOM killer killed (0
 * none, -1 unknown). Then remove it. */
long ab_sbcg_oom_kills(const ab_sbcg *c);
void ab_sbcg_remove(ab_sbcg *c);

/* Remove the agentbox-sb-<pid> cgroups of supervisors that are gone
 * (SIGKILLed before they could), killing what is still in them. */
void ab_sbcg_reap(void);

#endif
