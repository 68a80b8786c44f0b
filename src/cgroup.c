/* Per-run CPU cgroups (see cgroup.h). nice alone does not hold: a new
 * session is a new scheduler autogroup at nice 0, and code may renice
 * itself and its autogroup (as root, to -20). A task in a non-root cpu
 * cgroup is outside autogroups, and the cgroup's weight is what competes
 * with the host, so the run's tree together weighs like one task at the
 * run's nice, whatever it does inside. The cgroups belong to the host's
 * uid: code of that uid that writes its pid into another cgroup.procs
 * leaves (root always can); code of another uid cannot.
 * Only async-signal-safe calls: this runs in a child forked from a
 * possibly multithreaded host. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "cgroup.h"
#include "sandbox_cgroup.h"
#include "sysutil.h"

/* The kernel's sched_prio_to_weight for nice 0..19 (cpu.shares units; a
 * nice-0 task weighs 1024). */
static const int NICE_WEIGHT[20] = {1024, 820, 655, 526, 423, 335, 272, 215, 172, 137,
                                    110, 87, 70, 56, 45, 36, 29, 23, 18, 15};

unsigned long ab_cg_weight(int nice, int v2) {
  if (nice < 0) nice = 0;
  if (nice > 19) nice = 19;
  int weight = NICE_WEIGHT[nice];
  /* v2 cpu.weight is 1..10000 with 100 for nice 0 */
  return (unsigned long)(v2 ? (weight * 100 / 1024 > 0 ? weight * 100 / 1024 : 1) : weight);
}

