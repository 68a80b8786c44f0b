/* The supervisor (see sup.h). Only async-signal-safe calls: it may run in a
 * child forked from a multithreaded host, where malloc or stdio could
 * deadlock. Descendants are found by scanning /proc for ppid chains because
 * /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN, which many kernels
 * lack. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/capability.h>
#include <unistd.h>
#include "seccomp.h"
#include "quota.h"
#include "sup.h"
#include "cgroup.h"

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static void say(int fd, const char *a, const char *b, const char *c) {
  if (a) (void)!write(fd, a, slen(a));
  if (b) (void)!write(fd, b, slen(b));
  if (c) (void)!write(fd, c, slen(c));
}

static const char *errname(int e) {
  switch (e) {
  case ENOENT: return "No such file or directory";
  case EACCES: return "Permission denied";
  case ENOEXEC: return "Exec format error";
  case ENOTDIR: return "Not a directory";
  case ENOMEM: return "Out of memory";
  case E2BIG: return "Argument list too long";
  case ELOOP: return "Too many levels of symbolic links";
  case EPERM: return "Operation not permitted";
  case EINVAL: return "Invalid argument";
  default: return "exec failed";
  }
}

static long parse_long(const char *s, const char **end) {
  long v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  if (end) *end = s;
  return v;
}

/* The "oom_kill N" counter of our memory cgroup (v2 memory.events, or v1
 * memory.oom_control), -1 when unknown. */
static long oom_kills(void) {
  static const char *const paths[] = {"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"};
  for (int i = 0; i < 2; i++) {
    int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    for (char *p = buf; *p;) {
      if (strncmp(p, "oom_kill ", 9) == 0) return parse_long(p + 9, NULL);
      while (*p && *p != '\n') p++;
      if (*p) p++;
    }
  }
  return -1;
}

/* The process table read from /proc, in a mapping made once per run. */
typedef struct {
  pid_t *pid, *ppid;
  unsigned char *mark;
  size_t n, cap;
} ptable;

#define PT_CAP 65536

#define PT_BYTES (PT_CAP * (2 * sizeof(pid_t) + 1))

static int pt_init(ptable *t) {
  void *m = mmap(NULL, PT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  t->pid = m;
  t->ppid = t->pid + PT_CAP;
  t->mark = (unsigned char *)(t->ppid + PT_CAP);
  t->cap = PT_CAP;
  t->n = 0;
  return 0;
}

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

ssize_t ab_proc_read(pid_t pid, const char *file, char *buf, size_t size) {
  char path[48] = "/proc/";
  char num[16];
  int k = 0;
  do { num[k++] = (char)('0' + pid % 10); pid /= 10; } while (pid);
  size_t p = 6;
  while (k) path[p++] = num[--k];
  path[p++] = '/';
  for (size_t i = 0; file[i] && p + 1 < sizeof path; i++) path[p++] = file[i];
  path[p] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  return n;
}

const char *ab_proc_stat_state(const char *stat) {
  const char *rp = NULL;      /* comm may hold ')': use the last one */
  for (const char *q = stat; *q; q++) if (*q == ')') rp = q;
  return rp && rp[1] == ' ' && rp[2] ? rp + 2 : NULL;
}

static pid_t read_ppid(pid_t pid) {
  char buf[512];
  if (ab_proc_read(pid, "stat", buf, sizeof buf) < 0) return -1;
  const char *st = ab_proc_stat_state(buf);
  if (!st || st[1] != ' ') return -1;
  return (pid_t)parse_long(st + 2, NULL);
}

static void pt_scan(ptable *t) {
  t->n = 0;
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
      off += d->d_reclen;
      const char *e;
      if (d->d_name[0] < '1' || d->d_name[0] > '9') continue;
      pid_t pid = (pid_t)parse_long(d->d_name, &e);
      if (*e || t->n >= t->cap) continue;
      pid_t pp = read_ppid(pid);
      if (pp < 0) continue;
      t->pid[t->n] = pid;
      t->ppid[t->n] = pp;
      t->n++;
    }
  }
  close(fd);
}

