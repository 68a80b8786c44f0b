/* The workspace accessor: the only way an executor touches work_dir on the
 * host. Sandboxed code owns work_dir's contents and may swap any directory
 * in it for a link at any moment, while the host (often root) writes code
 * files there. So work_dir is opened once, as a directory fd, by a walk from
 * "/" that refuses a link at every component; after that every operation
 * resolves beneath that fd with no link at any component: openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it, else one
 * openat(O_NOFOLLOW | O_DIRECTORY) per component. Nothing is ever resolved
 * by a full path string, so no check can be raced.
 *
 * Lua API (errors: nil, message, "link" when a link was refused, else "io"):
 *   core.workspace(path[, { create =, exclusive =, mode =, resolve = "openat2"|"walk" }]) -> ws
 *   ws:path() ws:created() ws:write(rel, data[, mode]) ws:mkdir(rel) ws:read(rel[, max])
 *   ws:stat([rel]) ws:list([rel]) ws:remove(rel) ws:link(rel, new_rel) ws:chown(uid, gid)
 *   ws:destroy() ws:close()
 * rel is a relative path of plain names: no "", ".", ".." or leading "/". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core.h"
#include "wspath.h"

#define WS_MT "agentbox.workspace"
#define TREE_DEPTH 32           /* open fds while emptying a tree; deeper parts are moved up */

/* nil, message, code (doc/errors.md): "link" for a refused link (the
 * executors' "Filename is not in the workspace"), else "io" */
static int push_err(lua_State *L, const ws_err *e) {
  luaL_pushfail(L);
  lua_pushstring(L, e->msg);
  if (e->link) lua_pushliteral(L, "link");
  else lua_pushliteral(L, "io");
  return 3;
}

static ws_ud *check_ws(lua_State *L) {
  ws_ud *w = luaL_checkudata(L, 1, WS_MT);
  if (w->fd < 0) luaL_error(L, "attempt to use a closed workspace");
  return w;
}

/* rel: plain names joined by "/" (code.lua has already normalised it) */
static const char *check_rel(lua_State *L, int idx, char *buf) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (n == 0 || n >= PATH_MAX || strlen(s) != n || s[0] == '/')
    luaL_argerror(L, idx, "a relative path of plain names");
  memcpy(buf, s, n + 1);
  for (const char *p = buf; *p;) {
    const char *e = strchr(p, '/');
    size_t k = e ? (size_t)(e - p) : strlen(p);
    if (k == 0 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.') || k > NAME_MAX)
      luaL_argerror(L, idx, "a relative path of plain names (no empty, '.' or '..' component)");
    p += k + (e != NULL);
    if (e && !*p) luaL_argerror(L, idx, "a relative path of plain names (no trailing '/')");
  }
  return s;
}

