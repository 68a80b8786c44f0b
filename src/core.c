/* luaopen_agentbox_core: the per-lua_State context and the handle registry.
 * All state hangs off the registry so two lua_States (or a second require
 * after busted resets package.loaded) are independent. */
#include <errno.h>
#include <string.h>
#include "core.h"
#include "agentbox.h"
#include "owner.h"

/* The context's registry slot and its metatable's name must differ:
 * luaL_newmetatable keeps the metatable in the registry under its name, so
 * one name for both made the context its own "metatable" and ctx_gc's
 * luaL_checkudata fail, and no state was ever finalized. */
#define CTX_KEY "agentbox.ctx"
#define CTX_MT "agentbox.ctx.meta"
#define HANDLES_KEY "agentbox.handles"

/* Runs at lua_close after every handle's __gc: each handle holds the context
 * as its user value, and was marked for finalization after it (Lua
 * finalizes in reverse order), so handles never see a freed reactor. */
static int ctx_gc(lua_State *L) {
  ab_ctx *c = luaL_checkudata(L, 1, CTX_MT);
  ab_reactor_free(c);
  return 0;
}

ab_ctx *ab_ctx_get(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY) == LUA_TUSERDATA) {
    ab_ctx *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    /* only a finalizer that runs after the context's can get here */
    if (c->closed) luaL_error(L, "agentbox: the lua_State is closing");
    return c;
  }
  lua_pop(L, 1);
  ab_ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  if (ab_reactor_init(c) != 0) luaL_error(L, "agentbox: epoll_create1 failed: %s", strerror(errno));
  if (luaL_newmetatable(L, CTX_MT)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
  /* handles are found by pointer but not kept alive by the reactor */
  lua_newtable(L);
  lua_newtable(L);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, HANDLES_KEY);
  return c;
}

void ab_handle_init(lua_State *L, ab_handle *h, const char *kind) {
  h->ctx = ab_ctx_get(L);
  h->kind = kind;
  h->queued = 0;
  h->closed = 0;
  luaL_setmetatable(L, kind);
  /* the handle keeps the context alive, so the context is finalized last */
  lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
  lua_setiuservalue(L, -2, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, HANDLES_KEY);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, h);
  lua_pop(L, 1);
}

ab_handle *ab_handle_check(lua_State *L, int idx, const char *kind) {
  ab_handle *h = luaL_checkudata(L, idx, kind);
  if (h->closed) luaL_error(L, "attempt to use a closed %s", kind);
  return h;
}

void ab_handle_forget(lua_State *L, ab_handle *h) {
  ab_unnotify(h);
  h->closed = 1;
  if (lua_getfield(L, LUA_REGISTRYINDEX, HANDLES_KEY) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_rawsetp(L, -2, h);
  }
  lua_pop(L, 1);
}

int ab_handle_tostring(lua_State *L) {
  ab_handle *h = lua_touserdata(L, 1);
  if (h->closed) lua_pushfstring(L, "%s (closed)", h->kind);
  else lua_pushfstring(L, "%s (%p)", h->kind, (void *)h);
  return 1;
}

double ab_opt_number(lua_State *L, int t, const char *k, double dflt) {
  double v = dflt;
  int ty = lua_getfield(L, t, k);
  if (ty != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

const char *ab_opt_string(lua_State *L, int t, const char *k, const char *dflt) {
  const char *v = dflt;
  int ty = lua_getfield(L, t, k);
  if (ty != LUA_TNIL) {
    if (ty != LUA_TSTRING) luaL_error(L, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
    v = lua_tostring(L, -1);   /* stays valid: the option table holds it */
  }
  lua_pop(L, 1);
  return v;
}

/* core.step(timeout_ms) -> array of handles that had activity */
static int l_step(lua_State *L) {
  ab_ctx *c = ab_ctx_get(L);
  lua_Integer ms = luaL_optinteger(L, 1, 0);
  if (ms < -1) ms = -1;
  if (ms > 0x7fffffff) ms = 0x7fffffff;
  if (ab_reactor_step(c, (int)ms) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "agentbox: epoll_wait failed: %s", strerror(errno));
    return 2;
  }
  lua_createtable(L, (int)c->nready, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, HANDLES_KEY);
  int n = 0;
  for (size_t i = 0; i < c->nready; i++) {
    ab_handle *h = c->ready[i];
    h->queued = 0;
    if (lua_rawgetp(L, -1, h) == LUA_TUSERDATA) lua_rawseti(L, -3, ++n);
    else lua_pop(L, 1);
  }
  c->nready = 0;
  lua_pop(L, 1);
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

static const luaL_Reg funcs[] = {
  {"step", l_step},
  {"timeout", l_timeout},
  {"fd", l_fd},
  {"owner", ab_l_owner},
  {"owner_alive", ab_l_owner_alive},
  {"hostname", ab_l_hostname},
  {NULL, NULL}
};

int luaopen_agentbox_core(lua_State *L) {
  ab_ctx_get(L);
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  ab_open_proc(L);
  ab_open_timer(L);
  ab_open_http(L);
  ab_open_util(L);
  ab_open_embed(L);
  ab_open_dockerio(L);
  ab_open_workspace(L);
  ab_open_protect(L);
  lua_pushliteral(L, AGENTBOX_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
