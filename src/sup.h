/* The supervisor: runs one program in its own session as a child subreaper,
 * enforces a deadline and kills the whole tree. It runs in a freshly forked
 * process (LocalExecutor) or as the static in-container binary
 * (DockerExecutor), so it only uses async-signal-safe calls. */
#ifndef AGENTBOX_SUP_H
#define AGENTBOX_SUP_H

#include <stdint.h>
#include <sys/types.h>

/* How long past timeout + grace the host waits before it kills the
 * supervisor itself (a stopped or killed supervisor must not hang a run).
 * The supervisor gives up on unkillable processes after half of it, so a
 * working supervisor always reports first. */
#define AB_DEADLINE_MARGIN_MS 3000

enum { AB_RL_CPU, AB_RL_AS, AB_RL_FSIZE, AB_RL_NOFILE, AB_RL_N };

typedef struct {
  char *const *argv;
  char *const *envp;
  const char *cwd;             /* NULL: stay */
  const char *path;            /* PATH used to find argv[0] */
  int fd_in, fd_out, fd_err;   /* become 0, 1, 2 of the program */
  int64_t timeout_ms;          /* <= 0: none */
  int64_t grace_ms;            /* between TERM and KILL */
  int64_t rlimit[AB_RL_N];     /* < 0: leave as is */
  pid_t host;                  /* the process whose death cancels, 0 none */
  int nice;                    /* added to the program's niceness, 0 none */
  /* The in-container supervisor runs as root with only CAP_KILL, SETUID and
   * SETGID: the program runs as uid:gid (never 0), without supplementary
   * groups and without any capability, so it can neither signal nor ptrace
   * its supervisor. */
  int drop;                    /* 1: become uid:gid before execve */
  uid_t uid;
  gid_t gid;
  int sweep;                   /* kill every process of uid before and after the run: only
                                  where uid belongs to the sandbox alone (a container) */
  int seccomp;                 /* install seccomp.c's filter right before execve */
  /* workspace quota (quota.c): NULL dir = none; a limit <= 0 is off */
  const char *quota_dir;
  int64_t quota_bytes, quota_files;
} ab_sup_args;

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
} ab_sup_report;

/* Returns when the program and every descendant are gone. */
void ab_supervise(const ab_sup_args *a, ab_sup_report *r);

/* SIGKILL every descendant of the calling process that is neither one of
 * keep[0..n) nor below one; returns how many were signalled (-1: no memory).
 * For a subreaper (the spawn server) that adopts what a killed supervisor
 * left. Async-signal-safe. */
int ab_kill_strays(const pid_t *keep, size_t n);

/* Read /proc/<pid>/<file> (one read, NUL-terminated) into buf: its length,
 * or -1. Async-signal-safe. */
ssize_t ab_proc_read(pid_t pid, const char *file, char *buf, size_t size);

/* The state field of a /proc/<pid>/stat text (after the last ')', since
 * comm may hold one), or NULL. */
const char *ab_proc_stat_state(const char *stat);

/* Exit code that mirrors a report: the program's code, 128+signal, 124 on
 * timeout, 122 (AB_QUOTA_EXIT) when the workspace quota stopped it. */
int ab_sup_exit_code(const ab_sup_report *r);

#endif
