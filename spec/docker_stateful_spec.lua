-- DockerExecutor{ stateful = true } (executor/docker_session.lua): python
-- blocks share one interpreter, the session's keeper a resident of the warm
-- block server (src/spawnsrv.c). What every executor does is the contract
-- (spec/executor_contract_spec.lua's "docker-stateful" row); this is what
-- only the session in a container adds: the state outlives the block
-- server's per-block sweep, a timeout or a dead session costs the state
-- and says so, nothing the code starts outlives its block, the keeper's
-- memory is out of the code's reach, and its supervisors out of its
-- signals. Tagged #docker.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local IMAGE = C.IMAGE
local client = docker.client()

local dit = C.docker_it(client)

local function py(code) return { { lang = "python", code = code } } end

local LOST = "the variables and imports of earlier blocks are lost"

-- Python: the live processes of the container but pid 1, the block
-- server and this block's interpreter, its keeper and their supervisors:
-- what a block left running
local LEFT = [==[
import os
def cmd(p):
    try:
        return open('/proc/%s/cmdline' % p, 'rb').read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return ''
def stat(p):
    try:
        return open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()
    except OSError:
        return None
me, keeper = os.getpid(), os.getppid()
mine = {me, keeper, int(stat(keeper)[1]), 1}
left = []
for p in os.listdir('/proc'):
    if not p.isdigit() or int(p) in mine:
        continue
    st, c = stat(p), cmd(p)
    if st and st[0] != 'Z' and c and '--listen' not in c and '--preload-client' not in c \
       and not c.startswith('/opt/agentbox/sup -u') and 'docker-init' not in c:
        left.append(c)
print('left', sorted(left))
]==]

describe("DockerExecutor stateful #docker", function()
  local base
  setup(function() base = H.tmpdir("dstateful") end)
  teardown(function() H.rm_rf(base) end)
  local n = 0
  local function new(opts)
    n = n + 1
    opts = opts or {}
    opts.image, opts.work_dir = IMAGE, base .. "/w" .. n
    if opts.stateful == nil then opts.stateful = true end
    if opts.timeout == nil then opts.timeout = 10 end
    return agentbox.DockerExecutor(opts)
  end

  it("checks the option: a boolean; it turns warm on, warm = false or grace = 0 is refused", function()
    local ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, stateful = "yes" })
    assert.is_false(ok)
    assert.matches("stateful must be a boolean", err)
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, stateful = true, warm = false })
    assert.is_false(ok)
    assert.matches("stateful runs in the warm block server: remove warm = false", err)
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, stateful = true, grace = 0 })
    assert.is_false(ok)
    assert.matches("stateful needs a grace > 0", err)
    -- a remote daemon has no warm server: refused, never downgraded
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, stateful = true, docker_host = "tcp://127.0.0.1:1" })
    assert.is_false(ok)
    assert.matches("stateful needs a local daemon and transfer = \"bind\" for now", err)
    -- nor over the attach stream (transfer = "archive")
    for _, extra in ipairs({ { transfer = "archive" } }) do
      local o = { image = IMAGE, stateful = true }
      for k, v in pairs(extra) do o[k] = v end
      ok, err = pcall(agentbox.DockerExecutor, o)
      assert.is_false(ok)
      assert.matches("stateful needs a local daemon and transfer = \"bind\" for now", err)
    end
    -- a state no call outlives: fresh and stateful contradict each other
    ok, err = pcall(agentbox.DockerExecutor, { image = IMAGE, stateful = true, fresh = true })
    assert.is_false(ok)
    assert.matches("stateful = true and fresh = true contradict each other", err)
    local ex <close> = agentbox.DockerExecutor{ image = IMAGE, stateful = true, work_dir = base .. "/opt" }
    assert.is_true(ex.warm)
    assert.is_true(ex.stateful)
  end)

  dit("keeps variables and imports between blocks and execute calls, past the per-block sweep", function()
    local ex <close> = new()
    local r = ex:execute{ { lang = "python", code = "import json\nx = 41\nprint('one')" },
                         { lang = "sh", code = "echo sh" },
                         { lang = "python", code = "x += 1\nprint(json.dumps(x))" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("one\nsh\n42\n", r.output)
    r = ex:execute(py("print(x, 'json' in globals(), __name__)"))
    assert.equal("42 True __main__\n", r.output)
    -- the code runs as the sandbox user (its saved uid is the resident's,
    -- which the interpreter takes back between blocks), and so does what it starts
    r = ex:execute(py("import os, subprocess\nprint(os.getresuid()[:2], os.getegid(), os.getcwd())\n"
                      .. "subprocess.run(['sh', '-c', 'id -u; echo w > by_sh; cat by_sh'])"))
    assert.equal("(1000, 1000) 1000 /workspace\n1000\nw\n", r.output)
  end)

  dit("an exception is reported with its traceback and exit 1, and the state is kept", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("kept = 'yes'")).exit_code)
    local r = ex:execute(py("print('before')\nraise ValueError('boom')"))
    assert.equal(1, r.exit_code)
    assert.matches("before\nTraceback", r.output)
    assert.matches("ValueError: boom", r.output, 1, true)
    assert.not_matches(LOST, r.output, 1, true)
    r = ex:execute(py("import sys\nprint(kept)\nsys.exit(3)"))
    assert.equal(3, r.exit_code)
    assert.equal("yes\n", r.output)
    assert.equal("yes\n", ex:execute(py("print(kept)")).output)
  end)

  dit("a timeout kills the block's tree, restarts the interpreter and says so; the next block runs", function()
    local ex <close> = new{ timeout = 2 }
    assert.equal(0, ex:execute(py("x = 1")).exit_code)
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
    assert.is_true(core.now() - t0 < 8, "the block outlived its deadline")
    assert.equal(124, r.exit_code, r.output)
    assert.matches("started", r.output)
    assert.matches(LOST, r.output, 1, true)
    r = ex:execute(py("print('x' in globals())\n" .. LEFT))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("False\nleft []\n", r.output)
  end)

  dit("kills what a block leaves running (setsid, double fork) and keeps the interpreter", function()
    local ex <close> = new()
    local r = ex:execute(py([[
import os, subprocess, time
me = os.getpid()
subprocess.Popen(['setsid', 'sh', '-c', 'sleep 100'])
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        time.sleep(100)
    os._exit(0)
time.sleep(0.2)
print('started')
]]))
    assert.equal(0, r.exit_code, r.output)
    r = ex:execute(py("import os\nprint(os.getpid() == me)\n" .. LEFT))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("True\nleft []\n", r.output)
    -- a shell's look (the image has no ps) agrees
    r = ex:execute{ { lang = "sh", code = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done 2>/dev/null "
                                          .. "| grep -c '^sleep 100'" } }
    assert.equal("0\n", r.output)
  end)

  dit("a fork that takes the resident's uid (out of the server's sweep) is killed by the keeper after the block", function()
    local ex <close> = new()
    -- the interpreter's saved uid is the resident's: a fork of it may take
    -- that uid for all three, which the sweep (the sandbox user's) misses
    local r = ex:execute(py([[
import os, time
if os.fork() == 0:
    os.setsid()
    r = os.getresuid()[2]
    os.setresuid(r, r, r)
    while True:
        open('/tmp/beat', 'a').write('b')
        time.sleep(0.05)
while not os.path.exists('/tmp/beat'):
    time.sleep(0.01)
print('beating')
]]))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("beating\n", r.output)
    -- looked at from outside (root, between blocks): the resident's uid
    -- has the keeper and the interpreter alone alive (the fork, killed, is
    -- the interpreter's zombie until the code waits for it)
    local look = assert(client:exec_run(ex.container_id, { "sh", "-c",
      "grep -l '^Uid:.2147483646' /proc/[0-9]*/status | xargs grep -L '^State:.Z' | wc -l" }))
    assert.equal("2\n", look.stdout)
    r = ex:execute(py("import os, time\na = os.path.getsize('/tmp/beat')\ntime.sleep(0.3)\n"
                      .. "print('grew', os.path.getsize('/tmp/beat') - a)"))
    assert.equal("grew 0\n", r.output)
  end)

  dit("the code cannot ptrace the keeper, read its memory, or kill the server or its supervisors", function()
    local ex <close> = new()
    local r = ex:execute(py([==[
import os, signal, ctypes
keeper = os.getppid()
print('keeper', open('/proc/%d/cmdline' % keeper, 'rb').read().split(b'\0')[2:3])
print('keeper uid', open('/proc/%d/status' % keeper).read().split('Uid:')[1].split()[:3])
def tried(what, f):
    try:
        f()
        print(what, 'ALLOWED')
    except OSError as e:
        print(what, 'refused', e.errno)
tried('mem', lambda: open('/proc/%d/mem' % keeper, 'rb').read(1))
tried('environ', lambda: open('/proc/%d/environ' % keeper, 'rb').read())
libc = ctypes.CDLL(None, use_errno=True)
def attach():
    if libc.ptrace(16, keeper, 0, 0) != 0:   # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), 'ptrace')
tried('ptrace', attach)
def vm_read():
    buf = ctypes.create_string_buffer(8)
    class iov(ctypes.Structure):
        _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
    local, remote = iov(ctypes.addressof(buf), 8), iov(0x400000, 8)
    if libc.process_vm_readv(keeper, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
        raise OSError(ctypes.get_errno(), 'process_vm_readv')
tried('vm_read', vm_read)
# the code may take the resident's uid (its saved one) as its real one
# and file system uid: no better
os.setresuid(os.getresuid()[2], -1, -1)
libc.setfsuid(os.getuid())
tried('mem as the resident', lambda: open('/proc/%d/mem' % keeper, 'rb').read(1))
tried('ptrace as the resident', attach)
pid = int(open('/proc/%d/stat' % keeper).read().rsplit(')', 1)[1].split()[1])
while pid > 0:
    tried('kill parent %d' % pid, lambda: os.kill(pid, signal.SIGKILL))
    pid = int(open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[1])
tried('write helper', lambda: open('/opt/agentbox/session.py', 'a'))
x = 'alive'
]==]))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("keeper [b'serve']", r.output, 1, true)
    assert.matches("keeper uid ['2147483646', '1000', '2147483646']", r.output, 1, true)
    assert.not_matches("ALLOWED", r.output)
    for _, what in ipairs{ "mem", "environ", "ptrace", "vm_read", "mem as the resident", "ptrace as the resident",
                           "write helper" } do
      assert.matches(what .. " refused", r.output, 1, true)
    end
    -- the resident's supervisor, the block server, tini: three parents
    local _, parents = r.output:gsub("kill parent %d+ refused 1\n", "")
    assert.equal(3, parents, r.output)
    assert.equal("alive\n", ex:execute(py("print(x)")).output)
  end)

  dit("a block that kills its keeper (os.kill, as the resident's uid): reported, the next runs in a new session", function()
    local ex <close> = new()
    local id
    assert.equal(0, ex:execute(py("import os\nx = 1\nprint('go', flush=True)")).exit_code)
    id = ex.container_id
    local t0 = core.now()
    -- as the sandbox user alone the keeper is out of reach; with the
    -- resident's uid (the saved one) taken back, the code can end its session
    local r = ex:execute(py([[
import os, signal, time
try:
    os.kill(os.getppid(), signal.SIGKILL)
    print('ALLOWED')
except OSError as e:
    print('refused', e.errno)
os.setresuid(os.getresuid()[2], -1, -1)
print('killing', flush=True)
os.kill(os.getppid(), signal.SIGKILL)
time.sleep(30)
]]))
    assert.is_true(core.now() - t0 < 8, "the block waited for its deadline")
    assert.equal(1, r.exit_code, r.output)
    assert.matches("refused 1\nkilling\n", r.output, 1, true)
    assert.matches("the Python session died during this block", r.output, 1, true)
    assert.equal(id, ex.container_id)
    r = ex:execute(py("print('x' in globals())\n" .. LEFT))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("False\nleft []\n", r.output)
  end)

  dit("a block that kills its own user's processes (pkill -u): reported, the next block runs in a new session", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("x = 1")).exit_code)
    -- pkill -KILL -u 1000 (the image has no procps): every process whose
    -- effective uid is the sandbox user's, in pid order, then itself
    local r = ex:execute(py([==[
import os, signal
print('pkill', flush=True)
for p in sorted(int(d) for d in os.listdir('/proc') if d.isdigit()):
    try:
        euid = open('/proc/%d/status' % p).read().split('Uid:')[1].split()[1]
    except (OSError, IndexError):
        continue
    if euid == '1000' and p != os.getpid():
        try:
            os.kill(p, signal.SIGKILL)
        except OSError as e:
            print('refused', p, e.errno)
os.kill(os.getpid(), signal.SIGKILL)
]==]))
    assert.are_not.equal(0, r.exit_code, r.output)
    assert.matches("pkill\n", r.output, 1, true)
    local said = r.output:find(LOST, 1, true)
    r = ex:execute(py("print('x' in globals())\n" .. LEFT))
    assert.equal(0, r.exit_code, r.output)
    -- said in the block, or (when the client was killed before it saw its
    -- keeper go) in the next
    assert.is_truthy(said or r.output:find(LOST, 1, true), r.output)
    assert.matches("False\nleft %[%]\n$", r.output)
  end)

  dit("a session killed between blocks (from outside): the next block says so and runs", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("x = 1")).exit_code)
    -- root in the container kills the keeper
    assert(client:exec_run(ex.container_id, { "sh", "-c", "for p in /proc/[0-9]*; do "
      .. "tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'session[.]py serve' && kill -9 ${p#/proc/}; done; true" }))
    local r = ex:execute(py("print('x' in globals())"))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("^False\n", r.output)
    assert.matches(LOST, r.output, 1, true)
    assert.equal("True\n", ex:execute(py("x = 2\nprint('x' in globals())")).output)
  end)

  dit("restart() clears the state and keeps the container", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("x = 1\nopen('f', 'w').write('file')")).exit_code)
    local id = ex.container_id
    assert.is_true(ex:restart())
    assert.equal(id, ex.container_id)
    local r = ex:execute(py("print('x' in globals(), open('f').read())"))
    assert.equal("False file\n", r.output)
    assert.not_matches(LOST, r.output, 1, true)
  end)

  dit("streams output to on_output before the block ends", function()
    local ex <close> = new()
    local seen = {}
    local t0 = core.now()
    ex.on_output = function(chunk) seen[#seen + 1] = { chunk, core.now() - t0 } end
    local r = ex:execute(py("import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')"))
    local done = core.now() - t0
    assert.equal(0, r.exit_code, r.output)
    assert.is_truthy(seen[1], "no chunk")
    assert.matches("first", seen[1][1])
    assert.is_true(done - seen[1][2] > 1, ("first chunk at %.2f s, end at %.2f s"):format(seen[1][2], done))
  end)

  dit("with preload, the session starts with the modules imported, after a restart too", function()
    local ex <close> = new{ preload = { "decimal" } }
    local r = ex:execute(py("import sys\nprint('decimal' in sys.modules)"))
    assert.equal("True\n", r.output)
    ex:restart()
    r = ex:execute(py("import sys\nprint('decimal' in sys.modules)"))
    assert.equal("True\n", r.output)
  end)

  dit("a pool's container comes with its session started; the state lives as long as the claim", function()
    local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE, stateful = true }
    local ex <close> = agentbox.DockerExecutor{ pool = pool, timeout = 20 }
    assert.equal(0, ex:execute(py("x = 41")).exit_code)
    assert.equal("42\n", ex:execute(py("print(x + 1)")).output)
    local other <close> = agentbox.DockerExecutor{ pool = pool, timeout = 20 }
    local r = other:execute(py("print('x' in globals())"))
    assert.equal("False\n", r.output)
  end)
end)
