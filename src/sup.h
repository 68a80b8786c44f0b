/* The supervisor: runs one program in its own session as a child subreaper,
 * enforces a deadline and kills the whole tree. It runs in a freshly forked
 * process (LocalExecutor) or as the static in-container binary
 * (DockerExecutor), so it only uses async-signal-safe calls. */
#ifndef AGENTBOX_SUP_H
#define AGENTBOX_SUP_H

#include <stdint.h>
#include <sys/types.h>

#include "deadline.h"   /* AB_DEADLINE_MARGIN_MS and the budget built on it */
#include "landlock.h"   /* ab_landlock_out, AB_LANDLOCK_* */

enum { AB_RL_CPU, AB_RL_AS, AB_RL_FSIZE, AB_RL_NOFILE, AB_RL_NPROC, AB_RL_N };

/* sandbox.h: the daemonless sandbox's flags (0: off) */
enum { AB_SB_ON = 1, AB_SB_LOOPBACK = 2 };

/* The options of a run that are plain numbers: they travel to the spawn
 * server as they are (spawnproto.h), so this is also the wire form. */
typedef struct {
  int64_t timeout_ms;          /* <= 0: none (deadline.h derives the rest) */
  int64_t grace_ms;            /* between TERM and KILL */
  int64_t rlimit[AB_RL_N];     /* < 0: leave as is */
  int64_t quota_bytes, quota_files;   /* with quota_dir; <= 0: off */
  int32_t nice;                /* added to the program's niceness, 0 none */
  int32_t seccomp;             /* seccomp.h's AB_SECCOMP_*: the filter installed right before execve */
  int32_t landlock;            /* landlock.h's AB_LANDLOCK_*: off, on, required */
  int32_t landlock_nread;      /* ab_sup_args.landlock_paths: read-only ones first, */
  int32_t landlock_nwrite;     /* then read-write ones (<= AB_LANDLOCK_MAX_PATHS together) */
  int32_t sandbox;             /* AB_SB_* (sandbox.h): namespaces, mounts, no capability */
  int32_t sb_nro, sb_nrw;      /* how many read_only, read_write paths (they travel after env) */
  int32_t flags;               /* AB_RUN_*, below */
  int32_t quota_tree;          /* > 0: the quota's held-files check also counts the tree of this pid
                                  (LocalExecutor's preload template: the block is its fork) */
  int64_t tmp_bytes;           /* the sandbox's private /tmp size, /dev/shm links to it (after the
                                  int32s, an even number of them: no padding on the wire) */
  int64_t memory_bytes;        /* the sandbox's cgroup memory limit (sandbox_cgroup.h); <= 0: none */
} ab_run_opts;

/* ab_run_opts.flags. AB_RUN_RESIDENT: a block server's resident (the
 * preloaded Python template): only the host asks, only a block server
 * grants (spawnsrv.c). AB_RUN_NO_FALLOCATE: the quota's fallocate rule in
 * the seccomp filter although the run has no quota (the template, whose
 * forks are blocks under one). AB_RUN_CGROUP_REQUIRED: a sandboxed run
 * refuses to start without its memory and pids cgroup (sandbox.require).
 * AB_RUN_SPARE: a sandboxed run whose next one the spawn server may make
 * ahead (sandbox_spare.c; LocalExecutor's, which drops it at close). */
enum { AB_RUN_RESIDENT = 1, AB_RUN_NO_FALLOCATE = 2, AB_RUN_CGROUP_REQUIRED = 4, AB_RUN_SPARE = 8 };

/* A block server's resident runs with this real and saved uid and the
 * sandbox uid as its effective one (AB_RESIDENT_ALT when the sandbox uid is
 * this): the sandbox user's code can neither signal nor ptrace it, the
 * per-block sweep (kill(-1) as the sandbox user) does not reach it, and
 * its forks become the sandbox user with no privilege (setresuid to their
 * effective uid). */
#define AB_RESIDENT_UID 2147483646u
#define AB_RESIDENT_ALT 2147483645u

/* The host uid and gid that uid 0 and gid 0 of a root caller's daemonless
 * sandbox map to (sandbox.h): one that owns nothing, so the code reads only
 * what "others" may, and the kernel counts its processes against
 * RLIMIT_NPROC (it exempts uid 0). Below 2^31 (tools that read uids as
 * signed 32-bit numbers) and above every range handed out: distributions'
 * users (< 65536, systemd's dynamic ones 61184-65519), /etc/subuid ranges
 * (from 100000 up), systemd-nspawn's containers (up to 1879048191); next to
 * the block server's AB_RESIDENT_* ids, which live only in containers. */
#define AB_SANDBOX_HOST_UID 2147483644u

/* One spawn request, from core.spawn's table (proc.c) or agentbox-sup's
 * command line (sup_main.c) to execve: the fork path passes it as it is,
 * the spawn server gets it through spawnproto.c. */
typedef struct {
  ab_run_opts o;
  char *const *argv;
  char *const *envp;
  const char *cwd;             /* NULL: stay */
  const char *path;            /* PATH used to find argv[0] (NULL: AB_DEFAULT_PATH) */
  const char *quota_dir;       /* workspace quota (quota.c): NULL = none */
  char *const *landlock_paths; /* o.landlock_nread + o.landlock_nwrite absolute paths */
  int fd_in, fd_out, fd_err;   /* become 0, 1, 2 of the program */
  pid_t host;                  /* the process whose death cancels, 0 none */
  /* The in-container supervisor runs as root with only CAP_KILL, SETUID and
   * SETGID: the program runs as uid:gid (never 0), without supplementary
   * groups and without any capability, so it can neither signal nor ptrace
   * its supervisor. */
  int drop;                    /* 1: become uid:gid before execve */
  uid_t uid;
  uid_t ruid;                  /* with drop, != 0: real and saved uid (a resident), uid effective */
  gid_t gid;
  int sweep;                   /* kill every process of uid before and after the run: only
                                  where uid belongs to the sandbox alone (a container) */
  /* o.sandbox: absolute host paths bound at the same place inside, read
   * only or writable (o.sb_nro, o.sb_nrw of them; NULL when none) */
  char *const *sb_ro, *const *sb_rw;
} ab_sup_args;

/* Options with nothing set: no deadline, grace 500 ms, no rlimit, no quota. */
void ab_run_opts_init(ab_run_opts *o);

#define AB_SUP_MAGIC 0x61627375
typedef struct {
  int32_t magic;
  int32_t status;              /* wait status of the program, if exited */
  int32_t exited;              /* status is valid */
  int32_t timed_out;
  int32_t cancelled;
  int32_t oom;                 /* the cgroup OOM killer ran meanwhile */
  int32_t spawn_errno;         /* fork failed */
  int32_t strays;              /* sweep: processes of uid still alive at the end */
  int32_t quota;               /* the workspace quota stopped the block */
  ab_landlock_out landlock;    /* with o.landlock: what the program runs under */
} ab_sup_report;

/* Returns when the program and every descendant are gone. */
void ab_supervise(const ab_sup_args *a, ab_sup_report *r);

/* SIGKILL every descendant of the calling process that is neither one of
 * keep[0..n) nor below one; returns how many were signalled (-1: no memory).
 * For a subreaper (the spawn server) that adopts what a killed supervisor
 * left. Async-signal-safe. */
int ab_kill_strays(const pid_t *keep, size_t n);

/* Exit code that mirrors a report: the program's code, 128+signal, 124 on
 * timeout, 122 (AB_QUOTA_EXIT) when the workspace quota stopped it. */
int ab_sup_exit_code(const ab_sup_report *r);

#endif
