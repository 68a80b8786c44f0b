#!/bin/bash
# Runs the busted suite and ends with the line CI reads: "N passed, N failed".
# Usage: run_specs.sh <busted command...> ; extra args via SPECS="spec/x_spec.lua".
set -o pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" -o utfTerminal ${BUSTED_ARGS:-} ${SPECS:-spec} 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
line=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -1)
if [ -z "$line" ]; then
  echo "busted did not finish (exit $rc)"
  echo "0 passed, 1 failed"
  exit 1
fi
read -r ok _ _ fail _ _ err _ _ pend _ <<<"$line"
failed=$((fail + err))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "$pend" -gt 0 ]; then echo "$ok passed, $failed failed, $pend skipped"; else echo "$ok passed, $failed failed"; fi
[ "$failed" -eq 0 ]
