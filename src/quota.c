/* The workspace quota (see quota.h). What is counted: every inode under the
 * quota directory and the directory itself, on the same mount (a mount
 * inside it is another filesystem's business, as `du -x`), each once: a
 * file with several hard links counts once. Bytes are allocated blocks
 * (st_blocks * 512), not apparent sizes, so a sparse file costs what it
 * takes on disk and fallocate'd space costs what it reserves; files are
 * inodes (regular files, directories, links, anything). The walk never
 * follows a link: every step is statx/openat relative to the parent's fd
 * with AT_SYMLINK_NOFOLLOW / O_NOFOLLOW.
 *
 * What cannot be measured counts as over the quota (fail closed): a
 * directory the supervisor cannot enter or list, an entry it cannot stat,
 * a tree deeper than WALK_DEPTH. A supervisor running as root without
 * CAP_DAC_READ_SEARCH (the in-container one) retries a refused directory
 * with its filesystem uid set to the directory's owner (setfsuid, which
 * needs only CAP_SETUID): the owner's bits decide, so the sandbox user's
 * 0700 directories are measured and its chmod 000 ones are a violation.
 *
 * Space can also be reserved without writing: fallocate (30 GB in 35 ms on
 * ext4, and with FALLOC_FL_KEEP_SIZE past RLIMIT_FSIZE) and io_uring's
 * fallocate. The program therefore runs under our seccomp filter with its
 * fallocate rule (seccomp.c: EOPNOTSUPP, and ENOSYS for io_uring; callers
 * such as glibc's posix_fallocate fall back to writing), so space grows
 * only as fast as it is written.
 *
 * Runs in the supervisor, possibly forked from a multithreaded host: only
 * system calls, no malloc or stdio; memory is one mapping per run,
 * bounded whatever the tree (WALK_DEPTH levels, a fixed hard-link table). */
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
#include "quota.h"

#define WALK_DEPTH 256        /* open directory fds at most, one per level */
#define DIRBUF 8192           /* getdents buffer per level */
#define LINKS 65536           /* hard-link table slots (a power of two) */
#define PATHMAX 1024          /* the path shown in a message */
#define POLL_MIN_MS 20        /* walks: every max(POLL_MIN_MS, */
#define POLL_FACTOR 20        /*   POLL_FACTOR x the last walk's time), */
#define POLL_MAX_MS 2000      /*   at most POLL_MAX_MS apart; */
#define FS_MS 10              /* and between them, fstatfs this often: a
                               * filesystem grown by what the quota has
                               * left starts a walk at once, unless the
                               * last such walk found others had grown it:
                               * then at most every FS_FACTOR x the last
                               * walk's time */
#define FS_FACTOR 4

enum { WALK_OK, WALK_OVER, WALK_BAD, WALK_CUT, WALK_FSIZE };
enum { BEFORE, DURING, AFTER };

typedef struct { uint64_t ino, dev; uint32_t gen, pad; } link_slot;

typedef struct {
  int fd;
  uint32_t fsuid;             /* the filesystem uid this level is read with */
  uint32_t owner;             /* the directory's owner */
  unsigned pathlen;
  long pos, len;              /* in buf */
} level;

