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

--- Run body(E) once per executor kind, inside describe("<title> [<kind>]").
--- E.kind, E.name ("LocalExecutor", ...), E.docker (a DockerExecutor row), E.warm
--- (its warm option, nil otherwise), E.preload (its preload option, nil otherwise),
--- E.stateful (python blocks share one interpreter), E.it(name, fn), E.new(opts)
--- (work_dir defaults to a path that agentbox creates under a fresh temp
--- directory removed after the case; opts is filled in, so opts.work_dir is
--- the path given), E.inside(ex) (work_dir as the code sees it),
--- E.tmpdir(tag), E.new_src(opts_src): Lua source of an expression that
--- builds this kind of executor in a nested process (opts_src: the fields,
--- e.g. 'work_dir = "/x", timeout = 5').
function M.each(title, body, only)
  local env = busted_env("describe")
  local describe, it, after_each = env.describe, env.it, env.after_each
  for _, row in ipairs(M.KINDS) do
    if not only or only[row.kind] or (row.label and only[row.label]) then
      describe(title .. " [" .. (row.label or row.kind) .. "]" .. row.tag, function()
        local dirs, exs = {}, {}
        local E = { kind = row.kind, name = row.name, inside = row.inside, docker = row.docker or false,
                    warm = row.warm or nil, preload = row.preload, stateful = row.stateful or false }
        function E.new_src(opts_src)
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
        function E.it(name, fn)
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
