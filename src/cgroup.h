/* A CPU cgroup per supervised run (cgroup.c), so that a run's whole tree,
 * whatever it does with setsid() and nice, weighs against the host like one
 * task at the run's nice. Async-signal-safe: used by the supervisor. */
#ifndef AGENTBOX_CGROUP_H
#define AGENTBOX_CGROUP_H

#include <sys/types.h>

typedef struct {
  int origin;          /* the cpu cgroup directory we came from, -1: not in one */
  int v2;
  char parent[32];     /* agentbox-<owner> */
  char run[32];        /* run-<supervisor pid> */
} ab_cgroup;

/* nice > 0: create <our cpu cgroup>/agentbox-<owner>/run-<pid>, give both
 * the CPU weight of one task at `nice`, and move this process into the run
 * (the program inherits it). Returns 1 when in it, 0 when cgroups cannot be
 * used here (not writable, no cpu controller), which leaves nice alone. */
int ab_cgroup_enter(ab_cgroup *cg, pid_t owner, int nice);

/* Move back, remove the run's cgroup, and agentbox-<owner> once empty. */
void ab_cgroup_leave(ab_cgroup *cg);

/* Remove whatever is left under agentbox-<owner> (supervisors killed
 * before they could leave); the spawn server calls it when it exits. */
void ab_cgroup_cleanup(pid_t owner);

/* Remove the agentbox-<owner> cgroups of owners that are gone (a host
 * killed with SIGKILL: its supervisors were still killing their trees when
 * the spawn server's own cleanup ran), killing the processes still in them
 * first (a host killed with its whole process group takes its spawn server
 * and supervisors along, and the code's setsid'd tree would run on). The
 * spawn server calls it when it starts. */
void ab_cgroup_reap(void);

/* Set the autogroup nice of process pid (0: self); errors are ignored. */
void ab_autogroup_nice(pid_t pid, int nice);

#endif
