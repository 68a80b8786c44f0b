-- DockerExecutor{ warm = true } on a host that is not root (a member of the
-- docker group) with a local daemon: the socket's private directory is the
-- host user's, and the server makes its socket as that uid (src/blocksrv.c
-- --owner). Run as root, the spec makes a system user in the docker group
-- (agentbox-nonroot, kept) and runs a nested Lua as that user with runuser;
-- run as a non-root user, it runs the nested Lua as itself. Tagged #docker.
local core = require("agentbox.core")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local USER = "agentbox-nonroot"

-- argv prefix that runs a command as a non-root member of the docker group,
-- or nil, why
local function as_user()
  if core.geteuid() ~= 0 then return {} end
  local runuser, useradd = "/usr/sbin/runuser", "/usr/sbin/useradd"
  if not H.exists(runuser) or not H.exists(useradd) then return nil, "no runuser/useradd in /usr/sbin" end
  local ok = os.execute("id -u " .. USER .. " >/dev/null 2>&1")
    or os.execute(useradd .. " --system --no-create-home --shell /usr/sbin/nologin -G docker " .. USER
                  .. " >/dev/null 2>&1")
  if not ok then return nil, "cannot create the user " .. USER end
  return { runuser, "-u", USER, "--" }
end

describe("DockerExecutor warm = true on a non-root host #docker", function()
  it("runs blocks over a socket only the host user can reach; the code cannot use or fake it", function()
    C.need_docker(pending)
    local prefix, why = as_user()
    if not prefix then return pending(why) end
    local src = ([[
local agentbox = require("agentbox")
local core = require("agentbox.core")
local ex = agentbox.DockerExecutor{ image = %q, warm = true, timeout = 10 }
local me = core.geteuid()
print("host uid", me)
local r = ex:execute{ { lang = "python", code = [==[
import os, socket, struct
print("sandbox uid", os.getuid())
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(2)
try:
    s.connect("/run/agentbox/sock")
    s.send(b"x" * 64)
    print("served", repr(s.recv(64)))
except OSError as e:
    # the server is busy with the host's connection, and would close ours
    # (its pid is of this namespace): never served
    print("not served", type(e).__name__)
# plant a socket of our own where the server's was
try:
    os.unlink("/run/agentbox/sock")
    fake = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fake.bind("/run/agentbox/sock"); fake.listen(1)
    print("planted")
except OSError as e:
    print("plant refused", type(e).__name__)
]==] } }
print("exit", r.exit_code)
io.write(r.output)
local st = io.popen("stat -c '%%U %%a' " .. ex._warm_dir .. " 2>&1"):read("a")
print("dir", st)
-- the server is replaced with its container; the next block works
ex:restart()
r = ex:execute{ { lang = "python", code = "print('again')" } }
print("exit2", r.exit_code)
io.write(r.output)
ex:close()
]]):format(C.IMAGE)
    local argv = {}
    for _, a in ipairs(prefix) do argv[#argv + 1] = a end
    for _, a in ipairs({ "lua5.4", "-e", src }) do argv[#argv + 1] = a end
    local r = H.run(argv, { env = H.lua_env{ HOME = "/tmp", TMPDIR = "/tmp" }, timeout = 120 })
    local out = r.stdout .. r.stderr
    assert.equal(0, r.exit_code, out)
    local uid = assert(tonumber(out:match("host uid%s(%d+)")), out)
    assert.is_true(uid ~= 0)
    assert.matches("sandbox uid " .. uid, out)        -- the default sandbox user: the host user
    assert.matches("exit%s0", out)
    -- the server hung up on a peer of its own pid namespace
    assert.matches("not served", out)
    assert.matches("dir%s[^\n]* 700", out)
    assert.matches("exit2%s0", out)
    assert.matches("again", out)
  end)

  it("a socket whose listener is not root is refused by the host (a planted one)", function()
    local dir = H.tmpdir("plant")
    os.execute("chmod 1777 " .. dir)
    local argv = { "python3", "-c", ([[
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(%q); s.listen(1); print("up", flush=True); time.sleep(30)]]):format(dir .. "/sock") }
    if core.geteuid() == 0 then table.insert(argv, 1, "--") table.insert(argv, 1, "nobody")
      table.insert(argv, 1, "-u") table.insert(argv, 1, "/usr/sbin/runuser") end
    local p <close> = assert(core.spawn{ argv = argv, env = { PATH = os.getenv("PATH") }, timeout = 60 })
    local got = ""
    while not got:find("up") and not p:done() do
      require("agentbox.task").wait(p)
      local c = p:read()
      for i = 1, c and #c or 0, 2 do got = got .. c[i + 1] end
    end
    assert.matches("up", got)
    local conn, err, code = core.spawn_connect(dir .. "/sock", 0)
    assert.is_nil(conn)
    assert.matches("belongs to uid %d+, not 0: refused", err)
    assert.equal("spawn", code)
    p:kill()
    H.rm_rf(dir)
  end)
end)
