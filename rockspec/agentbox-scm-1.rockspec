rockspec_format = "3.0"
package = "agentbox"
version = "scm-1"
source = {
  url = "git+https://github.com/agentbox/agentbox.git",
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
  homepage = "https://github.com/agentbox/agentbox",
}
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
  install_variables = {
    INST_PREFIX = "$(PREFIX)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
    INST_BINDIR = "$(BINDIR)",
  },
}
