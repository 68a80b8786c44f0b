/* core.protect_host(): make this process non-dumpable before it runs
 * model-written code. A non-dumpable process's /proc/<pid>/{environ,mem,
 * maps,fd,...} belong to root, and ptrace by a process of the same uid is
 * refused unless that process has CAP_SYS_PTRACE; so code running as the
 * host's (non-root) uid can no longer read the API keys in its environment
 * or its heap, nor attach to it. Programs the host execs get the flag reset
 * by execve, so the code itself is unaffected. One-way on purpose: secrets
 * stay in freed heap memory after the last executor closes, and a process
 * the code left behind could attach as soon as the flag came back. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include "core.h"

static int l_protect_host(lua_State *L) {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "agentbox: prctl(PR_SET_DUMPABLE, 0) failed: %s", strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.dumpable() -> false once protect_host() ran (or the host did it) */
static int l_dumpable(lua_State *L) {
  lua_pushboolean(L, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1);
  return 1;
}

void ab_open_protect(lua_State *L) {
  lua_pushcfunction(L, l_protect_host);
  lua_setfield(L, -2, "protect_host");
  lua_pushcfunction(L, l_dumpable);
  lua_setfield(L, -2, "dumpable");
}
