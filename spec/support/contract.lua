-- The executor contract: every executor kind runs the same table-driven
-- cases. A spec file writes its cases once:
--
--   local C = require("spec.support.contract")
--   C.each("workspace attacks", function(E)
--     E.it("refuses a planted link", function()
--       local ex <close> = E.new{ timeout = 5 }    -- work_dir: a fresh temp dir
--       ...
--     end)
--   end)
--
-- and they run once per kind in KINDS. A new executor joins by adding a row
-- here; it cannot ship without passing every contract case. Docker cases
-- are pending when no daemon answers, and fail under CI=true.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")

local M = {}

M.IMAGE = os.getenv("AGENTBOX_SPEC_IMAGE") or "agentbox/sandbox:latest"

local reachable, why
local function docker_reachable()
  if reachable == nil then
    reachable, why = docker.available()
    reachable = reachable and true or false
  end
  return reachable, why
end

-- busted's describe/it/pending live in the spec file's environment, not in
-- _G where this module runs: take them from the nearest caller that has them.
local function busted_env(field)
  for level = 3, 50 do
    local info = debug.getinfo(level, "f")
    if not info then break end
    for i = 1, 255 do
      local name, val = debug.getupvalue(info.func, i)
      if not name then break end
      if name == "_ENV" and type(val) == "table" and val[field] then return val end
    end
  end
  if _G[field] then return _G end
  error("spec.support.contract must be used from a busted spec file (no " .. field .. " found)", 3)
end

--- Gate of the Docker cases; pending: busted's (found on the stack if not given).
function M.need_docker(pending)
  local ok, reason = docker_reachable()
  if ok then return end
  if os.getenv("CI") == "true" then
    error("Docker is not reachable and CI=true, so the #docker specs fail instead of skipping: " .. tostring(reason), 0)
  end
  pending = pending or busted_env("pending").pending
  pending("Docker is not reachable (" .. tostring(reason) .. "); start dockerd or set DOCKER_HOST to run the #docker specs")
end

--- `it` for the Docker cases of a spec file: each case first passes
--- need_docker (pending without a daemon, an error under CI=true), then
--- negotiates client's API version (client: the spec's engine client, whose
--- calls need it). Usage: `local dit = C.docker_it(client)`.
function M.docker_it(client)
  local env = busted_env("it")
  return function(name, fn)
    env.it(name, function()
      M.need_docker(env.pending)
      assert(client:negotiate())
      return fn()
    end)
  end
end

