/* The supervisor's wait and kill loop (see sup.h): start the program
 * (sup_exec.c), wait for it, its deadline (deadline.h), its workspace quota
 * (quota.c) or a cancel, then kill its whole tree (sup_tree.c). Only
 * async-signal-safe calls: it may run in a child forked from a
 * multithreaded host, where malloc or stdio could deadlock. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cgroup.h"
#include "quota.h"
#include "sandbox.h"
#include "sandbox_cgroup.h"
#include "spawnproto.h"
#include "sup_int.h"
#include "sysutil.h"

void ab_run_opts_init(ab_run_opts *o) {
  memset(o, 0, sizeof *o);
  o->grace_ms = 500;
  for (int i = 0; i < AB_RL_N; i++) o->rlimit[i] = -1;
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
      if (strncmp(p, "oom_kill ", 9) == 0) return ab_parse_long(p + 9, NULL);
      while (*p && *p != '\n') p++;
      if (*p) p++;
    }
  }
  return -1;
}

/* Wait up to ms for SIGCHLD and reap; records the program's status.
 * Returns 1 when no children remain at all. */
static int reap(const sigset_t *set, pid_t child, int64_t ms, ab_sup_report *r) {
  int64_t end = ab_mono_ms() + ms;
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
    int64_t left = end - ab_mono_ms();
    if (left <= 0) return 0;
    struct timespec ts = {left / 1000, (left % 1000) * 1000000};
    sigtimedwait(set, NULL, &ts);
  }
}

/* Wait for the program until it exits, the budget's TERM time passes, the
 * workspace quota is exceeded (polled at ab_quota_due: a second deadline)
 * or we are cancelled. */
