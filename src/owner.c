/* The owner identity of this process, so that Lua never reads a pid: a pid
 * alone names a later process once it is reused, so the identity is the pid
 * with the process's start time (field 22 of /proc/<pid>/stat, clock ticks
 * since boot), "<pid>-<start>". It names temporary work_dirs
 * (agentbox-<id>-<random>) and, split in two, labels containers
 * (agentbox.pid, agentbox.started); a later start asks owner_alive to reap
 * what a dead owner left. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>
#include "core.h"
#include "sysutil.h"

/* The start time of pid (digits, NUL-terminated in out), or -1 when there is
 * no such process or it has ended: a zombie or a dying process keeps its
 * start time until its parent reaps it, which for an orphan may take init a
 * while, and it must count as gone. */
static int start_time(pid_t pid, char *out, size_t size) {
  char buf[1024];
  if (ab_proc_read(pid, "stat", buf, sizeof buf) < 0) return -1;
  const char *p = ab_proc_stat_state(buf);   /* field 3 */
  if (!p || *p == 'Z' || *p == 'X') return -1;
  for (int field = 3; field < 22; field++) {
    while (*p && *p != ' ') p++;
    if (*p != ' ') return -1;
    p++;
  }
  size_t n = 0;
  while (p[n] >= '0' && p[n] <= '9') n++;
  if (n == 0 || n >= size || (p[n] != ' ' && p[n] != '\n' && p[n] != 0)) return -1;
  memcpy(out, p, n);
  out[n] = 0;
  return 0;
}

static int l_owner(lua_State *L) {
  pid_t pid = getpid();
  char started[32];
  if (start_time(pid, started, sizeof started) != 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "agentbox: cannot read this process's start time from /proc/self/stat (is /proc mounted?)");
    return 2;
  }
  lua_pushfstring(L, "%d-%s", (int)pid, started);
  return 1;
}

/* A malformed id names no live process: what carries it counts as left by
 * a dead owner (a container labelled by hand, a stray directory name). */
static int l_owner_alive(lua_State *L) {
  size_t len;
  const char *id = luaL_checklstring(L, 1, &len);
  long long pid = 0;
  size_t i = 0;
  while (i < len && i < 10 && id[i] >= '0' && id[i] <= '9') pid = pid * 10 + (id[i++] - '0');
  int ok = i > 0 && i + 1 < len && id[i] == '-' && pid > 0 && pid <= 0x7fffffff && len - i - 1 < 32;
  const char *want = ok ? id + i + 1 : "";
  size_t wlen = ok ? len - i - 1 : 0;
  for (size_t k = 0; ok && k < wlen; k++) ok = want[k] >= '0' && want[k] <= '9';
  char got[32];
  lua_pushboolean(L, ok && start_time((pid_t)pid, got, sizeof got) == 0 && strlen(got) == wlen &&
                     memcmp(got, want, wlen) == 0);
  return 1;
}

/* The host part of the container labels: containers of other hosts sharing
 * a daemon are never reaped from here (their owners cannot be checked). */
static int l_hostname(lua_State *L) {
  char name[256];
  if (gethostname(name, sizeof name) != 0 || name[0] == 0) {
    lua_pushliteral(L, "unknown");
    return 1;
  }
  name[sizeof name - 1] = 0;
  lua_pushstring(L, name);
  return 1;
}

void ab_open_owner(lua_State *L) {
  lua_pushcfunction(L, l_owner);
  lua_setfield(L, -2, "owner");
  lua_pushcfunction(L, l_owner_alive);
  lua_setfield(L, -2, "owner_alive");
  lua_pushcfunction(L, l_hostname);
  lua_setfield(L, -2, "hostname");
}