-- One row per executor kind: how to build one, and what the sandbox path
-- of work_dir is for code running inside it.
-- `name` is the constructor's name in agentbox (and the prefix of its
-- errors); `extra` is the Lua source of options a nested process adds.
M.KINDS = {
  {
    kind = "local", tag = "", name = "LocalExecutor", extra = "",
    new = function(opts) return agentbox.LocalExecutor(opts) end,
    inside = function(ex) return ex.work_dir end,
    gate = function() end,
  },
  {
    -- stateful = true (executor/python_session.lua): python blocks share
    -- one interpreter; E.stateful marks cases that rely on a fresh one. A
    -- LocalExecutor still (kind), titled apart (label)
    kind = "local", label = "local-stateful", tag = "", name = "LocalExecutor", extra = "stateful = true, ",
    stateful = true,
    new = function(opts)
      if opts.stateful == nil then opts.stateful = true end
      return agentbox.LocalExecutor(opts)
    end,
    inside = function(ex) return ex.work_dir end,
    gate = function() end,
  },
  {
    -- LocalExecutor{ sandbox = true } (executor/sandbox.lua, src/sandbox.h):
    -- the daemonless sandbox; work_dir is bound at its own path inside
    kind = "local-sandbox", tag = "", name = "LocalExecutor", sandbox = true, extra = "sandbox = true, ",
    new = function(opts)
      if opts.sandbox == nil then opts.sandbox = true end
      return agentbox.LocalExecutor(opts)
    end,
    inside = function(ex) return ex.work_dir end,
    gate = function() end,
  },
  {
    kind = "docker", tag = " #docker", name = "DockerExecutor", docker = true,
    extra = ("image = %q, "):format(M.IMAGE),
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
  {
    -- warm = true (executor/docker_warm.lua): blocks over the in-container
    -- block server's socket instead of docker exec
    kind = "docker-warm", tag = " #docker", name = "DockerExecutor", docker = true, warm = true,
    extra = ("image = %q, warm = true, "):format(M.IMAGE),
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      if opts.warm == nil then opts.warm = true end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
  {
    -- pool = p (executor/docker_pool.lua): a container taken from one pool
    -- shared by the cases (removed when the Lua state closes); work_dir is
    -- given, so copied in and out around each call
    -- (env is a container option, so the pool's: a case that gives env gets a pool of its own)
    kind = "docker-pool", tag = " #docker", name = "DockerExecutor", docker = true, warm = true, pool = true,
    extra = ("image = %q, "):format(M.IMAGE),
    src = function(opts_src)
      return ([[(function(o)
        local a = require("agentbox")
        o.pool, o.env = a.DockerPool{ size = 1, image = o.image, env = o.env }, nil
        return a.DockerExecutor(o)
      end)({ image = %q, %s })]]):format(M.IMAGE, opts_src)
    end,
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      if opts.env then
        opts.pool, opts.env = agentbox.DockerPool{ size = 1, image = opts.image, env = opts.env }, nil
      end
      M.shared_pool = M.shared_pool or agentbox.DockerPool{ size = 2, image = M.IMAGE }
      if opts.pool == nil then opts.pool = M.shared_pool end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
  {
    -- fresh = true (executor/docker_pool.lua): a never-used warm container
    -- per execute call from an internal pool of one; work_dir copied in and out
    kind = "docker-fresh", tag = " #docker", name = "DockerExecutor", docker = true, warm = true, fresh = true,
    extra = ("image = %q, fresh = true, "):format(M.IMAGE),
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      if opts.fresh == nil then opts.fresh = true end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
  {
    -- preload (executor/python_preload.lua): python blocks are forks of a
    -- template interpreter (the standard library's decimal: the host may
    -- have no pandas)
    kind = "local-preload", tag = "", name = "LocalExecutor", preload = { "decimal" },
    extra = "preload = { \"decimal\" }, ",
    new = function(opts)
      if opts.preload == nil then opts.preload = { "decimal" } end
      return agentbox.LocalExecutor(opts)
    end,
    inside = function(ex) return ex.work_dir end,
    gate = function() end,
  },
  {
    -- preload in the warm container (executor/docker_preload.lua): the
    -- template is a resident of the block server
    kind = "docker-preload", tag = " #docker", name = "DockerExecutor", docker = true, warm = true,
    preload = { "pandas", "numpy" },
    extra = ("image = %q, preload = { \"pandas\", \"numpy\" }, "):format(M.IMAGE),
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      if opts.preload == nil then opts.preload = { "pandas", "numpy" } end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
  {
    -- stateful in the warm container (executor/docker_session.lua): the
    -- session's keeper is a resident of the block server
    kind = "docker-stateful", tag = " #docker", name = "DockerExecutor", docker = true,
    warm = true, stateful = true,
    extra = ("image = %q, stateful = true, "):format(M.IMAGE),
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      if opts.stateful == nil then opts.stateful = true end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
}

-- The docker-warm-remote row's daemon: spec/support/tcp_relay.py to the
-- local one, started on first use and kept for the process (its handle's
-- finalizer ends it at exit). Returns "tcp://127.0.0.1:PORT".
-- kept in the registry: busted reloads this module for every spec file
local REG = debug.getregistry()
local function remote_host()
  if REG.agentbox_spec_relay_host then return REG.agentbox_spec_relay_host end
  local relay = assert(core.spawn{ argv = { "python3", "spec/support/tcp_relay.py", docker.client().ep.socket },
                             env = { PATH = os.getenv("PATH") }, timeout = 7200, stream = true })
  local got = H.first_line(relay)
  REG.agentbox_spec_relay = relay
  REG.agentbox_spec_relay_host = "tcp://127.0.0.1:" .. assert(got:match("^(%d+)\n"), "tcp_relay.py: " .. got)
  return REG.agentbox_spec_relay_host
end

M.KINDS[#M.KINDS + 1] = {
  -- warm = true through a remote daemon (executor/docker_attach.lua): the
  -- block server on the container's attach stream, code files through it,
  -- output files back by the archive API
  kind = "docker-warm-remote", tag = " #docker", name = "DockerExecutor", docker = true, warm = true,
  remote = true,
  extra = ("image = %q, warm = true, "):format(M.IMAGE),
  new = function(opts)
    if opts.image == nil then opts.image = M.IMAGE end
    if opts.warm == nil then opts.warm = true end
    if opts.docker_host == nil then opts.docker_host = remote_host() end
    return agentbox.DockerExecutor(opts)
  end,
  inside = function() return "/workspace" end,
  gate = M.need_docker,
}

-- AGENTBOX_CONTRACT_KINDS="docker,docker-warm": only those rows (a subset to
-- run by hand; unset: every row)
local only_env = os.getenv("AGENTBOX_CONTRACT_KINDS")

--- The kinds but those named (an `only` for M.each), for a case that
--- cannot apply to them; the caller says why.
function M.except(...)
  local skip, only = {}, {}
  for _, k in ipairs({ ... }) do skip[k] = true end
  for _, row in ipairs(M.KINDS) do
    if not skip[row.kind] then only[row.kind] = true end
  end
  return only
end

--- Run body(E) once per executor kind, inside describe("<title> [<kind>]").
--- E.kind, E.name ("LocalExecutor", ...), E.docker (a DockerExecutor row), E.sandbox
--- (LocalExecutor{ sandbox = true }), E.warm
--- (its warm option, nil otherwise), E.preload (its preload option, nil otherwise),
--- E.stateful (python blocks share one interpreter), E.remote (a remote
--- daemon: work_dir is not shared), E.it(name, fn, except), E.new(opts)
--- (work_dir defaults to a path that agentbox creates under a fresh temp
--- directory removed after the case; opts is filled in, so opts.work_dir is
--- the path given), E.inside(ex) (work_dir as the code sees it),
--- E.tmpdir(tag), E.new_src(opts_src): Lua source of an expression that
--- builds this kind of executor in a nested process (opts_src: the fields,
--- e.g. 'work_dir = "/x", timeout = 5').
function M.each(title, body, only)
  -- AGENTBOX_SPEC_KINDS="local-sandbox,local": only these rows (a quick run of one kind)
  local pick = os.getenv("AGENTBOX_SPEC_KINDS")
  if pick and pick ~= "" then
    local want = {}
    for k in pick:gmatch("[^,%s]+") do want[k] = (not only or only[k]) and true or nil end
    only = want
  end
  local env = busted_env("describe")
  local describe, it, after_each = env.describe, env.it, env.after_each
  for _, row in ipairs(M.KINDS) do
    local label = row.label or row.kind
    if (not only or only[row.kind] or (row.label and only[row.label]))
       and (not only_env or ("," .. only_env .. ","):find("," .. label .. ",", 1, true)) then
      describe(title .. " [" .. label .. "]" .. row.tag, function()
        local dirs, exs = {}, {}
        local E = { kind = row.kind, name = row.name, inside = row.inside, docker = row.docker or false,
                    warm = row.warm or nil, stateful = row.stateful or false, remote = row.remote or nil,
                    sandbox = row.sandbox or false, fresh = row.fresh or nil, pool = row.pool or nil,
                    preload = row.preload }
        function E.new_src(opts_src)
          if row.src then return row.src(opts_src) end
          return ("require(\"agentbox\").%s{ %s%s }"):format(row.name, row.extra, opts_src)
        end
        function E.tmpdir(tag)
          local d = H.tmpdir((row.label or row.kind) .. "-" .. (tag or "c"))
          dirs[#dirs + 1] = d
          return d
        end
        function E.new(opts)
          opts = opts or {}
          -- a path that does not exist yet: agentbox creates (and owns) it
          if opts.work_dir == nil then opts.work_dir = E.tmpdir("ws") .. "/work" end
          if opts.timeout == nil then opts.timeout = 10 end
          local ex = row.new(opts)
          exs[#exs + 1] = ex
          return ex
        end
        -- except: { flag = "why" }: a case that does not apply to a row
        -- with that flag is not defined for it (never a pending counted in CI)
        function E.it(name, fn, except)
          for flag in pairs(except or {}) do
            if E[flag] then return end
          end
          it(name, function()
            row.gate(env.pending)
            return fn()
          end)
        end
        after_each(function()
          for i = #exs, 1, -1 do pcall(exs[i].close, exs[i]) exs[i] = nil end
          for i = #dirs, 1, -1 do pcall(H.rm_rf, dirs[i]) dirs[i] = nil end
        end)
        body(E)
      end)
    end
  end
end

return M
