-- The daemonless sandbox fails closed (issue 12): on a kernel that does not
-- let this process create user namespaces, LocalExecutor{ sandbox = true }
-- is an error at construction naming the setting to change, never a
-- sandbox without its namespaces. Tested for real by turning
-- user.max_user_namespaces to 0: in a user namespace of the spec's own
-- (any user), and globally where root may (restored even on failure); and
-- the settings' checks by name.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local H = require("spec.support.helpers")

local MAXNS = "/proc/sys/user/max_user_namespaces"

local function read_sysctl()
  local f = io.open(MAXNS)
  if not f then return nil end
  local v = f:read("l")
  f:close()
  return v
end

local function write_sysctl(v)
  local f = assert(io.open(MAXNS, "w"))
  assert(f:write(v))
  assert(f:close())
end

describe("sandbox fails closed", function()
  -- the nested way: user.max_user_namespaces is per user namespace, so a
  -- host inside `unshare -Ur` that sets its own to 0 meets the kernel's
  -- refusal for real (ENOSPC), as root or not, and nothing global changes
  it("without user namespaces (user.max_user_namespaces = 0 in the host's namespace): a clear error", function()
    local src = [[
      local ok, err = pcall(require("agentbox").LocalExecutor, { sandbox = true })
      io.write(ok and "BUILT" or err)
    ]]
    local r = H.run({ "unshare", "-Ur", "sh", "-c",
                      "echo 0 > /proc/sys/user/max_user_namespaces && exec lua5.4 -e \"$0\"", src },
                    { env = H.lua_env(), timeout = 60 })
    assert.not_matches("BUILT", r.output)
    assert.matches("sandbox: this host cannot give the sandbox's required isolation", r.output, 1, true)
    assert.matches("user.max_user_namespaces is 0", r.output, 1, true)
    assert.matches("sysctl -w user.max_user_namespaces=", r.output, 1, true)
    assert.matches("No space left on device", r.output, 1, true)
  end)

  -- the global way, defined only where this process may change the sysctl
  -- (root with CAP_SYS_RESOURCE and a writable /proc/sys: not this VM's
  -- containers, whose /proc/sys/user is read-only even to root; the nested
  -- case above meets the same refusal of the kernel there); restored before
  -- any assertion can end the case
  local function global_writable()
    local saved = read_sysctl()
    local f = io.open(MAXNS, "w")
    return saved and f and f:write(saved) and f:close()
  end
  if global_writable() then
  it("without user namespaces (the global user.max_user_namespaces = 0, as root): a clear error", function()
    local saved = read_sysctl()
    local dir = H.tmpdir("sbx-failclosed")
    local ok, err
    local wok, werr = pcall(function()
      write_sysctl("0")
      ok, err = pcall(agentbox.LocalExecutor, { sandbox = true, work_dir = dir .. "/work" })
    end)
    write_sysctl(saved)
    assert.equal(saved, read_sysctl())
    assert(wok, werr)
    assert.is_false(ok, "LocalExecutor{ sandbox = true } was built without user namespaces")
    assert.matches("user.max_user_namespaces", err, 1, true)
    assert.matches("sysctl -w user.max_user_namespaces=", err, 1, true)
    -- blamed on this line, and nothing was created on the host
    assert.matches("sandbox_failclosed_spec.lua:%d+:", err)
    assert.is_false(H.exists(dir .. "/work"))
    H.rm_rf(dir)
    local ex <close> = agentbox.LocalExecutor{ sandbox = true }
    assert.is_true(ex:enforced().user_ns)
  end)
  end

  -- a root caller's writable paths need an idmapped mount (sandbox.h):
  -- ramfs takes none. Only where this process may mount one (root): a
  -- normal user's paths are bound without idmapping.
  local function mount_ramfs(dir)
    return core.geteuid() == 0 and core.mkdir_p(dir) and os.execute("mount -t ramfs agentbox-spec '" .. dir .. "'")
  end
  local probe_dir = H.tmpdir("sbx-ramfs-probe")
  local can_ramfs = mount_ramfs(probe_dir .. "/m")
  if can_ramfs then os.execute("umount '" .. probe_dir .. "/m'") end
  H.rm_rf(probe_dir)
  if can_ramfs then
  it("as root, work_dir or a read_write path on a filesystem without idmapped mounts: a clear error", function()
    local d = H.tmpdir("sbx-ramfs")
    assert(mount_ramfs(d .. "/ram"))
    local errs, built = {}, {}
    local ok, err = pcall(function()
      for i, o in ipairs({ { work_dir = d .. "/ram" }, { work_dir = d .. "/ram/new" },
                           { work_dir = d .. "/w", sandbox = { read_write = { d .. "/ram" } } } }) do
        o.sandbox = o.sandbox or true
        local eok, e = pcall(agentbox.LocalExecutor, o)
        if eok then built[#built + 1] = i e:close() else errs[i] = e end
      end
      -- nothing was created on the host (the probe runs before the workspace)
      assert.is_false(H.exists(d .. "/ram/new"))
      assert.is_false(H.exists(d .. "/w"))
    end)
    os.execute("umount '" .. d .. "/ram'")
    assert(ok, err)
    assert.same({}, built)
    assert.matches("work_dir " .. d .. "/ram is on a filesystem (ramfs) that cannot take an idmapped mount", errs[1], 1,
      true)
    assert.matches("work_dir (" .. d .. "/ram/new, to be made in " .. d .. "/ram) is on a filesystem (ramfs)", errs[2],
      1, true)
    assert.matches("read_write path " .. d .. "/ram is on a filesystem (ramfs)", errs[3], 1, true)
    for _, e in ipairs(errs) do
      assert.matches("sandbox_failclosed_spec.lua:%d+:", e)
      assert.matches("Run the host as a normal user, or put work_dir and the read_write paths on ext4, xfs, btrfs or "
        .. "tmpfs", e, 1, true)
    end
    H.rm_rf(d)
  end)
  end

  it("checks its settings by name", function()
    local ok, err = pcall(agentbox.LocalExecutor, { sandbox = { read_onyl = { "/usr" } } })
    assert.is_false(ok)
    assert.matches("unknown sandbox setting 'read_onyl'", err)
    ok, err = pcall(agentbox.LocalExecutor, { sandbox = { network = true } })
    assert.is_false(ok)
    assert.matches("sandbox.network can only be false", err)
    ok, err = pcall(agentbox.LocalExecutor, { sandbox = { require = { "selinux" } } })
    assert.is_false(ok)
    assert.matches("sandbox.require%[1%] = selinux", err)
    ok, err = pcall(agentbox.LocalExecutor, { sandbox = { read_only = { "/no/such/path/x" } } })
    assert.is_false(ok)
    assert.matches("does not exist", err)
    ok, err = pcall(agentbox.LocalExecutor, { sandbox = { tmp_size = 10 } })
    assert.is_false(ok)
    assert.matches("tmp_size", err)
    ok, err = pcall(agentbox.LocalExecutor, { sandbox = "yes" })
    assert.is_false(ok)
    assert.matches("sandbox must be true, false or a table", err)
  end)

  it("an optional guarantee made mandatory that is not in force is an error; Landlock where the kernel has it",
    function()
    -- cgroup: in force where a memory and pids hierarchy is writable (root
    -- here), else an error that says why and how (sandbox_cgroup_spec)
    local ok, err = pcall(agentbox.LocalExecutor, { sandbox = { require = { "cgroup" } } })
    local _, info = core.sandbox_probe()
    if info.cgroup then
      assert.is_true(ok, err)
      assert.matches("cgroup v%d: memory", err:enforced().limits)
      err:close()
    else
      assert.is_false(ok)
      assert.matches("sandbox.require names cgroup, which is not in force here (no writable cgroup: " .. info.cgroup_why,
        err, 1, true)
    end
    local abi = core.landlock_abi()
    if type(abi) ~= "number" then
      ok, err = pcall(agentbox.LocalExecutor, { sandbox = { require = { "landlock" } } })
      assert.is_false(ok)
      assert.matches("sandbox.require names landlock", err)
      return
    end
    local ex <close> = agentbox.LocalExecutor{ sandbox = { require = { "landlock" } } }
    assert.equal(abi, ex:enforced().landlock)
    -- the domain is in force: /proc/self/status has no Landlock line, so
    -- a write Landlock alone refuses (procfs, which the mounts leave writable)
    local r = ex:execute{ { lang = "sh", code = "echo 0 > /proc/self/oom_score_adj && echo WROTE; echo ok > f && cat f" } }
    assert.not_matches("WROTE", r.output)
    assert.matches("ok", r.output)
  end)

  it("AGENTBOX_SANDBOX=1 turns it on where sandbox is not given; a bad value is an error", function()
    local src = [[
      local ex <close> = require("agentbox").LocalExecutor{}
      io.write("SANDBOX=", tostring(ex:enforced().sandbox))
      local r = ex:execute{ { lang = "sh", code = "hostname" } }
      io.write(" HOST=", r.output)
    ]]
    local r = H.lua(src, { AGENTBOX_SANDBOX = "1" }, 30)
    assert.matches("SANDBOX=true HOST=agentbox", r.output)
    r = H.lua(src, { AGENTBOX_SANDBOX = "0" }, 30)
    assert.matches("SANDBOX=false", r.output)
    r = H.lua(src, { AGENTBOX_SANDBOX = "maybe" }, 30)
    assert.matches("invalid AGENTBOX_SANDBOX=\"maybe\"", r.output)
  end)

  it("read_only and read_write bind host paths at the same place", function()
    local d = H.tmpdir("sbx-binds")
    assert(core.mkdir_p(d .. "/rw"))
    assert(core.mkdir_p(d .. "/ro"))
    H.write(d .. "/ro/f", "host")
    local ex <close> = agentbox.LocalExecutor{ sandbox = { read_write = { d .. "/rw" }, read_only = { d .. "/ro" },
                                                          tmp_size = 1048576 } }
    local r = ex:execute{ { lang = "sh", code = ([[
echo inside > %s/rw/g && echo RW_OK
cat %s/ro/f; echo x > %s/ro/f || echo RO_REFUSED
dd if=/dev/zero of=/tmp/big bs=1M count=4 2>&1; echo
]]):format(d, d, d) } }
    assert.matches("RW_OK", r.output)
    assert.matches("host", r.output)
    assert.matches("RO_REFUSED", r.output)
    assert.matches("No space left on device", r.output)
    assert.equal("inside\n", H.read(d .. "/rw/g"))
    assert.equal("host", H.read(d .. "/ro/f"))
    H.rm_rf(d)
  end)

  it("code_execution_config = { use_docker = false, sandbox = true } runs the agent's code in the sandbox", function()
    local function agent(cfg)
      return agentbox.UserProxyAgent{ name = "u", human_input_mode = "NEVER", code_execution_config = cfg }
    end
    for _, cfg in ipairs({ { use_docker = false, sandbox = true }, { sandbox = { tmp_size = 1048576 } } }) do
      local u = agent(cfg)
      local ex = u:code_executor()
      assert.is_false(u:use_docker())
      assert.is_true(ex:enforced().sandbox)
      local r = ex:execute{ { lang = "sh", code = "hostname" } }
      assert.equal("agentbox\n", r.output)
      ex:close()
    end
    local ok, err = pcall(agent, { use_docker = true, sandbox = true })
    assert.is_false(ok)
    assert.matches("cannot go with use_docker = true", err)
    ok, err = pcall(agent, { sandbox = { bogus = true } })
    assert.is_false(ok)
    assert.matches("unknown sandbox setting 'bogus'", err)
  end)
end)
