-- LocalExecutor's daemonless sandbox (`sandbox = true | { settings }`):
-- its settings checked by name, the environment variable AGENTBOX_SANDBOX,
-- the probe at construction that fails closed naming the missing kernel
-- feature and the setting to change, and what `ex:enforced()` reports.
-- The sandbox itself is C: src/sandbox.h (namespaces, init, capabilities),
-- src/sandbox_fs.c (the mounts), src/seccomp.c (the filter).
local core = require("agentbox.core")
local errors = require("agentbox.errors")

local M = {}

M.DEFAULT_TMP = 64 * 1024 * 1024
-- the run's memory cgroup limit: DockerExecutor's default (512m, no swap),
-- so a block that fits one fits the other; /tmp (tmpfs) counts in it
M.DEFAULT_MEMORY = 512 * 1024 * 1024
-- below it python3 alone (about 10 MiB) would not start
M.MIN_MEMORY = 16 * 1024 * 1024
-- processes of the block at once: RLIMIT_NPROC, which in the sandbox's own
-- user namespace counts the block's processes only (not the user's others)
M.DEFAULT_NPROC = 1024

-- What the sandbox sees of the host by default, read-only: the system
-- directories an interpreter needs (programs, libraries, /etc's
-- configuration; /opt, where vendors install interpreters), and of /sys
-- only the CPUs (numpy's OpenBLAS and os.cpu_count read them; the host's
-- network interfaces, block devices and firmware stay out), of /var only
-- the system's font cache (without it fontconfig, under matplotlib, would
-- rebuild one into $HOME = work_dir in every block). Not $HOME, /root,
-- /home, /mnt, /media, /srv, the rest of /var, /run: they do not exist
-- inside (/run and /var/tmp are empty).
-- Links (/bin -> usr/bin) are recreated as links. Both layers follow this
-- list: the mounts (sandbox_fs.c) and Landlock's read rules.
M.SYSTEM = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
             "/sys/devices/system/cpu", "/var/cache/fontconfig" }

-- guarantees a setting can make mandatory (the core ones always are)
local OPTIONAL = { landlock = true, cgroup = true }

