/* The workspace quota's walker (see quota.c for what is counted): one
 * pass over the directory with a fixed set of levels, every step
 * statx/openat relative to the parent's fd with AT_SYMLINK_NOFOLLOW /
 * O_NOFOLLOW, stopping as soon as a limit is passed. A supervisor running
 * as root retries a refused directory as its owner (setfsuid). */
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

void ab_qw_set_fsuid(ab_quota *q, uint32_t uid) {
  if (q->fsuid == uid) return;
  syscall(SYS_setfsuid, uid);   /* per thread, as a raw call must be */
  q->fsuid = uid;
}

int ab_qw_info(int dirfd, const char *name, int flags, ab_qinfo *o) {
  struct statx sx;
  if (syscall(SYS_statx, dirfd, name, flags | AT_NO_AUTOMOUNT,
              STATX_TYPE | STATX_MODE | STATX_UID | STATX_NLINK | STATX_INO | STATX_BLOCKS | STATX_MNT_ID, &sx) == 0) {
    o->mode = sx.stx_mode;
    o->uid = sx.stx_uid;
    o->nlink = sx.stx_nlink;
    o->ino = sx.stx_ino;
    o->dev = ((uint64_t)sx.stx_dev_major << 32) | sx.stx_dev_minor;
    o->blocks = sx.stx_blocks;
    o->has_mnt = (sx.stx_mask & STATX_MNT_ID) != 0;
    o->mnt = sx.stx_mnt_id;
    return 0;
  }
  if (errno != ENOSYS) return -1;
  struct stat st;
  if (fstatat(dirfd, name, &st, flags) != 0) return -1;
  o->mode = st.st_mode;
  o->uid = st.st_uid;
  o->nlink = (uint32_t)st.st_nlink;
  o->ino = st.st_ino;
  o->dev = ((uint64_t)major(st.st_dev) << 32) | minor(st.st_dev);
  o->blocks = (uint64_t)st.st_blocks;
  o->has_mnt = 0;
  o->mnt = 0;
  return 0;
}

int ab_qw_same_mount(const ab_quota *q, const ab_qinfo *i) {
  return q->by_mnt && i->has_mnt ? i->mnt == q->mnt : i->dev == q->dev;
}

/* 1 when (dev, ino) was already counted by this walk. A full table counts
 * again: over-counting can only stop a block, never let one through. */
int ab_qw_seen_link(ab_quota *q, uint64_t dev, uint64_t ino) {
  uint64_t h = (ino * 0x9E3779B97F4A7C15ull) ^ (dev * 0xC2B2AE3D27D4EB4Full);
  for (uint32_t k = 0; k < LINKS; k++) {
    link_slot *s = &q->links[(h + k) & (LINKS - 1)];
    if (s->gen != q->gen) {
      if (q->nlinks >= LINKS / 4 * 3) return 0;
      s->gen = q->gen;
      s->ino = ino;
      s->dev = dev;
      q->nlinks++;
      return 0;
    }
    if (s->ino == ino && s->dev == dev) return 1;
  }
  return 0;
}

static void path_push(ab_quota *q, const char *name) {
  size_t n = ab_slen(name);
  if (q->pathlen + n + 2 >= PATHMAX) {      /* keep what fits, marked */
    q->pathlen = PATHMAX - 4;
    memcpy(q->path + q->pathlen, "...", 4);
    q->pathlen = PATHMAX - 1;
    return;
  }
  if (q->pathlen) q->path[q->pathlen++] = '/';
  memcpy(q->path + q->pathlen, name, n + 1);
  q->pathlen += (unsigned)n;
}

int ab_qw_bad(ab_quota *q, const char *why, int err) {
  q->why = why;
  q->err = err;
  return WALK_BAD;
}

/* Directories: open with the current fsuid, else (root only) as its owner. */
static int open_dir(ab_quota *q, int parent, const char *name, uint32_t owner, uint32_t *fsuid) {
  int fl = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  int fd = openat(parent, name, fl);
  if (fd < 0 && (errno == EACCES || errno == EPERM) && q->euid0 && q->fsuid != owner) {
    uint32_t was = q->fsuid;
    ab_qw_set_fsuid(q, owner);
    fd = openat(parent, name, fl);
    if (fd < 0) {
      int e = errno;
      ab_qw_set_fsuid(q, was);
      errno = e;
    }
  }
  *fsuid = q->fsuid;
  return fd;
}

int ab_qw_over(const ab_quota *q) {
  return (q->max_bytes > 0 && q->bytes > q->max_bytes) || (q->max_files > 0 && q->files > q->max_files);
}

