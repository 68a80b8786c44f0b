/* Internal header of agentbox.core: the per-lua_State context, the reactor
 * and the handle base shared by processes, timers and HTTP requests. */
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

/* buffers */
typedef struct { char *p; size_t len, cap; } ab_buf;
int ab_buf_add(ab_buf *b, const char *s, size_t n);  /* 0 ok, -1 ENOMEM */
void ab_buf_free(ab_buf *b);

/* context */
ab_ctx *ab_ctx_get(lua_State *L);
int64_t ab_now_ms(void);

/* reactor */
int ab_watch_set(ab_ctx *c, ab_watch *w, uint32_t events); /* 0 removes */
void ab_watch_del(ab_ctx *c, ab_watch *w);
void ab_timer_start(ab_ctx *c, ab_timer *t, int64_t when_ms);
void ab_timer_stop(ab_ctx *c, ab_timer *t);
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

/* handles: register a freshly created userdata (on top of the stack) so that
 * step() can return it while it lives, without keeping it alive. */
void ab_handle_init(lua_State *L, ab_handle *h, const char *kind);
ab_handle *ab_handle_check(lua_State *L, int idx, const char *kind);
void ab_handle_forget(lua_State *L, ab_handle *h);
int ab_handle_tostring(lua_State *L);

/* module parts */
void ab_open_proc(lua_State *L);
void ab_open_timer(lua_State *L);
void ab_open_http(lua_State *L);
void ab_open_util(lua_State *L);
void ab_open_embed(lua_State *L);
void ab_open_dockerio(lua_State *L);
void ab_open_workspace(lua_State *L);   /* workspace.c: core.workspace */
void ab_open_protect(lua_State *L);   /* protect.c */

/* posix_spawn attributes for a clean child: default signal dispositions,
 * empty mask (spawner.c, proc.c) */
void ab_spawnattr_clean(posix_spawnattr_t *at);

/* option helpers */
double ab_opt_number(lua_State *L, int t, const char *k, double dflt);
const char *ab_opt_string(lua_State *L, int t, const char *k, const char *dflt);

#endif