local function paths(v, what, name)
  if v == nil then return {} end
  if type(v) == "table" and #v > 40 then
    errors.misuse("%s: sandbox.%s: at most 40 paths", what, name)
  end
  if type(v) ~= "table" then
    errors.misuse("%s: sandbox.%s must be an array of paths, got %s", what, name, type(v))
  end
  local out = {}
  for i, p in ipairs(v) do
    if type(p) ~= "string" or p == "" then
      errors.misuse("%s: sandbox.%s[%d] must be a non-empty path string", what, name, i)
    end
    local real = core.realpath(p)
    if not real then
      errors.misuse("%s: sandbox.%s[%d] = %q does not exist (it is bound at the same path inside the sandbox)",
        what, name, i, p)
    end
    out[#out + 1] = real
  end
  return out
end

local SETTINGS = {
  read_only = function(v, what) return paths(v, what, "read_only") end,
  read_write = function(v, what) return paths(v, what, "read_write") end,
  tmp_size = function(v, what)
    if v == nil then return M.DEFAULT_TMP end
    if math.type(v) ~= "integer" or v < 4096 then
      errors.misuse("%s: sandbox.tmp_size must be an integer number of bytes >= 4096 (the private /tmp), got %s",
        what, tostring(v))
    end
    return v
  end,
  memory = function(v, what)
    if v == nil then return M.DEFAULT_MEMORY end
    if v == false then return false end
    if math.type(v) ~= "integer" or v < M.MIN_MEMORY then
      errors.misuse("%s: sandbox.memory must be an integer number of bytes >= %d (16 MiB; the run's memory cgroup, "
        .. "/tmp included), or false for none, got %s", what, M.MIN_MEMORY, tostring(v))
    end
    return v
  end,
  require = function(v, what)
    if v == nil then return {} end
    if type(v) ~= "table" then
      errors.misuse("%s: sandbox.require must be an array of guarantees, e.g. { \"landlock\", \"cgroup\" }", what)
    end
    local out = {}
    for i, name in ipairs(v) do
      if not OPTIONAL[name] then
        errors.misuse("%s: sandbox.require[%d] = %s is not an optional guarantee (known: cgroup, landlock; user, "
          .. "PID, mount and network namespaces, seccomp and no_new_privs are always required)", what, i,
          tostring(name))
      end
      out[name] = true
    end
    return out
  end,
  network = function(v, what)
    if v ~= nil and v ~= false then
      errors.misuse("%s: sandbox.network can only be false (the sandbox has no network, not even the host's "
        .. "loopback); use DockerExecutor for code that needs the network", what)
    end
    return false
  end,
}

local function env_default(what)
  local v = os.getenv("AGENTBOX_SANDBOX")
  if v == nil or v == "" then return nil end
  local l = v:lower()
  if l == "1" or l == "true" or l == "yes" then return true end
  if l == "0" or l == "false" or l == "no" then return false end
  errors.misuse("%s: invalid AGENTBOX_SANDBOX=%q: 1/true/yes (the daemonless sandbox where sandbox is not given) "
    .. "or 0/false/no", what, v)
end

--- LocalExecutor's `sandbox` option: nil (AGENTBOX_SANDBOX decides, else
--- off), false, true or a table of settings. Returns nil (off) or the
--- checked settings.
function M.check(v, what)
  if v == nil then v = env_default(what) end
  if v == nil or v == false then return nil end
  if v == true then v = {} end
  if type(v) ~= "table" then
    errors.misuse("%s: sandbox must be true, false or a table of settings { read_only =, read_write =, tmp_size =, "
      .. "memory =, require =, network = false }", what)
  end
  for k in pairs(v) do
    if not SETTINGS[k] then
      errors.misuse("%s: unknown sandbox setting '%s' (known: memory, network, read_only, read_write, require, "
        .. "tmp_size)",
        what, tostring(k))
    end
  end
  local s = {}
  for _, k in ipairs({ "read_only", "read_write", "tmp_size", "memory", "require", "network" }) do
    s[k] = SETTINGS[k](v[k], what)
  end
  return s
end

local function sysctl(name)
  local f = io.open("/proc/sys/" .. name:gsub("%.", "/"), "r")
  if not f then return nil end
  local v = f:read("l")
  f:close()
  return v
end

