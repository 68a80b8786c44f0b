/* Spare sandboxes: the next sandboxed run's namespaces and mounts made
 * ahead, while the current one runs. Making them (clone with six
 * namespaces, the mount view, the uid maps) is most of what a sandboxed
 * block costs beyond a plain one, ~1.2 ms here; a block that finds its
 * spare ready pays for handing over its request instead.
 *
 * The spawn server (spawnsrv.c) keeps one spare, made from the last
 * sandboxed request: a supervisor that has entered the run's cgroups and
 * cloned init, which has set everything up and waits for a request. A
 * request whose sandbox is the same (everything but argv: ab_spare_key)
 * goes to the spare; any other retires it. A spare serves one run: each
 * block still gets namespaces nobody used before.
 * Single-threaded (a child of agentbox-sup's spawn server), so it may
 * allocate. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sandbox_spare.h"
#include "spawnproto.h"
#include "sup_int.h"
#include "sysutil.h"

static size_t put(char *out, size_t at, size_t cap, const void *p, size_t n) {
  if (at > cap || n > cap - at) return cap + 1;
  memcpy(out + at, p, n);
  return at + n;
}

static size_t put_str(char *out, size_t at, size_t cap, const char *s) {
  return put(out, at, cap, s ? s : "", ab_slen(s ? s : "") + 1);
}

static size_t put_vec(char *out, size_t at, size_t cap, char *const *v, int n) {
  for (int i = 0; v && i < n; i++) at = put_str(out, at, cap, v[i]);
  return at;
}

size_t ab_spare_key(const ab_sup_args *a, char *out, size_t cap) {
  if (!a->o.sandbox || !(a->o.flags & AB_RUN_SPARE) || (a->o.flags & AB_RUN_RESIDENT)) return 0;
  int envc = 0;
  while (a->envp && a->envp[envc]) envc++;
  size_t at = put(out, 0, cap, &a->o, sizeof a->o);
  at = put(out, at, cap, &envc, sizeof envc);
  at = put_str(out, at, cap, a->cwd);
  at = put_str(out, at, cap, a->quota_dir);
  at = put_str(out, at, cap, a->path);
  at = put_vec(out, at, cap, a->envp, envc);
  at = put_vec(out, at, cap, a->landlock_paths, a->o.landlock_nread + a->o.landlock_nwrite);
  at = put_vec(out, at, cap, a->sb_ro, a->o.sb_nro);
  at = put_vec(out, at, cap, a->sb_rw, a->o.sb_nrw);
  return at > cap ? 0 : at;
}

/* The bound paths' identities: a path replaced since the spare bound it
 * (a work_dir removed and made again under its name) is not that mount. */
typedef struct {
  dev_t dev;
  ino_t ino;
} ident;

static int idents(const ab_sup_args *a, ident *id, int cap) {
  int n = 0;
  const char *p[AB_SANDBOX_MAX_PATHS + 1];
  if (a->cwd) p[n++] = a->cwd;
  for (int i = 0; i < a->o.sb_nro && n < AB_SANDBOX_MAX_PATHS + 1; i++) p[n++] = a->sb_ro[i];
  for (int i = 0; i < a->o.sb_nrw && n < AB_SANDBOX_MAX_PATHS + 1; i++) p[n++] = a->sb_rw[i];
  for (int i = 0; i < n && i < cap; i++) {
    struct stat st;
    if (lstat(p[i], &st) != 0) return -1;
    id[i].dev = st.st_dev;
    id[i].ino = st.st_ino;
  }
  return n;
}

static int prepare(const ab_sup_args *a, ab_sb_spare *sp) {
  memset(sp, 0, sizeof *sp);
  sp->cg.origin = -1;
  sp->buf = mmap(NULL, AB_SPAWN_MAX_MSG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  sp->sh = mmap(NULL, sizeof *sp->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int go[2];
  if (sp->buf == MAP_FAILED || sp->sh == MAP_FAILED || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, go) != 0)
    return -1;
  memset(sp->sh, 0, sizeof *sp->sh);
  /* as ab_supervise does: the sandbox's cgroup, then the cpu one */
  sp->sbc.w.mem_dir = sp->sbc.w.pids_dir = sp->sbc.w.origin = -1;
  if (!ab_sbcg_enter(&sp->sbc, &a->o) && (a->o.flags & AB_RUN_CGROUP_REQUIRED)) {
    close(go[0]);
    close(go[1]);
    return -1;   /* the run, made as usual, says why */
  }
  ab_cgroup_enter(&sp->cg, a->host, sp->sbc.in && sp->sbc.w.version == 2 && sp->sbc.w.cpu ? 0 : a->o.nice);
  sp->init = ab_sandbox_start_go(a, sp->sh, go);
  ab_sbcg_step_out(&sp->sbc);
  close(go[0]);
  sp->go = go[1];
  if (sp->init > 0) return 0;
  close(sp->go);
  ab_sbcg_remove(&sp->sbc);
  ab_cgroup_leave(&sp->cg);
  return -1;
}

void ab_spare_main(const ab_sup_args *a, int sock) {
  sigset_t set;
  ab_wait_sigset(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  prctl(PR_SET_DUMPABLE, 0);
  /* no PDEATHSIG: the server's death is EOF on sock, and the spare then
   * undoes its cgroups before it goes (init has PDEATHSIG: it follows) */
  if (getppid() != a->host) _exit(0);
  ident before[AB_SANDBOX_MAX_PATHS + 1], now[AB_SANDBOX_MAX_PATHS + 1];
  int nid = idents(a, before, AB_SANDBOX_MAX_PATHS + 1);
  ab_sb_spare sp;
  int ready = nid >= 0 && prepare(a, &sp) == 0;
  /* the request, or EOF: the server retired this spare, or is gone */
  char *buf = mmap(NULL, AB_SPAWN_MAX_MSG + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ab_spawn_req rq;
  int fds[AB_SPAWN_NFDS], nfds;
  ssize_t n = 0;
  struct pollfd pf = {sock, POLLIN, 0};
  /* idle too long: its executor is likely gone (it holds a bind of a
   * work_dir, two cgroups and two small processes) */
  if (buf != MAP_FAILED && poll(&pf, 1, AB_SPARE_IDLE_MS) == 1)
    while ((n = ab_proto_recv(sock, buf, &rq, fds, &nfds)) < 0 && errno == EINTR) {}
  ab_sup_args na;
  char **vec;
  if (n < (ssize_t)sizeof rq || nfds != AB_SPAWN_NFDS || ab_proto_decode(buf, (size_t)n, &rq, &na, &vec) != 0) {
    for (int i = 0; n > 0 && i < nfds; i++) close(fds[i]);
    if (ready) ab_spare_drop(&sp);
    _exit(0);
  }
  close(sock);
  na.fd_in = fds[0];
  na.fd_out = fds[1];
  na.fd_err = fds[2];
  na.host = a->host;
  /* init still waiting, and the same paths: else made now, as usual */
  if (ready && (waitpid(sp.init, NULL, WNOHANG | __WALL) != 0 || idents(&na, now, AB_SANDBOX_MAX_PATHS + 1) != nid ||
                memcmp(before, now, (size_t)nid * sizeof *now) != 0)) {
    ab_spare_drop(&sp);
    ready = 0;
  }
  ab_sup_report r;
  ab_supervise_spare(&na, &r, ready ? &sp : NULL);
  for (int i = 0; i < 3; i++) close(fds[i]);
  (void)!write(fds[3], &r, sizeof r);
  _exit(0);
}
