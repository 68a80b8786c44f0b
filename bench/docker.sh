#!/bin/bash
# bench/docker.sh: agentbox's DockerExecutor against ag2's
# DockerCommandLineCodeExecutor, same image, same daemon, one run: cold start,
# warm per-block latency, 8 executors at once, close. Prints one Markdown
# table (and where agentbox's time goes); raw numbers in bench/results/docker.json.
#
# Knobs: BENCH_ROUNDS (3: agentbox and AutoGen alternate per phase),
# BENCH_COLD_N (10 per round, +BENCH_COLD_WARM=1), BENCH_WARM_N (60 blocks per
# row per round, +BENCH_WARM_WARM=5), BENCH_CONC_K (8 executors),
# BENCH_CONC_M (10 timed blocks each, +BENCH_CONC_WARM=2), BENCH_STOP_N
# (AutoGen stop() samples, 10 s each: 2), BENCH_PRELOAD_N (30 sales blocks per
# row per round, agentbox only: warm = true vs preload), BENCH_IMAGE (agentbox/sandbox:latest).
source "$(dirname "$0")/common.sh"
export BENCH_IMAGE=${BENCH_IMAGE:-agentbox/sandbox:latest}
ROUNDS=${BENCH_ROUNDS:-3}
export BENCH_COLD_N=${BENCH_COLD_N:-10} BENCH_COLD_WARM=${BENCH_COLD_WARM:-1}
export BENCH_WARM_N=${BENCH_WARM_N:-60} BENCH_WARM_WARM=${BENCH_WARM_WARM:-5}
export BENCH_PRELOAD_N=${BENCH_PRELOAD_N:-30}
export BENCH_CONC_WARM=${BENCH_CONC_WARM:-2}
K=${BENCH_CONC_K:-8} M=${BENCH_CONC_M:-10} STOP_N=${BENCH_STOP_N:-2}
PY=$B/venv/bin/python

if ! "$LUA" -e 'os.exit(require("agentbox.engine").available() and 0 or 1)'; then
  echo "## Docker benchmark skipped: no Docker daemon reachable"
  exit 0
fi
make -s -C "$ROOT" image >&2   # cached: seconds when up to date
export BENCH_DOCKERPY_VERSION=$(pyver docker)

wait_for_quiet
for r in $(seq 1 "$ROUNDS"); do
  export BENCH_ROUND=$r
  log "round $r/$ROUNDS: cold"
  "$LUA" "$B/docker_bench.lua" cold "$BENCH_COLD_N" "$BENCH_COLD_WARM" "$TMP/ab_cold_$r.json"
  # AutoGen's stop() takes 10 s: sampled in the first round only
  "$PY" "$B/autogen_docker.py" cold "$BENCH_COLD_N" "$BENCH_COLD_WARM" "$([ "$r" = 1 ] && echo "$STOP_N" || echo 0)" "$TMP/ag_cold_$r.json"
  log "round $r/$ROUNDS: warm"
  "$LUA" "$B/docker_bench.lua" warm "$BENCH_WARM_N" "$BENCH_WARM_WARM" "$TMP/ab_warm_$r.json"
  "$PY" "$B/autogen_docker.py" warm "$BENCH_WARM_N" "$BENCH_WARM_WARM" "$TMP/ag_warm_$r.json"
  log "round $r/$ROUNDS: preload (seed 002's sales block)"
  "$LUA" "$B/docker_bench.lua" preload "$BENCH_PRELOAD_N" "$BENCH_WARM_WARM" "$TMP/ab_preload_$r.json"
  log "round $r/$ROUNDS: $K executors at once"
  "$LUA" "$B/docker_bench.lua" conc "$K" "$M" "$BENCH_CONC_WARM" "$TMP/ab_conc_$r.json"
  "$PY" "$B/autogen_docker.py" conc "$K" "$M" "$BENCH_CONC_WARM" "$TMP/ag_conc_$r.json"
done

export BENCH_ROUNDS=$ROUNDS
export BENCH_CMD="cd $ROOT && make all && ${KNOBS}bash bench/docker.sh"
export BENCH_LOAD="load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
export BENCH_VERSIONS="$BENCH_VERSIONS, Docker $(curl -s --unix-socket /var/run/docker.sock http://localhost/version | "$SYS_PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["Version"], "API", d["ApiVersion"])' 2>/dev/null || echo '?')"
"$LUA" "$B/docker_bench.lua" report "$TMP" "$B/results/docker.json"
