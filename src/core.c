/* luaopen_agentbox_core: the module table. Each part (one file per concept,
 * see doc/internals.md) adds its functions; the context is made here so the
 * first require, not the first call, pays for the epoll set. */
#include "core.h"
#include "agentbox.h"

int luaopen_agentbox_core(lua_State *L) {
  ab_ctx_get(L);
  lua_newtable(L);
  ab_open_reactor(L);
  ab_open_timer(L);
  ab_open_proc(L);
  ab_open_http(L);
  ab_open_dockerio(L);
  ab_open_workspace(L);
  ab_open_protect(L);
  ab_open_owner(L);
  ab_open_text(L);
  ab_open_system(L);
  ab_open_privfile(L);
  ab_open_embed(L);
  ab_open_spawnconn(L);
  lua_pushliteral(L, AGENTBOX_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
