/* A pids cgroup around a sandbox's init (sandbox.h): the kernel exempts
 * uid 0 from RLIMIT_NPROC, so for a root caller (mapped to uid 0 inside)
 * only a cgroup bounds a fork bomb before the deadline. Where a pids
 * hierarchy is writable (cgroup v1's pids, or v2 at the root cgroup), the
 * supervisor makes agentbox-sb-<pid> with pids.max, steps into it for the
 * clone of init only (init inherits it), and steps back; the cgroup goes
 * when the run is over. Elsewhere RLIMIT_NPROC alone holds (non-root: per
 * namespace, see sandbox.h).
 * TODO(merge with h-ll's cgroup-v2 part): one cgroup per run for cpu,
 * memory and pids. Only system calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sandbox.h"
#include "sysutil.h"

static int write_str(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, s, ab_slen(s));
  close(fd);
  return n == (ssize_t)ab_slen(s) ? 0 : -1;
}

/* Our pids cgroup directory into dir: v1 "N:pids:/path", else v2 "0::/"
 * when the unified root offers pids. 0, or -1 when there is none. */
static int pids_dir(char *dir, size_t cap) {
  char buf[2048];
  int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  for (char *l = buf; *l;) {
    char *e = l;
    while (*e && *e != '\n') e++;
    char c = *e;
    *e = 0;
    char *p = strchr(l, ':');
    if (p && strncmp(p, ":pids:", 6) == 0) {
      size_t at = ab_put(dir, 0, cap, "/sys/fs/cgroup/pids");
      if (strcmp(p + 6, "/") != 0) ab_put(dir, at, cap, p + 6);
      return 0;
    }
    if (p && strcmp(p, "::/") == 0) {
      /* v2, at the root: pids must be on for children (no internal
       * process rule does not apply to the root) */
      int cf = open("/sys/fs/cgroup/cgroup.subtree_control", O_RDONLY | O_CLOEXEC);
      if (cf < 0) return -1;
      char sc[256];
      ssize_t k = read(cf, sc, sizeof sc - 1);
      close(cf);
      sc[k > 0 ? k : 0] = 0;
      if (!strstr(sc, "pids")) return -1;
      ab_put(dir, 0, cap, "/sys/fs/cgroup");
      return 0;
    }
    *e = c;
    l = c ? e + 1 : e;
  }
  return -1;
}

int ab_sb_pids_enter(ab_sb_pids *p, int64_t max) {
  memset(p, 0, sizeof *p);
  if (max < 0 || pids_dir(p->origin, sizeof p->origin) != 0) return 0;
  size_t at = ab_put(p->dir, 0, sizeof p->dir, p->origin);
  at = ab_put(p->dir, at, sizeof p->dir, "/agentbox-sb-");
  ab_put_num(p->dir, at, sizeof p->dir, (unsigned long)getpid());
  if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) return 0;
  char f[320], v[24];
  ab_put(f, ab_put(f, 0, sizeof f, p->dir), sizeof f, "/pids.max");
  ab_put_num(v, 0, sizeof v, (unsigned long)max);
  if (write_str(f, v) != 0) {
    rmdir(p->dir);
    return 0;
  }
  ab_put(f, ab_put(f, 0, sizeof f, p->dir), sizeof f, "/cgroup.procs");
  if (write_str(f, "0") != 0) {
    rmdir(p->dir);
    return 0;
  }
  p->in = 1;
  return 1;
}

void ab_sb_pids_step_out(ab_sb_pids *p) {
  if (!p->in) return;
  char f[320];
  ab_put(f, ab_put(f, 0, sizeof f, p->origin), sizeof f, "/cgroup.procs");
  (void)write_str(f, "0");
  p->in = 0;
  p->made = 1;
}

void ab_sb_pids_remove(ab_sb_pids *p) {
  ab_sb_pids_step_out(p);
  if (p->made) (void)rmdir(p->dir);
  p->made = 0;
}

int ab_sb_pids_available(void) {
  char dir[256];
  return pids_dir(dir, sizeof dir) == 0 && access(dir, W_OK) == 0;
}
