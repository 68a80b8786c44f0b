-- DockerExecutor{ preload = {...} } (executor/docker_preload.lua): python
-- blocks are forks of a template that imported pandas and numpy once, a
-- resident of the warm block server (src/spawnsrv.c). What every executor
-- does is the contract (spec/executor_contract_spec.lua's "docker-preload"
-- row); this attacks what only preload adds: nothing of a block reaches the
-- next, the template is out of the code's reach and outside its sweep,
-- nothing the code starts outlives its block (through the template's
-- socket either), and a dead template costs one cold start, said in the
-- output. Tagged #docker.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local IMAGE = C.IMAGE
local client = docker.client()

local dit = C.docker_it(client)

local function py(code) return { { lang = "python", code = code } } end

-- Python: the live processes whose real or saved uid is the sandbox
-- user's (what its sweep kills), but this block and its own client
local LEFT = [==[
import os, sys
def cmd(p):
    try:
        return open('/proc/%s/cmdline' % p, 'rb').read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''
def ids(p):
    st, u = '', None
    try:
        for l in open('/proc/%s/status' % p):
            if l.startswith('State:'): st = l.split()[1]
            if l.startswith('Uid:'): u = l.split()[1:4]
    except OSError:
        pass
    return st, u
left = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != os.getpid():
        st, u = ids(p)
        c = cmd(p)
        if u and st != 'Z' and '1000' in (u[0], u[2]) and not c.endswith(sys.argv[0] + ' '):
            left.append(c)
print('left', left)
]==]

-- Python: the template's pid (the "serve" process whose parent is not one)
local FIND_TEMPLATE = [==[
import os
def cmd(p):
    try:
        return open('/proc/%s/cmdline' % p, 'rb').read().split(b'\0')
    except OSError:
        return []
def ppid(p):
    return int(open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()[1])
serve = [int(p) for p in os.listdir('/proc') if p.isdigit() and b'serve' in cmd(p)[2:3]]
tpl = [p for p in serve if ppid(p) not in serve][0]
]==]