/* Mark the descendants of the processes already marked (by ppid chains). */
static void pt_mark_below(ptable *t) {
  int changed = 1;
  while (changed) {
    changed = 0;
    for (size_t i = 0; i < t->n; i++) {
      if (t->mark[i]) continue;
      for (size_t j = 0; j < t->n; j++) {
        if (t->mark[j] == 1 && t->pid[j] == t->ppid[i]) {
          t->mark[i] = 1;
          changed = 1;
          break;
        }
      }
    }
  }
}

/* Marks every descendant of self in t (a fresh scan). */
static void mark_tree(ptable *t) {
  pid_t self = getpid();
  pt_scan(t);
  for (size_t i = 0; i < t->n; i++) t->mark[i] = t->ppid[i] == self;
  pt_mark_below(t);
}

/* Send sig to every descendant of self; returns how many were signalled. */
static int signal_tree(ptable *t, int sig) {
  int count = 0;
  mark_tree(t);
  for (size_t i = 0; i < t->n; i++) {
    if (!t->mark[i]) continue;
    if (kill(t->pid[i], sig) == 0) count++;
    if (sig == SIGTERM) kill(t->pid[i], SIGCONT);  /* stopped ones must see TERM */
  }
  return count;
}

int ab_kill_strays(const pid_t *keep, size_t n) {
  ptable t;
  if (pt_init(&t) != 0) return -1;
  pid_t self = getpid();
  pt_scan(&t);
  /* 2 = kept: a run's supervisor, whose tree is its own business */
  for (size_t i = 0; i < t.n; i++) {
    t.mark[i] = 0;
    if (t.ppid[i] != self) continue;
    t.mark[i] = 1;
    for (size_t k = 0; k < n; k++)
      if (keep[k] == t.pid[i]) t.mark[i] = 2;
  }
  pt_mark_below(&t);
  int count = 0;
  for (size_t i = 0; i < t.n; i++)
    if (t.mark[i] == 1 && kill(t.pid[i], SIGKILL) == 0) count++;
  munmap(t.pid, PT_BYTES);
  return count;
}

/* Become uid:gid with no supplementary group. Raw system calls: libc's
 * setuid signals every thread of the process, and this child shares the
 * supervisor's memory (CLONE_VM), so libc's idea of "the process" is not
 * this one. */
static int become(uid_t uid, gid_t gid) {
  if (syscall(SYS_setgroups, 0, NULL) != 0) return -1;
  if (syscall(SYS_setresgid, gid, gid, gid) != 0) return -1;
  if (syscall(SYS_setresuid, uid, uid, uid) != 0) return -1;
  return 0;
}

/* Fail closed: the program must not keep uid 0, gid 0 or any capability. */
static int dropped(uid_t uid, gid_t gid) {
  uid_t r, e, sv;
  gid_t gr, ge, gs;
  if (uid == 0 || gid == 0) return 0;
  if (syscall(SYS_getresuid, &r, &e, &sv) != 0 || r != uid || e != uid || sv != uid) return 0;
  if (syscall(SYS_getresgid, &gr, &ge, &gs) != 0 || gr != gid || ge != gid || gs != gid) return 0;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0) return 0;
  for (int i = 0; i < 2; i++)
    if (d[i].effective || d[i].permitted || d[i].inheritable) return 0;
  return 1;
}

/* Is pid alive (not a zombie) with uid as its real, effective or saved uid? */
static int of_uid(pid_t pid, uid_t uid) {
  char buf[4096];
  if (ab_proc_read(pid, "status", buf, sizeof buf) < 0) return 0;
  int live = 1, match = 0;
  for (char *q = buf; *q;) {
    if (strncmp(q, "State:\t", 7) == 0) live = q[7] != 'Z' && q[7] != 'X';
    if (strncmp(q, "Uid:\t", 5) == 0) {
      const char *e = q + 5;
      for (int i = 0; i < 3; i++) {
        while (*e == '\t' || *e == ' ') e++;
        if ((uid_t)parse_long(e, &e) == uid) match = 1;
      }
      break;
    }
    while (*q && *q != '\n') q++;
    if (*q) q++;
  }
  return live && match;
}

