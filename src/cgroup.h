/* A CPU cgroup per supervised run (cgroup.c), so that a run's whole tree,
 * whatever it does with setsid() and nice, weighs against the host like one
 * task at the run's nice. Async-signal-safe: used by the supervisor. */
#ifndef AGENTBOX_CGROUP_H
#define AGENTBOX_CGROUP_H

#include <stddef.h>
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

/* The discovery and file steps shared with sandbox_cgroup.c. */

/* Our cgroup's directory for controller ctrl, opened: the v1 hierarchy
 * whose controllers include ctrl and that has the file `has` (*v2 = 0),
 * else the v2 one (*v2 = 1; whether it offers ctrl is not checked). Its
 * path into path (cap bytes) when path is not NULL. -1 when none. */
int ab_cg_find(const char *ctrl, const char *has, int *v2, char *path, size_t cap);
/* The CPU weight of one task at nice (v1 cpu.shares, or v2 cpu.weight). */
unsigned long ab_cg_weight(int nice, int v2);
/* Write val to dir/file: 0, or -1 with errno. */
int ab_cg_write(int dir, const char *file, const char *val);
/* Does the space-separated list in dir/file contain word? */
int ab_cg_has_word(int dir, const char *file, const char *word);
/* rmdir dir/name; a cgroup whose last task was just reaped can be busy
 * briefly, so EBUSY is retried for a few ms. */
void ab_cg_remove(int dir, const char *name);
/* SIGKILL every process in the cgroup dir/name until it is empty. */
void ab_cg_kill_members(int dir, const char *name);
/* Is process pid gone (no such process, or a zombie)? */
int ab_cg_gone(pid_t pid);

/* Set the autogroup nice of process pid (0: self); errors are ignored. */
void ab_autogroup_nice(pid_t pid, int nice);

#endif
