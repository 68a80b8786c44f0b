-- LocalExecutor{ stateful = true } (issue 11): python blocks share one
-- interpreter, as in AutoGen's Jupyter executors. State persists; an
-- exception keeps it; a timeout, a crash or a killed session restarts the
-- interpreter and the output says so; restart() clears it. Each block keeps
-- the supervision of any block: its deadline, output cap, quota, and the
-- death of everything it started when it ends. The interpreter is out of
-- reach of another user's processes and each executor has its own.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local task = require("agentbox.task")
local H = require("spec.support.helpers")
local helper = require("agentbox.executor.python_helper")

-- the interpreter itself, not a version manager's shim
local PYTHON = (H.run({ "python3", "-c", "import sys; print(sys.executable)" }).stdout or ""):match("[^\n]+")

local read = H.try_read

-- a pid a block wrote; if it is still alive it is killed here, after the verdict
local function dead_after(path, wait)
  local pid = read(path)
  if not pid then return nil, "no pid in " .. path end
  task.sleep(wait or 0)
  local live = H.alive(pid)
  if live then os.execute("kill -9 " .. pid) end
  return not live
end

local LOST = "the variables and imports of earlier blocks are lost"

-- a grandchild that leaves the session, ignores TERM and writes its pid
local function grandchild(name)
  return ([[
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open('%s', 'w') as f: f.write(str(os.getpid()))
        while True: time.sleep(0.05)
    os._exit(0)
while not os.path.exists('%s'): time.sleep(0.01)
]]):format(name, name)
end