describe("DockerExecutor preload #docker", function()
  local base
  setup(function() base = H.tmpdir("dpreload") end)
  teardown(function() H.rm_rf(base) end)
  local n = 0
  local function new(opts)
    n = n + 1
    opts = opts or {}
    opts.image, opts.work_dir = IMAGE, base .. "/w" .. n
    if opts.preload == nil then opts.preload = { "pandas", "numpy" } end
    if opts.timeout == nil then opts.timeout = 10 end
    return agentbox.DockerExecutor(opts)
  end

  it("checks the option: a list of modules; it turns warm on, warm = false or grace = 0 is refused", function()
    local ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, preload = "pandas" })
    assert.is_false(ok)
    assert.matches("preload must be a list of module names", err)
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, preload = { "pandas" }, warm = false })
    assert.is_false(ok)
    assert.matches("preload runs in the warm block server: remove warm = false", err)
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, preload = { "pandas" }, grace = 0 })
    assert.is_false(ok)
    assert.matches("preload needs a grace > 0", err)
    -- a remote daemon has no warm server: refused, never downgraded
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, preload = { "pandas" }, docker_host = "tcp://127.0.0.1:1" })
    assert.is_false(ok)
    assert.matches("preload needs a local daemon and transfer = \"bind\" for now", err)
    -- nor over the attach stream (transfer = "archive")
    for _, extra in ipairs({ { transfer = "archive" } }) do
      local o = { image = IMAGE, preload = { "pandas" } }
      for k, v in pairs(extra) do o[k] = v end
      ok, err = pcall(agentbox.DockerExecutor, o)
      assert.is_false(ok)
      assert.matches("preload needs a local daemon and transfer = \"bind\" for now", err)
    end
    local ex <close> = agentbox.DockerExecutor{ image = IMAGE, preload = { "pandas" }, work_dir = base .. "/opt" }
    assert.is_true(ex.warm)
    -- a resident is a block server's alone: never a host process
    ok, err = pcall(core.spawn, { argv = { "true" }, resident = true })
    assert.is_false(ok)
    assert.matches("'resident' needs 'server'", err)
    local none <close> = agentbox.DockerExecutor{ image = IMAGE, preload = {}, work_dir = base .. "/opt2" }
    assert.is_nil(none.preload)
    assert.is_false(none.warm)
  end)

  dit("a block sees what python3 file.py sees, with pandas already imported", function()
    local ex <close> = new{ env = { AB_MARK = "m1" } }
    local r = ex:execute(py([[
import sys, os
print('preloaded', 'pandas' in sys.modules, 'numpy' in sys.modules)
print('name', __name__)
print('argv', sys.argv == [__file__], sys.argv[0].startswith('/workspace/'), sys.argv[0].endswith('.py'))
print('cwd', os.getcwd())
print('env', os.environ.get('AB_MARK'), os.environ.get('PYTHONUNBUFFERED'), os.environ.get('HOME'))
print('ids', os.getresuid(), os.getresgid())
print('globals', sorted(k for k in globals() if k not in ('sys', 'os')))
]]))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("preloaded True True\n", r.output, 1, true)
    assert.matches("name __main__\n", r.output, 1, true)
    assert.matches("argv True True True\n", r.output, 1, true)
    assert.matches("cwd /workspace\n", r.output, 1, true)
    assert.matches("env m1 1 /workspace\n", r.output, 1, true)
    -- the block is the sandbox user alone: nothing of the template's own uid
    assert.matches("ids (1000, 1000, 1000) (1000, 1000, 1000)\n", r.output, 1, true)
    assert.matches("globals ['__annotations__', '__builtins__', '__cached__', '__doc__', '__file__', " ..
                   "'__loader__', '__name__', '__package__', '__spec__']\n", r.output, 1, true)
    -- and the exit code, traceback and shell blocks as without preload
    r = ex:execute(py("import sys\nprint('out')\nsys.exit(3)"))
    assert.equal(3, r.exit_code)
    r = ex:execute{ { lang = "sh", code = "id -u; echo sh" } }
    assert.equal("1000\nsh\n", r.output)
  end)

  dit("nothing a block patches or defines reaches the next block (pandas, builtins, globals)", function()
    local ex <close> = new()
    local r = ex:execute(py([[
import pandas, numpy, builtins, os, sys
pandas.read_csv = None
numpy.mean = None
builtins.len = lambda x: 42
LEFT_BEHIND = 1
os.environ['AB_LEFT'] = '1'
sys.path.insert(0, '/tmp/evil')
sys.stdout.write('patched\n')]]))
    assert.equal(0, r.exit_code, r.output)
    r = ex:execute(py([[
import pandas, numpy, os, sys
print(pandas.read_csv is None, numpy.mean is None, len([1, 2]), 'LEFT_BEHIND' in globals(),
      os.environ.get('AB_LEFT'), '/tmp/evil' in sys.path)]]))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("False False 2 False None False\n", r.output)
  end)

  dit("random and numpy's generator are reseeded per block", function()
    local ex <close> = new()
    local code = "import random, numpy\nprint(random.random(), numpy.random.rand())"
    local a = ex:execute(py(code))
    local b = ex:execute(py(code))
    assert.equal(0, a.exit_code, a.output)
    assert.equal(0, b.exit_code, b.output)
    local a1, a2 = a.output:match("^(%S+) (%S+)\n$")
    local b1, b2 = b.output:match("^(%S+) (%S+)\n$")
    assert.is_truthy(a1 and b1, a.output .. b.output)
    assert.are_not.equal(a1, b1)
    assert.are_not.equal(a2, b2)
  end)

  dit("the code cannot kill, stop, ptrace or read the template; pkill -u spares it; the next block works", function()
    local ex <close> = new()
    local r = ex:execute(py(FIND_TEMPLATE .. [==[
import signal, ctypes
print('template uid', open('/proc/%d/status' % tpl).read().split('Uid:')[1].split()[:3])
def tried(what, f):
    try:
        f()
        print(what, 'ALLOWED')
    except OSError as e:
        print(what, 'refused', e.errno)
tried('mem', lambda: open('/proc/%d/mem' % tpl, 'rb').read(1))
tried('environ', lambda: open('/proc/%d/environ' % tpl, 'rb').read())
tried('stop', lambda: os.kill(tpl, signal.SIGSTOP))
libc = ctypes.CDLL(None, use_errno=True)
def attach():
    if libc.ptrace(16, tpl, 0, 0) != 0:   # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), 'ptrace')
tried('ptrace', attach)
pid = os.getpid()
while pid > 1:
    pid = int(open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[1])
    tried('kill parent %d' % pid, lambda: os.kill(pid, signal.SIGKILL))
tried('kill', lambda: os.kill(tpl, signal.SIGKILL))
tried('write helper', lambda: open('/opt/agentbox/preload.py', 'a'))
print('still', tpl)
]==]))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("template uid %['2147483646', '1000', '2147483646'%]", r.output)
    assert.not_matches("ALLOWED", r.output)
    for _, what in ipairs{ "mem", "environ", "stop", "ptrace", "kill", "write helper" } do
      assert.matches(what .. " refused", r.output)
    end
    local tpl = r.output:match("still (%d+)")
    assert.is_truthy(tpl, r.output)
    -- every process it may signal, as pkill -u 1000 does: its own client too
    r = ex:execute(py("import os, signal\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
                      .. "        try: os.kill(int(p), signal.SIGKILL)\n        except OSError: pass\n"
                      .. "os.kill(os.getpid(), signal.SIGKILL)"))
    assert.equal(137, r.exit_code, r.output)
    -- the same template serves the next block, unannounced
    r = ex:execute(py(FIND_TEMPLATE .. "import sys\nprint('pandas' in sys.modules, tpl)"))
    assert.equal("True " .. tpl .. "\n", r.output)
  end)

  dit("a template killed between blocks (as the OOM killer would): the next block says so and works", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("print(1)")).exit_code)
    -- root in the container kills every process of the template
    assert(client:exec_run(ex.container_id, { "sh", "-c", "for p in /proc/[0-9]*; do "
      .. "tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'preload[.]py serve' && kill -9 ${p#/proc/}; done; true" }))
    -- between blocks: the reactor runs a while (the template's supervisor
    -- reports its death), as it would while the host waits for its model
    H.run({ "sleep", "1" })
    local r = ex:execute(py("import sys\nprint('pandas' in sys.modules)"))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("template had died since the last block", r.output, 1, true)
    assert.matches("True\n$", r.output)
    r = ex:execute(py("print(2)"))
    assert.equal("2\n", r.output)
  end)

  dit("a template killed during a block: that block is reported lost, the next one works", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("print(1)")).exit_code)
    local id = ex.container_id
    local killed = false
    ex.on_output = function()
      if not killed then
        killed = true
        client:exec_run(id, { "sh", "-c", "for p in /proc/[0-9]*; do "
          .. "tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'preload[.]py serve' && kill -9 ${p#/proc/}; done; true" })
      end
    end
    local t0 = core.now()
    local r = ex:execute(py("import time\nprint('x', flush=True)\ntime.sleep(30)"))
    ex.on_output = nil
    assert.is_true(core.now() - t0 < 8, "the block waited for its deadline")
    assert.equal(1, r.exit_code, r.output)
    assert.matches("template died during this block", r.output, 1, true)
    assert.equal(id, ex.container_id)
    r = ex:execute(py("import sys\nprint('pandas' in sys.modules)"))
    assert.equal("True\n", r.output)
  end)

  dit("a block that starts its own block through the template's socket: swept at its end", function()
    local ex <close> = new()
    local r = ex:execute(py([[
import os, subprocess, sys
name = None
for p in os.listdir('/proc'):
    try:
        c = open('/proc/%s/cmdline' % p, 'rb').read().split(b'\0')
    except OSError:
        continue
    if b'--preload-client' in c:
        name = c[c.index(b'--preload-client') + 1].decode()
print('name', name is not None)
open('/tmp/beat.py', 'w').write(
    "import time, os\nwhile True:\n    open('/workspace/beat', 'a').write('b')\n    time.sleep(0.05)\n")
subprocess.Popen(['setsid', '/opt/agentbox/sup', '--preload-client', name, '500', '/tmp/beat.py'],
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
import time
for _ in range(100):
    if os.path.exists('/workspace/beat'): break
    time.sleep(0.02)
print('beating', os.path.exists('/workspace/beat'))
]]))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("name True\nbeating True\n", r.output, 1, true)
    r = ex:execute(py("import os, time\na = os.path.getsize('/workspace/beat')\ntime.sleep(0.5)\n"
                      .. "print('grew', os.path.getsize('/workspace/beat') - a)\n" .. LEFT))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("grew 0\nleft []\n", r.output, 1, true)
  end)

  dit("a timeout with setsid and a double fork while preloaded: nothing is left for the next block", function()
    local ex <close> = new{ timeout = 2 }
    local t0 = core.now()
    local r = ex:execute(py([[
import os, signal, subprocess, time
subprocess.Popen(['setsid', 'sh', '-c', 'trap "" TERM; sleep 100'])
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(100)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('started', flush=True)
time.sleep(100)
]]))
    assert.equal(124, r.exit_code, r.output)
    assert.matches("started", r.output)
    assert.is_true(core.now() - t0 < 8)
    r = ex:execute(py(LEFT))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("left []\n", r.output)
  end)

  dit("a block killed by a signal is reported as such, the template stays", function()
    local ex <close> = new()
    local r = ex:execute(py("import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)"))
    assert.equal(137, r.exit_code, r.output)
    assert.not_matches("replaced", r.output)
    r = ex:execute(py("print('after')"))
    assert.equal("after\n", r.output)
  end)

  dit("a pool's containers come with the template ready; fresh containers too, and nothing crosses between them", function()
    local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE, preload = { "pandas", "numpy" } }
    pool:fill()
    local ex <close> = agentbox.DockerExecutor{ pool = pool, timeout = 20 }
    local r = ex:execute(py("import sys\nprint('pandas' in sys.modules, __name__)\nimport pandas\npandas.read_csv = None"))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("True __main__\n", r.output)
    r = ex:execute(py("import pandas\nprint(pandas.read_csv is None)"))
    assert.equal("False\n", r.output)
    local fx <close> = agentbox.DockerExecutor{ pool = pool, fresh = true, timeout = 20 }
    local seen = {}
    for _ = 1, 2 do
      r = fx:execute(py("import sys, socket\nprint('pandas' in sys.modules, socket.gethostname())"))
      assert.equal(0, r.exit_code, r.output)
      local pre, host = r.output:match("^(%a+) (%S+)\n$")
      assert.equal("True", pre, r.output)
      assert.is_nil(seen[host], "a fresh call reused a container")
      seen[host] = true
    end
  end)
end)
