/* The embedding API (agentbox.h): thin C entry points over the Lua task
 * scheduler, which lua/agentbox/task.lua stores in the registry. */
#include "agentbox.h"
#include "core.h"

#define SCHED_KEY "agentbox.scheduler"

/* registry[SCHED_KEY] = { step = function(ms) -> live, pending = function() -> bool } */
static int sched_call(lua_State *L, const char *fn, int arg, int *out) {
  int top = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, SCHED_KEY) != LUA_TTABLE ||
      lua_getfield(L, -1, fn) != LUA_TFUNCTION) {
    lua_settop(L, top);
    return -1;
  }
  lua_pushinteger(L, arg);
  int ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
  if (ok) *out = (int)lua_tointeger(L, -1);
  lua_settop(L, top);
  return ok ? 0 : -1;
}

int agentbox_step(lua_State *L, int timeout_ms) {
  int live = -1;
  if (sched_call(L, "step", timeout_ms, &live) != 0) return -1;
  return live;
}

/* The host calls these outside any protected call, so they must not raise
 * (ab_ctx_get would, on a closing state): without a live context there is
 * nothing to wait for. */
static ab_ctx *live_ctx(lua_State *L) {
  ab_ctx *c = ab_ctx_push(L);
  lua_pop(L, 1);
  return c && !c->closed ? c : NULL;
}

int agentbox_timeout(lua_State *L) {
  int runnable = 0;
  if (sched_call(L, "runnable", 0, &runnable) == 0 && runnable) return 0;
  ab_ctx *c = live_ctx(L);
  return c ? ab_reactor_timeout(c) : -1;
}

int agentbox_fd(lua_State *L) {
  ab_ctx *c = live_ctx(L);
  return c ? c->epfd : -1;
}

/* core.set_scheduler{ step = fn, runnable = fn }: how agentbox_step finds Lua */
static int l_set_scheduler(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, SCHED_KEY);
  return 0;
}

void ab_open_embed(lua_State *L) {
  lua_pushcfunction(L, l_set_scheduler);
  lua_setfield(L, -2, "set_scheduler");
}
