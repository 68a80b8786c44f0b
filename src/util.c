/* Small byte helpers the Lua side needs but should not hand-write: md5 (for
 * AutoGen-identical file names), UTF-8 repair, PATH lookup; and timers. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "core.h"
#include "sysutil.h"

static int l_md5(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dn = 0;
  if (!EVP_Digest(s, n, d, &dn, EVP_md5(), NULL)) return luaL_error(L, "agentbox: md5 failed in OpenSSL");
  char hex[2 * EVP_MAX_MD_SIZE];
  const char digits[] = "0123456789abcdef";
  for (unsigned int i = 0; i < dn; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  lua_pushlstring(L, hex, 2 * dn);
  return 1;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid.
 * Rejects overlongs, surrogates and code points past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else return 0;
  if (n < len) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

static int l_utf8_clean(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  size_t i = 0;
  while (i < n) {               /* fast path: most output is already valid */
    size_t k = utf8_len(s + i, n - i);
    if (!k) break;
    i += k;
  }
  if (i == n) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, (const char *)s, i);
  while (i < n) {
    size_t k = utf8_len(s + i, n - i);
    if (k) {
      luaL_addlstring(&b, (const char *)s + i, k);
      i += k;
    } else {
      luaL_addlstring(&b, "\xEF\xBF\xBD", 3);
      i++;
    }
  }
  luaL_pushresult(&b);
  return 1;
}

/* core.which(name, PATH) -> absolute path of an executable, or nil */
static int l_which(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *path = luaL_optstring(L, 2, AB_DEFAULT_PATH);
  if (strchr(name, '/')) {
    if (access(name, X_OK) == 0) lua_pushstring(L, name);
    else luaL_pushfail(L);
    return 1;
  }
  /* the supervisor's own search (sysutil.c), so `which` finds what runs */
  char full[PATH_MAX];
  for (const char *p = path; ab_path_next(&p, name, full, sizeof full);) {
    if (access(full, X_OK) == 0) {
      lua_pushstring(L, full);
      return 1;
    }
  }
  luaL_pushfail(L);
  return 1;
}

/* core.mkdir_p(path, mode) -> true | nil, msg */
static int l_mkdir_p(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
  if (n == 0 || n >= PATH_MAX) return luaL_error(L, "mkdir_p: bad path length");
  char buf[PATH_MAX];
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, mode) != 0 && errno != EEXIST) {
      luaL_pushfail(L);
      lua_pushfstring(L, "cannot create directory %s: %s", buf, strerror(errno));
      return 2;
    }
    buf[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s exists and is not a directory", path);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.realpath(path) -> absolute path with links resolved | nil, msg */
static int l_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *r = realpath(path, NULL);
  if (!r) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushstring(L, r);
  free(r);
  return 1;
}

static int l_geteuid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

void ab_spawnattr_clean(posix_spawnattr_t *at) {
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_init(at);
  posix_spawnattr_setsigmask(at, &none);
  posix_spawnattr_setsigdefault(at, &all);
  posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* core.isatty(fd): transcripts are coloured only on a terminal */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* timers: a handle that becomes done at a deadline */
#define TIMER_MT "agentbox.timer"
typedef struct {
  ab_handle h;
  ab_timer t;
  int fired;
} timer_ud;

static void timer_cb(ab_timer *t) {
  timer_ud *u = t->owner;
  u->fired = 1;
  ab_notify(&u->h);
}

static int l_timer(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  timer_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  ab_handle_init(L, &u->h, TIMER_MT);
  u->t.heap_idx = -1;
  u->t.cb = timer_cb;
  u->t.owner = u;
  ab_timer_start(u->h.ctx, &u->t, ab_now_ms() + (int64_t)(s * 1000.0 + 0.5));
  return 1;
}

static int timer_close(lua_State *L) {
  timer_ud *u = luaL_checkudata(L, 1, TIMER_MT);
  if (!u->h.closed) {
    ab_timer_stop(u->h.ctx, &u->t);
    ab_handle_forget(L, &u->h);
  }
  return 0;
}

static int timer_done(lua_State *L) {
  timer_ud *u = (timer_ud *)ab_handle_check(L, 1, TIMER_MT);
  lua_pushboolean(L, u->fired);
  return 1;
}

void ab_open_timer(lua_State *L) {
  static const luaL_Reg m[] = {
    {"close", timer_close}, {"done", timer_done}, {"ready", timer_done}, {NULL, NULL}};
  if (luaL_newmetatable(L, TIMER_MT)) {
    luaL_newlib(L, m);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, timer_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, timer_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ab_handle_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_timer);
  lua_setfield(L, -2, "timer");
}

void ab_open_util(lua_State *L) {
  static const luaL_Reg f[] = {
    {"md5", l_md5}, {"utf8_clean", l_utf8_clean}, {"which", l_which}, {"now", l_now},
    {"mkdir_p", l_mkdir_p}, {"realpath", l_realpath}, {"isatty", l_isatty},
    {"geteuid", l_geteuid}, {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
