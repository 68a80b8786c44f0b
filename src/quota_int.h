/* Inside the workspace quota: the walker (quota_walk.c), the poller and
 * its messages (quota.c) and the look at deleted files the tree holds
 * (quota_held.c) share the one mapping of a run, struct ab_quota. */
#ifndef AGENTBOX_QUOTA_INT_H
#define AGENTBOX_QUOTA_INT_H

#include <stdint.h>
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
  int held_by_dev;            /* held files by st_dev: the block sees work_dir through a
                                 mount of its own (the sandbox's bind, sandbox.h) */
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

/* What we need of an inode; statx where the kernel has it (mount id), else
 * fstatat. Walk callers pass AT_SYMLINK_NOFOLLOW. */
typedef struct { uint32_t mode, uid, nlink, has_mnt; uint64_t ino, dev, blocks, mnt; } ab_qinfo;

void ab_qw_set_fsuid(ab_quota *q, uint32_t uid);
int ab_qw_info(int dirfd, const char *name, int flags, ab_qinfo *o);
int ab_qw_same_mount(const ab_quota *q, const ab_qinfo *i);
/* 1 when (dev, ino) was already counted by this walk. */
int ab_qw_seen_link(ab_quota *q, uint64_t dev, uint64_t ino);
/* Records why a walk failed: returns WALK_BAD. */
int ab_qw_bad(ab_quota *q, const char *why, int err);
int ab_qw_over(const ab_quota *q);
/* The filesystem's blocks and inodes in use. */
int ab_qw_fs_use(const ab_quota *q, uint64_t *bytes, uint64_t *files);
/* One walk of the whole directory (cut at deadline, 0 = none); leaves the
 * counts and the status in q and schedules the next poll. */
int ab_qw_walk(ab_quota *q, int64_t deadline);

/* Growth of the filesystem since the block started that the directory's
 * walks do not explain (and no earlier look excused), as of the last walk. */
static inline int64_t ab_q_unseen_bytes(const ab_quota *q) {
  return (int64_t)(q->fs_bytes - q->fs0_bytes) - (q->bytes - q->held - q->dir0_bytes) - q->excused_bytes;
}

static inline int64_t ab_q_unseen_files(const ab_quota *q) {
  return (int64_t)(q->fs_files - q->fs0_files) - (q->files - q->held_files - q->dir0_files) - q->excused_files;
}

#endif
