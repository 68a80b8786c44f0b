-- A collected executor (never closed) releases what it holds without doing
-- I/O in its finalizer: __gc only queues the release (executor/gc_queue.lua),
-- the next scheduler step sends it, and lua_close waits for it at most
-- gc_queue.CLOSE_BUDGET seconds. Against every executor kind: its private
-- work_dir goes, and for Docker its container (looked at with the docker
-- CLI, so that looking never steps agentbox's scheduler).
local agentbox = require("agentbox")
local core = require("agentbox.core")
local C = require("spec.support.contract")
local H = require("spec.support.helpers")
local task = require("agentbox.task")

local BUDGET = require("agentbox.executor.gc_queue").CLOSE_BUDGET

local function is_dir(path)
  return H.run({ "test", "-d", path }, { unscheduled = true }).exit_code == 0
end

local function container(id)
  return id ~= nil and H.run({ "docker", "inspect", "-f", "{{.Id}}", id }, { unscheduled = true }).exit_code == 0
end

-- An executor with a private work_dir (E.new always gives one), started.
local function bare(E)
  local stateful = E.stateful or nil
  local ex = E.docker and agentbox.DockerExecutor{ image = C.IMAGE, timeout = 10, warm = E.warm, preload = E.preload,
                                                   stateful = stateful }
    or agentbox.LocalExecutor{ timeout = 10, preload = E.preload, stateful = stateful }
  if ex.start then ex:start() end
  return ex, ex.work_dir, ex.container_id
end

C.each("a collected executor", function(E)
  E.it("queues its release in __gc and releases at the next step: work_dir, container", function()
    local ex, dir, id = bare(E)
    assert.equal(0, ex:execute{ { lang = "sh", code = "echo x > f" } }.exit_code)
    assert.is_true(is_dir(dir))
    assert.equal(E.docker, container(id))
    ex = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    -- no I/O inside the finalizer: both are still there
    assert.is_true(is_dir(dir))
    assert.equal(E.docker, container(id))
    local deadline = core.now() + 10
    repeat agentbox.step(50) until not is_dir(dir) and not container(id) or core.now() > deadline
    assert.is_false(is_dir(dir))
    assert.is_false(container(id))
  end)

  E.it("is released at lua_close within the bound, even dropped inside a task with no step after", function()
    local src = ([[
      local agentbox = require("agentbox")
      local core = require("agentbox.core")
      local ex = %s
      if ex.start then ex:start() end
      io.write(ex.work_dir, " ", tostring(ex.container_id), "\n")
      agentbox.spawn(function() ex = nil; collectgarbage(); collectgarbage() end)
      agentbox.step(0)
      io.write(("%%.6f\n"):format(core.now()))
    ]]):format(E.new_src("timeout = 10"))
    local r = H.run({ "lua5.4", "-e", src }, { env = H.lua_env() })
    local ended = core.now()
    assert.equal(0, r.exit_code, r.output)
    local dir, id, closing = r.stdout:match("^(%S+) (%S+)\n([%d.]+)\n$")
    assert.is_truthy(closing, r.output)
    assert.is_true(ended - tonumber(closing) < BUDGET + 1, ("lua_close took %.2f s"):format(ended - tonumber(closing)))
    if E.docker then
      assert.matches("^%x+$", id)
      assert.is_false(container(id))
    end
    assert.is_false(is_dir(dir))
  end)
end)

describe("a collected DockerExecutor #docker", function()
  it("does not hold lua_close past the bound when the daemon never answers", function()
    C.need_docker(pending)
    local dir = H.tmpdir("silent")
    local sock = dir .. "/docker.sock"
    -- a daemon that accepts and never answers
    local srv <close> = assert(core.spawn{ argv = { "python3", "-c", ([[
import socket
s = socket.socket(socket.AF_UNIX)
s.bind(%q)
s.listen(64)
print("ready", flush=True)
held = []
while True:
    held.append(s.accept()[0])
]]):format(sock) }, env = { PATH = os.getenv("PATH") }, timeout = 120, stream = true })
    local got = ""
    while not got:find("ready") and not srv:done() do
      task.wait(srv)
      local chunks = srv:read()
      for i = 2, chunks and #chunks or 0, 2 do got = got .. chunks[i] end
    end
    assert.matches("ready", got)
    -- the container is made through the real daemon; its removal goes to the silent one
    local src = ([[
      local agentbox = require("agentbox")
      local core = require("agentbox.core")
      local ex = agentbox.DockerExecutor{ image = %q, timeout = 10 }
      ex:start()
      local silent = require("agentbox.engine").client("unix://%s")
      silent.version = ex.client.version
      ex.client = silent
      io.write(ex.container_id, "\n")
      ex = nil
      collectgarbage()
      collectgarbage()
      io.write(("%%.6f\n"):format(core.now()))
    ]]):format(C.IMAGE, sock)
    local r = H.run({ "lua5.4", "-e", src }, { env = H.lua_env() })
    local ended = core.now()
    local id, closing = r.stdout:match("^(%x+)\n([%d.]+)\n$")
    assert.is_truthy(closing, r.output)
    if id then H.run({ "docker", "rm", "-f", id }) end
    assert.equal(0, r.exit_code, r.output)
    local took = ended - tonumber(closing)
    assert.is_true(took >= BUDGET - 0.1 and took < BUDGET + 1, ("lua_close took %.2f s"):format(took))
    H.rm_rf(dir)
  end)
end)
