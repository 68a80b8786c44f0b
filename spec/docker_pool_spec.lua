-- agentbox.DockerPool and DockerExecutor{ pool = p, fresh = true }
-- (executor/docker_pool.lua, executor/pool_copy.lua): containers kept
-- ready and refilled by tasks, claims, fresh containers per execute, what a
-- pool leaves behind (nothing), and the copies of a work_dir of its own
-- attacked by the code (links, FIFOs, the quota). Tagged #docker.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local task = require("agentbox.task")
local docker = require("agentbox.engine")
local H = require("spec.support.helpers")
local C = require("spec.support.contract")

local IMAGE = C.IMAGE
local client = docker.client()

local dit = C.docker_it(client)

local function sh(code) return { { lang = "sh", code = code } } end

-- the containers of a pool, by its label: { [id] = state }
local function by_label(pool_id)
  local list = assert(task.sync(client.list, client, { label = { "agentbox.pool=" .. pool_id } }))
  local ids, n = {}, 0
  for _, c in ipairs(list) do
    ids[c.Id] = c.State
    n = n + 1
  end
  return ids, n
end

local function exists(id)
  local _, _, code = client:inspect(id)
  return code ~= "not_found"
end

-- step until fn() is true (at most secs); returns fn()
local function eventually(fn, secs)
  local deadline = core.now() + (secs or 15)
  while not fn() and core.now() < deadline do agentbox.sleep(0.02) end
  return fn()
end

