/* Owner identity (owner.c): which process owns a container, a temporary
 * work_dir or a cgroup, told apart from a later process that reuses its pid. */
#ifndef AGENTBOX_OWNER_H
#define AGENTBOX_OWNER_H

#include <lua.h>

int ab_l_owner(lua_State *L);        /* core.owner() -> "<pid>-<start>" */
int ab_l_owner_alive(lua_State *L);  /* core.owner_alive(id) -> boolean */
int ab_l_hostname(lua_State *L);     /* core.hostname() -> string */

#endif
