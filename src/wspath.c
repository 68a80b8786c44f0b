/* Path resolution of the workspace accessor (see workspace.c): work_dir
 * is opened once, as a directory fd, by a walk from "/" that refuses a link
 * at every component; after that every rel resolves beneath that fd with
 * no link at any component: openat2 with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS where the kernel has it, else one
 * openat(O_NOFOLLOW | O_DIRECTORY) per component. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "wspath.h"

#define RESOLVE_FLAGS (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* fmt has one %s (what); err, when not 0, is appended as ": <strerror>" */
int ws_fail(ws_err *e, int link, int err, const char *fmt, const char *what) {
  e->link = link;
  e->err = err;
  int n = snprintf(e->msg, sizeof e->msg, fmt, what);
  if (err && n >= 0 && (size_t)n < sizeof e->msg)
    snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(err));
  return -1;
}

int ws_openat2_beneath(int dirfd, const char *path, int flags, mode_t mode) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_FLAGS;
  for (int i = 0; i < 8; i++) {  /* EAGAIN: a concurrent rename; retry a few times */
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) return (int)fd;
  }
  return -1;
}

int ws_no_openat2(int err) { return err == ENOSYS || err == E2BIG || err == EPERM || err == EAGAIN; }

/* Was name in dirfd a link when opening it failed with err? It is one now,
 * or it was one a moment ago (refused as a link) and is a directory again. */
int ws_is_link(int dirfd, const char *name, int err) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
  return S_ISLNK(st.st_mode) || ((err == ELOOP || err == ENOTDIR) && S_ISDIR(st.st_mode));
}

/* The directory dir (a rel path, or NULL for work_dir itself) as an fd,
 * beneath root, every component a real directory; with create, missing
 * ones are made (owned by uid:gid when owned). */
int ws_open_dir(const ws_ud *w, char *dir, int create, ws_err *e) {
  if (!dir) {
    int fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ws_fail(e, 0, errno, "cannot use %s", "work_dir");
    return fd;
  }
  int fd = w->walk ? -1 : ws_openat2_beneath(w->fd, dir, O_RDONLY | O_DIRECTORY, 0);
  if (fd >= 0) return fd;
  if (!w->walk && !ws_no_openat2(errno) && errno != ENOENT && errno != ELOOP && errno != ENOTDIR && errno != EXDEV)
    return ws_fail(e, 0, errno, "cannot open %s", dir);
  /* the walk: no openat2, a missing component to create, or an error to name */
  int cur = fcntl(w->fd, F_DUPFD_CLOEXEC, 0);
  if (cur < 0) return ws_fail(e, 0, errno, "cannot use %s", "work_dir");
  for (char *p = dir;;) {
    char *slash = strchr(p, '/');
    if (slash) *slash = 0;
    int next = openat(cur, p, DIRFLAGS);
    int made = 0;
    if (next < 0 && errno == ENOENT && create) {
      if (mkdirat(cur, p, 0755) == 0) made = 1;
      else if (errno != EEXIST) {
        int err = errno;
        close(cur);
        return ws_fail(e, 0, err, "cannot create directory %s", dir);
      }
      next = openat(cur, p, DIRFLAGS);
    }
    if (next < 0) {
      int err = errno, link = ws_is_link(cur, p, err);
      close(cur);
      if (link) return ws_fail(e, 1, 0, "%s is a symbolic link: agentbox never follows a link in the workspace", dir);
      return ws_fail(e, 0, err, "cannot open directory %s", dir);
    }
    if (made && w->owned && fchown(next, w->uid, w->gid) != 0) {
      int err = errno;
      close(cur);
      close(next);
      return ws_fail(e, 0, err, "cannot chown directory %s", dir);
    }
    close(cur);
    cur = next;
    if (!slash) return cur;
    *slash = '/';
    p = slash + 1;
  }
}

/* Split rel (in buf) into its directory (NULL for work_dir) and leaf, and
 * open the directory. */
