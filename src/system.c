/* What agentbox asks of the host system outside the reactor: PATH lookup,
 * trusted host directories (mkdir_p, realpath: never for work_dir, see
 * workspace.c), appending a record to a host file (the audit log), the
 * wall clock, the terminal, the effective uid, the kernel's Landlock ABI,
 * and the posix_spawn attributes of a clean child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "core.h"
#include "landlock.h"
#include "sysutil.h"

/* core.which(name, PATH) -> absolute path of an executable, or nil */
static int l_which(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *path = luaL_optstring(L, 2, AB_DEFAULT_PATH);
  if (strchr(name, '/')) {
    if (access(name, X_OK) == 0) lua_pushstring(L, name);
    else luaL_pushfail(L);
    return 1;
  }
  /* the supervisor's own search (sysutil.c), so `which` finds what runs */
  char full[PATH_MAX];
  for (const char *p = path; ab_path_next(&p, name, full, sizeof full);) {
    if (access(full, X_OK) == 0) {
      lua_pushstring(L, full);
      return 1;
    }
  }
  luaL_pushfail(L);
  return 1;
}

/* core.mkdir_p(path, mode) -> true | nil, msg */
static int l_mkdir_p(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
  if (n == 0 || n >= PATH_MAX) return luaL_error(L, "mkdir_p: bad path length");
  char buf[PATH_MAX];
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, mode) != 0 && errno != EEXIST) {
      luaL_pushfail(L);
      lua_pushfstring(L, "cannot create directory %s: %s", buf, strerror(errno));
      return 2;
    }
    buf[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s exists and is not a directory", path);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.realpath(path) -> absolute path with links resolved | nil, msg */
static int l_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *r = realpath(path, NULL);
  if (!r) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushstring(L, r);
  free(r);
  return 1;
}

/* core.append(path, data) -> true | nil, msg: data as one write() at the end
 * of path, a regular file (created 0600). One write on an O_APPEND file:
 * records of writers sharing the file never interleave. Opened per call, so
 * a rotated log is followed; O_NONBLOCK so a FIFO without a reader fails
 * instead of hanging the host (and it is then refused as not regular). */
static int l_append(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  int fd;
  do fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  struct stat st;
  const char *why = NULL;
  int e = 0;
  ssize_t w = 0;
  if (fstat(fd, &st) != 0) e = errno;
  else if (!S_ISREG(st.st_mode)) why = "not a regular file";
  else if (n > 0) {
    do w = write(fd, data, n); while (w < 0 && errno == EINTR);
    if (w < 0) e = errno;
    else if ((size_t)w != n) why = "short write (file system full?)";
  }
  if (close(fd) != 0 && !e && !why) e = errno;
  if (e || why) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, why ? why : strerror(e));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.wall_time() -> seconds since the epoch, with the fraction: when a
 * record was made (durations use the monotonic core.now) */
static int l_wall_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static int l_geteuid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

void ab_spawnattr_clean(posix_spawnattr_t *at) {
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_init(at);
  posix_spawnattr_setsigmask(at, &none);
  posix_spawnattr_setsigdefault(at, &all);
  posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* core.landlock_abi() -> n | "none", why: the ABI a spawn's `landlock`
 * would apply here (the kernel's best, at most the newest we know), so a
 * sandbox can fail closed at construction rather than at the first block */
static int l_landlock_abi(lua_State *L) {
  int abi = ab_landlock_abi();
  if (abi > 0) {
    lua_pushinteger(L, abi > AB_LANDLOCK_ABI_KNOWN ? AB_LANDLOCK_ABI_KNOWN : abi);
    return 1;
  }
  lua_pushliteral(L, "none");
  lua_pushstring(L, ab_landlock_why(-abi));
  return 2;
}

/* core.isatty(fd): transcripts are coloured only on a terminal */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

void ab_open_system(lua_State *L) {
  static const luaL_Reg f[] = {
    {"which", l_which}, {"mkdir_p", l_mkdir_p}, {"realpath", l_realpath},
    {"isatty", l_isatty}, {"geteuid", l_geteuid}, {"append", l_append}, {"wall_time", l_wall_time},
    {"landlock_abi", l_landlock_abi}, {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