describe("LocalExecutor stateful", function()
  local dir, exs
  local function new(opts)
    opts = opts or {}
    opts.work_dir = opts.work_dir or dir
    opts.python = opts.python or PYTHON
    opts.timeout = opts.timeout or 10
    if opts.stateful == nil then opts.stateful = true end
    local ex = agentbox.LocalExecutor(opts)
    exs[#exs + 1] = ex
    return ex
  end
  local function py(ex, code) return ex:execute{ { lang = "python", code = code } } end
  before_each(function()
    dir = H.tmpdir("stateful")
    exs = {}
  end)
  after_each(function()
    for _, ex in ipairs(exs) do ex:close() end
    H.rm_rf(dir)
  end)

  it("checks the option: a boolean, and a grace to kill a block's tree in", function()
    for _, bad in ipairs({ 1, "yes", {} }) do
      local ok, err = pcall(agentbox.LocalExecutor, { work_dir = dir, stateful = bad })
      assert.is_false(ok)
      assert.matches("stateful must be a boolean", err)
    end
    local ok, err = pcall(agentbox.LocalExecutor, { work_dir = dir, stateful = true, grace = 0 })
    assert.is_false(ok)
    assert.matches("stateful needs a grace > 0", err)
    assert.is_false(new{ stateful = false }.stateful)
  end)

  it("keeps variables and imports between blocks and between execute calls", function()
    local ex = new()
    local r = ex:execute{ { lang = "python", code = "import decimal\nx = 1\nprint('set')" },
                          { lang = "sh", code = "echo shell" },
                          { lang = "python", code = "x += 1\nprint(x, decimal.Decimal('1.5'))" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("set\nshell\n2 1.5\n", r.output)
    r = py(ex, "print(x)")
    assert.equal("2\n", r.output)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: 2\n", agentbox.code.format_result(r))
  end)

  it("each block sees itself as python3 file.py would: __main__, argv, __file__, cwd, sys.path[0]", function()
    local ex = new{ env = { AB_MARK = "m1" } }
    local code = [[
import os, sys
print(__name__, sys.argv == [__file__], os.path.isabs(__file__), os.path.basename(__file__))
print(os.getcwd() == os.path.realpath(%q))
print(sys.path[0] == os.path.dirname(os.path.realpath(__file__)), os.environ['AB_MARK'], os.environ['PYTHONUNBUFFERED'])
print(sys.modules['__main__'].__dict__ is globals(), os.path.realpath('/proc/self/fd/0'))
os.chdir('/')
]]
    local r = py(ex, "# filename: a.py\n" .. code:format(ex.work_dir))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("__main__ True True a.py\nTrue\nTrue m1 1\nTrue /dev/null\n", r.output)
    -- the next block starts in work_dir again, with its own file and path
    assert.truthy(core.mkdir_p(ex.work_dir .. "/sub"))
    r = py(ex, "# filename: sub/b.py\n" .. code:format(ex.work_dir))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("__main__ True True b.py\nTrue\nTrue m1 1\nTrue /dev/null\n", r.output)
  end)

  it("reports an exception with its traceback and exit code 1, and keeps the state", function()
    local ex = new()
    py(ex, "x = 41")
    local r = py(ex, "def f():\n    raise ValueError('boom')\nx += 1\nf()")
    assert.equal(1, r.exit_code)
    assert.matches("^Traceback %(most recent call last%):\n  File \"[^\"]+%.py\", line 4, in <module>", r.output)
    assert.matches("ValueError: boom\n$", r.output)
    assert.not_matches("agentbox_session", r.output, 1, true)
    assert.matches("^exitcode: 1 %(execution failed%)\nCode output: Traceback", agentbox.code.format_result(r))
    r = py(ex, "def (:")
    assert.equal(1, r.exit_code)
    assert.matches("SyntaxError", r.output, 1, true)
    assert.not_matches("Traceback", r.output, 1, true)
    assert.equal("42\n", py(ex, "print(x)").output)
  end)

  it("sys.exit(3) reports 3 and keeps the state; an uncaught KeyboardInterrupt 130", function()
    local ex = new()
    local r = py(ex, "import sys\nx = 'kept'\nprint('out')\nsys.exit(3)")
    assert.equal(3, r.exit_code)
    assert.equal("out\n", r.output)
    r = py(ex, "raise SystemExit('bye ' + x)")
    assert.equal(1, r.exit_code)
    assert.equal("bye kept\n", r.output)
    r = py(ex, "raise KeyboardInterrupt")
    assert.equal(130, r.exit_code, r.output)
    assert.matches("KeyboardInterrupt", r.output, 1, true)
    assert.equal("kept\n", py(ex, "print(x)").output)
  end)

  it("a timeout kills the block's tree, restarts the interpreter and says the state is lost", function()
    local ex = new{ timeout = 2 }
    py(ex, "x = 1")
    local t0 = core.now()
    local r = py(ex, grandchild("gc.pid") .. "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   .. "print('started', flush=True)\ntime.sleep(60)")
    local secs = core.now() - t0
    assert.equal(124, r.exit_code, r.output)
    assert.matches("^started\n", r.output)
    assert.matches("restarted (this block timed out): " .. LOST, r.output, 1, true)
    assert.matches("\nTimeout$", r.output)
    assert.is_true(dead_after(ex.work_dir .. "/gc.pid"), "the grandchild outlived the block")
    assert.truthy(secs < 2 + 0.5 + core.deadline_margin, secs)
    r = py(ex, "print('x' in globals())")
    assert.equal(0, r.exit_code, r.output)
    assert.equal("False\n", r.output)
  end)

  it("a block that ends the interpreter (os._exit): its status, the state lost line, the next block runs", function()
    local ex = new()
    py(ex, "y = 5")
    local r = py(ex, grandchild("ox.pid") .. "print('bye', flush=True)\nos._exit(4)")
    assert.equal(4, r.exit_code, r.output)
    assert.matches("^bye\n\nagentbox: the Python session's interpreter was restarted %(it exited with code 4%)", r.output)
    assert.is_true(dead_after(ex.work_dir .. "/ox.pid", 0.2), "the grandchild outlived the interpreter")
    r = py(ex, "print('y' in globals())")
    assert.equal("False\n", r.output)
    -- killed by a signal
    r = py(ex, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert.equal(137, r.exit_code, r.output)
    assert.matches("restarted (it was killed by signal 9)", r.output, 1, true)
    assert.equal("fine\n", py(ex, "print('fine')").output)
  end)

  it("an interpreter killed by SIGUSR1 or SIGUSR2 (the client's own signals) is 128 + signal, run once", function()
    -- the client mirrors the block's signal, but these it dies of only when
    -- the keeper was lost or nobody took the block (which then runs again):
    -- 128 + signal, as agentbox-sup --preload-client (docker-stateful) says
    local ex = new()
    for sig, n in pairs({ SIGUSR1 = 10, SIGUSR2 = 12 }) do
      py(ex, "y = 5")
      local r = py(ex, "import os, signal\nprint('ran', flush=True)\nos.kill(os.getpid(), signal." .. sig .. ")")
      assert.equal(128 + n, r.exit_code, r.output)
      assert.matches("^ran\n\nagentbox: the Python session's interpreter was restarted %(it was killed by signal "
        .. n .. "%)", r.output)
      assert.not_matches("ran\n.*ran\n", r.output)
      assert.equal("False\n", py(ex, "print('y' in globals())").output)
    end
  end)

  it("a block that kills the session's keeper (its parent): its tree dies, the output says so", function()
    local ex = new()
    py(ex, "z = 1")
    local r = py(ex, grandchild("hb.pid") .. "print('killing', flush=True)\nos.kill(os.getppid(), signal.SIGKILL)\n"
                   .. "time.sleep(5)\nprint('survived')")
    assert.matches("^killing\n", r.output)
    assert.not_matches("survived", r.output, 1, true)
    assert.not_equal(0, r.exit_code)
    assert.matches("the Python session died during this block", r.output, 1, true)
    assert.is_true(dead_after(ex.work_dir .. "/hb.pid", 0.3), "the grandchild outlived the session")
    r = py(ex, "print('z' in globals())")
    assert.equal(0, r.exit_code, r.output)
    assert.equal("False\n", r.output)
  end)

  it("a block that kills its client (the supervised process): nothing left, the state lost line", function()
    local ex = new()
    py(ex, "z = 1")
    local r = py(ex, grandchild("hc.pid") .. [[
for d in os.listdir('/proc'):
    if d.isdigit():
        try: cmd = open('/proc/%s/cmdline' % d, 'rb').read().split(b'\0')
        except OSError: continue
        if __file__.encode() in cmd and any(c.endswith(b'agentbox_client.py') for c in cmd):
            print('killing the client', flush=True)
            os.kill(int(d), signal.SIGKILL)
time.sleep(3)
print('survived')
]])
    assert.matches("^killing the client\n", r.output)
    assert.not_matches("survived", r.output, 1, true)
    assert.equal(137, r.exit_code, r.output)
    assert.is_true(dead_after(ex.work_dir .. "/hc.pid", 0.3), "the grandchild outlived its client")
    assert.equal("False\n", py(ex, "print('z' in globals())").output)
  end)

  it("a block that stops the keeper: the block ends at its deadline, a new session runs the next", function()
    local ex = new{ timeout = 2 }
    py(ex, "w = 1")
    local t0 = core.now()
    local r = py(ex, "import os, signal\nprint('stopping', flush=True)\nos.kill(os.getppid(), signal.SIGSTOP)")
    assert.truthy(core.now() - t0 < 2 + 0.5 + core.deadline_margin, core.now() - t0)
    assert.equal(124, r.exit_code, r.output)
    assert.matches("did not end this block at its deadline and was replaced", r.output, 1, true)
    t0 = core.now()
    r = py(ex, "print('w' in globals())")
    assert.equal("False\n", r.output)
    assert.truthy(core.now() - t0 < 3, core.now() - t0)
  end)

  it("kills what a block leaves running (setsid, double fork) and keeps the interpreter", function()
    local ex = new()
    local r = py(ex, [[
import os, subprocess, time
q = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
p1 = subprocess.Popen(['sh', '-c', 'echo $$ > plain.pid; exec sleep 30'], **q)
p2 = subprocess.Popen(['setsid', 'sh', '-c', 'echo $$ > setsid.pid; exec sleep 30'], **q)
if os.fork() == 0:
    if os.fork() == 0:
        with open('double.pid', 'w') as f: f.write(str(os.getpid()))
        time.sleep(30)
    os._exit(0)
while not all(os.path.exists(n) for n in ('plain.pid', 'setsid.pid', 'double.pid')): time.sleep(0.01)
me = os.getpid()
print('left them')
]])
    assert.equal(0, r.exit_code, r.output)
    assert.equal("left them\n", r.output)
    for _, n in ipairs({ "plain.pid", "setsid.pid", "double.pid" }) do
      assert.is_true(dead_after(ex.work_dir .. "/" .. n), n .. " outlived its block")
    end
    r = py(ex, "import os\nprint(os.getpid() == me, p1.wait(), p2.poll() is not None)")
    assert.equal("True -9 True\n", r.output)
  end)

  it("restart() clears the state; on a non-stateful executor it does nothing", function()
    local ex = new()
    py(ex, "x = 1")
    assert.is_true(ex:restart())
    local r = py(ex, "print('x' in globals())")
    assert.equal("False\n", r.output)
    assert.not_matches("agentbox:", r.output, 1, true)
    local plain = new{ stateful = false }
    assert.is_true(plain:restart())
    assert.equal("ok\n", py(plain, "print('ok')").output)
  end)

  it("two executors have separate interpreters", function()
    local a, b = new(), new{ work_dir = dir .. "/b" }
    py(a, "import os\nx = 'a'")
    py(b, "import os\nx = 'b'")
    local ra, rb = py(a, "print(x, os.getpid())"), py(b, "print(x, os.getpid())")
    local pa, pb = ra.output:match("^a (%d+)\n$"), rb.output:match("^b (%d+)\n$")
    assert.truthy(pa, ra.output)
    assert.truthy(pb, rb.output)
    assert.not_equal(pa, pb)
  end)

  it("one execute at a time: a second one at once raises", function()
    local ex = new()
    local t = task.spawn(function() return py(ex, "import time\ntime.sleep(0.5)\nprint('first')") end)
    task.step(0)
    local ok, err = pcall(py, ex, "print('second')")
    assert.is_false(ok)
    assert.matches("execute is already running on this executor", err)
    task.run(function() return t:done() end)
    assert.equal("first\n", t:result().output)
  end)

  it("streams output to on_output before the block ends, and caps it per execute", function()
    local seen = {}
    local ex = new{ max_output = 1000, on_output = function(chunk) seen[#seen + 1] = { chunk, core.now() } end }
    local t0 = core.now()
    local r = py(ex, "import sys, time\nsys.stdout.write('early\\n')\ntime.sleep(0.6)\nsys.stdout.write('late\\n')")
    local t1 = core.now()
    assert.equal("early\nlate\n", r.output)
    assert.equal("early\n", seen[1][1])
    assert.is_true(seen[1][2] - t0 < t1 - t0 - 0.4)
    r = py(ex, "k = 7\nprint('x' * 5000)")
    assert.equal(0, r.exit_code)
    assert.equal(("x"):rep(1000) .. "\n[agentbox: output truncated, 4001 bytes dropped (max_output = 1000)]", r.output)
    assert.equal("7\n", py(ex, "print(k)").output)
  end)

  it("the workspace quota: a block that goes over it ends the session, the state is lost", function()
    local ex = new{ quota = { bytes = "2m" } }
    py(ex, "q = 1")
    -- one file: the write fails (EFBIG) or a poll kills the block first
    local r = py(ex, "with open('big', 'wb') as f:\n    for _ in range(64): f.write(b'x' * 65536)\nprint('wrote it all')")
    assert.equal(122, r.exit_code, r.output)
    assert.not_matches("wrote it all", r.output, 1, true)
    assert.matches("the workspace quota ended the Python session; " .. LOST, r.output, 1, true)
    os.remove(ex.work_dir .. "/big")
    assert.equal("False\n", py(ex, "print('q' in globals())").output)
    py(ex, "q = 1")
    -- many files: the supervisor kills the block's client, and the block with it
    r = py(ex, "import time\nfor i in range(40):\n    open('f%d' % i, 'wb').write(b'x' * 65536)\n"
               .. "time.sleep(5)\nprint('survived')")
    assert.equal(122, r.exit_code, r.output)
    assert.not_matches("survived", r.output, 1, true)
    assert.matches("the workspace quota ended the Python session; " .. LOST, r.output, 1, true)
    for i = 0, 39 do os.remove(ex.work_dir .. "/f" .. i) end
    assert.equal("False\n", py(ex, "print('q' in globals())").output)
  end)

  it("with preload, the interpreter starts with the modules, after a restart too", function()
    local ex = new{ preload = { "decimal" }, timeout = 1 }
    local code = "import sys\nprint('decimal' in sys.modules)"
    assert.equal("True\n", py(ex, code).output)
    assert.equal(124, py(ex, "import time\ntime.sleep(5)").exit_code)
    assert.equal("True\n", py(ex, code).output)
  end)

  it("start() starts the session ahead; close ends it", function()
    local ex = new()
    assert.equal(ex, ex:start())
    local r = py(ex, "import os\nprint(os.getppid())")
    local keeper = r.output:match("^(%d+)\n$")
    assert.truthy(keeper, r.output)
    assert.is_true(H.alive(keeper))
    ex:close()
    task.sleep(0.2)
    assert.is_false(H.alive(keeper))
  end)

  it("rlimits apply to the session's interpreter and what blocks start", function()
    local ex = new{ rlimits = { nofile = 64 } }
    local r = py(ex, "import resource, subprocess\nprint(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
                   .. "print(subprocess.run(['sh', '-c', 'ulimit -n'], capture_output=True, text=True).stdout.strip())")
    assert.equal(0, r.exit_code, r.output)
    assert.equal("(64, 64)\n64\n", r.output)
  end)

  it("an executor collected without close ends its session", function()
    local pids = (function()
      local ex = agentbox.LocalExecutor{ work_dir = dir, python = PYTHON, stateful = true }
      return py(ex, "import os\nprint(os.getpid(), os.getppid())").output
    end)()
    local interp, keeper = pids:match("^(%d+) (%d+)\n$")
    assert.truthy(keeper, pids)
    collectgarbage()
    collectgarbage()
    for _ = 1, 50 do
      if not H.alive(interp) and not H.alive(keeper) then break end
      task.sleep(0.02)
    end
    assert.is_false(H.alive(interp))
    assert.is_false(H.alive(keeper))
  end)

  it("the audit log says python blocks run in the session", function()
    local recs = {}
    local ex = new{ audit = function(rec) recs[#recs + 1] = rec end }
    assert.equal("1\n", py(ex, "print(1)").output)
    assert.truthy(#recs >= 1)
    for _, rec in ipairs(recs) do assert.is_true(rec.sandbox.stateful) end
    local plain = new{ stateful = false, audit = function(rec) recs[#recs + 1] = rec end }
    py(plain, "print(1)")
    assert.is_false(recs[#recs].sandbox.stateful)
  end)

  it("another user's process cannot run code in the session", function()
    if core.geteuid() ~= 0 then return pending("needs root to act as uid 65534") end
    -- its socket, as anyone can see it: the one that appears when it starts
    local function names()
      local set = {}
      for line in io.lines("/proc/net/unix") do
        local n = line:match("@(agentbox%-session%-%x+)")
        if n then set[n] = true end
      end
      return set
    end
    local before = names()
    local ex = new()
    ex:start()
    local name
    for n in pairs(names()) do if not before[n] then name = n end end
    assert.truthy(name)
    local other = H.tmpdir("other")
    os.execute("chmod 777 '" .. other .. "'")
    H.write(other .. "/evil.py", "open('" .. other .. "/ran', 'w').write('as root')\n")
    os.execute("chmod 644 '" .. other .. "/evil.py'")
    local r = H.run({ "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                      table.unpack(helper.client_argv(PYTHON, name, 1, other .. "/evil.py")) },
                    { cwd = other, timeout = 20 })
    local ran = H.exists(other .. "/ran")
    H.rm_rf(other)
    assert.is_false(ran, "code of uid 65534 ran in the session")
    assert.equal(12, r.signal, r.output)   -- UNAVAILABLE: nobody took it
    assert.equal("fine\n", py(ex, "print('fine')").output)
  end)
end)
