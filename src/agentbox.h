/* agentbox.h: the C embedding API for hosts (games, editors, tools).
 *
 * A host creates its lua_State, opens the standard libraries, runs
 * `require "agentbox"` and its own Lua that calls agentbox.spawn(...), then
 * calls agentbox_step(L, 0) once per frame. Nothing here blocks when
 * timeout_ms is 0. Each lua_State has its own reactor; two states in one
 * process are independent. Not thread-safe per state (like Lua itself).
 * lua_close(L) ends what agentbox started in L: processes are cancelled,
 * requests aborted, descriptors closed, the spawn server reaped (lua_close
 * waits for it about 250 ms at most, then kills it). */
#ifndef AGENTBOX_H
#define AGENTBOX_H

#include <lua.h>

/* The release: the one place it is written. agentbox.version is this string;
 * `make rock-check` fails unless the newest rockspec and CHANGELOG.md agree. */
#define AGENTBOX_VERSION "0.2.0"

/* core.so is built with -fvisibility=hidden: these are its only exports. */
#if defined(__GNUC__)
#define AGENTBOX_API __attribute__((visibility("default")))
#else
#define AGENTBOX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The Lua module's entry point, for hosts that link agentbox statically and
 * put it in package.preload["agentbox.core"]. */
AGENTBOX_API int luaopen_agentbox_core(lua_State *L);

/* Advance every agentbox task that is ready. timeout_ms 0 never blocks,
 * -1 waits for the next event. Returns the number of live tasks, or -1 when
 * agentbox is not loaded in L (an error message is then on no stack: call
 * require "agentbox" first). Errors inside tasks never propagate here: they
 * go to the task and to agentbox.on_error. */
AGENTBOX_API int agentbox_step(lua_State *L, int timeout_ms);

/* Milliseconds until agentbox next needs a step without any fd becoming
 * readable: 0 when work is pending now, -1 when only I/O can wake it (or
 * agentbox is not loaded in L). */
AGENTBOX_API int agentbox_timeout(lua_State *L);

/* A single file descriptor (an epoll set) that becomes readable whenever
 * agentbox has I/O to process, for hosts with their own poller; -1 when
 * agentbox is not loaded in L. */
AGENTBOX_API int agentbox_fd(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
