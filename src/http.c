/* placeholder: replaced by the libcurl layer */
#include "core.h"
void ab_open_http(lua_State *L) { (void)L; }
