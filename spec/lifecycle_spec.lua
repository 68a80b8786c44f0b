-- The per-lua_State context is finalized: closing a state gives back its
-- epoll set, its spawn server, its HTTP connections and its timers, even
-- with work in flight, and a host that opens and closes many states keeps
-- no descriptor and no child process.
local core = require("agentbox.core")
local H = require("spec.support.helpers")
local fake = require("spec.support.fake_openai")

-- the build this suite runs (build/ or, under `make check`, build-san/)
local BUILD = assert(package.searchpath("agentbox.core", package.cpath), "agentbox.core not found")
  :match("^(.*)/agentbox/core%.so$")
local STATES_HOST = BUILD .. "/states_host"
local NSTATES = 200

-- pids of processes whose command line holds the argument `arg`
local function processes_with(arg)
  local found = {}
  local ls = io.popen("ls /proc")
  for pid in ls:lines() do
    if pid:match("^%d+$") then
      local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
      local cmd = f and f:read("a") or ""
      if f then f:close() end
      for a in cmd:gmatch("[^%z]+") do
        if a == arg and H.alive(pid) then found[#found + 1] = pid end
      end
    end
  end
  ls:close()
  return found
end

describe("lua_State lifecycle", function()
  it("closing a lua_State runs the context's finalizer without error", function()
    local r = H.run({ "lua5.4", "-W", "-e", 'require("agentbox.core")' }, { env = H.lua_env() })
    assert.equal(0, r.exit_code, r.output)
    assert.equal("", r.stderr)
  end)

  it("a finalizer that runs after agentbox's cannot start work on the closed context", function()
    -- `late` is marked for finalization before agentbox's context, so Lua
    -- finalizes it after the context: a process, timer or request started
    -- then would leak (a spawn server nobody reaps, a heap nobody frees)
    local src = [[
      local core
      local late = setmetatable({}, { __gc = function()
        for _, f in ipairs({
          function() return core.timer(1) end,
          function() return core.spawn{ argv = { "/bin/true" }, sup = os.getenv("AGENTBOX_SUP") } end,
          function() return core.http{ url = "http://127.0.0.1:9/" } end,
        }) do
          local ok, err = pcall(f)
          io.write(tostring(ok), ": ", tostring(err), "\n")
        end
      end })
      core = require("agentbox.core")
      local keep = { core.timer(30) }
    ]]
    local r = H.run({ "lua5.4", "-W", "-e", src }, { env = H.lua_env() })
    assert.equal(0, r.exit_code, r.output)
    local n = 0
    for line in r.stdout:gmatch("[^\n]+") do
      assert.matches("^false: .*agentbox: the lua_State is closing$", line)
      n = n + 1
    end
    assert.equal(3, n, r.stdout)
    assert.equal("", r.stderr)
  end)

  it("a host that opens and closes " .. NSTATES .. " states keeps no descriptor and no child process", function()
    assert.is_true(H.exists(STATES_HOST), STATES_HOST .. " is missing: `make test` builds it")
    local srv = fake.start{ rules = { { when_last_contains = "slow", content = "late", delay = 60 } } }
    local r = H.run({ STATES_HOST, "spec/support/states_state.lua", tostring(NSTATES), srv.base_url },
                    { env = H.lua_env(), timeout = 600, max_output = 1 << 20 })
    srv:stop()
    local fds, fds0, kids, kids0 = r.stdout:match(
      "after " .. NSTATES .. " states: (%d+) fds %(baseline (%d+)%), (%d+) child processes %(baseline (%d+)%)")
    assert.is_truthy(fds, r.output)
    assert.matches("states that failed: 0; states that had a spawn server: " .. NSTATES, r.stdout)
    assert.equal(fds0, fds, r.output)
    assert.equal(kids0, kids, r.output)
    assert.equal(0, r.exit_code, r.output)
    -- the odd states closed with a process tree running: none of it
    -- survives (its supervisor kills it within the grace period)
    local marker = "agentbox-lifecycle-" .. assert(r.stdout:match("host pid (%d+)"), r.output)
    local deadline = core.now() + 5
    while #processes_with(marker) > 0 and core.now() < deadline do core.step(50) end
    assert.same({}, processes_with(marker))
  end)
end)
