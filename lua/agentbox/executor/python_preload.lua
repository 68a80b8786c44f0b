-- Preloaded Python (the `preload` option; issue 11's first step, for
-- LocalExecutor): a template interpreter imports the modules once, and each
-- python block is a fork of it. The template is a helper,
-- agentbox_preload.py, and each block's program its client,
-- agentbox_client.py, both shipped next to this file (make install copies
-- the helpers with the executor's modules; python_helper.lua finds them
-- beside its own source at run time). The template's header explains how
-- the block's whole tree stays under supervision although the block is the
-- template's descendant, not the supervisor's.
--
-- The executor's side:
--   M.check(v, what)               the option: nil, or a list of module names
--   M.argv(self, python, file)     -> the client's argv (starts the template
--                                     on first use) | nil, message
--   M.outcome(self, r)             after the client ran: "retry" (no block ran,
--                                     the template is replaced), "lost" (the block's
--                                     process died with the template: the
--                                     message to add) or nil
--   M.stop(self, wait)             ends the template (close, or a dead one); wait:
--                                     until its whole tree is dead
--   M.template(self, python)       starts it now (or waits for it) -> t | nil, message
--
-- An executor may run the template elsewhere: self._preload_helper is the
-- helper's path as its programs see it, self:_preload_spawn(argv) starts
-- the template and returns its streaming handle (DockerExecutor's block
-- server, executor/docker_preload.lua).
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local common = require("agentbox.executor.common")
local helper = require("agentbox.executor.python_helper")

local M = {}

-- the client dies of these (agentbox_client.py LOST, UNAVAILABLE; Linux numbers)
local LOST, UNAVAILABLE = 10, 12

M.HELPER = helper.path("agentbox_preload.py")

M.LOST_LINE = "\nagentbox: the preloaded Python template died during this block (the block was killed with it);"
  .. " a new template starts for the next block\n"

function M.check(v, what)
  if v == nil then return nil end
  local ok = type(v) == "table"
  if ok then
    for k, name in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > #v or type(name) ~= "string" or not name:match("^[%w_.]+$") then
        ok = false
      end
    end
  end
  if not ok then
    errors.misuse("%s: preload must be a list of module names (such as { \"pandas\", \"numpy\" })", what)
  end
  if #v == 0 then return nil end
  return table.move(v, 1, #v, 1, {})
end

-- Tasks that wait for the template's start: one future each (a handle
-- has one waiter at a time in task.lua).
local function wait_ready(t)
  if t.ready then return end
  local f = task.future()
  t.waiting[#t.waiting + 1] = f
  f:wait()
end

local function set_ready(t)
  t.ready = true
  for _, f in ipairs(t.waiting) do f:set(true) end
  t.waiting = {}
end

function M.stop(self, wait)
  local t = self._preload_tpl
  self._preload_tpl = nil
  if t then
    if not t.ready then
      t.err = t.err or "agentbox: the preloaded Python template was stopped"
      set_ready(t)
    elseif wait and not t.proc:done() then
      -- what a lost block left under the template (its session killed by
      -- the code) dies with the template's tree before execute returns,
      -- not a moment later
      t.proc:kill()
      pcall(function()
        repeat task.wait(t.proc) t.proc:read() until t.proc:done()
      end)
    end
    pcall(t.proc.close, t.proc)
  end
end

-- The template's name once it is ready (its imports are done), or its end.
local function await_ready(t)
  local name, r = helper.await_ready(t.proc)
  if name then return name end
  return nil, ("agentbox: the preloaded Python template failed to start (preload = { %s }):\n%s")
    :format(table.concat(t.modules, ", "), r.stderr ~= "" and r.stderr or r.output)
end

local function start(self, python)
  -- the template's imports may take as long as a block may run; SIGALRM
  -- ends a template that takes longer
  local argv = { python, self._preload_helper or M.HELPER, "serve", tostring(math.ceil(self.timeout)) }
  table.move(self.preload, 1, #self.preload, #argv + 1, argv)
  local proc, err
  if self._preload_spawn then
    -- DockerExecutor: a resident of its block server (executor/docker_preload.lua)
    proc, err = self:_preload_spawn(argv)
  else
    proc, err = core.spawn{ argv = argv, cwd = self.work_dir, env = self.env, grace = self.grace,
                            max_output = 65536, stream = true, sup = common.sup_path(),
                            nice = self.nice, seccomp = true, no_fallocate = M.no_fallocate(self), quota = false }
  end
  if not proc then return nil, "agentbox: starting the preloaded Python template: " .. tostring(err) end
  local t = { proc = proc, ready = false, waiting = {}, python = python, modules = self.preload }
  self._preload_tpl = t
  local ok, name, why = pcall(await_ready, t)
  if not ok then
    t.err = tostring(name)
    M.stop(self)
    error(name, 0)
  end
  t.name, t.err = name, why
  set_ready(t)
  if not name then M.stop(self) end
  return t
end

local function template(self, python)
  local t = self._preload_tpl
  -- died between blocks (or the interpreter changed): a new one
  if t and (t.proc:done() or t.python ~= python) and t.ready then
    M.stop(self)
    t = nil
  end
  if not t then
    local err
    t, err = start(self, python)
    if not t then return nil, err end
  end
  wait_ready(t)
  if not t.name then return nil, t.err end
  return t
end

M.template = template

-- The template's seccomp filter is its blocks': with a quota, fallocate is
-- refused as for any block under one (src/seccomp.c), although the
-- template itself runs without the quota's watch.
function M.no_fallocate(self)
  return self.quota ~= nil and self.quota ~= false
end

function M.argv(self, python, file)
  local t, err = template(self, python)
  if not t then return nil, err end
  return helper.client_argv(python, t.name, self.grace, file)
end

function M.outcome(self, r)
  if r.signal ~= LOST and r.signal ~= UNAVAILABLE then return nil end
  M.stop(self, r.signal == LOST)
  if r.signal == UNAVAILABLE then return "retry" end
  return "lost"
end

return M
