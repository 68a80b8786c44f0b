-- The C process supervisor through agentbox.core directly.
local core_lib = require("agentbox.core")
local H = require("spec.support.helpers")

local ENV = { PATH = os.getenv("PATH") or "/usr/bin:/bin" }

local function wait(p)
  while not p:done() do core_lib.step(-1) end
  return p:result()
end

-- Each case runs twice: the supervisor forked from this process, and the
-- spawn server (agentbox-sup --server, what the executors use).
local SUP = require("agentbox.executor.common").sup_path()
assert(SUP, "build/agentbox/agentbox-sup is missing: run make")

for _, mode in ipairs({ "fork", "spawn server" }) do
describe("core.spawn (" .. mode .. ")", function()
  local core = setmetatable({
    spawn = function(o)
      if mode == "spawn server" and type(o) == "table" then o.sup = SUP end
      return core_lib.spawn(o)
    end,
  }, { __index = core_lib })
  local dir
  before_each(function() dir = H.tmpdir("proc") end)
  after_each(function() H.rm_rf(dir) end)

  it("returns exit code, merged and per-stream output, wall time", function()
    local p = core.spawn{ argv = { "sh", "-c", "echo out; echo err >&2; exit 3" }, env = ENV }
    local r = wait(p)
    assert.equal(3, r.exit_code)
    assert.equal("out\n", r.stdout)
    assert.equal("err\n", r.stderr)
    assert.equal(8, #r.output)
    assert.is_false(r.timed_out)
    assert.is_true(r.wall > 0 and r.wall < 5)
    p:close()
  end)

  it("keeps arrival order between stdout and stderr", function()
    local r = wait(core.spawn{ argv = { "sh", "-c", "echo 1; sleep 0.05; echo 2 >&2; sleep 0.05; echo 3" }, env = ENV })
    assert.equal("1\n2\n3\n", r.output)
  end)

  it("reports a signal death", function()
    local r = wait(core.spawn{ argv = { "sh", "-c", "kill -9 $$" }, env = ENV })
    assert.is_nil(r.exit_code)
    assert.equal(9, r.signal)
  end)

  it("gives 127 and a message when the program does not exist", function()
    local r = wait(core.spawn{ argv = { "no-such-program-xyz" }, env = ENV })
    assert.equal(127, r.exit_code)
    assert.matches("cannot run 'no%-such%-program%-xyz'", r.stderr)
  end)

  it("passes exactly the given environment", function()
    local r = wait(core.spawn{ argv = { "/usr/bin/env" }, env = { ONLY = "this" } })
    assert.equal("ONLY=this\n", r.output)
  end)

  it("gives EOF on stdin at once when no stdin is given", function()
    local r = wait(core.spawn{ argv = { "sh", "-c", "cat; echo done" }, env = ENV, timeout = 5 })
    assert.equal("done\n", r.output)
    assert.is_false(r.timed_out)
  end)

  it("feeds a stdin string", function()
    local big = ("x"):rep(300000)
    local r = wait(core.spawn{ argv = { "wc", "-c" }, env = ENV, stdin = big })
    assert.equal("300000", r.output:match("%d+"))
  end)

  it("runs in cwd", function()
    local r = wait(core.spawn{ argv = { "pwd" }, env = ENV, cwd = dir })
    assert.equal(core.realpath(dir) .. "\n", r.output)
  end)

  it("kills a setsid grandchild and a TERM-ignoring child at the deadline", function()
    local late1, late2 = dir .. "/late1", dir .. "/late2"
    local script = ("setsid sh -c 'sleep 2; echo x > %s' & "
      .. "sh -c 'trap \"\" TERM; sleep 2; echo x > %s' & echo started; wait"):format(late1, late2)
    local t0 = core.now()
    local r = wait(core.spawn{ argv = { "sh", "-c", script }, env = ENV, timeout = 0.5, grace = 0.2 })
    assert.is_true(r.timed_out)
    assert.equal("started\n", r.output)
    assert.is_true(core.now() - t0 < 1.5)
    local tm = core.timer(2.5)
    while not tm:done() do core.step(-1) end
    assert.is_false(H.exists(late1))
    assert.is_false(H.exists(late2))
  end)

  it("returns when the direct child exits even if a background grandchild holds stdout", function()
    local late = dir .. "/bg"
    local t0 = core.now()
    local r = wait(core.spawn{ argv = { "sh", "-c", "(sleep 3; echo x > " .. late .. ") & echo fg" },
                               env = ENV, timeout = 10 })
    assert.is_true(core.now() - t0 < 1.0)
    assert.equal(0, r.exit_code)
    assert.equal("fg\n", r.output)
    local tm = core.timer(3.3)
    while not tm:done() do core.step(-1) end
    assert.is_false(H.exists(late))
  end)

  it("caps output while reading, counts what it dropped, and never blocks the child", function()
    local r = wait(core.spawn{ argv = { "sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' y; echo tail >&2" },
                               env = ENV, max_output = 1000, timeout = 30 })
    assert.equal(0, r.exit_code)
    assert.equal(1000, #r.output)
    assert.equal(5000005 - 1000, r.dropped)
  end)

  it("keeps binary and NUL bytes without raising", function()
    local r = wait(core.spawn{ argv = { "printf", "a\\000b\\377c" }, env = ENV })
    assert.equal("a\0b\255c", r.output)
    assert.equal("a\0b\239\191\189c", core.utf8_clean(r.output))
  end)

  it("streams chunks before the process ends", function()
    local p = core.spawn{ argv = { "sh", "-c", "echo first; sleep 1; echo second" }, env = ENV }
    local first
    while not first do
      core.step(-1)
      local chunks = p:read()
      if chunks then first = chunks end
    end
    assert.is_false(p:done())
    assert.same({ "stdout", "first\n" }, first)
    wait(p)
    p:close()
  end)

  it("step(0) returns at once while work is in flight", function()
    local p = core.spawn{ argv = { "sleep", "1" }, env = ENV }
    local t0 = core.now()
    for _ = 1, 100 do core.step(0) end
    assert.is_true(core.now() - t0 < 0.1)
    assert.is_false(p:done())
    p:close()
  end)

  it("kill() ends the whole tree and close is idempotent", function()
    local late = dir .. "/killed"
    local p = core.spawn{ argv = { "sh", "-c", "(sleep 1; echo x > " .. late .. ") & sleep 5" }, env = ENV }
    local tm = core.timer(0.2)
    while not tm:done() do core.step(-1) end
    p:kill()
    local r = wait(p)
    assert.is_true(r.cancelled)
    p:close()
    p:close()
    assert.matches("closed", tostring(p))
    assert.has_error(function() p:result() end)
    local tm2 = core.timer(1.2)
    while not tm2:done() do core.step(-1) end
    assert.is_false(H.exists(late))
  end)

  it("close while running kills the process", function()
    -- the workload prints its own pid, then becomes `sleep`
    local p = core.spawn{ argv = { "sh", "-c", "echo $$; exec sleep 30" }, env = ENV }
    -- p:pid() is 0 until the spawn server has answered, and the workload's
    -- pid arrives on stdout: step until both are known
    local out, tm = "", core.timer(5)
    while (p:pid() <= 0 or not out:find("\n")) and not tm:done() do
      core.step(-1)
      local chunks = p:read()
      for i = 2, chunks and #chunks or 0, 2 do out = out .. chunks[i] end
    end
    local pid, child = p:pid(), tonumber(out:match("^(%d+)\n"))
    assert.is_true(pid > 0, "no pid after 5 s")
    assert.is_truthy(child, "no workload pid in " .. out)
    assert.is_true(H.alive(pid))
    assert.is_true(H.alive(child))
    p:close()
    local tm2 = core.timer(0.3)
    while not tm2:done() do core.step(-1) end
    assert.is_false(H.alive(pid))
    assert.is_false(H.alive(child))
  end)

  it("applies rlimits", function()
    local r = wait(core.spawn{ argv = { "sh", "-c", "ulimit -n; ulimit -f" }, env = ENV,
                               rlimits = { nofile = 64, fsize = 1024 * 1024 } })
    assert.equal("64\n2048\n", r.output)
  end)

  it("rejects bad arguments with a clear message", function()
    assert.has_error(function() core.spawn{} end, "spawn: 'argv' must be a non-empty array of strings")
    assert.has_error(function() core.spawn{ argv = { "x" }, env = { A = 1 } } end, "spawn: env entries must be string = string")
    assert.has_error(function() core.spawn{ argv = { "x" }, timeout = "soon" } end)
  end)

  it("searches PATH in order: an empty entry is the cwd, a non-executable file is skipped", function()
    local a, b = dir .. "/a", dir .. "/b"
    os.execute("mkdir -p " .. a .. " " .. b)
    H.write(a .. "/abprog", "#!/bin/sh\necho from-a\n")   -- not executable
    H.write(b .. "/abprog", "#!/bin/sh\necho from-b\n")
    H.write(dir .. "/abprog", "#!/bin/sh\necho from-cwd\n")
    os.execute("chmod 755 " .. b .. "/abprog " .. dir .. "/abprog")
    local r = wait(core.spawn{ argv = { "abprog" }, env = { PATH = a .. ":" .. b } })
    assert.equal("from-b\n", r.output)
    r = wait(core.spawn{ argv = { "abprog" }, env = { PATH = a .. "::" .. b }, cwd = dir })
    assert.equal("from-cwd\n", r.output)
    r = wait(core.spawn{ argv = { "abprog" }, env = { PATH = a } })
    assert.equal(126, r.exit_code)
    assert.matches("cannot run 'abprog': Permission denied", r.stderr)
  end)

  it("runs a request larger than one spawn-server message (the fork path takes it)", function()
    local env = { PATH = ENV.PATH }
    for i = 1, 40 do env["BIG" .. i] = ("x"):rep(2048) end   -- 80 KiB > AB_SPAWN_MAX_MSG
    local r = wait(core.spawn{ argv = { "sh", "-c", "echo ${#BIG40}" }, env = env })
    assert.equal(0, r.exit_code)
    assert.equal("2048\n", r.output)
  end)

  it("refuses a NaN timeout or grace", function()
    local ok, err = pcall(core.spawn, { argv = { "true" }, timeout = 0 / 0 })
    assert.is_false(ok)
    assert.matches("option 'timeout' must be a number, got %-?nan", err)
    ok, err = pcall(core.spawn, { argv = { "true" }, grace = 0 / 0 })
    assert.is_false(ok)
    assert.matches("option 'grace' must be a number, got %-?nan", err)
  end)

  it("computes md5 like Python's hashlib", function()
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", core.md5(""))
    assert.equal("186bdbe41e79ea696410ba0a9e8d2762", core.md5("print(1)"))
  end)
end)
end

describe("core.deadline_budget", function()
  local core = core_lib
  it("derives every party's moment from timeout and grace (src/deadline.h)", function()
    local b = core.deadline_budget(2, 0.5)
    assert.equal(2, b.timeout)
    assert.equal(0.5, b.grace)
    assert.equal(2, b.term)                                   -- the supervisor's TERM
    assert.equal(2.5, b.kill)                                 -- its KILL
    assert.equal(core.deadline_margin / 2, b.give_up)         -- its kill loop's bound
    assert.equal(2.5 + core.deadline_margin, b.host)          -- the host's own deadline
    assert.equal(core.deadline_margin, b.margin)
    assert.equal(3, core.deadline_margin)
  end)

  it("has no deadline without a timeout, and refuses bad arguments", function()
    local b = core.deadline_budget(0, 0.5)
    assert.is_nil(b.term)
    assert.is_nil(b.kill)
    assert.is_nil(b.host)
    assert.has_error(function() core.deadline_budget(-1) end)
    assert.has_error(function() core.deadline_budget(1, 0 / 0) end)
    assert.has_error(function() core.deadline_budget("x") end)
  end)

  it("is the host's deadline of core.spawn: a stopped supervisor is killed at budget.host", function()
    local b = core.deadline_budget(0.2, 0.1)
    local t0 = core.now()
    local p = core.spawn{ argv = { "sh", "-c", "kill -STOP $PPID; exec sleep 30" }, env = ENV,
                          timeout = 0.2, grace = 0.1 }
    while not p:done() do core.step(-1) end
    local r, took = p:result(), core.now() - t0
    assert.is_true(r.timed_out)
    assert.matches("did not end the run by its deadline", r.error)
    assert.is_true(took >= b.host - 0.05, "ended after " .. took .. " s, before the budget's host " .. b.host)
    assert.is_true(took < b.host + 2, "ended after " .. took .. " s")
  end)
end)
