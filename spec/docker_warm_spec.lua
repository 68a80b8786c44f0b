-- DockerExecutor{ warm = true } (executor/docker_warm.lua, src/blocksrv.c):
-- blocks go to the in-container block server over its unix socket instead
-- of a docker exec. What every executor does is the contract
-- (spec/executor_contract_spec.lua runs it for the "docker-warm" row too);
-- this is what only warm mode does: the server is out of the code's reach,
-- and a dead server means a replaced container and a working next block.
-- Tagged #docker.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local IMAGE = C.IMAGE
local client = docker.client()

local dit = C.docker_it(client)

local function py(code) return { { lang = "python", code = code } } end

describe("DockerExecutor warm = true #docker", function()
  local base
  setup(function() base = H.tmpdir("warm") end)
  teardown(function() H.rm_rf(base) end)
  local n = 0
  local function new(opts)
    n = n + 1
    opts = opts or {}
    opts.image, opts.warm, opts.work_dir = IMAGE, true, base .. "/w" .. n
    if opts.timeout == nil then opts.timeout = 10 end
    return agentbox.DockerExecutor(opts)
  end

  dit("runs a block as the sandbox user through the block server, not docker exec", function()
    local ex <close> = new()
    local r = ex:execute{ { lang = "sh", code = "id -u; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                           .. "cat /proc/$PPID/cmdline | tr '\\0' ' '" } }
    assert.equal(0, r.exit_code, r.output)
    local uid, init = r.output:match("^(%d+)\n([^\n]*)\n")
    assert.equal("1000", uid, r.output)
    assert.matches("docker%-init", init)
    -- the block's parent is a supervisor forked by the server, not an exec
    -- of it: the exec path's command line has -u and --
    assert.matches("/opt/agentbox/sup %-%-listen /run/agentbox/sock %-u 1000:1000", r.output)
    assert.equal(0, ex:execute(py("print(1)")).exit_code)
    assert.equal("1\n", ex:execute(py("print(1)")).output)
  end)

  dit("a timeout kills the whole tree (setsid, TERM ignored); nothing is left for the next block", function()
    local ex <close> = new{ timeout = 1 }
    local t0 = core.now()
    local r = ex:execute{ { lang = "sh", code = "setsid sh -c 'trap \"\" TERM; sleep 100' & trap '' TERM; "
                           .. "echo started; sleep 100" } }
    assert.equal(124, r.exit_code, r.output)
    assert.matches("started", r.output)
    assert.is_true(core.now() - t0 < 5)
    -- every process of uid 1000 but this block's own is gone
    r = ex:execute(py([[
import os
me = os.getpid()
left = []
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != me:
        try:
            if os.stat("/proc/" + p).st_uid == 1000: left.append(p)
        except FileNotFoundError:
            pass
print("left", left)]]))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("left []\n", r.output)
  end)

  dit("on_output gets chunks while the block runs", function()
    local seen = {}
    local ex <close> = new{ on_output = function(data, stream) seen[#seen + 1] = { core.now(), data, stream } end }
    local t0 = core.now()
    local r = ex:execute(py("import time, sys\nprint('a', flush=True)\ntime.sleep(1)\nprint('b', file=sys.stderr)"))
    local t1 = core.now()
    assert.equal(0, r.exit_code, r.output)
    assert.equal("a", seen[1][2]:match("^a"))
    assert.equal("stdout", seen[1][3])
    assert.is_true(seen[1][1] - t0 < t1 - t0 - 0.5, "the first chunk came at the end")
    assert.equal("stderr", seen[#seen][3])
  end)

  dit("the code cannot connect to the server, kill it, stop it or read its /proc", function()
    local ex <close> = new()
    local r = ex:execute(py([[
import os, socket, signal
srv = None
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if b"--listen" in open("/proc/%s/cmdline" % p, "rb").read(): srv = int(p)
        except OSError:
            pass
print("server", srv is not None)
def tried(what, f):
    try:
        f()
        print(what, "ALLOWED")
    except OSError as e:
        print(what, "refused", type(e).__name__)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
tried("connect", lambda: s.connect("/run/agentbox/sock"))
tried("listdir", lambda: os.listdir("/run/agentbox"))
tried("unlink", lambda: os.unlink("/run/agentbox/sock"))
tried("kill", lambda: os.kill(srv, signal.SIGKILL))
tried("stop", lambda: os.kill(srv, signal.SIGSTOP))
tried("environ", lambda: open("/proc/%d/environ" % srv).read())
tried("root", lambda: os.listdir("/proc/%d/root/run/agentbox" % srv))
tried("fd", lambda: os.listdir("/proc/%d/fd" % srv))
]]))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("server True", r.output)
    assert.not_matches("ALLOWED", r.output)
    for _, what in ipairs{ "connect", "listdir", "unlink", "kill", "stop", "environ", "root", "fd" } do
      assert.matches(what .. " refused", r.output)
    end
    -- and the server still serves
    assert.equal("1\n", ex:execute(py("print(1)")).output)
  end)

  dit("a server killed from outside: the container is replaced, the output says so, the next block works", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("print(1)")).exit_code)
    local id = ex.container_id
    -- root in the container (CAP_KILL) kills the server, as a crash would
    local k = assert(client:exec_run(id, { "sh", "-c", "for p in /proc/[0-9]*; do "
      .. "q=${p#/proc/}; [ $q = 1 ] || [ $q = $$ ] || ! grep -q -- --listen $p/cmdline 2>/dev/null || kill -9 $q; done" }))
    assert.is_truthy(k)
    local r = ex:execute(py("print(2)"))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("replaced", r.output)
    assert.matches("2\n$", r.output)
    assert.are_not.equal(id, ex.container_id)
    assert.equal("3\n", ex:execute(py("print(3)")).output)
  end)

  dit("the container dying during a block is an error of that block; the next one works", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("print(1)")).exit_code)
    local id = ex.container_id
    local killed = false
    ex.on_output = function()
      if not killed then
        killed = true
        os.execute("docker kill " .. id .. " >/dev/null 2>&1 &")
      end
    end
    local t0 = core.now()
    local r = ex:execute(py("import time\nprint('x', flush=True)\ntime.sleep(30)"))
    ex.on_output = nil
    assert.is_true(core.now() - t0 < 15, "the block waited for its deadline")
    assert.are_not.equal(0, r.exit_code)
    assert.matches("replaced", r.output)
    assert.equal("4\n", ex:execute(py("print(4)")).output)
  end)

  it("takes the attach channel with a remote daemon (spec/docker_warm_remote_spec.lua)", function()
    local ex <close> = agentbox.DockerExecutor{ image = IMAGE, warm = true, docker_host = "tcp://127.0.0.1:1" }
    assert.is_true(ex._warm_attach)
    assert.has_error(function() agentbox.DockerExecutor{ image = IMAGE, warm = "yes" } end)
  end)
end)
