/* The daemonless sandbox's init and the program's last steps (sandbox.h).
 * Only system calls: init is a fork-like clone of the supervisor (itself
 * forked from a possibly multithreaded host), or of the host for the probe. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/securebits.h>
#include <unistd.h>
#include "sandbox.h"
#include "seccomp.h"
#include "spawnproto.h"
#include "sup_int.h"
#include "sysutil.h"

#define NS_FLAGS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

static int write_file(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = ab_slen(s);
  ssize_t w = write(fd, s, n);
  int e = errno;
  close(fd);
  errno = e;
  return w == (ssize_t)n ? 0 : -1;
}

/* "<inside> <outside> 1\n" */
static void id_line(char *buf, size_t cap, unsigned long inside, unsigned long outside) {
  size_t at = ab_put_num(buf, 0, cap, inside);
  at = ab_put(buf, at, cap, " ");
  at = ab_put_num(buf, at, cap, outside);
  ab_put(buf, at, cap, " 1\n");
}

/* A normal user's maps, written by init itself: the one line each an
 * unprivileged process may write, its own ids. setgroups must be denied
 * first, or a gid map is refused (a process could otherwise drop a group
 * that denies it access). */
static int set_maps(uid_t uid, gid_t gid) {
  char line[64];
  id_line(line, sizeof line, uid, uid);
  if (write_file("/proc/self/uid_map", line) != 0) return -1;
  if (write_file("/proc/self/setgroups", "deny") != 0 && errno != ENOENT) return -1;
  id_line(line, sizeof line, gid, gid);
  return write_file("/proc/self/gid_map", line);
}

/* "/proc/<pid>/<name>" */
static void proc_file(char *buf, size_t cap, pid_t pid, const char *name) {
  size_t at = ab_put(buf, 0, cap, "/proc/");
  at = ab_put_num(buf, at, cap, (unsigned long)pid);
  at = ab_put(buf, at, cap, "/");
  ab_put(buf, at, cap, name);
}

/* A root caller's side, in the supervisor while init waits: 0 and 0 map to
 * AB_SANDBOX_HOST_UID (setgroups stays allowed: init drops the caller's
 * groups with it, and then has no CAP_SETGID over the host's ids to take
 * any back), then the writable paths' mounts are idmapped to init's
 * namespace (after the maps: the mount takes a copy of them). 0, or -errno
 * with sh->step. */
static int root_side(pid_t pid, ab_sb_paths *p, int recursive, ab_sb_shared *sh) {
  char path[64], line[64];
  const char *bad = "";
  id_line(line, sizeof line, 0, AB_SANDBOX_HOST_UID);
  proc_file(path, sizeof path, pid, "uid_map");
  int e = write_file(path, line) == 0 ? 0 : -errno;
  proc_file(path, sizeof path, pid, "gid_map");
  if (!e) e = write_file(path, line) == 0 ? 0 : -errno;
  if (e) {
    ab_put(sh->step, 0, sizeof sh->step, "writing the sandbox's uid/gid map (0 -> AB_SANDBOX_HOST_UID) as root");
    return e;
  }
  proc_file(path, sizeof path, pid, "ns/user");
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    ab_put(sh->step, 0, sizeof sh->step, "opening the sandbox's user namespace (/proc/<init>/ns/user)");
    return -errno;
  }
  e = ab_sb_trees_idmap(p, ns, recursive, &bad);
  close(ns);
  if (e) {
    size_t at = ab_put(sh->step, 0, sizeof sh->step, "giving ");
    at = ab_put(sh->step, at, sizeof sh->step, bad);
    ab_put(sh->step, at, sizeof sh->step, " an idmapped mount (mount_setattr MOUNT_ATTR_IDMAP): its filesystem "
           "must support idmapped mounts for a root caller (ext4, xfs, btrfs, tmpfs), or run as a normal user");
  }
  return e;
}