int ab_cg_write(int dir, const char *file, const char *val) {
  int fd = openat(dir, file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = strlen(val);
  ssize_t w = write(fd, val, n);
  int e = errno;
  close(fd);
  errno = e;
  return w == (ssize_t)n ? 0 : -1;
}

int ab_cg_has_word(int dir, const char *file, const char *word) {
  int fd = openat(dir, file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  size_t wl = strlen(word);
  for (char *p = buf; *p;) {
    while (*p == ' ' || *p == '\n') p++;
    char *e = p;
    while (*e && *e != ' ' && *e != '\n') e++;
    if ((size_t)(e - p) == wl && strncmp(p, word, wl) == 0) return 1;
    p = e;
  }
  return 0;
}

/* Is ctrl one of the comma-separated controllers in [s, e)? */
static int lists(const char *ctrl, const char *s, const char *e) {
  size_t cl = strlen(ctrl);
  while (s < e) {
    const char *c = s;
    while (c < e && *c != ',') c++;
    if ((size_t)(c - s) == cl && strncmp(s, ctrl, cl) == 0) return 1;
    s = c + 1;
  }
  return 0;
}

/* mount + [path, path + plen) opened as a directory (into out, when given) */
static int open_dir(const char *mount, const char *path, size_t plen, char *out, size_t cap) {
  char full[4352];
  size_t at = ab_put(full, 0, sizeof full, mount);
  if (at + plen + 1 >= sizeof full) return -1;
  memcpy(full + at, path, plen);
  at += plen;
  while (at > 1 && full[at - 1] == '/') at--;   /* "/": the hierarchy's root */
  full[at] = 0;
  int d = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0 && out) ab_put(out, 0, cap, full);
  return d;
}

int ab_cg_find(const char *ctrl, const char *has, int *v2, char *path, size_t cap) {
  static const char *const v2_mounts[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
  char buf[4096];
  int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char *v2path = NULL;
  size_t v2len = 0;
  for (char *line = buf; *line;) {
    char *end = line;
    while (*end && *end != '\n') end++;
    char *c1 = memchr(line, ':', (size_t)(end - line));
    char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
    if (c2 && c2 == c1 + 1 && c1 - line == 1 && line[0] == '0') {
      v2path = c2 + 1;
      v2len = (size_t)(end - c2 - 1);
    } else if (c2 && lists(ctrl, c1 + 1, c2)) {
      /* mounted under its list of controllers ("cpu,cpuacct"), or its name */
      char mounts[2][96];
      size_t at = ab_put(mounts[0], 0, sizeof mounts[0], "/sys/fs/cgroup/");
      size_t ll = (size_t)(c2 - c1 - 1);
      if (at + ll + 1 > sizeof mounts[0]) ll = sizeof mounts[0] - at - 1;
      memcpy(mounts[0] + at, c1 + 1, ll);
      mounts[0][at + ll] = 0;
      ab_put(mounts[1], ab_put(mounts[1], 0, sizeof mounts[1], "/sys/fs/cgroup/"), sizeof mounts[1], ctrl);
      for (int i = 0; i < 2; i++) {
        int d = open_dir(mounts[i], c2 + 1, (size_t)(end - c2 - 1), path, cap);
        if (d < 0) continue;
        if (faccessat(d, has, F_OK, 0) == 0) { *v2 = 0; return d; }
        close(d);
      }
    }
    line = *end ? end + 1 : end;
  }
  if (!v2path) return -1;
  for (int i = 0; i < 2; i++) {
    int d = open_dir(v2_mounts[i], v2path, v2len, path, cap);
    if (d < 0) continue;
    if (faccessat(d, "cgroup.controllers", F_OK, 0) == 0) { *v2 = 1; return d; }
    close(d);
  }
  return -1;
}

/* The directory of this process's cpu cgroup: the v1 hierarchy that has
 * the cpu controller, else the v2 one. -1 when there is none. */
static int find_origin(int *v2) {
  return ab_cg_find("cpu", "cpu.shares", v2, NULL, 0);
}

static void pause_ms(long ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

void ab_cg_remove(int dir, const char *name) {
  for (int i = 0; i < 20; i++) {
    if (unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno != EBUSY) return;
    pause_ms(1);
  }
}

int ab_cgroup_enter(ab_cgroup *cg, pid_t owner, int nice) {
  cg->origin = -1;
  if (nice <= 0) return 0;
  if (nice > 19) nice = 19;
  int origin = find_origin(&cg->v2);
  if (origin < 0) return 0;
  ab_put_num(cg->parent, ab_put(cg->parent, 0, sizeof cg->parent, "agentbox-"), sizeof cg->parent, (unsigned long)owner);
  ab_put_num(cg->run, ab_put(cg->run, 0, sizeof cg->run, "run-"), sizeof cg->run, (unsigned long)getpid());
  char w[24];
  ab_put_num(w, 0, sizeof w, ab_cg_weight(nice, cg->v2));
  const char *wfile = cg->v2 ? "cpu.weight" : "cpu.shares";
  int pfd = -1;
  /* another supervisor of this owner may remove the parent between our
   * mkdir and our run's mkdir: then make it again */
  for (int tries = 0; tries < 5 && pfd < 0; tries++) {
    if (mkdirat(origin, cg->parent, 0755) != 0 && errno != EEXIST) break;
    pfd = openat(origin, cg->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) continue;
    if (mkdirat(pfd, cg->run, 0755) == 0) break;
    int e = errno;
    close(pfd);
    pfd = -1;
    if (e != ENOENT) break;
  }
  if (pfd < 0) {
    close(origin);
    return 0;
  }
  /* the parent's weight is what competes with the host: all of one
   * owner's runs at once weigh like one task at this nice */
  int ok = (!cg->v2 || ab_cg_has_word(pfd, "cgroup.controllers", "cpu")) && ab_cg_write(pfd, wfile, w) == 0;
  if (ok && cg->v2) (void)ab_cg_write(pfd, "cgroup.subtree_control", "+cpu");
  int rfd = ok ? openat(pfd, cg->run, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (rfd >= 0) {
    (void)ab_cg_write(rfd, wfile, w);   /* between runs of one owner */
    ok = ab_cg_write(rfd, "cgroup.procs", "0") == 0;
    close(rfd);
  } else {
    ok = 0;
  }
  if (!ok) {
    ab_cg_remove(pfd, cg->run);
    close(pfd);
    ab_cg_remove(origin, cg->parent);
    close(origin);
    return 0;
  }
  close(pfd);
  cg->origin = origin;
  return 1;
}

void ab_cgroup_leave(ab_cgroup *cg) {
  if (cg->origin < 0) return;
  (void)ab_cg_write(cg->origin, "cgroup.procs", "0");
  int pfd = openat(cg->origin, cg->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd >= 0) {
    ab_cg_remove(pfd, cg->run);
    close(pfd);
  }
  if (unlinkat(cg->origin, cg->parent, AT_REMOVEDIR) != 0) { /* other runs still in it */ }
  close(cg->origin);
  cg->origin = -1;
}

/* SIGKILL every process in the cgroup dir/name, until it is empty (a
 * process may fork while we read), for at most a bounded number of rounds. */
void ab_cg_kill_members(int dir, const char *name) {
  char path[64];
  size_t at = ab_put(path, 0, sizeof path, name);
  ab_put(path, at, sizeof path, "/cgroup.procs");
  for (int round = 0; round < 50; round++) {
    int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    for (char *p = buf; *p;) {
      long pid = 0;
      while (*p >= '0' && *p <= '9') pid = pid * 10 + (*p++ - '0');
      if (pid > 0) kill((pid_t)pid, SIGKILL);
      while (*p && (*p < '0' || *p > '9')) p++;
    }
    pause_ms(2);
  }
}

/* Remove the run-* cgroups under origin/parent (empty ones: a run whose
 * processes still live keeps its own, unless kill is set: then they are
 * killed first), then parent once empty. */
typedef struct { int pfd, kill_runs; } run_walk;

static int cleanup_run(const ab_dirent64 *d, void *arg) {
  const run_walk *w = arg;
  if (d->d_type != DT_DIR || strncmp(d->d_name, "run-", 4) != 0) return 0;
  if (w->kill_runs) ab_cg_kill_members(w->pfd, d->d_name);
  ab_cg_remove(w->pfd, d->d_name);
  return 0;
}

static void cleanup_in(int origin, const char *parent, int kill_runs) {
  int pfd = openat(origin, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return;
  char buf[4096];
  run_walk w = {pfd, kill_runs};
  (void)ab_dir_each(pfd, buf, sizeof buf, cleanup_run, &w);
  close(pfd);
  ab_cg_remove(origin, parent);
}

void ab_cgroup_cleanup(pid_t owner) {
  int v2;
  int origin = find_origin(&v2);
  if (origin < 0) return;
  char parent[32];
  ab_put_num(parent, ab_put(parent, 0, sizeof parent, "agentbox-"), sizeof parent, (unsigned long)owner);
  cleanup_in(origin, parent, 0);
  close(origin);
}

/* Is process pid gone: no such process, or a zombie (a SIGKILLed owner
 * whose parent died too stays one until init reaps it, which takes init a
 * while)? */
int ab_cg_gone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  char buf[512];
  if (ab_proc_read(pid, "stat", buf, sizeof buf) < 0) return 1;
  const char *st = ab_proc_stat_state(buf);
  return st && (*st == 'Z' || *st == 'X');
}

static int reap_owner(const ab_dirent64 *d, void *arg) {
  int origin = *(const int *)arg;
  if (d->d_type != DT_DIR || strncmp(d->d_name, "agentbox-", 9) != 0) return 0;
  long pid = 0;
  const char *c = d->d_name + 9;
  while (*c >= '0' && *c <= '9' && pid < 0x7fffffffL / 10) pid = pid * 10 + (*c++ - '0');
  /* only an owner that is gone: a live one's empty parent may be about
   * to get its next run */
  if (*c || pid <= 0 || !ab_cg_gone((pid_t)pid)) return 0;
  /* what is still in a dead owner's runs outlived its host, its spawn
   * server and its supervisors (a whole process group killed at once):
   * nothing is left to end it but us */
  cleanup_in(origin, d->d_name, 1);
  return 0;
}

void ab_cgroup_reap(void) {
  int v2;
  int origin = find_origin(&v2);
  if (origin >= 0) {
    /* reading origin moves only its offset: openat from it is unaffected */
    char buf[4096];
    (void)ab_dir_each(origin, buf, sizeof buf, reap_owner, &origin);
    close(origin);
  }
  ab_sbcg_reap();   /* and dead supervisors' sandbox cgroups (memory, pids) */
}

void ab_autogroup_nice(pid_t pid, int nice) {
  char path[48], v[8];
  size_t at = ab_put(path, 0, sizeof path, "/proc/");
  if (pid > 0) at = ab_put_num(path, at, sizeof path, (unsigned long)pid);
  else at = ab_put(path, at, sizeof path, "self");
  ab_put(path, at, sizeof path, "/autogroup");
  ab_put(v, ab_put_num(v, 0, sizeof v, (unsigned long)nice), sizeof v, "\n");
  /* a program that has just exec'd keeps the non-dumpable flag (so a
   * root-owned /proc entry) until the kernel finishes the exec, which a
   * loaded machine may delay: retry for up to ~200 ms */
  int fd = -1;
  for (int i = 0; i < 200 && fd < 0; i++) {
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno != EACCES) return;
    if (fd < 0) pause_ms(1);
  }
  if (fd < 0) return;
  /* without CAP_SYS_ADMIN the kernel takes one autogroup nice change per
   * 100 ms system-wide and says EAGAIN to the others: wait our turn */
  for (int i = 0; i < 30; i++) {
    if (write(fd, v, strlen(v)) >= 0 || errno != EAGAIN) break;
    pause_ms(10);
  }
  close(fd);
}
