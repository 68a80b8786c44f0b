#!/bin/bash
# bench/concurrency.sh: N concurrent conversations with code execution
# (N = 1, 4, 16, 64) against one scripted OpenAI-compatible server: agentbox
# stepped by a C host's 60 Hz frame loop (bench/frame_host.c) vs AutoGen
# running the same chats in threads. Prints one Markdown table; raw numbers
# in bench/results/concurrency.json.
#
# Knobs: BENCH_NS ("1 4 16 64"), BENCH_REPEAT (4: each of the N conversations
# in flight runs that many chats back to back, so every run spans enough
# frames), BENCH_ROUNDS (3 per N; agentbox and AutoGen alternate).
source "$(dirname "$0")/common.sh"
export BENCH_NS=${BENCH_NS:-1 4 16 64} BENCH_REPEAT=${BENCH_REPEAT:-4}
ROUNDS=${BENCH_ROUNDS:-3}

# the host, linked against the core.so Lua users load (rpath: no install needed)
HOSTBIN=$B/build/frame_host
if [ ! -x "$HOSTBIN" ] || [ "$B/frame_host.c" -nt "$HOSTBIN" ] || [ "$ROOT/src/agentbox.h" -nt "$HOSTBIN" ]; then
  cc -O2 -std=c11 -Wall -Wextra -I/usr/include/lua5.4 -I"$ROOT/src" -o "$HOSTBIN" "$B/frame_host.c" \
    "$ROOT/build/agentbox/core.so" -Wl,-rpath,"$ROOT/build/agentbox" -llua5.4 -lm
fi

# one scripted server for every run; its request log is not needed
"$LUA" "$B/concurrency_bench.lua" rules > "$TMP/script.json"
"$SYS_PY" "$ROOT/spec/support/fake_openai.py" "$TMP/script.json" /dev/null > "$TMP/server.out" 2> "$TMP/server.err" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do grep -q '^PORT' "$TMP/server.out" && break; sleep 0.05; done
PORT=$(sed -n 's/^PORT \([0-9]*\) .*/\1/p' "$TMP/server.out")
[ -n "$PORT" ] || { cat "$TMP/server.err" >&2; log "the scripted server did not start"; exit 1; }
export BENCH_BASE_URL=http://127.0.0.1:$PORT/v1

wait_for_quiet
for n in $BENCH_NS; do
  for r in $(seq 1 "$ROUNDS"); do
    log "N=$n round $r/$ROUNDS"
    export BENCH_ROUND=$r
    BENCH_CHATS=$n BENCH_OUT=$TMP/ab_${n}_$r.json "$HOSTBIN" "$B/concurrency_bench.lua"
    BENCH_CHATS=$n BENCH_OUT=$TMP/free_${n}_$r.json "$LUA" "$B/concurrency_bench.lua" free
    PATH="$B/build/pybin:$PATH" "$B/venv/bin/python" "$B/autogen_concurrency.py" "$n" "$BENCH_REPEAT" "$BENCH_BASE_URL" "$TMP/ag_${n}_$r.json"
  done
done

export BENCH_ROUNDS=$ROUNDS
export BENCH_CMD="cd $ROOT && make all && ${KNOBS}bash bench/concurrency.sh"
export BENCH_LOAD="load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
"$LUA" "$B/concurrency_bench.lua" report "$TMP" "$B/results/concurrency.json"
