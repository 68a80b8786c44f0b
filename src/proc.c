/* core.spawn: a program under a forked supervisor (sup.c), its output read by
 * the reactor into capped buffers. The handle owns the supervisor's pipes;
 * closing it cancels the run, and the supervisor kills the whole tree. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cgroup.h"
#include "core.h"
#include "output.h"
#include "spawner.h"
#include "spawnproto.h"
#include "sup.h"
#include "sysutil.h"

#define PROC_MT "agentbox.proc"
#define READ_CHUNK 65536
#define READS_PER_EVENT 16
#define BACKSTOP_MS 2000

static const char *const STREAM_NAMES[] = {"stdout", "stderr", NULL};

enum { S_OUT = 0, S_ERR = 1 };

typedef struct {
  ab_handle h;
  pid_t pid;
  ab_watch w[2], wstatus, win;
  ab_out out;
  ab_buf in;
  size_t in_off;
  ab_sup_report rep;
  size_t rep_got;
  int eof[2], got_status, done, killed, via_server, spawn_errno;
  uint32_t spawn_id;
  int overdue;                 /* the host's deadline ended the run */
  struct timespec t0, t1;
  ab_timer backstop, deadline;
} proc_ud;

static void fd_close(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void unwatch(proc_ud *p, ab_watch *w) {
  ab_watch_del(p->h.ctx, w);
  fd_close(&w->fd);
}

static void finish(proc_ud *p) {
  if (p->done) return;
  for (int i = 0; i < 2; i++) {
    unwatch(p, &p->w[i]);
    p->eof[i] = 1;
  }
  unwatch(p, &p->wstatus);
  unwatch(p, &p->win);
  ab_timer_stop(p->h.ctx, &p->backstop);
  ab_timer_stop(p->h.ctx, &p->deadline);
  clock_gettime(CLOCK_MONOTONIC, &p->t1);
  p->done = 1;
  if (p->via_server) ab_spawner_forget(p->h.ctx, p->spawn_id);   /* the server reaps it */
  else ab_reap_later(p->h.ctx, p->pid);
  ab_notify(&p->h);
}

static void maybe_finish(proc_ud *p) {
  if (p->got_status && p->eof[0] && p->eof[1]) finish(p);
}

/* A process outside the supervisor's reach (another uid) may hold a pipe
 * open; the result must not wait for it forever. */
static void backstop_cb(ab_timer *t) {
  finish(t->owner);
}

static void cancel(proc_ud *p, int hard);

/* The budget's host_ms (deadline.h) and no report: the supervisor
 * was stopped or killed by the code. It is killed with everything of the
 * run (the spawn server adopts and kills what it leaves; without the
 * server, the program dies with its supervisor), and the run ends now:
 * nothing the code does can make the host wait longer. */
static void deadline_cb(ab_timer *t) {
  proc_ud *p = t->owner;
  if (p->done) return;
  p->overdue = 1;
  cancel(p, 1);
  finish(p);
}

static void keep(proc_ud *p, int s, const char *data, size_t n) {
  if (ab_out_keep(&p->out, s, data, n)) ab_notify(&p->h);
}

static void out_cb(ab_watch *w, uint32_t ev) {
  proc_ud *p = w->owner;
  int s = w == &p->w[0] ? S_OUT : S_ERR;
  char buf[READ_CHUNK];
  (void)ev;
  for (int i = 0; i < READS_PER_EVENT; i++) {
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n > 0) {
      keep(p, s, buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    unwatch(p, w);
    p->eof[s] = 1;
    maybe_finish(p);
    return;
  }
}

static void status_cb(ab_watch *w, uint32_t ev) {
  proc_ud *p = w->owner;
  (void)ev;
  for (;;) {
    ssize_t n = sizeof p->rep > p->rep_got
      ? read(w->fd, (char *)&p->rep + p->rep_got, sizeof p->rep - p->rep_got)
      : read(w->fd, (char[16]){0}, 16);
    if (n > 0) {
      p->rep_got += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    break;
  }
  unwatch(p, w);
  p->got_status = 1;
  if (!p->done) ab_timer_start(p->h.ctx, &p->backstop, ab_now_ms() + BACKSTOP_MS);
  maybe_finish(p);
}

static void in_cb(ab_watch *w, uint32_t ev) {
  proc_ud *p = w->owner;
  if (!(ev & (EPOLLERR | EPOLLHUP))) {
    while (p->in_off < p->in.len) {
      ssize_t n = send(w->fd, p->in.p + p->in_off, p->in.len - p->in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) p->in_off += (size_t)n;
      else if (n < 0 && errno == EINTR) continue;
      else if (n < 0 && errno == EAGAIN) return;
      else break;
    }
  }
  unwatch(p, w);
  ab_buf_free(&p->in);
}

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

static void on_spawned(void *owner, pid_t pid) {
  proc_ud *p = owner;
  if (pid > 0) p->pid = pid;
  else p->spawn_errno = -pid;
}

/* hard: SIGKILL the supervisor (the host's deadline), else SIGTERM (it
 * cancels: the tree dies). Without the server the supervisor is our child,
 * unreaped until finish, so its pid cannot have been reused. */
static void cancel(proc_ud *p, int hard) {
  if (p->via_server) ab_spawner_kill(p->h.ctx, p->spawn_id, hard);
  else if (p->pid > 0) {
    kill(p->pid, hard ? SIGKILL : SIGTERM);
    kill(p->pid, SIGCONT);
  }
}

/* What core.spawn's table asks for (parse_spawn): the supervisor's
 * request itself, as the fork path and the spawn server take it, and what
 * only the host needs. The strings stay anchored in the option table and
 * the vectors on the Lua stack. */
typedef struct {
  ab_sup_args a;
  const char *sup;             /* agentbox-sup for the spawn server, NULL: fork */
  const char *in;              /* stdin, NULL: /dev/null */
  size_t inlen;
  double max_output;
  int stream;
} spawn_req;

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

/* The option table at 1 into r; misuse raises. Leaves on the stack: 2 argv
 * table, 3 env strings, 4 argv vector, 5 env vector. */
static void parse_spawn(lua_State *L, spawn_req *r) {
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
  double timeout = ab_opt_number(L, 1, "timeout", 0);
  double grace = ab_opt_number(L, 1, "grace", 0.5);
  r->max_output = ab_opt_number(L, 1, "max_output", 1048576);
  double nice_inc = ab_opt_number(L, 1, "nice", 0);
  if (!(nice_inc > -1 && nice_inc < 20)) luaL_error(L, "spawn: 'nice' must be between 0 and 19");
  a->o.nice = (int32_t)nice_inc;
  lua_getfield(L, 1, "seccomp");
  a->o.seccomp = lua_toboolean(L, -1);
  lua_pop(L, 1);
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
  } else if (!lua_isnil(L, -1)) luaL_error(L, "spawn: 'rlimits' must be a table");
  lua_pop(L, 1);
  a->quota_dir = opt_quota(L, a->cwd, &a->o.quota_bytes, &a->o.quota_files);
  lua_getfield(L, 1, "stream");
  r->stream = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* The run's descriptors: child[] = the program's stdin, stdout, stderr and
 * the status pipe's write end (what the supervisor gets), host[] = stdout,
 * stderr, status read ends and the stdin feeder (-1: none). NULL, or what
 * failed (errno set); what was made stays in the arrays for the caller to
 * close. */
static const char *open_pipes(const spawn_req *r, int child[4], int host[4]) {
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

/* Hands the run to the spawn server when there is one; if it cannot take
 * it (no agentbox-sup, or a message too large), the supervisor is forked
 * here. Returns the supervisor's pid, 0 when the server took it, -1 with
 * errno. */
static pid_t dispatch(proc_ud *p, spawn_req *r, const int child[4]) {
  if (r->sup && ab_spawner_spawn(p->h.ctx, r->sup, &r->a, child, p, on_spawned, &p->spawn_id) == 0) {
    p->via_server = 1;
    return 0;
  }
  pid_t host = getpid();
  pid_t pid = fork();
  if (pid == 0) supervise_here(&r->a, child, host);
  return pid;
}

/* The host's side of a started run: its deadline (deadline.h: host_ms)
 * and the reactor watching its pipes. */
static void watch(proc_ud *p, const spawn_req *r, const int host[4]) {
  ab_ctx *c = p->h.ctx;
  ab_deadline b = ab_deadline_budget(r->a.o.timeout_ms, r->a.o.grace_ms);
  if (b.host_ms) ab_timer_start(c, &p->deadline, ab_now_ms() + b.host_ms);
  ab_watch *ws[4] = {&p->w[0], &p->w[1], &p->wstatus, &p->win};
  void (*cbs[4])(ab_watch *, uint32_t) = {out_cb, out_cb, status_cb, in_cb};
  for (int i = 0; i < 4; i++) {
    ws[i]->fd = host[i];
    ws[i]->owner = p;
    ws[i]->cb = cbs[i];
    if (host[i] < 0) continue;
    fcntl(host[i], F_SETFL, fcntl(host[i], F_GETFL) | O_NONBLOCK);
    ab_watch_set(c, ws[i], i == 3 ? EPOLLOUT : EPOLLIN);
  }
}

static proc_ud *new_proc(lua_State *L, const spawn_req *r) {
  proc_ud *p = lua_newuserdatauv(L, sizeof *p, 1);
  memset(p, 0, sizeof *p);
  p->pid = -1;
  p->w[0].fd = p->w[1].fd = p->wstatus.fd = p->win.fd = -1;
  p->backstop.heap_idx = -1;
  p->backstop.cb = backstop_cb;
  p->backstop.owner = p;
  p->deadline.heap_idx = -1;
  p->deadline.cb = deadline_cb;
  p->deadline.owner = p;
  ab_out_init(&p->out, (size_t)r->max_output, r->stream, STREAM_NAMES);
  ab_handle_init(L, &p->h, PROC_MT);
  p->h.closed = 1;   /* until the child runs, close/gc have nothing to undo */
  return p;
}

static int l_spawn(lua_State *L) {
  spawn_req r;
  parse_spawn(L, &r);
  proc_ud *p = new_proc(L, &r);
  int child[4], host[4];
  const char *fail = open_pipes(&r, child, host);
  if (!fail && r.in && ab_buf_add(&p->in, r.in, r.inlen)) fail = "malloc";
  clock_gettime(CLOCK_MONOTONIC, &p->t0);
  pid_t pid = fail ? -1 : dispatch(p, &r, child);
  int saved = errno;
  for (int i = 0; i < 4; i++) fd_close(&child[i]);
  if (pid < 0) {
    for (int i = 0; i < 4; i++) fd_close(&host[i]);
    ab_buf_free(&p->in);
    luaL_pushfail(L);
    lua_pushfstring(L, "spawn: %s failed: %s", fail ? fail : "fork", strerror(saved));
    lua_pushliteral(L, "spawn");
    return 3;
  }
  p->pid = pid;
  p->h.closed = 0;
  watch(p, &r, host);
  return 1;
}

static proc_ud *check_proc(lua_State *L) {
  return (proc_ud *)ab_handle_check(L, 1, PROC_MT);
}

static int p_close(lua_State *L) {
  proc_ud *p = luaL_checkudata(L, 1, PROC_MT);
  if (p->h.closed) return 0;
  if (!p->done) {
    cancel(p, 0);
    finish(p);
  }
  ab_handle_forget(L, &p->h);
  ab_out_free(&p->out);
  ab_buf_free(&p->in);
  return 0;
}

static int p_kill(lua_State *L) {
  proc_ud *p = check_proc(L);
  if (!p->done && !p->killed) {
    p->killed = 1;
    cancel(p, 0);
  }
  return 0;
}

static int p_done(lua_State *L) {
  lua_pushboolean(L, check_proc(L)->done);
  return 1;
}

static int p_ready(lua_State *L) {
  proc_ud *p = check_proc(L);
  lua_pushboolean(L, p->done || ab_out_pending(&p->out));
  return 1;
}

static int p_pid(lua_State *L) {
  lua_pushinteger(L, check_proc(L)->pid);
  return 1;
}

static int p_read(lua_State *L) {
  ab_out_push_chunks(L, &check_proc(L)->out);
  return 1;
}

static int p_result(lua_State *L) {
  proc_ud *p = check_proc(L);
  if (!p->done) {
    luaL_pushfail(L);
    return 1;
  }
  lua_createtable(L, 0, 10);
  const ab_sup_report *r = &p->rep;
  int valid = p->rep_got == sizeof *r && r->magic == AB_SUP_MAGIC;
  if (valid && r->exited && WIFEXITED(r->status)) {
    lua_pushinteger(L, WEXITSTATUS(r->status));
    lua_setfield(L, -2, "exit_code");
  } else if (valid && r->exited && WIFSIGNALED(r->status)) {
    lua_pushinteger(L, WTERMSIG(r->status));
    lua_setfield(L, -2, "signal");
  } else if ((valid && r->spawn_errno) || p->spawn_errno) {
    lua_pushinteger(L, 127);
    lua_setfield(L, -2, "exit_code");
  }
  lua_pushboolean(L, (valid && r->timed_out) || p->overdue);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, p->killed || (valid && r->cancelled));
  lua_setfield(L, -2, "cancelled");
  lua_pushboolean(L, valid && r->oom);
  lua_setfield(L, -2, "oom");
  lua_pushboolean(L, valid && r->quota);
  lua_setfield(L, -2, "quota_exceeded");
  ab_out_set_fields(L, &p->out);
  double wall = (double)(p->t1.tv_sec - p->t0.tv_sec) + (double)(p->t1.tv_nsec - p->t0.tv_nsec) / 1e9;
  lua_pushnumber(L, wall);
  lua_setfield(L, -2, "wall");
  if (p->overdue) {
    lua_pushfstring(L, "the supervisor did not end the run by its deadline (timeout + grace + %d s): it was "
                    "stopped or killed; the host killed it and every process of the run",
                    AB_DEADLINE_MARGIN_MS / 1000);
    lua_setfield(L, -2, "error");
  } else if (valid && r->cancelled && !p->killed) {
    lua_pushstring(L, "the run was cancelled from outside: its supervisor got a signal (the code killed the spawn "
                   "server or signalled the supervisor?)");
    lua_setfield(L, -2, "error");
  } else if (!valid) {
    lua_pushstring(L, p->via_server ? "the supervisor process died without a report (killed?); the spawn "
                   "server killed every process it left" : "the supervisor process died without a report");
    lua_setfield(L, -2, "error");
  }
  return 1;
}

/* core.reap_runs(): what SIGKILLed owners left in their cpu cgroups (their
 * runs' processes, killed; the empty cgroups, removed). A spawn server does
 * it when it starts; LocalExecutor does it when it is made, so a host that
 * builds an executor without running a block cleans up too. */
static int l_reap_runs(lua_State *L) {
  ab_cgroup_reap();
  (void)L;
  return 0;
}

/* core.deadline_budget(timeout, grace) -> { timeout, grace, term, kill,
 * give_up, host, margin } in seconds: deadline.h's budget, for executors
 * whose supervisor is not core.spawn's (DockerExecutor's exec stream ends
 * at host). timeout 0: no deadline, and term, kill and host are nil. */
static int l_deadline_budget(lua_State *L) {
  double timeout = luaL_checknumber(L, 1);
  double grace = luaL_optnumber(L, 2, 0.5);
  luaL_argcheck(L, timeout >= 0, 1, "timeout must be a number of seconds >= 0");
  luaL_argcheck(L, grace >= 0, 2, "grace must be a number of seconds >= 0");
  ab_deadline b = ab_deadline_budget(ab_deadline_ms(timeout), ab_deadline_ms(grace));
  const char *k[] = {"timeout", "grace", "term", "kill", "give_up", "host", "margin"};
  int64_t v[] = {b.timeout_ms, b.grace_ms, b.term_ms, b.kill_ms, b.giveup_ms, b.host_ms, AB_DEADLINE_MARGIN_MS};
  lua_createtable(L, 0, 7);
  for (int i = 0; i < 7; i++) {
    if (!v[i] && (i == 2 || i == 3 || i == 5)) continue;   /* no deadline */
    lua_pushnumber(L, (lua_Number)v[i] / 1000.0);
    lua_setfield(L, -2, k[i]);
  }
  return 1;
}

void ab_open_proc(lua_State *L) {
  static const luaL_Reg m[] = {
    {"close", p_close}, {"kill", p_kill}, {"done", p_done}, {"ready", p_ready},
    {"read", p_read}, {"result", p_result}, {"pid", p_pid}, {NULL, NULL}};
  if (luaL_newmetatable(L, PROC_MT)) {
    luaL_newlib(L, m);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, p_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, p_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ab_handle_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, l_reap_runs);
  lua_setfield(L, -2, "reap_runs");
  lua_pushinteger(L, AB_DEADLINE_MARGIN_MS / 1000);
  lua_setfield(L, -2, "deadline_margin");
  lua_pushcfunction(L, l_deadline_budget);
  lua_setfield(L, -2, "deadline_budget");
}
