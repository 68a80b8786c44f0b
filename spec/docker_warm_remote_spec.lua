-- DockerExecutor{ warm = true } through a remote daemon (DOCKER_HOST=tcp://):
-- the block server speaks on the container's attach stream
-- (executor/docker_attach.lua, src/attach.c, src/attachrun.c,
-- src/blockstream.c). spec/support/tcp_relay.py makes the local daemon
-- look remote and logs the endpoints used. Tagged #docker.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local IMAGE = C.IMAGE
local client = docker.client()

local dit = C.docker_it(client)

local function py(code) return { { lang = "python", code = code } } end

-- root in the container, as a crash or a broken server would act (not the
-- code: it runs as the sandbox user)
local function as_root(id, script)
  return assert(client:exec_run(id, { "sh", "-c", script }, { user = "0:0" }))
end
-- ex started, root runs script in its container once, on the first output
-- of a block that prints and then sleeps 20 s (so: while that block runs).
-- Returns the block's result, the container it started in, and the seconds
-- the block took.
local function as_root_during_block(ex, script)
  ex:start()
  local id = ex.container_id
  local sent = false
  ex.on_output = function()
    if not sent then
      sent = true
      as_root(id, script)
    end
  end
  local t0 = core.now()
  local r = ex:execute(py("import time\nprint('x', flush=True)\ntime.sleep(20)"))
  ex.on_output = nil
  return r, id, core.now() - t0
end
local FIND_SERVER = "for p in /proc/[0-9]*; do q=${p#/proc/}; [ $q = 1 ] || [ $q = $$ ] || "
  .. "! tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/opt/agentbox/sup --stream' || { echo $q; break; }; done"

describe("DockerExecutor warm = true through a remote daemon #docker", function()
  local base, relay, host, log
  setup(function()
    base = H.tmpdir("warm-remote")
    log = base .. "/relay.log"
    if not docker.available() then return end
    relay = assert(core.spawn{ argv = { "python3", "spec/support/tcp_relay.py", client.ep.socket, log },
                               env = { PATH = os.getenv("PATH") }, timeout = 900, stream = true })
    local got = H.first_line(relay)
    host = "tcp://127.0.0.1:" .. assert(got:match("^(%d+)\n"), got)
  end)
  teardown(function()
    if relay then relay:close() end
    H.rm_rf(base)
  end)
  local n = 0
  local function new(opts)
    n = n + 1
    opts = opts or {}
    opts.image, opts.warm, opts.work_dir, opts.docker_host = IMAGE, true, base .. "/w" .. n, host
    if opts.timeout == nil then opts.timeout = 10 end
    return agentbox.DockerExecutor(opts)
  end
  local function log_since(mark)
    local all = H.read(log) or ""
    return all:sub(mark + 1)
  end

  dit("runs blocks through the attach stream: no exec is created for a block", function()
    local ex <close> = new()
    assert.equal("archive", ex.transfer)
    ex:start()
    local id = ex.container_id
    local mark = #(H.read(log) or "")
    local during
    ex.on_output = function()
      if not during then
        -- while the block runs: the daemon's running execs of this container
        local info = assert(client:inspect(id))
        during = info.ExecIDs
      end
    end
    local r = ex:execute{ { lang = "sh", code = "id -u; cat /proc/$PPID/cmdline | tr '\\0' ' '; echo; sleep 0.5" } }
    ex.on_output = nil
    assert.equal(0, r.exit_code, r.output)
    assert.matches("^1000\n", r.output)
    -- the block's parent is a supervisor forked by the server's spawn server
    assert.matches("/opt/agentbox/sup %-%-stream %-u 1000:1000", r.output)
    assert.is_true(during == docker.null or during == nil or #during == 0, "an exec ran the block")
    assert.equal("1\n", ex:execute(py("print(1)")).output)
    local seen = log_since(mark)
    assert.not_matches("/exec", seen)
    -- the code files went through the server too (cat as the sandbox user)
    assert.not_matches("/archive", seen)
    -- one over 1 MiB goes by the archive API
    mark = #(H.read(log) or "")
    local r2 = ex:execute(py(("x = 1\n"):rep(200000) .. "print('big', __import__('os').stat(__file__).st_uid)"))
    assert.equal("big 1000\n", r2.output)
    seen = log_since(mark)
    assert.matches("/containers/" .. id .. "/archive", seen)
    assert.not_matches("/exec", seen)
    assert.equal(id, ex.container_id)
  end)

  dit("on_output gets chunks while the block runs", function()
    local seen = {}
    local ex <close> = new{ on_output = function(data, stream) seen[#seen + 1] = { core.now(), data, stream } end }
    ex:start()
    local t0 = core.now()
    local r = ex:execute(py("import time, sys\nprint('a', flush=True)\ntime.sleep(1)\nprint('b', file=sys.stderr)"))
    local t1 = core.now()
    assert.equal(0, r.exit_code, r.output)
    assert.equal("a", seen[1][2]:match("^a"))
    assert.equal("stdout", seen[1][3])
    assert.is_true(seen[1][1] - t0 < t1 - t0 - 0.5, "the first chunk came at the end")
    assert.equal("stderr", seen[#seen][3])
  end)

  dit("a timeout kills the whole tree (setsid, TERM ignored); nothing is left for the next block", function()
    local ex <close> = new{ timeout = 1 }
    ex:start()
    local t0 = core.now()
    local r = ex:execute{ { lang = "sh", code = "setsid sh -c 'trap \"\" TERM; sleep 100' & trap '' TERM; "
                           .. "echo started; sleep 100" } }
    assert.equal(124, r.exit_code, r.output)
    assert.matches("started", r.output)
    assert.is_true(core.now() - t0 < 5)
    r = ex:execute(py([[
import os
me = os.getpid()
left = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me and os.stat("/proc/" + p).st_uid == 1000]
print("left", left)]]))
    assert.equal(0, r.exit_code, r.output)
    assert.equal("left []\n", r.output)
  end)

  dit("a block printing forged frames gets them back as its output; its exit code is its own", function()
    local ex <close> = new()
    ex:start()
    -- what the server writes, and what the daemon wraps it in: a RESULT
    -- record claiming exit 0 for every id a run could have, a HELLO, and an
    -- Engine stream header, on stdout and stderr; then the code tries the
    -- channel itself (the container's stdout is PID 1's, root's)
    local r = ex:execute(py([[
import os, struct, sys
def frame(kind, stream, rid, payload):
    return b"ab" + bytes([ord(kind), stream]) + struct.pack(">II", rid, len(payload)) + payload
res = struct.pack(">10iq", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
forged = b"".join(frame("R", 0, i, res) for i in range(0, 8)) + frame("H", 0, 0, struct.pack(">I", 1))
engine = b"\x01\x00\x00\x00" + struct.pack(">I", len(forged)) + forged
for out in (sys.stdout.buffer, sys.stderr.buffer):
    out.write(engine); out.write(forged); out.flush()
for path in ("/proc/1/fd/1", "/dev/stdout", "/proc/self/fd/1"):
    try:
        with open(path, "wb") as f: f.write(forged)
        print("\nwrote", path, os.readlink(path) if path != "/dev/stdout" else "")
    except OSError as e:
        print("\nrefused", path, type(e).__name__)
sys.exit(7)]]))
    assert.equal(7, r.exit_code, r.output)
    assert.matches("refused /proc/1/fd/1", r.output, 1, true)
    -- the forged bytes came back as the block's output, byte for byte
    assert.matches("abR\0\0\0\0\0\0\0\0000", r.output, 1, true)
    assert.matches("abH", r.output, 1, true)
    -- the container is the same, the server still serves
    local id = ex.container_id
    assert.equal("1\n", ex:execute(py("print(1)")).output)
    assert.equal(id, ex.container_id)
  end)

  dit("a server killed from outside: the container is replaced, the output says so, the next block works", function()
    local ex <close> = new()
    assert.equal(0, ex:execute(py("print(1)")).exit_code)
    local id = ex.container_id
    local k = as_root(id, "kill -9 $(" .. FIND_SERVER .. ")")
    assert.is_truthy(k)
    local r = ex:execute(py("print(2)"))
    assert.equal(0, r.exit_code, r.output)
    assert.matches("replaced", r.output)
    assert.matches("2\n$", r.output)
    assert.are_not.equal(id, ex.container_id)
    assert.equal("3\n", ex:execute(py("print(3)")).output)
  end)

  dit("a malformed reply is an error of that block; the container is replaced and the next block works", function()
    local ex <close> = new()
    -- root writes garbage on the container's stdout (PID 1's), as a broken
    -- server would, while the block runs
    local r, id, took = as_root_during_block(ex,
      "printf 'abZ\\0\\0\\0\\0\\1\\377\\377\\377\\377garbage' > /proc/1/fd/1")
    assert.is_true(took < 10, "the block waited for its deadline")
    assert.are_not.equal(0, r.exit_code)
    assert.matches("malformed", r.output)
    assert.matches("replaced", r.output)
    assert.are_not.equal(id, ex.container_id)
    assert.equal("4\n", ex:execute(py("print(4)")).output)
  end)

  dit("a result record out of range is not believed: an error of that block, the container replaced", function()
    local ex <close> = new()
    -- well-formed frames, a record claiming exit code 999, for every run id
    -- this connection could be at
    local r, id = as_root_during_block(ex, [[python3 -c '
import struct
res = struct.pack(">10iq", 999, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
f = b"".join(b"abR\0" + struct.pack(">II", i, len(res)) + res for i in range(1, 64))
open("/proc/1/fd/1", "wb").write(f)']])
    assert.are_not.equal(0, r.exit_code)
    assert.are_not.equal(999, r.exit_code)
    assert.matches("malformed result record", r.output)
    assert.are_not.equal(id, ex.container_id)
    assert.equal("6\n", ex:execute(py("print(6)")).output)
  end)

  dit("a server that stops answering: the host's deadline ends the block, the container is replaced", function()
    local ex <close> = new{ timeout = 1 }
    local r, id, took = as_root_during_block(ex, "kill -STOP $(" .. FIND_SERVER .. ")")
    -- timeout 1 + grace 0.5 + the 3 s margin (deadline.h), not the 20 s sleep
    assert.is_true(took > 4 and took < 9, "took " .. took)
    assert.equal(124, r.exit_code, r.output)
    assert.matches("did not report", r.output)
    assert.matches("replaced", r.output)
    assert.are_not.equal(id, ex.container_id)
    assert.equal("5\n", ex:execute(py("print(5)")).output)
  end)

  dit("works through TLS (DOCKER_TLS_VERIFY, a CA in DOCKER_CERT_PATH)", function()
    if not H.exists("/usr/bin/openssl") then return pending("no /usr/bin/openssl to make a certificate") end
    local certs = base .. "/certs"
    assert(core.mkdir_p(certs))
    local g = H.run({ "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                      "-keyout", certs .. "/key.pem", "-out", certs .. "/ca.pem", "-subj", "/CN=127.0.0.1",
                      "-addext", "subjectAltName=IP:127.0.0.1" })
    assert.equal(0, g.exit_code, g.stderr)
    local tls = assert(core.spawn{ argv = { "python3", "spec/support/tls_relay.py", client.ep.socket,
                                            certs .. "/ca.pem", certs .. "/key.pem" },
                                   env = { PATH = os.getenv("PATH") }, timeout = 300, stream = true })
    local got = H.first_line(tls)
    local port = assert(got:match("^(%d+)\n"), got)
    -- in a nested Lua: the TLS settings are read from the environment
    local r = H.lua(([[
local agentbox = require("agentbox")
local seen = {}
local ex = agentbox.DockerExecutor{ image = %q, warm = true, timeout = 10,
  on_output = function(d) seen[#seen + 1] = d end }
print(ex.client.ep.base, ex._warm_attach)
local r = ex:execute{ { lang = "python", code = "print('over tls')" } }
print("chunks", table.concat(seen))
print("exit", r.exit_code)
ex:close()]]):format(IMAGE), { DOCKER_HOST = "tcp://127.0.0.1:" .. port, DOCKER_TLS_VERIFY = "1",
                               DOCKER_CERT_PATH = certs }, 120)
    tls:close()
    assert.equal(0, r.exit_code, r.stdout .. r.stderr)
    assert.matches("^https://127%.0%.0%.1:" .. port .. "\ttrue\n", r.stdout)
    assert.matches("chunks\tover tls\n", r.stdout, 1, true)
    assert.matches("exit\t0\n", r.stdout)
  end)

  dit("output is capped (max_output) by the server and again on the host", function()
    local ex <close> = new{ max_output = 1000 }
    local r = ex:execute(py("import sys\nsys.stdout.write('y' * 3000000)\nsys.stdout.flush()\nprint('end')"))
    assert.equal(0, r.exit_code)
    assert.is_true(#r.output < 1200, "kept " .. #r.output)
    assert.matches("output truncated, 2999004 bytes dropped %(max_output = 1000%)", r.output)
    assert.equal("1\n", ex:execute(py("print(1)")).output)
  end)
end)
