#!/bin/bash
# Proves the rock: build and install it with luarocks into a temporary tree,
# then require it from a clean shell that knows nothing of this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d /tmp/agentbox-rock.XXXXXX)
work=$(mktemp -d /tmp/agentbox-rock-work.XXXXXX)
trap 'rm -rf "$tree" "$work"' EXIT
# luarocks.org is not reachable from every machine; lua-cjson comes from Debian
luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none rockspec/agentbox-scm-1.rockspec >"$tree.log" 2>&1 || {
  cat "$tree.log"; rm -f "$tree.log"; echo "rock check: luarocks make failed"; exit 1; }
rm -f "$tree.log"
out=$(cd "$work" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work" \
  LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
  lua5.4 -e '
    local agentbox = require("agentbox")
    assert(package.searchpath("agentbox.core", package.cpath):find(os.getenv("LUA_CPATH"):match("^(.-)%?"), 1, true))
    local ex = agentbox.LocalExecutor{ work_dir = "w", timeout = 10 }
    io.write(agentbox.code.format_result(ex:execute{ { lang = "sh", code = "echo rock-ok" } }))')
if [ "$out" != $'exitcode: 0 (execution succeeded)\nCode output: rock-ok' ]; then
  echo "rock check: unexpected output: $out"; exit 1
fi
test -x "$tree/lib/lua/5.4/agentbox/agentbox-sup" || { echo "rock check: agentbox-sup not installed"; exit 1; }
echo "rock check: installed with luarocks and required from a clean shell: ok"
