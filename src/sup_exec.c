/* Starting the supervised program (sup_int.h): its own session, its
 * nice, descriptors, rlimits, credentials, Landlock domain, seccomp filter
 * and the PATH search, all in a clone(CLONE_VM) child that only makes
 * system calls before execve. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <unistd.h>
#include "cgroup.h"
#include "sandbox.h"
#include "landlock.h"
#include "seccomp.h"
#include "sup_int.h"
#include "sysutil.h"

void ab_say(int fd, const char *a, const char *b, const char *c) {
  if (a) (void)!write(fd, a, ab_slen(a));
  if (b) (void)!write(fd, b, ab_slen(b));
  if (c) (void)!write(fd, c, ab_slen(c));
}

const char *ab_errname(int e) {
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
  case ENOSPC: return "No space left on device (a namespace count limit: user.max_user_namespaces?)";
  case EROFS: return "Read-only file system";
  case EBUSY: return "Device or resource busy";
  case ENOSYS: return "Function not implemented";
  case ENAMETOOLONG: return "File name too long";
  default: return "failed";
  }
}

/* Become uid:gid with no supplementary group. Raw system calls: libc's
 * setuid signals every thread of the process, and this child shares the
 * supervisor's memory (CLONE_VM), so libc's idea of "the process" is not
 * this one. */
int ab_become(uid_t uid, gid_t gid) {
  return ab_become_as(uid, uid, gid);
}

int ab_become_as(uid_t ruid, uid_t uid, gid_t gid) {
  if (syscall(SYS_setgroups, 0, NULL) != 0) return -1;
  if (syscall(SYS_setresgid, gid, gid, gid) != 0) return -1;
  if (syscall(SYS_setresuid, ruid, uid, ruid) != 0) return -1;
  return 0;
}

/* Fail closed: the program must not keep uid 0, gid 0 or any capability. */
static int dropped(uid_t ruid, uid_t uid, gid_t gid) {
  uid_t r, e, sv;
  gid_t gr, ge, gs;
  if (uid == 0 || gid == 0 || ruid == 0) return 0;
  if (syscall(SYS_getresuid, &r, &e, &sv) != 0 || r != ruid || e != uid || sv != ruid) return 0;
  if (syscall(SYS_getresgid, &gr, &ge, &gs) != 0 || gr != gid || ge != gid || gs != gid) return 0;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0) return 0;
  for (int i = 0; i < 2; i++)
    if (d[i].effective || d[i].permitted || d[i].inheritable) return 0;
  return 1;
}

typedef struct {
  const ab_sup_args *a;
  pid_t sup;                   /* the supervisor: the program dies with it */
  ab_landlock_out *ll;         /* the supervisor's memory (CLONE_VM): what Landlock enforced */
} start_ctx;