/* init of a root caller: waits for root_side, then drops the caller's
 * groups and becomes uid 0 of its namespace, AB_SANDBOX_HOST_UID on the
 * host (until then its uid, the host's 0, is unmapped inside). */
static int wait_go(ab_sb_shared *sh) {
  int32_t v;
  /* bounded: a supervisor killed before PR_SET_PDEATHSIG took would leave
   * init waiting forever (it writes the maps in microseconds) */
  int64_t end = ab_mono_ms() + 30000;
  while ((v = __atomic_load_n(&sh->go, __ATOMIC_ACQUIRE)) == 0) {
    if (ab_mono_ms() > end) return -ETIMEDOUT;
    struct timespec ts = {1, 0};
    syscall(SYS_futex, &sh->go, FUTEX_WAIT, 0, &ts, NULL, 0);
  }
  return v < 0 ? v : 0;
}

static void go(ab_sb_shared *sh, int v) {
  __atomic_store_n(&sh->go, v, __ATOMIC_RELEASE);
  syscall(SYS_futex, &sh->go, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* raw calls: glibc's wrappers would signal every thread it believes this
 * process has (setxid), and a raw clone's child inherits that belief */
static int become_inside_root(void) {
  if (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setresgid, 0, 0, 0) != 0 ||
      syscall(SYS_setresuid, 0, 0, 0) != 0)
    return -errno;
  return 0;
}

/* Loopback up, in the sandbox's own network namespace: code may talk to
 * itself on 127.0.0.1 (a local server in a test), and it is not the host's
 * loopback, which stays out of reach. Failing is harmless. */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    (void)ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  close(s);
}

static void fail(const ab_sup_args *a, ab_sb_shared *sh, const char *step, int e) {
  sh->fail_errno = e;
  if (step != sh->step) ab_put(sh->step, 0, sizeof sh->step, step);   /* else the supervisor's */
  if (a->fd_err >= 0) {
    ab_say(a->fd_err, "agentbox: refusing to run the program: the sandbox could not be set up (", sh->step, ": ");
    ab_say(a->fd_err, ab_errname(e), ")\n", NULL);
  }
  _exit(125);
}

/* pid 1 of the sandbox: forwards a cancel to everything, reaps orphans,
 * and exits with the program, taking the namespace's processes along. */
static void init_loop(pid_t prog, ab_sb_shared *sh) {
  sigset_t set;
  ab_wait_sigset(&set);
  /* blocked, signals from the supervisor's namespace are queued rather
   * than ignored (init ignores signals it has no handler for) */
  sigprocmask(SIG_BLOCK, &set, NULL);
  for (;;) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig == SIGCHLD) {
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
        if (w != prog) continue;
        sh->status = st;
        sh->exited = 1;
        _exit(0);
      }
    } else if (sig > 0) {
      kill(-1, SIGTERM);   /* every process of the namespace but init */
      kill(-1, SIGCONT);
    }
  }
}

/* init is a copy of the host: its argv and environment strings are the
 * host's, and /proc/1/cmdline is readable by everyone in the sandbox (a
 * key on a host's command line). Zeroed here, from the addresses that
 * /proc/self/stat gives (fields 48 to 51). */
static int points_into(char *const *v, unsigned long lo, unsigned long hi) {
  for (; v && *v; v++)
    if ((unsigned long)*v >= lo && (unsigned long)*v < hi) return 1;
  return 0;
}