static int count_uid(ptable *t, uid_t uid) {
  pt_scan(t);
  int n = 0;
  for (size_t i = 0; i < t->n; i++) n += of_uid(t->pid[i], uid);
  return n;
}

/* Kill every process of uid in this PID namespace: a child that becomes uid
 * sends kill(-1, SIGKILL), which reaches exactly the processes uid may
 * signal and, being one walk of the task list, none can fork its way past.
 * Children of ours that die are reaped here (they would hold their pids);
 * repeated until /proc shows none of uid alive. Returns how many are left.
 * (fork here is safe: only agentbox-sup's single-threaded main sets sweep.) */
static int sweep_uid(ptable *t, uid_t uid, gid_t gid, pid_t child, ab_sup_report *r) {
  for (int round = 0; round < 50; round++) {
    if (count_uid(t, uid) == 0) return 0;
    pid_t k = fork();
    if (k == 0) {
      if (become(uid, gid) != 0) _exit(1);
      kill(-1, SIGKILL);
      _exit(0);
    }
    /* the killer is the sandbox user for a moment: code could stop or
     * kill it, so it gets 100 ms, then SIGKILL (we hold CAP_KILL) */
    struct timespec ms = {0, 1000000};
    for (int i = 0; k > 0; i++) {
      pid_t got = waitpid(k, NULL, WNOHANG);
      if (got == k || (got < 0 && errno != EINTR)) break;
      if (i == 100) kill(k, SIGKILL);
      nanosleep(&ms, NULL);
    }
    int st;
    pid_t w;
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);   /* SIGKILL is delivered asynchronously */
    while ((w = waitpid(-1, &st, WNOHANG)) > 0)
      if (w == child && r && !r->exited) {
        r->status = st;
        r->exited = 1;
      }
  }
  return count_uid(t, uid);
}

typedef struct {
  const ab_sup_args *a;
  pid_t sup;                   /* the supervisor: the program dies with it */
} start_ctx;

static void exec_program(const start_ctx *sc) {
  const ab_sup_args *a = sc->a;
  static const int rl[AB_RL_N] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE};
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();   /* its own session: no controlling terminal, its own group */
  /* model-written code must not starve the host (a game's frame loop). A
   * new session is a new scheduler autogroup at nice 0 where autogroups are
   * on, and the group's weight is what competes with the host: set both. */
  if (a->nice) {
    (void)!nice(a->nice);
    int fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      char v[4] = {(char)('0' + a->nice / 10), (char)('0' + a->nice % 10), '\n', 0};
      const char *p = a->nice >= 10 ? v : v + 1;
      (void)!write(fd, p, slen(p));
      close(fd);
    }
  }
  int fds[3] = {a->fd_in, a->fd_out, a->fd_err};
  for (int i = 0; i < 3; i++) {
    if (fds[i] < 0) continue;
    if (fds[i] == i) fcntl(i, F_SETFD, 0);
    else if (dup2(fds[i], i) < 0) _exit(127);
  }
  for (int i = 0; i < AB_RL_N; i++) {
    if (a->rlimit[i] < 0) continue;
    struct rlimit r = {(rlim_t)a->rlimit[i], (rlim_t)a->rlimit[i]};
    if (setrlimit(rl[i], &r) != 0) {
      say(2, "agentbox: setrlimit failed: ", errname(errno), "\n");
      _exit(127);
    }
  }
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
    for (int fd = 3; fd < 4096; fd++) close(fd);
  if (a->drop && (become(a->uid, a->gid) != 0 || !dropped(a->uid, a->gid))) {
    say(2, "agentbox: refusing to run the program: cannot drop privileges to the sandbox user (",
        errname(errno), ")\n");
    _exit(125);
  }
  /* after the credentials change, which clears it */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != sc->sup) _exit(127);
  if (a->cwd && chdir(a->cwd) != 0) {
    say(2, "agentbox: cannot enter working directory ", a->cwd, "\n");
    _exit(127);
  }
  /* a quota needs the filter too: fallocate must not reserve past it */
  if (a->seccomp || a->quota_dir) {
    int e = ab_seccomp_install(a->quota_dir != NULL);
    if (e != 0) {
      say(2, "agentbox: refusing to run the program: cannot install the seccomp filter (",
          e == -ENOSYS ? "no filter for this architecture" : errname(-e), ")\n");
      _exit(125);
    }
  }
  const char *prog = a->argv[0];
  int err = ENOENT, denied = 0;
  if (strchr(prog, '/')) {
    execve(prog, a->argv, a->envp);
    err = errno;
  } else {
    char full[4096];
    const char *p = a->path ? a->path : "/usr/local/bin:/usr/bin:/bin";
    size_t pl = slen(prog);
    for (;;) {
      const char *e = strchr(p, ':');
      size_t dl = e ? (size_t)(e - p) : slen(p);
      if (dl + pl + 2 < sizeof full) {
        size_t k = 0;
        if (dl == 0) full[k++] = '.';
        else { memcpy(full, p, dl); k = dl; }
        full[k++] = '/';
        memcpy(full + k, prog, pl + 1);
        execve(full, a->argv, a->envp);
        if (errno == EACCES) denied = 1;
        else if (errno != ENOENT && errno != ENOTDIR) err = errno;
      }
      if (!e) break;
      p = e + 1;
    }
  }
  if (denied && err == ENOENT) err = EACCES;
  say(2, "agentbox: cannot run '", prog, "': ");
  say(2, errname(err), "\n", NULL);
  _exit(err == ENOENT ? 127 : 126);
}

