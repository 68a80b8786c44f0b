-- DockerExecutor and the Engine API client against the real daemon: what
-- only this executor does (what every executor does is the contract,
-- spec/executor_contract_spec.lua). Tagged #docker. Docker unreachable:
-- pending with the reason, except under CI=true, where every case fails (CI
-- must never pass without having run them): spec/support/contract.lua's gate.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local IMAGE = C.IMAGE
local reachable = docker.available()
local client = docker.client()

-- `it` that first requires a reachable daemon
local dit = C.docker_it(client)

local function exists(id)
  local _, _, code = client:inspect(id)
  return code ~= "not_found"
end

local lua_env = H.lua_env

-- Start a background process and return it with its first output line.
local function spawn_line(argv, env)
  local p = assert(core.spawn{ argv = argv, env = env or lua_env(), timeout = 300, stream = true })
  local got = H.first_line(p)
  return p, got:match("^([^\n]*)"), got
end

describe("DockerExecutor #docker", function()
  local base, dir, ex
  setup(function()
    -- a path agentbox creates: an existing root-owned work_dir is refused
    base = H.tmpdir("docker")
    dir = base .. "/w"
    if reachable then ex = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, timeout = 10 } end
  end)
  teardown(function()
    if ex then ex:close() end
    H.rm_rf(base)
  end)

  describe("sandbox", function()
    dit("the code cannot kill or stop its own supervisor (root), and its orphans die with the block", function()
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, timeout = 10 }
      e:start()
      local old = e.container_id
      local r = e:execute{ { lang = "sh", code = "(sleep 2; echo x > late_orphan) >/dev/null 2>&1 </dev/null &\n"
                                                 .. "kill -9 $PPID; kill -STOP $PPID; echo survived" } }
      assert.equal(0, r.exit_code, r.output)
      -- both kills refused (stderr), and the script went on (stdout; the
      -- two streams may arrive in either order)
      local _, refused = r.output:gsub("Operation not permitted", "")
      assert.equal(2, refused, r.output)
      assert.matches("survived", r.output)
      assert.equal(old, e.container_id)
      agentbox.sleep(2.5)
      assert.is_false(H.exists(dir .. "/late_orphan"))
      assert.equal("fresh\n", e:execute{ { lang = "sh", code = "echo fresh" } }.output)
    end)

    dit("rejects its own bad options clearly", function()
      assert.has_error(function() agentbox.DockerExecutor{ user = "0:0" } end,
        'agentbox.DockerExecutor: user must be a numeric "uid:gid" with neither of them 0, e.g. "1000:1000" (names are not '
        .. 'resolved: the code never runs as root or group root), got "0:0"')
      assert.has_error(function() agentbox.DockerExecutor{ memory = "lots" } end)
      assert.has_error(function() agentbox.DockerExecutor{ transfer = "ftp" } end,
        "agentbox.DockerExecutor: transfer must be \"bind\" or \"archive\"")
    end)

    dit("runs as a non-root user that owns the work_dir's files", function()
      local r = ex:execute{ { lang = "sh", code = "id -u; id -g; touch made_here" } }
      assert.equal(0, r.exit_code, r.output)
      local uid = tonumber(r.output:match("^(%d+)"))
      assert.is_true(uid ~= 0, r.output)
      local st = H.run({ "stat", "-c", "%u", dir .. "/made_here" })
      assert.equal(uid, tonumber(st.stdout))
    end)

    dit("cannot connect out: a public address and the docker bridge gateway", function()
      local gw = "172.17.0.1"
      local net = client:call("inspect network bridge", { path = "/networks/bridge" })
      if net and net.IPAM and net.IPAM.Config ~= docker.null and net.IPAM.Config[1] then
        gw = net.IPAM.Config[1].Gateway or gw
      end
      for _, target in ipairs({ "1.1.1.1", gw }) do
        local r = ex:execute{ { lang = "python", code = ("import socket\nsocket.create_connection((%q, 80), timeout=3)\n"
          .. "print('connected')"):format(target) } }
        assert.is_true(r.exit_code ~= 0, target .. ": " .. r.output)
        assert.not_matches("connected", r.output)
        assert.matches("OSError", r.output)
      end
    end)

    dit("cannot write outside /workspace and /tmp", function()
      local r = ex:execute{ { lang = "sh", code = table.concat({
        "for p in /x /etc/x /usr/x /home/agent/x /opt/agentbox/x /opt/agentbox/sup /var/tmp/x /root/x; do",
        "  if (echo hi > $p) 2>/dev/null; then echo \"WROTE $p\"; fi",
        "done",
        "echo hi > /tmp/ok && echo hi > /workspace/ok && echo tmp-and-workspace-ok" }, "\n") } }
      assert.equal("tmp-and-workspace-ok\n", r.output)
    end)

    dit("survives a fork bomb: non-zero exit, the next execution and the host are fine", function()
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, timeout = 4 }
      local t0 = core.now()
      local r = e:execute{ { lang = "python", code = "import os\nwhile True:\n    try:\n        os.fork()\n"
                                                     .. "    except OSError:\n        pass" } }
      assert.is_true(r.exit_code ~= 0, r.output)
      assert.is_true(core.now() - t0 < 20)
      assert.equal("1\n", e:execute{ { lang = "python", code = "print(1)" } }.output)
      assert.equal("host ok\n", H.run({ "sh", "-c", "echo host ok" }).stdout)
    end)

    dit("reports a 2 GiB allocation under a 128 MiB limit as out of memory", function()
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, memory = "128m", timeout = 30 }
      local r = e:execute{ { lang = "python", code = "print('allocating', flush=True)\nx = bytearray(2 * 1024 ** 3)\n"
                                                     .. "print('survived')" } }
      assert.equal(137, r.exit_code)
      assert.matches("^allocating\n", r.output)
      assert.not_matches("survived", r.output)
      assert.matches("out of memory", r.output)
      assert.equal("1\n", e:execute{ { lang = "python", code = "print(1)" } }.output)
    end)

    dit("reads back the HostConfig it asked for, limit by limit", function()
      local data = H.tmpdir("data")
      H.write(data .. "/in.txt", "data")
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, memory = "256m", cpus = 0.5,
                                                 pids_limit = 100, tmpfs = "32m",
                                                 mounts = { { source = data, target = "/data" } } }
      e:start()
      assert.is_nil(e.warnings)
      local info = assert(client:inspect(e.container_id))
      local hc = info.HostConfig
      assert.equal("none", hc.NetworkMode)
      assert.is_true(hc.ReadonlyRootfs)
      assert.same({ "ALL" }, hc.CapDrop)
      assert.same({ "KILL", "SETUID", "SETGID" }, hc.CapAdd)
      assert.same({ "no-new-privileges" }, hc.SecurityOpt)
      assert.is_true(hc.Init)
      assert.equal(100, hc.PidsLimit)
      assert.equal(256 * 1024 * 1024, hc.Memory)
      assert.equal(256 * 1024 * 1024, hc.MemorySwap)
      assert.equal(500000000, hc.NanoCpus)
      assert.same({ ["/tmp"] = "rw,size=33554432,mode=1777" }, hc.Tmpfs)
      -- root for tini, the keep-alive and the supervisor; the code runs as run_user
      assert.equal("0:0", info.Config.User)
      assert.not_matches("^0*:", e.run_user)
      assert.equal("1", info.Config.Labels.agentbox)
      -- the owner identity, split as README documents the labels
      assert.equal(core.owner(), info.Config.Labels["agentbox.pid"] .. "-" .. info.Config.Labels["agentbox.started"])
      assert.equal(H.read("/proc/self/stat"):match("^%d+"), info.Config.Labels["agentbox.pid"])
      assert.equal(core.hostname(), info.Config.Labels["agentbox.host"])
      local mounts = {}
      for _, m in ipairs(info.Mounts) do mounts[m.Destination] = m end
      assert.equal(core.realpath(dir), mounts["/workspace"].Source)
      assert.is_true(mounts["/workspace"].RW)
      assert.is_false(mounts["/opt/agentbox/sup"].RW)
      assert.is_false(mounts["/data"].RW)
      -- and the kernel enforces them (cgroup v1 or v2 files, whichever exist)
      local r = e:execute{ { lang = "python", code = table.concat({
        "import os",
        "def rd(*ps):",
        "    for p in ps:",
        "        if os.path.exists(p): return open(p).read().split()",
        "print(rd('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes')[0])",
        "print(rd('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max')[0])",
        "q = rd('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us')",
        "p = rd('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_period_us')",
        "print(int(q[0]) / int(p[-1]))",
        "print(open('/data/in.txt').read())",
        "import sys; sys.stdout.flush(); sys.stderr.flush()",
        "import time; time.sleep(0.05)",  -- stdout and stderr are two pipes: keep their order
        "open('/data/w', 'w')" }, "\n") } }
      assert.matches("^268435456\n100\n0%.5\ndata\n", r.output)
      assert.matches("Read%-only file system", r.output)
      assert.is_false(H.exists(data .. "/w"))
      H.rm_rf(data)
    end)

    dit("leaves no container behind after close", function()
      local e = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir }
      e:execute{ { lang = "python", code = "print(1)" } }
      local id = e.container_id
      assert.is_true(exists(id))
      e:close()
      assert.is_false(exists(id))
      local mine = assert(client:list({ label = { "agentbox.pid=" .. core.owner():match("^%d+") } }))
      for _, c in ipairs(mine) do assert.is_true(c.Id ~= id) end
    end)

    dit("cancelling a task mid-block kills the code (its container goes) and the executor recovers", function()
      local e = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, timeout = 30 }
      e:start()
      local id = e.container_id
      local t = agentbox.spawn(function()
        return e:execute{ { lang = "sh", code = "(sleep 2; echo x > late_cancel) & sleep 20" } }
      end)
      local t0 = core.now()
      while core.now() - t0 < 1 do agentbox.step(10) end
      assert.is_false(t:done())
      assert.is_true(t:cancel())
      agentbox.run()
      assert.same({ nil, "cancelled", "cancelled" }, { t:result() })
      local t1 = core.now()
      while exists(id) and core.now() - t1 < 10 do agentbox.sleep(0.1) end
      assert.is_false(exists(id))
      agentbox.sleep(1.5)
      assert.is_false(H.exists(dir .. "/late_cancel"))
      assert.equal("ok\n", e:execute{ { lang = "sh", code = "echo ok" } }.output)
      e:close()
    end)

    dit("runs several executors at once on one reactor", function()
      local exs, tasks = {}, {}
      for i = 1, 3 do exs[i] = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, timeout = 10 }:start() end
      local t0 = core.now()
      for i = 1, 3 do
        tasks[i] = agentbox.spawn(function()
          return exs[i]:execute{ { lang = "python", code = "import time\ntime.sleep(1.5)\nprint(" .. i .. ")" } }
        end)
      end
      agentbox.run()
      local elapsed = core.now() - t0
      for i = 1, 3 do
        assert.equal(i .. "\n", tasks[i]:result().output)
        exs[i]:close()
      end
      assert.is_true(elapsed < 3.5, "three 1.5 s blocks took " .. elapsed .. " s")   -- one after another: 4.5 s
    end)
  end)

  describe("lifecycle", function()
    dit("removes the container of a kill -9'd owner at the next executor start", function()
      local src = ([[
        local agentbox = require("agentbox")
        local ex = agentbox.DockerExecutor{ image = %q, work_dir = %q }
        ex:start()
        io.write(require("agentbox.core").owner():match("^%%d+"), " ", ex.container_id, "\n")
        io.stdout:flush()
        agentbox.sleep(120)
      ]]):format(IMAGE, dir)
      local p, line = spawn_line({ "lua5.4", "-e", src })
      local pid, id = (line or ""):match("^(%d+) (%x+)$")
      assert.is_truthy(id, line)
      assert.is_true(exists(id))
      os.execute("kill -9 " .. pid)
      while H.alive(pid) do agentbox.sleep(0.05) end
      p:close()
      assert.is_true(exists(id))          -- nobody cleaned up: the owner died hard
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir }
      e:start()
      assert.is_false(exists(id))
    end)

    dit("removes the container of an executor collected inside a task", function()
      local e = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir }
      e:start()
      local id = e.container_id
      e = nil -- luacheck: ignore
      -- inside a task the finalizer cannot wait: the removal finishes later
      agentbox.spawn(function() collectgarbage() collectgarbage() end)
      agentbox.run()
      local deadline = core.now() + 10
      while exists(id) and core.now() < deadline do agentbox.sleep(0.05) end
      assert.is_false(exists(id))
    end)

    dit("removes the container when a script ends without close()", function()
      local src = ([[
        local agentbox = require("agentbox")
        local ex = agentbox.DockerExecutor{ image = %q, work_dir = %q }
        ex:start()
        io.write(ex.container_id, "\n")
      ]]):format(IMAGE, dir)
      local r = H.run({ "lua5.4", "-e", src }, { env = lua_env() })
      local id = r.stdout:match("^(%x+)\n")
      assert.is_truthy(id, r.output)
      assert.is_false(exists(id))
    end)

    dit("starts a fresh container when its container vanished behind its back", function()
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir }
      e:start()
      local old = e.container_id
      assert(client:remove(old))
      assert.equal("again\n", e:execute{ { lang = "sh", code = "echo again" } }.output)
      assert.is_true(e.container_id ~= old)
    end)

    dit("with auto_remove = false, close stops the container and reap keeps it", function()
      local e = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, auto_remove = false }
      e:start()
      local id = e.container_id
      e:close()
      local info = assert(client:inspect(id))
      assert.is_false(info.State.Running)
      agentbox.docker.reap()
      assert.is_true(exists(id))
      assert(client:remove(id))
    end)

    dit("reap() leaves containers of live owners alone", function()
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir }
      e:start()
      assert.is_number(agentbox.docker.reap())
      assert.is_true(exists(e.container_id))
    end)

    dit("says clearly when the image is missing", function()
      local e <close> = agentbox.DockerExecutor{ image = "agentbox/no-such-image:nope", work_dir = dir }
      local ok, err = pcall(e.execute, e, { { lang = "python", code = "print(1)" } })
      assert.is_false(ok)
      assert.matches("image agentbox/no%-such%-image:nope is not present", err)
      assert.matches("make image", err, 1, true)
    end)

    dit("says clearly when the daemon is unreachable", function()
      local t0 = core.now()
      local ok, err, code = agentbox.docker.available("unix:///nonexistent")
      assert.is_nil(ok)
      assert.matches("unix:///nonexistent", err, 1, true)
      assert.equal("unreachable", code)
      assert.is_true(core.now() - t0 < 1)
      local e <close> = agentbox.DockerExecutor{ image = IMAGE, work_dir = dir, docker_host = "unix:///nonexistent" }
      local ok2, err2 = pcall(e.execute, e, { { lang = "python", code = "print(1)" } })
      assert.is_false(ok2)
      assert.matches("cannot reach the Docker daemon at unix:///nonexistent", err2, 1, true)
      local r = H.run({ "lua5.4", "-e", "print(require('agentbox.engine').available())" },
                      { env = lua_env{ DOCKER_HOST = "unix:///nonexistent" } })
      assert.matches("^nil\tcannot reach the Docker daemon at unix:///nonexistent.*\tunreachable\n$", r.stdout)
    end)

    dit("negotiates the API version instead of hard-coding it", function()
      local c = docker.client()
      assert(c:negotiate())
      local ping = assert(core.http{ url = "http://localhost/_ping", unix_socket = c.ep.socket })
      local server = docker.await(ping).headers["api-version"]
      local function v(s) local a, b = s:match("(%d+)%.(%d+)") return a * 1000 + b end
      assert.equal(math.min(v(server), v(docker.TESTED_MAX)), v(c.version))
    end)
  end)

  describe("remote daemon (tcp)", function()
    dit("works through a TCP relay, with files delivered by the archive API", function()
      local log = dir .. "/relay.log"
      local relay, port = spawn_line({ "python3", "spec/support/tcp_relay.py", client.ep.socket, log },
                                     { PATH = os.getenv("PATH") })
      assert.matches("^%d+$", port)
      local host = "tcp://127.0.0.1:" .. port
      local r0 = H.run({ "lua5.4", "-e", "print(require('agentbox.engine').available())" },
                       { env = lua_env{ DOCKER_HOST = host } })
      assert.equal("true\n", r0.stdout)
      local wd = H.tmpdir("remote")
      local e = agentbox.DockerExecutor{ image = IMAGE, work_dir = wd, docker_host = host, timeout = 5 }
      assert.equal("archive", e.transfer)
      local r = e:execute{ { lang = "python", code = "# filename: sub/dir/x.py\nimport os\nprint(__file__, os.getuid())\n"
                             .. "open('made_in_container.txt', 'w').write('y')\nprint(open('made_in_container.txt').read())" },
                           { lang = "sh", code = "cat made_in_container.txt; echo; ls -ld /workspace/sub" } }
      assert.equal(0, r.exit_code, r.output)
      assert.matches("^/workspace/sub/dir/x.py 1000\ny\ny\ndrwxr%-xr%-x %d+ agent agent", r.output)
      assert.equal(core.realpath(wd) .. "/sub/dir/x.py", r.code_file)
      -- no bind mount: made in the container's volume, then copied back as an output file
      assert.same({ { path = "made_in_container.txt", size = 1 } }, r.output_files)
      assert.equal("y", H.read(wd .. "/made_in_container.txt"))
      local t = e:execute{ { lang = "python", code = "import time\nprint('p', flush=True)\ntime.sleep(30)" } }
      assert.equal(124, t.exit_code)
      assert.equal("p\n\nTimeout", t.output)
      local info = assert(client:inspect(e.container_id))
      local volumes = {}
      for _, m in ipairs(info.Mounts) do
        assert.equal("volume", m.Type)
        volumes[#volumes + 1] = m.Name
      end
      assert.equal(2, #volumes)
      local id = e.container_id
      e:close()
      assert.is_false(exists(id))
      for _, name in ipairs(volumes) do
        local _, _, code, status = client:call("inspect volume", { path = "/volumes/" .. name })
        assert.same({ "not_found", 404 }, { code, status })
      end
      relay:close()
      local seen = H.read(log)
      assert.matches("PUT /v[%d.]+/containers/%x+/archive%?path=%%2Fworkspace", seen)
      assert.matches("PUT /v[%d.]+/containers/%x+/archive%?path=%%2Fopt%%2Fagentbox", seen)
      H.rm_rf(wd)
    end)
  end)
end)
