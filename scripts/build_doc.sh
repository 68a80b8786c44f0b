#!/bin/bash
# `make doc`: the API reference (LDoc) in build/doc/index.html, generated
# from the doc comments of the public modules (config.ld lists them).
# Fails on an LDoc error and on ANY warning (an unresolved @{reference}, a
# tag LDoc cannot parse, a module without items), and when
# types/agentbox.d.lua (LuaCATS, for editors) and the code disagree about
# which functions and fields exist (scripts/check_types.lua).
set -uo pipefail
cd "$(dirname "$0")/.."
command -v ldoc >/dev/null || { echo "make doc: ldoc not found (apt-get install lua-ldoc)"; exit 1; }
rm -rf build/doc && mkdir -p build || exit 1
out=$(ldoc . 2>&1); rc=$?
warnings=$(printf '%s\n' "$out" | grep -v '^reading configuration from\|^output written to\|^$')
if [ "$rc" -ne 0 ]; then printf '%s\n' "$out"; echo "make doc: ldoc failed (exit $rc)"; exit 1; fi
if [ -n "$warnings" ]; then
  printf '%s\n' "$warnings"
  echo "make doc: LDoc warnings (above): fix the doc comments"; exit 1
fi
[ -s build/doc/index.html ] && [ -s build/doc/modules/agentbox.html ] || { echo "make doc: no build/doc/modules/agentbox.html"; exit 1; }
lua5.4 scripts/check_types.lua types/agentbox.d.lua build/doc || exit 1
echo "make doc: build/doc/index.html"