struct ab_quota {
  int root;                   /* the quota directory, O_RDONLY */
  int euid0;                  /* may switch fsuid (root with CAP_SETUID) */
  uint32_t fsuid, euid;
  int64_t max_bytes, max_files;
  int64_t bytes, files;       /* counted by the last walk (it stops once over) */
  int64_t start_bytes;
  int fsize_ours;             /* the program's RLIMIT_FSIZE is ours */
  int64_t due, interval;
  int64_t walk_ms, walked;    /* the last walk's duration and end */
  int64_t next_fs;            /* next fstatfs */
  int fs_ok;                  /* the baseline below is valid */
  int fs_others;              /* the last growth was mostly not ours */
  uint64_t fs_bytes, fs_files;  /* the filesystem's use after the last walk */
  int64_t grown_bytes, grown_files;  /* its growth that started this walk */
  int64_t held, held_files;   /* in deleted files the tree holds */
  /* growth the walks cannot see: the filesystem's since the block started,
   * less the directory's, less what a look at the tree put down to others */
  uint64_t fs0_bytes, fs0_files;
  int64_t dir0_bytes, dir0_files, excused_bytes, excused_files;
  int status;                 /* of the last walk */
  int err;                    /* errno when WALK_BAD */
  int open_err;               /* why the quota directory did not open */
  int proc_err;               /* WALK_BAD came from looking at the tree */
  const char *why;            /* what failed when WALK_BAD */
  int by_mnt;                 /* same mount by mount id (else by st_dev) */
  uint64_t mnt, dev;
  uint32_t gen;
  uint32_t nlinks;
  char dir[PATHMAX];          /* the quota directory as given */
  char path[PATHMAX];         /* where the walk is (or failed), relative */
  unsigned pathlen;
  level lv[WALK_DEPTH];
  char buf[WALK_DEPTH][DIRBUF];
  link_slot links[LINKS];
};

struct dent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static void set_fsuid(ab_quota *q, uint32_t uid) {
  if (q->fsuid == uid) return;
  syscall(SYS_setfsuid, uid);   /* per thread, as a raw call must be */
  q->fsuid = uid;
}

/* What we need of an inode; statx where the kernel has it (mount id), else
 * fstatat. Walk callers pass AT_SYMLINK_NOFOLLOW. */
typedef struct { uint32_t mode, uid, nlink, has_mnt; uint64_t ino, dev, blocks, mnt; } info;

