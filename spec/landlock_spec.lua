-- core.spawn's landlock = { read, write, required } (src/landlock.c),
-- attacked from inside real runs (spec/support/landlock_probe.py, set up by
-- spec/support/landlock_attacks.lua): each attack runs once without
-- Landlock, where it must succeed (the targets are open to every uid, so
-- only Landlock can stop it), and once under it. Through a forked
-- supervisor, through the spawn server (the paths cross the wire), and, as
-- root, as uid 65534 too.
local core = require("agentbox.core")
local H = require("spec.support.helpers")
local A = require("spec.support.landlock_attacks")

local root = core.geteuid() == 0
local SUP = os.getenv("AGENTBOX_SUP")

-- A nested host that runs the attacks as another uid and prints them.
local NESTED = [[
local A = require("spec.support.landlock_attacks")
local g = A.run{ sup = os.getenv("SPEC_SUP") == "1" }
for _, mode in ipairs({ "off", "on" }) do
  for k, v in pairs(g[mode]) do if k ~= "raw" then print(mode .. " " .. k .. " " .. v) end end
  print("alive " .. mode .. " " .. tostring(g.alive[mode]))
end
print("abi " .. tostring(g.result.landlock.abi))
print("skipped " .. table.concat(g.result.landlock.skipped, ","))
io.stderr:write(g.on.raw)
]]

