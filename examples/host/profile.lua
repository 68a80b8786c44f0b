-- What a slow agentbox_step spends its time on (AGENTBOX_HOST_PROFILE=ms,
-- examples/host/chats.lua): a diagnostic for the host demo, not part of
-- agentbox. Installed before agentbox is loaded, it wraps the core's
-- functions and handle methods, lua-cjson's instances, the agentbox
-- modules' exported functions and coroutine.resume, and charges the time
-- between two such events (wall and CPU) to the innermost wrapped function
-- running in the current coroutine ("self time"; code no wrapper sees is
-- charged to its nearest wrapped caller, or to the task itself). Time a
-- coroutine spends suspended is charged to nobody. Each scheduler step
-- longer than the threshold keeps its breakdown and the tasks it resumed.
-- The wrappers cost about a microsecond per call: run it to find where the
-- time goes, and measure without it.
local M = {}

local core            -- agentbox.core, once loaded
local clock = os.clock
local now             -- core.now
local stacks = setmetatable({}, { __mode = "k" })   -- coroutine -> { names }
local labels = setmetatable({}, { __mode = "k" })   -- coroutine -> "chat 3"
local step            -- the step being measured: { self = { [name] = { w, c, n } }, resumed = { ... } }
local last_w, last_c = 0, 0
local slow, all_steps, agg = {}, 0, {}
local threshold = 1e-3
-- garbage collection cycles finished so far (a finalizer that re-arms itself)
local gc_cycles = 0
local function gc_sentinel()
  setmetatable({}, { __gc = function() gc_cycles = gc_cycles + 1; gc_sentinel() end })
end

local function stack_of(co)
  local st = stacks[co]
  if not st then
    st = {}
    stacks[co] = st
  end
  return st
end