static void scrub_host_strings(const ab_sup_args *a) {
  char buf[1024];
  /* not ab_proc_read(getpid()): that is 1 here, the host's /proc's init */
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  const char *p = ab_proc_stat_state(buf);   /* field 3 */
  if (!p) return;
  unsigned long v[4];
  for (int field = 3; field < 48; field++) {
    while (*p && *p != ' ') p++;
    if (*p) p++;
  }
  for (int i = 0; i < 4; i++) {
    const char *e;
    v[i] = (unsigned long)ab_parse_long(p, &e);
    if (*e != ' ' && *e != '\n' && *e) return;
    p = *e ? e + 1 : e;
  }
  /* not where the program's own argv or environment live (agentbox-sup's
   * command line passes its own) */
  for (int r = 0; r < 4; r += 2)
    if (v[r + 1] > v[r] && !points_into(a->argv, v[r], v[r + 1]) && !points_into(a->envp, v[r], v[r + 1]))
      memset((void *)v[r], 0, v[r + 1] - v[r]);
}

/* A spare's init (sandbox_spare.c): set up, it waits for the run's request
 * (the spawn message, with its descriptors) on sock. EOF: nobody will use
 * this sandbox. Single-threaded here (a spare is forked from agentbox-sup's
 * spawn server), so decoding may allocate. */
static const ab_sup_args *await_request(int sock, ab_sup_args *na) {
  char *buf = mmap(NULL, AB_SPAWN_MAX_MSG + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) _exit(125);
  ab_spawn_req rq;
  int fds[AB_SPAWN_NFDS], nfds;
  char **vec;
  ssize_t n;
  while ((n = ab_proto_recv(sock, buf, &rq, fds, &nfds)) < 0 && errno == EINTR) {}
  if (n < (ssize_t)sizeof rq || nfds != AB_SPAWN_NFDS || ab_proto_decode(buf, (size_t)n, &rq, na, &vec) != 0)
    _exit(n == 0 ? 0 : 125);
  close(sock);
  close(fds[3]);   /* the status pipe is the supervisor's */
  na->fd_in = fds[0];
  na->fd_out = fds[1];
  na->fd_err = fds[2];
  return na;
}

/* pre: an error of the supervisor's before the clone (a root caller's comes
 * through sh->go instead). req: a spare's socket pair (else NULL). */
static void init_main(const ab_sup_args *a, ab_sb_shared *sh, ab_sb_paths *p, int pre, int root, uid_t uid,
                      gid_t gid, const int req[2]) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (req) close(req[1]);   /* the supervisor's end: its death must read as EOF here */
  scrub_host_strings(a);
  int e;
  /* no map needed: the first process of a namespace holds its capabilities
   * (done here, a root caller's init is still waiting for the supervisor) */
  (void)sethostname("agentbox", 8);
  if (a->o.sandbox & AB_SB_LOOPBACK) loopback_up();
  if (!root) {
    if (pre) fail(a, sh, "opening work_dir and the read_only/read_write paths", -pre);
    /* a non-dumpable process's /proc/self files belong to the host's root,
     * which is not mapped here: the maps could not be written */
    prctl(PR_SET_DUMPABLE, 1);
    if (set_maps(uid, gid) != 0) fail(a, sh, "writing the user namespace's uid/gid map", errno);
  }
  /* a root caller's init is still the host's uid 0 here: it may open what
   * only root may reach (an interpreter under /root) */
  if ((e = ab_sb_paths_open(p)) != 0 && !root) fail(a, sh, "opening work_dir and the read_only/read_write paths", -e);
  if (root) {
    int g = wait_go(sh);
    if (g == -ETIMEDOUT) fail(a, sh, "waiting for the supervisor to write the uid/gid maps", ETIMEDOUT);
    if (g != 0) fail(a, sh, sh->step, -g);
    if (e != 0) fail(a, sh, "opening the read_only paths", -e);
    if ((e = become_inside_root()) != 0) fail(a, sh, "becoming uid 0 of the sandbox's namespace", -e);
  }
  const char *step = "";
  if ((e = ab_sandbox_fs(a, p, &step)) != 0) fail(a, sh, step, -e);
  prctl(PR_SET_DUMPABLE, 0);
  ab_sup_args na;
  if (req) a = await_request(req[0], &na);
  if (!a->argv) {   /* the probe: the program's last steps, then done */
    if ((e = ab_sandbox_drop_caps()) != 0) fail(a, sh, "dropping capabilities", -e);
    if ((e = ab_seccomp_install(AB_SECCOMP_SANDBOX, 0)) != 0) fail(a, sh, "installing the seccomp filter", -e);
    _exit(0);
  }
  pid_t prog = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (prog == 0) ab_exec_program(a, 1, &sh->ll);   /* Landlock's outcome, for the supervisor */
  if (prog < 0) fail(a, sh, "forking the program", errno);
  /* the program's pipes must close when its tree is done, not with init */
  ab_close_all_but(0, NULL, 0);
  init_loop(prog, sh);
}