static void push_stat(lua_State *L, const struct stat *st) {
  lua_createtable(L, 0, 7);
  lua_pushstring(L, S_ISREG(st->st_mode) ? "file" : S_ISDIR(st->st_mode) ? "dir"
                    : S_ISLNK(st->st_mode) ? "link" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  /* what tells a changed file from an unchanged one (output_files.lua) */
  lua_pushinteger(L, (lua_Integer)st->st_mtim.tv_sec * 1000000000 + (lua_Integer)st->st_mtim.tv_nsec);
  lua_setfield(L, -2, "mtime_ns");
  lua_pushinteger(L, (lua_Integer)st->st_ino);
  lua_setfield(L, -2, "ino");
}

/* Does leaf (in dirfd) already hold exactly data, with the permission bits
 * mode? Never opens anything but a regular file, and that without blocking. */
static int same_file(int dirfd, const char *leaf, const char *data, size_t n, mode_t mode) {
  struct stat st;
  if (fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != n ||
      (st.st_mode & 07777) != mode)
    return 0;
  int fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  int same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == n;
  char buf[8192];
  size_t off = 0;
  while (same && off < n) {
    ssize_t k = read(fd, buf, sizeof buf);
    if (k <= 0 || (size_t)k > n - off || memcmp(buf, data + off, (size_t)k) != 0) same = 0;
    else off += (size_t)k;
  }
  close(fd);
  return same;
}

static int write_all(int fd, const char *data, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t k = write(fd, data + off, n - off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    off += (size_t)k;
  }
  return 0;
}

/* ws:write(rel, data[, mode]) -> true[, "unchanged"] | nil, msg[, "link"]
 * Parents are made as needed. An unchanged file is left alone; anything
 * else at rel is unlinked and the file created anew (O_EXCL), so it is never
 * written through a link, onto a FIFO or into an inode someone else holds.
 * mode: the permission bits (0644 by default; no setuid, setgid or sticky). */
static int ws_write(lua_State *L) {
  ws_ud *w = check_ws(L);
  char buf[PATH_MAX];
  const char *rel = check_rel(L, 2, buf);
  size_t n;
  const char *data = luaL_checklstring(L, 3, &n);
  lua_Integer m = luaL_optinteger(L, 4, 0644);
  luaL_argcheck(L, m >= 0 && m <= 0777, 4, "permission bits (0 to 0777)");
  mode_t mode = (mode_t)m;
  ws_err e;
  const char *leaf;
  int dirfd = ws_open_parent(w, buf, 1, &leaf, &e);
  if (dirfd < 0) return push_err(L, &e);
  if (same_file(dirfd, leaf, data, n, mode)) {
    close(dirfd);
    lua_pushboolean(L, 1);
    lua_pushliteral(L, "unchanged");
    return 2;
  }
  int fd = -1;
  for (int i = 0; i < 8 && fd < 0; i++) {  /* EEXIST: something reappeared between unlink and create */
    if (unlinkat(dirfd, leaf, 0) != 0 && errno != ENOENT) {
      int err = errno;
      close(dirfd);
      ws_fail(&e, 0, err == EISDIR || err == EPERM ? EISDIR : err, "cannot replace %s", rel);
      return push_err(L, &e);
    }
    fd = openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  int err = errno;
  close(dirfd);
  if (fd < 0) {
    ws_fail(&e, 0, err, "cannot write %s", rel);
    return push_err(L, &e);
  }
  /* fchmod: the umask applied to openat's mode */
  int bad = write_all(fd, data, n) != 0 || fchmod(fd, mode) != 0 || (w->owned && fchown(fd, w->uid, w->gid) != 0);
  err = errno;
  if (close(fd) != 0 && !bad) {
    bad = 1;
    err = errno;
  }
  if (bad) {
    ws_fail(&e, 0, err, "cannot write %s", rel);
    return push_err(L, &e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:mkdir(rel) -> true | nil, msg[, "link"] (with parents; an existing directory is fine) */
static int ws_mkdir(lua_State *L) {
  ws_ud *w = check_ws(L);
  char buf[PATH_MAX];
  check_rel(L, 2, buf);
  ws_err e;
  int fd = ws_open_dir(w, buf, 1, &e);
  if (fd < 0) return push_err(L, &e);
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:read(rel[, max]) -> data | nil, msg[, "link"] (a regular file of at most max bytes, 16 MiB by default) */
static int ws_read(lua_State *L) {
  ws_ud *w = check_ws(L);
  char buf[PATH_MAX];
  const char *rel = check_rel(L, 2, buf);
  lua_Integer max = luaL_optinteger(L, 3, 16 << 20);
  luaL_argcheck(L, max >= 0, 3, "a byte count");
  ws_err e;
  const char *leaf;
  int dirfd = ws_open_parent(w, buf, 0, &leaf, &e);
  if (dirfd < 0) return push_err(L, &e);
  int fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  int err = errno, link = fd < 0 && ws_is_link(dirfd, leaf, err);
  close(dirfd);
  if (fd < 0) {
    if (link) ws_fail(&e, 1, 0, "%s is a symbolic link: agentbox never follows a link in the workspace", rel);
    else ws_fail(&e, 0, err, "cannot read %s", rel);
    return push_err(L, &e);
  }
  struct stat st;
  int bad = 0;
  if (fstat(fd, &st) != 0) bad = errno;
  else if (!S_ISREG(st.st_mode)) bad = EINVAL;
  else if (st.st_size > max) bad = EFBIG;
  if (bad) {
    close(fd);
    ws_fail(&e, 0, bad, "cannot read %s", rel);
    return push_err(L, &e);
  }
  /* one byte more than the size: a file that grows meanwhile is an error */
  size_t cap = (size_t)st.st_size + 1, len = 0;
  char *data = malloc(cap);
  ssize_t k = 0;
  while (data && len < cap && (k = read(fd, data + len, cap - len)) > 0) len += (size_t)k;
  err = errno;
  close(fd);
  if (!data || k < 0 || len > (size_t)st.st_size) {
    if (data && k >= 0) ws_fail(&e, 0, 0, "cannot read %s: it changed while being read", rel);
    else ws_fail(&e, 0, !data ? ENOMEM : err, "cannot read %s", rel);
    free(data);
    return push_err(L, &e);
  }
  lua_pushlstring(L, data, len);
  free(data);
  return 1;
}

/* ws:stat([rel]) -> { type =, uid =, gid =, mode =, size = } | nil, msg (a link is reported, not followed) */
static int ws_stat(lua_State *L) {
  ws_ud *w = check_ws(L);
  struct stat st;
  ws_err e;
  if (lua_isnoneornil(L, 2)) {
    if (fstat(w->fd, &st) != 0) {
      ws_fail(&e, 0, errno, "cannot stat %s", "work_dir");
      return push_err(L, &e);
    }
  } else {
    char buf[PATH_MAX];
    const char *rel = check_rel(L, 2, buf);
    const char *leaf;
    int dirfd = ws_open_parent(w, buf, 0, &leaf, &e);
    if (dirfd < 0) return push_err(L, &e);
    int r = fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW), err = errno;
    close(dirfd);
    if (r != 0) {
      ws_fail(&e, 0, err, "cannot stat %s", rel);
      return push_err(L, &e);
    }
  }
  push_stat(L, &st);
  return 1;
}

/* ws:list([rel[, max]]) -> { name, ... }[, true] | nil, msg (unsorted; without "." and "..").
 * With max, at most max names and a second result true when more were left:
 * code owns the directory and may fill it with millions of names. */
static int ws_list(lua_State *L) {
  ws_ud *w = check_ws(L);
  lua_Integer max = luaL_optinteger(L, 3, LUA_MAXINTEGER);
  if (max < 0) max = 0;
  char buf[PATH_MAX];
  ws_err e;
  int fd = ws_open_dir(w, lua_isnoneornil(L, 2) ? NULL : (check_rel(L, 2, buf), buf), 0, &e);
  if (fd < 0) return push_err(L, &e);
  DIR *d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    ws_fail(&e, 0, err, "cannot list %s", "a workspace directory");
    return push_err(L, &e);
  }
  /* work_dir's own fd is a dup sharing its offset: an earlier list left it at the end */
  rewinddir(d);
  lua_newtable(L);
  lua_Integer i = 0;
  int more = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (i >= max) {
      more = 1;
      break;
    }
    lua_pushstring(L, de->d_name);
    lua_rawseti(L, -2, ++i);
  }
  closedir(d);
  if (!more) return 1;
  lua_pushboolean(L, 1);
  return 2;
}

/* Remove everything inside the directory top, never following a link and
 * never going up through "..": at most TREE_DEPTH directories are open at
 * once; a subtree deeper than that is first moved up to top (a rename
 * within the tree) and emptied from there. */
static int empty_tree(int top) {
  int stack[TREE_DEPTH];
  int depth = 0, err = 0;
  unsigned long seq = 0;
  stack[0] = fcntl(top, F_DUPFD_CLOEXEC, 0);
  if (stack[0] < 0) return -1;
  while (depth >= 0 && !err) {
    int cur = stack[depth], sub = -1;
    int dfd = fcntl(cur, F_DUPFD_CLOEXEC, 0);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
      err = errno;
      if (dfd >= 0) close(dfd);
      break;
    }
    rewinddir(d);   /* dup'd fds share the offset of an earlier listing */
    struct dirent *de;
    while (!err && sub < 0 && (de = readdir(d))) {
      const char *nm = de->d_name;
      if (!strcmp(nm, ".") || !strcmp(nm, "..")) continue;
      if (unlinkat(cur, nm, 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR && errno != EPERM) { err = errno; break; }
      if (unlinkat(cur, nm, AT_REMOVEDIR) == 0 || errno == ENOENT) continue;
      if (errno != ENOTEMPTY && errno != EEXIST) { err = errno; break; }
      if (depth + 1 == TREE_DEPTH) {
        char up[64];
        int r;
        do {
          snprintf(up, sizeof up, ".agentbox-deep-%lu", seq++);
          r = renameat2(cur, nm, top, up, RENAME_NOREPLACE);
        } while (r != 0 && errno == EEXIST);
        if (r != 0 && errno != ENOENT) err = errno;
        continue;
      }
      sub = openat(cur, nm, DIRFLAGS);
      if (sub < 0 && errno != ENOENT) err = errno;
    }
    closedir(d);
    if (sub >= 0) stack[++depth] = sub;
    else if (!err) close(stack[depth--]);  /* empty: the parent's next listing removes it */
  }
  while (depth >= 0) close(stack[depth--]);
  if (err) errno = err;
  return err ? -1 : 0;
}

/* ws:remove(rel) -> true | nil, msg[, "link"]: a file, a link (itself) or a whole tree; absent is fine */
static int ws_remove(lua_State *L) {
  ws_ud *w = check_ws(L);
  char buf[PATH_MAX];
  const char *rel = check_rel(L, 2, buf);
  ws_err e;
  const char *leaf;
  int dirfd = ws_open_parent(w, buf, 0, &leaf, &e);
  if (dirfd < 0) {
    if (e.err == ENOENT) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return push_err(L, &e);
  }
  int r = unlinkat(dirfd, leaf, 0);
  if (r != 0 && (errno == EISDIR || errno == EPERM)) {
    int fd = openat(dirfd, leaf, DIRFLAGS);
    r = fd < 0 ? -1 : empty_tree(fd);
    if (fd >= 0) {
      int err = errno;
      close(fd);
      errno = err;
    }
    if (r == 0) r = unlinkat(dirfd, leaf, AT_REMOVEDIR);
  }
  int err = errno;
  close(dirfd);
  if (r != 0 && err != ENOENT) {
    ws_fail(&e, 0, err, "cannot remove %s", rel);
    return push_err(L, &e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:link(rel, new_rel) -> true | nil, msg[, "link"]: new_rel becomes
 * another name of the regular file rel (a hard link; parents made as
 * needed, whatever was at new_rel unlinked first). Neither is resolved
 * through a link, and rel itself must not be one. */
static int ws_link(lua_State *L) {
  ws_ud *w = check_ws(L);
  char from[PATH_MAX], to[PATH_MAX];
  const char *rel = check_rel(L, 2, from);
  check_rel(L, 3, to);
  ws_err e;
  const char *leaf, *new_leaf;
  int src = ws_open_parent(w, from, 0, &leaf, &e);
  if (src < 0) return push_err(L, &e);
  struct stat st;
  int sr = fstatat(src, leaf, &st, AT_SYMLINK_NOFOLLOW);
  if (sr != 0 || !S_ISREG(st.st_mode)) {
    int err = sr != 0 ? errno : S_ISLNK(st.st_mode) ? ELOOP : EINVAL;
    close(src);
    ws_fail(&e, sr == 0 && S_ISLNK(st.st_mode), err, "cannot link to %s", rel);
    return push_err(L, &e);
  }
  int dst = ws_open_parent(w, to, 1, &new_leaf, &e);
  if (dst < 0) {
    close(src);
    return push_err(L, &e);
  }
  int r = -1;
  for (int i = 0; i < 8 && r != 0; i++) {   /* EEXIST: something reappeared in between */
    if (unlinkat(dst, new_leaf, 0) != 0 && errno != ENOENT) break;
    r = linkat(src, leaf, dst, new_leaf, 0);  /* no AT_SYMLINK_FOLLOW */
    if (r != 0 && errno != EEXIST) break;
  }
  int err = errno;
  close(src);
  close(dst);
  if (r != 0) {
    ws_fail(&e, 0, err, "cannot link %s", rel);
    return push_err(L, &e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:chown(uid, gid) -> true | nil, msg: work_dir itself (by its fd), and
 * from now on every directory and file the accessor creates in it */
static int ws_chown(lua_State *L) {
  ws_ud *w = check_ws(L);
  lua_Integer uid = luaL_checkinteger(L, 2), gid = luaL_checkinteger(L, 3);
  luaL_argcheck(L, uid >= 0 && uid < 0xFFFFFFFF, 2, "a uid");
  luaL_argcheck(L, gid >= 0 && gid < 0xFFFFFFFF, 3, "a gid");
  if (fchown(w->fd, (uid_t)uid, (gid_t)gid) != 0) {
    ws_err e;
    ws_fail(&e, 0, errno, "cannot chown %s", "work_dir");
    return push_err(L, &e);
  }
  w->owned = 1;
  w->uid = (uid_t)uid;
  w->gid = (gid_t)gid;
  lua_pushboolean(L, 1);
  return 1;
}

static int ws_path(lua_State *L) {
  check_ws(L);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int ws_created(lua_State *L) {
  lua_pushboolean(L, check_ws(L)->created);
  return 1;
}

static int ws_close(lua_State *L) {
  ws_ud *w = luaL_checkudata(L, 1, WS_MT);
  if (w->fd >= 0) close(w->fd);
  if (w->parent >= 0) close(w->parent);
  w->fd = w->parent = -1;
  return 0;
}

/* ws:destroy() -> true | nil, msg: remove work_dir's contents and work_dir
 * itself (only if its name still holds the same directory), then close */
static int ws_destroy(lua_State *L) {
  ws_ud *w = check_ws(L);
  ws_err e;
  if (w->parent < 0) return luaL_error(L, "workspace: refusing to destroy /");
  int r = empty_tree(w->fd);
  struct stat st;
  if (r == 0 && w->parent >= 0 && fstatat(w->parent, w->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_dev == w->dev && st.st_ino == w->ino)
    r = unlinkat(w->parent, w->name, AT_REMOVEDIR);
  int err = errno;
  ws_close(L);
  if (r != 0) {
    lua_getiuservalue(L, 1, 1);
    ws_fail(&e, 0, err, "cannot remove %s", lua_tostring(L, -1));
    return push_err(L, &e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.workspace(path[, { create = false, exclusive = false, mode = 0755, resolve = "openat2" }])
 *   -> ws | nil, msg[, "link"]
 * Walks path from "/" one component at a time with O_NOFOLLOW|O_DIRECTORY:
 * a link anywhere in it is refused, naming the component. create: missing
 * directories are made (the last with mode); exclusive: the last must not
 * exist yet. resolve = "walk": never openat2 (what kernels before 5.6 get). */
static int l_workspace(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int create = 0, exclusive = 0, walk = 0;
  mode_t mode = 0755;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "create");
    create = lua_toboolean(L, -1);
    lua_getfield(L, 2, "exclusive");
    exclusive = lua_toboolean(L, -1);
    lua_getfield(L, 2, "mode");
    mode = (mode_t)luaL_optinteger(L, -1, 0755) & 07777;
    lua_getfield(L, 2, "resolve");
    const char *how = luaL_optstring(L, -1, "openat2");
    if (strcmp(how, "walk") == 0) walk = 1;
    else if (strcmp(how, "openat2") != 0) return luaL_error(L, "workspace: resolve must be \"openat2\" or \"walk\"");
    lua_pop(L, 4);
  }
  char abs[PATH_MAX];
  ws_err e;
  int err = ws_absolute(path, abs);
  if (err) {
    ws_fail(&e, 0, err, "work_dir %s", path);
    return push_err(L, &e);
  }
  ws_ud *w = lua_newuserdatauv(L, sizeof *w, 1);
  memset(w, 0, sizeof *w);
  w->fd = w->parent = -1;
  luaL_setmetatable(L, WS_MT);
  lua_pushstring(L, abs);
  lua_setiuservalue(L, -2, 1);
  w->walk = walk;
  if (ws_open_root(w, abs, create, exclusive, mode, &e) != 0) return push_err(L, &e);
  return 1;
}

void ab_open_workspace(lua_State *L) {
  static const luaL_Reg m[] = {
    {"path", ws_path}, {"created", ws_created}, {"write", ws_write}, {"mkdir", ws_mkdir},
    {"read", ws_read}, {"stat", ws_stat}, {"list", ws_list}, {"remove", ws_remove}, {"link", ws_link},
    {"chown", ws_chown}, {"destroy", ws_destroy}, {"close", ws_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, WS_MT)) {
    luaL_newlib(L, m);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ws_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ws_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_workspace);
  lua_setfield(L, -2, "workspace");
}
