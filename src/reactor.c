/* The reactor: the context's epoll set, its ready list and the supervisors
 * left to reap; core.step, core.timeout, core.fd. Nothing but core.step
 * touches Lua: a watch's or a timer's callback only records which handles
 * had activity (the timer heap is timer.c's). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core.h"

int ab_watch_set(ab_ctx *c, ab_watch *w, uint32_t events) {
  if (events == w->events) return 0;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.ptr = w;
  int r;
  if (events == 0) r = epoll_ctl(c->epfd, EPOLL_CTL_DEL, w->fd, &ev);
  else if (w->events == 0) r = epoll_ctl(c->epfd, EPOLL_CTL_ADD, w->fd, &ev);
  else r = epoll_ctl(c->epfd, EPOLL_CTL_MOD, w->fd, &ev);
  if (r == 0 || events == 0) w->events = events;
  return r;
}

void ab_watch_del(ab_ctx *c, ab_watch *w) {
  if (w->events) ab_watch_set(c, w, 0);
}

void ab_notify(ab_handle *h) {
  ab_ctx *c = h->ctx;
  if (h->queued || h->closed) return;
  if (ab_grow((void **)&c->ready, &c->capready, c->nready + 1, sizeof *c->ready)) abort();
  c->ready[c->nready++] = h;
  h->queued = 1;
}

void ab_unnotify(ab_handle *h) {
  ab_ctx *c = h->ctx;
  if (!h->queued) return;
  for (size_t i = 0; i < c->nready; i++) {
    if (c->ready[i] == h) {
      memmove(c->ready + i, c->ready + i + 1, (c->nready - i - 1) * sizeof *c->ready);
      c->nready--;
      break;
    }
  }
  h->queued = 0;
}

void ab_reap_later(ab_ctx *c, pid_t pid) {
  if (pid <= 0) return;
  if (waitpid(pid, NULL, WNOHANG) != 0) return;   /* reaped, or not ours */
  if (ab_grow((void **)&c->zombies, &c->capzombies, c->nzombies + 1, sizeof *c->zombies)) return;
  c->zombies[c->nzombies++] = pid;
}

static void reap_zombies(ab_ctx *c) {
  size_t j = 0;
  for (size_t i = 0; i < c->nzombies; i++)
    if (waitpid(c->zombies[i], NULL, WNOHANG) == 0) c->zombies[j++] = c->zombies[i];
  c->nzombies = j;
}

int ab_reactor_init(ab_ctx *c) {
  memset(c, 0, sizeof *c);
  c->epfd = epoll_create1(EPOLL_CLOEXEC);
  return c->epfd < 0 ? -1 : 0;
}

int ab_reap_until(pid_t pid, int64_t deadline_ms) {
  for (;;) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r != 0 && !(r < 0 && errno == EINTR)) return 0;   /* reaped, or not ours */
    if (ab_now_ms() >= deadline_ms) return -1;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

/* A lua_State is closing: nothing will step it again, so its children are
 * reaped now, within a bound (a frame loop must not stall on a stuck child).
 * Supervisors forked without the spawn server were sent SIGTERM by their
 * handle's __gc and end their tree within the grace period; one that
 * outlives the budget stays a zombie until the host reaps it or exits. */
void ab_reactor_free(ab_ctx *c) {
  if (c->closed) return;
  c->closed = 1;
  int64_t deadline = ab_now_ms() + AB_REAP_BUDGET_MS;
  if (c->http_free) c->http_free(c);        /* before the epoll set: curl unregisters its sockets */
  if (c->spawner_free) c->spawner_free(c);
  for (size_t i = 0; i < c->nzombies; i++) ab_reap_until(c->zombies[i], deadline);
  if (c->epfd >= 0) close(c->epfd);
  c->epfd = -1;
  free(c->heap);
  free(c->ready);
  free(c->zombies);
  c->heap = NULL;
  c->ready = NULL;
  c->zombies = NULL;
  c->nheap = c->nready = c->nzombies = 0;
  c->capheap = c->capready = c->capzombies = 0;
}

int ab_reactor_timeout(ab_ctx *c) {
  return c->nready ? 0 : ab_timer_wait_ms(c);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* until_s > 0 is a deadline on core.now()'s clock for the events' work
 * (curl reading a reply, a pipe's output): once it has passed no further
 * event is handled (the first one always is). Every watch is level-
 * triggered, so what is left is still ready and epoll reports it again at
 * the next step: a frame where many replies arrive together spreads them
 * over the next frames instead of paying for all of them. */
int ab_reactor_step(ab_ctx *c, int timeout_ms, double until_s) {
  struct epoll_event evs[64];
  if (c->nzombies) reap_zombies(c);
  int wait = ab_reactor_timeout(c);
  if (timeout_ms >= 0 && (wait < 0 || timeout_ms < wait)) wait = timeout_ms;
  /* a zombie left to reap must not make an idle wait forever */
  if (c->nzombies && (wait < 0 || wait > 50)) wait = 50;
  int n = epoll_wait(c->epfd, evs, 64, wait);
  if (n < 0) {
    if (errno != EINTR) return -1;
    n = 0;
  }
  for (int i = 0; i < n; i++) {
    if (i > 0 && until_s > 0 && now_s() >= until_s) break;
    ab_watch *w = evs[i].data.ptr;
    w->cb(w, evs[i].events);
  }
  ab_timer_fire_due(c);
  if (c->http_after_step) c->http_after_step(c);
  return 0;
}

/* core.step(timeout_ms[, until]) -> array of handles that had activity;
 * until: a core.now() time after which the events left wait for the next step */
static int l_step(lua_State *L) {
  ab_ctx *c = ab_ctx_get(L);
  lua_Integer ms = luaL_optinteger(L, 1, 0);
  double until_s = luaL_optnumber(L, 2, 0);
  if (ms < -1) ms = -1;
  if (ms > 0x7fffffff) ms = 0x7fffffff;
  if (!(until_s > 0)) until_s = 0;   /* NaN, negative: no deadline */
  if (ab_reactor_step(c, (int)ms, until_s) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "agentbox: epoll_wait failed: %s", strerror(errno));
    return 2;
  }
  ab_handle_push_ready(L, c);
  return 1;
}

static int l_timeout(lua_State *L) {
  lua_pushinteger(L, ab_reactor_timeout(ab_ctx_get(L)));
  return 1;
}

static int l_fd(lua_State *L) {
  lua_pushinteger(L, ab_ctx_get(L)->epfd);
  return 1;
}

void ab_open_reactor(lua_State *L) {
  static const luaL_Reg f[] = {{"step", l_step}, {"timeout", l_timeout}, {"fd", l_fd}, {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
