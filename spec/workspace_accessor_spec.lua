-- The workspace accessor (core.workspace, src/workspace.c) on its own: no
-- link is followed at any component, creation is relative to the parent fd,
-- trees go without following links or going up.
local core = require("agentbox.core")
local H = require("spec.support.helpers")

local function sh(cmd) assert(os.execute(cmd), cmd) end

local function listing(dir)
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local s = p:read("a")
  p:close()
  return s
end

describe("core.workspace", function()
  local base, outside
  before_each(function()
    base = H.tmpdir("acc")
    outside = H.tmpdir("acc-out")
    H.write(outside .. "/keep", "mine")
  end)
  after_each(function()
    H.rm_rf(base)
    H.rm_rf(outside)
  end)

  it("refuses a link at any component of the path, naming it, and creates nothing behind it", function()
    sh(("mkdir '%s/real' && ln -s '%s' '%s/real/lnk'"):format(base, outside, base))
    for _, p in ipairs({ "/real/lnk", "/real/lnk/new", "/real/lnk/new/deeper" }) do
      local ws, err, kind = core.workspace(base .. p, { create = true })
      assert.is_nil(ws)
      assert.equal("link", kind)
      assert.equal("work_dir: " .. base .. "/real/lnk is a symbolic link; agentbox never follows a link in "
        .. "work_dir (give the real path)", err)
    end
    assert.equal("keep\n", listing(outside))
  end)

  it("creates missing directories (the last with mode), says so, and exclusive refuses an existing one", function()
    local ws = assert(core.workspace(base .. "/a/b", { create = true, mode = 448 }))
    assert.is_true(ws:created())
    assert.equal(base .. "/a/b", ws:path())
    assert.equal(448, ws:stat().mode)
    ws:close()
    ws = assert(core.workspace(base .. "/a/./x/../b"))
    assert.is_false(ws:created())
    assert.equal(base .. "/a/b", ws:path())
    local none, err = core.workspace(base .. "/a/b", { create = true, exclusive = true })
    assert.is_nil(none)
    assert.matches("File exists", err)
    none, err = core.workspace(base .. "/nope")
    assert.is_nil(none)
    assert.matches("no such directory", err)
  end)

  it("writes beneath work_dir: parents made, unchanged files left alone, links and FIFOs replaced, never followed",
    function()
    local ws <close> = assert(core.workspace(base))
    assert.is_true(ws:write("s/t/u.py", "u"))
    assert.equal("u", H.read(base .. "/s/t/u.py"))
    local ok, how = ws:write("s/t/u.py", "u")
    assert.is_true(ok)
    assert.equal("unchanged", how)
    sh(("ln -s '%s/keep' '%s/f.py' && ln -s '%s' '%s/d' && mkfifo '%s/p'"):format(outside, base, outside, base, base))
    assert.is_true(ws:write("f.py", "new"))          -- the link itself is replaced
    assert.equal("file", ws:stat("f.py").type)
    assert.is_true(ws:write("p", "no block"))        -- a FIFO is never opened for writing
    assert.equal("no block", ws:read("p"))
    local _, err, kind = ws:write("d/new/x.py", "x")
    assert.equal("link", kind)
    assert.matches("d is a symbolic link", err)
    assert.equal(nil, (ws:read("d/keep")))
    assert.equal("keep\n", listing(outside))
    assert.equal("mine", H.read(outside .. "/keep"))
  end)

  it("the walk (no openat2) refuses the same links and creates the same way", function()
    local ws <close> = assert(core.workspace(base, { resolve = "walk" }))
    sh(("mkdir -p '%s/a/b' && ln -s '%s' '%s/a/b/l'"):format(base, outside, base))
    local _, err, kind = ws:write("a/b/l/new/x.py", "x")
    assert.equal("link", kind)
    assert.matches("a/b/l is a symbolic link", err, 1, true)
    assert.is_true(ws:write("a/b/c/d.py", "d"))
    assert.equal("d", ws:read("a/b/c/d.py"))
    assert.equal("keep\n", listing(outside))
    assert.has_error(function() core.workspace(base, { resolve = "magic" }) end)
  end)

  it("reads, stats and lists without following links; rel must be plain names", function()
    local ws <close> = assert(core.workspace(base))
    sh(("ln -s '%s/keep' '%s/l' && echo hi > '%s/h'"):format(outside, base, base))
    assert.equal("link", ws:stat("l").type)
    local _, _, kind = ws:read("l")
    assert.equal("link", kind)
    assert.equal("hi\n", ws:read("h"))
    assert.is_nil(ws:read("h", 2))
    local none, msg, code = ws:read("missing")   -- a runtime failure: nil, message, code
    assert.is_nil(none)
    assert.matches("missing", msg)
    assert.equal("io", code)
    local l = ws:list()
    table.sort(l)
    assert.same({ "h", "l" }, l)
    for _, bad in ipairs({ "../x", "/etc/passwd", "a//b", "a/./b", "a/", "", "a\0b" }) do
      assert.has_error(function() ws:write(bad, "x") end)
    end
  end)

  it("removes a deep tree with links inside it, never touching what the links name", function()
    local ws <close> = assert(core.workspace(base))
    -- 300 levels: deeper than the 32 open directories the walk keeps
    sh(("cd '%s' && mkdir t && cd t && for i in $(seq 300); do ln -s '%s' out; echo x > f; mkdir d; cd d; done")
      :format(base, outside))
    assert.is_true(ws:remove("t"))
    assert.equal("", listing(base))
    assert.equal("keep\n", listing(outside))
    assert.is_true(ws:remove("t"))   -- absent is fine
  end)

  it("chown applies to work_dir and to everything created after it", function()
    local ws <close> = assert(core.workspace(base .. "/w", { create = true }))
    assert.is_true(ws:chown(1000, 1001))
    assert.is_true(ws:write("a/b.py", "x"))
    assert.is_true(ws:mkdir("c/d"))
    for _, p in ipairs({ "", "/a", "/a/b.py", "/c", "/c/d" }) do
      assert.equal("1000:1001\n", H.run({ "stat", "-c", "%u:%g", base .. "/w" .. p }).stdout)
    end
  end)

  it("destroy removes work_dir only if its name still holds the same directory", function()
    local ws = assert(core.workspace(base .. "/w", { create = true }))
    ws:write("x", "1")
    assert.is_true(ws:destroy())
    assert.is_false(H.exists(base .. "/w/x"))
    assert.equal("", listing(base))
    assert.has_error(function() ws:write("x", "y") end, "attempt to use a closed workspace")
    ws = assert(core.workspace(base .. "/w", { create = true }))
    sh(("mv '%s/w' '%s/moved' && mkdir '%s/w' && echo other > '%s/w/o'"):format(base, base, base, base))
    assert.is_true(ws:destroy())
    assert.equal("other\n", H.read(base .. "/w/o"))
    assert.equal("", listing(base .. "/moved"))
  end)
end)
