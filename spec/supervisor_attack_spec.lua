-- Attacks on a block's own supervisor, for every executor: the code leaves
-- a setsid'd, double-forked process writing a heartbeat file, then kills
-- (-9), stops (SIGSTOP) or ptraces its supervisor into exit_group(0). Three
-- blocks in a row each attack; after every execute the heartbeats of this
-- and every earlier block must have stopped, and execute must have returned
-- within the host-side deadline (timeout + grace + core.deadline_margin).
local C = require("spec.support.contract")
local H = require("spec.support.helpers")
local task = require("agentbox.task")
local core = require("agentbox.core")

local TIMEOUT, GRACE = 8, 0.5   -- room for a loaded machine (the code runs at nice 10)

-- the python attack; HB is the heartbeat file, ATTACK one of kill9, stop, ptrace
local ATTACK = [=[
import ctypes, os, signal, sys, time
HB, ATTACK, RELAY = %q, %q, %s
ppid = os.getppid()
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open('/dev/null', os.O_RDWR)
        for i in (0, 1, 2): os.dup2(fd, i)
        n = 0
        while True:
            n += 1
            with open(HB + '.tmp', 'w') as f: f.write('%%d %%d' %% (os.getpid(), n))
            os.rename(HB + '.tmp', HB)
            if n == 1: os.write(w, b'x')
            time.sleep(0.05)
            # relay: a new process every beat, so a snapshot of the process
            # table is always one generation behind
            if RELAY and os.fork() != 0: os._exit(0)
    os._exit(0)
os.wait()
os.read(r, 1)
print('heartbeat running', flush=True)
try:
    if ATTACK == 'kill9':
        os.kill(ppid, signal.SIGKILL)
    elif ATTACK == 'stop':
        os.kill(ppid, signal.SIGSTOP)
    elif ATTACK == 'ptrace':
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.restype = ctypes.c_long
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        if libc.ptrace(16, ppid, None, None) != 0:            # PTRACE_ATTACH
            raise PermissionError('ptrace attach: errno %%d' %% ctypes.get_errno())
        os.waitpid(ppid, 0)
        regs = (ctypes.c_ulonglong * 27)()                     # x86_64 user_regs_struct
        for _ in range(20):
            libc.ptrace(24, ppid, None, None)                  # PTRACE_SYSCALL
            os.waitpid(ppid, 0)
            libc.ptrace(12, ppid, None, ctypes.byref(regs))    # PTRACE_GETREGS
            if regs[10] == 2**64 - 38:                         # rax = -ENOSYS: a syscall entry
                regs[15] = 231                                 # orig_rax = exit_group
                regs[14] = 0                                   # rdi = 0
                libc.ptrace(13, ppid, None, ctypes.byref(regs))  # PTRACE_SETREGS
                break
        libc.ptrace(17, ppid, None, None)                      # PTRACE_DETACH
    print('attack done', flush=True)
except OSError as e:
    print('attack refused:', e, flush=True)
]=]


-- execute with a watchdog: returns result, seconds (result nil if it hung)
local function timed_execute(ex, blocks, limit)
  local t0 = core.now()
  local t = task.spawn(function() return ex:execute(blocks) end)
  while not t:done() and core.now() - t0 < limit do task.step(50) end
  if not t:done() then
    t:cancel()
    for _ = 1, 40 do if t:done() then break end task.step(50) end
    return nil, core.now() - t0
  end
  local res, err = t:result()
  assert(res, err)
  return res, core.now() - t0
end

-- every heartbeat file in list must stand still; returns the live ones
-- (after a short settle: the host's deadline returns at once and the spawn
-- server kills what a killed supervisor left a moment later)
local function live_heartbeats(list)
  task.sleep(0.3)
  local before = {}
  for i, p in ipairs(list) do before[i] = H.try_read(p) end
  task.sleep(0.6)
  local live = {}
  for i, p in ipairs(list) do
    if H.try_read(p) ~= before[i] then live[#live + 1] = p .. " (" .. tostring(H.try_read(p)) .. ")" end
  end
  return live
end

-- what a failed run left behind must not keep running past the spec: every
-- process that runs a file of this work_dir (a relay changes pid each beat)
local function cleanup_local(list)
  local dir = list[1] and list[1]:match("^(.*)/")
  if not dir then return end
  for _ = 1, 5 do
    local p = io.popen("ls /proc")
    for pid in p:read("a"):gmatch("%d+") do
      local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
      local cmd = f and f:read("a") or ""
      if f then f:close() end
      if cmd:find(dir, 1, true) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    end
    p:close()
  end
end

-- the interpreter itself, not a version manager's shim (a bash script that
-- forks a dozen times, slow at nice 10 on a loaded machine)
local PYTHON = (H.run({ "python3", "-c", "import sys; print(sys.executable)" }).stdout or ""):match("[^\n]+")

