/* The handle base shared by processes, timers and HTTP requests: one
 * metatable shape (methods, close as __gc and __close, __tostring), the
 * context as user value, and the weak table through which core.step
 * returns the handles that had activity while they live. */
#include <string.h>
#include "core.h"

/* Pushes the context's weak handle table, or nil before the first require. */
static int push_handles(lua_State *L) {
  if (!ab_ctx_push(L)) return 0;
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
  return lua_istable(L, -1);
}

/* upvalue 1: the kind, so a misdirected __tostring raises instead of reading */
static int handle_tostring(lua_State *L) {
  ab_handle *h = luaL_checkudata(L, 1, lua_tostring(L, lua_upvalueindex(1)));
  if (h->closed) lua_pushfstring(L, "%s (closed)", h->kind);
  else lua_pushfstring(L, "%s (%p)", h->kind, (void *)h);
  return 1;
}

void ab_handle_register(lua_State *L, const char *kind, const luaL_Reg *methods) {
  lua_CFunction close = NULL;
  for (const luaL_Reg *r = methods; r->name; r++)
    if (strcmp(r->name, "close") == 0) close = r->func;
  if (!close) luaL_error(L, "agentbox: handle type %s has no close method", kind);
  if (luaL_newmetatable(L, kind)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushstring(L, kind);
    lua_pushcclosure(L, handle_tostring, 1);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void ab_handle_init(lua_State *L, ab_handle *h, const char *kind) {
  h->ctx = ab_ctx_get(L);
  h->kind = kind;
  h->queued = 0;
  h->closed = 0;
  luaL_setmetatable(L, kind);
  /* the handle keeps the context alive, so the context is finalized last */
  ab_ctx_push(L);
  lua_setiuservalue(L, -2, 1);
  push_handles(L);
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
  if (push_handles(L)) {
    lua_pushnil(L);
    lua_rawsetp(L, -2, h);
  }
  lua_pop(L, 1);
}

void ab_handle_push_ready(lua_State *L, ab_ctx *c) {
  lua_createtable(L, (int)c->nready, 0);
  push_handles(L);   /* c exists, so its table does */
  int n = 0;
  for (size_t i = 0; i < c->nready; i++) {
    ab_handle *h = c->ready[i];
    h->queued = 0;
    if (lua_rawgetp(L, -1, h) == LUA_TUSERDATA) lua_rawseti(L, -3, ++n);
    else lua_pop(L, 1);
  }
  c->nready = 0;
  lua_pop(L, 1);
}
