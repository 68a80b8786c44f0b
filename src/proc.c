/* core.spawn's handle: a program under its supervisor (sup.c), started by
 * spawnreq.c, its output read by the reactor into capped buffers and its
 * deadline kept on the host (deadline.h's host_ms). The handle owns the
 * supervisor's pipes; closing it cancels the run, and the supervisor kills
 * the whole tree. */
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
#include "sandbox.h"
#include "sandbox_cgroup.h"
#include "spawnreq.h"
#include "spawner.h"
#include "sup.h"

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
  ab_spawner *sp;              /* the server that took the run (via_server) */
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
  if (p->via_server) {
    ab_spawner *sp = p->sp;
    p->sp = NULL;
    ab_spawner_forget(sp, p->spawn_id);   /* the server reaps it */
  }
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

static void on_spawned(void *owner, pid_t pid) {
  proc_ud *p = owner;
  if (pid > 0) p->pid = pid;
  else p->spawn_errno = -pid;
}

/* hard: SIGKILL the supervisor (the host's deadline), else SIGTERM (it
 * cancels: the tree dies). Without the server the supervisor is our child,
 * unreaped until finish, so its pid cannot have been reused. */
static void cancel(proc_ud *p, int hard) {
  if (p->via_server && p->sp) ab_spawner_kill(p->sp, p->spawn_id, hard);
  else if (p->pid > 0) {
    kill(p->pid, hard ? SIGKILL : SIGTERM);
    kill(p->pid, SIGCONT);
  }
}

/* The host's side of a started run: its deadline (deadline.h: host_ms)
 * and the reactor watching its pipes. */
