/* See output.h. */
#include <string.h>
#include "output.h"

typedef struct { int stream; size_t off, len; } chunk;

void ab_out_init(ab_out *o, size_t max, int stream, const char *const *names) {
  memset(o, 0, sizeof *o);
  o->max = max;
  o->stream = stream;
  o->names = names;
}

void ab_out_free(ab_out *o) {
  ab_buf_free(&o->merged);
  for (int i = 0; i < AB_OUT_STREAMS; i++) ab_buf_free(&o->per[i]);
  ab_buf_free(&o->chunks);
}

int ab_out_keep(ab_out *o, int s, const char *data, size_t n) {
  size_t room = o->max > o->merged.len ? o->max - o->merged.len : 0;
  size_t k = n < room ? n : room;
  o->dropped += n - k;
  if (!k) return 0;
  size_t off = o->merged.len;
  if (ab_buf_add(&o->merged, data, k) || ab_buf_add(&o->per[s], data, k)) {
    o->dropped += k;      /* out of memory: count it as dropped, never crash */
    return 0;
  }
  if (!o->stream) return 0;    /* nobody reads chunks: the result is enough */
  chunk *last = o->chunks.len ? (chunk *)(void *)(o->chunks.p + o->chunks.len) - 1 : NULL;
  if (last && last->stream == s && last->off + last->len == off) {
    last->len += k;
  } else {
    chunk c = {s, off, k};
    if (ab_buf_add(&o->chunks, (const char *)&c, sizeof c)) return 0;
  }
  return 1;
}

int ab_out_pending(const ab_out *o) {
  return o->chunks.len > 0;
}

void ab_out_push_chunks(lua_State *L, ab_out *o) {
  size_t n = o->chunks.len / sizeof(chunk);
  if (n == 0) {
    luaL_pushfail(L);
    return;
  }
  const chunk *cs = (const chunk *)(void *)o->chunks.p;
  lua_createtable(L, (int)(2 * n), 0);
  int k = 0;
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, o->names[cs[i].stream]);
    lua_rawseti(L, -2, ++k);
    lua_pushlstring(L, o->merged.p + cs[i].off, cs[i].len);
    lua_rawseti(L, -2, ++k);
  }
  /* records already read are dropped so a chatty program costs no memory */
  o->chunks.len = 0;
}

void ab_out_set_fields(lua_State *L, const ab_out *o) {
  lua_pushlstring(L, o->merged.p ? o->merged.p : "", o->merged.len);
  lua_setfield(L, -2, "output");
  for (int i = 0; i < AB_OUT_STREAMS && o->names[i]; i++) {
    lua_pushlstring(L, o->per[i].p ? o->per[i].p : "", o->per[i].len);
    lua_setfield(L, -2, o->names[i]);
  }
  lua_pushinteger(L, (lua_Integer)o->dropped);
  lua_setfield(L, -2, "dropped");
}