static int get_info(int dirfd, const char *name, int flags, info *o) {
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

static int same_mount(const ab_quota *q, const info *i) {
  return q->by_mnt && i->has_mnt ? i->mnt == q->mnt : i->dev == q->dev;
}

/* 1 when (dev, ino) was already counted by this walk. A full table counts
 * again: over-counting can only stop a block, never let one through. */
static int seen_link(ab_quota *q, uint64_t dev, uint64_t ino) {
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
  size_t n = slen(name);
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

static int bad(ab_quota *q, const char *why, int err) {
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
    set_fsuid(q, owner);
    fd = openat(parent, name, fl);
    if (fd < 0) {
      int e = errno;
      set_fsuid(q, was);
      errno = e;
    }
  }
  *fsuid = q->fsuid;
  return fd;
}

static int over(const ab_quota *q) {
  return (q->max_bytes > 0 && q->bytes > q->max_bytes) || (q->max_files > 0 && q->files > q->max_files);
}

static int walk_levels(ab_quota *q, int64_t deadline) {
  int depth = 0;
  uint32_t steps = 0;
  for (;;) {
    level *L = &q->lv[depth];
    set_fsuid(q, L->fsuid);
    if (L->pos >= L->len) {
      long n = syscall(SYS_getdents64, L->fd, q->buf[depth], DIRBUF);
      if (n < 0) return bad(q, "cannot list", errno);
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
    struct dent64 *d = (struct dent64 *)(q->buf[depth] + L->pos);
    L->pos += d->d_reclen;
    const char *nm = d->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    if (deadline && (++steps & 1023) == 0 && now_ms() >= deadline) return WALK_CUT;
    info i;
    if (get_info(L->fd, nm, AT_SYMLINK_NOFOLLOW, &i) != 0) {
      if (errno == EACCES && q->euid0 && L->fsuid != L->owner) {
        L->fsuid = L->owner;      /* searching needs x: read this level as its owner */
        set_fsuid(q, L->fsuid);
        if (get_info(L->fd, nm, AT_SYMLINK_NOFOLLOW, &i) == 0) goto got;
      }
      if (errno == ENOENT) continue;   /* removed since the listing */
      path_push(q, nm);
      return bad(q, "cannot look at", errno);
    }
  got:
    if (!same_mount(q, &i)) continue;
    if (!S_ISDIR(i.mode) && i.nlink > 1 && seen_link(q, i.dev, i.ino)) continue;
    q->files++;
    q->bytes += (int64_t)(i.blocks * 512);
    if (over(q)) return WALK_OVER;
    if (!S_ISDIR(i.mode)) continue;
    unsigned pl = q->pathlen;
    path_push(q, nm);
    if (depth + 1 >= WALK_DEPTH) return bad(q, "deeper than 256 levels at", 0);
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
      return bad(q, "cannot enter", errno);
    }
    depth++;
    q->lv[depth] = (level){fd, fsuid, i.uid, q->pathlen, 0, 0};
  }
}

/* The filesystem's blocks and inodes in use (f_files is 0 where the
 * filesystem does not count inodes: that trigger is then off). */
static int fs_use(const ab_quota *q, uint64_t *bytes, uint64_t *files) {
  struct statfs sf;
  if (q->root < 0 || fstatfs(q->root, &sf) != 0) return -1;
  *bytes = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
  *files = sf.f_files ? (uint64_t)(sf.f_files - sf.f_ffree) : 0;
  return 0;
}

/* One walk of the whole directory; leaves the counts and the status in q. */
static int walk(ab_quota *q, int64_t deadline) {
  int64_t t0 = now_ms();
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
  info i;
  int st;
  if (q->root < 0) {
    st = bad(q, "cannot open", q->open_err);
  } else if (get_info(q->root, "", AT_EMPTY_PATH, &i) != 0) {
    st = bad(q, "cannot look at", errno);
  } else if (lseek(q->root, 0, SEEK_SET) != 0) {
    st = bad(q, "cannot list", errno);
  } else {
    q->by_mnt = i.has_mnt;
    q->mnt = i.mnt;
    q->dev = i.dev;
    q->bytes = (int64_t)(i.blocks * 512);
    q->lv[0] = (level){q->root, q->euid, i.uid, 0, 0, 0};
    st = over(q) ? WALK_OVER : walk_levels(q, deadline);
    for (int d = 1; d < WALK_DEPTH && q->lv[d].fd >= 0; d++) {
      close(q->lv[d].fd);
      q->lv[d].fd = -1;
    }
  }
  set_fsuid(q, q->euid);
  q->status = st;
  int64_t t1 = now_ms();
  q->walk_ms = t1 - t0;
  q->walked = t1;
  int64_t iv = q->walk_ms * POLL_FACTOR;
  q->interval = iv < POLL_MIN_MS ? POLL_MIN_MS : iv > POLL_MAX_MS ? POLL_MAX_MS : iv;
  q->due = t1 + q->interval;
  q->next_fs = t1 + FS_MS;
  /* a complete count is the baseline the filesystem's growth is read against */
  if (st == WALK_OK) q->fs_ok = fs_use(q, &q->fs_bytes, &q->fs_files) == 0;
  return st;
}

static int begin(ab_quota **qp, const char *dir, int64_t max_bytes, int64_t max_files) {
  void *m = mmap(NULL, sizeof(ab_quota), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    *qp = NULL;
    return -1;
  }
  ab_quota *q = m;             /* zero-filled */
  *qp = q;
  for (int d = 0; d < WALK_DEPTH; d++) q->lv[d].fd = -1;
  q->max_bytes = max_bytes;
  q->max_files = max_files;
  q->euid = (uint32_t)geteuid();
  q->euid0 = q->euid == 0;
  q->fsuid = q->euid;
  size_t n = slen(dir);
  if (n >= PATHMAX) n = PATHMAX - 1;
  memcpy(q->dir, dir, n);
  q->dir[n] = 0;
  int fl = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  q->root = open(dir, fl);
  if (q->root < 0 && errno == EACCES && q->euid0) {
    struct stat st;
    if (lstat(dir, &st) == 0) {
      set_fsuid(q, st.st_uid);
      q->root = open(dir, fl);
      set_fsuid(q, q->euid);
    }
  }
  if (q->root < 0) q->open_err = errno;
  int st = walk(q, 0);
  q->start_bytes = q->dir0_bytes = q->bytes;
  q->dir0_files = q->files;
  q->fs0_bytes = q->fs_bytes;
  q->fs0_files = q->fs_files;
  return st == WALK_OK ? 0 : -1;
}

/* The RLIMIT_FSIZE that stops one file just past the byte quota; -1 none */
static int64_t fsize_left(const ab_quota *q) {
  if (!q || q->max_bytes <= 0) return -1;
  int64_t left = q->max_bytes - q->start_bytes;
  return left >= 0 ? left + 1 : 0;
}

int64_t ab_quota_due(const ab_quota *q) {
  if (!q) return 0;
  return q->fs_ok && q->next_fs < q->due ? q->next_fs : q->due;
}

/* Has the filesystem grown by what the quota had left at the last walk?
 * Others writing there only cost an early walk. */
static int fs_grown(ab_quota *q, int64_t now) {
  q->next_fs = now + FS_MS;
  uint64_t b, f;
  if (!q->fs_ok || (q->fs_others && now < q->walked + q->walk_ms * FS_FACTOR) || fs_use(q, &b, &f) != 0) return 0;
  int64_t db = b > q->fs_bytes ? (int64_t)(b - q->fs_bytes) : 0, df = f > q->fs_files ? (int64_t)(f - q->fs_files) : 0;
  if ((q->max_bytes > 0 && db >= q->max_bytes - q->bytes) || (q->max_files > 0 && df >= q->max_files - q->files)) {
    q->grown_bytes = db;
    q->grown_files = df;
    return 1;
  }
  return 0;
}

/* Growth of the filesystem since the block started that the directory's
 * walks do not explain (and no earlier look excused), as of the last walk. */
static int64_t unseen_bytes(const ab_quota *q) {
  return (int64_t)(q->fs_bytes - q->fs0_bytes) - (q->bytes - q->held - q->dir0_bytes) - q->excused_bytes;
}

static int64_t unseen_files(const ab_quota *q) {
  return (int64_t)(q->fs_files - q->fs0_files) - (q->files - q->held_files - q->dir0_files) - q->excused_files;
}

/* Could what the walks do not see put the directory over? Then the tree's
 * deleted files must be looked at (ab_quota_held). */
static int unseen(const ab_quota *q) {
  if (!q->fs_ok) return 0;
  if (q->max_bytes > 0 && unseen_bytes(q) >= q->max_bytes - q->bytes) return 1;
  return q->max_files > 0 && q->fs_files && unseen_files(q) >= q->max_files - q->files;
}

int ab_quota_poll(ab_quota *q, int64_t deadline_ms) {
  if (!q) return -1;
  int64_t now = now_ms();
  int64_t b0 = q->bytes, f0 = q->files;
  int grown = 0;
  if (now < q->due && !(grown = fs_grown(q, now))) return 0;
  int st = walk(q, deadline_ms);
  /* the directory grew by less than half of what the filesystem did */
  if (grown) q->fs_others = 2 * (q->bytes - b0) < q->grown_bytes && 2 * (q->files - f0) < q->grown_files;
  if (st == WALK_OK && unseen(q)) return 1;
  return st == WALK_OVER || st == WALK_BAD ? -1 : 0;
}

void ab_quota_free(ab_quota *q) {
  if (!q) return;
  if (q->root >= 0) close(q->root);
  munmap(q, sizeof *q);
}

static void say(const ab_quota *q, int fd, int phase);

int ab_quota_before(ab_quota **qp, ab_sup_args *run) {
  int fd = run->fd_err >= 0 ? run->fd_err : 2;
  if (begin(qp, run->quota_dir, run->quota_bytes, run->quota_files) != 0) {
    say(*qp, fd, BEFORE);
    ab_quota_free(*qp);
    *qp = NULL;
    return -1;
  }
  ab_quota *q = *qp;
  int64_t fs = fsize_left(q), *rl = &run->rlimit[AB_RL_FSIZE];
  if (fs >= 0 && (*rl < 0 || fs < *rl)) {
    *rl = fs;
    q->fsize_ours = 1;
  }
  return 0;
}

/* The program died of SIGXFSZ, or is a shell saying one of its commands did */
static int xfsz(const ab_sup_report *r) {
  if (!r->exited) return 0;
  if (WIFSIGNALED(r->status)) return WTERMSIG(r->status) == SIGXFSZ;
  return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 128 + SIGXFSZ;
}

void ab_quota_after(ab_quota *q, const ab_sup_args *a, ab_sup_report *r) {
  int fd = a->fd_err >= 0 ? a->fd_err : 2;
  if (r->quota) {
    say(q, fd, DURING);
  } else if (!r->cancelled) {
    int st = walk(q, 0);
    /* a refused write under our RLIMIT_FSIZE may have left nothing behind */
    if (st == WALK_OK && q->fsize_ours && xfsz(r)) st = q->status = WALK_FSIZE;
    if (st != WALK_OK) {
      r->quota = 1;
      say(q, fd, AFTER);
    }
  }
  ab_quota_free(q);
}

/* ---- deleted files the tree holds ---- */

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
  info i;
  if (get_info(dirfd, name, 0, &i) != 0) return -1;   /* follows the /proc link */
  if (!S_ISREG(i.mode) || (only_deleted && i.nlink != 0) || !same_mount(q, &i)) return 0;
  if (seen_link(q, i.dev, i.ino)) return 0;
  q->held += (int64_t)(i.blocks * 512);
  q->held_files++;
  q->bytes += (int64_t)(i.blocks * 512);
  q->files++;
  return 0;
}