local function nested(uid)
  local r = H.run({ "setpriv", "--reuid=" .. uid, "--regid=" .. uid, "--clear-groups", "--", "lua5.4", "-e", NESTED },
                  { env = H.lua_env{ HOME = "/nonexistent", SPEC_SUP = "1" }, timeout = 120 })
  local g = { off = {}, on = {}, alive = {}, result = { landlock = {} } }
  for mode, k, v in r.stdout:gmatch("(o[nf]f?) (%S+) (%S+)") do g[mode][k] = v end
  for mode, v in r.stdout:gmatch("alive (%S+) (%S+)") do g.alive[mode] = v == "true" end
  g.result.landlock.abi = tonumber(r.stdout:match("abi (%S+)")) or r.stdout:match("abi (%S+)")
  local skipped = {}
  for p in (r.stdout:match("skipped ([^\n]*)") or ""):gmatch("[^,]+") do skipped[#skipped + 1] = p end
  g.result.landlock.skipped = skipped
  g.on.raw = r.stdout .. r.stderr
  return g
end

local VARIANTS = {
  { "forked supervisor", function() return A.run{} end, root },
  { "spawn server", function() return A.run{ sup = true } end, root },
}
if root then VARIANTS[3] = { "uid 65534 (spawn server)", function() return nested(65534) end, false } end

-- Each attack works without Landlock and gets want under it; root_only
-- names the ones a normal user cannot even try (uid 65534 has no home).
local function each_attack(g, names, want, as_root, root_only)
  for _, name in ipairs(names) do
    if as_root or not (root_only or {})[name] then
      assert.equal("ok", g.off[name], name .. " without Landlock:\n" .. (g.off.raw or ""))
      assert.equal(want, g.on[name], name .. " under Landlock:\n" .. g.on.raw)
    else
      assert.are_not.equal("ok", g.on[name], name .. " under Landlock:\n" .. g.on.raw)
    end
  end
end

for _, v in ipairs(VARIANTS) do
  local title, get, as_root = v[1], v[2], v[3]
  local cached
  local function got()
    cached = cached or get()
    return cached
  end

  describe("landlock through a " .. title, function()
    it("refuses writes outside the write paths with EACCES: /var/tmp, /tmp, a mode 0777 directory, $HOME", function()
      local g = got()
      each_attack(g, { "write_var_tmp", "write_tmp", "write_outside", "mkdir_outside", "truncate_outside",
                       "write_home" }, "EACCES", as_root, { write_home = true })
      -- the write paths stay writable (a directory and a device file)
      assert.equal("ok", g.on.write_work, g.on.raw)
      assert.equal("ok", g.on.write_dev_null, g.on.raw)
    end)

    it("refuses reads of what is not listed: a mode 0644 file, a directory, $HOME", function()
      local g = got()
      each_attack(g, { "read_secret", "list_outside", "list_home" }, "EACCES", as_root, { list_home = true })
      assert.equal("ok", g.on.read_etc, g.on.raw)
    end)

    it("executes from the read paths (/usr/bin/python3, /bin/sh) and work_dir, not a binary planted outside", function()
      local g = got()
      assert.equal("ok", g.on.done, g.on.raw)   -- python3 itself ran the probe
      assert.equal("ok", g.on.exec_sh, g.on.raw)
      assert.equal("ok", g.on.exec_work, g.on.raw)
      each_attack(g, { "exec_outside" }, "EACCES", as_root)
    end)

    it("scopes signals: a host process cannot be killed, the run's own children can", function()
      local g = got()
      each_attack(g, { "kill_host" }, "EPERM", as_root)
      assert.is_false(g.alive.off)   -- without Landlock the TERM killed the host's sleep
      assert.is_true(g.alive.on)
      assert.equal("ok", g.on.kill_own_child, g.on.raw)
    end)

    it("scopes abstract unix sockets: no connect to the host's, the run's own work", function()
      local g = got()
      each_attack(g, { "abstract_host" }, "EPERM", as_root)
      assert.equal("ok", g.on.abstract_own, g.on.raw)
    end)

    it("reports the ABI applied and the paths skipped", function()
      local g = got()
      local abi = core.landlock_abi()
      assert.is_true(math.type(abi) == "integer" and abi >= 6, "this spec needs Landlock ABI 6+, got " .. tostring(abi))
      assert.equal(abi, g.result.landlock.abi)
      -- the system list has paths this host may lack: exactly those are skipped
      local missing = {}
      for _, p in ipairs(A.SYSTEM) do
        if not core.realpath(p) then missing[#missing + 1] = p end
      end
      assert.same(missing, g.result.landlock.skipped)
    end)
  end)
end

local function run(opts)
  opts.env = opts.env or A.ENV
  opts.timeout = opts.timeout or 30
  return A.wait(assert(core.spawn(opts)))
end

describe("landlock", function()
  it("core.landlock_abi() names the kernel's ABI (7 on Linux 6.15+), at most the newest this build knows", function()
    local abi = core.landlock_abi()
    assert.equal("integer", math.type(abi))
    assert.is_true(abi >= 1 and abi <= 7)
  end)

  it("with nothing readable, python3 cannot even be executed", function()
    local r = run{ argv = { "/usr/bin/python3", "-c", "print(1)" }, landlock = { read = {}, write = {} } }
    assert.equal(126, r.exit_code, r.output)
    assert.matches("Permission denied", r.stderr)
    assert.equal(core.landlock_abi(), r.landlock.abi)
  end)

  it("takes up to 64 paths through the spawn server, reports each missing one", function()
    local paths = {}
    for i = 1, 63 do paths[i] = "/nonexistent-agentbox-" .. i end
    paths[64] = "/usr"
    local r = run{ argv = { "/bin/sh", "-c", "echo ran" }, sup = SUP, landlock = { read = paths } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("ran\n", r.stdout)
    assert.equal(63, #r.landlock.skipped)
    assert.equal("/nonexistent-agentbox-63", r.landlock.skipped[63])
  end)

  it("refuses bad settings, naming them", function()
    local cases = {
      { { reed = { "/usr" } }, "unknown landlock setting 'reed'" },
      { { read = { "usr" } }, "landlock.read%[1%] must be an absolute path" },
      { { write = { 7 } }, "landlock.write%[1%] must be a string" },
      { { read = "/usr" }, "landlock.read must be an array of absolute paths" },
      { { required = "yes" }, "landlock.required must be a boolean" },
      { "on", "'landlock' must be a table" },
      { { "/usr" }, "landlock takes named settings %(read, write, required%), got a number key" },
    }
    local many = {}
    for i = 1, 65 do many[i] = "/usr" end
    cases[#cases + 1] = { { read = many }, "at most 64 paths" }
    for _, c in ipairs(cases) do
      local ok, err = pcall(core.spawn, { argv = { "true" }, landlock = c[1] })
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
  end)

  it("crosses the spawn protocol with bounds: a request round-trips, a malformed one is refused", function()
    -- spec/support/proto_decode.c against src/spawnproto.c, over a real SOCK_SEQPACKET pair
    local dir = H.tmpdir("ll-proto")
    local bin = dir .. "/proto_decode"
    local cc = H.run({ "cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Isrc", "-o", bin,
                       "spec/support/proto_decode.c", "src/spawnproto.c", "src/sysutil.c" })
    assert.equal(0, cc.exit_code, cc.output)
    local r = H.run({ bin })
    H.rm_rf(dir)
    assert.equal(0, r.exit_code, r.output)
    assert.matches("roundtrip 0 2 2 1 /path%-0 /path%-1 /path%-2 /bin/true PATH=/bin\n", r.stdout)
    for _, case in ipairs({ "too_many", "negative", "sum_over", "missing", "bad_profile", "bad_mode", "paths_off",
                              "one_more" }) do
      assert.matches("\n" .. case .. " %-1\n", r.stdout)
    end
    assert.matches("send_too_many %-2\n", r.stdout)   -- nothing sent
    assert.matches("send_max 0 64 /path%-63\n", r.stdout)
  end)

  -- A kernel without Landlock, made for real: a seccomp filter on the whole
  -- nested host (and so its supervisors) answers landlock_create_ruleset
  -- with ENOSYS, as a kernel without CONFIG_SECURITY_LANDLOCK does.
  local NO_LANDLOCK = [[
import ctypes, os, struct, sys
f = struct.pack('<HBBI', 0x20, 0, 0, 0)                    # A = nr
f += struct.pack('<HBBI', 0x15, 0, 1, 444)                 # nr == landlock_create_ruleset?
f += struct.pack('<HBBI', 0x06, 0, 0, 0x00050000 | 38)     # ERRNO(ENOSYS)
f += struct.pack('<HBBI', 0x06, 0, 0, 0x7fff0000)          # ALLOW
buf = ctypes.create_string_buffer(f, len(f))
class Prog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]
prog = Prog(4, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0                     # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
os.execvp(sys.argv[1], sys.argv[1:])
]]
  local HOST = [[
local core = require("agentbox.core")
local work = os.getenv("SPEC_WORK")
print("abi", core.landlock_abi())
for _, required in ipairs({ false, true }) do
  for _, sup in ipairs({ false, true }) do
    local marker = work .. "/ran-" .. tostring(required) .. "-" .. tostring(sup)
    local p = assert(core.spawn{ argv = { "/bin/sh", "-c", "echo x > " .. marker }, env = { PATH = "/usr/bin:/bin" },
                                 sup = sup and os.getenv("AGENTBOX_SUP") or nil,
                                 landlock = { read = { "/usr" }, write = {}, required = required } })
    while not p:done() do core.step(-1) end
    local r = p:result()
    p:close()
    local f = io.open(marker)
    if f then f:close() end
    print(("run required=%s sup=%s exit=%s abi=%s ran=%s reason=%s stderr=%s"):format(tostring(required),
      tostring(sup), tostring(r.exit_code), tostring(r.landlock.abi), tostring(f ~= nil),
      r.landlock.reason or "", (r.stderr:gsub("\n", " "))))
  end
end
]]

  it("on a kernel without it: reported as \"none\" and run, or refused when required", function()
    local work = H.tmpdir("ll-none")
    local r = H.run({ "/usr/bin/python3", "-c", NO_LANDLOCK, "lua5.4", "-e", HOST },
                    { env = H.lua_env{ SPEC_WORK = work }, timeout = 60 })
    H.rm_rf(work)
    local out = r.stdout .. r.stderr
    assert.matches("abi\tnone\tthe kernel has no Landlock", out)
    for _, sup in ipairs({ "false", "true" }) do
      -- not required: the program runs, and the result says nothing was enforced
      assert.matches("run required=false sup=" .. sup .. " exit=0 abi=none ran=true reason=the kernel has no Landlock",
                     out, 1, true)
      -- required: the program never starts
      local line = out:match("run required=true sup=" .. sup .. "[^\n]*")
      assert.is_not_nil(line, out)
      assert.matches("exit=125 abi=none ran=false", line, 1, true)
      assert.matches("refusing to run the program: Landlock is required", line, 1, true)
    end
  end)
end)
