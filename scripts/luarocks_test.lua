-- `luarocks --lua-version=5.4 test` runs this with Lua 5.4 and passes on
-- what follows `--`: busted's own arguments, e.g. one spec file.
-- busted is loaded as a library rather than as `test.type = "busted"`,
-- because that type installs busted as a rock from luarocks.org even where
-- Debian's lua-busted is installed, and fails offline; /usr/bin/busted
-- itself would run Lua 5.1. .busted puts ./lua and ./build first.
local f = io.open("build/agentbox/core.so")
if not f then
  io.stderr:write("luarocks test: build/agentbox/core.so is missing: run `make` "
    .. "(or `luarocks make`) in this checkout first\n")
  os.exit(1)
end
f:close()
require("busted.runner")({ standalone = false })
