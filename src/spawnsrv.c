/* agentbox-sup --server FD: a small process that forks supervisors for its
 * host. Forking here costs the host nothing: posix_spawn from a host waits
 * (vfork) until the child has exec'd, which under load is milliseconds of a
 * frame. The host's end of the socket closing (the host exited or closed its
 * lua_State) cancels every run.
 * It is a child subreaper: whatever a supervisor leaves when it dies without
 * finishing its work (code of the same uid killed it) is adopted here and
 * killed at once. It is not dumpable, so code of the same uid cannot ptrace
 * it; code can still kill it (see README, LocalExecutor). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "seccomp.h"
#include "spawnproto.h"
#include "sup.h"
#include "cgroup.h"
#include "sandbox_spare.h"

typedef struct { uint32_t id; pid_t pid; } run;

/* The spare sandbox (sandbox_spare.c) for the next sandboxed request:
 * its process, our end of its socket, and the key of the request it was
 * made from. retired: spares told to go (their exit is no suspect's). */
typedef struct {
  pid_t pid;
  int sock;
  size_t klen;
  char *key, *cand;
  pid_t retired[8];
} spare;

static void spare_retire(spare *sp) {
  if (sp->pid <= 0) return;
  close(sp->sock);   /* EOF: it undoes what it made and exits */
  for (size_t i = 0; i < sizeof sp->retired / sizeof sp->retired[0]; i++)
    if (sp->retired[i] <= 0) { sp->retired[i] = sp->pid; break; }
  sp->pid = 0;
}

static int spare_was(spare *sp, pid_t w) {
  for (size_t i = 0; i < sizeof sp->retired / sizeof sp->retired[0]; i++)
    if (sp->retired[i] == w) { sp->retired[i] = 0; return 1; }
  return 0;
}

/* Hand request buf[0..n) with its descriptors to the spare when it was
 * made for the same sandbox (klen bytes of sp->cand): the spare's pid, or
 * 0 (no spare, another sandbox, or it is gone: the caller forks as usual). */
static pid_t spare_take(spare *sp, size_t klen, const char *buf, size_t n, const int fds[AB_SPAWN_NFDS]) {
  if (sp->pid <= 0) return 0;
  if (klen == 0 || klen != sp->klen || memcmp(sp->key, sp->cand, klen) != 0 ||
      ab_proto_send_msg(sp->sock, buf, n, fds) != 0) {
    spare_retire(sp);
    return 0;
  }
  pid_t pid = sp->pid;
  close(sp->sock);
  sp->pid = 0;
  return pid;
}

/* A spare made from a (key: sp->cand, klen bytes), for the next request. */
static void spare_make(spare *sp, size_t klen, int sock, int sfd, const ab_sup_args *a, const int fds[AB_SPAWN_NFDS]) {
  int pair[2];
  if (klen == 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    close(sock);
    close(sfd);
    close(pair[0]);
    for (int i = 0; i < AB_SPAWN_NFDS; i++) close(fds[i]);   /* the run's, not the spare's */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    ab_sup_args sa = *a;
    sa.fd_in = sa.fd_out = sa.fd_err = -1;
    sa.host = getppid();
    ab_spare_main(&sa, pair[1]);
  }
  close(pair[1]);
  if (pid < 0) {
    close(pair[0]);
    return;
  }
  sp->pid = pid;
  sp->sock = pair[0];
  char *t = sp->key;   /* the candidate's key becomes the spare's */
  sp->key = sp->cand;
  sp->cand = t;
  sp->klen = klen;
}

/* The supervisor of one run, in a child of the server: a is the decoded
 * request, fds its descriptors. */
static void child(int sock, int sfd, ab_sup_args *a, const int fds[AB_SPAWN_NFDS]) {
  close(sock);
  close(sfd);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  a->fd_in = fds[0];
  a->fd_out = fds[1];
  a->fd_err = fds[2];
  a->host = getppid();
  ab_sup_report r;
  ab_supervise(a, &r);
  close(fds[0]);
  close(fds[1]);
  close(fds[2]);
  (void)!write(fds[3], &r, sizeof r);
  _exit(0);
}

