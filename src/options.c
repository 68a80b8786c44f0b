/* Reading arguments and option tables (core.spawn{...}, core.http{...}): a
 * present option of the wrong type raises, naming it; an absent one is the
 * default. Numbers are scaled and converted to integers (seconds to ms,
 * bytes to size_t): NaN has no meaning there and its conversion is undefined
 * behaviour, so it raises; a magnitude past AB_NUMBER_MAX (infinity
 * included) is clamped, so math.huge means "practically never" and
 * now + seconds * 1000 still fits an int64_t. */
#include "core.h"

#define AB_NUMBER_MAX 1e12

static double clamp(double v) {
  if (v > AB_NUMBER_MAX) return AB_NUMBER_MAX;
  if (v < -AB_NUMBER_MAX) return -AB_NUMBER_MAX;
  return v;
}

double ab_check_number(lua_State *L, int arg) {
  double v = luaL_checknumber(L, arg);
  if (v != v) luaL_argerror(L, arg, "must be a number, got nan");
  return clamp(v);
}

double ab_opt_number(lua_State *L, int t, const char *k, double dflt) {
  double v = dflt;
  int ty = lua_getfield(L, t, k);
  if (ty != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    if (v != v) luaL_error(L, "option '%s' must be a number, got nan", k);
  }
  lua_pop(L, 1);
  return clamp(v);
}

const char *ab_opt_string(lua_State *L, int t, const char *k, const char *dflt) {
  const char *v = dflt;
  int ty = lua_getfield(L, t, k);
  if (ty != LUA_TNIL) {
    if (ty != LUA_TSTRING) luaL_error(L, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
    v = lua_tostring(L, -1);   /* stays valid: the option table holds it */
  }
  lua_pop(L, 1);
  return v;
}
