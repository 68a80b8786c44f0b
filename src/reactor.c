/* The reactor: one epoll set, a timer heap and a ready list per lua_State.
 * Nothing here calls Lua; step() only records which handles had activity. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core.h"

int64_t ab_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ab_buf_add(ab_buf *b, const char *s, size_t n) {
  if (n == 0) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

void ab_buf_free(ab_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need) n *= 2;
  void *p = realloc(*arr, n * elem);
  if (!p) return -1;
  *arr = p;
  *cap = n;
  return 0;
}

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

/* timer heap */
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
  if (grow((void **)&c->heap, &c->capheap, c->nheap + 1, sizeof *c->heap)) abort();
  t->when_ms = when_ms;
  t->heap_idx = (long)c->nheap;
  c->heap[c->nheap++] = t;
  heap_up(c, (size_t)t->heap_idx);
}

void ab_notify(ab_handle *h) {
  ab_ctx *c = h->ctx;
  if (h->queued || h->closed) return;
  if (grow((void **)&c->ready, &c->capready, c->nready + 1, sizeof *c->ready)) abort();
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
  if (grow((void **)&c->zombies, &c->capzombies, c->nzombies + 1, sizeof *c->zombies)) return;
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
  if (c->nready) return 0;
  if (c->nheap == 0) return -1;
  int64_t d = c->heap[0]->when_ms - ab_now_ms();
  if (d < 0) return 0;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

static void fire_timers(ab_ctx *c) {
  int64_t now = ab_now_ms();
  while (c->nheap && c->heap[0]->when_ms <= now) {
    ab_timer *t = c->heap[0];
    ab_timer_stop(c, t);
    t->cb(t);
  }
}

int ab_reactor_step(ab_ctx *c, int timeout_ms) {
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
    ab_watch *w = evs[i].data.ptr;
    w->cb(w, evs[i].events);
  }
  fire_timers(c);
  if (c->http_after_step) c->http_after_step(c);
  return 0;
}