static int exec_trampoline(void *arg) {
  exec_program(arg);
  return 127;
}

/* The program starts with clone(CLONE_VM | CLONE_VFORK) on a stack of its
 * own, as posix_spawn does: no page tables are copied, and this process
 * waits only until the program has exec'd. The child only makes system
 * calls before execve. */
static pid_t start_program(const ab_sup_args *a) {
  start_ctx sc = {a, getpid()};
  size_t sz = 256 * 1024;
  char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stk == MAP_FAILED) {
    pid_t pid = fork();
    if (pid == 0) exec_program(&sc);
    return pid;
  }
  pid_t pid = clone(exec_trampoline, stk + sz, CLONE_VM | CLONE_VFORK | SIGCHLD, &sc);
  munmap(stk, sz);
  /* again from here: a non-dumpable child (core.protect_host) may not
   * write its own /proc/self/autogroup as a normal user */
  if (pid > 0 && a->nice) ab_autogroup_nice(pid, a->nice);
  return pid;
}

/* Wait up to ms for SIGCHLD and reap; records the program's status.
 * Returns 1 when no children remain at all. */
static int reap(const sigset_t *set, pid_t child, int64_t ms, ab_sup_report *r) {
  int64_t end = mono_ms() + ms;
  for (;;) {
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
      if (w == child && !r->exited) {
        r->status = st;
        r->exited = 1;
      }
    }
    if (w < 0 && errno == ECHILD) return 1;
    int64_t left = end - mono_ms();
    if (left <= 0) return 0;
    struct timespec ts = {left / 1000, (left % 1000) * 1000000};
    sigtimedwait(set, NULL, &ts);
  }
}

/* Wait for the program until it exits, the deadline passes, the workspace
 * quota is exceeded (polled at ab_quota_due: a second deadline) or we are
 * cancelled. */
static void wait_program(const ab_sup_args *a, const sigset_t *set, pid_t child, ab_quota *q, ptable *t,
                         int have_pt, ab_sup_report *r) {
  int64_t deadline = a->timeout_ms > 0 ? mono_ms() + a->timeout_ms : 0;
  while (!r->exited) {
    struct timespec ts, *tp = NULL;
    int64_t now = mono_ms(), wake = deadline;
    if (deadline && deadline <= now) {
      r->timed_out = 1;
      return;
    }
    if (q && ab_quota_due(q) <= now) {
      int v = ab_quota_poll(q, deadline);
      if (v > 0 && have_pt) {   /* grown unseen: files the tree holds deleted? */
        mark_tree(t);
        v = ab_quota_held(q, t->pid, t->mark, t->n);
      }
      if (v != 0) {
        r->quota = 1;
        return;
      }
      continue;
    }
    if (q && (!wake || ab_quota_due(q) < wake)) wake = ab_quota_due(q);
    if (wake) {
      int64_t left = wake - now;
      ts.tv_sec = left / 1000;
      ts.tv_nsec = (left % 1000) * 1000000;
      tp = &ts;
    }
    int sig = sigtimedwait(set, NULL, tp);
    if (sig == SIGCHLD) reap(set, child, 0, r);
    else if (sig == SIGTERM || sig == SIGHUP || sig == SIGINT) {
      r->cancelled = 1;
      return;
    }
  }
}

