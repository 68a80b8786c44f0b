/* A C host that opens and closes many lua_States one after the other, as an
 * editor or a game server does with one state per document or match. Each
 * state runs a Lua script (spec/support/states_state.lua) that requires
 * agentbox and uses processes, HTTP and timers, then the host closes it.
 * At the end it compares its open descriptors and its child processes
 * (zombies included: a child nobody reaps is a leak too) with what it had
 * before the first state. spec/lifecycle_spec.lua runs it.
 *
 * Usage: states_host SCRIPT N URL
 * Prints one line per 50 states and a last line
 *   "after N states: F fds (baseline B), C child processes (baseline D)"
 * and exits 0 only when both are back to the baseline. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "agentbox.h"

typedef struct {
  int fds, children, zombies, servers;
} counts;

static int is_number(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return 0;
  return 1;
}

/* Does /proc/<pid>/cmdline contain the argument `arg`? */
static int has_arg(const char *pid, const char *arg) {
  char path[320], buf[4096];
  snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
    if (strcmp(buf + i, arg) == 0) return 1;
  return 0;
}

/* What this process holds: descriptors (less the one reading the list) and
 * children (any state, zombies too), and how many children are agentbox's
 * spawn server (agentbox-sup --server). With `show`, the descriptors'
 * targets are printed, to say what leaked. */
static counts count(int show) {
  counts c = {0, 0, 0, 0};
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    perror("states_host: /proc/self/fd");
    exit(2);
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_number(e->d_name) || atoi(e->d_name) == dirfd(d)) continue;
    c.fds++;
    if (show) {
      char path[320], target[256];
      snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
      ssize_t n = readlink(path, target, sizeof target - 1);
      target[n < 0 ? 0 : n] = 0;
      printf("  fd %s -> %s\n", e->d_name, target);
    }
  }
  closedir(d);
  pid_t self = getpid();
  d = opendir("/proc");
  if (!d) {
    perror("states_host: /proc");
    exit(2);
  }
  while ((e = readdir(d))) {
    if (!is_number(e->d_name)) continue;
    char path[320], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;   /* gone between the listing and the open */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses */
    char *rp = strrchr(buf, ')');
    char st;
    int ppid;
    if (!rp || sscanf(rp + 1, " %c %d", &st, &ppid) != 2 || ppid != self) continue;
    c.children++;
    if (st == 'Z') c.zombies++;
    if (has_arg(e->d_name, "--server")) c.servers++;
    if (show) printf("  child %s state %c\n", e->d_name, st);
  }
  closedir(d);
  return c;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs one state; *close_ms is how long lua_close took (the context's
 * finalizer waits for the spawn server, within a bound). */
static int run_state(const char *script, int index, const char *url, int *servers, double *close_ms) {
  lua_State *L = luaL_newstate();
  if (!L) return -1;
  luaL_openlibs(L);
  /* agentbox is linked into this program: make require find it */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_agentbox_core);
  lua_setfield(L, -2, "agentbox.core");
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, index);
  lua_setfield(L, -2, "index");
  lua_pushstring(L, url);
  lua_setfield(L, -2, "url");
  lua_pushboolean(L, index % 2 == 1);   /* odd states are closed with work in flight */
  lua_setfield(L, -2, "live");
  lua_pushinteger(L, getpid());
  lua_setfield(L, -2, "host_pid");
  lua_setglobal(L, "STATE");
  int rc = 0;
  if (luaL_dofile(L, script) != LUA_OK) {
    fprintf(stderr, "states_host: state %d: %s\n", index, lua_tostring(L, -1));
    rc = -1;
  }
  /* while the state is open, its spawn server is a child of this host */
  *servers += count(0).servers > 0;
  double t0 = now_ms();
  lua_close(L);
  *close_ms = now_ms() - t0;
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 4 || atoi(argv[2]) < 1) {
    fprintf(stderr, "usage: states_host SCRIPT N URL\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *script = argv[1], *url = argv[3];
  int n = atoi(argv[2]), failed = 0, with_server = 0;
  double close_max[2] = {0, 0}, close_sum[2] = {0, 0};
  counts base = count(0);
  printf("host pid %d\n", (int)getpid());
  for (int i = 0; i < n; i++) {
    double ms = 0;
    if (run_state(script, i, url, &with_server, &ms) != 0) failed++;
    close_sum[i % 2] += ms;
    if (ms > close_max[i % 2]) close_max[i % 2] = ms;
    if ((i + 1) % 50 == 0) {
      counts c = count(0);
      printf("after %d states: %d fds, %d child processes (%d zombies)\n", i + 1, c.fds, c.children, c.zombies);
    }
  }
  counts end = count(0);
  printf("states that failed: %d; states that had a spawn server: %d\n", failed, with_server);
  printf("lua_close: mean %.2f ms, max %.2f ms when idle; mean %.2f ms, max %.2f ms with work in flight\n",
         close_sum[0] / ((n + 1) / 2), close_max[0], n > 1 ? close_sum[1] / (n / 2) : 0.0, close_max[1]);
  printf("after %d states: %d fds (baseline %d), %d child processes (baseline %d), %d zombies (baseline %d)\n",
         n, end.fds, base.fds, end.children, base.children, end.zombies, base.zombies);
  int ok = failed == 0 && with_server == n && end.fds == base.fds && end.children == base.children;
  if (!ok) {
    printf("what this host holds now:\n");
    count(1);
  }
  return ok ? 0 : 1;
}
