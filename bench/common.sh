# bench/common.sh: sourced by bench/docker.sh and bench/concurrency.sh.
# Sets up bench/venv (ag2 with its openai and docker extras), builds agentbox,
# fixes PATH and the Lua paths, and waits for a quiet machine.
set -euo pipefail
# the knobs the caller set, for the command line printed in the table header
# (a whitelist: bench/run.sh exports BENCH_* values of its own)
KNOBS=$(env | grep -E '^BENCH_(ROUNDS|COLD_N|COLD_WARM|WARM_N|WARM_WARM|CONC_K|CONC_M|CONC_WARM|CONC_EXEC|WARM_EXEC|POOL_N|FRESH_B2B|TPUT_K|TPUT_S|STOP_N|IMAGE|NS|REPEAT|LOAD_MAX|LOAD_WAIT|AG2)=' \
        | sed "s/=\(.*\)/='\1'/" | sort | tr '\n' ' ' || true)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
B=$ROOT/bench
SYS_PY=/usr/bin/python3
LUA=${LUA:-lua5.4}
AG2_SPEC=${BENCH_AG2:-ag2[openai,docker]==0.14.0}   # 0.14.0: the last ag2 with the `autogen` package
log() { echo "bench: $*" >&2; }

[ -x "$SYS_PY" ] || { log "installing python3"; apt-get install -y -qq python3 >/dev/null; }
if [ ! -x "$B/venv/bin/python" ]; then
  if ! "$SYS_PY" -c 'import venv, ensurepip' 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  log "creating bench/venv"
  "$SYS_PY" -m venv "$B/venv"
fi
if ! "$B/venv/bin/python" -c 'import autogen.coding, docker, openai' 2>/dev/null; then
  log "pip install $AG2_SPEC into bench/venv"
  "$B/venv/bin/pip" install -q --disable-pip-version-check "$AG2_SPEC" >&2
fi
pyver() { "$B/venv/bin/python" -c "from importlib.metadata import version; print(version('$1'))"; }
AG2_VERSION=$(pyver ag2)

make -s -C "$ROOT" all >/dev/null   # cheap when up to date; others edit src/
mkdir -p "$B/build/pybin" "$B/results"
ln -sf "$SYS_PY" "$B/build/pybin/python"   # AutoGen's local executor runs `python` from PATH

# One PATH for every harness, so both sides start /usr/bin/python3 (no pyenv shim).
export PATH=/usr/local/bin:/usr/bin:/bin
export LUA_PATH="$B/?.lua;$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/?.lua;;"
export LUA_CPATH="$ROOT/build/?.so;$B/build/?.so;;"
export AGENTBOX_SUP=$ROOT/build/agentbox/agentbox-sup
TMP=$(mktemp -d /tmp/agentbox-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export BENCH_TMP=$TMP

# The machine is shared: numbers taken under someone else's load say little.
# Wait (up to BENCH_LOAD_WAIT seconds, default 900) for the 1-minute load
# average to drop under BENCH_LOAD_MAX (1.5).
wait_for_quiet() {
  local max=${BENCH_LOAD_MAX:-1.5} waited=0 limit=${BENCH_LOAD_WAIT:-900}
  while awk -v m="$max" '{ exit !($1 >= m) }' /proc/loadavg; do
    if [ "$waited" -ge "$limit" ]; then log "load still $(cut -d' ' -f1 /proc/loadavg) after ${limit}s; going on"; break; fi
    [ "$waited" -eq 0 ] && log "waiting for the 1-minute load average ($(cut -d' ' -f1 /proc/loadavg)) to drop under $max"
    sleep 10
    waited=$((waited + 10))
  done
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
}

export BENCH_AG2_VERSION=$AG2_VERSION BENCH_NPROC=$(nproc)
export BENCH_MACHINE="$(uname -srm), $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
export BENCH_VERSIONS="$("$LUA" -v 2>&1 | cut -d' ' -f1-2), $("$SYS_PY" --version 2>&1) ($SYS_PY; AutoGen in bench/venv), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([ -z "$(git -C "$ROOT" status --porcelain -- src lua 2>/dev/null)" ] || echo ' + uncommitted changes in src/ or lua/')"
