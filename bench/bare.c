/* bench/bare.c: the baseline for bench/local_bench.lua. A tiny Lua module
 * that runs a program the plainest way: fork (or posix_spawn) + execve with
 * one pipe for stdout+stderr, read to EOF, waitpid. No supervisor, no
 * reactor, no timeout. Built by bench/run.sh:
 *   cc -O2 -shared -fPIC -I/usr/include/lua5.4 -o bench/build/bare.so bench/bare.c
 *
 *   bare.run(argv [, opts]) -> output, exit_code, total_bytes
 *     opts.env  = { "NAME=value", ... } or { NAME = "value" } (default: inherit)
 *     opts.cwd  = directory for the child (fork mode only)
 *     opts.mode = "fork" (default) | "spawn" (posix_spawn: vfork-like clone)
 *     opts.cap  = keep at most this many bytes of output, drain the rest
 *   bare.now() -> CLOCK_MONOTONIC seconds (float, ns resolution)
 *   bare.hwm() -> VmHWM of this process in kB (peak RSS), or nil
 *   bare.rss() -> VmRSS of this process in kB, or nil
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>

extern char **environ;

static char **vec_from_array(lua_State *L, int t, lua_Integer n) {
  char **v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    v[i - 1] = (char *)luaL_checkstring(L, -1);
    lua_pop(L, 1);   /* still anchored in the table */
  }
  v[n] = NULL;
  return v;
}

/* env as an array of "K=V" or a map K -> V; the strings are kept in a table
 * left on the stack under the vector userdata */
static char **env_vec(lua_State *L, int t) {
  lua_newtable(L);
  int keep = lua_gettop(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TNUMBER) lua_pushvalue(L, -1);
    else lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, keep, ++n);
    lua_pop(L, 1);
  }
  return vec_from_array(L, keep, n);
}

static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer argc = luaL_len(L, 1);
  luaL_argcheck(L, argc >= 1, 1, "empty argv");
  char **argv = vec_from_array(L, 1, argc);
  char **envp = environ;
  const char *cwd = NULL, *mode = "fork";
  size_t cap = (size_t)-1;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "env") == LUA_TTABLE) envp = env_vec(L, lua_gettop(L));
    else lua_pop(L, 1);
    if (lua_getfield(L, 2, "cwd") == LUA_TSTRING) cwd = lua_tostring(L, -1);
    lua_pop(L, 1);  /* anchored by the opts table */
    if (lua_getfield(L, 2, "mode") == LUA_TSTRING) mode = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "cap") == LUA_TNUMBER) cap = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return luaL_error(L, "pipe: %s", strerror(errno));
  pid_t pid;
  if (strcmp(mode, "spawn") == 0) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
    int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (e) {
      close(fds[0]);
      close(fds[1]);
      return luaL_error(L, "posix_spawn %s: %s", argv[0], strerror(e));
    }
  } else {
    pid = fork();
    if (pid < 0) return luaL_error(L, "fork: %s", strerror(errno));
    if (pid == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      if (cwd && chdir(cwd) != 0) _exit(126);
      execve(argv[0], argv, envp);
      _exit(127);
    }
  }
  close(fds[1]);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t kept = 0, total = 0;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += (size_t)n;
    size_t k = cap - kept < (size_t)n ? cap - kept : (size_t)n;
    if (k) {
      luaL_addlstring(&b, buf, k);
      kept += k;
    }
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  luaL_pushresult(&b);
  lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  lua_pushinteger(L, (lua_Integer)total);
  return 3;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

static int status_field(lua_State *L, const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t nl = strlen(name);
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, name, nl) == 0 && line[nl] == ':') { v = strtol(line + nl + 1, NULL, 10); break; }
  fclose(f);
  if (v < 0) return 0;
  lua_pushinteger(L, v);
  return 1;
}

static int l_hwm(lua_State *L) { return status_field(L, "VmHWM"); }
static int l_rss(lua_State *L) { return status_field(L, "VmRSS"); }

int luaopen_bare(lua_State *L) {
  static const luaL_Reg f[] = {{"run", l_run}, {"now", l_now}, {"hwm", l_hwm}, {"rss", l_rss}, {NULL, NULL}};
  luaL_newlib(L, f);
  return 1;
}
