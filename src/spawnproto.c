/* Both ends of the spawn server protocol (spawnproto.h): the host's
 * spawner.c and agentbox-sup --server's spawnsrv.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "seccomp.h"
#include "spawnproto.h"
#include "sysutil.h"

static int add_str(char *buf, size_t *len, const char *str) {
  size_t n = strlen(str) + 1;
  if (*len + n > AB_SPAWN_MAX_MSG) return -1;
  memcpy(buf + *len, str, n);
  *len += n;
  return 0;
}

typedef union { struct cmsghdr h; char b[CMSG_SPACE(AB_SPAWN_NFDS * sizeof(int))]; } fd_cmsg;

int ab_proto_encode(char *buf, size_t *lenp, uint32_t id, const ab_sup_args *a) {
  ab_spawn_req rq;
  memset(&rq, 0, sizeof rq);
  rq.type = AB_SPAWN;
  rq.id = id;
  rq.o = a->o;
  size_t len = sizeof rq;
  int bad = add_str(buf, &len, a->cwd ? a->cwd : "");
  if (!bad) bad = add_str(buf, &len, a->quota_dir ? a->quota_dir : "");
  for (char *const *v = a->argv; *v && !bad; v++, rq.argc++) bad = add_str(buf, &len, *v);
  for (char *const *e = a->envp; *e && !bad; e++, rq.envc++) bad = add_str(buf, &len, *e);
  int nll = a->o.landlock ? a->o.landlock_nread + a->o.landlock_nwrite : 0;
  if (nll < 0 || nll > AB_LANDLOCK_MAX_PATHS) bad = 1;
  for (int i = 0; i < nll && !bad; i++) bad = add_str(buf, &len, a->landlock_paths[i]);
  /* the sandbox's extra paths: as many as o says, after Landlock's */
  for (int i = 0; i < a->o.sb_nro && !bad; i++) bad = add_str(buf, &len, a->sb_ro[i]);
  for (int i = 0; i < a->o.sb_nrw && !bad; i++) bad = add_str(buf, &len, a->sb_rw[i]);
  if (bad) return -1;
  memcpy(buf, &rq, sizeof rq);
  *lenp = len;
  return 0;
}

int ab_proto_send_msg(int sock, const char *buf, size_t len, const int fds[AB_SPAWN_NFDS]) {
  fd_cmsg cm;
  memset(&cm, 0, sizeof cm);
  struct iovec io = {(void *)buf, len};
  struct msghdr m = {0};
  m.msg_iov = &io;
  m.msg_iovlen = 1;
  m.msg_control = cm.b;
  m.msg_controllen = sizeof cm.b;
  struct cmsghdr *ch = CMSG_FIRSTHDR(&m);
  ch->cmsg_level = SOL_SOCKET;
  ch->cmsg_type = SCM_RIGHTS;
  ch->cmsg_len = CMSG_LEN(AB_SPAWN_NFDS * sizeof(int));
  memcpy(CMSG_DATA(ch), fds, AB_SPAWN_NFDS * sizeof(int));
  ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == (ssize_t)len) return 0;
  if (n >= 0) errno = EAGAIN;   /* a seqpacket is sent whole or not at all */
  return -1;
}

int ab_proto_send_spawn(int sock, uint32_t id, const ab_sup_args *a, const int fds[AB_SPAWN_NFDS]) {
  char *buf = malloc(AB_SPAWN_MAX_MSG);
  if (!buf) return -2;
  size_t len;
  if (ab_proto_encode(buf, &len, id, a) != 0) {
    free(buf);
    return -2;
  }
  int r = ab_proto_send_msg(sock, buf, len, fds);
  int e = errno;
  free(buf);
  errno = e;
  return r;
}

