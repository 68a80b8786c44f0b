#!/bin/bash
# bench/warm.sh: issue 11's table. agentbox's warm sandbox (warm = true,
# preload, stateful, DockerPool, fresh = true) against ag2's
# DockerCommandLineCodeExecutor, same image, same daemon, one run: warm
# blocks (print(1), echo hi, seed 002's sales block), pool claim and fresh
# calls against AutoGen's cold start, K executors at once, and sustained
# executions per second. Prints one Markdown table with the goals and where
# the time goes; raw numbers in bench/results/warm.json.
#
# Knobs: BENCH_ROUNDS (2: agentbox then AutoGen per phase), BENCH_WARM_N (20
# samples per block row per round, +BENCH_WARM_WARM=3), BENCH_POOL_N (10 pool
# claims and fresh calls per round; BENCH_FRESH_B2B back to back, default the
# same), BENCH_COLD_N (5 AutoGen cold starts per round), BENCH_CONC_K (8
# executors), BENCH_CONC_M (10 blocks each, +BENCH_CONC_WARM=2),
# BENCH_CONC_EXEC (1: the exec path too), BENCH_WARM_EXEC (1: exec-path rows
# too), BENCH_TPUT_K (8 executors), BENCH_TPUT_S (20 s per throughput row,
# once), BENCH_IMAGE (agentbox/sandbox:latest), BENCH_LOAD_MAX/BENCH_LOAD_WAIT
# (common.sh's wait for a quiet machine).
source "$(dirname "$0")/common.sh"
export BENCH_IMAGE=${BENCH_IMAGE:-agentbox/sandbox:latest}
ROUNDS=${BENCH_ROUNDS:-2}
export BENCH_WARM_N=${BENCH_WARM_N:-20} BENCH_WARM_WARM=${BENCH_WARM_WARM:-3}
export BENCH_POOL_N=${BENCH_POOL_N:-10} BENCH_COLD_N=${BENCH_COLD_N:-5}
export BENCH_FRESH_B2B=${BENCH_FRESH_B2B:-$BENCH_POOL_N}
export BENCH_TPUT_S=${BENCH_TPUT_S:-20}
K=${BENCH_CONC_K:-8} M=${BENCH_CONC_M:-10} CW=${BENCH_CONC_WARM:-2} TK=${BENCH_TPUT_K:-8}
PY=$B/venv/bin/python

if ! "$LUA" -e 'os.exit(require("agentbox.engine").available() and 0 or 1)'; then
  echo "## Warm sandbox benchmark skipped: no Docker daemon reachable"
  exit 0
fi
# the shared image is not rebuilt here (make image): it must exist
if ! "$LUA" -e 'local task = require("agentbox.task")
  os.exit(task.sync(function() local c = require("agentbox.engine").client() c:negotiate() return c:image_inspect(os.getenv("BENCH_IMAGE")) end) and 0 or 1)'; then
  log "image $BENCH_IMAGE not found: make image"; exit 1
fi

wait_for_quiet
for r in $(seq 1 "$ROUNDS"); do
  export BENCH_ROUND=$r
  log "round $r/$ROUNDS: warm blocks (agentbox: exec, warm, preload, stateful; then AutoGen)"
  "$LUA" "$B/warm_bench.lua" rows "$BENCH_WARM_N" "$BENCH_WARM_WARM" "$TMP/ab_rows_$r.json"
  "$PY" "$B/autogen_docker.py" rows "$BENCH_WARM_N" "$BENCH_WARM_WARM" "$TMP/ag_rows_$r.json"
  log "round $r/$ROUNDS: pool claims, fresh calls, AutoGen cold starts"
  "$LUA" "$B/warm_bench.lua" pool "$BENCH_POOL_N" 1 "$TMP/ab_pool_$r.json"
  "$LUA" "$B/warm_bench.lua" fresh "$BENCH_POOL_N" 1 "$TMP/ab_fresh_$r.json"
  "$PY" "$B/autogen_docker.py" cold "$BENCH_COLD_N" 1 0 "$TMP/ag_cold_$r.json"
  log "round $r/$ROUNDS: $K executors at once"
  "$LUA" "$B/warm_bench.lua" conc "$K" "$M" "$CW" "$TMP/ab_conc_$r.json"
  "$PY" "$B/autogen_docker.py" conc "$K" "$M" "$CW" "$TMP/ag_conc_$r.json"
done
log "throughput: $TK executors, ${BENCH_TPUT_S} s per row"
"$LUA" "$B/warm_bench.lua" tput "$TK" "$BENCH_TPUT_S" "$TMP/ab_tput.json"
"$PY" "$B/autogen_docker.py" tput "$TK" "$BENCH_TPUT_S" "$TMP/ag_tput.json"

export BENCH_ROUNDS=$ROUNDS
export BENCH_CMD="cd $ROOT && make all && ${KNOBS}bash bench/warm.sh"
export BENCH_LOAD_START=$LOAD_START BENCH_LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
export BENCH_VERSIONS="$BENCH_VERSIONS, Docker $(curl -s --unix-socket /var/run/docker.sock http://localhost/version | "$SYS_PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["Version"], "API", d["ApiVersion"])' 2>/dev/null || echo '?')"
"$LUA" "$B/warm_bench.lua" report "$TMP" "$B/results/warm.json"
