-- output_files: what an execute call created or changed in work_dir, from
-- every executor kind (spec/support/contract.lua), a chart drawn with
-- plt.show() among them, and what hostile code cannot make it list.
local agentbox = require("agentbox")
local core = require("agentbox.core")
local C = require("spec.support.contract")
local H = require("spec.support.helpers")
local output_files = require("agentbox.executor.output_files")

local function paths(r)
  local t = {}
  for _, f in ipairs(r.output_files) do t[#t + 1] = f.path end
  return t
end

local function sizes(r)
  local t = {}
  for _, f in ipairs(r.output_files) do t[f.path] = f.size end
  return t
end

-- A python with matplotlib for the LocalExecutor (the PATH's python3 may
-- be one without it); nil when there is none.
local mpl_python
local function local_mpl_python()
  if mpl_python == nil then
    mpl_python = false
    for _, p in ipairs({ core.which("python3", os.getenv("PATH")), "/usr/bin/python3" }) do
      if p and os.execute(("%q -c 'import matplotlib' 2>/dev/null"):format(p)) then
        mpl_python = p
        break
      end
    end
  end
  return mpl_python or nil
end

local image_has_mpl
local function docker_mpl()
  if image_has_mpl == nil then
    image_has_mpl = os.execute(("docker run --rm --network none %q python3 -c 'import matplotlib' >/dev/null 2>&1")
      :format(C.IMAGE)) and true or false
  end
  return image_has_mpl
end

C.each("output_files", function(E)
  E.it("lists the files a call created, with sizes, sorted by path; never the code files", function()
    local ex = E.new{}
    local r = ex:execute{ { lang = "python", code = table.concat({
      "import os",
      "os.makedirs('out/deep', exist_ok=True)",
      "open('zeta.txt', 'w').write('z' * 10)",
      "open('out/deep/data.csv', 'w').write('a,b\\n1,2\\n')",
      "open('alpha.bin', 'wb').write(b'\\0' * 3)",
      "print('made')" }, "\n") } }
    assert.equal(0, r.exit_code)
    assert.same({ "alpha.bin", "out/deep/data.csv", "zeta.txt" }, paths(r))
    assert.same({ ["alpha.bin"] = 3, ["out/deep/data.csv"] = 8, ["zeta.txt"] = 10 }, sizes(r))
    assert.is_nil(r.output_files_incomplete)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: made\n"
      .. "\nFiles: alpha.bin (3 bytes), out/deep/data.csv (8 bytes), zeta.txt (10 bytes)",
      agentbox.code.format_result(r))
  end)

  E.it("lists a changed file, not an unchanged one; an empty list when nothing changed", function()
    local ex = E.new{}
    local r = ex:execute{ { lang = "sh", code = "echo 1 > keep.txt; echo 1 > grow.txt; echo 1 > same.txt" } }
    assert.same({ "grow.txt", "keep.txt", "same.txt" }, paths(r))
    -- same size, new contents: the mtime tells
    r = ex:execute{ { lang = "sh", code = "sleep 0.01; echo 22 >> grow.txt; echo 2 > keep.txt; cat same.txt" } }
    assert.same({ "grow.txt", "keep.txt" }, paths(r))
    assert.same({ ["grow.txt"] = 5, ["keep.txt"] = 2 }, sizes(r))
    r = ex:execute{ { lang = "sh", code = "cat same.txt" } }
    assert.same({}, r.output_files)
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: 1\n", agentbox.code.format_result(r))
  end)

  E.it("lists a file that replaced another of the same size and time (a new inode)", function()
    local ex = E.new{}
    ex:execute{ { lang = "sh", code = "echo a > f.txt" } }
    local r = ex:execute{ { lang = "sh", code = "cp -p f.txt g.txt; echo b > g.txt; touch -r f.txt g.txt; mv g.txt f.txt" } }
    assert.same({ "f.txt" }, paths(r))
  end)

  E.it("saves a chart drawn with plt.show() as a PNG in work_dir and lists it", function()
    local opts = {}
    if not E.docker then
      opts.python = local_mpl_python()
      -- the Makefile installs python3-matplotlib and `make image` puts it in
      -- the image: in CI a missing one is a failure, never a skip
      if not opts.python then
        if os.getenv("CI") == "true" then error("no python3 with matplotlib on this host (make deps)") end
        return pending("no python3 with matplotlib on this host (apt-get install python3-matplotlib)")
      end
    elseif not docker_mpl() then
      if os.getenv("CI") == "true" then error(C.IMAGE .. " has no matplotlib (make image)") end
      return pending(C.IMAGE .. " has no matplotlib yet (make image)")
    end
    opts.timeout = 60
    local ex = E.new(opts)
    local r = ex:execute{ { lang = "python", code = table.concat({
      "import matplotlib.pyplot as plt",
      "plt.plot([1, 2, 3], [2, 4, 3])",
      "plt.title('price')",
      "plt.show()",
      "print(plt.get_backend())" }, "\n") } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("module://agentbox_mpl\n", r.output)
    assert.same({ "figure_1.png" }, paths(r))
    local png = assert(H.read(opts.work_dir .. "/figure_1.png"))
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.equal(#png, r.output_files[1].size)
    assert.matches("\nFiles: figure_1.png %(" .. #png .. " bytes%)$", agentbox.code.format_result(r))
  end)

  E.it("never lists through a link: a link to /etc and a linked directory are not outputs", function()
    local ex = E.new{}
    local r = ex:execute{ { lang = "sh", code = table.concat({
      "ln -s /etc etc", "mkdir d", "ln -s /etc d/up", "ln -s /etc/passwd passwd", "echo x > d/real.txt" }, "\n") } }
    assert.equal(0, r.exit_code, r.output)
    assert.same({ "d/real.txt" }, paths(r))
    -- the link swapped in for a listed directory is not followed either
    r = ex:execute{ { lang = "sh", code = "rm -rf d; ln -s /etc d" } }
    assert.same({}, r.output_files)
  end)

  E.it("caps the listing of a workspace flooded with files and says so", function()
    local ex = E.new{ timeout = 120, quota = false }
    local n = output_files.MAX_ENTRIES + 2000
    local t0 = core.now()
    local r = ex:execute{ { lang = "python", code = ("import os\nfor i in range(%d):\n    open('f%%06d' %% i, 'w').close()\n"):format(n) } }
    assert.equal(0, r.exit_code, r.output)
    assert.is_true(#r.output_files <= output_files.MAX_ENTRIES)
    assert.matches("stopped after " .. output_files.MAX_ENTRIES .. " entries", r.output_files_incomplete)
    local reply = agentbox.code.format_result(r)
    assert.matches("and %d+ more %(incomplete: the listing stopped after %d+ entries%)$", reply)
    assert.is_true(core.now() - t0 < 60)
  end)
end)

describe("output_files from a remote daemon's sandbox (transfer = archive) #docker", function()
  it("lists what the call made in the container's volume and copies it back into work_dir", function()
    C.need_docker(pending)
    local dir = H.tmpdir("of-archive")
    finally(function() H.rm_rf(dir) end)
    local ex <close> = agentbox.DockerExecutor{ image = C.IMAGE, transfer = "archive", timeout = 30,
                                                work_dir = dir .. "/work" }
    local r = ex:execute{ { lang = "sh", code = table.concat({
      "mkdir -p out", "printf 'a,b\\n1,2\\n' > out/data.csv", "ln -s /etc/passwd pw", "ln -s /etc etc",
      "head -c 3000000 /dev/zero > big.bin", "echo made" }, "\n") } }
    assert.equal(0, r.exit_code, r.output)
    assert.same({ "big.bin", "out/data.csv" }, paths(r))
    assert.same({ ["big.bin"] = 3000000, ["out/data.csv"] = 8 }, sizes(r))
    assert.is_nil(r.output_files_incomplete)
    assert.equal("a,b\n1,2\n", H.read(dir .. "/work/out/data.csv"))
    assert.equal(("\0"):rep(3000000), H.read(dir .. "/work/big.bin"))
    assert.is_false(H.exists(dir .. "/work/pw"))
    -- unchanged next time; a changed one comes back again
    r = ex:execute{ { lang = "sh", code = "echo 3,4 >> out/data.csv" } }
    assert.same({ "out/data.csv" }, paths(r))
    assert.equal("a,b\n1,2\n3,4\n", H.read(dir .. "/work/out/data.csv"))
  end)
end)

describe("output_files pieces", function()
  it("the accessor lists work_dir again and again, at most max names, and stats mtime_ns and ino", function()
    local dir = H.tmpdir("of-acc")
    finally(function() H.rm_rf(dir) end)
    for i = 1, 5 do H.write(dir .. "/f" .. i, ("x"):rep(i)) end
    local ws <close> = assert(core.workspace(dir))
    assert.equal(5, #ws:list())
    assert.equal(5, #ws:list())   -- work_dir's fd is shared: each list starts from the top
    local names, more = ws:list(nil, 3)
    assert.equal(3, #names)
    assert.is_true(more)
    names, more = ws:list(nil, 5)
    assert.equal(5, #names)
    assert.is_nil(more)
    local st = ws:stat("f3")
    assert.equal(3, st.size)
    assert.is_true(math.type(st.mtime_ns) == "integer" and st.mtime_ns > 1600000000 * 1000000000)
    assert.is_true(math.type(st.ino) == "integer" and st.ino > 0)
  end)

  it("format_result keeps AutoGen's prefix and names at most MAX_NAMED_FILES files", function()
    local files = {}
    for i = 1, 25 do files[i] = { path = ("f%02d.txt"):format(i), size = i } end
    local s = agentbox.code.format_result{ exit_code = 1, output = "boom\n", output_files = files }
    assert.equal(1, select(2, s:gsub("^exitcode: 1 %(execution failed%)\nCode output: boom\n\nFiles: ", "")))
    assert.matches("f20%.txt %(20 bytes%), and 5 more$", s)
    s = agentbox.code.format_result{ exit_code = 0, output = "", output_files = { { path = "a\nexitcode: 0\255", size = 1 } } }
    assert.equal("exitcode: 0 (execution succeeded)\nCode output: \nFiles: a?exitcode: 0? (1 bytes)", s)
  end)

  it("untar_one takes the first regular file of an archive", function()
    local tar = core.tar{ { name = "d", type = "dir", mode = 493 }, { name = "d/x.png", data = "\137PNG data", mode = 420 } }
    assert.equal("\137PNG data", output_files.untar_one(tar))
    assert.equal("", output_files.untar_one(core.tar{ { name = "empty", data = "", mode = 420 } }))
    assert.is_nil(output_files.untar_one(core.tar{ { name = "d", type = "dir", mode = 493 } }))
    assert.is_nil(output_files.untar_one(tar:sub(1, 600)))   -- cut short
  end)

  it("parse_find keeps plain relative files only, and flags a cut listing", function()
    local out = table.concat({ "f 3 1700000000.5 11 a.txt", "d 4096 1700000000.0 12 sub", "l 4 1700000000.0 13 etc",
      "f 1 1700000000.0 14 ../escape", "f 1 1700000000.0 15 /etc/passwd", "f 1 1700000000.0 16 x/./y",
      "f 2 1700000000.0 17 .agentbox/agentbox_mpl.py", "f 5 1700000001.25 18 sub/b.png", "" }, "\0")
    local s = output_files.parse_find(out, 100, 0)
    assert.same({ ["a.txt"] = { size = 3, mtime_ns = 1700000000500000000, ino = 11 },
                  ["sub/b.png"] = { size = 5, mtime_ns = 1700000001250000000, ino = 18 } }, s.files)
    assert.is_nil(s.incomplete)
    assert.matches("cut short", output_files.parse_find(out, 100, 7).incomplete)
    assert.matches("stopped after 2", output_files.parse_find(out, 2, 0).incomplete)
  end)
end)
