-- core.spawn's seccomp = "sandbox" (src/seccomp.c's stricter profile, the
-- daemonless sandbox's), attacked from a real program: spec/support/
-- seccomp_probe.py makes every refused system call for real (ctypes:
-- ptrace of its own child, process_vm_readv/writev, a tmpfs mount as root,
-- unshare and clone/clone3 with CLONE_NEWUSER, `unshare -U -r`,
-- bpf(BPF_PROG_LOAD), io_uring_setup, TIOCSTI on its controlling pty, ...).
-- Each attack runs first without a filter, where it must reach the kernel
-- (succeed, or fail there with an errno of the kernel's own), then under
-- the profile, where it must get the filter's answer. Run as the current
-- user and, as root, also as uid 65534.
local core = require("agentbox.core")
local H = require("spec.support.helpers")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local PROBE = here .. "/support/seccomp_probe.py"

-- the filter's answer: ENOSYS where libraries must fall back, EPERM elsewhere
local FILTERED = {
  ptrace = "EPERM", process_vm_readv = "EPERM", process_vm_writev = "EPERM",
  mount = "EPERM", umount2 = "EPERM", pivot_root = "EPERM", open_tree = "EPERM", move_mount = "EPERM",
  fsopen = "EPERM", fsconfig = "EPERM", fsmount = "EPERM",
  unshare = "EPERM", setns = "EPERM", clone_newuser = "EPERM", clone3 = "ENOSYS", unshare_cmd = "EPERM",
  bpf = "EPERM", perf_event_open = "EPERM", keyctl = "EPERM", add_key = "EPERM", request_key = "EPERM",
  userfaultfd = "EPERM", io_uring_setup = "ENOSYS", io_uring_enter = "ENOSYS", io_uring_register = "ENOSYS",
  kexec_load = "EPERM", kexec_file_load = "EPERM", init_module = "EPERM", finit_module = "EPERM",
  delete_module = "EPERM", tiocsti = "EPERM", tioclinux = "EPERM",
}
-- attacks a normal user's kernel already refuses with EPERM (a capability
-- of the initial user namespace): only root shows them reaching the kernel
local ROOT_ONLY = { mount = true, pivot_root = true, move_mount = true, fsopen = true, fsmount = true, bpf = true }
-- what the profile adds to seccomp = true's filter
local SANDBOX_ONLY = { tiocsti = true, tioclinux = true }

-- A nested Lua host (so that it can run as another uid): the probe under
-- each mode, as "<mode> <attack> <verdict>" lines.
local HOST = [[
local core = require("agentbox.core")
local work = os.getenv("SPEC_WORK")
local modes = { { "off", false }, { "default", true }, { "sandbox", "sandbox" }, { "server", "sandbox", true } }
for _, m in ipairs(modes) do
  local p = assert(core.spawn{ argv = { "/usr/bin/python3", os.getenv("SPEC_PROBE"), work },
                               env = { PATH = "/usr/bin:/bin" }, seccomp = m[2], timeout = 60,
                               sup = m[3] and os.getenv("AGENTBOX_SUP") or nil })
  while not p:done() do core.step(-1) end
  local r = p:result()
  p:close()
  for line in r.stdout:gmatch("[^\n]+") do print(m[1] .. " " .. line) end
  io.stderr:write(r.stderr)
end
]]

local function probe_as(uid)
  local dir = H.tmpdir("seccomp-sandbox")
  os.execute("chmod 777 '" .. dir .. "'")
  local env = H.lua_env{ SPEC_WORK = dir, SPEC_PROBE = PROBE, PATH = "/usr/bin:/bin" }
  local argv = { "lua5.4", "-e", HOST }
  if uid then
    argv = { "setpriv", "--reuid=" .. uid, "--regid=" .. uid, "--clear-groups", "--", "lua5.4", "-e", HOST }
  end
  local r = H.run(argv, { env = env, timeout = 240 })
  H.rm_rf(dir)
  local got = { off = {}, default = {}, sandbox = {}, server = {} }
  for mode, name, v in r.stdout:gmatch("(%S+) (%S+) (%S+)") do got[mode][name] = v end
  got.raw = r.stdout .. r.stderr
  return got
end

local root = core.geteuid() == 0

