/* bench/frame_host.c: the agentbox side of bench/concurrency.sh. A C host as
 * in examples/host/host.c (a game's 60 Hz frame loop calling
 * agentbox_step(L, 0) once per frame), linked against build/agentbox/core.so
 * so it steps exactly the module Lua users load, and measuring per frame:
 *   step  = time inside agentbox_step (the frame time agentbox takes);
 *   cpu   = CPU time this thread used inside it (step - cpu = time the host
 *           was preempted: other processes had the cores);
 *   delay = when agentbox_step returned - when the frame was due
 *           (the OS's wake-up lateness + step): the stall as the game sees it,
 *           the same definition as bench/autogen_concurrency.py's frame thread.
 * A frame more than one frame behind is dropped (the schedule restarts from
 * now), as a game does, on both sides.
 *
 *   frame_host SCRIPT.lua
 * SCRIPT returns { start = fn(), finish = fn(step_ms, cpu_ms, delay_ms, frames, seconds) }.
 * Built by bench/concurrency.sh. */
#define _POSIX_C_SOURCE 200809L
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "agentbox.h"

#define FRAME_S (1.0 / 60)

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static void sleep_until(double t) {
  struct timespec ts = { (time_t)t, (long)((t - (double)(time_t)t) * 1e9) };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {}
}

static void push_array(lua_State *L, const double *xs, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushnumber(L, xs[i] * 1e3);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void call(lua_State *L, int script, const char *name, int nargs) {
  lua_getfield(L, script, name);
  lua_insert(L, -1 - nargs);
  if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
    fprintf(stderr, "frame_host: %s: %s\n", name, lua_tostring(L, -1));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: frame_host SCRIPT.lua\n");
    return 2;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_agentbox_core);
  lua_setfield(L, -2, "agentbox.core");
  lua_pop(L, 1);
  if (luaL_dofile(L, argv[1]) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "frame_host: cannot load %s: %s\n", argv[1], lua_tostring(L, -1));
    return 1;
  }
  int script = lua_gettop(L);
  call(L, script, "start", 0);

  size_t cap = 1 << 16, n = 0;
  double *step = malloc(cap * sizeof *step), *cpu = malloc(cap * sizeof *cpu), *delay = malloc(cap * sizeof *delay);
  if (!step || !cpu || !delay) return 1;
  double t_start = now_s(), due = t_start;
  for (;;) {
    double t0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    int live = agentbox_step(L, 0);
    double t1 = now_s(), c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    if (live < 0) {
      fprintf(stderr, "frame_host: agentbox is not loaded\n");
      return 1;
    }
    if (n == cap) {
      cap *= 2;
      step = realloc(step, cap * sizeof *step);
      cpu = realloc(cpu, cap * sizeof *cpu);
      delay = realloc(delay, cap * sizeof *delay);
      if (!step || !cpu || !delay) return 1;
    }
    step[n] = t1 - t0;
    cpu[n] = c1 - c0;
    delay[n] = t1 - due;
    n++;
    if (live == 0) break;
    due += FRAME_S;            /* the rest of the frame belongs to the game */
    if (now_s() > due + FRAME_S) due = now_s();
    sleep_until(due);
  }
  double total = now_s() - t_start;
  push_array(L, step, n);
  push_array(L, cpu, n);
  push_array(L, delay, n);
  lua_pushinteger(L, (lua_Integer)n);
  lua_pushnumber(L, total);
  call(L, script, "finish", 5);
  lua_close(L);
  free(step);
  free(cpu);
  free(delay);
  return 0;
}