static void wait_program(const ab_deadline *b, const sigset_t *set, pid_t child, ab_quota *q, ab_ptable *t,
                         int have_pt, uid_t sweep_uid, pid_t tree, ab_sup_report *r) {
  int64_t deadline = b->term_ms ? ab_mono_ms() + b->term_ms : 0;
  while (!r->exited) {
    struct timespec ts, *tp = NULL;
    int64_t now = ab_mono_ms(), wake = deadline;
    if (deadline && deadline <= now) {
      r->timed_out = 1;
      return;
    }
    if (q && ab_quota_due(q) <= now) {
      int v = ab_quota_poll(q, deadline);
      if (v > 0 && have_pt) {   /* grown unseen: files the tree holds deleted? */
        ab_pt_mark_tree(t);
        /* in a container every process of the sandbox user is this block's
         * (the sweep): a preloaded block is the template's fork, not ours */
        if (sweep_uid) ab_pt_mark_uid(t, sweep_uid);
        if (tree > 0) ab_pt_mark_below(t, tree);
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

/* A spare not used after all: its init killed, what it made undone. */
void ab_spare_drop(ab_sb_spare *sp) {
  kill(sp->init, SIGKILL);
  while (waitpid(sp->init, NULL, __WALL) < 0 && errno == EINTR) {}
  close(sp->go);
  ab_sbcg_remove(&sp->sbc);
  munmap(sp->sh, sizeof *sp->sh);
  ab_cgroup_leave(&sp->cg);
}

/* The spare's init gets the run as it will be (the quota lowers
 * RLIMIT_FSIZE to what is left): encoded again, with its descriptors. */
static pid_t spare_go(ab_sb_spare *sp, const ab_sup_args *run) {
  size_t len;
  int fds[AB_SPAWN_NFDS] = {run->fd_in, run->fd_out, run->fd_err, run->fd_err};
  if (ab_proto_encode(sp->buf, &len, 0, run) != 0 || ab_proto_send_msg(sp->go, sp->buf, len, fds) != 0) {
    errno = E2BIG;
    return -1;
  }
  close(sp->go);
  return sp->init;
}

void ab_supervise(const ab_sup_args *a, ab_sup_report *r) {
  ab_supervise_spare(a, r, NULL);
}

void ab_supervise_spare(const ab_sup_args *a, ab_sup_report *r, ab_sb_spare *sp) {
  memset(r, 0, sizeof *r);
  r->magic = AB_SUP_MAGIC;
  sigset_t set;
  ab_wait_sigset(&set);
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
    if (sp) ab_spare_drop(sp);
    return;
  }
  ab_ptable t;
  int have_pt = ab_pt_init(&t) == 0;
  if (a->sweep && (!have_pt || (a->drop && ab_sweep_uid(&t, a->uid, a->gid, -1, NULL) > 0))) {
    /* what an earlier run left cannot be killed: do not run beside it */
    r->spawn_errno = EBUSY;
    r->strays = 1;
  }
  /* the sandbox: child is its init (sandbox.h), which reports the
   * program's status in sh; killing it kills the whole namespace */
  ab_sb_shared *sh = NULL;
  ab_sbcg sbc;
  memset(&sbc, 0, sizeof sbc);
  sbc.w.mem_dir = sbc.w.pids_dir = sbc.w.origin = -1;
  ab_cgroup cg;
  if (sp) {   /* all made already (sandbox_spare.c) */
    cg = sp->cg;
    sh = sp->sh;
    sbc = sp->sbc;
  }
  if (a->o.sandbox && !sp) {
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
      sh = NULL;
      r->spawn_errno = ENOMEM;
    } else memset(sh, 0, sizeof *sh);
  }
  /* the sandbox's cgroup around init (sandbox_cgroup.h): memory, pids
   * and, on v2, the CPU weight; refused when required and not in force */
  int cg_refused = sh && !sp && !r->cancelled && !r->spawn_errno && !ab_sbcg_enter(&sbc, &a->o) &&
                   (a->o.flags & AB_RUN_CGROUP_REQUIRED);
  if (cg_refused) r->spawn_errno = errno ? errno : EACCES;
  /* the run's tree weighs like one task at a->o.nice (cgroup.c) */
  if (!sp) ab_cgroup_enter(&cg, a->host ? a->host : getppid(), sbc.in && sbc.w.version == 2 && sbc.w.cpu ? 0 : a->o.nice);
  pid_t child = r->cancelled || r->spawn_errno ? -1
                : sp ? spare_go(sp, &run)
                : sh ? ab_sandbox_start(&run, sh) : ab_start_program(&run, &r->landlock);
  if (!sp) ab_sbcg_step_out(&sbc);
  if (child < 0) {
    if (!r->spawn_errno) r->spawn_errno = r->cancelled ? ECANCELED : errno;
    if (sp) {   /* ab_spare_drop undid its cgroups */
      ab_spare_drop(sp);
      sh = NULL;
      memset(&sbc, 0, sizeof sbc);
      sbc.w.mem_dir = sbc.w.pids_dir = sbc.w.origin = -1;
      memset(&cg, 0, sizeof cg);
      cg.origin = -1;
    }
    ab_sbcg_remove(&sbc);
    if (sh) {
      ab_say(a->fd_err, cg_refused ? "agentbox: refusing to run the program: the sandbox's cgroup is required "
             "(sandbox.require) but could not be made (" : "agentbox: refusing to run the program: cannot "
             "create the sandbox's namespaces (", ab_errname(r->spawn_errno), ")\n");
      munmap(sh, sizeof *sh);
    }
    ab_cgroup_leave(&cg);
    ab_quota_free(q);
    if (have_pt) ab_pt_free(&t);
    return;
  }
  ab_deadline b = ab_deadline_budget(a->o.timeout_ms, a->o.grace_ms);
  wait_program(&b, &set, child, q, &t, have_pt, a->sweep && a->drop ? a->uid : 0, a->o.quota_tree, r);
  if (r->timed_out && sh) {
    kill(child, SIGTERM);   /* init forwards it to the namespace */
    reap(&set, child, b.kill_ms - b.term_ms, r);
  } else if (r->timed_out && have_pt) {
    ab_pt_signal_tree(&t, SIGTERM);
    reap(&set, child, b.kill_ms - b.term_ms, r);
  }
  /* Whatever is left (background children after a normal exit, TERM-ignoring
   * ones after the grace) is killed until no child remains. A process that
   * cannot be killed (another uid) is given up on after the budget's
   * giveup_ms, well before the host's own deadline. */
  int64_t give_up = ab_mono_ms() + b.giveup_ms;
  while (!reap(&set, child, 0, r) && ab_mono_ms() < give_up) {
    if (sh) kill(child, SIGKILL);   /* init's death takes the namespace along */
    else if (have_pt) ab_pt_signal_tree(&t, SIGKILL);
    else kill(-child, SIGKILL);
    reap(&set, child, 20, r);
  }
  /* and in a container, every process of the sandbox user, wherever it
   * went (nothing of this block may meet the next one) */
  if (a->sweep && a->drop && have_pt) r->strays = ab_sweep_uid(&t, a->uid, a->gid, child, r);
  /* over the quota, the tree was killed at once (a grace would only let it
   * write more); the line comes now that it is dead */
  if (q) ab_quota_after(q, a, r);
  if (sh) {
    if (sh->exited) r->status = sh->status;   /* else init's: 125 = setup failed, or killed */
    r->landlock = sh->ll;
    munmap(sh, sizeof *sh);
  }
  long oom1 = oom_kills();
  r->oom = oom0 >= 0 && oom1 > oom0;
  if (ab_sbcg_oom_kills(&sbc) > 0) {
    r->oom = 1;
    char lim[24];
    ab_put_num(lim, 0, sizeof lim, (unsigned long)sbc.memory);
    ab_say(a->fd_err, "\nagentbox: out of memory: the kernel killed a process of this block at the sandbox's memory "
           "limit (sandbox.memory = ", lim, " bytes)\n");
  }
  ab_sbcg_remove(&sbc);
  ab_cgroup_leave(&cg);
  if (have_pt) ab_pt_free(&t);
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
