-- LocalExecutor: what only it does (the host's interpreter lookup, nice,
-- rlimits, its own options). Everything every executor does is in the
-- contract, spec/executor_contract_spec.lua.
local agentbox = require("agentbox")
local H = require("spec.support.helpers")

describe("LocalExecutor", function()
  local dir, ex
  before_each(function()
    dir = H.tmpdir("local")
    ex = agentbox.LocalExecutor{ work_dir = dir, timeout = 10 }
  end)
  after_each(function()
    ex:close()
    H.rm_rf(dir)
  end)

  it("resolves the python interpreter once and names it when missing", function()
    local e = agentbox.LocalExecutor{ work_dir = dir, env = { PATH = dir .. "/nowhere" } }
    local r = e:execute{ { lang = "python", code = "print(1)" } }
    assert.equal(1, r.exit_code)
    assert.matches("no Python interpreter found: looked for python3, then python", r.output)
    assert.matches("PATH=" .. dir .. "/nowhere", r.output, 1, true)
  end)

  -- field 19 of /proc/self/stat is the niceness
  local NICE = "print(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[16])"

  it("runs code at nice 10 by default, and at the nice given", function()
    local base = tonumber(H.run({ "sh", "-c", "cut -d' ' -f19 /proc/self/stat" }).stdout)
    local r = ex:execute{ { lang = "python", code = NICE } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal(math.min(19, base + 10), tonumber(r.output))
    local e = agentbox.LocalExecutor{ work_dir = dir, nice = 3 }
    assert.equal(math.min(19, base + 3), tonumber(e:execute{ { lang = "python", code = NICE } }.output))
  end)

  it("applies rlimits to the code", function()
    local e = agentbox.LocalExecutor{ work_dir = dir, rlimits = { nofile = 17, fsize = 4096 } }
    local r = e:execute{ { lang = "python", code = "import resource\n"
      .. "print(resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_FSIZE))" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("(17, 17) (4096, 4096)\n", r.output)
  end)

  it("builds PATH from the host's and HOME from work_dir", function()
    local r = ex:execute{ { lang = "sh", code = "echo \"$PATH\"; echo \"$HOME\"" } }
    assert.equal((os.getenv("PATH") or "/usr/local/bin:/usr/bin:/bin") .. "\n" .. ex.work_dir .. "\n", r.output)
  end)

  it("rejects its own bad options clearly", function()
    assert.has_error(function() agentbox.LocalExecutor{ nice = 20 } end,
      "agentbox.LocalExecutor: nice must be an integer from 0 to 19")
    assert.has_error(function() agentbox.LocalExecutor{ nice = -1 } end,
      "agentbox.LocalExecutor: nice must be an integer from 0 to 19")
    assert.has_error(function() agentbox.LocalExecutor{ work_dir = "" } end,
      "agentbox.LocalExecutor: work_dir must be a non-empty string (or nil for a fresh private directory)")
    assert.has_error(function() agentbox.LocalExecutor{ work_dir = dir, env = { X = 1 } } end)
  end)
end)