static int walk_levels(ab_quota *q, int64_t deadline) {
  int depth = 0;
  uint32_t steps = 0;
  for (;;) {
    level *L = &q->lv[depth];
    ab_qw_set_fsuid(q, L->fsuid);
    if (L->pos >= L->len) {
      long n = syscall(SYS_getdents64, L->fd, q->buf[depth], DIRBUF);
      if (n < 0) return ab_qw_bad(q, "cannot list", errno);
      if (n == 0) {
        if (depth == 0) return WALK_OK;
        close(L->fd);
        L->fd = -1;
        depth--;
        q->pathlen = q->lv[depth].pathlen;
        q->path[q->pathlen] = 0;
        continue;
      }
      L->len = n;
      L->pos = 0;
    }
    ab_dirent64 *d = (ab_dirent64 *)(q->buf[depth] + L->pos);
    L->pos += d->d_reclen;
    const char *nm = d->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    if (deadline && (++steps & 1023) == 0 && ab_mono_ms() >= deadline) return WALK_CUT;
    ab_qinfo i;
    if (ab_qw_info(L->fd, nm, AT_SYMLINK_NOFOLLOW, &i) != 0) {
      if (errno == EACCES && q->euid0 && L->fsuid != L->owner) {
        L->fsuid = L->owner;      /* searching needs x: read this level as its owner */
        ab_qw_set_fsuid(q, L->fsuid);
        if (ab_qw_info(L->fd, nm, AT_SYMLINK_NOFOLLOW, &i) == 0) goto got;
      }
      if (errno == ENOENT) continue;   /* removed since the listing */
      path_push(q, nm);
      return ab_qw_bad(q, "cannot look at", errno);
    }
  got:
    if (!ab_qw_same_mount(q, &i)) continue;
    if (!S_ISDIR(i.mode) && i.nlink > 1 && ab_qw_seen_link(q, i.dev, i.ino)) continue;
    q->files++;
    q->bytes += (int64_t)(i.blocks * 512);
    if (ab_qw_over(q)) return WALK_OVER;
    if (!S_ISDIR(i.mode)) continue;
    unsigned pl = q->pathlen;
    path_push(q, nm);
    if (depth + 1 >= WALK_DEPTH) return ab_qw_bad(q, "deeper than 256 levels at", 0);
    uint32_t fsuid;
    int fd = open_dir(q, L->fd, nm, i.uid, &fsuid);
    if (fd < 0) {
      /* gone, or no longer a directory: changed since the stat (the code
       * is running); the final measure is taken with the tree dead */
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
        q->pathlen = pl;
        q->path[pl] = 0;
        continue;
      }
      return ab_qw_bad(q, "cannot enter", errno);
    }
    depth++;
    q->lv[depth] = (level){fd, fsuid, i.uid, q->pathlen, 0, 0};
  }
}

/* The filesystem's blocks and inodes in use (f_files is 0 where the
 * filesystem does not count inodes: that trigger is then off). */
int ab_qw_fs_use(const ab_quota *q, uint64_t *bytes, uint64_t *files) {
  struct statfs sf;
  if (q->root < 0 || fstatfs(q->root, &sf) != 0) return -1;
  *bytes = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
  *files = sf.f_files ? (uint64_t)(sf.f_files - sf.f_ffree) : 0;
  return 0;
}

/* One walk of the whole directory; leaves the counts and the status in q. */
int ab_qw_walk(ab_quota *q, int64_t deadline) {
  int64_t t0 = ab_mono_ms();
  if (++q->gen == 0) {
    memset(q->links, 0, sizeof q->links);
    q->gen = 1;
  }
  q->nlinks = 0;
  q->bytes = q->files = q->held = q->held_files = 0;
  q->why = NULL;
  q->err = 0;
  q->pathlen = 0;
  q->path[0] = 0;
  ab_qinfo i;
  int st;
  if (q->root < 0) {
    st = ab_qw_bad(q, "cannot open", q->open_err);
  } else if (ab_qw_info(q->root, "", AT_EMPTY_PATH, &i) != 0) {
    st = ab_qw_bad(q, "cannot look at", errno);
  } else if (lseek(q->root, 0, SEEK_SET) != 0) {
    st = ab_qw_bad(q, "cannot list", errno);
  } else {
    q->by_mnt = i.has_mnt;
    q->mnt = i.mnt;
    q->dev = i.dev;
    q->bytes = (int64_t)(i.blocks * 512);
    q->lv[0] = (level){q->root, q->euid, i.uid, 0, 0, 0};
    st = ab_qw_over(q) ? WALK_OVER : walk_levels(q, deadline);
    for (int d = 1; d < WALK_DEPTH && q->lv[d].fd >= 0; d++) {
      close(q->lv[d].fd);
      q->lv[d].fd = -1;
    }
  }
  ab_qw_set_fsuid(q, q->euid);
  q->status = st;
  int64_t t1 = ab_mono_ms();
  q->walk_ms = t1 - t0;
  q->walked = t1;
  int64_t iv = q->walk_ms * POLL_FACTOR;
  q->interval = iv < POLL_MIN_MS ? POLL_MIN_MS : iv > POLL_MAX_MS ? POLL_MAX_MS : iv;
  q->due = t1 + q->interval;
  q->next_fs = t1 + FS_MS;
  /* a complete count is the baseline the filesystem's growth is read against */
  if (st == WALK_OK) q->fs_ok = ab_qw_fs_use(q, &q->fs_bytes, &q->fs_files) == 0;
  return st;
}
