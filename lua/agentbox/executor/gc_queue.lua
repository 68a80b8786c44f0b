-- Releases that collected executors leave behind (a container to remove, a
-- temporary work_dir to destroy). A finalizer may run anywhere: inside the
-- reactor's step, in the middle of a task, between two statements of the
-- scheduler; so an executor's __gc only enqueues here, and the queue is
-- drained outside finalizers: before every scheduler step (task.before_step),
-- at the next executor operation (executor/base.lua), and when the lua_State
-- closes, as luv's loop_gc does, by a sentinel whose finalizer waits at most
-- CLOSE_BUDGET seconds. The sentinel is created after the core context and
-- before any executor, and Lua finalizes in reverse order of creation, so at
-- lua_close it runs after every executor's __gc and before the context's.
--
-- A job is { send = function() -> core handle | nil, after = function() }:
-- send starts the release and returns what to wait for (an HTTP request, a
-- process); after runs once that is done, or abandoned at close. Neither
-- may raise into the scheduler: failures are dropped, and what a dead owner
-- leaves is reaped by the next executor start (its container by label, its
-- work_dir by name).
local core = require("agentbox.core")
local task = require("agentbox.task")

local M = {}

--- Seconds lua_close may wait for the queued releases.
M.CLOSE_BUDGET = 3

-- One queue per lua_State, in the registry: a module loaded again (busted
-- resets package.loaded) drains what the previous one queued, and there is
-- only ever one sentinel.
local KEY = "agentbox.executor.gc_queue"
local registry = debug.getregistry()
local Q = registry[KEY]
if not Q then
  Q = { pending = {}, inflight = {}, held = {} }
  registry[KEY] = Q
end

local function run_after(job)
  if job.after then pcall(job.after) end
end

-- Send what is pending and finish what is done; never waits. A handle
-- closed under us (lua_close finalizes the handles made after the sentinel
-- before it) is sent again, once.
local function pump()
  local pending = Q.pending
  if #pending > 0 then
    Q.pending = {}
    for _, job in ipairs(pending) do
      local ok, h = false, nil
      if job.send then ok, h = pcall(job.send) end
      if ok and h then Q.inflight[#Q.inflight + 1] = { job = job, h = h } else run_after(job) end
    end
  end
  if #Q.inflight == 0 then return end
  local keep = {}
  for _, f in ipairs(Q.inflight) do
    local ok, done = pcall(f.h.done, f.h)
    if ok and not done then
      keep[#keep + 1] = f
    elseif ok then
      pcall(f.h.close, f.h)
      run_after(f.job)
    elseif not f.job.resent then
      f.job.resent = true
      Q.pending[#Q.pending + 1] = f.job
    else
      run_after(f.job)
    end
  end
  Q.inflight = keep
end

--- Is anything queued or on its way?
function M.busy()
  return #Q.pending > 0 or #Q.inflight > 0
end

--- Queue a release. The only thing a finalizer may call: no I/O.
function M.enqueue(job)
  Q.pending[#Q.pending + 1] = job
end

--- Outside finalizers: send what is queued, finish what is done.
function M.drain()
  if #Q.pending > 0 or #Q.inflight > 0 then pump() end
end

--- Queue a release and send it now (not from a finalizer): for releases
--- that must not wait, such as a cancelled task's container.
function M.release(job)
  M.enqueue(job)
  pump()
end

--- Keep v (a workspace) alive until let_go: its own finalizer must not close
--- it before the executor's queued release destroys it.
function M.hold(v) Q.held[v] = true end
function M.let_go(v) Q.held[v] = nil end

-- lua_close: drive the reactor directly (no task may resume now) until the
-- queue is empty or the budget is spent; what is left is abandoned to the
-- next start's reaper.
local function at_close()
  local deadline = core.now() + M.CLOSE_BUDGET
  pump()
  while M.busy() and core.now() < deadline do
    local ok = pcall(core.step, math.max(1, math.min(50, math.ceil((deadline - core.now()) * 1000))))
    if not ok then break end
    pump()
  end
  for _, f in ipairs(Q.inflight) do
    pcall(f.h.close, f.h)
    run_after(f.job)
  end
  for _, job in ipairs(Q.pending) do run_after(job) end
  Q.pending, Q.inflight = {}, {}
end

if not Q.sentinel then
  Q.sentinel = setmetatable({}, { __gc = at_close })
end

task.before_step(M.drain)

return M
