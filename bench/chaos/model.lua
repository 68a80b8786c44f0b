-- bench/chaos/model.lua: what the scripted model answers in every chat of
-- the chaos benchmark, and the code it writes. The code is the same in every
-- chat; what differs (CHAOS_MARK, CHAOS_HB, CHAOS_TIMEOUT) comes through
-- the executor's environment.
local M = {}

-- heartbeat period of block 3's tree, seconds
M.BEAT = 0.010

-- Turn 1: files in the work_dir, then a background process that leaves the
-- session, ignores TERM and holds the block's stdout. Shell builtins only:
-- these two must finish well inside the timeout even on a loaded machine.
local BLOCK1 = [[
# chaos block 1: files and a sub-directory in the work_dir
mkdir -p chaos/sub
i=0
while [ $i -lt 20 ]; do printf '%4096s' x > chaos/sub/f$i.txt; i=$((i + 1)); done
echo "wrote 20 files"
]]
local BLOCK2 = [[
# chaos block 2: a background process in a session of its own, TERM ignored
setsid sh -c 'trap "" TERM HUP INT; exec sleep 86400' &
echo "left a background process behind"
]]
-- Turn 2: a tree that outlives the short timeout. The first statement stamps
-- the start ($EPOCHREALTIME: microseconds, no fork), so the deadline is
-- start + timeout (the supervisor's clock starts a bash start-up earlier,
-- 1-3 ms). Every process of the tree then writes a heartbeat (first, last,
-- count) to its own file in CHAOS_HB every BEAT, slowing to 1 s from about
-- five seconds past the deadline (a leaked tree must not load the machine).
-- Bash without a fork per beat (the sleep is a read with a timeout on a FIFO
-- nobody writes): at nice 10 on a busy machine a Python tree may not even be
-- up by the deadline. `1<>` rewrites in place: a kill between a truncation
-- and the write would leave an empty file (each line is at least as long as
-- the one before, so nothing stale remains). The tree re-runs this file
-- rather than export a function: a function exported to a child bash loses
-- the `1` of `1<>`.
local BLOCK3 = [[
# chaos block 3: a setsid'd, TERM-ignoring tree that outlives its deadline
beat() {
  exec 3<> "$CHAOS_HB/idle"
  local first=$EPOCHREALTIME n=0 pause=0.01
  local slow=$(( ${first%.*} + ${CHAOS_TIMEOUT%.*} + 6 ))
  while :; do
    n=$((n + 1))
    echo "$first $EPOCHREALTIME $n" 1<> "$CHAOS_HB/hb.$1.$BASHPID"
    [ "${EPOCHREALTIME%.*}" -lt "$slow" ] || pause=1
    read -t "$pause" -u 3
  done
}
case "$1" in
  detached) trap '' TERM; setsid bash "$0" c1 & beat c2 & beat detached ;;
  c1) beat c1 ;;
  *)
    echo "$EPOCHREALTIME" > "$CHAOS_HB/start"
    mkfifo "$CHAOS_HB/idle"
    setsid bash "$0" detached &
    beat main ;;
esac
]]

local function fence(lang, body) return "```" .. lang .. "\n" .. body .. "```\n" end

M.SCRIPT = { rules = {
  { when_last_contains = "CHAOS-START", content = "First some files and a helper.\n"
      .. fence("sh", BLOCK1) .. fence("sh", BLOCK2) },
  { when_last_contains = "exitcode: 124", content = "TERMINATE" },
  { when_last_contains = "exitcode: 0", content = "Now the long job.\n" .. fence("bash", BLOCK3) },
  { content = "TERMINATE" },
} }

return M
