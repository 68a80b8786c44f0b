-- Attacks on LocalExecutor{ sandbox = true } (issue 12), for real: real
-- processes of the host's uid (a victim holding a secret in its
-- environment, a TCP server on the host's 127.0.0.1, a nested host), and
-- model-written code that tries to reach them, to write outside work_dir
-- and /tmp, to outlive its deadline, to fork without bound, to type into a
-- terminal, to load BPF and to regain capabilities in a new user namespace.
-- Runs as root and as a normal user (CI: runuser). The "before":
-- AGENTBOX_SPEC_SANDBOX=off runs the same attacks against a plain
-- LocalExecutor, where they succeed and these cases fail.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local H = require("spec.support.helpers")

local SANDBOX = os.getenv("AGENTBOX_SPEC_SANDBOX") ~= "off"

local dirs, procs = {}, {}
local function tmpdir(tag)
  local d = H.tmpdir("sbx-" .. tag)
  dirs[#dirs + 1] = d
  return d
end

local function new(opts)
  opts = opts or {}
  if opts.work_dir == nil then opts.work_dir = tmpdir("ws") .. "/work" end
  if opts.timeout == nil then opts.timeout = 10 end
  opts.sandbox = SANDBOX and (opts.sandbox or true) or false
  return agentbox.LocalExecutor(opts)
end

local function run(ex, lang, code)
  local r = ex:execute{ { lang = lang, code = code } }
  return r.output or "", r
end

-- a host process of our uid, not under any sandbox
local function host_process(argv, env)
  local p = assert(core.spawn{ argv = argv, env = env or { PATH = os.getenv("PATH") }, stream = false })
  procs[#procs + 1] = p
  return p
end

local function wait_for(path, seconds)
  local deadline = core.now() + seconds
  while not H.exists(path) and core.now() < deadline do core.step(20) end
  return H.exists(path)
end

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return pid
end

-- processes on the host whose command line contains marker
local function host_pids_with(marker)
  local found = {}
  local ls = io.popen("ls /proc")
  for name in ls:lines() do
    if name:match("^%d+$") then
      local f = io.open("/proc/" .. name .. "/cmdline", "rb")
      local s = f and f:read("a") or ""
      if f then f:close() end
      if s:find(marker, 1, true) and H.alive(tonumber(name)) then found[#found + 1] = name end
    end
  end
  ls:close()
  return found
end

describe("sandbox attacks" .. (SANDBOX and "" or " (AGENTBOX_SPEC_SANDBOX=off: the before)"), function()
  after_each(function()
    for i = #procs, 1, -1 do pcall(procs[i].close, procs[i]) procs[i] = nil end
    for i = #dirs, 1, -1 do pcall(H.rm_rf, dirs[i]) dirs[i] = nil end
  end)

  it("reads no secret from a host process's environment or /proc (nested host, victim)", function()
    local secret = ("s3cr3t-%d-%d"):format(my_pid(), math.random(1e9))
    local mark = ("%d.%d"):format(60 + math.random(1000), math.random(1e6))
    host_process({ "sleep", mark }, { PATH = os.getenv("PATH"), AGENTBOX_VICTIM_SECRET = secret })
    local victim
    for _ = 1, 100 do
      victim = host_pids_with("sleep\0" .. mark)[1]
      if victim then break end
      core.step(20)
    end
    assert.is_not_nil(victim)
    -- a nested host with the secret in its own environment runs the block
    local src = ([[
      local agentbox = require("agentbox")
      local ex <close> = agentbox.LocalExecutor{ timeout = 10, sandbox = %s }
      local r = ex:execute{ { lang = "python", code = %q } }
      io.write(r.output)
    ]]):format(tostring(SANDBOX), ([[
import os
secret = %q
leaks, seen = [], 0
for name in os.listdir("/proc"):
    if not name.isdigit(): continue
    seen += 1
    for f in ("environ", "cmdline"):
        try:
            with open("/proc/%%s/%%s" %% (name, f), "rb") as fh:
                if secret.encode() in fh.read(): leaks.append(name + "/" + f)
        except OSError: pass
# every visible process's memory (init is a copy of the host)
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == os.getpid(): continue
    try:
        with open("/proc/%%s/maps" %% name) as m, open("/proc/%%s/mem" %% name, "rb") as mem:
            for line in m:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                try:
                    mem.seek(lo)
                    if secret.encode() in mem.read(hi - lo): leaks.append(name + "/mem")
                except (OSError, ValueError, OverflowError): pass
    except OSError: pass
print("LEAKS", leaks)
print("VICTIM_VISIBLE", os.path.exists("/proc/%d/cmdline") and "sleep" in open("/proc/%d/cmdline").read())
]]):format(secret, victim, victim))
    local r = H.lua(src, { AGENTBOX_HOST_SECRET = secret }, 60)
    assert.matches("LEAKS %[%]", r.output)
    assert.matches("VICTIM_VISIBLE False", r.output)
  end)

  it("cannot signal or ptrace a host process of the same uid", function()
    local mark = ("%d.%d"):format(60 + math.random(1000), math.random(1e6))
    host_process({ "sleep", mark })
    local pids
    for _ = 1, 100 do
      pids = host_pids_with("sleep\0" .. mark)
      if #pids > 0 then break end
      core.step(20)
    end
    assert.equal(1, #pids)
    local target = tonumber(pids[1])
    local ex <close> = new()
    local out = run(ex, "python", ([[
import ctypes, os, signal
pid = %d
try:
    os.kill(pid, signal.SIGKILL); print("KILLED")
except OSError as e: print("kill refused", e.errno)
libc = ctypes.CDLL(None, use_errno=True)
print("PTRACE", libc.ptrace(16, pid, None, None), ctypes.get_errno())
]]):format(target))
    local t = core.now() + 0.2
    while core.now() < t do core.step(20) end
    assert.is_true(H.alive(target), "the host's process was killed: " .. out)
    assert.not_matches("KILLED", out)
    assert.matches("PTRACE %-1", out)
  end)

  it("cannot connect to a server on the host's 127.0.0.1", function()
    local d = tmpdir("tcp")
    host_process({ "python3", "-c", ([[
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
open(%q + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(%q + ".tmp", %q)
while True:
    c, _ = s.accept(); open(%q, "a").write("accepted\n"); c.sendall(b"HOSTDATA"); c.close()
]]):format(d .. "/port", d .. "/port", d .. "/port", d .. "/log") })
    assert.is_true(wait_for(d .. "/port", 10))
    local port = tonumber(H.read(d .. "/port"))
    local ex <close> = new()
    local out = run(ex, "python", ([[
import socket
for host in ("127.0.0.1", "localhost", "::1"):
    try:
        c = socket.create_connection((host, %d), timeout=2); print("CONNECTED", host, c.recv(8))
    except OSError as e: print("refused", host, e)
]]):format(port))
    assert.not_matches("CONNECTED", out)
    assert.is_false(H.exists(d .. "/log"), "the host's server accepted a connection")
  end)

  it("cannot reach the host's services through unix sockets in /run (the Docker socket, D-Bus)", function()
    -- every socket under the host's /run, and one of our own where we may make it
    local d = "/run/agentbox-sbx-" .. my_pid()
    local own = core.mkdir_p(d) and d .. "/s.sock"
    if own then
      host_process({ "python3", "-c", ([[
import socket
s = socket.socket(socket.AF_UNIX); s.bind(%q); s.listen(5)
while True:
    c, _ = s.accept(); c.sendall(b"HOSTSOCK"); c.close()
]]):format(own) })
      local deadline = core.now() + 10
      while not core.realpath(own) and core.now() < deadline do core.step(20) end
      assert.is_not_nil(core.realpath(own), "the host's socket server did not start")
    end
    local ok, err = pcall(function()
      local socks = {}
      local find = io.popen("find /run /var/run -maxdepth 3 -type s 2>/dev/null")
      for line in find:lines() do socks[#socks + 1] = line end
      find:close()
      assert.is_true(#socks > 0, "no socket under /run to attack")
      local ex <close> = new()
      local out = run(ex, "python", ([[
import socket
for path in %s:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path); print("CONNECTED", path)
    except OSError as e: print("refused", path, e.strerror)
]]):format("[" .. table.concat((function()
        local q = {}
        for i, p in ipairs(socks) do q[i] = ("%q"):format(p) end
        return q
      end)(), ", ") .. "]"))
      assert.not_matches("CONNECTED", out)
    end)
    if own then os.remove(own) os.remove(d) end
    assert(ok, err)
  end)

  -- reads (issue 12: "not $HOME by default"): a secret of the running user
  -- (a fake ~/.ssh/id_rsa in a directory of ours under $HOME, /root for
  -- root), the other users' homes, an agent's unix socket under $HOME, and
  -- the host's /sys (its network interfaces, its block devices)
  it("reads nothing of $HOME, /root or /home, and cannot list them", function()
    local home = os.getenv("HOME") or "/root"
    local d = ("%s/.agentbox-spec-sbx-%d-%d"):format(home, my_pid(), math.random(1e9))
    assert(core.mkdir_p(d .. "/.ssh"))
    H.write(d .. "/.ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY----- HOMESECRET")
    local other = core.mkdir_p("/home/agentbox-spec-sbx-" .. my_pid()) and "/home/agentbox-spec-sbx-" .. my_pid() or nil
    local ok, err = pcall(function()
      local ex <close> = new()
      local out = run(ex, "python", ([[
import os
for p in (%q, %q):
    try: print("READ", open(p).read())
    except OSError as e: print("no", p, e.strerror)
for p in (%q, "/home", "/root", "/mnt", "/media", "/var/log", "/var/lib"):
    try: print("LIST", p, os.listdir(p))
    except OSError as e: print("no", p, e.strerror)
]]):format(d .. "/.ssh/id_rsa", home .. "/.bashrc", home))
      assert.not_matches("HOMESECRET", out)
      -- a listing, where a directory exists inside at all, is empty
      for list in out:gmatch("LIST [^\n]*") do assert.matches("%[%]$", list) end
      assert.not_matches("READ", out)
    end)
    H.rm_rf(d)
    if other then os.remove(other) end
    assert(ok, err)
  end)

  it("cannot connect to an agent's unix socket under $HOME (ssh-agent, gpg-agent)", function()
    local home = os.getenv("HOME") or "/root"
    local d = ("%s/.agentbox-spec-sbx-%d-%d"):format(home, my_pid(), math.random(1e9))
    assert(core.mkdir_p(d))
    local sock = d .. "/agent.sock"
    host_process({ "python3", "-c", ([[
import socket
s = socket.socket(socket.AF_UNIX); s.bind(%q); s.listen(5)
while True:
    c, _ = s.accept(); c.sendall(b"AGENTKEYS"); c.close()
]]):format(sock) })
    local ok, err = pcall(function()
      local deadline = core.now() + 10
      while not core.realpath(sock) and core.now() < deadline do core.step(20) end
      assert.is_not_nil(core.realpath(sock), "the agent's socket server did not start")
      local ex <close> = new()
      local out = run(ex, "python", ([[
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(%q); print("CONNECTED", s.recv(64))
except OSError as e: print("refused", e.strerror)
]]):format(sock))
      assert.not_matches("CONNECTED", out)
      assert.matches("refused", out)
    end)
    H.rm_rf(d)
    assert(ok, err)
  end)

  it("sees nothing of the host's /sys but the CPUs (no network interfaces, block devices, firmware)", function()
    local ex <close> = new()
    local out = run(ex, "python", [[
import os
for p in ("/sys/class/net", "/sys/block", "/sys/firmware", "/sys/kernel", "/sys/fs/cgroup"):
    try: print("LIST", p, os.listdir(p))
    except OSError as e: print("no", p, e.strerror)
print("CPUS", os.cpu_count())
]])
    for list in out:gmatch("LIST [^\n]*") do assert.matches("%[%]$", list) end
    assert.matches("CPUS %d+", out)
  end)

  it("writes only to work_dir and its private /tmp", function()
    local tag = ("agentbox-sbx-%d-%d"):format(my_pid(), math.random(1e9))
    local home = os.getenv("HOME") or "/root"
    local targets = { "/var/tmp/" .. tag, home .. "/" .. tag, "/etc/" .. tag, "/usr/" .. tag, "/tmp/" .. tag }
    local ex <close> = new()
    local ok, err = pcall(function()
      local code = { "import os" }
      for _, p in ipairs(targets) do
        code[#code + 1] = ("try:\n    open(%q, 'w').write('x'); print('WROTE', %q)\nexcept OSError as e: print('no', e)")
          :format(p, p)
      end
      code[#code + 1] = "open('in_work_dir', 'w').write('ok'); print('WORKDIR ok')"
      local out = run(ex, "python", table.concat(code, "\n"))
      assert.matches("WORKDIR ok", out)
      assert.equal("ok", H.read(ex.work_dir .. "/in_work_dir"))
      for _, p in ipairs(targets) do
        -- /tmp is writable inside, but it is the sandbox's own
        assert.is_false(H.exists(p), p .. " was written on the host: " .. out)
      end
    end)
    for _, p in ipairs(targets) do os.remove(p) end
    assert(ok, err)
  end)

  -- a root caller's code runs as uid 0 of its namespace, which must not be
  -- the host's root: the owner of every root file (mode 0600 and 0640 mean
  -- nothing to their owner). Only as root: a normal user's code runs as
  -- that user, whose files are its own anyway.
  local function stat(p)   -- "uid gid octal-mode"
    local f = io.popen("stat -c '%u %g %a' '" .. p .. "' 2>/dev/null")
    local s = f:read("l")
    f:close()
    return s
  end
  if core.geteuid() == 0 then
  it("as root, reads no root-only file: /etc/shadow, a 0600 file in read_only, /etc/ssh's host keys", function()
    local ro = tmpdir("ro")
    H.write(ro .. "/secret", "ROOTSECRET")
    assert(os.execute("chmod 0600 '" .. ro .. "/secret'"))
    local ex <close> = new{ sandbox = { read_only = { ro } } }
    local out = run(ex, "python", ([[
import glob, os
print("MAP", open("/proc/self/uid_map").read().split())
for p in ["/etc/shadow", "/etc/gshadow", %q] + glob.glob("/etc/ssh/ssh_host_*_key"):
    try: print("READ", p, open(p).read()[:20])
    except OSError as e: print("no", p, e.strerror)
]]):format(ro .. "/secret"))
    assert.not_matches("READ", out)
    assert.not_matches("ROOTSECRET", out)
    assert.matches("no /etc/shadow Permission denied", out, 1, true)
    assert.matches("no " .. ro .. "/secret Permission denied", out, 1, true)
    -- uid 0 inside is an unprivileged uid of the host's
    assert.matches("MAP ['0', '" .. core.sandbox_host_uid .. "', '1']", out, 1, true)
  end)

  it("as root, work_dir and read_write stay the code's: create, modify, delete; root-owned on the host", function()
    local rw = tmpdir("rw")
    H.write(rw .. "/old", "OLD")
    assert(os.execute("chmod 0600 '" .. rw .. "/old'"))
    local ex <close> = new{ sandbox = { read_write = { rw } } }
    H.write(ex.work_dir .. "/gone", "x")
    local out = run(ex, "python", ([[
import os, sys
rw = %q
print("OLD", open(rw + "/old").read())
open(rw + "/old", "a").write("+NEW")
open(rw + "/new", "w").write("NEW")
os.makedirs("d/e"); open("d/e/f", "w").write("F")
os.remove("gone")
print("PY", sys.executable, os.getuid(), os.stat(".").st_uid)
]]):format(rw))
    assert.matches("OLD OLD", out, 1, true)
    assert.equal("OLD+NEW", H.read(rw .. "/old"))
    assert.equal("NEW", H.read(rw .. "/new"))
    assert.equal("F", H.read(ex.work_dir .. "/d/e/f"))
    assert.is_false(H.exists(ex.work_dir .. "/gone"))
    for _, p in ipairs({ rw .. "/old", rw .. "/new", ex.work_dir .. "/d", ex.work_dir .. "/d/e/f" }) do
      assert.matches("^0 0 ", stat(p), 1, false)
    end
    assert.matches("PY %S+ 0 0", out)
  end)
  end

  -- for everyone: what the code leaves in work_dir is the caller's on the
  -- host, and an owner needs no capability to set the setuid bit
  it("leaves no setuid, setgid or capability file in work_dir and gives no file away", function()
    local ex <close> = new()
    H.write(ex.work_dir .. "/hostfile", "HOST")
    assert(os.execute("chmod 0600 '" .. ex.work_dir .. "/hostfile'"))
    local out = run(ex, "python", [[
import os, shutil
shutil.copy("/bin/sh", "sh")
for mode in (0o4755, 0o2755, 0o6755):
    try: os.chmod("sh", mode); print("CHMOD", oct(mode), oct(os.stat("sh").st_mode))
    except OSError as e: print("no chmod", oct(mode), e.strerror)
fd = os.open("sh2", os.O_CREAT | os.O_WRONLY, 0o6755)
os.write(fd, b"#!/bin/sh\nid\n"); os.close(fd)
for p, uid, gid in (("hostfile", 65534, 65534), ("sh", 1000, 1000), ("sh", 0, 65534)):
    try: os.chown(p, uid, gid); print("CHOWN", p, uid, gid)
    except OSError as e: print("no chown", p, uid, gid, e.strerror)
try:
    os.setxattr("sh", "security.capability", bytes.fromhex("0100000200100000000000000000000000000000"))
    print("SETCAP")
except OSError as e: print("no setcap", e.strerror)
]])
    assert.not_matches("CHMOD", out)
    assert.not_matches("CHOWN", out)
    assert.not_matches("SETCAP", out)
    -- the caller's on the host (root's for root: the idmapped work_dir)
    local me = core.geteuid() .. " " .. H.run({ "id", "-g" }).output:match("%d+")
    assert.equal(me .. " 600", stat(ex.work_dir .. "/hostfile"))
    for _, name in ipairs({ "sh", "sh2" }) do
      local uid, gid, mode = stat(ex.work_dir .. "/" .. name):match("^(%d+) (%d+) (%d+)$")
      assert.equal(me, uid .. " " .. gid, name)
      assert.is_true(#mode <= 3, name .. " has mode " .. mode .. " on the host: " .. out)
    end
  end)

  it("nothing survives the deadline: setsid, double fork, TERM ignored", function()
    local mark = ("%d.%d"):format(200 + math.random(1000), math.random(1e6))
    local ex <close> = new{ timeout = 2, grace = 0.3 }
    local t0 = core.now()
    local _, r = run(ex, "sh", ([[
(setsid sh -c 'trap "" TERM; while :; do date +%%s%%N > heartbeat; sleep 0.05; done' &)
(setsid sh -c 'sh -c "trap \"\" TERM; exec sleep %s" &' &)
trap "" TERM
sleep 100
]]):format(mark))
    assert.is_true(r.timed_out or r.exit_code == 124)
    assert.is_true(core.now() - t0 < 2 + 0.3 + core.deadline_margin + 1)
    local hb = ex.work_dir .. "/heartbeat"
    assert.is_true(H.exists(hb), "the heartbeat never ran")
    local before = H.read(hb)
    local t = core.now() + 0.5
    while core.now() < t do core.step(50) end
    assert.equal(before, H.read(hb), "a process of the block still writes after execute returned")
    assert.same({}, host_pids_with("sleep\0" .. mark))
  end)

  it("a fork bomb is bounded and dies with the block", function()
    local mark = ("%d.%d"):format(300 + math.random(1000), math.random(1e6))
    -- memory enough for 1024 processes: the count is what this case checks
    -- (under the default 512 MiB the memory cgroup may end the bomb first)
    local ex <close> = new{ timeout = 20, sandbox = { memory = 2 * 1024 * 1024 * 1024 } }
    -- bounded by its own loop too (3000), so that a broken sandbox cannot
    -- take the machine's pids (pid_max may be 32768) from other work
    local out = run(ex, "python", ([[
import os
n, err = 0, None
for i in range(3000):
    try:
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", %q])
        n += 1
    except OSError as e:
        err = e
        if n + 50 < i: break   # refused 50 times: bounded
print("FORKED", n, err)
print("PROCS", sum(1 for p in os.listdir("/proc") if p.isdigit()))
]]):format(mark))
    local procs_seen = tonumber(out:match("PROCS (%d+)"))
    assert.is_not_nil(procs_seen, out)
    -- RLIMIT_NPROC in the sandbox's user namespace (its processes only),
    -- and for root, whom the kernel exempts from it, the pids cgroup
    local nproc = ex:enforced().nproc
    assert.is_true(SANDBOX and math.type(nproc) == "integer", "nproc not enforced: " .. tostring(nproc))
    assert.is_true(procs_seen <= nproc + 4, "processes: " .. procs_seen)
    assert.same({}, host_pids_with("sleep\0" .. mark))
  end)

  it("TIOCSTI, TIOCLINUX, bpf and perf_event_open are refused", function()
    local ex <close> = new()
    local out = run(ex, "python", [[
import ctypes, errno, fcntl, os, termios
libc = ctypes.CDLL(None, use_errno=True)
for name, req in (("TIOCSTI", termios.TIOCSTI), ("TIOCLINUX", 0x541C)):
    for fd in (0, 1, 2):
        try:
            fcntl.ioctl(fd, req, b"x"); print(name, "DONE")
        except OSError as e: print(name, errno.errorcode[e.errno])
# a terminal of the host's (its pseudo-terminals, the controlling tty)
import glob
for path in glob.glob("/dev/pts/[0-9]*") + ["/dev/tty", "/dev/console"]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        print("open", path, errno.errorcode[e.errno]); continue
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x"); print("TIOCSTI", path, "DONE")
    except OSError as e: print("TIOCSTI", path, errno.errorcode[e.errno])
attr = (ctypes.c_char * 128)()
print("BPF", libc.syscall(321, 5, attr, 128), errno.errorcode.get(ctypes.get_errno()))
print("PERF", libc.syscall(298, attr, 0, -1, -1, 0), errno.errorcode.get(ctypes.get_errno()))
]])
    assert.not_matches("DONE", out)
    for _, name in ipairs({ "TIOCSTI", "TIOCLINUX" }) do
      assert.matches(name .. " EPERM", out)
      assert.not_matches(name .. " ENOTTY", out)
    end
    assert.matches("BPF %-1 EPERM", out)
    assert.matches("PERF %-1 EPERM", out)
  end)

  it("cannot regain capabilities in a new user namespace and mount", function()
    local ex <close> = new()
    local out = run(ex, "sh", [[
grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status
unshare -Ur sh -c 'mount -t tmpfs none /mnt && echo MOUNTED' 2>&1
python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("UNSHARE", libc.unshare(0x10000000), ctypes.get_errno())
print("MOUNT", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno())
'
]])
    assert.not_matches("MOUNTED", out)
    assert.matches("UNSHARE %-1 1\n", out)
    assert.matches("MOUNT %-1 1\n", out)
    if SANDBOX then
      assert.matches("CapEff:%s+0000000000000000", out)
      assert.matches("CapBnd:%s+0000000000000000", out)
    end
  end)
end)
