/* Bytes the Lua side needs but should not hand-write: md5 (AutoGen names a
 * saved code file by the md5 of its code), sha256 (the audit log names the
 * code that ran by a digest nobody can collide) and UTF-8 repair (block
 * output goes back to the model as JSON text, and a process may write any
 * bytes). */
#include <openssl/evp.h>
#include "core.h"

/* Pushes the lowercase hex digest of the string at index 1. */
static int push_digest(lua_State *L, const EVP_MD *md, const char *name) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dn = 0;
  if (!EVP_Digest(s, n, d, &dn, md, NULL)) return luaL_error(L, "agentbox: %s failed in OpenSSL", name);
  char hex[2 * EVP_MAX_MD_SIZE];
  const char digits[] = "0123456789abcdef";
  for (unsigned int i = 0; i < dn; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  lua_pushlstring(L, hex, 2 * dn);
  return 1;
}

static int l_md5(lua_State *L) { return push_digest(L, EVP_md5(), "md5"); }
static int l_sha256(lua_State *L) { return push_digest(L, EVP_sha256(), "sha256"); }

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

void ab_open_text(lua_State *L) {
  static const luaL_Reg f[] = {{"md5", l_md5}, {"sha256", l_sha256}, {"utf8_clean", l_utf8_clean}, {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