local function check(got, as_root)
  for _, mode in ipairs({ "off", "default", "sandbox", "server" }) do
    assert.equal("ok", got[mode].done, mode .. ": the probe did not finish:\n" .. got.raw)
  end
  for name, want in pairs(FILTERED) do
    -- without a filter the attack reaches the kernel
    if as_root or not ROOT_ONLY[name] then
      assert.is_not_nil(got.off[name], name .. " missing:\n" .. got.raw)
      assert.are_not.equal(want, got.off[name], name .. " without a filter:\n" .. got.raw)
    end
    -- under the profile, whether the spawn server or a fork started it
    assert.equal(want, got.sandbox[name], name .. " under seccomp = \"sandbox\":\n" .. got.raw)
    assert.equal(want, got.server[name], name .. " under seccomp = \"sandbox\" through the spawn server:\n" .. got.raw)
    -- seccomp = true is the same filter without the terminal ioctls
    if SANDBOX_ONLY[name] then
      assert.are_not.equal(want, got.default[name], name .. " under seccomp = true:\n" .. got.raw)
    else
      assert.equal(want, got.default[name], name .. " under seccomp = true:\n" .. got.raw)
    end
  end
  assert.equal("off", got.off.no_new_privs)
  assert.equal("ok", got.sandbox.no_new_privs)
  -- the attacks that show the kernel really ran them without a filter
  assert.equal("ok", got.off.tiocsti, got.raw)
  assert.equal("ok", got.off.unshare_cmd, got.raw)
  assert.equal("ok", got.off.io_uring_setup, got.raw)
  if as_root then assert.equal("ok", got.off.bpf, got.raw) end
end

describe("seccomp = \"sandbox\"", function()
  it("refuses each attack that succeeds without it, as " .. (root and "root" or "this user"), function()
    check(probe_as(nil), root)
  end)

  -- (run by a normal user, the test above is this one)
  if root then
    it("refuses them as a normal user (uid 65534)", function()
      check(probe_as(65534), false)
    end)
  end

  it("leaves ordinary work alone: threads, subprocess, multiprocessing, terminal ioctls other than TIOCSTI", function()
    local p = assert(core.spawn{ argv = { "/usr/bin/python3", "-c", table.concat({
      "import threading, subprocess, multiprocessing, os, pty, termios, fcntl, struct",
      "t = threading.Thread(target=lambda: None); t.start(); t.join()",
      "print(subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip())",
      "with multiprocessing.Pool(2) as p: print(p.map(abs, [-1, -2]))",
      "m, s = pty.openpty(); print('isatty', os.isatty(s))",
      "print('winsz', len(fcntl.ioctl(s, termios.TIOCGWINSZ, struct.pack('4H', 0, 0, 0, 0))))",
    }, "\n") }, env = { PATH = "/usr/bin:/bin" }, seccomp = "sandbox", timeout = 60 })
    while not p:done() do core.step(-1) end
    local r = p:result()
    p:close()
    assert.equal(0, r.exit_code, r.output)
    assert.equal("sub\n[1, 2]\nisatty True\nwinsz 8\n", r.stdout)
  end)

  -- i386 system calls through int $0x80: another table, where none of the
  -- numbers above means the same thing (x32 is off in this VM's kernel)
  local I386 = [[
#include <stdio.h>
#include <unistd.h>
int main(void) {
  long r;
  __asm__ volatile("push %%rbp\n\tint $0x80\n\tpop %%rbp" : "=a"(r) : "a"(20L) : "memory");   /* i386 getpid */
  printf("%s\n", r == (long)getpid() ? "ok" : r == -38 ? "ENOSYS" : "other");
  return 0;
}
]]
  it("refuses another architecture's calls (i386 int $0x80) that work without it", function()
    local uname = io.popen("uname -m")
    local machine = uname:read("l")
    uname:close()
    if machine ~= "x86_64" then
      pending("int $0x80 is x86_64's (this machine: " .. tostring(machine) .. ")")
      return
    end
    local dir = H.tmpdir("i386")
    H.write(dir .. "/i386.c", I386)
    local cc = H.run({ "cc", "-O1", "-o", dir .. "/i386", dir .. "/i386.c" })
    assert.equal(0, cc.exit_code, cc.output)
    local got = {}
    for _, mode in ipairs({ false, "sandbox" }) do
      local p = assert(core.spawn{ argv = { dir .. "/i386" }, seccomp = mode, env = { PATH = "/usr/bin:/bin" } })
      while not p:done() do core.step(-1) end
      got[#got + 1] = p:result().stdout
      p:close()
    end
    H.rm_rf(dir)
    assert.same({ "ok\n", "ENOSYS\n" }, got)
  end)

  it("is one of true, false, \"default\", \"sandbox\": anything else is an error naming it", function()
    for _, bad in ipairs({ "strict", 1, {} }) do
      local ok, err = pcall(core.spawn, { argv = { "true" }, seccomp = bad })
      assert.is_false(ok)
      assert.matches("'seccomp' must be true, false, \"default\" or \"sandbox\"", err)
    end
    for _, good in ipairs({ true, false, "default", "sandbox" }) do
      local p = assert(core.spawn{ argv = { "true" }, seccomp = good })
      while not p:done() do core.step(-1) end
      assert.equal(0, p:result().exit_code)
      p:close()
    end
  end)
end)
