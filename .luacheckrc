-- luacheck (Debian's lua-check), run by `make lint`: `luacheck .` from the
-- repository root reads this file.
std = "lua54"

-- Methods keep `self` to share an interface (Future:close, an executor's
-- methods) even when one implementation has no use for it.
self = false

-- Lines are long by design in places (AutoGen's system prompt is copied
-- verbatim, report tables, spec data); a style limit would only bury the
-- findings that matter.
max_line_length = false

ignore = {
  -- `not (x > 0)` is written on purpose: unlike `x <= 0` it is true for NaN,
  -- so a NaN option is refused.
  "581",
}

exclude_files = { "build/", "build-san/", ".git/" }

files["spec/"] = { std = "+busted" }
-- the C host (examples/host/host.c) sets it in each lua_State it opens
files["spec/support/embed_chats.lua"] = { read_globals = { "HOST_STATE_INDEX" } }
