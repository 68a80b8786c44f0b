/* Docker Engine byte formats (see dockerio.h): the exec stream demultiplexer
 * and a ustar writer for PUT /containers/{id}/archive. */
#include <string.h>
#include "dockerio.h"

/* {type, 0, 0, 0, be32 length} then payload; chunk boundaries have nothing
 * to do with frame boundaries, and zero-length frames are legal. */
int ab_demux_each(ab_demux *d, const char *p, size_t n, int (*cb)(void *ud, int type, const char *p, size_t n),
                  void *ud) {
  int notify = 0;
  while (n > 0 && !d->bad) {
    if (d->frame_left == 0) {
      size_t k = 8 - d->fh_got;
      if (k > n) k = n;
      memcpy(d->fh + d->fh_got, p, k);
      d->fh_got += k;
      p += k;
      n -= k;
      if (d->fh_got < 8) break;
      d->fh_got = 0;
      int type = d->fh[0];
      if (type < 1 || type > 3) {
        d->bad = 1;
        break;
      }
      d->frame_type = type - 1;
      d->frame_left = ((size_t)d->fh[4] << 24) | ((size_t)d->fh[5] << 16) | ((size_t)d->fh[6] << 8) | d->fh[7];
      continue;
    }
    size_t k = d->frame_left < n ? d->frame_left : n;
    notify |= cb(ud, d->frame_type, p, k);
    d->frame_left -= k;
    p += k;
    n -= k;
  }
  return notify;
}

static int keep(void *ud, int type, const char *p, size_t n) {
  return ab_out_keep(ud, type, p, n);
}

int ab_demux_feed(ab_demux *d, ab_out *out, const char *p, size_t n) {
  return ab_demux_each(d, p, n, keep, out);
}

/* ustar header: octal numbers, checksum over the header with the checksum
 * field read as spaces. */
static void octal(char *dst, size_t width, unsigned long long v) {
  dst[width - 1] = 0;
  for (size_t i = width - 1; i > 0; i--) {
    dst[i - 1] = (char)('0' + (v & 7));
    v >>= 3;
  }
}

static int opt_int(lua_State *L, int t, const char *k, lua_Integer dflt, lua_Integer *out) {
  int ty = lua_getfield(L, t, k);
  *out = dflt;
  if (ty != LUA_TNIL) {
    if (!lua_isinteger(L, -1)) return luaL_error(L, "tar: entry field '%s' must be an integer", k);
    *out = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return 0;
}

/* core.tar{ {name=, data=, mode=, uid=, gid=, mtime=, type="file"|"dir"}, ... } -> string */
static int l_tar(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_Buffer b;
  lua_Integer n = luaL_len(L, 1);
  luaL_buffinit(L, &b);
  /* buffer operations need a balanced stack: entry fields are popped before
   * each add (the strings stay alive through the entry table) */
  int base = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE) return luaL_error(L, "tar: entry %d must be a table", (int)i);
    int t = lua_gettop(L);
    lua_getfield(L, t, "name");
    size_t nl;
    const char *name = lua_tolstring(L, -1, &nl);
    if (!name || nl == 0) return luaL_error(L, "tar: entry %d needs a name", (int)i);
    lua_getfield(L, t, "type");
    const char *type = luaL_optstring(L, -1, "file");
    int dir = strcmp(type, "dir") == 0;
    if (!dir && strcmp(type, "file") != 0) return luaL_error(L, "tar: entry type must be \"file\" or \"dir\"");
    lua_getfield(L, t, "data");
    size_t dl = 0;
    const char *data = dir ? "" : lua_tolstring(L, -1, &dl);
    if (!data) return luaL_error(L, "tar: file entry '%s' needs string data", name);
    lua_Integer mode, uid, gid, mtime;
    opt_int(L, t, "mode", dir ? 0755 : 0644, &mode);
    opt_int(L, t, "uid", 0, &uid);
    opt_int(L, t, "gid", 0, &gid);
    opt_int(L, t, "mtime", 0, &mtime);
    char h[512];
    memset(h, 0, sizeof h);
    /* names over 100 bytes go in prefix/name, split at a slash */
    const char *nm = name, *prefix = NULL;
    size_t pl = 0, ml = nl;
    if (nl > 100) {
      const char *cut = NULL;
      for (const char *q = name; q < name + nl; q++)
        if (*q == '/' && (size_t)(q - name) <= 155 && nl - (size_t)(q - name) - 1 <= 100) { cut = q; break; }
      if (!cut) return luaL_error(L, "tar: name too long for ustar: %s", name);
      prefix = name;
      pl = (size_t)(cut - name);
      nm = cut + 1;
      ml = nl - pl - 1;
    }
    memcpy(h, nm, ml);
    if (dir && ml < 100 && nm[ml - 1] != '/') h[ml] = '/';
    octal(h + 100, 8, (unsigned long long)mode);
    octal(h + 108, 8, (unsigned long long)uid);
    octal(h + 116, 8, (unsigned long long)gid);
    octal(h + 124, 12, (unsigned long long)dl);
    octal(h + 136, 12, (unsigned long long)mtime);
    memset(h + 148, ' ', 8);
    h[156] = dir ? '5' : '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    if (prefix) memcpy(h + 345, prefix, pl);
    unsigned sum = 0;
    for (int k = 0; k < 512; k++) sum += (unsigned char)h[k];
    octal(h + 148, 7, sum);
    h[155] = ' ';
    lua_settop(L, base);
    luaL_addlstring(&b, h, 512);
    luaL_addlstring(&b, data, dl);
    size_t pad = (512 - dl % 512) % 512;
    memset(h, 0, sizeof h);
    luaL_addlstring(&b, h, pad);
  }
  char z[1024];
  memset(z, 0, sizeof z);
  luaL_addlstring(&b, z, sizeof z);
  luaL_pushresult(&b);
  return 1;
}

void ab_open_dockerio(lua_State *L) {
  lua_pushcfunction(L, l_tar);
  lua_setfield(L, -2, "tar");
}
