/* Private files: a directory only its owner may enter, files in it that
 * only the owner may read, each replaced whole (the model client's response
 * cache, lua/agentbox/llm_cache.lua). The cache holds whole conversations
 * and a cached reply may carry code that an agent then runs, so:
 *  - the directory must belong to the effective user: another user's
 *    directory (a planted cache) is refused, a wider mode of our own one
 *    (AutoGen's diskcache made .cache/41 0755) is narrowed to 0700;
 *  - every file operation goes through one directory fd opened and checked
 *    once, so a path swapped after the check is never used;
 *  - a file is written under a fresh O_EXCL name and renamed over the old
 *    one: a reader (another process sharing the cache) sees the old file or
 *    the new one, never a half-written one, and a writer never writes
 *    through a link it did not create;
 *  - a file is read only when it is a regular file owned by the user,
 *    never through a link, never blocking on a FIFO.
 *
 * Lua API (errors: nil, message, code; "not_found" when the directory or
 * the file does not exist, else "io"):
 *   core.private_read(dir, name[, max[, create]]) -> data | nil, msg, code
 *     (create: the directory is made when missing, so a cache that cannot
 *     be used fails before the request it would have stored, not after)
 *   core.private_write(dir, name, data) -> true | nil, msg, code
 * name is one plain file name (no "/", not "." or ".."). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core.h"

#define PRIV_MODE_DIR 0700
#define PRIV_MODE_FILE 0600

static int fail(lua_State *L, int err, const char *fmt, const char *what) {
  luaL_pushfail(L);
  lua_pushfstring(L, fmt, what, strerror(err));
  if (err == ENOENT) lua_pushliteral(L, "not_found");
  else lua_pushliteral(L, "io");
  return 3;
}

static const char *check_name(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (n == 0 || n > NAME_MAX - 32 || strlen(s) != n || strchr(s, '/') || strcmp(s, ".") == 0 ||
      strcmp(s, "..") == 0)
    luaL_argerror(L, idx, "one plain file name");
  return s;
}

/* Opens dir (creating missing components 0700 when create is set) and
 * checks that it is ours, narrowing its mode. Returns the fd, or -1 with
 * the error pushed (3 values). */
static int open_dir(lua_State *L, const char *dir, int create) {
  size_t n = strlen(dir);
  if (n == 0 || n >= PATH_MAX) luaL_argerror(L, 1, "a directory path");
  if (create) {
    char buf[PATH_MAX];
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
      if (buf[i] != '/' && buf[i] != 0) continue;
      char c = buf[i];
      buf[i] = 0;
      if (mkdir(buf, PRIV_MODE_DIR) != 0 && errno != EEXIST) {
        int err = errno;
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: cannot create %s: %s", dir, buf, strerror(err));
        lua_pushliteral(L, "io");
        return -1;
      }
      buf[i] = c;
    }
  }
  int fd;
  do fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    fail(L, errno, "%s: %s", dir);
    return -1;
  }
  struct stat st;
  int err = 0;
  const char *why = NULL;
  if (fstat(fd, &st) != 0) err = errno;
  else if (st.st_uid != geteuid()) why = "owned by another user: refusing a directory someone else can fill";
  else if ((st.st_mode & 077) && fchmod(fd, PRIV_MODE_DIR) != 0) err = errno;
  if (err || why) {
    close(fd);
    luaL_pushfail(L);
    if (why) lua_pushfstring(L, "%s: %s", dir, why);
    else lua_pushfstring(L, "%s: %s", dir, strerror(err));
    lua_pushliteral(L, "io");
    return -1;
  }
  return fd;
}

/* core.private_read(dir, name[, max = 64 MiB[, create]]) -> data | nil, msg, code
 * A directory failure's message starts with dir; a file's with "cannot read". */
static int l_private_read(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *name = check_name(L, 2);
  lua_Integer max = luaL_optinteger(L, 3, (lua_Integer)64 << 20);
  luaL_argcheck(L, max >= 0, 3, "a byte count");
  int dfd = open_dir(L, dir, lua_toboolean(L, 4));
  if (dfd < 0) return 3;
  int fd;
  do fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  while (fd < 0 && errno == EINTR);
  int err = errno;
  close(dfd);
  if (fd < 0) return fail(L, err, "cannot read %s: %s", name);
  struct stat st;
  err = 0;
  if (fstat(fd, &st) != 0) err = errno;
  else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) err = EPERM;
  else if (st.st_size > max) err = EFBIG;
  if (err) {
    close(fd);
    return fail(L, err, "cannot read %s: %s", name);
  }
  /* one byte more than the size: a file that grows meanwhile is an error */
  size_t cap = (size_t)st.st_size + 1, len = 0;
  char *data = malloc(cap);
  ssize_t k = 0;
  while (data && len < cap) {
    k = read(fd, data + len, cap - len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    len += (size_t)k;
  }
  err = !data ? ENOMEM : k < 0 ? errno : len > (size_t)st.st_size ? EAGAIN : 0;
  close(fd);
  if (err) {
    free(data);
    return fail(L, err, "cannot read %s: %s", name);
  }
  lua_pushlstring(L, data, len);
  free(data);
  return 1;
}

static int write_all(int fd, const char *data, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t k = write(fd, data + off, n - off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return errno;
    if (k == 0) return EIO;
    off += (size_t)k;
  }
  return 0;
}

/* core.private_write(dir, name, data) -> true | nil, msg, code */
static int l_private_write(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *name = check_name(L, 2);
  size_t n;
  const char *data = luaL_checklstring(L, 3, &n);
  int dfd = open_dir(L, dir, 1);
  if (dfd < 0) return 3;
  /* a hidden name no reader looks up; random, so writers never share one */
  char tmp[NAME_MAX + 1];
  int fd = -1, err = 0;
  for (int i = 0; i < 8 && fd < 0; i++) {
    unsigned long long r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
      r ^= (unsigned long long)getpid() << 32 ^ (unsigned long long)(uintptr_t)&r ^ (unsigned long long)i;
    snprintf(tmp, sizeof tmp, ".%s.%016llx.tmp", name, r);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, PRIV_MODE_FILE);
    if (fd < 0 && errno != EEXIST && errno != EINTR) break;
  }
  if (fd < 0) {
    err = errno;
    close(dfd);
    return fail(L, err, "cannot create a file in %s: %s", dir);
  }
  err = write_all(fd, data, n);
  if (close(fd) != 0 && !err) err = errno;
  if (!err && renameat(dfd, tmp, dfd, name) != 0) err = errno;
  if (err) unlinkat(dfd, tmp, 0);
  close(dfd);
  if (err) return fail(L, err, "cannot write %s: %s", name);
  lua_pushboolean(L, 1);
  return 1;
}

void ab_open_privfile(lua_State *L) {
  static const luaL_Reg f[] = {{"private_read", l_private_read}, {"private_write", l_private_write}, {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
