-- Nothing exposed by default (issue 8 item 3), against every executor kind:
-- without work_dir a fresh private directory, never the current one; a
-- link anywhere in a work_dir path is refused; leftovers of dead owners are
-- reaped; no directory agentbox did not create is ever chowned.
local C = require("spec.support.contract")
local H = require("spec.support.helpers")
local agentbox = require("agentbox")
local core = require("agentbox.core")
local task = require("agentbox.task")


local TMP = core.realpath(os.getenv("TMPDIR") or "/tmp")

-- An executor without work_dir (E.new always gives one)
local function bare(E, opts)
  opts = opts or {}
  opts.timeout = opts.timeout or 10
  if E.docker then
    opts.image = C.IMAGE
    opts.warm = E.warm
    opts.preload = E.preload
    opts.stateful = E.stateful or nil
    return agentbox.DockerExecutor(opts)
  end
  opts.preload = E.preload
  opts.stateful = E.stateful or nil
  return agentbox.LocalExecutor(opts)
end

local function stat(path)
  local r = H.run({ "stat", "-c", "%u:%g %a %F", path })
  if r.exit_code ~= 0 then return nil end
  return (r.stdout:gsub("\n$", ""))
end

local function listing(dir)
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local s = p:read("a")
  p:close()
  return s
end

