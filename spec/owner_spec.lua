-- The owner identity (src/owner.c): this process's pid with its start time,
-- so that a reused pid is never taken for a live owner, and Lua never reads
-- /proc. Containers, temporary work_dirs and cgroups of dead owners are
-- reaped by it (docker_spec, workspace_default_spec).
local core = require("agentbox.core")
local H = require("spec.support.helpers")

-- field 22 of /proc/<pid>/stat, read here the way a person would check it
local function start_of(stat)
  return stat:match("^.*%) (.*)$"):match(("%S+%s+"):rep(19) .. "(%d+)")
end

describe("core.owner", function()
  it("is this process's pid and start time", function()
    local stat = H.read("/proc/self/stat")
    assert.equal(stat:match("^%d+") .. "-" .. start_of(stat), core.owner())
  end)

  it("is alive for this process, dead for a reused pid, an ended process or a malformed id", function()
    local pid, started = core.owner():match("^(%d+)%-(%d+)$")
    assert.is_true(core.owner_alive(core.owner()))
    assert.is_false(core.owner_alive(pid .. "-" .. (tonumber(started) + 1)))   -- same pid, another process
    assert.is_false(core.owner_alive(pid .. "-0" .. started))
    local r = H.run({ "sh", "-c", "cat /proc/$$/stat" })
    local gone = r.stdout:match("^%d+") .. "-" .. start_of(r.stdout)
    assert.is_false(core.owner_alive(gone))
    for _, bad in ipairs({ "", "-", pid, pid .. "-", "-" .. started, "x-1", pid .. "-" .. started .. "x",
                           "0-" .. started, "99999999999-1", " " .. core.owner(), pid .. "-+" .. started }) do
      assert.is_false(core.owner_alive(bad), bad)
    end
    assert.has_error(function() core.owner_alive() end)
  end)

  it("names the host as gethostname does", function()
    assert.equal((H.read("/proc/sys/kernel/hostname"):gsub("%s+$", "")), core.hostname())
  end)
end)
