/* Inside the workspace accessor (workspace.c): how a path is resolved
 * (wspath.c: the walk from "/" to work_dir, and every rel beneath its fd
 * with no link at any component) and what the operations share. */
#ifndef AGENTBOX_WSPATH_H
#define AGENTBOX_WSPATH_H

#include <limits.h>
#include <sys/types.h>

#define DIRFLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

typedef struct {
  int fd;                       /* work_dir; -1 once closed */
  int parent;                   /* its parent directory (for destroy) */
  int created;                  /* the last component was made by core.workspace */
  int owned;                    /* chown() was called: new entries get uid:gid */
  int walk;                     /* never openat2 (kernels without it; specs of the walk) */
  uid_t uid;
  gid_t gid;
  dev_t dev;
  ino_t ino;
  char name[NAME_MAX + 1];      /* work_dir's name in parent */
} ws_ud;

/* An error for Lua: set by the operations, pushed after every fd is closed. */
typedef struct {
  char msg[PATH_MAX + 256];
  int link;
  int err;
} ws_err;

/* Sets e (fmt has one %s: what; err, when not 0, is appended as
 * ": <strerror>"); returns -1. */
int ws_fail(ws_err *e, int link, int err, const char *fmt, const char *what);
/* openat2 beneath dirfd with no link at any component. */
int ws_openat2_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* err from openat2 means: the kernel has none here (use the walk) */
int ws_no_openat2(int err);
/* Was name in dirfd a link when opening it failed with err? */
int ws_is_link(int dirfd, const char *name, int err);
/* The directory dir (a rel path, or NULL for work_dir itself) as an fd,
 * beneath work_dir, every component a real directory; with create,
 * missing ones are made (owned by uid:gid when owned). -1 with e set. */
int ws_open_dir(const ws_ud *w, char *dir, int create, ws_err *e);
/* Split rel (in buf) into its directory and leaf, and open the directory. */
int ws_open_parent(const ws_ud *w, char *buf, int create, const char **leaf, ws_err *e);
/* Lexically absolute: the cwd joined with path, "." dropped and ".." taken
 * back. 0 or an errno. */
int ws_absolute(const char *path, char *out);
int ws_open_root(ws_ud *w, char *abs, int create, int exclusive, mode_t mode, ws_err *e);

#endif