int ws_open_parent(const ws_ud *w, char *buf, int create, const char **leaf, ws_err *e) {
  char *slash = strrchr(buf, '/');
  if (!slash) {
    *leaf = buf;
    return ws_open_dir(w, NULL, 0, e);
  }
  *slash = 0;
  *leaf = slash + 1;
  int fd = ws_open_dir(w, buf, create, e);
  *slash = '/';
  return fd;
}

/* Lexically absolute: the cwd (the kernel's, link-free) joined with path,
 * "." dropped and ".." taken back. Returns 0 or an errno. */
int ws_absolute(const char *path, char *out) {
  char tmp[PATH_MAX];
  if (path[0] == '/') {
    if (strlen(path) >= PATH_MAX) return ENAMETOOLONG;
    strcpy(tmp, path);
  } else {
    if (!getcwd(tmp, sizeof tmp)) return errno;
    size_t l = strlen(tmp);
    if (l + 1 + strlen(path) >= PATH_MAX) return ENAMETOOLONG;
    tmp[l] = '/';
    strcpy(tmp + l + 1, path);
  }
  size_t o = 0;
  for (char *p = tmp; *p;) {
    char *s = strchr(p, '/');
    size_t k = s ? (size_t)(s - p) : strlen(p);
    if (k == 2 && p[0] == '.' && p[1] == '.') {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else if (k > 0 && !(k == 1 && p[0] == '.')) {
      out[o++] = '/';
      memcpy(out + o, p, k);
      o += k;
    }
    p += k + (s != NULL);
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  return 0;
}

/* Opens abs (absolute, lexically clean) from "/" one component at a time
 * with O_NOFOLLOW|O_DIRECTORY into w (fd, parent, name, created, dev,
 * ino): a link anywhere is refused, naming the component. create: missing
 * directories are made (the last with mode); exclusive: the last must not
 * exist yet. 0, or -1 with e set. */
int ws_open_root(ws_ud *w, char *abs, int create, int exclusive, mode_t mode, ws_err *e) {
  int err;
  int cur = open("/", DIRFLAGS), parent = -1, made = 0;
  if (cur < 0) {
    ws_fail(e, 0, errno, "cannot open %s", "/");
    return -1;
  }
  char *p = abs + 1;
  while (*p) {
    char *s = strchr(p, '/');
    if (s) *s = 0;
    int next = openat(cur, p, DIRFLAGS);
    made = 0;
    if (next < 0 && errno == ENOENT && create) {
      if (mkdirat(cur, p, s ? 0755 : mode) == 0) made = 1;
      else if (errno != EEXIST || (!s && exclusive)) next = -2;
      if (next != -2) next = openat(cur, p, DIRFLAGS);
    } else if (next >= 0 && !s && exclusive) {
      close(next);
      errno = EEXIST;
      next = -1;
    }
    if (next < 0) {
      err = errno;
      int link = ws_is_link(cur, p, err);
      close(cur);
      if (parent >= 0) close(parent);
      if (link)
        ws_fail(e, 1, 0, "work_dir: %s is a symbolic link; agentbox never follows a link in work_dir "
                         "(give the real path)", abs);
      else ws_fail(e, 0, err, "work_dir %s", abs);
      if (!link && err == ENOENT && !create) strncat(e->msg, " (no such directory)", sizeof e->msg - strlen(e->msg) - 1);
      return -1;
    }
    if (s) *s = '/';
    if (parent >= 0) close(parent);
    parent = cur;
    cur = next;
    if (!s) {
      size_t k = strnlen(p, NAME_MAX);   /* openat refused longer names */
      memcpy(w->name, p, k);
      w->name[k] = 0;
      break;
    }
    p = s + 1;
  }
  struct stat st;
  if (fstat(cur, &st) != 0) {
    err = errno;
    close(cur);
    if (parent >= 0) close(parent);
    ws_fail(e, 0, err, "cannot stat %s", abs);
    return -1;
  }
  w->fd = cur;
  w->parent = parent;
  w->created = made;
  w->dev = st.st_dev;
  w->ino = st.st_ino;
  return 0;
}