static void watch(proc_ud *p, const ab_spawn_call *r, const int host[4]) {
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

/* user values: 1 the context (handle.c), 2 the Landlock paths' names */
static proc_ud *new_proc(lua_State *L, const ab_spawn_call *r) {
  proc_ud *p = lua_newuserdatauv(L, sizeof *p, 2);
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
  if (r->landlock_names) {
    lua_pushvalue(L, r->landlock_names);
    lua_setiuservalue(L, -2, 2);
  }
  p->h.closed = 1;   /* until the child runs, close/gc have nothing to undo */
  return p;
}

static int l_spawn(lua_State *L) {
  ab_spawn_call r;
  ab_spawn_parse(L, &r);
  proc_ud *p = new_proc(L, &r);
  int child[4], host[4];
  const char *fail = ab_spawn_pipes(&r, child, host);
  if (!fail && r.in && ab_buf_add(&p->in, r.in, r.inlen)) fail = "malloc";
  clock_gettime(CLOCK_MONOTONIC, &p->t0);
  pid_t pid = fail ? -1 : ab_spawn_dispatch(p->h.ctx, &r, child, p, on_spawned, &p->spawn_id, &p->sp);
  p->via_server = pid == 0;
  int saved = errno;
  for (int i = 0; i < 4; i++) fd_close(&child[i]);
  if (pid < 0) {
    for (int i = 0; i < 4; i++) fd_close(&host[i]);
    ab_buf_free(&p->in);
    luaL_pushfail(L);
    lua_pushfstring(L, "spawn: %s failed: %s", fail ? fail : r.server ? "the server" : "fork", strerror(saved));
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

/* result.landlock, when the run asked for it: { abi = n | "none",
 * skipped = { path, ... }, reason = why none } */
static void push_landlock(lua_State *L, const ab_landlock_out *ll) {
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  int names = lua_gettop(L);
  lua_createtable(L, 0, 3);
  if (ll->abi > 0) lua_pushinteger(L, ll->abi);
  else lua_pushliteral(L, "none");
  lua_setfield(L, -2, "abi");
  if (ll->abi <= 0) {
    lua_pushstring(L, ll->err ? ab_landlock_why(ll->err) : "the program did not start");
    lua_setfield(L, -2, "reason");
  }
  lua_newtable(L);
  lua_Integer n = luaL_len(L, names), k = 0;
  for (lua_Integer i = 0; ll->abi > 0 && i < n && i < AB_LANDLOCK_MAX_PATHS; i++) {
    if (!(ll->skipped[i / 32] & (1u << (i % 32)))) continue;
    lua_rawgeti(L, names, i + 1);
    lua_rawseti(L, -2, ++k);
  }
  lua_setfield(L, -2, "skipped");
  lua_setfield(L, -3, "landlock");
  lua_pop(L, 1);
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
  lua_pushboolean(L, valid && r->strays);
  lua_setfield(L, -2, "strays");
  if (valid) push_landlock(L, &r->landlock);
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

/* core.spare_drop(): the spawn server's spare sandbox (sandbox_spare.c)
 * is retired now, not when its idle time is up: LocalExecutor's close. */
static int l_spare_drop(lua_State *L) {
  ab_spawner_drop_spare(ab_ctx_get(L));
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

/* core.sandbox_probe([paths]) -> true, { cgroup = { version = 1|2, memory, pids, cpu = bool } | false,
 * cgroup_why = string, host_uid = n } | nil, step, message, errno: the
 * sandbox's setup (sandbox.h) run once in a child, up to the seccomp
 * filter, so that LocalExecutor{ sandbox } fails at construction, naming
 * what is missing. paths (absolute): for a root caller, work_dir and the
 * read_write paths, which must take an idmapped mount; host_uid is the host
 * uid its code runs as (AB_SANDBOX_HOST_UID). Blocks for a few
 * milliseconds. */
static int l_sandbox_probe(lua_State *L) {
  char step[512];
  char *paths[AB_SB_BINDS];
  int n = 0;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    n = (int)luaL_len(L, 1);
    luaL_argcheck(L, n <= AB_SB_BINDS, 1, "too many paths");
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 1, i + 1);
      const char *s = lua_tostring(L, -1);
      luaL_argcheck(L, s && s[0] == '/', 1, "absolute paths expected");
      paths[i] = (char *)s;   /* anchored in the table */
      lua_pop(L, 1);
    }
  }
  int e = ab_sandbox_probe(step, sizeof step, paths, n);
  if (e == 0) {
    lua_pushboolean(L, 1);
    lua_createtable(L, 0, 2);
    ab_sbcg_where w;
    ab_sbcg_find(&w);
    if (w.version && w.memory && w.pids) {
      lua_createtable(L, 0, 4);
      lua_pushinteger(L, w.version);
      lua_setfield(L, -2, "version");
      const char *k[3] = {"memory", "pids", "cpu"};
      int v[3] = {w.memory, w.pids, w.cpu};
      for (int i = 0; i < 3; i++) {
        lua_pushboolean(L, v[i]);
        lua_setfield(L, -2, k[i]);
      }
    } else {
      lua_pushboolean(L, 0);
      lua_pushstring(L, w.why);
      lua_setfield(L, -3, "cgroup_why");
    }
    lua_setfield(L, -2, "cgroup");
    ab_sbcg_where_close(&w);
    lua_pushinteger(L, geteuid() == 0 ? (lua_Integer)AB_SANDBOX_HOST_UID : (lua_Integer)geteuid());
    lua_setfield(L, -2, "host_uid");
    return 2;
  }
  luaL_pushfail(L);
  lua_pushstring(L, step);
  lua_pushstring(L, strerror(-e));
  lua_pushinteger(L, -e);
  return 4;
}

void ab_open_proc(lua_State *L) {
  static const luaL_Reg m[] = {
    {"close", p_close}, {"kill", p_kill}, {"done", p_done}, {"ready", p_ready},
    {"read", p_read}, {"result", p_result}, {"pid", p_pid}, {NULL, NULL}};
  ab_handle_register(L, PROC_MT, m);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, l_reap_runs);
  lua_setfield(L, -2, "reap_runs");
  lua_pushcfunction(L, l_spare_drop);
  lua_setfield(L, -2, "spare_drop");
  lua_pushinteger(L, AB_DEADLINE_MARGIN_MS / 1000);
  lua_setfield(L, -2, "deadline_margin");
  lua_pushcfunction(L, l_deadline_budget);
  lua_setfield(L, -2, "deadline_budget");
  lua_pushcfunction(L, l_sandbox_probe);
  lua_setfield(L, -2, "sandbox_probe");
  lua_pushinteger(L, (lua_Integer)AB_SANDBOX_HOST_UID);
  lua_setfield(L, -2, "sandbox_host_uid");
}