void ab_exec_program(const ab_sup_args *a, pid_t sup, ab_landlock_out *ll) {
  static const int rl[AB_RL_N] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC};
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();   /* its own session: no controlling terminal, its own group */
  /* model-written code must not starve the host (a game's frame loop). A
   * new session is a new scheduler autogroup at nice 0 where autogroups are
   * on, and the group's weight is what competes with the host: set both. */
  if (a->o.nice) {
    (void)!nice(a->o.nice);
    int fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      char v[4] = {(char)('0' + a->o.nice / 10), (char)('0' + a->o.nice % 10), '\n', 0};
      const char *p = a->o.nice >= 10 ? v : v + 1;
      (void)!write(fd, p, ab_slen(p));
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
    if (a->o.rlimit[i] < 0) continue;
    struct rlimit r = {(rlim_t)a->o.rlimit[i], (rlim_t)a->o.rlimit[i]};
    if (setrlimit(rl[i], &r) != 0) {
      ab_say(2, "agentbox: setrlimit failed: ", ab_errname(errno), "\n");
      _exit(127);
    }
  }
  ab_close_all_but(3, NULL, 0);
  /* a resident keeps another real and saved uid (sup.h); execve then
   * copies the effective one into the saved one, which the resident sets
   * back first thing (executor/agentbox_blockproc.py start_server) */
  uid_t ruid = a->ruid ? a->ruid : a->uid;
  if (a->drop && (ab_become_as(ruid, a->uid, a->gid) != 0 || !dropped(ruid, a->uid, a->gid))) {
    ab_say(2, "agentbox: refusing to run the program: cannot drop privileges to the sandbox user (",
           ab_errname(errno), ")\n");
    _exit(125);
  }
  /* after the credentials change, which clears it */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != sup) _exit(127);
  if (a->cwd && chdir(a->cwd) != 0) {
    ab_say(2, "agentbox: cannot enter working directory ", a->cwd, "\n");
    _exit(127);
  }
  /* the daemonless sandbox (sandbox.h): no capability left, in any
   * namespace, before Landlock and seccomp */
  if (a->o.sandbox) {
    int e = ab_sandbox_drop_caps();
    if (e != 0) {
      ab_say(2, "agentbox: refusing to run the program: cannot drop its capabilities in the sandbox (",
             ab_errname(-e), ")\n");
      _exit(125);
    }
  }
  /* after the credentials and the working directory (in the sandbox: after
   * its mounts, so the paths are the sandbox's), before the seccomp filter
   * (which leaves the Landlock calls alone); no_new_privs first */
  if (a->o.landlock) {
    int e = ab_landlock_apply(a->landlock_paths, a->o.landlock_nread, a->o.landlock_nwrite, ll);
    if (e != 0 && a->o.landlock == AB_LANDLOCK_REQUIRED) {
      ab_say(2, "agentbox: refusing to run the program: Landlock is required (landlock.required) but ",
             ab_landlock_why(-e), "\n");
      _exit(125);
    }
  }
  /* a quota needs the filter too: fallocate must not reserve past it */
  if (a->o.seccomp || a->quota_dir || a->o.sandbox) {
    int profile = a->o.sandbox ? AB_SECCOMP_SANDBOX : a->o.seccomp ? a->o.seccomp : AB_SECCOMP_DEFAULT;
    int e = ab_seccomp_install(profile, a->quota_dir != NULL || (a->o.flags & AB_RUN_NO_FALLOCATE) != 0);
    if (e != 0) {
      ab_say(2, "agentbox: refusing to run the program: cannot install the seccomp filter (",
             e == -ENOSYS ? "no filter for this architecture" : ab_errname(-e), ")\n");
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
    const char *p = a->path ? a->path : AB_DEFAULT_PATH;
    while (ab_path_next(&p, prog, full, sizeof full)) {
      execve(full, a->argv, a->envp);
      if (errno == EACCES) denied = 1;
      else if (errno != ENOENT && errno != ENOTDIR) err = errno;
    }
  }
  if (denied && err == ENOENT) err = EACCES;
  ab_say(2, "agentbox: cannot run '", prog, "': ");
  ab_say(2, ab_errname(err), "\n", NULL);
  _exit(err == ENOENT ? 127 : 126);
}

static int exec_trampoline(void *arg) {
  const start_ctx *sc = arg;
  ab_exec_program(sc->a, sc->sup, sc->ll);
}

/* The program starts with clone(CLONE_VM | CLONE_VFORK) on a stack of its
 * own, as posix_spawn does: no page tables are copied, and this process
 * waits only until the program has exec'd. The child only makes system
 * calls before execve. */
pid_t ab_start_program(const ab_sup_args *a, ab_landlock_out *ll) {
  start_ctx sc = {a, getpid(), ll};
  size_t sz = 256 * 1024;
  char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stk == MAP_FAILED) {
    /* a forked child could not tell what Landlock enforced: no run */
    if (a->o.landlock) {
      errno = ENOMEM;
      return -1;
    }
    pid_t pid = fork();
    if (pid == 0) ab_exec_program(a, sc.sup, ll);
    return pid;
  }
  pid_t pid = clone(exec_trampoline, stk + sz, CLONE_VM | CLONE_VFORK | SIGCHLD, &sc);
  munmap(stk, sz);
  /* again from here: a non-dumpable child (core.protect_host) may not
   * write its own /proc/self/autogroup as a normal user */
  if (pid > 0 && a->o.nice) ab_autogroup_nice(pid, a->o.nice);
  return pid;
}
