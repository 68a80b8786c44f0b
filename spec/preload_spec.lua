-- LocalExecutor{ preload = {...} } (issue 11, first step): python blocks are
-- forks of a template interpreter that imported the modules once. A block
-- must see what `python3 file.py` sees, nothing of an earlier block, fresh
-- random state, and the same supervision: the whole tree dead at the
-- deadline, the template out of the code's reach or replaced when it dies.
-- The modules are the standard library's (decimal, random): pandas is in
-- bench/preload_bench.lua only.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local task = require("agentbox.task")
local H = require("spec.support.helpers")

-- the interpreter itself, not a version manager's shim
local PYTHON = (H.run({ "python3", "-c", "import sys; print(sys.executable)" }).stdout or ""):match("[^\n]+")

local alive, read = H.alive, H.try_read

describe("LocalExecutor preload", function()
  local dir, exs
  local function new(opts)
    opts.work_dir = opts.work_dir or dir
    opts.python = opts.python or PYTHON
    opts.timeout = opts.timeout or 10
    local ex = agentbox.LocalExecutor(opts)
    exs[#exs + 1] = ex
    return ex
  end
  before_each(function()
    dir = H.tmpdir("preload")
    exs = {}
  end)
  after_each(function()
    for _, ex in ipairs(exs) do ex:close() end
    H.rm_rf(dir)
  end)

  it("checks the option: a list of module names", function()
    for _, bad in ipairs({ "decimal", { 1 }, { "os; import x" }, { "" }, { a = "b" } }) do
      local ok, err = pcall(agentbox.LocalExecutor, { work_dir = dir, preload = bad })
      assert.is_false(ok)
      assert.matches("preload must be a list of module names", err)
    end
    new{ preload = {} }:close()
    -- the block's tree dies within the grace: none would let it outlive the report
    local ok, err = pcall(agentbox.LocalExecutor, { work_dir = dir, preload = { "json" }, grace = 0 })
    assert.is_false(ok)
    assert.matches("preload needs a grace > 0", err)
  end)

  it("a block sees what python3 file.py sees, with the modules already imported", function()
    -- a request past one message (the environment is sent whole)
    local ex = new{ preload = { "decimal" }, env = { AB_MARK = "m1", AB_BIG = ("x"):rep(20000) } }
    local r = ex:execute{ { lang = "python", code = [[
import sys, os
print('preloaded', 'decimal' in sys.modules)
print('name', __name__)
print('argv', sys.argv == [__file__], os.path.isabs(sys.argv[0]), sys.argv[0].endswith('.py'))
print('path0', sys.path[0] == os.path.dirname(os.path.realpath(__file__)))
print('cwd', os.getcwd())
print('env', os.environ.get('AB_MARK'), os.environ.get('PYTHONUNBUFFERED'), len(os.environ['AB_BIG']))
print('globals', sorted(k for k in globals() if k not in ('sys', 'os')))
print('main', sys.modules['__main__'].__dict__ is globals())
print('stdin', os.path.realpath('/proc/self/fd/0'))
]] } }
    assert.equal(0, r.exit_code, r.output)
    local real = core.realpath(ex.work_dir)
    assert.matches("preloaded True\n", r.output, 1, true)
    assert.matches("name __main__\n", r.output, 1, true)
    assert.matches("argv True True True\n", r.output, 1, true)
    assert.matches("path0 True\n", r.output, 1, true)
    assert.matches("cwd " .. real .. "\n", r.output, 1, true)
    assert.matches("env m1 1 20000\n", r.output, 1, true)
    assert.matches("globals ['__annotations__', '__builtins__', '__cached__', '__doc__', '__file__', " ..
                   "'__loader__', '__name__', '__package__', '__spec__']\n", r.output, 1, true)
    assert.matches("main True\n", r.output, 1, true)
    assert.matches("stdin /dev/null\n", r.output, 1, true)
  end)

  it("exit codes and tracebacks as python3 file.py gives them", function()
    local ex = new{ preload = { "decimal" } }
    local r = ex:execute{ { lang = "python", code = "import sys\nprint('out')\nsys.exit(3)" } }
    assert.equal(3, r.exit_code)
    assert.equal("out\n", r.output)
    r = ex:execute{ { lang = "python", code = "def f():\n    raise ValueError('boom')\nf()" } }
    assert.equal(1, r.exit_code)
    assert.matches("^Traceback %(most recent call last%):\n  File \"[^\"]+%.py\", line 3, in <module>", r.output)
    assert.matches("ValueError: boom", r.output, 1, true)
    assert.not_matches("agentbox_preload", r.output, 1, true)
    r = ex:execute{ { lang = "python", code = "def (:" } }
    assert.equal(1, r.exit_code)
    assert.matches("SyntaxError", r.output, 1, true)
    assert.not_matches("Traceback", r.output, 1, true)
  end)

  it("nothing a block defines or patches reaches the next one", function()
    local ex = new{ preload = { "decimal" } }
    local r = ex:execute{ { lang = "python", code = "import decimal, os\ndecimal.Decimal = None\nLEFT = 1\n"
                                                     .. "os.environ['AB_LEFT'] = '1'\nprint('patched')" } }
    assert.equal(0, r.exit_code, r.output)
    r = ex:execute{ { lang = "python", code = "import decimal, os\nprint(decimal.Decimal is None, 'LEFT' in globals(), "
                                              .. "os.environ.get('AB_LEFT'))" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("False False None\n", r.output)
  end)

  it("random state differs between blocks", function()
    local ex = new{ preload = { "random" } }
    local code = "import random\nprint(random.random(), random.getrandbits(64))"
    local a = ex:execute{ { lang = "python", code = code } }
    local b = ex:execute{ { lang = "python", code = code } }
    assert.equal(0, a.exit_code, a.output)
    assert.equal(0, b.exit_code, b.output)
    assert.not_equal(a.output, b.output)
  end)

  it("numpy's global generator differs between blocks (when numpy is installed)", function()
    local py
    for _, p in ipairs({ PYTHON, "/usr/bin/python3" }) do
      if not py and H.run({ p, "-c", "import numpy" }).exit_code == 0 then py = p end
    end
    if not py then return pending("numpy is not installed for " .. PYTHON .. " nor /usr/bin/python3") end
    local ex = new{ preload = { "numpy" }, python = py }
    local code = "import numpy\nprint(numpy.random.random(), numpy.random.randint(1 << 30))"
    local a = ex:execute{ { lang = "python", code = code } }
    local b = ex:execute{ { lang = "python", code = code } }
    assert.equal(0, a.exit_code, a.output)
    assert.not_equal(a.output, b.output)
  end)

  it("the workspace quota stops a preloaded block", function()
    local ex = new{ preload = { "decimal" }, quota = { bytes = "2m" } }
    local r = ex:execute{ { lang = "python", code = [[
import os
with open('pid', 'w') as f: f.write(str(os.getpid()))
with open('big', 'wb') as f:
    for _ in range(64): f.write(b'x' * 65536)
print('wrote it all')
]] } }
    assert.equal(122, r.exit_code, r.output)
    assert.not_matches("wrote it all", r.output, 1, true)
    local pid = read(ex.work_dir .. "/pid")
    assert.truthy(pid)
    assert.is_false(alive(pid))
    os.remove(ex.work_dir .. "/big")
  end)

  it("a setsid'd TERM-ignoring grandchild is dead when execute returns at the deadline", function()
    local ex = new{ preload = { "decimal" }, timeout = 2 }
    local t0 = core.now()
    local r = ex:execute{ { lang = "python", code = [[
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open('gc.pid', 'w') as f: f.write(str(os.getpid()))
        while True: time.sleep(0.05)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while not os.path.exists('gc.pid'): time.sleep(0.01)
print('started', flush=True)
time.sleep(60)
]] } }
    local secs = core.now() - t0
    local pid = read(ex.work_dir .. "/gc.pid")
    assert.truthy(pid, r.output)
    local live = alive(pid)
    if live then os.execute("kill -9 " .. pid) end
    assert.equal(124, r.exit_code, r.output)
    assert.matches("started", r.output, 1, true)
    assert.is_false(live, "the grandchild outlived the block")
    assert.truthy(secs < 2 + 0.5 + core.deadline_margin, secs)
  end)

  it("a block that kills the template: its tree dies, the output says so, the next block works", function()
    local ex = new{ preload = { "decimal" } }
    local r = ex:execute{ { lang = "python", code = [[
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open('hb.pid', 'w') as f: f.write(str(os.getpid()))
        while True: time.sleep(0.05)
    os._exit(0)
while not os.path.exists('hb.pid'): time.sleep(0.01)
# the parent chain up to the process that imported decimal before this block
pid = os.getpid()
for _ in range(4):
    stat = open('/proc/%d/stat' % pid).read()
    pid = int(stat.rsplit(')', 1)[1].split()[1])
    cmd = open('/proc/%d/cmdline' % pid, 'rb').read()
    if b' serve' in cmd.replace(b'\0', b' '):
        print('killing the template', flush=True)
        os.kill(pid, signal.SIGKILL)
        break
time.sleep(5)
print('survived')
]] } }
    local pid = read(ex.work_dir .. "/hb.pid")
    assert.truthy(pid, r.output)
    task.sleep(0.3)
    local live = alive(pid)
    if live then os.execute("kill -9 " .. pid) end
    assert.matches("killing the template", r.output, 1, true)
    assert.not_matches("survived", r.output, 1, true)
    assert.not_equal(0, r.exit_code)
    assert.matches("the preloaded Python template", r.output, 1, true)
    assert.is_false(live, "the block's grandchild outlived the template")
    local r2 = ex:execute{ { lang = "python", code = "import sys\nprint('fine', 'decimal' in sys.modules)" } }
    assert.equal(0, r2.exit_code, r2.output)
    assert.equal("fine True\n", r2.output)
  end)

  it("a block that kills its own parent leaves nothing running", function()
    local ex = new{ preload = { "decimal" } }
    local r = ex:execute{ { lang = "python", code = [[
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open('hb2.pid', 'w') as f: f.write(str(os.getpid()))
        while True: time.sleep(0.05)
    os._exit(0)
while not os.path.exists('hb2.pid'): time.sleep(0.01)
os.kill(os.getppid(), signal.SIGKILL)
time.sleep(3)
]] } }
    local pid = read(ex.work_dir .. "/hb2.pid")
    assert.truthy(pid, r.output)
    task.sleep(0.3)
    local live = alive(pid)
    if live then os.execute("kill -9 " .. pid) end
    assert.is_false(live, "the grandchild outlived its block")
    local r2 = ex:execute{ { lang = "python", code = "print('fine')" } }
    assert.equal("fine\n", r2.output)
  end)

  it("a block that kills its client (the supervised process) leaves nothing running", function()
    local ex = new{ preload = { "decimal" } }
    local r = ex:execute{ { lang = "python", code = [[
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open('hb3.pid', 'w') as f: f.write(str(os.getpid()))
        while True: time.sleep(0.05)
    os._exit(0)
while not os.path.exists('hb3.pid'): time.sleep(0.01)
for d in os.listdir('/proc'):
    if d.isdigit():
        try: cmd = open('/proc/%s/cmdline' % d, 'rb').read().split(b'\0')
        except OSError: continue
        if __file__.encode() in cmd and any(c.endswith(b'agentbox_client.py') for c in cmd):
            print('killing the client', flush=True)
            os.kill(int(d), signal.SIGKILL)
time.sleep(3)
print('survived')
]] } }
    local pid = read(ex.work_dir .. "/hb3.pid")
    assert.truthy(pid, r.output)
    task.sleep(0.3)
    local live = alive(pid)
    if live then os.execute("kill -9 " .. pid) end
    assert.not_matches("survived", r.output, 1, true)
    assert.equal(137, r.exit_code, r.output)
    assert.is_false(live, "the grandchild outlived its client")
    local r2 = ex:execute{ { lang = "python", code = "print('fine')" } }
    assert.equal("fine\n", r2.output)
  end)

  it("a block that stops the template: the next block gets a new one", function()
    local ex = new{ preload = { "decimal" } }
    local code = [[
import os, signal
stat = open('/proc/%d/stat' % os.getppid()).read()
tpl = int(stat.rsplit(')', 1)[1].split()[1])
print('stopping', open('/proc/%d/cmdline' % tpl, 'rb').read().split(b'\0')[2].decode(), flush=True)
os.kill(tpl, signal.SIGSTOP)
]]
    local r = ex:execute{ { lang = "python", code = code } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("stopping serve\n", r.output)
    for _ = 1, 2 do
      local t0 = core.now()
      local r2 = ex:execute{ { lang = "python", code = "import sys\nprint('fine', 'decimal' in sys.modules)" } }
      assert.equal("fine True\n", r2.output)
      assert.truthy(core.now() - t0 < 8, core.now() - t0)
    end
  end)

  it("several tasks at once share one template, each block its own process", function()
    local ex = new{ preload = { "decimal" } }
    local ts = {}
    for i = 1, 4 do
      ts[i] = task.spawn(function()
        return ex:execute{ { lang = "python", code = "import os, time\ntime.sleep(0.3)\nprint(os.getpid())" } }
      end)
    end
    task.run(function()
      for _, t in ipairs(ts) do if not t:done() then return false end end
      return true
    end)
    local pids = {}
    for i = 1, 4 do
      local r = assert(ts[i]:result())
      assert.equal(0, r.exit_code, r.output)
      pids[r.output] = true
    end
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.equal(4, n)
  end)

  it("shell blocks are not affected; close ends the template", function()
    local ex = new{ preload = { "decimal" } }
    local r = ex:execute{ { lang = "sh", code = "echo hi" }, { lang = "python", code = "import os\nprint(os.getppid())" } }
    assert.equal(0, r.exit_code, r.output)
    assert.matches("^hi\n%d+\n$", r.output)
    ex:close()
    local ppid = r.output:match("hi\n(%d+)")
    task.sleep(0.2)
    assert.is_false(alive(ppid))
  end)
end)