describe("DockerPool #docker", function()
  local base
  setup(function() base = H.tmpdir("pool") end)
  teardown(function() H.rm_rf(base) end)

  it("checks its options by name", function()
    local ok, err = pcall(agentbox.DockerPool, { size = 2, imagee = "x" })
    assert.is_false(ok)
    assert.matches("agentbox.DockerPool: unknown option 'imagee'", err)
    ok, err = pcall(agentbox.DockerPool, { size = 0 })
    assert.is_false(ok)
    assert.matches("size must be an integer from 1 to 64", err)
    ok, err = pcall(agentbox.DockerPool, { size = 1, timeout = 5 })
    assert.is_false(ok)
    assert.matches("unknown option 'timeout'.*the executor's", err)
    ok, err = pcall(agentbox.DockerPool, { size = 1, memory = "lots" })
    assert.is_false(ok)
    assert.matches("agentbox.DockerPool: memory must be a size", err)
  end)

  dit("a claim takes a container that was already running, and the pool refills in the background", function()
    local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE }
    assert(pool:fill())
    local before = by_label(pool.id)
    local ex <close> = agentbox.DockerExecutor{ pool = pool, timeout = 10 }
    ex:start()
    assert.equal("running", before[ex.container_id], "the claimed container was not running before the claim")
    assert.equal(1, pool:available())
    -- the refill runs on the reactor: a task steps meanwhile, step(0) never waits for the daemon
    local ticks, worst = 0, 0
    local ticker = agentbox.spawn(function()
      while pool:available() < 2 do
        ticks = ticks + 1
        agentbox.sleep(0.001)
      end
    end)
    local deadline = core.now() + 30
    while not ticker:done() and core.now() < deadline do
      local t0 = core.now()
      agentbox.step(0)
      worst = math.max(worst, core.now() - t0)
    end
    assert.is_true(ticker:done(), "the pool did not refill")
    assert.is_true(ticks > 10, "the task did not run while the pool refilled: " .. ticks)
    assert.is_true(worst < 0.1, ("agentbox.step(0) took %.3f s while a container started"):format(worst))
    assert.equal("1\n", ex:execute{ { lang = "python", code = "print(1)" } }.output)
  end)

  dit("two executors of one pool never share a container", function()
    local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
    local a <close> = agentbox.DockerExecutor{ pool = pool, timeout = 10 }
    local b <close> = agentbox.DockerExecutor{ pool = pool, timeout = 10 }
    local ra, rb
    local ta = agentbox.spawn(function() ra = a:execute(sh("hostname")) end)
    local tb = agentbox.spawn(function() rb = b:execute(sh("hostname")) end)
    agentbox.run()
    assert.is_nil(ta:error())
    assert.is_nil(tb:error())
    assert.equal(0, ra.exit_code, ra.output)
    assert.equal(0, rb.exit_code, rb.output)
    assert.are_not.equal(ra.output, rb.output)
    assert.are_not.equal(a.container_id, b.container_id)
    assert.are_not.equal(a.work_dir, b.work_dir)
  end)

  dit("fresh = true: each execute runs in a never-used container; nothing of the last one is seen", function()
    local pool <close> = agentbox.DockerPool{ size = 2, image = IMAGE }
    local ex <close> = agentbox.DockerExecutor{ pool = pool, fresh = true, timeout = 10 }
    local r1 = ex:execute(sh("hostname; echo secret > /tmp/left; setsid sleep 300 > /dev/null 2>&1 & echo $! > pid; "
                             .. "echo kept > data"))
    assert.equal(0, r1.exit_code, r1.output)
    local r2 = ex:execute(sh("hostname; cat /tmp/left 2>/dev/null || echo absent; cat data; "
                             .. "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done "
                             .. "| grep -c '^sleep 300' || true"))
    assert.equal(0, r2.exit_code, r2.output)
    local h1 = r1.output:match("^(%S+)\n")
    local h2, left, data, sleeps = r2.output:match("^(%S+)\n(%S+)\n(%S+)\n(%d+)\n")
    assert.is_truthy(h2, r2.output)
    assert.are_not.equal(h1, h2, r2.output)
    assert.equal("absent", left)
    assert.equal("kept", data)          -- work_dir is the executor's, copied in and out
    assert.equal("0", sleeps)
    -- fresh: no container is kept between calls; the first goes once its call ended (its hostname is its id)
    assert.is_nil(ex.container_id)
    assert.is_true(eventually(function() return not exists(h1) and not exists(h2) end), "a used container was left")
  end)

  dit("fresh = true without a pool: an internal pool of one, removed at close", function()
    local ex = agentbox.DockerExecutor{ image = IMAGE, fresh = true, timeout = 10 }
    local pool_id = ex._own_pool.id
    local a = ex:execute(sh("hostname")).output
    local b = ex:execute(sh("hostname")).output
    assert.are_not.equal(a, b)
    assert(ex:close())
    assert.is_true(eventually(function() return select(2, by_label(pool_id)) == 0 end),
      "containers of the internal pool were left")
  end)

  dit("pool:close() removes every container it made and their directories", function()
    local pool = agentbox.DockerPool{ size = 3, image = IMAGE }
    assert(pool:fill())
    local ex = agentbox.DockerExecutor{ pool = pool, timeout = 10 }
    assert.equal(0, ex:execute(sh("echo hi")).exit_code)
    local dirs = { ex.work_dir }
    -- ready ones, and one perhaps still starting (the refill after the claim)
    for _, s in ipairs(pool.ready) do
      dirs[#dirs + 1] = s.ex.work_dir
      dirs[#dirs + 1] = s.ex._warm_dir
    end
    for s in pairs(pool.starting) do dirs[#dirs + 1] = s.ex.work_dir end
    local _, n = by_label(pool.id)
    assert.is_true(n >= 3)
    assert(ex:close())
    assert(pool:close())
    local _, left = by_label(pool.id)
    assert.equal(0, left)
    for _, d in ipairs(dirs) do assert.is_false(H.exists(d), d) end
    assert(pool:close())   -- idempotent
    local ok, err = pcall(agentbox.DockerExecutor, { pool = pool })
    assert.is_false(ok)
    assert.matches("the pool is closed", err)
  end)

  dit("closing an executor and its pool while their containers are still starting leaves nothing", function()
    local pool = agentbox.DockerPool{ size = 2, image = IMAGE }
    local ex = agentbox.DockerExecutor{ pool = pool }   -- takes one that is still starting
    local dirs = { ex.work_dir }
    for s in pairs(pool.starting) do dirs[#dirs + 1] = s.ex.work_dir end
    assert.is_true(#dirs >= 3)   -- the taken one (its work dir is the executor's) and the refills
    assert(ex:close())
    assert(pool:close())
    local _, left = by_label(pool.id)
    assert.equal(0, left)
    for _, d in ipairs(dirs) do assert.is_false(H.exists(d), d) end
  end)

  dit("a pool collected without close leaves nothing (its finalizer only queues)", function()
    local function make()
      local pool = agentbox.DockerPool{ size = 2, image = IMAGE }
      assert(pool:fill())
      return pool.id
    end
    local id = make()
    collectgarbage()
    collectgarbage()
    assert.is_true(eventually(function() return select(2, by_label(id)) == 0 end), "a collected pool's containers were left")
  end)

  dit("a script that ends without close() leaves no container of its pool or its executors", function()
    local src = ([[
      local agentbox = require("agentbox")
      local pool = agentbox.DockerPool{ size = 2, image = %q }
      local ex = agentbox.DockerExecutor{ pool = pool }
      local f = agentbox.DockerExecutor{ pool = pool, fresh = true }
      assert(ex:execute{ { lang = "sh", code = "true" } }.exit_code == 0)
      assert(f:execute{ { lang = "sh", code = "true" } }.exit_code == 0)
      assert(pool:fill())
      io.write(pool.id, " ", ex.work_dir, " ", f.work_dir, "\n")
    ]]):format(IMAGE)
    local r = H.lua(src, nil, 120)
    local id, d1, d2 = r.stdout:match("^(%x+) (%S+) (%S+)\n")
    assert.is_truthy(id, r.output)
    assert.is_true(eventually(function() return select(2, by_label(id)) == 0 end, 5), "containers were left")
    assert.is_false(H.exists(d1))
    assert.is_false(H.exists(d2))
  end)

  dit("the containers of a pool whose owner was killed -9 are removed by agentbox.docker.reap()", function()
    local src = ([[
      local agentbox = require("agentbox")
      local pool = agentbox.DockerPool{ size = 2, image = %q }
      assert(pool:fill())
      local ex = agentbox.DockerExecutor{ pool = pool }
      ex:start()
      io.write(pool.id, " ", pool.ready[1].ex.work_dir, " ", ex.work_dir, "\n")
      io.stdout:flush()
      os.execute("kill -9 " .. require("agentbox.core").owner():match("^%%d+"))
    ]]):format(IMAGE)
    local r = H.lua(src, nil, 120)
    local id, d1, d2 = r.stdout:match("^(%x+) (%S+) (%S+)\n")
    assert.is_truthy(id, r.output)
    local _, n = by_label(id)
    assert.is_true(n >= 2, "the killed owner's containers should still be there")
    assert.is_number(agentbox.docker.reap())
    local _, left = by_label(id)
    assert.equal(0, left)
    -- its directories go with the next executor's start (reaped by name)
    local e <close> = agentbox.DockerExecutor{ image = IMAGE }
    assert.is_truthy(e.work_dir)
    assert.is_false(H.exists(d1))
    assert.is_false(H.exists(d2))
  end)

  dit("options given to a pooled executor that differ from the pool's are an error naming them", function()
    local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE, memory = "256m" }
    local ok, err = pcall(agentbox.DockerExecutor, { pool = pool, image = "python:3-slim", memory = "1g", cpus = 1 })
    assert.is_false(ok)
    assert.matches("agentbox.DockerExecutor: image, memory conflict with the pool's container options", err)
    ok, err = pcall(agentbox.DockerExecutor, { pool = pool, warm = false, container_name = "x" })
    assert.is_false(ok)
    assert.matches("warm, container_name conflict", err)
    -- the same values are fine
    local ex <close> = agentbox.DockerExecutor{ pool = pool, image = IMAGE, memory = 256 * 1024 * 1024 }
    assert.equal(0, ex:execute(sh("true")).exit_code)
  end)

  describe("an explicit work_dir with a pool: copied in and out through the workspace accessor", function()
    local n = 0
    local function dir()
      n = n + 1
      return base .. "/w" .. n
    end

    dit("the block sees work_dir's files and what it writes comes back; work_dir itself is never mounted", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 10 }
      H.write(wd .. "/in.txt", "hello\n")
      local r = ex:execute(sh("cat in.txt; mkdir -p sub; echo out > sub/out.txt; rm in.txt; "
                              .. "grep -c ' /workspace ' /proc/self/mountinfo"))
      assert.equal(0, r.exit_code, r.output)
      assert.matches("^hello\n1\n", r.output)
      assert.equal("out\n", H.read(wd .. "/sub/out.txt"))
      assert.is_false(H.exists(wd .. "/in.txt"))      -- removed by the block: removed here
      assert.is_truthy(r.code_file:find(wd, 1, true), r.code_file)
      assert.is_true(H.exists(r.code_file))
      local info = assert(client:inspect(ex.container_id))
      for _, m in ipairs(info.Mounts) do assert.are_not.equal(wd, m.Source) end
      -- a second call (same container) sees the first's files and a file the host
      -- added, not one the host removed
      H.write(wd .. "/later.txt", "later\n")
      H.write(wd .. "/gone.txt", "x")
      assert.equal(0, ex:execute(sh("cat gone.txt")).exit_code)
      os.remove(wd .. "/gone.txt")
      r = ex:execute(sh("cat sub/out.txt later.txt; ls gone.txt 2>/dev/null || echo no gone.txt"))
      assert.equal("out\nlater\nno gone.txt\n", r.output)
    end)

    dit("links the code plants are never followed by the copy back (host files, the host's home)", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 10, fresh = true }
      H.write(wd .. "/data.txt", "mine\n")
      local r = ex:execute(sh(table.concat({
        "ln -s /etc/passwd passwd", "ln -s /root home", "ln -s / rootfs",
        "mkdir d && ln -s /etc/shadow d/shadow",
        "rm data.txt && ln -s /etc/passwd data.txt",  -- a file of the host's replaced by a link
        "mkfifo fifo",                                -- a reader would block forever
        "echo ok" }, "; ")))
      assert.equal(0, r.exit_code, r.output)
      for _, name in ipairs({ "passwd", "home", "rootfs", "d/shadow", "fifo", "data.txt" }) do
        local st = core.workspace(wd):stat(name)
        assert.is_nil(st, name .. " was copied back")
      end
      assert.is_true(H.exists(wd .. "/d"))
      assert.matches("link%(s%) or special file%(s%) not copied back", r.output_files_incomplete)
      -- nothing in work_dir holds the host's /etc/passwd
      local host_passwd = H.read("/etc/passwd")
      for _, name in ipairs(core.workspace(wd):list()) do
        local st = core.workspace(wd):stat(name)
        if st.type == "file" then assert.are_not.equal(host_passwd, H.read(wd .. "/" .. name)) end
      end
    end)

    dit("a link the host user keeps in work_dir is not followed into the sandbox", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 10 }
      os.execute("ln -s /etc " .. wd .. "/etc_link")
      local r = ex:execute(sh("ls -a; cat etc_link/hostname 2>/dev/null || echo none"))
      assert.equal(0, r.exit_code, r.output)
      assert.is_falsy(r.output:find("etc_link", 1, true), r.output)
      assert.matches("none\n$", r.output)
      assert.is_true(core.workspace(wd):stat("etc_link").type == "link")   -- left alone
    end)

    dit("hard links and sparse files cannot make the host write more than the quota", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 20,
                                                  quota = { bytes = "10m", files = 1000 } }
      -- the quota counts a file with 20 names once and a sparse file by its
      -- blocks: copied naively, 80 MB and 50 MB would land in work_dir
      local r = ex:execute(sh(table.concat({
        "head -c 4000000 /dev/urandom > one",
        "i=0; while [ $i -lt 20 ]; do ln one link$i; i=$((i+1)); done",
        -- (each under the file size limit the quota sets: what is left + 1)
        "i=0; while [ $i -lt 10 ]; do truncate -s 5M sparse$i; i=$((i+1)); done",
        "du -sk .", "echo ok" }, "; ")))
      assert.equal(0, r.exit_code, r.output)
      local du = H.run({ "du", "-s", "--block-size=1", wd })
      local used = tonumber(du.stdout:match("^(%d+)"))
      assert.is_true(used <= 12 * 1024 * 1024, ("work_dir holds %d bytes after the copy back"):format(used))
      local ws <close> = core.workspace(wd)
      assert.equal(ws:stat("one").ino, ws:stat("link7").ino)   -- the links stay links
      assert.matches("over the 10485760 bytes of the quota", r.output_files_incomplete)
    end)

    dit("the permission bits that come back: executable or not, never setuid", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 10 }
      assert.equal(0, ex:execute(sh("true")).exit_code)
      H.write(wd .. "/run.sh", "#!/bin/sh\necho ran\n")
      os.execute("chmod 755 " .. wd .. "/run.sh")
      local r = ex:execute(sh("./run.sh; cp /bin/true t; chmod 4755 t; echo x > plain; chmod 600 plain"))
      assert.equal(0, r.exit_code, r.output)
      assert.equal("ran\n", r.output)
      local ws <close> = core.workspace(wd)
      assert.equal(493, ws:stat("t").mode)      -- 0755: no setuid bit on the host
      assert.equal(420, ws:stat("plain").mode)  -- 0644
    end)

    dit("a racer left by the block cannot swap a link under the copy back (it is dead by then)", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 10, fresh = true }
      -- d flips between a directory holding a decoy passwd and a link to the
      -- host's /etc (the host would resolve it there); the racer outlives the block
      local r = ex:execute(sh(table.concat({
        "mkdir d; echo decoy > d/passwd",
        "setsid sh -c 'while :; do mv d d.x; ln -s /etc d; rm d; mv d.x d; done' > /dev/null 2>&1 &",
        "sleep 0.3; echo started" }, "\n")))
      assert.equal(0, r.exit_code, r.output)
      local host = H.read("/etc/passwd")
      local ws <close> = core.workspace(wd)
      for _, rel in ipairs({ "d/passwd", "d.x/passwd", "d" }) do
        local st = ws:stat(rel)
        if st and st.type == "file" then assert.are_not.equal(host, H.read(wd .. "/" .. rel), rel) end
        if st then assert.are_not.equal("link", st.type, rel) end
      end
      -- and the next call sees no racer
      r = ex:execute(sh("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sh -c while' || true"))
      assert.equal("0\n", r.output)
    end)

    dit("a block that fills the quota is stopped; what comes back stays within it", function()
      local pool <close> = agentbox.DockerPool{ size = 1, image = IMAGE }
      local wd = dir()
      local ex <close> = agentbox.DockerExecutor{ pool = pool, work_dir = wd, timeout = 20,
                                                  quota = { bytes = "2m", files = 1000 } }
      local r = ex:execute(sh("head -c 20000000 /dev/zero > big; echo done"))
      assert.equal(122, r.exit_code, r.output)
      local total = 0
      for _, name in ipairs(core.workspace(wd):list()) do
        local st = core.workspace(wd):stat(name)
        total = total + st.size
      end
      assert.is_true(total <= 4 * 1024 * 1024, "copied back " .. total .. " bytes")
      -- over the quota, nothing runs (as without a pool) until the host removes it
      assert.equal(122, ex:execute(sh("echo again")).exit_code)
      os.remove(wd .. "/big")
      local again = ex:execute(sh("ls; echo again"))
      assert.equal(0, again.exit_code, again.output)
      assert.is_falsy(again.output:find("big", 1, true))
    end)
  end)
end)
