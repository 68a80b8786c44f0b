/* agentbox-sup --listen PATH -u uid:gid [--owner UID]: a warm container's block server,
 * its main process (under tini), as root with only CAP_KILL, CAP_SETUID
 * and CAP_SETGID. It listens on a SOCK_SEQPACKET unix socket in a
 * directory the host bind-mounts from a private root-owned 0700 directory,
 * so the sandbox user can neither reach the socket nor replace it; the
 * host connects from outside the container and every connection is served
 * by the spawn server loop (spawnsrv.c) on the server's own terms (force:
 * uid:gid, the sweep, seccomp, the container's environment), so a block
 * is a message, not a `docker exec`. One connection at a time: a block
 * server belongs to one executor.
 * --owner UID: the host runs as UID, not root (a member of the docker
 * group), so the private directory is UID's, 0700, and root here (no
 * CAP_DAC_OVERRIDE) cannot write it: the socket is made with the
 * filesystem uid UID (CAP_SETUID), so it is UID's, 0600, and only UID (and
 * the host's root) can connect from outside. A process of the container
 * that reaches it anyway (the sandbox user may be UID itself) is refused by
 * its pid (below), and a socket it plants is refused by the host (its peer
 * is not root). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "sup.h"

int ab_spawn_server(int sock, const ab_sup_args *force);

int ab_block_server(const char *path, const ab_sup_args *force, long owner) {
  /* it holds other blocks' requests and its supervisors inherit the flag */
  prctl(PR_SET_DUMPABLE, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n == 0 || n + 4 >= sizeof sa.sun_path) return 125;
  /* bound and listening under a temporary name, then renamed into place:
   * the host never finds a socket that refuses (between bind and listen) */
  memcpy(sa.sun_path, path, n);
  memcpy(sa.sun_path + n, ".new", 5);
  int ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (ls < 0) return 1;
  umask(077);   /* the socket is 0600: root's alone, or the owner's */
  if (owner > 0) {
    setfsuid((uid_t)owner);
    if (setfsuid((uid_t)-1) != (int)owner) return 1;   /* not changed: no CAP_SETUID */
  }
  unlink(sa.sun_path);
  int bad = bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4) != 0 || rename(sa.sun_path, path) != 0;
  if (owner > 0) setfsuid(0);
  if (bad) return 1;
  for (;;) {
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return 1;
    }
    /* the host connects from outside this pid namespace, where the peer's
     * pid reads as 0; a process of the container (the code, had it reached
     * the socket) has a pid here */
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cl != sizeof cr || cr.pid != 0) {
      close(c);
      continue;
    }
    ab_spawn_server(c, force);
    close(c);
  }
}
