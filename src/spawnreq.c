/* core.spawn's request (see spawnreq.h): the option table read into one
 * ab_sup_args, the run's pipes, and the supervisor started by the spawn
 * server (spawner.c) or forked here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "seccomp.h"
#include "spawnproto.h"
#include "spawnreq.h"
#include "spawner.h"
#include "sysutil.h"

/* Pipes get descriptors of 10 and up so they never collide with the standard
 * ones (a host may have closed them) or the status descriptor 3 that
 * posix_spawn sets up. */
static int high_fd(int fd) {
  if (fd < 0 || fd >= 10) return fd;
  int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return n;
}

static int make_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  fds[0] = high_fd(fds[0]);
  fds[1] = high_fd(fds[1]);
  return fds[0] < 0 || fds[1] < 0 ? -1 : 0;
}

/* Collect a string array option as a NULL-terminated char* vector stored in a
 * userdata left on the stack; the strings stay anchored in the table at t. */
static char **string_vector(lua_State *L, int t, const char *what) {
  lua_Integer n = luaL_len(L, t);
  char **v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, t, i) != LUA_TSTRING) luaL_error(L, "%s[%d] must be a string", what, (int)i);
    v[i - 1] = (char *)lua_tostring(L, -1);
    if (strlen(v[i - 1]) != lua_rawlen(L, -1)) luaL_error(L, "%s[%d] contains a NUL byte", what, (int)i);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}

static int64_t opt_limit(lua_State *L, int t, const char *k) {
  if (lua_getfield(L, t, k) == LUA_TNIL) { lua_pop(L, 1); return -1; }
  if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
    luaL_error(L, "rlimits.%s must be a non-negative integer", k);
  int64_t v = (int64_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* quota = { dir = path (default cwd), bytes = n, files = n }: the
 * workspace quota (quota.c); a limit nil or 0 is off. */
static const char *opt_quota(lua_State *L, const char *cwd, int64_t *bytes, int64_t *files) {
  *bytes = *files = 0;
  int ty = lua_getfield(L, 1, "quota");
  if (ty == LUA_TNIL || (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1))) { lua_pop(L, 1); return NULL; }
  if (ty != LUA_TTABLE) luaL_error(L, "spawn: 'quota' must be a table { dir =, bytes =, files = } or false");
  int t = lua_gettop(L);
  const char *k[2] = {"bytes", "files"};
  int64_t *v[2] = {bytes, files};
  for (int i = 0; i < 2; i++) {
    if (lua_getfield(L, t, k[i]) != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
        luaL_error(L, "spawn: quota.%s must be a non-negative integer (0: no limit)", k[i]);
      *v[i] = (int64_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
  }
  const char *dir = cwd;
  if (lua_getfield(L, t, "dir") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: quota.dir must be a string");
    dir = lua_tostring(L, -1);
  }
  lua_pop(L, 2);   /* the option table still anchors the string */
  if (!dir) luaL_error(L, "spawn: quota needs quota.dir or cwd (the directory it watches)");
  return *bytes > 0 || *files > 0 ? dir : NULL;
}

/* sandbox = { read_only = {paths}, read_write = {paths}, tmp_size = bytes,
 * loopback = bool, memory = bytes, cgroup_required = bool, spare = bool } or true: the daemonless sandbox (sandbox.h). Paths
 * must be absolute (LocalExecutor resolves them); the vectors are left on
 * the stack, their strings anchored in the option table. */
static void opt_sandbox(lua_State *L, ab_sup_args *a) {
  int ty = lua_getfield(L, 1, "sandbox");
  if (ty == LUA_TNIL || (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1))) { lua_pop(L, 1); return; }
  a->o.sandbox = AB_SB_ON | AB_SB_LOOPBACK;
  a->o.tmp_bytes = 64 << 20;
  if (ty == LUA_TBOOLEAN) { lua_pop(L, 1); return; }
  if (ty != LUA_TTABLE) luaL_error(L, "spawn: 'sandbox' must be true, false or a table { read_only =, read_write =, "
                                   "tmp_size =, loopback =, memory =, cgroup_required =, spare = }");
  int t = lua_gettop(L);
  const char *k[2] = {"read_only", "read_write"};
  int32_t *n[2] = {&a->o.sb_nro, &a->o.sb_nrw};
  char *const **v[2] = {&a->sb_ro, &a->sb_rw};
  for (int i = 0; i < 2; i++) {
    if (lua_getfield(L, t, k[i]) == LUA_TNIL) { lua_pop(L, 1); continue; }
    if (!lua_istable(L, -1)) luaL_error(L, "spawn: sandbox.%s must be an array of absolute paths", k[i]);
    char **vec = string_vector(L, lua_gettop(L), k[i]);
    for (char **p = vec; *p; p++) {
      if (**p != '/') luaL_error(L, "spawn: sandbox.%s: '%s' is not an absolute path", k[i], *p);
      (*n[i])++;
    }
    *v[i] = vec;
    lua_remove(L, -2);   /* the vector stays; its table is anchored in the option table */
  }
  if (a->o.sb_nro + a->o.sb_nrw > AB_SANDBOX_MAX_PATHS)
    luaL_error(L, "spawn: the sandbox binds at most %d read_only and read_write paths together", AB_SANDBOX_MAX_PATHS);
  if (lua_getfield(L, t, "tmp_size") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 4096)
      luaL_error(L, "spawn: sandbox.tmp_size must be an integer number of bytes >= 4096");
    a->o.tmp_bytes = (int64_t)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, t, "loopback") == LUA_TBOOLEAN && !lua_toboolean(L, -1)) a->o.sandbox &= ~AB_SB_LOOPBACK;
  lua_pop(L, 1);
  if (lua_getfield(L, t, "memory") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
      luaL_error(L, "spawn: sandbox.memory must be an integer number of bytes >= 0 (0: no memory cgroup)");
    a->o.memory_bytes = (int64_t)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, t, "cgroup_required") == LUA_TBOOLEAN && lua_toboolean(L, -1))
    a->o.flags |= AB_RUN_CGROUP_REQUIRED;
  lua_pop(L, 1);
  if (lua_getfield(L, t, "spare") == LUA_TBOOLEAN && lua_toboolean(L, -1)) a->o.flags |= AB_RUN_SPARE;
  lua_pop(L, 1);
  lua_remove(L, t);   /* the sandbox table itself (anchored in the option table) */
}

