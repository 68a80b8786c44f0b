#!/bin/bash
# `make doc`: the API reference (LDoc) in build/doc/index.html.
# types/agentbox.d.lua (LuaCATS) is rewritten into LDoc tags first; LDoc then
# reads it beside lua/agentbox (build/ldoc-src/agentbox links there, so the
# module names come out as agentbox.x). Fails on an LDoc error and on any
# warning about the public API file; the internal modules' warnings are
# printed, not fatal, until their doc comments are written.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v ldoc >/dev/null || { echo "make doc: ldoc not found (apt-get install lua-ldoc)"; exit 1; }
src=build/ldoc-src
rm -rf "$src" build/doc && mkdir -p "$src" || exit 1
lua5.4 scripts/ldoc_from_luacats.lua types/agentbox.d.lua "$src/agentbox.lua" || exit 1
ln -s ../../lua/agentbox "$src/agentbox"
out=$(ldoc . 2>&1); rc=$?
printf '%s\n' "$out" | grep -v '^reading configuration from\|^output written to'
if [ "$rc" -ne 0 ]; then echo "make doc: ldoc failed (exit $rc)"; exit 1; fi
if printf '%s\n' "$out" | grep -q "$src/agentbox.lua:"; then
  echo "make doc: LDoc warnings in the public API (types/agentbox.d.lua, lines as in $src/agentbox.lua)"; exit 1
fi
[ -s build/doc/index.html ] && [ -s build/doc/modules/agentbox.html ] || { echo "make doc: no build/doc/modules/agentbox.html"; exit 1; }
echo "make doc: build/doc/index.html"