static int held_proc(ab_quota *q, pid_t pid) {
  char path[64] = "/proc/";
  char num[16];
  int k = 0;
  do { num[k++] = (char)('0' + pid % 10); pid /= 10; } while (pid);
  size_t p = 6;
  while (k) path[p++] = num[--k];
  path[p] = 0;
  int pd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pd < 0) return errno == ENOENT ? 0 : -1;   /* gone meanwhile */
  struct stat st;
  /* /proc/PID belongs to the process's uid and gid: a root without
   * CAP_SYS_PTRACE looks as them (the access check compares the
   * filesystem uid and gid with all of the process's ids) */
  uint32_t gid = 0;
  if (q->euid0 && fstat(pd, &st) == 0) {
    set_fsuid(q, st.st_uid);
    gid = st.st_gid;
    syscall(SYS_setfsgid, gid);
  }
  int rc = 0;
  int fdd = openat(pd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fdd < 0) rc = errno == ENOENT ? 0 : -1;
  while (fdd >= 0 && rc == 0) {
    long n = syscall(SYS_getdents64, fdd, q->buf[0], DIRBUF);
    if (n <= 0) {
      if (n < 0) rc = -1;
      break;
    }
    for (long off = 0; off < n && rc == 0;) {
      struct dent64 *d = (struct dent64 *)(q->buf[0] + off);
      off += d->d_reclen;
      if (d->d_name[0] == '.') continue;
      if (held_file(q, fdd, d->d_name, 1) != 0 && errno != ENOENT) rc = -1;
    }
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
  set_fsuid(q, q->euid);
  if (gid) syscall(SYS_setfsgid, (uint32_t)getegid());
  return rc;
}

