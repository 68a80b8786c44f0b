/* The sandbox's file system view (sandbox.h), built by init in its new
 * mount namespace: an empty tmpfs as the new root, in which only what the
 * caller lists is bound (read-only: the system directories and the
 * read_only paths, which the executor passes; writable: work_dir and the
 * read_write paths), a private /tmp, a minimal /dev and a fresh /proc;
 * then pivot_root into it and the old root detached. Nothing else of the
 * host exists inside: not $HOME, /root, /home, /run, /var, /mnt, /sys
 * (what the caller binds of them aside). An allowlist, not a read-only
 * copy of the host's root with holes punched: a path the host adds later
 * is not in the view. A root caller's writable paths come as detached
 * mounts the supervisor cloned and idmapped (sandbox.h) and are moved in
 * instead of bound. Only system calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sandbox.h"
#include "sysutil.h"

#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#define __NR_move_mount 429
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
/* <linux/mount.h> clashes with <sys/mount.h> on older glibc */
#define ATTR_RDONLY 0x1
#define ATTR_NOSUID 0x2
#define ATTR_NODEV 0x4
#define ATTR_NOEXEC 0x8
#define ATTR_IDMAP 0x00100000
#define TREE_CLONE 1               /* OPEN_TREE_CLONE */
#define MOVE_F_EMPTY_PATH 0x4      /* MOVE_MOUNT_F_EMPTY_PATH */
#define NO_SYMLINKS 0x04           /* openat2's RESOLVE_NO_SYMLINKS */
struct ab_mount_attr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};
struct ab_open_how {
  uint64_t flags, mode, resolve;
};

/* In the new mount namespace only: the new root, a tmpfs on the host's
 * /tmp, hides it from nobody but us (the sources are opened before). */
#define ROOT "/tmp"

static int set_attr(const char *path, uint64_t attrs, unsigned flags) {
  struct ab_mount_attr at = {attrs, 0, 0, 0};
  return syscall(__NR_mount_setattr, AT_FDCWD, path, flags, &at, sizeof at) == 0 ? 0 : -errno;
}

/* ROOT + p into buf; -ENAMETOOLONG when it does not fit. */
static int inside(char *buf, size_t cap, const char *p) {
  size_t a = sizeof ROOT - 1, b = ab_slen(p);
  if (a + b + 1 > cap) return -ENAMETOOLONG;
  memcpy(buf, ROOT, a);
  memcpy(buf + a, p, b + 1);
  return 0;
}

/* mkdir -p of path (modified in place while walking, then restored) */
static int mkdir_p(char *path) {
  for (char *s = path + 1;; s++) {
    if (*s != '/' && *s) continue;
    char c = *s;
    *s = 0;
    int r = mkdir(path, 0755);
    *s = c;
    if (r != 0 && errno != EEXIST) return -errno;
    if (!c) return 0;
  }
}

/* The mount point for a bind of src: a directory or an empty file, made
 * where a tmpfs of ours hides the host's one. */
static int mount_point(int fd, const char *src, char *dst) {
  struct stat ss, ds;
  if ((fd >= 0 ? fstat(fd, &ss) : stat(src, &ss)) != 0) return -errno;
  if (stat(dst, &ds) == 0) return 0;
  if (S_ISDIR(ss.st_mode)) return mkdir_p(dst);
  char *slash = strrchr(dst, '/');
  *slash = 0;
  int e = mkdir_p(dst);
  *slash = '/';
  if (e) return e;
  int nf = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (nf < 0) return -errno;
  close(nf);
  return 0;
}

/* "/proc/self/fd/<fd>" */
static void fd_path(char *buf, int n) {
  memcpy(buf, "/proc/self/fd/", 14);
  char num[12];
  int k = 0;
  do { num[k++] = (char)('0' + n % 10); n /= 10; } while (n);
  size_t at = 14;
  while (k) buf[at++] = num[--k];
  buf[at] = 0;
}

/* src (a host path, opened as fd before anything covered it: ROOT may be
 * its parent) bound at the same path inside, writable or not; nosuid and
 * nodev either way. A tree (a root caller's writable path) is a detached
 * mount the supervisor made and idmapped: moved in as it is. */