/* seccomp = true | false | "default" | "sandbox" (seccomp.h's profiles) */
static int32_t opt_seccomp(lua_State *L) {
  int ty = lua_getfield(L, 1, "seccomp");
  int32_t v = -1;
  if (ty == LUA_TNIL) v = AB_SECCOMP_OFF;
  else if (ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1) ? AB_SECCOMP_DEFAULT : AB_SECCOMP_OFF;
  else if (ty == LUA_TSTRING && strcmp(lua_tostring(L, -1), "default") == 0) v = AB_SECCOMP_DEFAULT;
  else if (ty == LUA_TSTRING && strcmp(lua_tostring(L, -1), "sandbox") == 0) v = AB_SECCOMP_SANDBOX;
  if (v < 0)
    luaL_error(L, "spawn: 'seccomp' must be true, false, \"default\" or \"sandbox\" (the stricter profile), got %s",
               ty == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

/* landlock.read or .write of the table at t: appended to names (at nt). */
static int landlock_list(lua_State *L, int t, const char *k, int nt, int have) {
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) { lua_pop(L, 1); return 0; }
  if (ty != LUA_TTABLE) luaL_error(L, "spawn: landlock.%s must be an array of absolute paths, got %s", k,
                                   luaL_typename(L, -1));
  lua_Integer n = luaL_len(L, -1);
  if (n > AB_LANDLOCK_MAX_PATHS - have)
    luaL_error(L, "spawn: landlock allows at most %d paths (read and write together)", AB_LANDLOCK_MAX_PATHS);
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING) luaL_error(L, "spawn: landlock.%s[%d] must be a string", k, (int)i);
    const char *path = lua_tolstring(L, -1, &len);
    if (path[0] != '/' || strlen(path) != len || len >= 4096)
      luaL_error(L, "spawn: landlock.%s[%d] must be an absolute path without NUL bytes, shorter than 4096 "
                 "(got '%s')", k, (int)i, path);
    lua_rawseti(L, nt, have + (int)i);
  }
  lua_pop(L, 1);
  return (int)n;
}