-- charge the time since the last event to what runs now
local function charge()
  local w, c = now(), clock()
  if step then
    local co, main = coroutine.running()
    local st = stacks[co]
    local top = st and st[#st] or (main and "scheduler (task.lua)" or ("task code: " .. (labels[co] or "?")))
    local e = step.self[top]
    if not e then
      e = { 0, 0, 0 }
      step.self[top] = e
    end
    e[1], e[2] = e[1] + (w - last_w), e[2] + (c - last_c)
  end
  last_w, last_c = w, c
end

local function count(name)
  if not step then return end
  local e = step.self[name]
  if not e then
    e = { 0, 0, 0 }
    step.self[name] = e
  end
  e[3] = e[3] + 1
end

local function leave(st, ok, ...)
  charge()
  st[#st] = nil
  if not ok then error((...), 0) end
  return ...
end

local function wrap(name, f)
  return function(...)
    charge()
    count(name)
    local st = stack_of(coroutine.running())
    st[#st + 1] = name
    return leave(st, pcall(f, ...))
  end
end

local SKIP = { now = true, step = true, set_scheduler = true }

local function wrap_table(t, prefix, skip)
  for k, v in pairs(t) do
    if type(v) == "function" and type(k) == "string" and not (skip and skip[k]) then
      t[k] = wrap(prefix .. k, v)
    end
  end
end

-- where a suspended coroutine waits: its innermost frame in agentbox's code
local function where(co)
  for level = 0, 40 do
    local info = debug.getinfo(co, level, "Sl")
    if not info then break end
    local src = info.short_src
    if not src:find("task.lua", 1, true) and not src:find("profile.lua", 1, true) and info.currentline > 0 then
      return (src:match("lua/(agentbox/.*)$") or src) .. ":" .. info.currentline
    end
  end
  return "?"
end

local light = false
-- every resume: { label, from, to, w, c } for the segment table of the report
local segments = {}

-- lua-cjson's instances (the modules make private ones with new())
local function wrap_cjson(modname, prefix)
  local lib = require(modname)
  local new = lib.new
  lib.new = function()
    local j = new()
    wrap_table(j, prefix, { new = true })
    return j
  end
end

local function watch_resumes()
  local resume = coroutine.resume
  coroutine.resume = function(co, ...) -- luacheck: ignore 122 (the point: every task resume is seen)
    charge()
    local rec = step and { label = labels[co] or "task", from = where(co), w0 = last_w, c0 = last_c }
    local function back(...)
      charge()
      if rec then
        rec.to = coroutine.status(co) == "dead" and "(ended)" or where(co)
        rec.w, rec.c = last_w - rec.w0, last_c - rec.c0
        step.resumed[#step.resumed + 1] = rec
        segments[#segments + 1] = rec
      end
      return ...
    end
    return back(resume(co, ...))
  end
end

--- spec: "ms" (wrap everything) or "ms:light" (only core.step and the
--- resumes: times close to an unprofiled run's)
function M.install(spec)
  local ms, mode = tostring(spec):match("^([%d.]*)(.*)$")
  light = mode == ":light"
  threshold = (tonumber(ms) or 1) / 1000
  gc_sentinel()
  if not light then
    wrap_cjson("cjson", "cjson.")
    wrap_cjson("cjson.safe", "cjson.safe.")
  end
  core = require("agentbox.core")
  now = core.now
  core.step = wrap("core.step (epoll, curl, pipes)", core.step)
  if not light then wrap_table(core, "core.", SKIP) end
  watch_resumes()
end

-- the handles' methods, once their metatables exist (made by the first
-- constructor of each kind)
local MTS = { "agentbox.timer", "agentbox.proc", "agentbox.http", "agentbox.spawnconn", "agentbox.workspace" }
local function wrap_methods()
  local reg = debug.getregistry()
  for _, mt in ipairs(MTS) do
    local m = reg[mt]
    if type(m) == "table" and type(m.__index) == "table" and not rawget(m, "__profiled") then
      rawset(m, "__profiled", true)
      wrap_table(m.__index, (mt:gsub("^agentbox%.", "")) .. ":")
    end
  end
end

-- after agentbox is loaded: its modules' functions, and the scheduler's step
function M.after_load()
  local reg = debug.getregistry()
  local skip = { current = true, checkpoint = true, step = true, runnable = true, live = true }
  for name, mod in pairs(light and {} or package.loaded) do
    if type(name) == "string" and name:find("^agentbox%.") and name ~= "agentbox.core" and type(mod) == "table" then
      wrap_table(mod, (name:gsub("^agentbox%.", "")) .. ".", skip)
      for k, v in pairs(mod) do   -- executor classes
        if type(v) == "table" and type(k) == "string" and (k:find("Executor$") or k == "Base") then
          wrap_table(v, k .. ":", { __index = true, __close = true, __gc = true })
        end
      end
    end
  end
  local sched = reg["agentbox.scheduler"]
  local inner = sched.step
  sched.step = function(ms)
    if not light then wrap_methods() end
    step = { self = {}, resumed = {} }
    local w0, c0 = now(), clock()
    local g0, k0 = gc_cycles, collectgarbage("count")
    last_w, last_c = w0, c0
    local live = inner(ms)
    charge()
    local w, c = last_w - w0, last_c - c0
    all_steps = all_steps + 1
    if c >= threshold or w >= 4 * threshold then
      step.w, step.c, step.n = w, c, all_steps
      step.gc, step.kb0, step.kb1 = gc_cycles - g0, k0, collectgarbage("count")
      slow[#slow + 1] = step
      for k, e in pairs(step.self) do
        local a = agg[k] or { 0, 0, 0 }
        agg[k] = a
        a[1], a[2], a[3] = a[1] + e[1], a[2] + e[2], a[3] + e[3]
      end
    end
    step = nil
    return live
  end
end

function M.label(co, text) labels[co] = text end

local function top(self, n)
  local list = {}
  for k, e in pairs(self) do list[#list + 1] = { k, e[1], e[2], e[3] } end
  table.sort(list, function(a, b) return a[2] > b[2] end)
  local out = {}
  for i = 1, math.min(n, #list) do
    local e = list[i]
    out[#out + 1] = ("      %-52s %7.3f ms wall %7.3f ms cpu  %d calls"):format(e[1], e[2] * 1e3, e[3] * 1e3, e[4])
  end
  return table.concat(out, "\n")
end

function M.report()
  local out = { ("profile: %d of %d scheduler steps took %.1f ms of CPU or %.1f ms of wall time or more; %d gc cycles"
    .. " in all, heap now %.0f KB"):format(#slow, all_steps, threshold * 1e3, 4 * threshold * 1e3, gc_cycles,
                                          collectgarbage("count")) }
  for _, s in ipairs(slow) do
    out[#out + 1] = ("  step %d: %.3f ms wall, %.3f ms cpu; heap %.0f -> %.0f KB, %d gc cycles ended"):format(
      s.n, s.w * 1e3, s.c * 1e3, s.kb0, s.kb1, s.gc)
    for _, r in ipairs(s.resumed) do
      out[#out + 1] = ("    resumed %s: %.3f ms wall %.3f ms cpu, from %s to %s"):format(r.label, r.w * 1e3, r.c * 1e3,
                                                                                         r.from, r.to)
    end
    out[#out + 1] = top(s.self, tonumber(os.getenv("AGENTBOX_HOST_PROFILE_TOP")) or 8)
  end
  out[#out + 1] = "  all slow steps together:"
  out[#out + 1] = top(agg, 25)
  -- every resume, grouped by the code it ran (from where it waited to where it waits next)
  local kinds, order = {}, {}
  for _, r in ipairs(segments) do
    local key = r.from .. " -> " .. r.to
    local k = kinds[key]
    if not k then
      k = { key = key, c = {} }
      kinds[key] = k
      order[#order + 1] = k
    end
    k.c[#k.c + 1] = r.c
  end
  for _, k in ipairs(order) do
    table.sort(k.c)
    k.max, k.med, k.sum = k.c[#k.c], k.c[(#k.c + 1) // 2], 0
    for _, c in ipairs(k.c) do k.sum = k.sum + c end
  end
  table.sort(order, function(a, b) return a.max > b.max end)
  out[#out + 1] = ("  resumes of the measured steps (%d), by the code they ran, CPU median / max / total:"):format(#segments)
  for i = 1, math.min(20, #order) do
    local k = order[i]
    out[#out + 1] = ("    %4d x %6.3f / %6.3f / %7.3f ms  %s"):format(#k.c, k.med * 1e3, k.max * 1e3, k.sum * 1e3, k.key)
  end
  return table.concat(out, "\n")
end

return M