static int bind(int sfd, const char *src, int rw, int tree) {
  char dst[4096], from[32];
  int e = inside(dst, sizeof dst, src);
  if (e) return e;
  struct stat st;
  if (fstat(sfd, &st) != 0) return -errno;
  if (S_ISLNK(st.st_mode)) {
    /* a system path that is a link on the host (/bin -> usr/bin on a
     * merged /usr): the same link inside, its target bound on its own */
    char to[4096];
    ssize_t n = readlinkat(sfd, "", to, sizeof to - 1);
    if (n < 0) return -errno;
    to[n] = 0;
    char *slash = strrchr(dst, '/');
    *slash = 0;
    e = slash == dst ? 0 : mkdir_p(dst);
    *slash = '/';
    if (e) return e;
    return symlink(to, dst) == 0 || errno == EEXIST ? 0 : -errno;
  }
  e = mount_point(sfd, src, dst);
  if (e) return e;
  if (tree) return syscall(__NR_move_mount, sfd, "", AT_FDCWD, dst, MOVE_F_EMPTY_PATH) == 0 ? 0 : -errno;
  fd_path(from, sfd);
  if (mount(from, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return -errno;
  return set_attr(dst, ATTR_NOSUID | ATTR_NODEV | (rw ? 0 : ATTR_RDONLY), AT_RECURSIVE);
}

static int tmpfs(const char *p, unsigned long flags, const char *opts) {
  char dst[256];
  int e = inside(dst, sizeof dst, p);
  if (e) return e;
  return mount("tmpfs", dst, "tmpfs", flags, opts) == 0 ? 0 : -errno;
}

/* "size=<n>,mode=1777" */
static void size_opts(char *buf, int64_t bytes) {
  char num[24];
  int k = 0;
  uint64_t v = bytes > 0 ? (uint64_t)bytes : 64u << 20;
  do { num[k++] = (char)('0' + v % 10); v /= 10; } while (v);
  size_t at = 0;
  memcpy(buf, "size=", 5);
  at = 5;
  while (k) buf[at++] = num[--k];
  memcpy(buf + at, ",mode=1777", 11);
}

/* A minimal /dev: the harmless character devices bound from the host's,
 * the fd links, and /dev/shm a link to the private /tmp (POSIX shared
 * memory and semaphores live there, within /tmp's size: one tmpfs less to
 * mount and tear down per block); then read-only. */
static int dev(const char **step) {
  static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  static const char *const links[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                                         {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                                         {"shm", "/tmp"}};
  char src[32], dst[64];
  *step = "mounting the sandbox's /dev";
  int e = tmpfs("/dev", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755");
  if (e) return e;
  *step = "binding a device into the sandbox's /dev";
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    memcpy(src, "/dev/", 5);
    memcpy(src + 5, nodes[i], ab_slen(nodes[i]) + 1);
    if (access(src, F_OK) != 0) continue;
    if ((e = inside(dst, sizeof dst, src)) != 0 || (e = mount_point(-1, src, dst)) != 0) return e;
    if (mount(src, dst, NULL, MS_BIND, NULL) != 0) return -errno;
  }
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    memcpy(src, "/dev/", 5);
    memcpy(src + 5, links[i][0], ab_slen(links[i][0]) + 1);
    if ((e = inside(dst, sizeof dst, src)) != 0) return e;
    if (symlink(links[i][1], dst) != 0) return -errno;
  }
  *step = "making the sandbox's /dev read-only";
  if ((e = inside(dst, sizeof dst, "/dev")) != 0) return e;
  return set_attr(dst, ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC, 0);
}

/* A fresh /proc: the new PID namespace's processes only. Its kernel knobs
 * read-only, as in a container. */
static int proc(const char **step) {
  static const char *const ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"};
  char dst[64];
  *step = "mounting a /proc of the new PID namespace";
  int e = inside(dst, sizeof dst, "/proc");
  if (e) return e;
  if (mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return -errno;
  *step = "making /proc/sys read-only";
  for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
    if ((e = inside(dst, sizeof dst, ro[i])) != 0) return e;
    if (access(dst, F_OK) != 0) continue;
    if (mount(dst, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return -errno;
    if ((e = set_attr(dst, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC, AT_RECURSIVE)) != 0) return e;
  }
  return 0;
}

/* The paths to bind in the order of their length: a parent before what is
 * under it, so the deeper setting wins (a read_only path under work_dir
 * stays read-only; a work_dir under a read-only system directory is
 * writable). */
int ab_sb_paths_list(const ab_sup_args *a, ab_sb_paths *p) {
  int n = 0;
  p->n = 0;
  if (a->o.sb_nrw + a->o.sb_nro + 1 > AB_SB_BINDS) return -E2BIG;
  for (int i = 0; i < a->o.sb_nro; i++) { p->src[n] = a->sb_ro[i]; p->rw[n++] = 0; }
  for (int i = 0; i < a->o.sb_nrw; i++) { p->src[n] = a->sb_rw[i]; p->rw[n++] = 1; }
  if (a->cwd) { p->src[n] = a->cwd; p->rw[n++] = 1; }
  for (int i = 1; i < n; i++)   /* insertion sort, stable: equal lengths keep ro before rw */
    for (int j = i; j > 0 && ab_slen(p->src[j - 1]) > ab_slen(p->src[j]); j--) {
      const char *t = p->src[j]; p->src[j] = p->src[j - 1]; p->src[j - 1] = t;
      unsigned char r = p->rw[j]; p->rw[j] = p->rw[j - 1]; p->rw[j - 1] = r;
    }
  for (int i = 0; i < n; i++) {
    p->fd[i] = -1;
    p->tree[i] = 0;
  }
  p->n = n;
  return 0;
}

/* An O_PATH of src, not following its last component (a link is recreated,
 * see bind). A writable one follows no link at all: they were resolved
 * when the executor was made, so a link in their path now is one the code
 * planted between blocks (a directory of work_dir swapped for a link to
 * /etc, under a read_write path nested in it). */
static int open_src(const char *src, int rw) {
  if (rw) {
    struct ab_open_how how = {O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, NO_SYMLINKS};
    long fd = syscall(__NR_openat2, AT_FDCWD, src, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return fd >= 0 ? (int)fd : -errno;
  }
  int fd = open(src, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int ab_sb_paths_open(ab_sb_paths *p) {
  for (int i = 0; i < p->n; i++)
    if (p->fd[i] < 0 && (p->fd[i] = open_src(p->src[i], p->rw[i])) < 0) {
      int e = p->fd[i];
      p->fd[i] = -1;
      return e;
    }
  return 0;
}

void ab_sb_paths_close(ab_sb_paths *p) {
  for (int i = 0; i < p->n; i++)
    if (p->fd[i] >= 0) {
      close(p->fd[i]);
      p->fd[i] = -1;
    }
}

int ab_sb_trees_clone(ab_sb_paths *p, int recursive, const char **bad) {
  for (int i = 0; i < p->n; i++) {
    if (!p->rw[i]) continue;
    *bad = p->src[i];
    int fd = open_src(p->src[i], 1);
    if (fd < 0) return fd;
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISLNK(st.st_mode)) {   /* a link stays one (bind) */
      p->fd[i] = fd;
      continue;
    }
    long t = syscall(__NR_open_tree, fd, "", TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0));
    int e = errno;
    close(fd);
    if (t < 0) return -e;
    p->fd[i] = (int)t;
    p->tree[i] = 1;
  }
  return 0;
}

int ab_sb_trees_idmap(ab_sb_paths *p, int userns, int recursive, const char **bad) {
  struct ab_mount_attr at = {ATTR_IDMAP | ATTR_NOSUID | ATTR_NODEV, 0, 0, (uint64_t)userns};
  for (int i = 0; i < p->n; i++) {
    if (!p->tree[i]) continue;
    *bad = p->src[i];
    if (syscall(__NR_mount_setattr, p->fd[i], "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &at, sizeof at) != 0)
      return -errno;
  }
  return 0;
}

/* An empty directory inside (a mount point, or a name code expects). */
static int empty_dir(const char *p) {
  char dst[256];
  int e = inside(dst, sizeof dst, p);
  return e ? e : mkdir_p(dst);
}

int ab_sandbox_fs(const ab_sup_args *a, ab_sb_paths *p, const char **step) {
  char size[64];
  int e;
  size_opts(size, a->o.tmp_bytes);
  *step = "making the mount namespace private";
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -errno;
  *step = "mounting a tmpfs on " ROOT " as the new root";
  if (mount("tmpfs", ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755") != 0) return -errno;
  *step = "making the new root's directories";
  static const char *const dirs[] = {"/tmp", "/proc", "/dev", "/run", "/var/tmp"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if ((e = empty_dir(dirs[i])) != 0) return e;
  *step = "mounting the private /tmp";
  if ((e = tmpfs("/tmp", MS_NOSUID | MS_NODEV, size)) != 0) return e;
  if ((e = dev(step)) != 0) return e;
  for (int i = 0; i < p->n; i++) {
    *step = p->tree[i]  ? "moving the idmapped work_dir or read_write path in (move_mount)"
            : p->rw[i] ? "binding work_dir or a read_write path"
                       : "binding a system directory or a read_only path";
    if ((e = bind(p->fd[i], p->src[i], p->rw[i], p->tree[i])) != 0) return e;
    close(p->fd[i]);
    p->fd[i] = -1;
  }
  /* while the host's /proc is still in this namespace: the kernel mounts a
   * proc only where one is already fully visible */
  if ((e = proc(step)) != 0) return e;
  /* read-only once every mount point is made in it: /run and /var/tmp stay
   * empty (the host's services listen in /run: a unix socket takes a
   * connect where its file is writable, whatever the mount) */
  *step = "making the new root read-only";
  if ((e = set_attr(ROOT, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV, 0)) != 0) return e;
  *step = "pivot_root into the sandbox's root";
  if (chdir(ROOT) != 0) return -errno;
  if (syscall(SYS_pivot_root, ".", ".") != 0) return -errno;
  if (umount2(".", MNT_DETACH) != 0) return -errno;
  if (chdir("/") != 0) return -errno;
  return 0;
}
