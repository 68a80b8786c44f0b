#!/bin/bash
# `make bench`: per-block latency of LocalExecutor against the bare fork/exec
# of the same interpreter and against ag2's LocalCommandLineCodeExecutor, plus
# a 1 GB output flood under a 1 MiB cap. Prints one Markdown table and writes
# the raw numbers to bench/results/local.json. Then runs bench/docker.sh,
# bench/warm.sh and bench/concurrency.sh (one table each; see those files).
#
# Knobs: BENCH_N (timed iterations per row, default 200), BENCH_WARMUP (10 per
# round), BENCH_ROUNDS (5: Lua and AutoGen harnesses alternate),
# BENCH_FLOOD_BYTES (1000000000), BENCH_FLOOD_RUNS (5), BENCH_AG2 (pip spec,
# default ag2==0.14.0: the last ag2 that ships the `autogen` package; ag2 1.x
# is a different framework without autogen.coding).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
N=${BENCH_N:-200}
WARM=${BENCH_WARMUP:-10}
FLOOD_BYTES=${BENCH_FLOOD_BYTES:-1000000000}
FLOOD_RUNS=${BENCH_FLOOD_RUNS:-5}
CAP=1048576
AG2_SPEC=${BENCH_AG2:-ag2==0.14.0}
SYS_PY=/usr/bin/python3
LUA=${LUA:-lua5.4}