void ab_supervise(const ab_sup_args *a, ab_sup_report *r) {
  memset(r, 0, sizeof *r);
  r->magic = AB_SUP_MAGIC;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  signal(SIGCHLD, SIG_DFL);   /* SIG_IGN inherited from a host would drop it */
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  sigprocmask(SIG_BLOCK, &set, NULL);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /* code of the same uid (LocalExecutor) cannot ptrace a non-dumpable
   * process, nor read its memory through /proc */
  prctl(PR_SET_DUMPABLE, 0);
  if (a->host) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != a->host) r->cancelled = 1;
  }
  long oom0 = oom_kills();
  /* the workspace quota (quota.c): measured before (over it, nothing
   * runs), polled during (over it, the tree is killed), measured after */
  ab_sup_args run = *a;
  ab_quota *q = NULL;
  if (a->quota_dir && !r->cancelled && ab_quota_before(&q, &run) != 0) {
    r->quota = 1;
    return;
  }
  ptable t;
  int have_pt = pt_init(&t) == 0;
  if (a->sweep && (!have_pt || (a->drop && sweep_uid(&t, a->uid, a->gid, -1, NULL) > 0))) {
    /* what an earlier run left cannot be killed: do not run beside it */
    r->spawn_errno = EBUSY;
    r->strays = 1;
  }
  /* the run's tree weighs like one task at a->nice (cgroup.c) */
  ab_cgroup cg;
  ab_cgroup_enter(&cg, a->host ? a->host : getppid(), a->nice);
  pid_t child = r->cancelled || r->spawn_errno ? -1 : start_program(&run);
  if (child < 0) {
    if (!r->spawn_errno) r->spawn_errno = r->cancelled ? ECANCELED : errno;
    ab_cgroup_leave(&cg);
    ab_quota_free(q);
    if (have_pt) munmap(t.pid, PT_BYTES);
    return;
  }
  wait_program(a, &set, child, q, &t, have_pt, r);
  if (r->timed_out && have_pt) {
    signal_tree(&t, SIGTERM);
    reap(&set, child, a->grace_ms, r);
  }
  /* Whatever is left (background children after a normal exit, TERM-ignoring
   * ones after the grace) is killed until no child remains. A process that
   * cannot be killed (another uid) is given up on after a bounded wait, well
   * before the host's own deadline. */
  int64_t give_up = mono_ms() + AB_DEADLINE_MARGIN_MS / 2;
  while (!reap(&set, child, 0, r) && mono_ms() < give_up) {
    if (have_pt) signal_tree(&t, SIGKILL);
    else kill(-child, SIGKILL);
    reap(&set, child, 20, r);
  }
  /* and in a container, every process of the sandbox user, wherever it
   * went (nothing of this block may meet the next one) */
  if (a->sweep && a->drop && have_pt) r->strays = sweep_uid(&t, a->uid, a->gid, child, r);
  /* over the quota, the tree was killed at once (a grace would only let it
   * write more); the line comes now that it is dead */
  if (q) ab_quota_after(q, a, r);
  long oom1 = oom_kills();
  r->oom = oom0 >= 0 && oom1 > oom0;
  ab_cgroup_leave(&cg);
  if (have_pt) munmap(t.pid, PT_BYTES);
}

int ab_sup_exit_code(const ab_sup_report *r) {
  if (r->timed_out) return 124;
  if (r->quota) return AB_QUOTA_EXIT;
  if (r->spawn_errno) return 127;
  if (!r->exited) return 137;
  if (WIFEXITED(r->status)) return WEXITSTATUS(r->status);
  if (WIFSIGNALED(r->status)) return 128 + WTERMSIG(r->status);
  return 1;
}
