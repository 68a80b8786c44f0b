rockspec_format = "3.0"
package = "agentbox"
version = "0.2.0-1"
-- The 0.2.0 release. agentbox is not published yet (no public repository,
-- not on luarocks.org), so the source is the tarball `make dist` writes from
-- a checkout at the release, build/agentbox-0.2.0.tar.gz; luarocks reads a
-- relative url from the directory it runs in:
--   make dist && cd build && luarocks --lua-version=5.4 build --deps-mode=none ../rockspec/agentbox-0.2.0-1.rockspec
-- In a checkout, `luarocks make` with this file builds the files in place.
source = {
  url = "agentbox-0.2.0.tar.gz",
  dir = "agentbox-0.2.0",
}
description = {
  summary = "AutoGen's two-agent code loop for Lua 5.4, with a C core and a hardened Docker sandbox",
  detailed = [[
An assistant agent backed by any OpenAI-compatible model writes code blocks; a
user-proxy agent runs them in a hardened Docker container (or locally under a
process supervisor) and replies with AutoGen's result text. Every wait is a
handle on a reactor that a C host can step without blocking its frame loop.
]],
  license = "MIT",
  labels = { "ai", "agents", "sandbox", "docker" },
}
-- lua-cjson: Debian's package (apt-get install lua-cjson) serves when the
-- rock is installed with --deps-mode=none; otherwise luarocks fetches it.
dependencies = {
  "lua >= 5.4",
  "lua-cjson",
}
external_dependencies = {
  CURL = { library = "curl" },
  CRYPTO = { library = "crypto" },
}
build = {
  type = "make",
  build_target = "rock",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INC = "$(LUA_INCDIR)",
    EXTRA_LIBDIRS = "-L$(CURL_LIBDIR) -L$(CRYPTO_LIBDIR)",
  },
  install_target = "install",
  -- the LuaCATS definitions for editors, in the rock's directory (README)
  copy_directories = { "types" },
  install_variables = {
    INST_PREFIX = "$(PREFIX)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
    INST_BINDIR = "$(BINDIR)",
  },
}
-- `luarocks --lua-version=5.4 test rockspec/agentbox-0.2.0-1.rockspec -- spec/code_spec.lua`
-- after `make`: busted under Lua 5.4 (scripts/luarocks_test.lua says why not type "busted")
test = {
  type = "command",
  script = "scripts/luarocks_test.lua",
}
