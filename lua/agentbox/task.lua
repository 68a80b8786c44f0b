--- Tasks: coroutines on agentbox's reactor (re-exported as agentbox.spawn,
-- step, run, sleep, future).
--
-- Every wait in agentbox goes through wait(h): inside a task it yields to the
-- scheduler; outside one it drives the reactor until h is ready, so blocking
-- and non-blocking users share one code path.
-- @module agentbox.task
local core = require("agentbox.core")
local errors = require("agentbox.errors")

local M = {}

--- Called with every task error nobody waits for (`agentbox.on_error`).
-- `function(err, task)`; nil (the default) prints the error on stderr
-- unless the task's caller waits for it. An error it raises is printed.
M.on_error = nil

local CANCELLED = setmetatable({}, { __tostring = function() return "cancelled" end })
M.CANCELLED = CANCELLED

local by_co = setmetatable({}, { __mode = "k" }) -- coroutine -> task
-- task -> true: only here to keep a running task reachable (by_co and
-- waiters are weak, and the caller may drop the handle), never read
local live = {} -- luacheck: ignore 241
local nlive = 0
local runq = {}                                    -- tasks to resume, FIFO
local waiters = setmetatable({}, { __mode = "k" })-- handle -> task | MAIN
local MAIN = {}
local main_ready = setmetatable({}, { __mode = "k" })

local Task = {}
Task.__index = Task

local function report(t, err)
  local hook = M.on_error
  if hook then
    local ok, herr = pcall(hook, err, t)
    if not ok then io.stderr:write("agentbox: on_error hook failed: ", tostring(herr), "\n") end
  elseif not t.awaited then
    io.stderr:write("agentbox: task failed: ", tostring(err), "\n")
  end
end

local function finish(t, ok, ...)
  live[t] = nil
  nlive = nlive - 1
  if ok then
    t.status = "done"
    t.values = table.pack(...)
  else
    local err = ...
    if err == CANCELLED or t.cancelled then
      t.status, t.err = "cancelled", "cancelled"
    else
      t.status = "error"
      t.err = debug.traceback(t.co, tostring(err))
      t.raw_err = err
      report(t, t.err)
    end
  end
  for _, cb in ipairs(t.callbacks) do
    local cok, cerr = pcall(cb, t)
    if not cok then report(t, "on_done callback: " .. tostring(cerr)) end
  end
  t.callbacks = {}
end

local function schedule(t)
  if t.queued or t.status ~= "running" then return end
  t.queued = true
  runq[#runq + 1] = t
end

local function resume(t)
  t.queued = false
  if t.status ~= "running" then return end
  if t.cancelled and not t.started then return finish(t, false, CANCELLED) end
  t.started = true
  M.resumed_at = core.now()
  local co = t.co
  local res = table.pack(coroutine.resume(co, table.unpack(t.args or {}, 1, t.args and t.args.n or 0)))
  t.args = nil
  if coroutine.status(co) == "dead" then
    finish(t, table.unpack(res, 1, res.n))
  elseif not res[1] then
    finish(t, false, res[2])
  elseif t.waiting == nil then
    schedule(t)          -- a bare yield: run again on the next step
  end
end

-- Tasks made runnable while draining wait for the next round, so one busy
-- task cannot starve the reactor. With a deadline (core.now() seconds),
-- resuming stops once it has passed (at least one task runs) and the rest
-- wait for the next step: a host's frame pays for a few tasks, not for all
-- of them at once.
local function run_queue(deadline)
  local q = runq
  runq = {}
  for i = 1, #q do
    if deadline and i > 1 and core.now() >= deadline then
      for j = #q, i, -1 do table.insert(runq, 1, q[j]) end
      return
    end
    resume(q[i])
  end
end

-- h had activity: resume the task waiting on it, or tell the blocking loop
local function wake(h)
  local w = waiters[h]
  if w == MAIN then
    main_ready[h] = true
  elseif w then
    waiters[h] = nil
    w.waiting = nil
    schedule(w)
  end
end

local function dispatch(ready)
  for i = 1, #ready do wake(ready[i]) end
end

-- Work a finalizer had to leave for later (executor/gc_queue.lua): run
-- before every step, never inside a finalizer.
local before = {}
--- Run fn before every step (executor/gc_queue.lua).
-- @local
function M.before_step(fn) before[#before + 1] = fn end

-- One step; budget (seconds) counts from `since` (core.now()), default
-- after the reactor's work. With `since`, the reactor's events stop at the
-- budget too (the first is always handled; the rest stay ready for the
-- next step).
local function step(timeout_ms, budget, since)
  for i = 1, #before do before[i]() end
  timeout_ms = timeout_ms or 0
  if #runq > 0 then timeout_ms = 0 end
  local ready, err = core.step(timeout_ms, since and since + budget or nil)
  if not ready then error(err, 0) end
  dispatch(ready)
  run_queue(budget and (since or core.now()) + budget)
  return nlive
end

--- Advance whatever is ready (`agentbox.step`).
-- Never blocks with 0; -1 waits for the next event.
-- @tparam[opt=0] integer timeout_ms milliseconds to wait for an event
-- @tparam[opt] number budget_ms bounds the time spent resuming tasks (the rest wait for the next step)
-- @treturn integer the number of live tasks
-- @raise when the reactor itself fails (a poll error)
function M.step(timeout_ms, budget_ms)
  return step(timeout_ms, budget_ms and budget_ms / 1000)
end

-- What agentbox_step (agentbox.h) calls once per host frame. Its budget
-- counts the whole step, the queued releases and the reactor's work (curl,
-- pipes) included: after the budget one task still runs, so a frame costs
-- at most the budget plus one task's resume (make host-demo: a resume that
-- starts a block is 0.2-0.35 ms, so 0.3 ms keeps a busy frame near 0.6 ms).
M.frame_budget_ms = 0.3
local function host_step(timeout_ms)
  return step(timeout_ms, M.frame_budget_ms / 1000, core.now())
