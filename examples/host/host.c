/* A C host that embeds Lua 5.4 and agentbox the way a game does: a 60 Hz
 * frame loop that calls agentbox_step(L, 0) once per frame while many
 * conversations run. It measures the time spent inside agentbox_step.
 *
 * Usage: host [script.lua] [--states N] [--poll]
 * The script returns a table { start = fn(), report = fn() -> text, ok = fn() -> bool }.
 * With --states 2 the same script runs in two independent lua_States. With
 * --poll the host sleeps in poll() on agentbox_fd() (bounded by
 * agentbox_timeout() and the next frame), as a host with its own poller
 * does, and steps as soon as agentbox has I/O. */
/* RUSAGE_THREAD: whether a slow step was preempted or blocked */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "agentbox.h"

#define FRAME_NS 16666667L
#define MAX_STATES 4

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the calling thread's context switches so far: voluntary (it blocked in
 * the kernel) and involuntary (the scheduler gave its CPU to another) */
static void switches(long *vol, long *invol) {
  struct rusage ru;
  *vol = *invol = 0;
  if (getrusage(RUSAGE_THREAD, &ru) == 0) {
    *vol = ru.ru_nvcsw;
    *invol = ru.ru_nivcsw;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* the q-quantile of n sorted samples (nearest rank) */
static double pct(const double *sorted, size_t n, double q) {
  size_t i = (size_t)(q * (double)n + 0.999999);
  if (i < 1) i = 1;
  if (i > n) i = n;
  return sorted[i - 1];
}

static int call_field(lua_State *L, const char *name, int nret) {
  lua_getfield(L, LUA_REGISTRYINDEX, "host.script");
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (lua_pcall(L, 0, nret, 0) != LUA_OK) {
    fprintf(stderr, "host: %s failed: %s\n", name, lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* A Lua object whose finalizer counts the collection cycles that ended (in
 * registry["host.gc"]) and makes the next one: a step that ran it finished
 * a cycle's atomic phase, or swept after one. */
static const char GC_PROBE[] =
    "local r = debug.getregistry(); r['host.gc'] = 0\n"
    "local function arm() setmetatable({}, { __gc = function()\n"
    "  if r['host.gc'] then r['host.gc'] = r['host.gc'] + 1; arm() end end }) end\n"
    "arm()\n";

static long gc_cycles(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "host.gc");
  long n = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

static lua_State *open_state(const char *script, int index) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, GC_PROBE) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  /* agentbox is linked into this program: make require find it */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_agentbox_core);
  lua_setfield(L, -2, "agentbox.core");
  lua_pop(L, 1);
  lua_pushinteger(L, index);
  lua_setglobal(L, "HOST_STATE_INDEX");
  if (luaL_dofile(L, script) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "host: cannot load %s: %s\n", script, lua_tostring(L, -1));
    exit(1);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "host.script");
  return L;
}

int main(int argc, char **argv) {
  const char *script = "examples/host/chats.lua";
  int nstates = 1, use_poll = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--poll") == 0) use_poll = 1;
    else if (strcmp(argv[i], "--states") == 0 && i + 1 < argc) nstates = atoi(argv[++i]);
    else script = argv[i];
  }
  if (nstates < 1 || nstates > MAX_STATES) nstates = 1;
  lua_State *Ls[MAX_STATES];
  for (int s = 0; s < nstates; s++) {
    Ls[s] = open_state(script, s);
    if (call_field(Ls[s], "start", 0) != 0) return 1;
  }
  size_t cap = 1 << 16, n = 0;
  double *samples = malloc(cap * sizeof *samples);
  double *cpu = malloc(cap * sizeof *cpu);
  if (!samples || !cpu) return 1;
  double t_start = now_s();
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long frames = 0, fd_wakeups = 0;
  /* the steps over 1 ms: how many used over 1 ms of CPU, were preempted, blocked */
  long slow_cpu = 0, slow_preempted = 0, slow_blocked = 0, slow_gc = 0, cpu_slow = 0, cpu_slow_gc = 0;
  for (;;) {
    int live_total = 0;
    for (int s = 0; s < nstates; s++) {
      long v0, i0, v1, i1;
      switches(&v0, &i0);
      long g0 = gc_cycles(Ls[s]);
      double t0 = now_s(), c0 = cpu_s();
      int live = agentbox_step(Ls[s], 0);
      double dt = now_s() - t0, dc = cpu_s() - c0;
      switches(&v1, &i1);
      int gc = gc_cycles(Ls[s]) != g0;
      if (dt > 1e-3) {
        slow_cpu += dc > 1e-3;
        slow_preempted += i1 > i0;
        slow_blocked += v1 > v0;
        slow_gc += gc;
      }
      if (dc > 0.5e-3) {
        cpu_slow++;
        cpu_slow_gc += gc;
      }
      if (live < 0) {
        fprintf(stderr, "host: agentbox_step failed (is agentbox loaded?)\n");
        return 1;
      }
      live_total += live;
      if (n == cap) {
        cap *= 2;
        double *p = realloc(samples, cap * sizeof *samples);
        double *q = realloc(cpu, cap * sizeof *cpu);
        if (!p || !q) return 1;
        samples = p;
        cpu = q;
      }
      cpu[n] = dc;
      samples[n++] = dt;
    }
    frames++;
    if (live_total == 0) break;
    /* the rest of the frame belongs to the game */
    next.tv_nsec += FRAME_NS;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    if (use_poll) {
      struct pollfd pf[MAX_STATES];
      int wait_ms = (int)((double)FRAME_NS / 1e6);
      for (int s = 0; s < nstates; s++) {
        pf[s].fd = agentbox_fd(Ls[s]);
        pf[s].events = POLLIN;
        int t = agentbox_timeout(Ls[s]);
        if (t >= 0 && t < wait_ms) wait_ms = t;
      }
      if (poll(pf, (nfds_t)nstates, wait_ms) > 0) fd_wakeups++;
      clock_gettime(CLOCK_MONOTONIC, &next);
    } else {
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
  }
  double total = now_s() - t_start;
  qsort(samples, n, sizeof *samples, cmp_double);
  qsort(cpu, n, sizeof *cpu, cmp_double);
  size_t over = 0;
  for (size_t i = 0; i < n; i++) over += samples[i] > 1e-3;
  int ok = 1;
  for (int s = 0; s < nstates; s++) {
    if (call_field(Ls[s], "report", 1) != 0) return 1;
    printf("%s\n", lua_tostring(Ls[s], -1));
    lua_pop(Ls[s], 1);
    if (call_field(Ls[s], "ok", 1) != 0) return 1;
    ok = ok && lua_toboolean(Ls[s], -1);
    lua_pop(Ls[s], 1);
  }
  printf("frames: %ld in %.2f s; time inside agentbox_step per step (%zu steps): "
         "median %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms; %zu over 1 ms\n",
         frames, total, n, pct(samples, n, 0.5) * 1e3, pct(samples, n, 0.95) * 1e3,
         pct(samples, n, 0.99) * 1e3, samples[n - 1] * 1e3, over);
  if (over)
    printf("steps over 1 ms: %zu, of which %ld used over 1 ms of CPU, %ld were preempted, %ld blocked in the kernel, "
           "%ld ended a Lua GC cycle\n", over, slow_cpu, slow_preempted, slow_blocked, slow_gc);
  printf("steps over 0.5 ms of CPU: %ld, of which %ld ended a Lua GC cycle (%ld cycles in all)\n", cpu_slow,
         cpu_slow_gc, gc_cycles(Ls[0]));
  if (use_poll) printf("poll: %ld wake-ups by agentbox_fd\n", fd_wakeups);
  /* wall time above CPU time is the host thread preempted by other processes */
  printf("of which the host thread's CPU time: median %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms\n",
         pct(cpu, n, 0.5) * 1e3, pct(cpu, n, 0.95) * 1e3, pct(cpu, n, 0.99) * 1e3, cpu[n - 1] * 1e3);
  for (int s = 0; s < nstates; s++) {
    lua_pushboolean(Ls[s], 0);   /* the probe stops re-arming */
    lua_setfield(Ls[s], LUA_REGISTRYINDEX, "host.gc");
    lua_close(Ls[s]);
  }
  free(samples);
  free(cpu);
  return ok ? 0 : 1;
}
