/* Time: the monotonic clock (ab_now_ms, core.now), the context's timer heap
 * (deadlines of processes, curl's timeout, core.timer) and core.timer, a
 * handle that becomes done at a deadline. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core.h"

int64_t ab_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* core.now() -> seconds on the same clock as every deadline */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* The heap: a min-heap on when_ms; each timer knows its slot (heap_idx) so
 * stop is O(log n) without a search. */
static void heap_swap(ab_ctx *c, size_t a, size_t b) {
  ab_timer *t = c->heap[a];
  c->heap[a] = c->heap[b];
  c->heap[b] = t;
  c->heap[a]->heap_idx = (long)a;
  c->heap[b]->heap_idx = (long)b;
}

static void heap_up(ab_ctx *c, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (c->heap[p]->when_ms <= c->heap[i]->when_ms) break;
    heap_swap(c, p, i);
    i = p;
  }
}

static void heap_down(ab_ctx *c, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < c->nheap && c->heap[l]->when_ms < c->heap[m]->when_ms) m = l;
    if (r < c->nheap && c->heap[r]->when_ms < c->heap[m]->when_ms) m = r;
    if (m == i) break;
    heap_swap(c, m, i);
    i = m;
  }
}

void ab_timer_stop(ab_ctx *c, ab_timer *t) {
  if (t->heap_idx < 0) return;
  size_t i = (size_t)t->heap_idx;
  t->heap_idx = -1;
  c->nheap--;
  if (i == c->nheap) return;
  c->heap[i] = c->heap[c->nheap];
  c->heap[i]->heap_idx = (long)i;
  heap_up(c, i);
  heap_down(c, (size_t)c->heap[i]->heap_idx);
}

void ab_timer_start(ab_ctx *c, ab_timer *t, int64_t when_ms) {
  ab_timer_stop(c, t);
  if (ab_grow((void **)&c->heap, &c->capheap, c->nheap + 1, sizeof *c->heap)) abort();
  t->when_ms = when_ms;
  t->heap_idx = (long)c->nheap;
  c->heap[c->nheap++] = t;
  heap_up(c, (size_t)t->heap_idx);
}

int ab_timer_wait_ms(ab_ctx *c) {
  if (c->nheap == 0) return -1;
  int64_t d = c->heap[0]->when_ms - ab_now_ms();
  if (d < 0) return 0;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

void ab_timer_fire_due(ab_ctx *c) {
  int64_t now = ab_now_ms();
  while (c->nheap && c->heap[0]->when_ms <= now) {
    ab_timer *t = c->heap[0];
    ab_timer_stop(c, t);
    t->cb(t);
  }
}

/* core.timer(seconds) */
#define TIMER_MT "agentbox.timer"
typedef struct {
  ab_handle h;
  ab_timer t;
  int fired;
} timer_ud;

static void timer_cb(ab_timer *t) {
  timer_ud *u = t->owner;
  u->fired = 1;
  ab_notify(&u->h);
}

static int l_timer(lua_State *L) {
  double s = ab_check_number(L, 1);
  timer_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  ab_handle_init(L, &u->h, TIMER_MT);
  u->t.heap_idx = -1;
  u->t.cb = timer_cb;
  u->t.owner = u;
  ab_timer_start(u->h.ctx, &u->t, ab_now_ms() + (int64_t)(s * 1000.0 + 0.5));
  return 1;
}

static int timer_close(lua_State *L) {
  timer_ud *u = luaL_checkudata(L, 1, TIMER_MT);
  if (!u->h.closed) {
    ab_timer_stop(u->h.ctx, &u->t);
    ab_handle_forget(L, &u->h);
  }
  return 0;
}

static int timer_done(lua_State *L) {
  timer_ud *u = (timer_ud *)ab_handle_check(L, 1, TIMER_MT);
  lua_pushboolean(L, u->fired);
  return 1;
}

void ab_open_timer(lua_State *L) {
  static const luaL_Reg m[] = {
    {"close", timer_close}, {"done", timer_done}, {"ready", timer_done}, {NULL, NULL}};
  ab_handle_register(L, TIMER_MT, m);
  static const luaL_Reg f[] = {{"timer", l_timer}, {"now", l_now}, {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
