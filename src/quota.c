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
 * bounded whatever the tree (WALK_DEPTH levels, a fixed hard-link table).
 *
 * This file is the quota's schedule (measured before, polled during,
 * measured after) and its message; the walk itself is quota_walk.c, the
 * deleted files the tree holds are quota_held.c. */
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
  size_t n = ab_slen(dir);
  if (n >= PATHMAX) n = PATHMAX - 1;
  memcpy(q->dir, dir, n);
  q->dir[n] = 0;
  int fl = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  q->root = open(dir, fl);
  if (q->root < 0 && errno == EACCES && q->euid0) {
    struct stat st;
    if (lstat(dir, &st) == 0) {
      ab_qw_set_fsuid(q, st.st_uid);
      q->root = open(dir, fl);
      ab_qw_set_fsuid(q, q->euid);
    }
  }
  if (q->root < 0) q->open_err = errno;
  int st = ab_qw_walk(q, 0);
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
  if (!q->fs_ok || (q->fs_others && now < q->walked + q->walk_ms * FS_FACTOR) || ab_qw_fs_use(q, &b, &f) != 0) return 0;
  int64_t db = b > q->fs_bytes ? (int64_t)(b - q->fs_bytes) : 0, df = f > q->fs_files ? (int64_t)(f - q->fs_files) : 0;
  if ((q->max_bytes > 0 && db >= q->max_bytes - q->bytes) || (q->max_files > 0 && df >= q->max_files - q->files)) {
    q->grown_bytes = db;
    q->grown_files = df;
    return 1;
  }
  return 0;
}

/* Could what the walks do not see put the directory over? Then the tree's
 * deleted files must be looked at (ab_quota_held). */
static int unseen(const ab_quota *q) {
  if (!q->fs_ok) return 0;
  if (q->max_bytes > 0 && ab_q_unseen_bytes(q) >= q->max_bytes - q->bytes) return 1;
  return q->max_files > 0 && q->fs_files && ab_q_unseen_files(q) >= q->max_files - q->files;
}

int ab_quota_poll(ab_quota *q, int64_t deadline_ms) {
  if (!q) return -1;
  int64_t now = ab_mono_ms();
  int64_t b0 = q->bytes, f0 = q->files;
  int grown = 0;
  if (now < q->due && !(grown = fs_grown(q, now))) return 0;
  int st = ab_qw_walk(q, deadline_ms);
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
  if (begin(qp, run->quota_dir, run->o.quota_bytes, run->o.quota_files) != 0) {
    say(*qp, fd, BEFORE);
    ab_quota_free(*qp);
    *qp = NULL;
    return -1;
  }
  ab_quota *q = *qp;
  q->held_by_dev = run->o.sandbox != 0;
  int64_t fs = fsize_left(q), *rl = &run->o.rlimit[AB_RL_FSIZE];
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
    int st = ab_qw_walk(q, 0);
    /* a refused write under our RLIMIT_FSIZE may have left nothing behind */
    if (st == WALK_OK && q->fsize_ours && xfsz(r)) st = q->status = WALK_FSIZE;
    if (st != WALK_OK) {
      r->quota = 1;
      say(q, fd, AFTER);
    }
  }
  ab_quota_free(q);
}

/* ---- the message: built in a fixed buffer, written at once ---- */

typedef struct { char b[2 * PATHMAX + 768]; size_t n; } line;

static void put(line *l, const char *s) {
  size_t k = ab_slen(s);
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