/* landlock = { read = {paths}, write = {paths}, required = bool } | false:
 * the paths, read-only ones first, go into a names table and a vector
 * (left on the stack, in that order); the names also tell the result which
 * path was skipped. Returns the names table's index, 0 without Landlock. */
static int opt_landlock(lua_State *L, ab_sup_args *a) {
  int ty = lua_getfield(L, 1, "landlock");
  if (ty == LUA_TNIL || (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1))) { lua_pop(L, 1); return 0; }
  if (ty != LUA_TTABLE)
    luaL_error(L, "spawn: 'landlock' must be a table { read = {paths}, write = {paths}, required = bool } or false");
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "spawn: landlock takes named settings (read, write, required), got a %s key",
                 luaL_typename(L, -2));
    const char *k = lua_tostring(L, -2);
    if (strcmp(k, "read") && strcmp(k, "write") && strcmp(k, "required"))
      luaL_error(L, "spawn: unknown landlock setting '%s' (known: read, write, required)", k);
    lua_pop(L, 1);
  }
  lua_getfield(L, t, "required");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "spawn: landlock.required must be a boolean");
  a->o.landlock = lua_toboolean(L, -1) ? AB_LANDLOCK_REQUIRED : AB_LANDLOCK_ON;
  lua_pop(L, 1);
  lua_newtable(L);
  int nt = lua_gettop(L);
  a->o.landlock_nread = landlock_list(L, t, "read", nt, 0);
  a->o.landlock_nwrite = landlock_list(L, t, "write", nt, a->o.landlock_nread);
  lua_remove(L, t);   /* the names table anchors the strings now */
  nt--;
  a->landlock_paths = string_vector(L, nt, "landlock");
  return nt;
}

/* Builds "NAME=value" strings of the env option into a table pushed on the
 * stack. */
static void env_strings(lua_State *L) {
  lua_newtable(L);
  int t = lua_gettop(L);
  if (lua_getfield(L, 1, "env") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "spawn: 'env' must be a table of name = value strings");
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "spawn: env entries must be string = string");
      const char *k = lua_tostring(L, -2);
      if (!*k || strchr(k, '=')) luaL_error(L, "spawn: bad environment variable name '%s'", k);
      lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
      lua_rawseti(L, t, ++n);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