end

--- 1 when a task is runnable without waiting, else 0 (the C host's agentbox_step).
-- @local
function M.runnable()
  return #runq > 0 and 1 or 0
end

--- The running task, nil outside a task.
-- @local
function M.current()
  local co = coroutine.running()
  return by_co[co]
end

--- Wait until handle h is ready (done, or has unread output).
-- @local
function M.wait(h)
  local t = M.current()
  if t then
    if t.cancelled then error(CANCELLED, 0) end
    if h:ready() then return end
    waiters[h] = t
    t.waiting = h
    coroutine.yield()
    waiters[h] = nil
    t.waiting = nil
    if t.cancelled then error(CANCELLED, 0) end
    return
  end
  if h:ready() then return end
  waiters[h] = MAIN
  main_ready[h] = nil
  while not main_ready[h] and not h:ready() do M.step(-1) end
  waiters[h] = nil
  main_ready[h] = nil
end

-- Long Lua work (extracting a 5 MB message, formatting 50 MB of tool
-- arguments) calls checkpoint() between chunks: inside a task, once the
-- current resume has run for M.slice seconds, it yields and carries on at the
-- next step, so no single resume holds the host's frame for long. Outside a
-- task (or inside a coroutine of the caller's own) it does nothing.
M.slice = 0.002
M.resumed_at = 0
--- Yield when the current resume has run for M.slice seconds.
-- @local
function M.checkpoint()
  local t = M.current()
  if not t or core.now() - M.resumed_at < M.slice then return end
  coroutine.yield()                 -- a bare yield: rescheduled for the next step
  if t.cancelled then error(CANCELLED, 0) end
end

--- Sleep inside a task (`agentbox.sleep`); the host keeps stepping.
-- Outside a task it blocks, stepping the reactor.
-- @tparam number seconds how long
function M.sleep(seconds)
  local tm <close> = core.timer(seconds)
  M.wait(tm)
end

-- A future: a value some other code provides later (a host's UI answering
-- a human-input prompt, say). wait() yields inside a task.
local Future = {}
Future.__index = Future

--- A value provided later (`agentbox.future`).
-- @treturn Future an unset future
function M.future() return setmetatable({ is_set = false }, Future) end

--- Run `fn(...)` as a task (`agentbox.spawn`): a coroutine on the reactor.
-- It starts at the next step. An error it raises never unwinds the host:
-- it is kept for @{Task:result} and passed to @{on_error}.
-- @tparam function fn the task's body
-- @param ... its arguments
-- @treturn Task the handle
-- @raise when fn is not a function
function M.spawn(fn, ...)
  if type(fn) ~= "function" then errors.misuse("agentbox.spawn: expected a function, got %s", type(fn)) end
  local t = setmetatable({ co = coroutine.create(fn), status = "running", args = table.pack(...),
                           callbacks = {} }, Task)
  by_co[t.co] = t
  live[t] = true
  nlive = nlive + 1
  schedule(t)
  return t
end

--- Step until every task is done (`agentbox.run`), or until `until_fn()` is true.
-- @tparam[opt] function until_fn checked before each step
function M.run(until_fn)
  while nlive > 0 do
    if until_fn and until_fn() then return end
    M.step(-1)
  end
end

--- A value some other code provides later (@{future}): a host's UI answering
-- a prompt frames later, say.
-- @type Future

--- Whether the value is set (the reactor's handle interface).
-- @local
function Future:ready() return self.is_set end

--- Whether the value is set.
-- @treturn boolean
function Future:done() return self.is_set end

--- Nothing to release (the reactor's handle interface).
-- @local
function Future:close() end

--- Provide the value; wakes whoever waits.
-- @param value the value
-- @treturn boolean false when it was already set (the value is kept)
function Future:set(value)
  if self.is_set then return false end
  self.is_set, self.value = true, value
  wake(self)
  return true
end

--- Wait for the value (yields inside a task).
-- Outside a task it steps the reactor until the value is set.
-- @return the value
function Future:wait()
  M.wait(self)
  return self.value
end

--- A task's handle (@{spawn}).
-- @type Task

--- Whether the task has ended (done, failed or cancelled).
-- @treturn boolean
function Task:done() return self.status ~= "running" end

--- The task's return values, or nil, message, code ("running", "cancelled", "error").
-- @return[1] ... the values its function returned
-- @return[2] nil
-- @treturn[2] string message "running", "cancelled", or the error with its traceback
-- @treturn[2] string code "running" (not finished), "cancelled", or "error" (its function raised;
-- @{Task:error} gives the raw value)
function Task:result()
  if self.status == "done" then return table.unpack(self.values, 1, self.values.n) end
  if self.status == "running" then return errors.fail("running", "running") end
  if self.status == "cancelled" then return errors.fail("cancelled", "cancelled") end
  return errors.fail("error", self.err)
end

--- The raw value the task's function raised (not a string with a traceback).
-- @return the error, nil when it did not raise
function Task:error() return self.raw_err end

--- Cancel it: kills its running process tree, aborts its request.
-- The task unwinds at its next wait; an agent's history stays as it was.
-- @treturn boolean false when it had already ended
function Task:cancel()
  if self.status ~= "running" then return false end
  self.cancelled = true
  local h = self.waiting
  if h then
    waiters[h] = nil
    self.waiting = nil
    pcall(h.close, h)       -- kills the process tree / aborts the request
  end
  schedule(self)
  return true
end

--- Call `cb(task)` when it ends (at once when it has).
-- An error in a cb called later is reported like a task error (@{on_error});
-- called at once, its error goes to the caller.
-- @tparam function cb the callback
-- @treturn Task self
-- @raise when cb is not a function
function Task:on_done(cb)
  if type(cb) ~= "function" then errors.misuse("agentbox task:on_done: expected a function(task), got %s", type(cb)) end
  if self.status ~= "running" then cb(self) else self.callbacks[#self.callbacks + 1] = cb end
  return self
end

--- The blocking form of an operation: inside a task call directly, outside
--- run it as a task to completion and rethrow what it raised (a cancelled
--- run returns nil, message, "cancelled").
-- @local
function M.sync(fn, ...)
  if M.current() then return fn(...) end
  local t = M.spawn(fn, ...)
  t.awaited = true
  while t.status == "running" do M.step(-1) end
  if t.status == "done" then return table.unpack(t.values, 1, t.values.n) end
  if t.status == "cancelled" then return errors.fail("cancelled", "agentbox: the operation was cancelled") end
  error(t.raw_err, 0)
end

--- The number of live tasks.
-- @local
function M.live() return nlive end

core.set_scheduler({ step = host_step, runnable = M.runnable })

return M