pid_t ab_sandbox_start(const ab_sup_args *a, ab_sb_shared *sh) {
  return ab_sandbox_start_go(a, sh, NULL);
}

pid_t ab_sandbox_start_go(const ab_sup_args *a, ab_sb_shared *sh, const int req[2]) {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  int root = uid == 0, recursive = a->argv != NULL;   /* the probe tries a path's own mount */
  ab_sb_paths p;
  const char *bad = NULL;
  int pre = ab_sb_paths_list(a, &p);
  /* before the clone, in the host's mount namespace: init inherits them */
  if (!pre && root) pre = ab_sb_trees_clone(&p, recursive, &bad);
  if (pre && root) {
    size_t at = ab_put(sh->step, 0, sizeof sh->step, bad ? "opening a detached mount (open_tree) of "
                                                         : "listing work_dir and the read_only/read_write paths");
    ab_put(sh->step, at, sizeof sh->step, bad ? bad : "");
  }
  /* fork semantics (no CLONE_VM, no CLONE_FILES): init sets up in its own copy */
  long pid = syscall(SYS_clone, NS_FLAGS | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) init_main(a, sh, &p, pre, root, uid, gid, req);
  if (pid > 0 && root) {
    int r = pre ? pre : root_side((pid_t)pid, &p, recursive, sh);
    go(sh, r ? r : 1);
  }
  int e = errno;
  ab_sb_paths_close(&p);
  errno = e;
  return (pid_t)pid;
}

int ab_sandbox_drop_caps(void) {
  for (int c = 0; c < 64; c++)
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  /* uid 0 (a root caller's own uid) must not get capabilities back at execve */
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                       SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                       SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return -errno;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capset, &h, d) != 0) return -errno;
  if (syscall(SYS_capget, &h, d) != 0) return -errno;
  for (int i = 0; i < 2; i++)
    if (d[i].effective || d[i].permitted || d[i].inheritable) return -EPERM;
  return 0;
}

int ab_sandbox_probe(char *step, size_t cap, char *const *paths, int n) {
  ab_sb_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return -errno;
  memset(sh, 0, sizeof *sh);
  ab_sup_args a;
  memset(&a, 0, sizeof a);
  ab_run_opts_init(&a.o);
  a.o.sandbox = AB_SB_ON;
  a.o.tmp_bytes = 1 << 20;
  a.fd_in = a.fd_out = a.fd_err = -1;
  if (geteuid() == 0) {   /* only a root caller's writable paths are idmapped */
    a.sb_rw = paths;
    a.o.sb_nrw = n;
  }
  int e = 0;
  pid_t pid = ab_sandbox_start(&a, sh);
  const char *what = "creating the namespaces (clone with CLONE_NEWUSER|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS)";
  if (pid < 0) e = -errno;
  else {
    int st;
    while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR) {}
    if (sh->fail_errno) {
      e = -sh->fail_errno;
      what = sh->step;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      e = -ECHILD;
      what = "the setup child died";
    }
  }
  if (e && cap) {
    size_t n = ab_slen(what);
    if (n >= cap) n = cap - 1;
    memcpy(step, what, n);
    step[n] = 0;
  }
  munmap(sh, sizeof *sh);
  return e;
}
