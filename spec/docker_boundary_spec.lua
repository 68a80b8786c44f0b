-- DockerExecutor's boundary: the sandbox user is never root in any
-- spelling, the in-container supervisor refuses to run a program as root,
-- and the code cannot signal anything that keeps the container alive.
-- (The supervisor attacks run for both executors in supervisor_attack_spec.)
local agentbox = require("agentbox")
local C = require("spec.support.contract")
local H = require("spec.support.helpers")

local SUP = os.getenv("AGENTBOX_SUP")

describe("DockerExecutor user #docker", function()
  local dirs = {}
  after_each(function()
    for i = #dirs, 1, -1 do H.rm_rf(dirs[i]) dirs[i] = nil end
  end)

  -- each spelling is refused at construction; if one is not, the code must
  -- still not run as uid 0 or gid 0 (the attack, run for real)
  local ROOTS = { "0", "00", "0:0", "00:00", "000:1000", "1000:0", "1000:00", "+0:1", "-0:1", "0x0:1", "root",
                  "root:root", "0:", ":0", " 0:1", "0:1 ", "4294967296:1", "1:4294967296", "4294967295:1",
                  "18446744073709551616:1", "", "1000", 0, 1000, true }
  for _, u in ipairs(ROOTS) do
    it("refuses user = " .. (type(u) == "string" and ("%q"):format(u) or tostring(u)), function()
      C.need_docker()
      local dir = H.tmpdir("user")
      dirs[#dirs + 1] = dir
      local ok, ex = pcall(agentbox.DockerExecutor, { image = C.IMAGE, work_dir = dir, user = u, timeout = 20 })
      if ok then
        local r = ex:execute{ { lang = "sh", code = "id -u; id -g" } }
        ex:close()
        error(("user = %s was accepted and ran as uid:gid %s"):format(tostring(u), r.output:gsub("\n", " ")))
      end
      assert.matches('user must be a numeric "uid:gid" with neither of them 0', ex)
    end)
  end

  it("accepts a numeric uid:gid, leading zeros and all, and runs the code as exactly that", function()
    C.need_docker()
    local dir = H.tmpdir("user")
    dirs[#dirs + 1] = dir
    local ex <close> = agentbox.DockerExecutor{ image = C.IMAGE, work_dir = dir, user = "01234:0567", timeout = 20 }
    assert.equal("1234:567", ex.user)
    local r = ex:execute{ { lang = "sh", code = "id -u; id -g; id -G; grep -E '^(Cap(Eff|Prm)|NoNewPrivs)' /proc/self/status" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("1234\n567\n567\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n", r.output)
  end)
end)

describe("the in-container supervisor (agentbox-sup)", function()
  -- run on the host, as root: a uid no process uses, because -u also kills
  -- every process of that uid (in a container, the sandbox's alone)
  local FREE = "64123:64123"

  it("refuses to run a program as root, in any spelling, or without -u when it is root", function()
    for _, u in ipairs({ "0:0", "00:1", "1:00", "0", "root:root", "+1:1", "1:1x" }) do
      local r = H.run({ SUP, "-u", u, "--", "id", "-u" })
      assert.equal(125, r.exit_code, u .. ": " .. r.output)
      assert.matches("%-u wants a numeric uid:gid, neither of them 0", r.stderr)
    end
    local r = H.run({ SUP, "--", "id", "-u" })
    assert.equal(125, r.exit_code, r.output)
    assert.matches("refusing to run a program as root", r.stderr)
  end)

  it("drops to uid:gid with no capability, no supplementary group, under the seccomp filter", function()
    local r = H.run({ SUP, "-u", FREE, "--", "sh", "-c",
      "id -u; id -g; id -G; grep -E '^(Cap(Eff|Prm|Inh)|NoNewPrivs|Seccomp):' /proc/self/status" })
    assert.equal(0, r.exit_code, r.output)
    assert.equal("64123\n64123\n64123\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
      .. "CapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n", r.stdout)
  end)

  it("fails closed when it cannot drop privileges (not root)", function()
    -- a supervisor that is itself uid 64123 cannot become another user
    local r = H.run({ SUP, "-u", FREE, "--", SUP, "-u", "64124:64124", "--", "id", "-u" })
    assert.equal(125, r.exit_code, r.output)
    assert.matches("refusing to run the program: cannot drop privileges", r.stderr)
    assert.not_matches("64124", r.stdout)
  end)

  it("kills every process of the sandbox uid before and after the block, wherever it went", function()
    -- a process of the uid that is not the supervisor's descendant (setsid,
    -- reparented to init): the next run's sweep kills it
    -- (os.execute: core.spawn's own supervisor would kill it)
    assert.is_true(os.execute("setsid -f setpriv --reuid=64123 --regid=64123 --clear-groups sleep 300 "
                              .. "</dev/null >/dev/null 2>&1"))
    local function pids()
      -- (zombies do not count: this machine's PID 1 may be slow to reap them)
      local out = H.run({ "ps", "-u", "64123", "-o", "stat=" }).stdout or ""
      local n = 0
      for st in out:gmatch("%S+") do if not st:find("Z") then n = n + 1 end end
      return n
    end
    for _ = 1, 50 do if pids() > 0 then break end os.execute("sleep 0.05") end
    assert.equal(1, pids())
    local r = H.run({ SUP, "-u", FREE, "--", "true" })
    assert.equal(0, r.exit_code, r.output)
    assert.equal(0, pids())
    -- and what the block itself leaves behind, setsid'd and double-forked
    r = H.run({ SUP, "-u", FREE, "--", "sh", "-c", "(setsid sleep 300 >/dev/null 2>&1 </dev/null &) ; echo started" })
    assert.equal("started\n", r.stdout)
    assert.equal(0, pids())
  end)
end)

describe("DockerExecutor: what keeps the container alive is out of the code's reach #docker", function()
  it("tini, the keep-alive and the supervisor cannot be signalled or traced", function()
    C.need_docker()
    local dir = H.tmpdir("keep")
    -- a path agentbox creates: a root-owned existing one is refused
    local ex <close> = agentbox.DockerExecutor{ image = C.IMAGE, work_dir = dir .. "/w", timeout = 20 }
    ex:start()
    local id = ex.container_id
    local r = ex:execute{ { lang = "python", code = table.concat({
      "import os, signal",
      "for p in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):",
      "    if p == os.getpid(): continue",
      "    for s in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):",
      "        try: os.kill(p, s); print('signalled', p, s)",
      "        except OSError as e: pass",
      "print('end')",
    }, "\n") } }
    assert.equal("end\n", r.output)
    assert.equal(0, r.exit_code)
    assert.equal("ok\n", ex:execute{ { lang = "sh", code = "echo ok" } }.output)
    assert.equal(id, ex.container_id)
    H.rm_rf(dir)
  end)
end)
