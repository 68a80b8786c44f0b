/* agentbox-sup --stream -u uid:gid: a warm container's block server for a
 * daemon the host reaches only through the Engine API (a remote
 * DOCKER_HOST), where no descriptor can cross. Its stdin and stdout are the
 * container's, which the host holds through the attach stream; it speaks
 * streamproto.h there. It is a small host of its own: it forks one spawn
 * server (spawnsrv.c, on the server's terms: force) at start and turns each
 * SPAWN frame into that server's message, with pipes it made here, so the
 * supervision is the same code as every other run's; it then forwards the
 * run's output as OUT frames (capped at the run's max_output, the rest
 * counted) and the supervisor's report as one RESULT frame.
 * The code's stdout and stderr are pipes to this process, never the
 * container's stdout, so nothing the code prints can look like a frame to
 * the host; this process is root, non-dumpable, with only CAP_KILL,
 * SETUID and SETGID, so the code cannot reach its descriptors or signal it.
 * One run at a time (a block server belongs to one executor). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spawnproto.h"
#include "streamproto.h"
#include "sup.h"
#include "sysutil.h"

int ab_spawn_server(int sock, const ab_sup_args *force);

#define DRAIN_MS 200   /* output still coming after the report: strays that hold the pipes */

typedef struct {
  int sock;                    /* our end of the spawn server's socket */
  int active;
  uint32_t id;
  int out[2], status;          /* read ends; -1 once at EOF */
  int in;                      /* the program's stdin, while its bytes are written (-1: closed) */
  unsigned char *inbuf;
  size_t in_len, in_off;
  uint64_t max, sent, dropped;
  ab_sup_report rep;
  size_t rep_got;
  int spawn_errno;
  int64_t report_at;           /* when the report came (0: not yet) */
  unsigned char *io;
} server;

