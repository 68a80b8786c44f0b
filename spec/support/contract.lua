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
local docker = require("agentbox.docker")
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

function M.need_docker()
  local ok, reason = docker_reachable()
  if ok then return end
  if os.getenv("CI") == "true" then
    error("Docker is not reachable and CI=true, so the #docker specs fail instead of skipping: " .. tostring(reason), 0)
  end
  pending("Docker is not reachable (" .. tostring(reason) .. "); start dockerd or set DOCKER_HOST to run the #docker specs")
end

-- One row per executor kind: how to build one, and what the sandbox path
-- of work_dir is for code running inside it.
M.KINDS = {
  {
    kind = "local", tag = "",
    new = function(opts) return agentbox.LocalExecutor(opts) end,
    inside = function(ex) return ex.work_dir end,
    gate = function() end,
  },
  {
    kind = "docker", tag = " #docker",
    new = function(opts)
      if opts.image == nil then opts.image = M.IMAGE end
      return agentbox.DockerExecutor(opts)
    end,
    inside = function() return "/workspace" end,
    gate = M.need_docker,
  },
}

--- Run body(E) once per executor kind, inside describe("<title> [<kind>]").
--- E.kind, E.it(name, fn), E.new(opts) (work_dir defaults to a path that
--- agentbox creates under a fresh temp directory removed after the case), E.inside(ex) (work_dir as
--- the code sees it), E.tmpdir(tag).
function M.each(title, body, only)
  for _, row in ipairs(M.KINDS) do
    if not only or only[row.kind] then
      describe(title .. " [" .. row.kind .. "]" .. row.tag, function()
        local dirs, exs = {}, {}
        local E = { kind = row.kind, inside = row.inside }
        function E.tmpdir(tag)
          local d = H.tmpdir(row.kind .. "-" .. (tag or "c"))
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
            row.gate()
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
