/* core.spawn_connect(path, uid): the host's connection to a block server
 * it did not start (blocksrv.c, `agentbox-sup --listen` inside a warm
 * container). Then core.spawn{ server = conn, ... } sends the run there
 * over the spawn server protocol (spawnproto.h): the program's pipes
 * travel as SCM_RIGHTS, so its output reaches the host directly and proc.c
 * supervises the run as it does any other (host deadline, capped output).
 * The peer is checked once, by SO_PEERCRED: it must be uid (the
 * container's root), so a socket the sandbox user planted is refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "core.h"
#include "spawner.h"
#include "spawnreq.h"

#define CONN_MT "agentbox.spawnconn"

typedef struct {
  ab_handle h;
  ab_spawner *s;
} conn_ud;

static int fail(lua_State *L, const char *what, int e) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", what, strerror(e));
  lua_pushliteral(L, "spawn");
  return 3;
}

static int l_connect(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  lua_Integer want = luaL_checkinteger(L, 2);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  luaL_argcheck(L, n > 0 && n < sizeof sa.sun_path && strlen(path) == n, 1, "not a socket path");
  memcpy(sa.sun_path, path, n);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(L, "socket", errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    return fail(L, "connect", e);
  }
  struct ucred cr;
  socklen_t cl = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cl != sizeof cr) {
    int e = errno;
    close(fd);
    return fail(L, "SO_PEERCRED", e);
  }
  if ((lua_Integer)cr.uid != want) {
    close(fd);
    luaL_pushfail(L);
    lua_pushfstring(L, "the block server's socket belongs to uid %d, not %d: refused", (int)cr.uid, (int)want);
    lua_pushliteral(L, "spawn");
    return 3;
  }
  conn_ud *c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  ab_handle_init(L, &c->h, CONN_MT);
  c->s = ab_spawner_connect(c->h.ctx, fd);
  if (!c->s) {
    int e = errno;
    close(fd);
    ab_handle_forget(L, &c->h);
    return fail(L, "connect", e);
  }
  return 1;
}

ab_spawner *ab_spawnconn_check(lua_State *L, int idx) {
  return ((conn_ud *)ab_handle_check(L, idx, CONN_MT))->s;
}

static int c_alive(lua_State *L) {
  conn_ud *c = (conn_ud *)ab_handle_check(L, 1, CONN_MT);
  lua_pushboolean(L, ab_spawner_alive(c->s));
  return 1;
}

static int c_close(lua_State *L) {
  conn_ud *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->h.closed) return 0;
  ab_spawner *s = c->s;
  c->s = NULL;
  if (s) {
    ab_spawner_disconnect(s);   /* the server cancels what still runs */
    ab_spawner_unref(s);        /* runs in flight keep theirs */
  }
  ab_handle_forget(L, &c->h);
  return 0;
}

void ab_open_spawnconn(lua_State *L) {
  static const luaL_Reg m[] = {{"close", c_close}, {"alive", c_alive}, {NULL, NULL}};
  ab_handle_register(L, CONN_MT, m);
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "spawn_connect");
}
