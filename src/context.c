/* The per-lua_State context: one userdata holding the reactor (epoll set,
 * timer heap, ready list), the curl multi handle and the spawn server, found
 * through one registry slot. Its user value is the weak table of live
 * handles (handle.c). Its finalizer ends everything agentbox started in the
 * state: it runs at lua_close after every handle's (see ctx_gc). */
#include <errno.h>
#include <string.h>
#include "core.h"

/* The context lives in the registry, not in upvalues of the core functions
 * (lua-cjson's way): agentbox_timeout and agentbox_fd (agentbox.h) are
 * called by the host with no closure of ours on the stack, and handles'
 * finalizers get the context from their user value, so the registry is the
 * one place every caller can reach; upvalues would be a second way to the
 * same object. The key is the address of this constant, not a name: no other
 * library can collide with it, and a host that links agentbox statically and
 * also loads core.so gets one context per copy of the code. */
static const char ctx_key = 0;
#define CTX_MT "agentbox.context"

/* Runs at lua_close after every handle's __gc: each handle holds the context
 * as its user value, and was marked for finalization after it (Lua
 * finalizes in reverse order), so handles never see a freed reactor. */
static int ctx_gc(lua_State *L) {
  ab_ctx *c = luaL_checkudata(L, 1, CTX_MT);
  ab_reactor_free(c);
  return 0;
}

ab_ctx *ab_ctx_push(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key) == LUA_TUSERDATA) return lua_touserdata(L, -1);
  return NULL;
}

static ab_ctx *ctx_new(lua_State *L) {
  ab_ctx *c = lua_newuserdatauv(L, sizeof *c, 1);
  if (ab_reactor_init(c) != 0) luaL_error(L, "agentbox: epoll_create1 failed: %s", strerror(errno));
  if (luaL_newmetatable(L, CTX_MT)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  /* handles are found by pointer but not kept alive by the reactor */
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
  return c;
}

ab_ctx *ab_ctx_get(lua_State *L) {
  ab_ctx *c = ab_ctx_push(L);
  if (!c) {
    lua_pop(L, 1);
    c = ctx_new(L);
  }
  lua_pop(L, 1);
  /* only a finalizer that runs after the context's can get here */
  if (c->closed) luaL_error(L, "agentbox: the lua_State is closing");
  return c;
}
