/* The host's side of the spawn server (spawnsrv.c): started once per
 * lua_State with posix_spawn, then every supervisor is a message on a
 * socket. The host never waits for a child to exec. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spawner.h"
#include "spawnproto.h"

typedef struct { uint32_t id; void *owner; void (*cb)(void *owner, pid_t pid); } pending;

struct ab_spawner {
  ab_ctx *ctx;
  int sock;
  pid_t pid;
  ab_watch w;
  uint32_t next_id;
  pending *pend;
  size_t npend, cappend;
  int refs;                    /* a connected server (ab_spawner_connect): its handle and its runs; 0: the context's own */
};

static void drop(ab_spawner *s) {
  ab_watch_del(s->ctx, &s->w);
  if (s->sock >= 0) close(s->sock);
  s->sock = -1;
  s->w.fd = -1;
  if (s->pid > 0) ab_reap_later(s->ctx, s->pid);
  s->pid = -1;
}

static void on_reply(ab_watch *w, uint32_t ev) {
  ab_spawner *s = w->owner;
  (void)ev;
  for (;;) {
    ab_spawn_rep rep;
    ssize_t n = ab_proto_recv_rep(s->sock, &rep);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      /* the server died: runs in flight end through their status pipes */
      drop(s);
      s->npend = 0;
      return;
    }
    if (n != sizeof rep) continue;
    for (size_t i = 0; i < s->npend; i++) {
      if (s->pend[i].id != rep.id) continue;
      pending p = s->pend[i];
      s->pend[i] = s->pend[--s->npend];
      p.cb(p.owner, rep.pid);
      break;
    }
  }
}

static int start(ab_spawner *s, const char *sup) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  ab_spawnattr_clean(&at);
  /* the server must not hold the host's stdout open (a parent waiting for
   * its EOF would wait for the server) */
  for (int i = 0; i < 3; i++) posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i ? O_WRONLY : O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
  char *argv[] = {(char *)sup, "--server", "3", NULL};
  char *envp[] = {NULL};
  pid_t pid;
  int e = posix_spawn(&pid, sup, &fa, &at, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(sv[1]);
  if (e) {
    close(sv[0]);
    errno = e;
    return -1;
  }
  s->sock = sv[0];
  s->pid = pid;
  s->w.fd = sv[0];
  s->w.cb = on_reply;
  s->w.owner = s;
  s->w.events = 0;
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  ab_watch_set(s->ctx, &s->w, EPOLLIN);
  return 0;
}

static void spawner_free(ab_ctx *c) {
  ab_spawner *s = c->spawner;
  if (!s) return;
  pid_t pid = s->pid;
  s->pid = -1;
  drop(s);   /* the server sees EOF, cancels its runs and exits */
  /* reap it now (it exits at once) so a host that opens and closes many
   * lua_States collects no zombies. One stuck past the budget is killed:
   * its supervisors still cancel their trees (their parent-death signal). */
  if (pid > 0 && ab_reap_until(pid, ab_now_ms() + AB_REAP_BUDGET_MS) != 0) {
    kill(pid, SIGKILL);
    ab_reap_until(pid, ab_now_ms() + 1000);
  }
  free(s->pend);
  free(s);
  c->spawner = NULL;
}

static void spawner_destroy(ab_spawner *s) {
  drop(s);
  free(s->pend);
  free(s);
}

static ab_spawner *get(ab_ctx *c, const char *sup) {
  ab_spawner *s = c->spawner;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ctx = c;
    s->sock = -1;
    s->pid = -1;
    s->w.fd = -1;
    c->spawner = s;
    c->spawner_free = spawner_free;
  }
  if (s->sock < 0 && start(s, sup) != 0) return NULL;
  return s;
}

/* pend and send: the request goes out on s's socket. */
static int send_on(ab_spawner *s, const ab_sup_args *a, const int fds[4], void *owner,
                   void (*cb)(void *owner, pid_t pid), uint32_t *id_out) {
  if (s->sock < 0) {
    errno = EPIPE;
    return -1;
  }
  if (s->npend == s->cappend) {
    size_t cap = s->cappend ? 2 * s->cappend : 16;
    pending *np = realloc(s->pend, cap * sizeof *np);
    if (!np) return -1;
    s->pend = np;
    s->cappend = cap;
  }
  uint32_t id = ++s->next_id;
  int rc = ab_proto_send_spawn(s->sock, id, a, fds);
  if (rc != 0) {
    /* too large for one message: the caller spawns directly; a broken
     * socket: restarted on the next spawn (a connected one is not) */
    if (rc == -1 && errno != EAGAIN) drop(s);
    if (rc == -2) errno = E2BIG;
    return -1;
  }
  /* code of the same uid may have stopped the server: a run must not wait
   * for its deadline to find that out (the server is our child, unreaped) */
  if (s->pid > 0) kill(s->pid, SIGCONT);
  s->pend[s->npend++] = (pending){id, owner, cb};
  *id_out = id;
  return 0;
}

ab_spawner *ab_spawner_spawn(ab_ctx *c, const char *sup, const ab_sup_args *a, const int fds[4],
                             void *owner, void (*cb)(void *owner, pid_t pid), uint32_t *id_out) {
  ab_spawner *s = get(c, sup);
  if (!s) return NULL;
  return send_on(s, a, fds, owner, cb, id_out) == 0 ? s : NULL;
}

int ab_spawner_spawn_on(ab_spawner *s, const ab_sup_args *a, const int fds[4], void *owner,
                        void (*cb)(void *owner, pid_t pid), uint32_t *id_out) {
  if (send_on(s, a, fds, owner, cb, id_out) != 0) return -1;
  s->refs++;   /* the run's, until ab_spawner_forget */
  return 0;
}

void ab_spawner_forget(ab_spawner *s, uint32_t id) {
  for (size_t i = 0; i < s->npend; i++)
    if (s->pend[i].id == id) { s->pend[i] = s->pend[--s->npend]; break; }
  if (s->refs > 0) ab_spawner_unref(s);
}

void ab_spawner_kill(ab_spawner *s, uint32_t id, int hard) {
  if (s->sock < 0) return;
  if (hard && s->pid > 0) kill(s->pid, SIGCONT);   /* our child: its pid is ours until reaped */
  ab_proto_send_kill(s->sock, id, hard);
}

void ab_spawner_drop_spare(ab_ctx *c) {
  if (c->spawner && c->spawner->sock >= 0) ab_proto_send_spare_drop(c->spawner->sock);
}

ab_spawner *ab_spawner_connect(ab_ctx *c, int sock) {
  ab_spawner *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->ctx = c;
  s->sock = sock;
  s->pid = -1;
  s->refs = 1;
  s->w.fd = sock;
  s->w.cb = on_reply;
  s->w.owner = s;
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
  if (ab_watch_set(c, &s->w, EPOLLIN) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

int ab_spawner_alive(const ab_spawner *s) { return s->sock >= 0; }

void ab_spawner_disconnect(ab_spawner *s) { drop(s); }

void ab_spawner_unref(ab_spawner *s) {
  if (s->refs > 0 && --s->refs == 0) spawner_destroy(s);
}