int ab_quota_held(ab_quota *q, const pid_t *pid, const unsigned char *mark, size_t n) {
  if (!q) return -1;
  q->held = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mark[i]) continue;
    if (held_proc(q, pid[i]) != 0) {
      q->status = bad(q, "cannot size the deleted files a process of the block holds open or mapped", errno);
      q->proc_err = 1;
      q->pathlen = 0;
      q->path[0] = 0;
      return -1;
    }
    if (over(q)) {
      q->status = WALK_OVER;
      return -1;
    }
  }
  /* the rest of the unseen growth was others' */
  q->excused_bytes = unseen_bytes(q) - q->held;
  q->excused_files = unseen_files(q) - q->held_files;
  return 0;
}

/* ---- the message: built in a fixed buffer, written at once ---- */

typedef struct { char b[2 * PATHMAX + 768]; size_t n; } line;

static void put(line *l, const char *s) {
  size_t k = slen(s);
  if (l->n + k >= sizeof l->b) k = sizeof l->b - 1 - l->n;
  memcpy(l->b + l->n, s, k);
  l->n += k;
}

static void put_int(line *l, int64_t v) {
  char t[24];
  int k = 0;
  uint64_t u = v < 0 ? 0 : (uint64_t)v;
  do { t[k++] = (char)('0' + u % 10); u /= 10; } while (u);
  char s[24];
  for (int i = 0; i < k; i++) s[i] = t[k - 1 - i];
  s[k] = 0;
  put(l, s);
}

