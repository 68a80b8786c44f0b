#!/bin/bash
# Proves the rock: one version everywhere (src/agentbox.h, the released
# rockspec, CHANGELOG.md, agentbox.version once installed); the released
# rockspec built by `luarocks build` from the `make dist` tarball and the
# scm rockspec by `luarocks make`, each into a temporary tree and required
# from a clean shell that knows nothing of this checkout; `luarocks test`
# runs a spec.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "rock check: $*"; exit 1; }

version=$(sed -n 's/^#define AGENTBOX_VERSION "\(.*\)"/\1/p' src/agentbox.h)
[ -n "$version" ] || fail "no AGENTBOX_VERSION in src/agentbox.h"
released=$(ls rockspec/agentbox-[0-9]*.rockspec | sort -V | tail -1)
[ "$released" = "rockspec/agentbox-$version-1.rockspec" ] ||
  fail "src/agentbox.h says $version, the newest released rockspec is $released"
grep -q "^version = \"$version-1\"$" "$released" || fail "$released: version is not \"$version-1\""
grep -q "^  url = \"agentbox-$version.tar.gz\",$" "$released" || fail "$released: source.url is not agentbox-$version.tar.gz"
changelog=$(sed -n 's/^## \([0-9][^ ]*\).*/\1/p' CHANGELOG.md | head -1)
[ "$changelog" = "$version" ] || fail "CHANGELOG.md's newest entry is '$changelog', src/agentbox.h says $version"

tmp=$(mktemp -d /tmp/agentbox-rock.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"
run() { "$@" >"$log" 2>&1 || { cat "$log"; fail "failed: $*"; }; }

# luarocks.org is not reachable from every machine; lua-cjson comes from Debian
run make --no-print-directory BUILD="$tmp/dist" dist
run bash -c "cd '$tmp/dist' && luarocks --lua-version=5.4 --tree='$tmp/release' build --deps-mode=none '$PWD/$released'"
run luarocks --lua-version=5.4 --tree="$tmp/scm" make --deps-mode=none rockspec/agentbox-scm-1.rockspec

for tree in "$tmp/release" "$tmp/scm"; do
  mkdir -p "$tmp/work"
  out=$(cd "$tmp/work" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$tmp/work" \
    LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
    LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
    lua5.4 -e '
      local agentbox = require("agentbox")
      assert(package.searchpath("agentbox.core", package.cpath):find(os.getenv("LUA_CPATH"):match("^(.-)%?"), 1, true))
      local ex = agentbox.LocalExecutor{ work_dir = "w", timeout = 10 }
      io.write(agentbox.version, "\n", agentbox.code.format_result(ex:execute{ { lang = "sh", code = "echo rock-ok" } }))')
  [ "$out" = "$version"$'\nexitcode: 0 (execution succeeded)\nCode output: rock-ok' ] ||
    fail "unexpected output from $tree: $out"
  test -x "$tree/lib/lua/5.4/agentbox/agentbox-sup" || fail "agentbox-sup not installed in $tree"
  test -f "$(ls -d "$tree"/lib/luarocks/rocks-5.4/agentbox/*/include)/agentbox.h" || fail "agentbox.h not installed in $tree"
  test -f "$(ls -d "$tree"/lib/luarocks/rocks-5.4/agentbox/*/types)/agentbox.d.lua" || fail "types/ not installed in $tree"
  rm -rf "$tmp/work"
done

# `luarocks make` built build/ in place, which is what `luarocks test` runs against
run luarocks --lua-version=5.4 test "$released" -- -o utfTerminal spec/code_spec.lua
grep -Eq '^[0-9]+ successes / 0 failures / 0 errors' <(sed 's/\x1b\[[0-9;]*m//g' "$log") ||
  { cat "$log"; fail "luarocks test: spec/code_spec.lua did not pass"; }
echo "rock check: version $version agrees; the release (from make dist) and scm rocks installed with luarocks and required from a clean shell; luarocks test ran: ok"