C.each("a block that attacks its supervisor", function(E)
  local function new()
    return E.new{ timeout = TIMEOUT, grace = GRACE, python = not E.docker and PYTHON or nil }
  end

  local deadline = TIMEOUT + GRACE + (core.deadline_margin or 3) + 2

  for _, attack in ipairs({ "kill9", "stop", "ptrace" }) do
    E.it(attack .. ": nothing of a block survives it, three blocks in a row, each within the deadline", function()
      local ex = new()
      local hbs = {}
      local ok, err = pcall(function()
        for round = 1, 3 do
          local name = ("hb_%s_%d"):format(attack, round)
          hbs[#hbs + 1] = ex.work_dir .. "/" .. name
          local res, secs = timed_execute(ex, { { lang = "python", code = ATTACK:format(name, attack, "False") } }, deadline + 5)
          assert(res, ("round %d: execute hung for %.1f s (deadline %.1f s)"):format(round, secs, deadline))
          if os.getenv("D_DEBUG") and not res.output:find("heartbeat running", 1, true) then
            os.execute("ps -eo pid,ppid,stat,wchan:20,cmd | grep -E 'sup|tmp_code' | grep -v grep; ls -la " .. ex.work_dir)
          end
          assert(res.output:find("heartbeat running", 1, true), ("round %d: no heartbeat: %s"):format(round, res.output))
          assert(secs < deadline, ("round %d: execute took %.1f s, past the deadline %.1f s; output: %s")
            :format(round, secs, deadline, res.output))
          local live = live_heartbeats(hbs)
          assert(#live == 0, ("round %d: processes of earlier blocks still run: %s; output: %s")
            :format(round, table.concat(live, ", "), res.output))
        end
      end)
      if not E.docker then cleanup_local(hbs) end
      assert(ok, err)
    end)
  end

  E.it("kill9 with a relaying leftover (a new pid every beat), ten blocks in a row", function()
    local ex = new()
    local hbs = {}
    local ok, err = pcall(function()
      for round = 1, 10 do
        local name = ("hb_relay_%d"):format(round)
        hbs[#hbs + 1] = ex.work_dir .. "/" .. name
        local res, secs = timed_execute(ex, { { lang = "python", code = ATTACK:format(name, "kill9", "True") } },
                                        deadline + 5)
        assert(res, ("round %d: execute hung"):format(round))
        assert(res.output:find("heartbeat running", 1, true), ("round %d: no heartbeat: %s"):format(round, res.output))
        assert(secs < deadline, ("round %d: execute took %.1f s"):format(round, secs))
      end
      local live = live_heartbeats(hbs)
      assert(#live == 0, "relays still run: " .. table.concat(live, ", "))
    end)
    if not E.docker then cleanup_local(hbs) end
    assert(ok, err)
  end)

  E.it("the next block runs normally after an attack", function()
    local ex = new()
    local res = timed_execute(ex, { { lang = "python", code = ATTACK:format("hb_next", "kill9", "False") } }, deadline + 5)
    assert(res, "execute hung")
    local r2 = assert(timed_execute(ex, { { lang = "python", code = "print('fine')" } }, 20))
    assert.equal(0, r2.exit_code)
    assert.equal("fine\n", r2.output)
    cleanup_local({ ex.work_dir .. "/hb_next" })
  end)
end)

-- LocalExecutor only: the code runs as the host's uid and can reach the
-- spawn server (in Docker it is on the other side of the boundary)
local ON_SERVER = [=[
import os, signal, time
HB, SIG = %q, %d
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open('/dev/null', os.O_RDWR)
        for i in (0, 1, 2): os.dup2(fd, i)
        n = 0
        while True:
            n += 1
            with open(HB + '.tmp', 'w') as f: f.write('%%d %%d' %% (os.getpid(), n))
            os.rename(HB + '.tmp', HB)
            if n == 1: os.write(w, b'x')
            time.sleep(0.05)
    os._exit(0)
os.wait()
os.read(r, 1)
server = int(open('/proc/%%d/stat' %% os.getppid()).read().rsplit(')', 1)[1].split()[1])
print('heartbeat running', flush=True)
os.kill(server, SIG)
time.sleep(1)
print('still here', flush=True)
]=]

C.each("a block that attacks the spawn server", function(E)
  local deadline = TIMEOUT + GRACE + (core.deadline_margin or 3) + 2
  E.it("kill -9: the block ends with a clear line, its tree dies, the next block gets a new server", function()
    local ex = E.new{ timeout = TIMEOUT, grace = GRACE, python = PYTHON }
    local hb = ex.work_dir .. "/hb_server"
    local ok, err = pcall(function()
      local res, secs = timed_execute(ex, { { lang = "python", code = ON_SERVER:format("hb_server", 9) } }, deadline + 5)
      assert(res, "execute hung")
      assert(secs < deadline, ("execute took %.1f s"):format(secs))
      assert.matches("heartbeat running", res.output)
      -- stateful: the block runs in the session, whose grandparent is the
      -- session's supervisor; killing it ends the session, and says so
      assert.matches(E.stateful and "agentbox: the Python session died during this block"
                     or "agentbox: the run was cancelled from outside", res.output)
      assert.not_equal(0, res.exit_code)
      local live = live_heartbeats({ hb })
      assert(#live == 0, "the block's tree still runs: " .. table.concat(live, ", "))
      local r2 = assert(timed_execute(ex, { { lang = "python", code = "print('fine')" } }, 20))
      assert.equal("fine\n", r2.output)
    end)
    cleanup_local({ hb })
    assert(ok, err)
  end)

  E.it("SIGSTOP: later blocks are not held up by a stopped server", function()
    local ex = E.new{ timeout = TIMEOUT, grace = GRACE, python = PYTHON }
    local hb = ex.work_dir .. "/hb_server_stop"
    local ok, err = pcall(function()
      local res = timed_execute(ex, { { lang = "python", code = ON_SERVER:format("hb_server_stop", 19) } }, deadline + 5)
      assert(res, "execute hung")
      assert.matches("still here", res.output)
      local r2, secs = timed_execute(ex, { { lang = "python", code = "print('fine')" } }, deadline + 5)
      assert(r2, "the next execute hung")
      assert.equal("fine\n", r2.output)
      assert(secs < TIMEOUT, ("the next block took %.1f s"):format(secs))
      assert(#live_heartbeats({ hb }) == 0, "the first block's tree still runs")
    end)
    cleanup_local({ hb })
    assert(ok, err)
  end)
end, { ["local"] = true })