int ab_spawn_server(int sock, const ab_sup_args *force) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  pid_t host = getppid();
  /* it holds other runs' requests and its supervisors inherit the flag:
   * code of the same uid must not ptrace or read them (core.protect_host) */
  prctl(PR_SET_DUMPABLE, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != host) return 0;
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /* cpu cgroups that a SIGKILLed host's runs left behind (a host's server
   * only: a container has none) */
  if (!force) ab_cgroup_reap();
  size_t nruns = 0, cap = 64;
  run *runs = malloc(cap * sizeof *runs);
  pid_t *keep = malloc(cap * sizeof *keep);
  char *buf = malloc(AB_SPAWN_MAX_MSG + 1);
  spare sp;
  memset(&sp, 0, sizeof sp);
  sp.key = force ? NULL : malloc(AB_SPAWN_MAX_MSG);
  sp.cand = force ? NULL : malloc(AB_SPAWN_MAX_MSG);
  if (sfd < 0 || !runs || !keep || !buf || (!force && (!sp.key || !sp.cand))) {
    free(sp.key);
    free(sp.cand);
    if (sfd >= 0) close(sfd);
    free(runs);
    free(keep);
    free(buf);
    return 1;
  }
  int quit = 0, strays = 0;
  while (!quit) {
    struct pollfd pf[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
    /* while strays were just killed, look again soon: they may have forked */
    int pr = poll(pf, 2, strays ? 10 : -1);
    if (pr < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[1].revents || strays) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si)
        if (si.ssi_signo == SIGTERM) quit = 1;
      int st, suspect = 0;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
        int was_run = 0;
        for (size_t i = 0; i < nruns; i++)
          if (runs[i].pid == w) { runs[i] = runs[--nruns]; was_run = 1; break; }
        /* a supervisor that finished its work exits 0 with its tree dead
         * (the code cannot forge that: it cannot ptrace a non-dumpable
         * process, and LocalExecutor's seccomp filter refuses ptrace to
         * root too); anything else may have left its tree to us */
        if (!was_run && w == sp.pid) {   /* idle too long, or could not start */
          close(sp.sock);
          sp.pid = 0;
          if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
        }
        if (!was_run && spare_was(&sp, w) && WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
        if (!was_run || !WIFEXITED(st) || WEXITSTATUS(st) != 0) suspect = 1;
      }
      if (suspect || strays) {
        for (size_t i = 0; i < nruns; i++) keep[i] = runs[i].pid;
        strays = ab_kill_strays(keep, nruns) > 0;
      }
    }
    if (!pf[0].revents) continue;
    ab_spawn_req rq;
    int fds[AB_SPAWN_NFDS], nfds;
    ssize_t n = ab_proto_recv(sock, buf, &rq, fds, &nfds);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;   /* the host is gone */
    if (n < (ssize_t)sizeof rq) continue;
    if (rq.type == AB_SPARE_DROP) {   /* its executor is closed */
      spare_retire(&sp);
      for (int i = 0; i < nfds; i++) close(fds[i]);
      continue;
    }
    if (rq.type == AB_KILL || rq.type == AB_KILL_HARD) {
      for (size_t i = 0; i < nruns; i++) {
        if (runs[i].id != rq.id) continue;
        kill(runs[i].pid, rq.type == AB_KILL ? SIGTERM : SIGKILL);
        kill(runs[i].pid, SIGCONT);   /* a stopped supervisor must see TERM */
      }
      for (int i = 0; i < nfds; i++) close(fds[i]);
      continue;
    }
    int32_t rep;
    ab_sup_args a;
    char **vec = NULL;
    if (nfds != AB_SPAWN_NFDS || ab_proto_decode(buf, (size_t)n, &rq, &a, &vec) != 0) {
      rep = -EINVAL;
    } else if ((a.o.flags & AB_RUN_RESIDENT) && !force) {
      /* only a block server has a sandbox uid to hang a resident on */
      rep = -EPERM;
    } else {
      if (force) {
        /* the block server's own terms, whatever the request says: the
         * sandbox user, its sweep, our seccomp filter (the request may
         * only ask for a stricter profile), the container's environment */
        a.drop = 1;
        a.sweep = 1;
        a.uid = force->uid;
        a.gid = force->gid;
        if (a.o.seccomp < AB_SECCOMP_DEFAULT) a.o.seccomp = AB_SECCOMP_DEFAULT;
        a.envp = force->envp;
        a.path = force->path;
        a.o.quota_tree = 0;   /* a host pid means nothing in here; the uid is marked instead */
        if (a.o.flags & AB_RUN_RESIDENT) {
          /* the preloaded Python template (sup.h): outside the sandbox
           * user's reach and its sweep, for as long as the host keeps it;
           * its supervisor (a kept run) kills its tree when it dies */
          a.sweep = 0;
          a.ruid = force->uid == AB_RESIDENT_UID ? AB_RESIDENT_ALT : AB_RESIDENT_UID;
          a.o.timeout_ms = 0;
        }
      }
      /* a sandboxed run of the host: its spare, when one was made for it */
      size_t klen = force ? 0 : ab_spare_key(&a, sp.cand, AB_SPAWN_MAX_MSG);
      pid_t taken = klen ? spare_take(&sp, klen, buf, (size_t)n, fds) : 0;
      errno = 0;
      if (nruns == cap) {
        run *nr = realloc(runs, 2 * cap * sizeof *runs);
        if (nr) runs = nr;
        pid_t *nk = nr ? realloc(keep, 2 * cap * sizeof *keep) : NULL;
        if (nk) { keep = nk; cap *= 2; }
      }
      pid_t pid = taken > 0 ? taken : nruns < cap ? fork() : -1;
      if (pid == 0) child(sock, sfd, &a, fds);
      rep = pid > 0 ? pid : -(errno ? errno : EAGAIN);
      if (pid > 0) runs[nruns++] = (run){rq.id, pid};
      if (pid > 0 && nruns == cap) pid = -1;   /* no room to track a spare: none */
      ab_proto_send_rep(sock, rq.id, rep);
      /* the next block's sandbox, made while this one runs */
      if (klen && pid > 0) spare_make(&sp, klen, sock, sfd, &a, fds);
      rep = 0;
    }
    free(vec);
    for (int i = 0; i < nfds; i++) close(fds[i]);
    if (rep) ab_proto_send_rep(sock, rq.id, rep);
  }
  spare_retire(&sp);
  /* cancel what still runs; each supervisor kills its own tree */
  for (size_t i = 0; i < nruns; i++) kill(runs[i].pid, SIGTERM);
  if (!force) ab_cgroup_cleanup(getpid());   /* after supervisors that were SIGKILLed */
  close(sfd);
  free(runs);
  free(keep);
  free(buf);
  free(sp.key);
  free(sp.cand);
  return 0;
}
