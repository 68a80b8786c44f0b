/* Internal header of agentbox.core (nothing here is exported from core.so:
 * it is built with -fvisibility=hidden, agentbox.h is the public API).
 * Each section names the file that owns it. */
#ifndef AGENTBOX_CORE_H
#define AGENTBOX_CORE_H

#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <lua.h>
#include <lauxlib.h>

typedef struct ab_ctx ab_ctx;
typedef struct ab_watch ab_watch;
typedef struct ab_timer ab_timer;
typedef struct ab_handle ab_handle;
typedef struct ab_spawner ab_spawner;

/* A file descriptor on the reactor's epoll set. cb runs inside step(), never
 * inside another library's callback, and must not call Lua. */
struct ab_watch {
  int fd;
  uint32_t events;              /* currently registered EPOLL* mask, 0 if none */
  void (*cb)(ab_watch *w, uint32_t events);
  void *owner;
};

/* A one-shot deadline; heap_idx is its slot in the ctx heap, -1 when idle. */
struct ab_timer {
  int64_t when_ms;
  long heap_idx;
  void (*cb)(ab_timer *t);
  void *owner;
};

/* Every Lua-visible handle starts with this. */
struct ab_handle {
  ab_ctx *ctx;
  const char *kind;             /* metatable name, e.g. "agentbox.proc" */
  int queued;                   /* already on the ready list */
  int closed;
};

struct ab_ctx {
  int epfd;
  int closed;                   /* finalized (lua_close): no more use */
  ab_timer **heap;              /* min-heap on when_ms */
  size_t nheap, capheap;
  ab_handle **ready;            /* handles with activity since the last step */
  size_t nready, capready;
  pid_t *zombies;               /* supervisors to reap without blocking */
  size_t nzombies, capzombies;
  void *http;                   /* http.c state (curl multi), lazily created */
  void (*http_free)(ab_ctx *ctx);
  void (*http_after_step)(ab_ctx *ctx);  /* frees what curl released mid-dispatch */
  struct ab_spawner *spawner;   /* spawner.c, lazily started */
  void (*spawner_free)(ab_ctx *ctx);
};

/* buf.c: growing memory */
typedef struct { char *p; size_t len, cap; } ab_buf;
int ab_buf_add(ab_buf *b, const char *s, size_t n);  /* 0 ok, -1 ENOMEM */
void ab_buf_free(ab_buf *b);
/* grows *arr (of *cap elements of elem bytes) to hold need; 0 ok, -1 ENOMEM */
int ab_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* context.c: the per-lua_State context, made on first use. ab_ctx_get
 * raises once lua_close has finalized it; ab_ctx_push pushes its userdata
 * (nil before the first use, and returns NULL then) and never raises. */
ab_ctx *ab_ctx_get(lua_State *L);
ab_ctx *ab_ctx_push(lua_State *L);

/* handle.c: the handle base. register: the metatable of a handle type, from
 * its methods (which must include "close": also __gc and __close) plus a
 * __tostring. init: set up a freshly created userdata (on top of the stack,
 * with one user value) so that step() can return it while it lives, without
 * keeping it alive. check: raises on a closed handle. forget: at close. */
void ab_handle_register(lua_State *L, const char *kind, const luaL_Reg *methods);
void ab_handle_init(lua_State *L, ab_handle *h, const char *kind);
ab_handle *ab_handle_check(lua_State *L, int idx, const char *kind);
void ab_handle_forget(lua_State *L, ab_handle *h);
/* pushes the array of live handles on the ready list, and empties it */
void ab_handle_push_ready(lua_State *L, ab_ctx *c);

/* timer.c: the monotonic clock and the timer heap */
int64_t ab_now_ms(void);
void ab_timer_start(ab_ctx *c, ab_timer *t, int64_t when_ms);
void ab_timer_stop(ab_ctx *c, ab_timer *t);
int ab_timer_wait_ms(ab_ctx *c);        /* ms until the earliest, -1 when none */
void ab_timer_fire_due(ab_ctx *c);

/* reactor.c */
int ab_watch_set(ab_ctx *c, ab_watch *w, uint32_t events); /* 0 removes */
void ab_watch_del(ab_ctx *c, ab_watch *w);
void ab_notify(ab_handle *h);           /* put h on the ready list */
void ab_unnotify(ab_handle *h);         /* remove h (on close) */
void ab_reap_later(ab_ctx *c, pid_t pid);
int ab_reactor_init(ab_ctx *c);
/* Finalizes a context: stops curl, ends the spawn server, closes the epoll
 * set. Waits about AB_REAP_BUDGET_MS for its children to exit; a spawn
 * server still there then is killed and reaped. */
void ab_reactor_free(ab_ctx *c);
#define AB_REAP_BUDGET_MS 250
/* Wait (polling) until pid is reaped or deadline_ms (ab_now_ms) passes;
 * 0 when reaped or not our child, -1 when still running. */
int ab_reap_until(pid_t pid, int64_t deadline_ms);
int ab_reactor_step(ab_ctx *c, int timeout_ms);  /* -1 on error (errno) */
int ab_reactor_timeout(ab_ctx *c);

/* module parts: each adds its functions to the table on top (core.c) */
void ab_open_reactor(lua_State *L);     /* reactor.c: step, timeout, fd */
void ab_open_timer(lua_State *L);       /* timer.c: timer, now */
void ab_open_proc(lua_State *L);        /* proc.c: spawn, reap_runs, deadline_margin */
void ab_open_http(lua_State *L);        /* http.c: http */
void ab_open_dockerio(lua_State *L);    /* dockerio.c: tar */
void ab_open_workspace(lua_State *L);   /* workspace.c: workspace */
void ab_open_protect(lua_State *L);     /* protect.c: protect_host, dumpable */
void ab_open_owner(lua_State *L);       /* owner.c: owner, owner_alive, hostname */
void ab_open_text(lua_State *L);        /* text.c: md5, sha256, utf8_clean */
void ab_open_system(lua_State *L);      /* system.c: which, mkdir_p, realpath, append, wall_time, isatty, geteuid */
void ab_open_privfile(lua_State *L);     /* privfile.c: private_read, private_write */
void ab_open_embed(lua_State *L);       /* embed.c: set_scheduler */
void ab_open_spawnconn(lua_State *L);   /* spawnconn.c: spawn_connect */

/* system.c: posix_spawn attributes for a clean child: default signal
 * dispositions, empty mask (spawner.c, proc.c) */
void ab_spawnattr_clean(posix_spawnattr_t *at);

/* options.c: arguments and option tables; a present option of the wrong
 * type raises, NaN raises, magnitudes past 1e12 are clamped */
double ab_check_number(lua_State *L, int arg);
double ab_opt_number(lua_State *L, int t, const char *k, double dflt);
const char *ab_opt_string(lua_State *L, int t, const char *k, const char *dflt);

#endif