void ab_spawn_parse(lua_State *L, ab_spawn_call *r) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  memset(r, 0, sizeof *r);
  ab_sup_args *a = &r->a;
  ab_run_opts_init(&a->o);
  if (lua_getfield(L, 1, "argv") != LUA_TTABLE || luaL_len(L, 2) < 1)
    luaL_error(L, "spawn: 'argv' must be a non-empty array of strings");
  env_strings(L);
  a->argv = string_vector(L, 2, "argv");
  a->envp = string_vector(L, 3, "env");
  a->path = ab_env_path(a->envp);
  a->cwd = ab_opt_string(L, 1, "cwd", NULL);
  a->fd_in = a->fd_out = a->fd_err = -1;
  r->sup = ab_opt_string(L, 1, "sup", NULL);
  if (lua_getfield(L, 1, "server") != LUA_TNIL) r->server = ab_spawnconn_check(L, lua_gettop(L));
  lua_pop(L, 1);   /* the handle stays referenced by the option table */
  double timeout = ab_opt_number(L, 1, "timeout", 0);
  double grace = ab_opt_number(L, 1, "grace", 0.5);
  r->max_output = ab_opt_number(L, 1, "max_output", 1048576);
  double nice_inc = ab_opt_number(L, 1, "nice", 0);
  if (!(nice_inc > -1 && nice_inc < 20)) luaL_error(L, "spawn: 'nice' must be between 0 and 19");
  a->o.nice = (int32_t)nice_inc;
  a->o.seccomp = opt_seccomp(L);
  lua_getfield(L, 1, "no_fallocate");
  if (lua_toboolean(L, -1)) a->o.flags |= AB_RUN_NO_FALLOCATE;
  lua_pop(L, 1);
  lua_getfield(L, 1, "resident");
  if (lua_toboolean(L, -1)) a->o.flags |= AB_RUN_RESIDENT;
  lua_pop(L, 1);
  if ((a->o.flags & AB_RUN_RESIDENT) && !r->server)
    luaL_error(L, "spawn: 'resident' needs 'server' (a warm container's block server)");
  /* written so that NaN fails too */
  if (!(timeout >= 0 && grace >= 0 && r->max_output >= 0))
    luaL_error(L, "spawn: timeout, grace and max_output must be >= 0");
  a->o.timeout_ms = ab_deadline_ms(timeout);
  a->o.grace_ms = ab_deadline_ms(grace);
  int ty = lua_getfield(L, 1, "stdin");
  if (ty == LUA_TSTRING) r->in = lua_tolstring(L, -1, &r->inlen);
  else if (ty != LUA_TNIL) luaL_error(L, "spawn: 'stdin' must be a string or nil");
  lua_pop(L, 1);   /* the option table still anchors the string */
  if (lua_getfield(L, 1, "rlimits") == LUA_TTABLE) {
    int t = lua_gettop(L);
    a->o.rlimit[AB_RL_CPU] = opt_limit(L, t, "cpu");
    a->o.rlimit[AB_RL_AS] = opt_limit(L, t, "as");
    a->o.rlimit[AB_RL_FSIZE] = opt_limit(L, t, "fsize");
    a->o.rlimit[AB_RL_NOFILE] = opt_limit(L, t, "nofile");
    a->o.rlimit[AB_RL_NPROC] = opt_limit(L, t, "nproc");
  } else if (!lua_isnil(L, -1)) luaL_error(L, "spawn: 'rlimits' must be a table");
  lua_pop(L, 1);
  a->quota_dir = opt_quota(L, a->cwd, &a->o.quota_bytes, &a->o.quota_files);
  opt_sandbox(L, a);
  if (lua_getfield(L, 1, "quota") == LUA_TTABLE) {
    if (lua_getfield(L, -1, "tree") != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > INT32_MAX)
        luaL_error(L, "spawn: quota.tree must be a pid");
      a->o.quota_tree = (int32_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "stream");
  r->stream = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  r->landlock_names = opt_landlock(L, a);
}

const char *ab_spawn_pipes(const ab_spawn_call *r, int child[4], int host[4]) {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1}, inp[2] = {-1, -1};
  const char *fail = NULL;
  if (make_pipe(out) || make_pipe(err) || make_pipe(st)) fail = "pipe";
  else if (r->in) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inp) != 0) fail = "socketpair";
    else { inp[0] = high_fd(inp[0]); inp[1] = high_fd(inp[1]); }
  } else if ((inp[0] = high_fd(open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) fail = "open /dev/null";
  int c[4] = {inp[0], out[1], err[1], st[1]}, h[4] = {out[0], err[0], st[0], inp[1]};
  memcpy(child, c, sizeof c);
  memcpy(host, h, sizeof h);
  return fail;
}

/* The fork path's child: the supervisor itself. Never returns. */
static void supervise_here(ab_sup_args *a, const int child[4], pid_t host) {
  ab_close_all_but(3, child, 4);
  a->fd_in = child[0];
  a->fd_out = child[1];
  a->fd_err = child[2];
  a->host = host;
  ab_sup_report rep;
  ab_supervise(a, &rep);
  if (rep.spawn_errno) {
    const char *m = "agentbox: fork failed\n";
    (void)!write(child[2], m, strlen(m));
  }
  close(child[0]);
  close(child[1]);
  close(child[2]);
  (void)!write(child[3], &rep, sizeof rep);
  _exit(0);
}

pid_t ab_spawn_dispatch(ab_ctx *c, ab_spawn_call *r, const int child[4], void *owner,
                        void (*cb)(void *owner, pid_t pid), uint32_t *id, ab_spawner **sp) {
  *sp = NULL;
  if (r->server) {
    if (ab_spawner_spawn_on(r->server, &r->a, child, owner, cb, id) != 0) return -1;
    *sp = r->server;
    return 0;
  }
  if (r->sup && (*sp = ab_spawner_spawn(c, r->sup, &r->a, child, owner, cb, id)) != NULL) return 0;
  pid_t host = getpid();
  pid_t pid = fork();
  if (pid == 0) supervise_here(&r->a, child, host);
  return pid;
}