/* "20.0 MiB (20971520 bytes)" */
static void put_bytes(line *l, int64_t v) {
  int64_t unit = v < 1048576 ? 1024 : 1048576;
  int64_t tenths = (v * 10 + unit / 2) / unit;
  put_int(l, tenths / 10);
  put(l, ".");
  put_int(l, tenths % 10);
  put(l, unit == 1024 ? " KiB (" : " MiB (");
  put_int(l, v);
  put(l, " bytes)");
}

static const char *errtext(int e) {
  switch (e) {
  case 0: return "no error";
  case EACCES: return "Permission denied";
  case EPERM: return "Operation not permitted";
  case ENOENT: return "No such file or directory";
  case ENOTDIR: return "Not a directory";
  case ELOOP: return "a symbolic link";
  case EMFILE: return "Too many open files";
  case ENFILE: return "Too many open files in system";
  case ENOMEM: return "Out of memory";
  case EIO: return "Input/output error";
  default: return "error";
  }
}

static void say(const ab_quota *q, int fd, int phase) {
  line l;
  l.n = 0;
  static const char *const when[] = {" before the block started", " while the block ran", " when the block ended"};
  static const char *const done[] = {"nothing was run", "the block was killed", "the block failed"};
  if (phase != BEFORE) put(&l, "\n");
  if (!q) {
    put(&l, "agentbox: workspace quota: no memory to measure the work dir; nothing was run\n");
    (void)!write(fd, l.b, l.n);
    return;
  }
  if (q->status == WALK_FSIZE) {
    put(&l, "agentbox: workspace quota: a file of the block reached the ");
    put_bytes(&l, fsize_left(q) - 1);
    put(&l, " left in the quota of ");
    put(&l, q->dir);
    put(&l, " (RLIMIT_FSIZE) and the program was stopped by SIGXFSZ; the block failed. Remove files from the"
            " work dir, or raise or turn off the executor's quota option\n");
  } else if (q->status == WALK_BAD) {
    put(&l, "agentbox: workspace quota: cannot measure ");
    put(&l, q->dir);
    put(&l, when[phase]);
    put(&l, ": ");
    put(&l, q->why ? q->why : "error at");
    if (q->pathlen) {
      put(&l, " '");
      put(&l, q->path);
      put(&l, "'");
    }
    if (q->err) {
      put(&l, " (");
      put(&l, errtext(q->err));
      put(&l, ")");
    }
    put(&l, "; what cannot be measured counts as over the quota, so ");
    put(&l, done[phase]);
    put(&l, !q->proc_err
              ? ". Give the directory back its owner's read and search bits (chmod u+rx) or set the executor's"
                " quota option to false\n"
              : ". Close or unmap deleted files on the work dir's filesystem, or set the executor's quota option"
                " to false\n");
  } else {
    put(&l, "agentbox: workspace quota exceeded");
    put(&l, when[phase]);
    put(&l, ": ");
    put(&l, q->dir);
    put(&l, " holds at least ");
    put_bytes(&l, q->bytes);
    if (q->held > 0) {
      put(&l, " (");
      put_bytes(&l, q->held);
      put(&l, " of it in deleted files the block held open)");
    }
    put(&l, " and ");
    put_int(&l, q->files);
    put(&l, " files, over the quota of ");
    if (q->max_bytes > 0) put_bytes(&l, q->max_bytes);
    else put(&l, "unlimited bytes");
    put(&l, " and ");
    if (q->max_files > 0) put_int(&l, q->max_files);
    else put(&l, "unlimited");
    put(&l, " files; ");
    put(&l, done[phase]);
    put(&l, ". Remove files from the work dir, or raise or turn off the executor's quota option\n");
  }
  (void)!write(fd, l.b, l.n);
}
