#!/bin/bash
# `make chaos`: the chaos benchmark (issue 8). CHAOS_N chats with code (default
# 1000; alternately LocalExecutor and DockerExecutor with agentbox/sandbox:latest),
# each in a fresh host process SIGKILLed at a random moment and followed by a
# fresh start of the same kind; then leftover processes, containers, volumes
# and temporary files are counted (goal: 0 of each) and the tree-kill latency
# after a block's deadline is reported. One Markdown table on stdout, the raw
# numbers in bench/results/chaos.json; the exit status is 1 when anything was
# left over. The hosts run in a cpu cgroup of the run's own where one can be
# made, so the cgroups of LocalExecutor runs are counted exactly. Not part
# of `make test`: it takes about 1.3 s per iteration and
# loads the machine.
#
# Knobs:
#   CHAOS_N (1000) chats; CHAOS_MAX_SECONDS: stop starting chats after that
#     long, then count
#   CHAOS_KINDS (local,docker); CHAOS_TRANSFER (mix: the Docker chats
#     alternate bind and archive transfer; or bind, archive); CHAOS_IMAGE
#   CHAOS_TIMEOUT (1 s, the block timeout; 2 on a busy machine); CHAOS_SEED
#   CHAOS_SPREAD (1.1): the kill moment is uniform in [0, 1.1 x an unkilled
#     chat], or for half of the chats in [0, the start of its timeout block];
#     CHAOS_RECAL (50): an unkilled calibration chat every 50 chats of a kind
#   CHAOS_LATE (0.5): the share of Docker chats killed in the timeout block
#     whose fresh start waits until its deadline and grace are past
#   CHAOS_KILL (host): SIGKILL the host alone; group: its whole process
#     group (the spawn server and supervisors die with it), as a shell's job
#     control or coreutils timeout without --foreground does
#   CHAOS_DEFAULT_WORKDIR=1: omit work_dir (the executor's default)
#   CHAOS_LINGER (2 s): how long a fresh start's leftovers may take to go;
#     CHAOS_SETTLE (3 s) before the final count
#   CHAOS_SELFTEST=1: plant one leftover of each kind (they must be counted);
#     CHAOS_FRESH_START=0: a control run without the fresh starts (what dead
#     hosts leave when nothing cleans up); CHAOS_KEEP=1: keep the bench dir
#   BENCH_LOAD_MAX / BENCH_LOAD_WAIT (as bench/common.sh: wait up to 900 s
#     for the 1-minute load average to drop under 1.5)
set -euo pipefail
KNOBS=$(env | grep -E '^(CHAOS_(N|KINDS|TRANSFER|TIMEOUT|SEED|SPREAD|RECAL|LATE|KILL|DEFAULT_WORKDIR|IMAGE|SETTLE|LINGER|KEEP|SELFTEST|FRESH_START|MAX_SECONDS)|BENCH_LOAD_(MAX|WAIT))=' \
        | sed "s/=\(.*\)/='\1'/" | sort | tr '\n' ' ' || true)
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
LUA=${LUA:-lua5.4}
log() { echo "chaos: $*" >&2; }

make -s -C "$ROOT" all >/dev/null
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/?.lua;;"
export LUA_CPATH="$ROOT/build/?.so;;"
export AGENTBOX_SUP=$ROOT/build/agentbox/agentbox-sup
export LUA

# The machine is shared: wait for it to be quiet (bench/common.sh's rule).
max=${BENCH_LOAD_MAX:-1.5} waited=0 limit=${BENCH_LOAD_WAIT:-900}
while awk -v m="$max" '{ exit !($1 >= m) }' /proc/loadavg; do
  if [ "$waited" -ge "$limit" ]; then log "load still $(cut -d' ' -f1 /proc/loadavg) after ${limit}s; going on"; break; fi
  [ "$waited" -eq 0 ] && log "waiting for the 1-minute load average ($(cut -d' ' -f1 /proc/loadavg)) to drop under $max"
  sleep 10
  waited=$((waited + 10))
done

# Not named agentbox-*: the executors' own temporary directories are.
CHAOS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/chaos-bench.XXXXXX")
if [ "${CHAOS_KEEP:-0}" = 1 ]; then log "keeping $CHAOS_DIR"; else trap 'rm -rf "$CHAOS_DIR"' EXIT; fi
mkdir -p bench/results
export CHAOS_DIR CHAOS_HOST_SCRIPT=$ROOT/bench/chaos/host.lua CHAOS_RESULTS=$ROOT/bench/results/chaos.json
export CHAOS_CMD="${KNOBS}make chaos"
export CHAOS_MACHINE="$(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
export CHAOS_VERSIONS="$("$LUA" -v 2>&1 | cut -d' ' -f1-2), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([ -z "$(git -C "$ROOT" status --porcelain -- src lua 2>/dev/null)" ] || echo ' + uncommitted changes in src/ or lua/')"
log "uptime: $(uptime)"
status=0
"$LUA" bench/chaos/chaos.lua || status=$?
log "uptime: $(uptime)"
exit $status
