/* agentbox-sup --preload-client NAME GRACE_MS FILE: the client of a
 * preloaded Python template (lua/agentbox/executor/agentbox_preload.py;
 * agentbox_client.py is the same client in Python) for DockerExecutor's
 * preload and stateful session. The block server's supervisor runs it as the block's program;
 * it hands its stdin, stdout and stderr to a session of the template
 * listening on the abstract unix socket NAME, which forks the block, then
 * mirrors the block's end (exit code or signal). A second interpreter start
 * per block (the Python client's, about 10 ms) is what this saves.
 * The protocol is agentbox_client.py's: one "A" from the session, then a
 * big-endian length and "agentbox-preload-1\0cwd\0file\0grace_ms\0" plus
 * the environment, NUL-separated, with fds 0, 1, 2 as SCM_RIGHTS; the
 * supervisor's TERM (the deadline) is passed on as "T"; the reply is the
 * block's wait status, 4 bytes big-endian. It dies of SIGUSR2 when no
 * session took the block (nothing ran) and of SIGUSR1 when the session
 * went away before the status (the template died): the executor restarts
 * the template. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LOST SIGUSR1
#define UNAVAILABLE SIGUSR2
#define ACCEPT_S 5
#define MAX_REQ (1 << 20)

/* End as the block ended: by its signal (no core file), else 128 + sig. */
static void die(int sig) {
  struct rlimit no = {0, 0};
  setrlimit(RLIMIT_CORE, &no);
  if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigprocmask(SIG_UNBLOCK, &one, NULL);
  raise(sig);
  _exit(128 + sig);
}

static int add(char *buf, size_t *len, const char *s) {
  size_t n = strlen(s) + 1;
  if (*len + n > MAX_REQ) return -1;
  memcpy(buf + *len, s, n);
  *len += n;
  return 0;
}

/* The request after its 4-byte length; NULL when it does not fit. */
static char *request(const char *grace, const char *path, size_t *len) {
  char *buf = malloc(MAX_REQ);
  char cwd[4096];
  if (!buf || !getcwd(cwd, sizeof cwd)) {
    free(buf);
    return NULL;
  }
  *len = 4;
  int bad = add(buf, len, "agentbox-preload-1") || add(buf, len, cwd) || add(buf, len, path) ||
            add(buf, len, grace);
  for (char **e = environ; *e && !bad; e++) bad = add(buf, len, *e);
  if (bad) {
    free(buf);
    return NULL;
  }
  *len -= 1;   /* the fields are joined by NUL, with none after the last */
  uint32_t n = (uint32_t)(*len - 4);
  for (int i = 0; i < 4; i++) buf[i] = (char)(n >> (24 - 8 * i));
  return buf;
}

static int send_request(int s, const char *buf, size_t len) {
  int fds[3] = {0, 1, 2};
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof fds)]; } cm;
  memset(&cm, 0, sizeof cm);
  struct iovec io = {(void *)buf, len};
  struct msghdr m = {0};
  m.msg_iov = &io;
  m.msg_iovlen = 1;
  m.msg_control = cm.b;
  m.msg_controllen = sizeof cm.b;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t n = sendmsg(s, &m, MSG_NOSIGNAL);
  if (n <= 0) return -1;
  for (size_t off = (size_t)n; off < len;) {   /* the rest, without the fds */
    ssize_t k = send(s, buf + off, len - off, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    off += (size_t)k;
  }
  return 0;
}

int ab_preload_client(const char *name, const char *grace, const char *path) {
  /* TERM (the supervisor's, at the deadline) is read from a signalfd */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t nl = strlen(name);
  if (sfd < 0 || nl == 0 || nl + 1 > sizeof sa.sun_path) die(UNAVAILABLE);
  memcpy(sa.sun_path + 1, name, nl);   /* abstract: a leading NUL */
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nl)) != 0)
    die(UNAVAILABLE);
  /* a session takes the connection at once (it waits in accept); none
   * within ACCEPT_S: the template is stopped or gone, nothing ran */
  struct timeval tv = {ACCEPT_S, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char a = 0;
  if (recv(s, &a, 1, 0) != 1 || a != 'A') die(UNAVAILABLE);
  struct timeval none = {0, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  size_t len;
  char *req = request(grace, path, &len);
  if (!req || send_request(s, req, len) != 0) die(UNAVAILABLE);
  free(req);
  unsigned char st[4];
  size_t got = 0;
  while (got < sizeof st) {
    struct pollfd pf[2] = {{s, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die(LOST);
    }
    if (pf[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) (void)!send(s, "T", 1, MSG_NOSIGNAL);
    }
    if (!pf[0].revents) continue;
    ssize_t k = recv(s, st + got, sizeof st - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) die(LOST);   /* the session went away: so did the block */
    got += (size_t)k;
  }
  int status = (int)(((uint32_t)st[0] << 24) | ((uint32_t)st[1] << 16) | ((uint32_t)st[2] << 8) | st[3]);
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  if (sig == LOST || sig == UNAVAILABLE) _exit(128 + sig);
  die(sig);
  return 1;
}
