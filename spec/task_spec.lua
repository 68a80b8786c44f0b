-- Tasks over the reactor: spawn, step, run, cancel, errors, and the blocking
-- calls being the same tasks run to completion.
local agentbox = require("agentbox")
local task = require("agentbox.task")
local core = require("agentbox.core")
local H = require("spec.support.helpers")
local fake = require("spec.support.fake_openai")

describe("tasks", function()
  local dir
  before_each(function() dir = H.tmpdir("task") end)
  after_each(function()
    agentbox.on_error = nil
    H.rm_rf(dir)
  end)

  it("runs a function as a task and returns its values", function()
    local t = agentbox.spawn(function(a, b) agentbox.sleep(0.01) return a + b, "x" end, 2, 3)
    assert.is_false(t:done())
    agentbox.run()
    assert.is_true(t:done())
    assert.same({ 5, "x" }, { t:result() })
  end)

  it("step(0) never blocks while work is in flight", function()
    local t = agentbox.spawn(function() agentbox.sleep(0.5) return "slept" end)
    local t0 = core.now()
    local live
    for _ = 1, 50 do live = agentbox.step(0) end
    assert.is_true(core.now() - t0 < 0.05)
    assert.equal(1, live)
    agentbox.run()
    assert.equal("slept", t:result())
  end)

  it("runs 16 executions concurrently with the same results as serial runs", function()
    -- Debian's python3 starts in ~25 ms; a pyenv shim first on PATH costs ~180 ms
    local ex = agentbox.LocalExecutor{ work_dir = dir, timeout = 20, env = { PATH = "/usr/bin:/bin" } }
    local function job(i)
      return ex:execute{ { lang = "python", code = ("import time\nt0 = time.time()\ntime.sleep(0.5)\n"
        .. "print(%d * %d)\nprint(repr(t0), repr(time.time()))"):format(i, i) } }
    end
    local function parse(r)
      local value, t0, t1 = r.output:match("^(%d+)\n(%S+) (%S+)\n$")
      return value, tonumber(t0), tonumber(t1)
    end
    local serial = {}
    for i = 1, 2 do serial[i] = job(i) end
    local tasks = {}
    for i = 1, 16 do tasks[i] = agentbox.spawn(job, i) end
    agentbox.run()
    -- concurrency is overlap, not speed: the most runs asleep at one moment
    -- (serial runs would give 1; timings under load are for bench/)
    local spans = {}
    for i = 1, 16 do
      local r = tasks[i]:result()
      assert.equal(0, r.exit_code)
      local value, t0, t1 = parse(r)
      assert.equal(tostring(i * i), value, r.output)
      spans[i] = { t0, t1 }
    end
    local most = 0
    for _, a in ipairs(spans) do
      local n = 0
      for _, b in ipairs(spans) do if b[1] <= a[1] and a[1] < b[2] then n = n + 1 end end
      most = math.max(most, n)
    end
    assert.is_true(most >= 4, "at most " .. most .. " of 16 runs overlapped")
    assert.equal(parse(serial[2]), parse(tasks[2]:result()))
  end)

  it("an error in one task does not stop the others and reaches on_error", function()
    local seen
    agentbox.on_error = function(err) seen = err end
    local bad = agentbox.spawn(function() agentbox.sleep(0.01) error("boom in task") end)
    local good = agentbox.spawn(function() agentbox.sleep(0.05) return "fine" end)
    agentbox.run()
    assert.equal("fine", good:result())
    local v, err = bad:result()
    assert.is_nil(v)
    assert.matches("boom in task", err)
    assert.matches("boom in task", seen)
  end)

  it("cancel kills the running process tree and result says cancelled", function()
    local ex = agentbox.LocalExecutor{ work_dir = dir, timeout = 30 }
    local t = agentbox.spawn(function()
      return ex:execute{ { lang = "sh", code = "(sleep 1; echo x > late) & sleep 20" } }
    end)
    local t0 = core.now()
    while core.now() - t0 < 0.3 do agentbox.step(10) end
    assert.is_true(t:cancel())
    agentbox.run()
    assert.same({ nil, "cancelled", "cancelled" }, { t:result() })
    agentbox.sleep(1.2)
    assert.is_false(H.exists(dir .. "/late"))
    -- the executor is still usable afterwards
    assert.equal("ok\n", ex:execute{ { lang = "sh", code = "echo ok" } }.output)
  end)

  it("cancel aborts an HTTP request in flight", function()
    local srv = fake.start{ rules = { { delay = 5, content = "late" } } }
    local c = require("agentbox.llm").new{ config_list = { { model = "m", api_key = "k", base_url = srv.base_url } },
                                           cache_seed = false }
    local t = agentbox.spawn(function() return c:create{ messages = { { role = "user", content = "x" } } } end)
    local t0 = core.now()
    while core.now() - t0 < 0.3 do agentbox.step(10) end
    assert.is_false(t:done())
    t:cancel()
    agentbox.run()
    assert.is_true(core.now() - t0 < 2)
    assert.same({ nil, "cancelled", "cancelled" }, { t:result() })
    srv:stop()
  end)

  it("cancel before the first step never runs the body", function()
    local ran = false
    local t = agentbox.spawn(function() ran = true end)
    t:cancel()
    agentbox.run()
    assert.is_false(ran)
    assert.equal("cancelled", select(2, t:result()))
  end)

  it("calls on_done callbacks", function()
    local got
    local t = agentbox.spawn(function() return 42 end)
    t:on_done(function(tt) got = tt:result() end)
    agentbox.run()
    assert.equal(42, got)
  end)

  it("blocking calls inside a task yield instead of blocking", function()
    local ex = agentbox.LocalExecutor{ work_dir = dir }
    -- a starts first; had its call blocked, b could not tick before it returned
    local ticks, ticks_when_a_returned = 0, nil
    local a = agentbox.spawn(function()
      local r = ex:execute{ { lang = "sh", code = "sleep 0.3; echo a" } }
      ticks_when_a_returned = ticks
      return r
    end)
    local b = agentbox.spawn(function()
      for _ = 1, 5 do agentbox.sleep(0.02) ticks = ticks + 1 end
    end)
    agentbox.run()
    assert.is_true(ticks_when_a_returned > 0, "b never ran while a's process was running")
    assert.equal(5, ticks)
    assert.equal("a\n", a:result().output)
    assert.is_true(b:done())
  end)

  it("a blocking call outside a task rethrows the task's error", function()
    assert.has_error(function() task.sync(function() error("inner failure", 0) end) end, "inner failure")
  end)
  it("checkpoint yields once the resume has run for task.slice, and only inside a task", function()
    task.checkpoint()                        -- outside a task: nothing happens
    local steps_seen, ticks, stop = {}, 0, false
    agentbox.spawn(function()
      while not stop do ticks = ticks + 1; coroutine.yield() end
    end)
    local busy = agentbox.spawn(function()
      for _ = 1, 5 do
        local t0 = core.now()
        while core.now() - t0 < task.slice * 1.5 do end   -- a long piece of work
        steps_seen[#steps_seen + 1] = ticks
        task.checkpoint()
      end
    end)
    while not busy:done() do agentbox.step(0) end
    stop = true
    agentbox.run()
    assert.is_true(busy:result() == nil and busy:done())
    -- the ticker ran between every two pieces of work
    for i = 2, #steps_seen do assert.is_true(steps_seen[i] > steps_seen[i - 1], table.concat(steps_seen, " ")) end
  end)
end)
