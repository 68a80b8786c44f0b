-- Workspace attacks (issue 8 item 1), run against every executor kind: code
-- owns work_dir's contents and races the host while the host writes code
-- files there. The host (root here) must never write, create or unlink
-- anything outside work_dir.
local C = require("spec.support.contract")
local H = require("spec.support.helpers")
local core = require("agentbox.core")
local task = require("agentbox.task")

-- contract.lua calls describe/it/pending/after_each as globals, which busted
-- gives to spec files only
local busted = require("busted")
for _, k in ipairs({ "describe", "it", "pending", "after_each" }) do rawset(_G, k, rawget(_G, k) or busted[k]) end

-- The racer: makes `sub` a directory and `lnk` a link to the outside
-- directory, then swaps the two names atomically (renameat2
-- RENAME_EXCHANGE) as fast as it can until `racer.stop` appears.
local RACER = [[
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
ws, outside = sys.argv[1], sys.argv[2]
os.chdir(ws)
os.mkdir("sub")
os.symlink(outside, "lnk")
open("racer.ready", "w").close()
deadline, n = time.time() + 300, 0
while time.time() < deadline and not os.path.exists("racer.stop"):
    for _ in range(500):
        libc.renameat2(-100, b"sub", -100, b"lnk", 2)
    n += 500
open("racer.count", "w").write(str(n))
]]

local N = tonumber(os.getenv("AGENTBOX_RACE_N")) or 3000

local function listing(dir)
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local s = p:read("a")
  p:close()
  return s
end

local function wait_file(path, seconds)
  local t = core.now() + seconds
  while not H.exists(path) do
    if core.now() > t then error("timed out waiting for " .. path) end
    task.sync(task.sleep, 0.02)
  end
end

-- Start the racer where the threat is: inside the sandbox. Docker: an exec
-- in the executor's own container, as its sandbox user (the code's uid),
-- swapping inside the bind-mounted /workspace; the link's target is a host
-- path, which only the host ever resolves. Local: a host process in
-- work_dir (LocalExecutor's code is a host process).
local function start_racer(E, ex, outside)
  if E.kind == "docker" then
    ex:start()
    local c = ex.client
    local exec_id, err = c:exec_create(ex.container_id, { Cmd = { "python3", "-c", RACER, "/workspace", outside },
                                                          AttachStdout = false, AttachStderr = false })
    assert(exec_id, err)
    assert(task.sync(function()
      return c:call("start racer", { method = "POST", path = "/exec/" .. exec_id .. "/start",
                                     json = { Detach = true, Tty = false } })
    end))
    return function() end
  end
  local p = assert(core.spawn{ argv = { "python3", "-c", RACER, ex.work_dir, outside },
                               env = { PATH = os.getenv("PATH") }, timeout = 600 })
  return function() p:close() end
end

C.each("workspace race: a directory swapped with a link to the host", function(E)
  E.it(("the host writes " .. N .. " files through sub/ and nothing lands outside"), function()
    local outside = E.tmpdir("outside")
    H.write(outside .. "/victim.txt", "original")
    local ex = E.new{ execution_policies = { python = false } }   -- save only: the host's write path alone
    local stop = start_racer(E, ex, outside)
    wait_file(ex.work_dir .. "/racer.ready", 30)
    local written, refused, why = 0, 0, {}
    for n = 1, N do
      local r = ex:execute{ { lang = "python", code = ("# filename: sub/%d.py\nprint(%d)\n"):format(n, n) } }
      if r.exit_code == 0 then
        written = written + 1
      else
        refused = refused + 1
        local k = r.output:gsub("%d+%.py", "<n>.py")
        why[k] = (why[k] or 0) + 1
      end
    end
    for k, v in pairs(why) do print(("  refused %d times: %s"):format(v, k)) end
    H.write(ex.work_dir .. "/racer.stop", "")
    wait_file(ex.work_dir .. "/racer.count", 30)
    stop()
    local swaps = tonumber(H.read(ex.work_dir .. "/racer.count"))
    print(("\n[%s] %d blocks: %d written, %d refused; the racer swapped %d times"):format(E.kind, N, written,
      refused, swaps))
    assert.equal("victim.txt\n", listing(outside))
    assert.equal("original", H.read(outside .. "/victim.txt"))
    assert.is_true(swaps > 1000, "the racer did not run")
    assert.is_true(written > 0, "no write went through: the race proves nothing")
  end)
end)
