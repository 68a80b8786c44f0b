/* Deleted files the block's tree holds (ab_quota_held): no walk sees an
 * unlinked file that a process keeps open or mapped, but it uses the disk.
 * Each marked process's /proc/PID/fd and /proc/PID/map_files are looked at
 * (as the process's fsuid/fsgid when root), each inode once; what cannot
 * be inspected fails closed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "quota_int.h"
#include "sysutil.h"

static int64_t hexnum(const char **p, int base) {
  int64_t v = 0;
  for (;; (*p)++) {
    int c = **p, d = c >= '0' && c <= '9' ? c - '0' : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return v;
    v = v * base + d;
  }
}

/* Count one deleted file (dirfd/name resolves to it through /proc); 0, or
 * -1 with errno. */
static int held_file(ab_quota *q, int dirfd, const char *name, int only_deleted) {
  ab_qinfo i;
  if (ab_qw_info(dirfd, name, 0, &i) != 0) return -1;   /* follows the /proc link */
  int same = q->held_by_dev ? i.dev == q->dev : ab_qw_same_mount(q, &i);
  if (!S_ISREG(i.mode) || (only_deleted && i.nlink != 0) || !same) return 0;
  if (ab_qw_seen_link(q, i.dev, i.ino)) return 0;
  q->held += (int64_t)(i.blocks * 512);
  q->held_files++;
  q->bytes += (int64_t)(i.blocks * 512);
  q->files++;
  return 0;
}

typedef struct { ab_quota *q; int fdd; } fd_walk;

static int held_fd(const ab_dirent64 *d, void *arg) {
  fd_walk *w = arg;
  if (d->d_name[0] == '.') return 0;
  return held_file(w->q, w->fdd, d->d_name, 1) != 0 && errno != ENOENT ? -1 : 0;
}

static int held_proc(ab_quota *q, pid_t pid) {
  char path[24];
  ab_proc_dir(pid, path);
  int pd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pd < 0) return errno == ENOENT ? 0 : -1;   /* gone meanwhile */
  struct stat st;
  /* /proc/PID/fd belongs to the process's uid and gid: a root without
   * CAP_SYS_PTRACE looks as them (the access check compares the
   * filesystem uid and gid with all of the process's ids). To root when
   * the process is not dumpable (a root caller's sandbox init, whose uid
   * is AB_SANDBOX_HOST_UID): root looks as itself. */
  uint32_t gid = 0;
  if (q->euid0 && fstatat(pd, "fd", &st, 0) == 0) {
    ab_qw_set_fsuid(q, st.st_uid);
    gid = st.st_gid;
    syscall(SYS_setfsgid, gid);
  }
  int rc = 0;
  int fdd = openat(pd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fdd < 0) rc = errno == ENOENT ? 0 : -1;
  if (fdd >= 0) {
    fd_walk w = {q, fdd};
    rc = ab_dir_each(fdd, q->buf[0], DIRBUF, held_fd, &w) ? -1 : 0;
  }
  if (fdd >= 0) close(fdd);
  /* shared mappings of deleted files outlive their fds: map_files gives
   * the inode (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE: without, such a
   * mapping on this filesystem cannot be sized, which fails closed) */
  int md = rc == 0 ? openat(pd, "maps", O_RDONLY | O_CLOEXEC) : -1;
  if (rc == 0 && md < 0 && errno != ENOENT) rc = -1;
  int mf = md >= 0 ? openat(pd, "map_files", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  /* a line's head (range, perms, offset, dev: well under 128 bytes) and
   * its last 10 bytes, whatever the path's length */
  char *b = q->buf[1], line[128], tail[10];
  size_t ll = 0, tl = 0;
  for (long n; md >= 0 && rc == 0 && (n = read(md, b, DIRBUF)) > 0;) {
    for (long j = 0; j < n && rc == 0; j++) {
      if (b[j] != '\n') {
        if (ll < sizeof line - 1) line[ll++] = b[j];
        tail[tl++ % 10] = b[j];
        continue;
      }
      line[ll] = 0;
      const char *s = line;
      int deleted = tl >= 10;
      for (size_t t = 0; t < 10 && deleted; t++) deleted = tail[(tl + t) % 10] == " (deleted)"[t];
      ll = tl = 0;
      if (!deleted) continue;
      const char *range = s;
      hexnum(&s, 16);
      size_t rlen = (size_t)(s - range);
      if (*s++ != '-') continue;
      hexnum(&s, 16);
      rlen = (size_t)(s - range);
      while (*s == ' ') s++;
      while (*s && *s != ' ') s++;                /* perms */
      while (*s == ' ') s++;
      while (*s && *s != ' ') s++;                /* offset */
      while (*s == ' ') s++;
      uint64_t maj = (uint64_t)hexnum(&s, 16);
      if (*s++ != ':') continue;
      uint64_t min = (uint64_t)hexnum(&s, 16);
      if (((maj << 32) | min) != q->dev) continue;
      char r[64];
      if (rlen >= sizeof r) continue;
      memcpy(r, range, rlen);
      r[rlen] = 0;
      if (mf < 0 || held_file(q, mf, r, 0) != 0) {
        if (mf >= 0 && errno == ENOENT) continue;   /* unmapped meanwhile */
        rc = -1;
      }
    }
  }
  if (mf >= 0) close(mf);
  if (md >= 0) close(md);
  close(pd);
  ab_qw_set_fsuid(q, q->euid);
  if (gid) syscall(SYS_setfsgid, (uint32_t)getegid());
  return rc;
}

int ab_quota_held(ab_quota *q, const pid_t *pid, const unsigned char *mark, size_t n) {
  if (!q) return -1;
  q->held = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mark[i]) continue;
    if (held_proc(q, pid[i]) != 0) {
      q->status = ab_qw_bad(q, "cannot size the deleted files a process of the block holds open or mapped", errno);
      q->proc_err = 1;
      q->pathlen = 0;
      q->path[0] = 0;
      return -1;
    }
    if (ab_qw_over(q)) {
      q->status = WALK_OVER;
      return -1;
    }
  }
  /* the rest of the unseen growth was others' */
  q->excused_bytes = ab_q_unseen_bytes(q) - q->held;
  q->excused_files = ab_q_unseen_files(q) - q->held_files;
  return 0;
}