void ab_proto_send_kill(int sock, uint32_t id, int hard) {
  ab_spawn_req rq;
  memset(&rq, 0, sizeof rq);
  rq.type = hard ? AB_KILL_HARD : AB_KILL;
  rq.id = id;
  (void)!send(sock, &rq, sizeof rq, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void ab_proto_send_spare_drop(int sock) {
  ab_spawn_req rq;
  memset(&rq, 0, sizeof rq);
  rq.type = AB_SPARE_DROP;
  (void)!send(sock, &rq, sizeof rq, MSG_NOSIGNAL | MSG_DONTWAIT);
}

ssize_t ab_proto_recv_rep(int sock, ab_spawn_rep *rep) {
  return recv(sock, rep, sizeof *rep, MSG_DONTWAIT);
}

ssize_t ab_proto_recv(int sock, char *buf, ab_spawn_req *rq, int fds[AB_SPAWN_NFDS], int *nfds) {
  fd_cmsg cm;
  struct iovec io = {buf, AB_SPAWN_MAX_MSG};
  struct msghdr m = {0};
  m.msg_iov = &io;
  m.msg_iovlen = 1;
  m.msg_control = cm.b;
  m.msg_controllen = sizeof cm.b;
  *nfds = 0;
  for (int i = 0; i < AB_SPAWN_NFDS; i++) fds[i] = -1;
  ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  if (n <= 0) return n;
  buf[n] = 0;   /* a last string without its NUL ends here */
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    *nfds = k > AB_SPAWN_NFDS ? AB_SPAWN_NFDS : k;
    memcpy(fds, CMSG_DATA(c), (size_t)*nfds * sizeof(int));
  }
  if (n < (ssize_t)sizeof *rq) {
    for (int i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    return n;
  }
  memcpy(rq, buf, sizeof *rq);
  return n;
}

/* The numbers that index or select something: a request that names an
 * unknown profile or more paths than it may is malformed, never clamped. */
static int opts_valid(const ab_run_opts *o) {
  if (o->seccomp < AB_SECCOMP_OFF || o->seccomp > AB_SECCOMP_SANDBOX) return 0;
  if (o->landlock < AB_LANDLOCK_OFF || o->landlock > AB_LANDLOCK_REQUIRED) return 0;
  if (o->landlock_nread < 0 || o->landlock_nwrite < 0) return 0;
  if (o->landlock_nread > AB_LANDLOCK_MAX_PATHS || o->landlock_nwrite > AB_LANDLOCK_MAX_PATHS - o->landlock_nread)
    return 0;
  if (o->sb_nro < 0 || o->sb_nrw < 0 || o->sb_nro > AB_SANDBOX_MAX_PATHS ||
      o->sb_nrw > AB_SANDBOX_MAX_PATHS - o->sb_nro)
    return 0;
  if (!o->sandbox && (o->sb_nro || o->sb_nrw)) return 0;
  return o->landlock || (o->landlock_nread == 0 && o->landlock_nwrite == 0);
}

int ab_proto_decode(char *buf, size_t n, const ab_spawn_req *rq, ab_sup_args *a, char ***vec) {
  *vec = NULL;
  if (rq->argc < 1 || rq->envc < 0 || rq->argc > AB_SPAWN_MAX_MSG || rq->envc > AB_SPAWN_MAX_MSG) return -1;
  if (!opts_valid(&rq->o)) return -1;
  /* segments, each followed by a NULL: argv, env, Landlock paths, the
   * sandbox's read_only and read_write paths */
  int seg[5] = {rq->argc, rq->envc, rq->o.landlock_nread + rq->o.landlock_nwrite, rq->o.sb_nro, rq->o.sb_nrw};
  int nv = 0;
  for (int k = 0; k < 5; k++) nv += seg[k];
  char **v = calloc((size_t)nv + 5, sizeof *v);
  if (!v) return -1;
  char *p = buf + sizeof *rq, *end = buf + n;
  const char *cwd = p < end ? p : "";
  p += ab_slen(cwd) + 1;
  const char *qdir = p < end ? p : "";
  p += ab_slen(qdir) + 1;
  int at = 0, k = 0, left = seg[0];
  for (int i = 0; i < nv; i++) {
    while (left == 0) { at++; left = seg[++k]; }   /* past a segment: its NULL */
    if (p >= end) {   /* fewer strings than it says */
      free(v);
      return -1;
    }
    v[at++] = p;
    left--;
    p += ab_slen(p) + 1;
  }
  memset(a, 0, sizeof *a);
  a->o = rq->o;
  a->argv = v;
  a->envp = v + rq->argc + 1;
  a->landlock_paths = v + rq->argc + rq->envc + 2;
  a->sb_ro = a->landlock_paths + seg[2] + 1;
  a->sb_rw = a->sb_ro + seg[3] + 1;
  a->cwd = *cwd ? cwd : NULL;
  a->quota_dir = *qdir ? qdir : NULL;
  a->path = ab_env_path(a->envp);
  a->fd_in = a->fd_out = a->fd_err = -1;
  *vec = v;
  return 0;
}

void ab_proto_send_rep(int sock, uint32_t id, int32_t pid) {
  ab_spawn_rep rep = {id, pid};
  (void)!send(sock, &rep, sizeof rep, MSG_NOSIGNAL);
}