-- What to change, from the step that failed and its errno.
local function advice(step, errno)
  local tips = {}
  local maxns = sysctl("user.max_user_namespaces")
  if maxns == "0" or errno == 28 then   -- ENOSPC: the user namespace count limit
    tips[#tips + 1] = ("user.max_user_namespaces is %s: raise it (sysctl -w user.max_user_namespaces=15000)")
      :format(maxns or "at its limit")
  end
  if sysctl("kernel.unprivileged_userns_clone") == "0" then
    tips[#tips + 1] = "kernel.unprivileged_userns_clone is 0 (Debian kernels): sysctl -w "
      .. "kernel.unprivileged_userns_clone=1"
  end
  if sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1" then
    tips[#tips + 1] = "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 23.10+): set it to 0, or give "
      .. "the host program an AppArmor profile that allows userns"
  end
  if errno == 38 then tips[#tips + 1] = "the kernel is too old for this step (Linux 5.12 or newer is needed)" end
  if errno == 22 and step:find("^creating") then
    tips[#tips + 1] = "the kernel lacks a namespace type (CONFIG_USER_NS, CONFIG_PID_NS, CONFIG_NET_NS)"
  end
  if #tips == 0 then
    tips[1] = "unprivileged user namespaces are unavailable here (check user.max_user_namespaces, "
      .. "kernel.unprivileged_userns_clone, Ubuntu's kernel.apparmor_restrict_unprivileged_userns, a container's "
      .. "seccomp profile)"
  end
  return table.concat(tips, "; ")
end

--- How a run gets its cgroup where none is writable (README "The daemonless sandbox").
M.CGROUP_HOWTO = "a memory and pids cgroup per run needs root (cgroup v1 or v2), or a cgroup v2 delegated to this "
  .. "user with the host in a leaf of it: systemd-run --user --scope -p Delegate=yes sh -c 'cg=/sys/fs/cgroup$(sed -n "
  .. "\"s/^0:://p\" /proc/self/cgroup); mkdir $cg/host; echo $$ > $cg/host/cgroup.procs; echo +memory +pids +cpu > "
  .. "$cg/cgroup.subtree_control; exec lua5.4 host.lua'"

local function dirname(p) return p:match("^(.*)/[^/]*$") or "/" end

-- The existing directory whose filesystem work_dir is (or will be) on:
-- work_dir, else the nearest directory above it, else the temp directory
-- a fresh one is made in (workspace.lua).
local function work_dir_base(work_dir)
  local p = work_dir
  if p == nil then
    local t = os.getenv("TMPDIR")
    p = t and t:sub(1, 1) == "/" and t or "/tmp"
  end
  if p:sub(1, 1) ~= "/" then p = (core.realpath(".") or "") .. "/" .. p end
  while p ~= "" do
    local real = core.realpath(p)
    if real then return real end
    p = dirname(p)
  end
  return "/"
end

-- The type of the filesystem path is on (/proc/self/mountinfo: the
-- deepest mount point above it), for an error message.
local function fs_type(path)
  local f = io.open("/proc/self/mountinfo")
  if not f then return "unknown" end
  local best, kind = "", "unknown"
  for line in f:lines() do
    local mnt, fstype = line:match("^%S+ %S+ %S+ %S+ (%S+) .- %- (%S+)")
    if mnt and #mnt >= #best and (mnt == "/" or path == mnt or path:sub(1, #mnt + 1) == mnt .. "/") then
      best, kind = mnt, fstype
    end
  end
  f:close()
  return kind
end

--- Fail closed at construction: the setup runs once in a child; an error
--- names the step, the kernel's answer and the setting to change. For a
--- root caller it also gives work_dir's filesystem (work_dir, or where it
--- will be made) and the read_write paths an idmapped mount, as every run
--- does (sandbox.h): a filesystem that cannot take one is an error now,
--- not at the first block. Returns what the probe found ({ cgroup = { version =,
--- memory =, pids =, cpu = } | false, cgroup_why =, host_uid =, landlock_abi = }).
function M.probe(s, what, work_dir)
  local tried, base = {}, nil
  if core.geteuid() == 0 then
    for _, p in ipairs(s.read_write) do tried[#tried + 1] = p end
    base = work_dir_base(work_dir)
    -- the root mount alone cannot stand in for work_dir (moved onto the
    -- sandbox's root); its filesystem is tried at the first block
    if base ~= "/" then tried[#tried + 1] = base end
  end
  local ok, step, msg, errno = core.sandbox_probe(tried)
  local cloned = not ok and step:match("^opening a detached mount %(open_tree%) of (.+)$")
  if cloned then
    errors.misuse("%s: sandbox: as root the supervisor clones %s as a detached mount to idmap it, and the kernel "
      .. "refused (open_tree: %s): a root without CAP_SYS_ADMIN in the host's namespaces (a container's root?). Run "
      .. "the host as a normal user, or use DockerExecutor", what, cloned, msg)
  end
  local bad = not ok and step:match("^giving (.-) an idmapped mount")
  if bad then
    local which = "read_write path " .. bad
    if bad == base then
      which = work_dir and core.realpath(work_dir) == bad and "work_dir " .. bad
        or ("work_dir (%s, to be made in %s)"):format(work_dir or "a fresh one", bad)
    end
    errors.misuse("%s: sandbox: %s is on a filesystem (%s) that cannot take an idmapped mount (mount_setattr: %s). As "
      .. "root the sandbox runs the code as an unprivileged uid (%d), so that it cannot read root's files; its "
      .. "writable paths stay writable, with what it creates owned by root, through an idmapped mount only. Run the "
      .. "host as a normal user, or put work_dir and the read_write paths on ext4, xfs, btrfs or tmpfs (TMPDIR "
      .. "for a fresh work_dir)", what, which, fs_type(bad), msg, core.sandbox_host_uid)
  end
  if not ok then
    errors.misuse("%s: sandbox: this host cannot give the sandbox's required isolation: %s failed (%s). %s. "
      .. "Or use DockerExecutor, or LocalExecutor without sandbox (no isolation)", what, step, msg,
      advice(step, errno))
  end
  -- Landlock (landlock.c) where the kernel has it: applied in every run
  -- after the mounts, required when the settings say so
  local abi = core.landlock_abi()
  step.landlock_abi = type(abi) == "number" and abi > 0 and abi or nil
  if s.require.landlock and not step.landlock_abi then
    errors.misuse("%s: sandbox.require names landlock, which this kernel does not offer (%s)", what,
      tostring(select(2, core.landlock_abi())))
  end
  -- the run's cgroup (sandbox_cgroup.c): memory and pids where a hierarchy
  -- is writable; required, each run also refuses to start without it
  if s.require.cgroup and not step.cgroup then
    errors.misuse("%s: sandbox.require names cgroup, which is not in force here (no writable cgroup: %s); %s", what,
      step.cgroup_why, M.CGROUP_HOWTO)
  end
  return step
end

local function under(p, dir)
  return p == dir or p:sub(1, #dir + 1) == dir .. "/" or dir == "/"
end

-- The system directories of this host (those that exist), as the mounts
-- and Landlock take them: the paths themselves, links not resolved.
local function system_dirs()
  local out = {}
  for _, d in ipairs(M.SYSTEM) do
    if core.realpath(d) then out[#out + 1] = d end
  end
  return out
end

--- The interpreter the executor runs (python3 from PATH, or the option
--- `python`), where it lives under a hidden path (a venv or pyenv under
--- $HOME, /srv): its prefix (the directory above its bin/ or shims/) is added
--- read-only, for the path as given and for the file it resolves to, and
--- enforced() says so. Returns the prefixes added (maybe none).
function M.interpreter_paths(s, python, work_dir)
  if not python then return {} end
  local seen = { work_dir }
  for _, d in ipairs(system_dirs()) do seen[#seen + 1] = core.realpath(d) or d end
  for _, d in ipairs(s.read_only) do seen[#seen + 1] = d end
  for _, d in ipairs(s.read_write) do seen[#seen + 1] = d end
  local added = {}
  for _, p in ipairs({ python, core.realpath(python) }) do
    local visible = false
    for _, d in ipairs(seen) do visible = visible or under(p, d) end
    if not visible then
      local dir = dirname(p)
      -- a venv's or an install's bin/, pyenv's shims/ (which run its libexec/pyenv)
      local prefix = (dir:match("/bin$") or dir:match("/shims$")) and dirname(dir) or dir
      prefix = core.realpath(prefix) or prefix
      if prefix ~= "/" then
        added[#added + 1] = prefix
        seen[#seen + 1] = prefix
      end
    end
  end
  return added
end

--- The paths a sandboxed run sees read-only: the system directories, then
--- the interpreter's prefix where it is hidden, then the read_only setting.
function M.read_view(s, extra)
  local out = system_dirs()
  for _, p in ipairs(extra or {}) do out[#out + 1] = p end
  for _, p in ipairs(s.read_only) do out[#out + 1] = p end
  return out
end

--- The core.spawn landlock option of a sandboxed run (its paths are the
--- sandbox's): reads and executes in the read view (the same list as the
--- mounts, so neither layer opens what the other hides) and the fresh
--- /proc and /dev; writes only to work_dir, the private /tmp and /dev/shm,
--- the read_write paths and the harmless devices. nil where the kernel has
--- no Landlock.
function M.landlock_option(s, info, work_dir, extra)
  if not info.landlock_abi then return nil end
  local read = M.read_view(s, extra)
  read[#read + 1] = "/proc"
  read[#read + 1] = "/dev"
  local write = { work_dir, "/tmp", "/dev/shm", "/dev/null", "/dev/zero", "/dev/full" }
  for _, p in ipairs(s.read_write) do write[#write + 1] = p end
  return { read = read, write = write, required = s.require.landlock or false }
end

--- The core.spawn option for a run.
function M.spawn_option(s, extra)
  return { read_only = M.read_view(s, extra), read_write = s.read_write, tmp_size = s.tmp_size, loopback = true,
           memory = s.memory or 0, cgroup_required = s.require.cgroup or false,
           -- the next block's sandbox made while this one runs (src/sandbox_spare.c)
           spare = true }
end

-- enforced()'s limits, memory and cgroup of a sandboxed executor
local function cgroup_report(self)
  local s, info, nproc = self.sandbox, self._sandbox_info, self._rlimits.nproc
  local cg = info.cgroup
  if not cg then
    local why = "no writable cgroup: " .. info.cgroup_why
    return "rlimits (" .. why .. ")", s.memory and ("not enforced (" .. why .. ")") or false, false
  end
  local parts = { ("rlimits, cgroup v%d: "):format(cg.version) }
  if s.memory then parts[#parts + 1] = ("memory %d, "):format(s.memory) end
  parts[#parts + 1] = ("pids %s"):format(math.type(nproc) == "integer" and nproc or "max")
  -- the weight of one task at nice: v2 in the run's cgroup, v1 cgroup.c's cpu cgroup
  if cg.cpu and self.nice > 0 then parts[#parts + 1] = ", cpu weight" end
  return table.concat(parts), s.memory,
    { version = cg.version, memory = s.memory and true or false, pids = true, cpu = cg.cpu and self.nice > 0 }
end

--- ex:enforced() of a LocalExecutor: what its runs really get.
function M.enforced(self)
  local s = self.sandbox
  local uid = core.geteuid()
  if not s then
    return { sandbox = false, user_ns = false, pid_ns = false, mount_ns = false, net_ns = false, ipc_ns = false,
             uts_ns = false, landlock = "none", seccomp = true, no_new_privs = true, capabilities = "inherited",
             limits = "rlimits", network = "host", filesystem = "host (the user's rights)" }
  end
  local limits, memory, cgroup = cgroup_report(self)
  -- a root caller's uid 0 inside is an unprivileged uid of the host's
  -- (sandbox.h): it owns no root file, and RLIMIT_NPROC binds it (the
  -- kernel exempts only the host's uid 0)
  return { sandbox = true, user_ns = true, pid_ns = true, mount_ns = true, net_ns = true, ipc_ns = true,
           uts_ns = true, uid_map = ("%d -> %d"):format(uid, self._sandbox_info.host_uid), capabilities = "none",
           landlock = self._sandbox_info.landlock_abi or "none", seccomp = true, no_new_privs = true,
           limits = limits, memory = memory, cgroup = cgroup,
           nproc = self._rlimits.nproc,
           network = "none",
           filesystem = "system directories read-only; work_dir writable; private /tmp; nothing else of the host",
           -- what the code can read (mounts and Landlock alike), beside work_dir, /tmp, /proc (its own), /dev
           -- (minimal)
           readable = M.read_view(s, self._sandbox_interp),
           interpreter_added = self._sandbox_interp,
           tmp_size = s.tmp_size, read_only = s.read_only, read_write = s.read_write }
end

return M
