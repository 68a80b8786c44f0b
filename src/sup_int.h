/* Between the supervisor's files: sup.c (the wait and kill loop),
 * sup_exec.c (starting the program) and sup_tree.c (the process tree seen
 * through /proc). Async-signal-safe, as all of the supervisor. */
#ifndef AGENTBOX_SUP_INT_H
#define AGENTBOX_SUP_INT_H

#include <stddef.h>
#include <sys/types.h>
#include "sup.h"
#include "cgroup.h"
#include "sandbox.h"
#include "sandbox_cgroup.h"

/* sup.c, for sandbox_spare.c: a sandbox made ahead of its run, everything
 * ab_supervise does before starting the program already done (the run's
 * cgroups entered, init set up and waiting on go). ab_supervise_spare
 * runs a request in it (sp NULL: ab_supervise). */
typedef struct {
  ab_cgroup cg;
  ab_sb_shared *sh;
  ab_sbcg sbc;
  pid_t init;
  int go;        /* our end of init's socket pair */
  char *buf;     /* AB_SPAWN_MAX_MSG bytes, to send the run to init */
} ab_sb_spare;
void ab_supervise_spare(const ab_sup_args *a, ab_sup_report *r, ab_sb_spare *sp);
/* A spare not used after all: its init killed, its cgroups undone. */
void ab_spare_drop(ab_sb_spare *sp);

/* sup_exec.c */

/* Start a's program in its own session (clone(CLONE_VM|CLONE_VFORK)); its
 * pid, or -1 with errno. With a->o.landlock, *ll is what the program runs
 * under once this returns. */
pid_t ab_start_program(const ab_sup_args *a, ab_landlock_out *ll);
/* The program's side of the start: session, descriptors, rlimits,
 * credentials, [sandbox: capabilities], Landlock (into ll), seccomp,
 * execve. Its parent must be sup (1: a sandbox's init). Never returns. */
void ab_exec_program(const ab_sup_args *a, pid_t sup, ab_landlock_out *ll) __attribute__((noreturn));
/* strerror's text for the errors a start meets (async-signal-safe) */
const char *ab_errname(int e);
/* Become uid:gid with no supplementary group (raw system calls). */
int ab_become(uid_t uid, gid_t gid);
/* The same with ruid as the real and saved uid (a block server's resident). */
int ab_become_as(uid_t ruid, uid_t uid, gid_t gid);
/* Write up to three strings to fd. */
void ab_say(int fd, const char *a, const char *b, const char *c);

/* sup_tree.c: the process table read from /proc, in a mapping made once
 * per run. */
typedef struct {
  pid_t *pid, *ppid;
  unsigned char *mark;
  size_t n, cap;
} ab_ptable;

int ab_pt_init(ab_ptable *t);
void ab_pt_free(ab_ptable *t);
/* Marks every descendant of self in t (a fresh scan). */
void ab_pt_mark_tree(ab_ptable *t);
/* Also marks root and every process below it. */
void ab_pt_mark_below(ab_ptable *t, pid_t root);
/* Also marks every live process whose real or saved uid is uid. */
void ab_pt_mark_uid(ab_ptable *t, uid_t uid);
/* Send sig to every descendant of self; returns how many were signalled. */
int ab_pt_signal_tree(ab_ptable *t, int sig);
/* Kill every process of uid in this PID namespace until /proc shows none
 * alive; reaps our children meanwhile (the program's status into r when
 * it is child). Returns how many are left. */
int ab_sweep_uid(ab_ptable *t, uid_t uid, gid_t gid, pid_t child, ab_sup_report *r);

#endif
