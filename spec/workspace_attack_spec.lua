-- Workspace attacks (issue 8 item 1), run against every executor kind: code
-- owns work_dir's contents and races the host while the host writes code
-- files there. The host (root here) must never write, create or unlink
-- anything outside work_dir.
local C = require("spec.support.contract")
local H = require("spec.support.helpers")
local core = require("agentbox.core")
local task = require("agentbox.task")


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
open("racer.count.tmp", "w").write(str(n))
os.rename("racer.count.tmp", "racer.count")   # whole, or not there yet
]]

-- The removal racer: keeps rebuilding sub/ (with files, and a nested
-- directory swapped with a nested link) and swapping sub with lnk, while
-- the host removes sub.
local RACER_RM = [[
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
ws, outside = sys.argv[1], sys.argv[2]
os.chdir(ws)
open("racer.ready", "w").close()
deadline, n = time.time() + 300, 0
NF = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
def attempt(f, *a, **k):
    try: return f(*a, **k)
    except OSError: return None
# the racer itself never follows a link (on the host, LocalExecutor's code
# could write outside on its own): everything goes through directory fds
while time.time() < deadline and not os.path.exists("racer.stop"):
    attempt(os.mkdir, "stage")
    fd = attempt(os.open, "stage", NF)
    if fd is None:
        continue
    attempt(os.mkdir, "in", dir_fd=fd)
    infd = attempt(os.open, "in", NF, dir_fd=fd)
    if infd is not None:
        attempt(lambda: os.close(os.open("f", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=infd)))
        os.close(infd)
    attempt(os.symlink, outside, "inl", dir_fd=fd)
    attempt(os.symlink, outside, "lnk")
    attempt(os.rename, "stage", "sub")
    for _ in range(20):
        libc.renameat2(fd, b"in", fd, b"inl", 2)
        libc.renameat2(-100, b"sub", -100, b"lnk", 2)
    n += 20
    os.close(fd)
open("racer.count.tmp", "w").write(str(n))
os.rename("racer.count.tmp", "racer.count")   # whole, or not there yet
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
-- work_dir (LocalExecutor's code is a host process). Returns once the racer
-- is ready; the function returned ends the race and returns the number of
-- swaps the racer made.
local function start_racer(E, ex, outside, racer)
  racer = racer or RACER
  local p   -- the local racer (Docker's is an exec; it ends at racer.stop, like this one)
  if E.docker then
    ex:start()
    local c = ex.client
    local exec_id, err = c:exec_create(ex.container_id, { Cmd = { "python3", "-c", racer, "/workspace", outside },
                                                          User = ex.run_user,   -- the container's own user is root
                                                          AttachStdout = false, AttachStderr = false })
    assert(exec_id, err)
    assert(task.sync(function()
      return c:call("start racer", { method = "POST", path = "/exec/" .. exec_id .. "/start",
                                     json = { Detach = true, Tty = false } })
    end))
  else
    p = assert(core.spawn{ argv = { "python3", "-c", racer, ex.work_dir, outside },
                           env = { PATH = os.getenv("PATH") }, timeout = 600 })
  end
  wait_file(ex.work_dir .. "/racer.ready", 30)
  return function()
    H.write(ex.work_dir .. "/racer.stop", "")
    wait_file(ex.work_dir .. "/racer.count", 30)
    if p then p:close() end
    return tonumber(H.read(ex.work_dir .. "/racer.count"))
  end
end

-- The races need the racer in the executor's work_dir while the host writes
-- there: docker-fresh and docker-pool (a given work_dir) never mount it (it is copied in and out while
-- nothing of the sandbox runs, through this same accessor), so its copies
-- are attacked in docker_pool_spec.lua instead.
local MOUNTED = C.except("docker-fresh", "docker-pool")

C.each("workspace race: a directory swapped with a link to the host", function(E)
  E.it(("the host writes " .. N .. " files through sub/ and nothing lands outside"), function()
    -- the host work_dir is not the sandbox's with a remote daemon (archive transfer)
    local outside = E.tmpdir("outside")
    H.write(outside .. "/victim.txt", "original")
    local ex = E.new{ execution_policies = { python = false } }   -- save only: the host's write path alone
    local stop = start_racer(E, ex, outside)
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
    local swaps = stop()
    print(("\n[%s] %d blocks: %d written, %d refused; the racer swapped %d times"):format(E.kind, N, written,
      refused, swaps))
    assert.equal("victim.txt\n", listing(outside))
    assert.equal("original", H.read(outside .. "/victim.txt"))
    assert.is_true(swaps > 1000, "the racer did not run")
    assert.is_true(written > 0, "no write went through: the race proves nothing")
  end, { remote = "work_dir is not shared with the sandbox" })
end, MOUNTED)

C.each("workspace race: removal while the code rebuilds and swaps", function(E)
  E.it(("the host removes sub " .. N .. "+ times through the accessor and nothing outside goes"), function()
    -- the host work_dir is not the sandbox's with a remote daemon (archive transfer)
    local outside = E.tmpdir("outside")
    H.write(outside .. "/victim.txt", "original")
    assert(os.execute(("mkdir '%s/in' && echo x > '%s/in/f'"):format(outside, outside)))
    local ex = E.new()
    local stop = start_racer(E, ex, outside, RACER_RM)
    local ws, removed, failed = ex._ws, 0, 0   -- the accessor's remove, called directly
    local until_t = core.now() + 3   -- and for 3 s at least: the rebuilds are slower than the removals
    while removed + failed < N or core.now() < until_t do
      if ws:remove("sub") then removed = removed + 1 else failed = failed + 1 end
    end
    local swaps = stop()
    print(("\n[%s] %d removals: %d done, %d failed; the racer swapped %d times"):format(E.kind, removed + failed,
      removed, failed, swaps))
    assert.equal("in\nvictim.txt\n", listing(outside))
    assert.equal("f\n", listing(outside .. "/in"))
    assert.equal("original", H.read(outside .. "/victim.txt"))
    assert.is_true(swaps > 1000, "the racer did not run")
  end, { remote = "work_dir is not shared with the sandbox" })
end, MOUNTED)

C.each("workspace race: the openat2-less walk (kernels before 5.6)", function(E)
  E.it(("ws:write of sub/<n>.py " .. N .. " times through the O_NOFOLLOW walk and nothing lands outside"), function()
    -- the host work_dir is not the sandbox's with a remote daemon (archive transfer)
    local outside = E.tmpdir("outside")
    H.write(outside .. "/victim.txt", "original")
    local ex = E.new()
    local ws <close> = assert(core.workspace(ex.work_dir, { resolve = "walk" }))
    local stop = start_racer(E, ex, outside)
    local written, refused = 0, 0   -- the accessor's write, called directly
    -- at least N writes, and more (up to 10 N) while none went through: on
    -- a loaded machine the racer may hold the link side for a long stretch
    local n = 0
    while n < N or (written == 0 and n < 10 * N) do
      n = n + 1
      if ws:write(("sub/%d.py"):format(n), "print(1)\n") then written = written + 1 else refused = refused + 1 end
    end
    local swaps = stop()
    print(("\n[%s] walk: %d writes: %d written, %d refused; the racer swapped %d times"):format(E.kind, n, written,
      refused, swaps))
    assert.equal("victim.txt\n", listing(outside))
    assert.equal("original", H.read(outside .. "/victim.txt"))
    assert.is_true(swaps > 1000, "the racer did not run")
    assert.is_true(written > 0, "no write went through: the race proves nothing")
  end, { remote = "work_dir is not shared with the sandbox" })
end, MOUNTED)
