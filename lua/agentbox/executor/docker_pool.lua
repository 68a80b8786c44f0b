--- DockerPool: warm containers kept ready for DockerExecutors (`agentbox.DockerPool`), experimental.
--
-- A pool keeps `size` containers started (warm: the block server is its main
-- process, connected) and refills in the background: each container is
-- started by a task on the reactor (agentbox.task), so a step never waits
-- for the daemon. `DockerExecutor{ pool = p }` takes one (a claim: no
-- Engine call when one is ready); `fresh = true` takes a never-used one for
-- every execute call and drops it after the call.
--
-- Each pooled container is an internal DockerExecutor (warm = true) made
-- with the pool's options, so it has what every executor has: a private
-- temporary work dir (0700, named so that a dead owner's is reaped) handed
-- to the sandbox user and bind-mounted at /workspace, the block server's
-- private directory, owner labels (plus `agentbox.pool`) for the reaper, a
-- finalizer that only queues its release. A claim hands that work dir over
-- with the container: an executor without work_dir makes it its temporary
-- work_dir (removed at close); one with a work_dir of its own (given, or
-- fresh) copies it in and out around each call (pool_copy.lua). See README
-- "Pools and fresh containers".
-- @module agentbox.executor.docker_pool
local core = require("agentbox.core")
local task = require("agentbox.task")
local errors = require("agentbox.errors")
local base = require("agentbox.executor.base")
local gc_queue = require("agentbox.executor.gc_queue")
local workspace = require("agentbox.executor.workspace")
local copy = require("agentbox.executor.pool_copy")
local DX = require("agentbox.executor.docker").DockerExecutor
local new_executor = require("agentbox.executor.docker").new

local M = {}
local WHAT = "agentbox.DockerPool"
M.MAX_SIZE = 64
-- Seconds a replacement waits before its container starts, unless taken
-- meanwhile: a container start is dockerd, containerd and runc busy on the
-- same cores as the block that the claim was for (on 2 vCPUs it cost that
-- first block ~85 ms; bench/docker_bench.lua pool)
M.REFILL_DELAY = 0.25
-- Run once in each new container, in the background: the first python3 of a
-- container is slow (its overlay's caches are cold: ~55 ms more on the
-- project VM's fuse-overlayfs), so the pool pays it, not the first block.
-- Its result is ignored (an image without python3 is fine).
M.WARM_UP = { "python3", "-c", "pass" }
local SINK = { add = function() end, budget = function() return 4096 end }

-- DockerExecutor's options that make its container, so a pool's and not a
-- pooled executor's. An option of the warm server added later (preload,
-- stateful) goes in this list: the pool then passes it through.
M.CONTAINER = { "image", "network", "read_only", "user", "memory", "cpus", "pids_limit", "tmpfs", "mounts",
                "docker_host", "env", "on_progress", "preload", "stateful" }

local DockerPool = {}
DockerPool.__index = DockerPool

function M.is_pool(v) return getmetatable(v) == DockerPool end

local function container_options()
  local names = {}
  for _, k in ipairs(M.CONTAINER) do
    if DX._options[k] or base.COMMON[k] then names[#names + 1] = k end
  end
  return names
end

-- A misuse raised by DockerExecutor's checks, said in the name of `what`.
local function reraise(err, what)
  local msg = tostring(err):match("agentbox%.DockerExecutor: (.*)$") or tostring(err)
  errors.misuse("%s: %s", what, msg)
end

local seq = 0

-- one pooled container: an internal executor, started by a task
local function start_slot(pool, slot)
  local ex = slot.ex
  local after = core.now() + (slot.delay or 0)
  while not slot.reserved and not pool.closed and core.now() < after do task.sleep(0.02) end
  local ok, err = true, nil
  if slot.reserved or not pool.closed then ok, err = pcall(ex.start, ex) end   -- closed meanwhile: none made
  local wanted = not slot.dropped and (slot.reserved or not pool.closed)
  if ok and wanted and ex.container_id then pcall(ex._run, ex, M.WARM_UP, nil, SINK, 10) end
  if not ok then
    slot.err = tostring(err)
    pool.failures, pool.last_error = pool.failures + 1, slot.err
  end
  if slot.dropped or (not slot.reserved and (not ok or pool.closed)) then
    slot.closing = true   -- no longer to be taken while its close waits
    pcall(ex.close, ex)
  elseif not slot.reserved then
    pool.ready[#pool.ready + 1] = slot
  end
  pool.starting[slot] = nil   -- only now: pool:close() waits for this removal too
  slot.fut:set(true)
end

local function new_slot(pool, delay)
  local opts = {}
  for k, v in pairs(pool.raw) do opts[k] = v end
  local ok, ex = pcall(new_executor, opts)
  if not ok then reraise(ex, pool.what) end
  ex._labels = { ["agentbox.pool"] = pool.id }
  seq = seq + 1
  local slot = { ex = ex, fut = task.future(), seq = seq, delay = delay }
  pool.starting[slot] = true
  task.spawn(start_slot, pool, slot)
  return slot
end

-- the oldest container being started that nobody has taken
local function oldest_starting(pool)
  local best
  for s in pairs(pool.starting) do
    if not s.reserved and not s.closing and (not best or s.seq < best.seq) then best = s end
  end
  return best
end

-- start what is missing for `size` ready or on their way (delay: seconds
-- before they start, unless taken)
function DockerPool:_refill(delay)
  if self.closed then return end
  local have = #self.ready
  for s in pairs(self.starting) do if not s.reserved then have = have + 1 end end
  for _ = have + 1, self.size do new_slot(self, delay) end
end

-- Take a container: a ready one, else one on its way, else a new one. Never
-- waits: the taker waits on slot.fut (the only one to: one waiter per handle).
function DockerPool:_take()
  local slot = table.remove(self.ready, 1) or oldest_starting(self) or new_slot(self)
  slot.reserved = true
  self:_refill(M.REFILL_DELAY)
  return slot
end

local function make(raw, size, what)
  local id = core.md5(table.concat({ core.hostname(), core.owner() or "", seq, core.now(), math.random() }, " "))
  local pool = setmetatable({ size = size, id = id:sub(1, 12), raw = raw, what = what, ready = {}, starting = {},
                              failures = 0, closed = false }, DockerPool)
  local ok, o = pcall(base.check, raw, DX._options, "agentbox.DockerExecutor")
  if not ok then reraise(o, what) end
  pool.o = o
  pool:_refill()
  return pool
end

--- DockerPool's options: `size` and DockerExecutor's container options
-- (@{agentbox.executor.docker.DockerExecutorOptions}); the others are each executor's.
-- @table DockerPoolOptions
-- @tfield integer size containers kept ready, 1 to 64
-- @tfield[opt] string image as DockerExecutor
-- @tfield[opt] string network as DockerExecutor
-- @tfield[opt] boolean read_only as DockerExecutor
-- @tfield[opt] string user as DockerExecutor
-- @tfield[opt] string|integer|false memory as DockerExecutor
-- @tfield[opt] number|false cpus as DockerExecutor
-- @tfield[opt] integer|false pids_limit as DockerExecutor
-- @tfield[opt] string|table|false tmpfs as DockerExecutor
-- @tfield[opt] table mounts as DockerExecutor
-- @tfield[opt] string docker_host as DockerExecutor (a local daemon: warm containers)
-- @tfield[opt] table env the containers' added environment
-- @tfield[opt] function on_progress image pull progress

--- A pool of ready warm containers (`agentbox.DockerPool{ size = n, ... }`), experimental.
-- Needs what `warm = true` needs (a local daemon, agentbox running as root).
-- Its containers start at once, in the background.
-- @tparam DockerPoolOptions opts its options
-- @treturn DockerPool the pool
-- @raise on an unknown option or a bad value (naming it)
function M.new(opts)
  gc_queue.drain()
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then errors.misuse("%s: options must be a table", WHAT) end
  local names = container_options()
  local known = { size = true }
  for _, k in ipairs(names) do known[k] = true end
  for k in pairs(opts) do
    if not known[k] then
      local list = { "size" }
      for _, n in ipairs(names) do list[#list + 1] = n end
      table.sort(list)
      errors.misuse("%s: unknown option '%s' (known: %s; the other options of DockerExecutor are the executor's)",
        WHAT, tostring(k), table.concat(list, ", "))
    end
  end
  local size = opts.size
  if math.type(size) ~= "integer" or size < 1 or size > M.MAX_SIZE then
    errors.misuse("%s: size must be an integer from 1 to %d (the containers kept ready), got %s", WHAT, M.MAX_SIZE,
      tostring(size))
  end
  local raw = { warm = true }
  for k, v in pairs(opts) do if k ~= "size" then raw[k] = v end end
  return make(raw, size, WHAT)
end

--- A pool made by `agentbox.DockerPool(opts)`. Its fields: `size`; `id`, the
-- value of its containers' `agentbox.pool` label.
-- @type DockerPool

--- How many containers are ready now (started, not taken).
-- @treturn integer
function DockerPool:available() return #self.ready end

--- Wait until `size` containers are ready. Blocking outside a task, yields inside one.
-- @treturn[1] true
-- @return[2] nil
-- @treturn[2] string message a container could not be started
-- @treturn[2] string code "docker"
-- @raise after close
function DockerPool:fill()
  if self.closed then errors.misuse("%s: fill after close", WHAT) end
  return task.sync(function()
    local failures = self.failures
    while #self.ready < self.size do
      if self.closed then return errors.fail("docker", "%s: closed while filling", WHAT) end
      if self.failures > failures then
        return errors.fail("docker", "%s: a container could not be started: %s", WHAT, tostring(self.last_error))
      end
      self:_refill()
      task.sleep(0.005)   -- polled: the taker alone waits on a container's future
    end
    return true
  end)
end

--- Remove every container the pool holds (ready, or still starting) and
--- their directories; also `<close>`. Containers already taken are their
--- executors' (removed when those close). Idempotent.
-- @treturn[1] true
-- @return[2] nil
-- @treturn[2] string message what failed
-- @treturn[2] string code (@{agentbox.errors.CODES})
function DockerPool:close()
  if self.closed and not next(self.starting) and #self.ready == 0 then return true end
  self.closed = true
  gc_queue.drain()
  return task.sync(function()
    -- a container still starting is removed by its task once started
    -- (taken ones too, when their executor dropped them): wait for those
    while next(self.starting) do task.sleep(0.005) end
    local slots = self.ready
    self.ready = {}
    local ok, err, code = true, nil, nil
    for _, s in ipairs(slots) do
      local sok, serr, scode = s.ex:close()
      if not sok and ok then ok, err, code = nil, serr, scode end
    end
    return ok, err, code
  end)
end
DockerPool.__close = DockerPool.close
-- collected: only a mark; its ready containers are internal executors,
-- collected with it, whose own finalizers queue their release
DockerPool.__gc = function(self) self.closed = true end
function DockerPool:__tostring() return ("agentbox.DockerPool(%s)%s"):format(self.id, self.closed and " (closed)" or "") end

---------------------------------------------------------------- a pooled DockerExecutor

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- a taken container nobody will use: its release sent now, not waited for
local function discard(ex)
  if ex.closed then return end
  ex.closed = true
  local ok, send = pcall(ex._release_send, ex)
  gc_queue.release({ send = ok and send or nil, after = workspace.releaser(ex) })
end

-- let go of the executor's container: dropped by its task if still starting
local function let_go(self, now)
  local claim, ex = self._claim, self._slot
  self._claim, self._slot, self.container_id = nil, nil, nil
  if claim and not claim.fut.is_set then
    claim.dropped = true
    return true
  end
  if not ex then return true end
  if now then return ex:close() end
  discard(ex)
  return true
end

-- DockerExecutor._setup's hook (pool or fresh): checks that the options
-- given agree with the pool's, and returns the options the executor runs
-- with (the pool's container options). Without work_dir and not fresh, the
-- container is taken now: its work dir becomes the executor's.
function M.setup(self, o, fail)
  local raw, pool = o._raw, o.pool
  local bad = {}
  if raw.warm == false then bad[#bad + 1] = "warm" end
  if raw.transfer ~= nil and raw.transfer ~= "bind" then bad[#bad + 1] = "transfer" end
  if raw.container_name ~= nil then bad[#bad + 1] = "container_name" end
  if raw.auto_remove == false then bad[#bad + 1] = "auto_remove" end
  if pool then
    if pool.closed then fail("pool: the pool is closed") end
    for _, k in ipairs(container_options()) do
      if raw[k] ~= nil and not same(o[k], pool.o[k]) then bad[#bad + 1] = k end
    end
  end
  if #bad > 0 then
    fail(("%s conflict%s with the pool's container options: a pooled container is made by its pool, so give "
      .. "them to agentbox.DockerPool{ ... } (or leave them out here)"):format(table.concat(bad, ", "),
      #bad == 1 and "s" or ""))
  end
  if not pool then
    -- fresh without a pool: an internal pool of one, made with this executor's options
    local praw = { warm = true }
    for _, k in ipairs(container_options()) do praw[k] = raw[k] end
    pool = make(praw, 1, "agentbox.DockerExecutor")
    self._own_pool = pool
  end
  self._pool, self._fresh = pool, o.fresh
  self._copy = o.fresh or o.work_dir ~= nil
  local merged = {}
  for k, v in pairs(o) do merged[k] = v end
  for _, k in ipairs(container_options()) do merged[k] = pool.o[k] end
  merged.warm, merged.transfer, merged.container_name, merged.auto_remove = true, "bind", nil, true
  if not self._copy then
    local slot = pool:_take()
    self._claim, self._slot = slot, slot.ex
    self._adopt_ws, slot.ex._ws = slot.ex._ws, nil   -- workspace.attach takes it
  end
  return merged
end

-- _ensure: a container from the pool (waiting for it when none was ready).
function M.ensure(self)
  if not self._slot then
    if self._pool.closed then error("DockerExecutor: its pool was closed: no container to run in", 0) end
    local slot = self._pool:_take()
    self._claim, self._slot = slot, slot.ex
  end
  local claim = self._claim
  if claim then
    if not claim.fut.is_set then claim.fut:wait() end
    self._claim = nil
    if claim.err then
      -- with its own work dir the container is the pool's to replace; a
      -- work dir handed over starts its next container the usual way
      if self._copy then let_go(self) end
      error(claim.err, 0)
    end
  end
  local ex = self._slot
  ex:_ensure()   -- replaced since (restart, a dead server): started cold, for the same directory
  self.container_id, self.container_name_used, self.run_user = ex.container_id, ex.container_name_used, ex.run_user
  self.warnings, self.cold_start = ex.warnings, ex.cold_start
end

-- _run: the block goes to the container's executor, with this executor's terms.
function M.run(self, argv, prep, out, timeout)
  M.ensure(self)
  local ex = self._slot
  ex.on_output, ex.quota, ex.grace = self.on_output, self.quota, self.grace
  local r = ex:_run(argv, prep, out, timeout)
  self.container_id = ex.container_id
  return r
end

-- _execute: with a work_dir of its own, copied in before the call and
-- back after it; fresh: the container is dropped after the call.
function M.execute(self, blocks, inner)
  if not self._copy or #blocks == 0 then return inner(self, blocks) end
  M.ensure(self)
  local ex = self._slot
  local user_ws, slot_ws = self._ws, ex._ws
  if not self._chowned and core.geteuid() == 0 and not user_ws:created() then
    -- files copied back belong to work_dir's owner, not to root
    local st = user_ws:stat()
    if st then user_ws:chown(st.uid, st.gid) end
    self._chowned = true
  end
  local before, note_in = copy.into(user_ws, slot_ws, self._slot_used)
  self._ws, self._user_ws = slot_ws, user_ws   -- the listings: the container's directory
  local ok, res = pcall(inner, self, blocks)
  self._ws, self._user_ws = user_ws, nil
  self._slot_used = not self._fresh
  local q = self.quota
  local cok, note_out = pcall(copy.back, slot_ws, user_ws, before, q and q.bytes > 0 and q.bytes or nil)
  if not cok then note_out = "copying back into work_dir failed: " .. tostring(note_out) end
  if self._fresh then let_go(self) end
  if not ok then error(res, 0) end
  if type(res) == "table" then
    local notes = {}
    for _, n in pairs({ res.output_files_incomplete or false, note_in or false, note_out or false }) do
      if n then notes[#notes + 1] = n end
    end
    if #notes > 0 then res.output_files_incomplete = table.concat(notes, "; ") end
  end
  return res
end

-- _write during a copied call: a code file goes into work_dir first, so a
-- name through a link there is refused as without a pool ("Filename is not
-- in the workspace"; the copy in skips links), then into the container's
-- directory; the path is work_dir's (code_file, "Code saved to")
function M.write(self, prep, text)
  local path, err = workspace.write(self._user_ws, prep.rel, text)
  if not path then return nil, err end
  local ok, werr = workspace.write(self._ws, prep.rel, text)
  if not ok then return nil, werr end
  return path
end

-- restart: the next call gets another container (a work dir handed over
-- keeps its container's executor: a cold start for the same directory).
function M.restart(self)
  if self._copy then
    self._slot_used = false
    return let_go(self)
  end
  local claim = self._claim
  if claim and not claim.fut.is_set then return true end
  local ex = self._slot
  if not ex then return true end
  return ex:restart()
end

-- _release (close): the container and its directories; an internal pool.
function M.release(self)
  local ok, err, code = let_go(self, true)
  local own = self._own_pool
  self._own_pool = nil
  if own then
    local pok, perr, pcode = own:close()
    if ok and not pok then ok, err, code = nil, perr, pcode end
  end
  return ok, err, code
end

return M