log() { echo "bench: $*" >&2; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- setup (idempotent) --------------------------------------------------------
[ -x "$SYS_PY" ] || { log "installing python3"; apt-get install -y -qq python3 >/dev/null; }
if [ ! -x "$B/venv/bin/python" ]; then
  if ! "$SYS_PY" -c 'import venv, ensurepip' 2>/dev/null; then
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  rm -rf "$B/venv"
  log "creating bench/venv"
  "$SYS_PY" -m venv "$B/venv"
fi
if ! "$B/venv/bin/python" -c 'from autogen.coding import LocalCommandLineCodeExecutor' 2>/dev/null; then
  log "pip install $AG2_SPEC into bench/venv"
  "$B/venv/bin/pip" install -q --disable-pip-version-check "$AG2_SPEC" >&2
fi
AG2_VERSION=$("$B/venv/bin/python" -c 'from importlib.metadata import version; print(version("ag2"))')

make -s -C "$ROOT" all >&2   # cheap when up to date; other engineers edit src/
mkdir -p "$B/build" "$B/results"
if [ ! -f "$B/build/bare.so" ] || [ "$B/bare.c" -nt "$B/build/bare.so" ]; then
  cc -O2 -Wall -shared -fPIC -I/usr/include/lua5.4 -o "$B/build/bare.so" "$B/bare.c"
fi
# AutoGen runs python blocks as `python` from PATH: make that Debian's python3
mkdir -p "$B/build/pybin"
ln -sf "$SYS_PY" "$B/build/pybin/python"

# One fixed PATH for every harness: a pyenv or venv shim first on the caller's
# PATH would put a bash script in front of the interpreter for some rows only.
export PATH=/usr/local/bin:/usr/bin:/bin
SH_BIN=$(command -v sh)
export BENCH_PYTHON=$SYS_PY BENCH_SH=$SH_BIN
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/build/?.so;$B/build/?.so;;"
TMP=$(mktemp -d /tmp/agentbox-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export BENCH_TMP=$TMP

# LocalExecutor in this tree may spin forever when a block prints before it
# exits (run_block waits on p:ready(), which stays true while output is
# unread and nothing reads it). Detect that and, only then, pass a no-op
# on_output so the blocks drain; the report says so.
rc=0
timeout 30 "$LUA" "$B/local_bench.lua" probe >/dev/null 2>"$TMP/probe.err" || rc=$?
if [ "$rc" -eq 124 ]; then
  log "plain LocalExecutor did not finish the probe in 30 s; measuring with on_output = function() end"
  export BENCH_ON_OUTPUT=noop
elif [ "$rc" -ne 0 ]; then
  cat "$TMP/probe.err" >&2
  log "LocalExecutor fails in this tree (probe exit $rc): nothing to measure"
  exit 1
else
  export BENCH_ON_OUTPUT=plain
fi

maxrss() { sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"; }

# --- latency ----------------------------------------------------------------------
# Lua and Python harnesses alternate in BENCH_ROUNDS rounds, so a change in
# the machine's load during the run hits both sides alike.
ROUNDS=${BENCH_ROUNDS:-5}
PER=$(( (N + ROUNDS - 1) / ROUNDS ))
log "latency: $ROUNDS rounds of $PER iterations (+$WARM warm-up) per row; agentbox and bare interleaved, AutoGen (ag2 $AG2_VERSION) after each"
for r in $(seq 1 "$ROUNDS"); do
  "$LUA" "$B/local_bench.lua" latency "$PER" "$WARM" "$TMP/lat_lua_$r.json"
  PATH="$B/build/pybin:$PATH" "$B/venv/bin/python" "$B/autogen_bench.py" latency "$PER" "$WARM" "$TMP/lat_ag_$r.json"
done

# --- flood ------------------------------------------------------------------------
# each subject in its own process so its peak RSS (VmHWM) is its own
log "flood: $FLOOD_BYTES bytes, cap $CAP, $FLOOD_RUNS runs (+1 warm-up) per subject"
for s in bare agentbox; do
  /usr/bin/time -v -o "$TMP/time_$s.txt" "$LUA" "$B/local_bench.lua" flood "$s" "$FLOOD_BYTES" "$CAP" "$FLOOD_RUNS" "$TMP/flood_$s.json"
done
# AutoGen keeps the whole output (bytes, then the decoded str, then the joined
# log): about 3x the flood in RSS. Run it at full size only with room to spare.
AG_FLOOD=$FLOOD_BYTES
avail_kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)
if [ $((FLOOD_BYTES / 1024 * 5)) -gt "$avail_kb" ]; then
  AG_FLOOD=200000000
  log "AutoGen flood reduced to $AG_FLOOD bytes (MemAvailable ${avail_kb} kB)"
fi
PATH="$B/build/pybin:$PATH" /usr/bin/time -v -o "$TMP/time_autogen.txt" \
  "$B/venv/bin/python" "$B/autogen_bench.py" flood "$AG_FLOOD" "$FLOOD_RUNS" "$TMP/flood_autogen.json"

# --- report -----------------------------------------------------------------------
export BENCH_CMD="cd $ROOT && make all && ${BENCH_N:+BENCH_N=$BENCH_N }bash bench/run.sh"
export BENCH_AG2_VERSION=$AG2_VERSION BENCH_CAP=$CAP
export BENCH_MAXRSS_BARE=$(maxrss "$TMP/time_bare.txt") BENCH_MAXRSS_AGENTBOX=$(maxrss "$TMP/time_agentbox.txt") \
       BENCH_MAXRSS_AUTOGEN=$(maxrss "$TMP/time_autogen.txt")
export BENCH_MACHINE="$(uname -srm), $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
export BENCH_LOAD="load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
export BENCH_VERSIONS="$("$LUA" -v 2>&1 | cut -d' ' -f1-2), $("$SYS_PY" --version 2>&1) ($SYS_PY), sh = $SH_BIN -> $(readlink -f "$SH_BIN"), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
BENCH_ROUNDS=$ROUNDS "$LUA" "$B/report.lua" "$TMP" "$B/results/local.json"

# --- the Docker and concurrency benchmarks (issues 4 and 5) ---------------------------
# Their own scripts, each printing its own table; BENCH_LOCAL_ONLY=1 skips them,
# BENCH_NO_WARM=1 skips bench/warm.sh (issue 11's warm sandbox table).
if [ -z "${BENCH_LOCAL_ONLY:-}" ]; then
  echo
  bash "$B/docker.sh"
  if [ -z "${BENCH_NO_WARM:-}" ]; then
    echo
    bash "$B/warm.sh"
  fi
  echo
  bash "$B/concurrency.sh"
fi
