/* The supervisor's view of the process tree (sup_int.h): descendants are
 * found by scanning /proc for ppid chains because
 * /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN, which many kernels
 * lack. The table lives in one mapping per run (no malloc: the supervisor
 * may be a child forked from a multithreaded host). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "sup_int.h"
#include "sysutil.h"

#define PT_CAP 65536

#define PT_BYTES (PT_CAP * (2 * sizeof(pid_t) + 1))

int ab_pt_init(ab_ptable *t) {
  void *m = mmap(NULL, PT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  t->pid = m;
  t->ppid = t->pid + PT_CAP;
  t->mark = (unsigned char *)(t->ppid + PT_CAP);
  t->cap = PT_CAP;
  t->n = 0;
  return 0;
}

void ab_pt_free(ab_ptable *t) {
  munmap(t->pid, PT_BYTES);
}

static pid_t read_ppid(pid_t pid) {
  char buf[512];
  if (ab_proc_read(pid, "stat", buf, sizeof buf) < 0) return -1;
  const char *st = ab_proc_stat_state(buf);
  if (!st || st[1] != ' ') return -1;
  return (pid_t)ab_parse_long(st + 2, NULL);
}

static int scan_one(const ab_dirent64 *d, void *arg) {
  ab_ptable *t = arg;
  const char *e;
  if (d->d_name[0] < '1' || d->d_name[0] > '9') return 0;
  pid_t pid = (pid_t)ab_parse_long(d->d_name, &e);
  if (*e || t->n >= t->cap) return 0;
  pid_t pp = read_ppid(pid);
  if (pp < 0) return 0;
  t->pid[t->n] = pid;
  t->ppid[t->n] = pp;
  t->n++;
  return 0;
}

static void pt_scan(ab_ptable *t) {
  t->n = 0;
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  (void)ab_dir_each(fd, buf, sizeof buf, scan_one, t);
  close(fd);
}

/* Mark the descendants of the processes already marked (by ppid chains). */
static void pt_mark_below(ab_ptable *t) {
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

void ab_pt_mark_tree(ab_ptable *t) {
  pid_t self = getpid();
  pt_scan(t);
  for (size_t i = 0; i < t->n; i++) t->mark[i] = t->ppid[i] == self;
  pt_mark_below(t);
}

int ab_pt_signal_tree(ab_ptable *t, int sig) {
  int count = 0;
  ab_pt_mark_tree(t);
  for (size_t i = 0; i < t->n; i++) {
    if (!t->mark[i]) continue;
    if (kill(t->pid[i], sig) == 0) count++;
    if (sig == SIGTERM) kill(t->pid[i], SIGCONT);  /* stopped ones must see TERM */
  }
  return count;
}

int ab_kill_strays(const pid_t *keep, size_t n) {
  ab_ptable t;
  if (ab_pt_init(&t) != 0) return -1;
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
  ab_pt_free(&t);
  return count;
}

/* Is pid alive (not a zombie) with uid as its real or saved uid? Those are
 * what kill(-1) as uid reaches. A process whose effective uid alone is uid
 * can only be made by a privileged one: a block server's resident (sup.h),
 * which the sweep spares. */
static int of_uid(pid_t pid, uid_t uid) {
  char buf[4096];
  if (ab_proc_read(pid, "status", buf, sizeof buf) < 0) return 0;
  int live = 1, match = 0;
  for (char *q = buf; *q;) {
    if (strncmp(q, "State:\t", 7) == 0) live = q[7] != 'Z' && q[7] != 'X';
    if (strncmp(q, "Uid:\t", 5) == 0) {
      const char *e = q + 5;
      for (int i = 0; i < 3; i++) {   /* real, effective, saved */
        while (*e == '\t' || *e == ' ') e++;
        if ((uid_t)ab_parse_long(e, &e) == uid && i != 1) match = 1;
      }
      break;
    }
    while (*q && *q != '\n') q++;
    if (*q) q++;
  }
  return live && match;
}

void ab_pt_mark_below(ab_ptable *t, pid_t root) {
  for (size_t i = 0; i < t->n; i++)
    if (t->pid[i] == root) t->mark[i] = 1;
  pt_mark_below(t);
}

void ab_pt_mark_uid(ab_ptable *t, uid_t uid) {
  for (size_t i = 0; i < t->n; i++)
    if (!t->mark[i] && of_uid(t->pid[i], uid)) t->mark[i] = 1;
}

static int count_uid(ab_ptable *t, uid_t uid) {
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
int ab_sweep_uid(ab_ptable *t, uid_t uid, gid_t gid, pid_t child, ab_sup_report *r) {
  for (int round = 0; round < 50; round++) {
    if (count_uid(t, uid) == 0) return 0;
    pid_t k = fork();
    if (k == 0) {
      if (ab_become(uid, gid) != 0) _exit(1);
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