C.each("workspace by default", function(E)
  E.it("without work_dir: a fresh 0700 directory under TMPDIR, named for its owner, removed at close", function()
    local cwd_before = listing(".")
    local ex = bare(E)
    local dir = ex.work_dir
    local id = core.owner()
    assert.equal(TMP, dir:match("^(.*)/[^/]*$"))
    assert.matches("^agentbox%-" .. id:gsub("%-", "%%-") .. "%-%x+$", dir:match("[^/]*$"))
    assert.matches(" 700 directory$", stat(dir))
    local r = ex:execute{ { lang = "sh", code = "pwd; echo made > made.txt; ls" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal(E.inside(ex) .. "\nmade.txt\n" .. (r.output:match("tmp_code_%x+%.sh") or "?") .. "\n", r.output)
    assert.equal("made\n", H.read(dir .. "/made.txt"))
    assert.equal(cwd_before, listing("."))
    ex:close()
    assert.is_nil(stat(dir))
  end)

  E.it("keep_work_dir = true keeps it after close", function()
    local ex = bare(E, { keep_work_dir = true })
    local dir = ex.work_dir
    assert.equal(0, ex:execute{ { lang = "sh", code = "echo kept > k.txt" } }.exit_code)
    ex:close()
    assert.equal("kept\n", H.read(dir .. "/k.txt"))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  E.it("reaps the work_dirs of dead owners at the next start, without following links", function()
    local pid, started = core.owner():match("^(%d+)%-(%d+)$")
    local outside = E.tmpdir("outside")
    H.write(outside .. "/keep.txt", "mine")
    local dead = ("%s/agentbox-%s-1-%08x"):format(TMP, pid, math.random(0, 0x7fffffff))    -- a reused pid
    local live = ("%s/agentbox-%s-%s-%08x"):format(TMP, pid, started, math.random(0, 0x7fffffff))
    -- built under another name, then renamed into place: any agentbox start on
    -- this machine may reap a dead owner's directory while it is being built
    local staging = E.tmpdir("staging") .. "/d"
    assert(os.execute(("mkdir -p '%s/a/b' '%s' && echo x > '%s/a/b/f' && ln -s '%s' '%s/a/out' && ln -s '%s' '%s/top'"
      .. " && mv '%s' '%s'"):format(staging, live, staging, outside, staging, outside, staging, staging, dead)))
    local ex = bare(E)
    assert.is_nil(stat(dead))
    assert.is_not_nil(stat(live))
    assert.equal("keep.txt\n", listing(outside))
    assert.equal("mine", H.read(outside .. "/keep.txt"))
    ex:close()
    os.execute("rm -rf '" .. live .. "'")
  end)

  E.it("takes a zombie owner for a dead one (its start time stays until it is reaped)", function()
    -- a process whose child has exited and is not reaped: the child is a zombie
    local p = assert(core.spawn{ argv = { "python3", "-c",
      "import os, sys, time\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(30)" },
      env = { PATH = os.getenv("PATH") }, timeout = 60, stream = true })
    local got = ""
    while not got:find("\n") and not p:done() do
      task.wait(p)
      local chunks = p:read()
      for i = 1, chunks and #chunks or 0, 2 do got = got .. chunks[i + 1] end
    end
    local zpid = assert(got:match("^(%d+)"), got)
    local state
    for _ = 1, 100 do   -- until the child has exited
      local f = io.open("/proc/" .. zpid .. "/stat")
      state = f and f:read("a"):match("%) (%a)")
      if f then f:close() end
      if state == "Z" then break end
      agentbox.sleep(0.01)
    end
    assert.equal("Z", state)
    local f = io.open("/proc/" .. zpid .. "/stat")
    local started = f:read("a"):match("^.*%) (.*)$"):match(("%S+%s+"):rep(19) .. "(%S+)")
    f:close()
    assert.is_false(core.owner_alive(zpid .. "-" .. started))
    local left = ("%s/agentbox-%s-%s-%08x"):format(TMP, zpid, started, math.random(0, 0x7fffffff))
    assert(os.execute(("mkdir -p '%s/x'"):format(left)))
    local ex = bare(E)
    p:close()
    assert.is_nil(stat(left))
    ex:close()
  end)

  E.it("refuses a link anywhere in the work_dir path, and touches nothing behind it", function()
    local base, victim = E.tmpdir("base"), E.tmpdir("victim")
    local before = stat(victim)
    -- a link an earlier sandbox planted where a later chat's work_dir goes
    assert(os.execute(("ln -s '%s' '%s/chat2'"):format(victim, base)))
    for _, wd in ipairs({ base .. "/chat2", base .. "/chat2/sub", base .. "/chat2/" }) do
      local ok, err = pcall(E.new, { work_dir = wd })
      assert.is_false(ok, wd)
      assert.matches(base .. "/chat2 is a symbolic link", tostring(err), 1, true)
    end
    assert.equal("", listing(victim))
    assert.equal(before, stat(victim))
  end)

  E.it("a refused link/new/x.py creates nothing behind the link", function()

    -- the host work_dir is not the sandbox's with a remote daemon (archive transfer)

    local outside = E.tmpdir("outside")
    local ex = E.new()
    assert.equal(0, ex:execute{ { lang = "sh", code = ("ln -s '%s' link"):format(outside) } }.exit_code)
    local r = ex:execute{ { lang = "python", code = "# filename: link/new/x.py\nprint(1)" } }
    if E.fresh then
      -- copied in and out: the link the last call planted was never copied back
      assert.equal(0, r.exit_code, r.output)
    else
      assert.equal(1, r.exit_code)
      assert.equal("Filename is not in the workspace", r.output)
    end
    assert.equal("", listing(outside))
  end, { remote = "work_dir is not shared with the sandbox" })
end)

C.each("workspace ownership", function(E)
  E.it("an existing root-owned work_dir is refused with the ways out, and not chowned", function()
    local dir = E.tmpdir("rootdir")
    H.write(dir .. "/config.py", "SECRET = 1\n")
    local before = stat(dir)
    local ok, err = pcall(E.new, { work_dir = dir })
    assert.is_false(ok)
    assert.matches("belongs to root and agentbox did not create it", tostring(err), 1, true)
    for _, way in ipairs({ "Omit work_dir", "does not exist yet", "chown 1000:1000 " .. dir, "user = " }) do
      assert.matches(way, tostring(err), 1, true)
    end
    assert.equal(before, stat(dir))
  end)

  E.it("with user = given, a root-owned work_dir stays root's: the code cannot replace root's files", function()
    local dir = E.tmpdir("rootdir")
    H.write(dir .. "/config.py", "SECRET = 1\n")
    local before = stat(dir)
    local ex = E.new{ work_dir = dir, user = "1000:1000" }
    local r = ex:execute{ { lang = "sh", code = "rm -f config.py; echo 'SECRET = 2' > config.py; cat config.py" } }
    assert.equal(before, stat(dir))
    assert.equal("SECRET = 1\n", H.read(dir .. "/config.py"))
    assert.matches("rm: cannot remove 'config.py': Permission denied", r.output, 1, true)
  end)

  E.it("a work_dir agentbox creates belongs to the sandbox user; an existing one of another user is not chowned",
    function()
    local ex = E.new()
    assert.equal("1000:1000 755 directory", stat(ex.work_dir))
    local r = ex:execute{ { lang = "sh", code = "# filename: sub/a.sh\nid -u; touch sub/b" } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("1000\n", r.output)
    assert.matches("^1000:1000 ", stat(ex.work_dir .. "/sub/b"))
    local other = E.tmpdir("other")
    assert(os.execute(("chown 1234:1234 '%s'"):format(other)))
    local e2 = E.new{ work_dir = other }
    r = e2:execute{ { lang = "sh", code = "id -u; touch t" } }
    assert.equal("1234\n", r.output)
    assert.equal("1234:1234 755 directory", stat(other))
  end)
end, { docker = true })