static void fd_close(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* A whole frame on stdout; the host is gone when it cannot be written. */
static void put_frame(int kind, int stream, uint32_t id, const void *p, size_t n) {
  unsigned char h[AB_SF_HDR];
  ab_sf_put_hdr(h, kind, stream, id, (uint32_t)n);
  struct iovec v[2] = {{h, sizeof h}, {(void *)p, n}};
  size_t left = sizeof h + n;
  while (left > 0) {
    ssize_t w = writev(1, v, 2);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(1);
    left -= (size_t)w;
    for (int i = 0; i < 2 && w > 0; i++) {
      size_t k = (size_t)w < v[i].iov_len ? (size_t)w : v[i].iov_len;
      v[i].iov_base = (char *)v[i].iov_base + k;
      v[i].iov_len -= k;
      w -= (ssize_t)k;
    }
  }
}

static void put_result(server *s) {
  ab_sf_result r;
  memset(&r, 0, sizeof r);
  const ab_sup_report *p = &s->rep;
  int valid = s->rep_got == sizeof *p && p->magic == AB_SUP_MAGIC;
  r.exit_code = -1;
  if (valid) {
    if (p->exited && WIFEXITED(p->status)) r.exit_code = WEXITSTATUS(p->status);
    else if (p->exited && WIFSIGNALED(p->status)) r.signal = WTERMSIG(p->status);
    r.timed_out = p->timed_out != 0;
    r.cancelled = p->cancelled != 0;
    r.oom = p->oom != 0;
    r.quota = p->quota != 0;
    r.strays = p->strays != 0;
    r.spawn_errno = p->spawn_errno > 0 && p->spawn_errno < 4096 ? p->spawn_errno : 0;
  } else if (s->spawn_errno) {
    r.spawn_errno = s->spawn_errno;
  } else {
    r.no_report = 1;
  }
  if (r.signal > 64) r.signal = 0;
  r.dropped = (int64_t)s->dropped;
  unsigned char b[AB_SF_RESULT_LEN];
  ab_sf_result_encode(b, &r);
  put_frame(AB_SF_RESULT, 0, s->id, b, sizeof b);
}

static void refuse(uint32_t id, int e) {
  server none;
  memset(&none, 0, sizeof none);
  none.id = id;
  none.spawn_errno = e;
  put_result(&none);
}

static int make_pipe(int p[2]) { return pipe2(p, O_CLOEXEC); }

/* A SPAWN frame: max_output, the program's stdin, then the spawn server's
 * message, passed on with this run's pipes (the spawn server decodes it and
 * imposes force). */
static void start_run(server *s, uint32_t id, unsigned char *body, size_t n) {
  if (s->active) return refuse(id, EBUSY);
  if (n < AB_SF_SPAWN_HDR) return refuse(id, EINVAL);
  size_t inlen = ab_sf_get32(body + 8);
  if (inlen > AB_SF_MAX_STDIN || n - AB_SF_SPAWN_HDR < inlen) return refuse(id, EINVAL);
  size_t off = AB_SF_SPAWN_HDR + inlen;
  if (n - off < sizeof(ab_spawn_req) || n - off > AB_SPAWN_MAX_MSG) return refuse(id, EINVAL);
  unsigned char *inbuf = inlen ? malloc(inlen) : NULL;
  if (inlen && !inbuf) return refuse(id, ENOMEM);
  if (inlen) memcpy(inbuf, body + AB_SF_SPAWN_HDR, inlen);
  ab_spawn_req rq;
  memcpy(&rq, body + off, sizeof rq);
  rq.type = AB_SPAWN;
  rq.id = id;
  memcpy(body + off, &rq, sizeof rq);
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
  if (make_pipe(in) || make_pipe(out) || make_pipe(err) || make_pipe(st)) {
    int e = errno;
    int *all[] = {in, out, err, st};
    for (int i = 0; i < 4; i++) { fd_close(&all[i][0]); fd_close(&all[i][1]); }
    free(inbuf);
    return refuse(id, e);
  }
  /* the program's stdin: its bytes, written as it reads them, then EOF */
  if (!inlen) fd_close(&in[1]);
  else fcntl(in[1], F_SETFL, O_NONBLOCK);
  int fds[AB_SPAWN_NFDS] = {in[0], out[1], err[1], st[1]};
  int rc = ab_proto_send_msg(s->sock, (const char *)body + off, n - off, fds);
  int e = errno;
  for (int i = 0; i < AB_SPAWN_NFDS; i++) close(fds[i]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    close(st[0]);
    fd_close(&in[1]);
    free(inbuf);
    return refuse(id, e ? e : EIO);
  }
  s->in = in[1];
  s->inbuf = inbuf;
  s->in_len = inlen;
  s->in_off = 0;
  memset(&s->rep, 0, sizeof s->rep);
  s->active = 1;
  s->id = id;
  s->out[0] = out[0];
  s->out[1] = err[0];
  s->status = st[0];
  s->max = ab_sf_get64(body);
  s->sent = s->dropped = 0;
  s->rep_got = 0;
  s->spawn_errno = 0;
  s->report_at = 0;
}

static void stdin_done(server *s) {
  fd_close(&s->in);
  free(s->inbuf);
  s->inbuf = NULL;
}

static void write_stdin(server *s) {
  ssize_t w = write(s->in, s->inbuf + s->in_off, s->in_len - s->in_off);
  if (w < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (w < 0) return stdin_done(s);   /* the program closed it */
  s->in_off += (size_t)w;
  if (s->in_off == s->in_len) stdin_done(s);
}

static void end_run(server *s) {
  stdin_done(s);
  fd_close(&s->out[0]);
  fd_close(&s->out[1]);
  fd_close(&s->status);
  put_result(s);
  s->active = 0;
}

static long host_maxlen(int kind, int stream) {
  if (stream != 0) return -1;
  if (kind == AB_SF_SPAWN) return AB_SF_SPAWN_HDR + AB_SF_MAX_STDIN + AB_SPAWN_MAX_MSG;
  if (kind == AB_SF_PING || kind == AB_SF_KILL) return 0;
  return -1;
}

static int on_request(void *ud, const ab_sf_hdr *h, const unsigned char *body) {
  server *s = ud;
  if (h->kind == AB_SF_PING) {
    unsigned char v[4];
    ab_sf_put32(v, AB_SF_VERSION);
    put_frame(AB_SF_HELLO, 0, h->id, v, sizeof v);
  } else if (h->kind == AB_SF_SPAWN) {
    start_run(s, h->id, (unsigned char *)body, h->len);
  } else if (h->kind == AB_SF_KILL && s->active && h->id == s->id) {
    ab_proto_send_kill(s->sock, s->id, 0);
  }
  return 0;
}

static void read_output(server *s, int i) {
  ssize_t n = read(s->out[i], s->io, AB_SF_MAX_OUT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    fd_close(&s->out[i]);
    return;
  }
  uint64_t keep = s->sent >= s->max ? 0 : s->max - s->sent;
  if (keep > (uint64_t)n) keep = (uint64_t)n;
  if (keep > 0) put_frame(AB_SF_OUT, i + 1, s->id, s->io, (size_t)keep);
  s->sent += keep;
  s->dropped += (uint64_t)n - keep;
}

static void read_status(server *s) {
  if (s->rep_got < sizeof s->rep) {
    ssize_t n = read(s->status, (char *)&s->rep + s->rep_got, sizeof s->rep - s->rep_got);
    if (n < 0 && errno == EINTR) return;
    if (n > 0) {
      s->rep_got += (size_t)n;
      if (s->rep_got == sizeof s->rep) s->report_at = ab_mono_ms();
      return;
    }
  }
  fd_close(&s->status);
  if (!s->report_at) s->report_at = ab_mono_ms();
}

int ab_block_stream(const ab_sup_args *force) {
  prctl(PR_SET_DUMPABLE, 0);
  signal(SIGPIPE, SIG_IGN);
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    /* the spawn server and its supervisors never hold the channel */
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0) _exit(1);
    dup2(nul, 0);
    dup2(nul, 1);
    if (nul > 2) close(nul);
    close(sp[0]);
    _exit(ab_spawn_server(sp[1], force));
  }
  close(sp[1]);
  server s;
  memset(&s, 0, sizeof s);
  s.sock = sp[0];
  s.out[0] = s.out[1] = s.status = s.in = -1;
  unsigned char *body = malloc(AB_SF_SPAWN_HDR + AB_SF_MAX_STDIN + AB_SPAWN_MAX_MSG + 1);
  s.io = malloc(AB_SF_MAX_OUT);
  unsigned char *in = malloc(AB_SF_MAX_OUT);
  if (!body || !s.io || !in) return 1;
  ab_sf_reader rd;
  memset(&rd, 0, sizeof rd);
  rd.body = body;
  rd.cap = AB_SF_SPAWN_HDR + AB_SF_MAX_STDIN + AB_SPAWN_MAX_MSG;
  rd.maxlen = host_maxlen;
  for (;;) {
    struct pollfd pf[6] = {{0, POLLIN, 0}, {s.sock, POLLIN, 0}, {s.out[0], POLLIN, 0}, {s.out[1], POLLIN, 0},
                           {s.status, POLLIN, 0}, {s.in, POLLOUT, 0}};
    int timeout = -1;
    if (s.active && s.report_at) {
      int64_t left = s.report_at + DRAIN_MS - ab_mono_ms();
      timeout = left > 0 ? (int)left : 0;
    }
    int pr = poll(pf, 6, timeout);
    if (pr < 0 && errno != EINTR) return 1;
    if (pr < 0) continue;
    if (pf[1].revents) {
      ab_spawn_rep rep;
      ssize_t n = ab_proto_recv_rep(s.sock, &rep);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return 1;   /* the spawn server died */
      if (n == (ssize_t)sizeof rep && s.active && rep.id == s.id && rep.pid < 0) s.spawn_errno = -rep.pid;
    }
    for (int i = 0; i < 2; i++)
      if (s.out[i] >= 0 && pf[2 + i].revents) read_output(&s, i);
    if (s.status >= 0 && pf[4].revents) read_status(&s);
    if (s.in >= 0 && pf[5].revents) write_stdin(&s);
    if (s.active && s.status < 0 && ((s.out[0] < 0 && s.out[1] < 0) || ab_mono_ms() >= s.report_at + DRAIN_MS))
      end_run(&s);
    if (pf[0].revents) {
      ssize_t n = read(0, in, AB_SF_MAX_OUT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;   /* stdin closed: nobody can ask anything any more */
      if (ab_sf_feed(&rd, in, (size_t)n, on_request, &s) != 0) return 2;   /* not our protocol */
    }
  }
}
