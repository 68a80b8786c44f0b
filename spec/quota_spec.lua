-- The workspace quota (issue 8, item 6): a block cannot fill the host's
-- disk or inodes through work_dir. Every case attacks for real, through
-- both executors (spec/support/contract.lua): real writes, real files,
-- fallocate through every system call entry, a chmod 000 hiding place.
--
-- Recording the attacks against code without the quota: with
-- AGENTBOX_SPEC_STRIP_QUOTA=1 the `quota` option is left out when an
-- executor is built (older code rejects it), so each attack runs as it
-- would have and its assertions show what landed in work_dir.
local core = require("agentbox.core")
local C = require("spec.support.contract")
local H = require("spec.support.helpers")

local MiB = 1024 * 1024
local STRIP = os.getenv("AGENTBOX_SPEC_STRIP_QUOTA") == "1"

-- allocated bytes under dir, as du counts them (hard links once)
local function du(dir)
  local r = H.run({ "du", "-s", "-B1", dir })
  return assert(tonumber(r.stdout:match("^(%d+)")), r.output)
end

-- entries under dir
local function count(dir)
  local r = H.run({ "sh", "-c", 'find "$1" -mindepth 1 | wc -l', "sh", dir })
  return assert(tonumber(r.stdout:match("(%d+)")), r.output)
end

local function py(src) return { { lang = "python", code = src } } end

-- the supervisor could not inspect a process that holds files (failed closed)
local function cannot_size(out)
  return out:find("cannot size the deleted files a process of the block holds open or mapped", 1, true) ~= nil
end

local function quota_line(out)
  return out:match("agentbox: workspace quota[^\n]*")
end

C.each("workspace quota", function(E)
  local function new(opts)
    if STRIP then opts.quota = nil end
    return E.new(opts)
  end

  E.it("a block writing 3 GB stops at a 20 MB quota: exit 122 and a line, the directory holds 20 MB", function()
    local ex <close> = new{ quota = { bytes = "20m" }, timeout = 60 }
    local r = ex:execute(py([[
chunk = b"x" * (1 << 20)
with open("big.bin", "wb") as f:
    for _ in range(3 * 1024):
        f.write(chunk)
print("wrote 3 GB")
]]))
    local used = du(ex.work_dir)
    print(("\n[%s] 3 GB in one file: exit %d, %d bytes in work_dir"):format(E.kind, r.exit_code, used))
    assert.is_nil(r.output:find("wrote 3 GB", 1, true))
    assert.equal(122, r.exit_code)
    assert.truthy(quota_line(r.output), r.output)
    -- RLIMIT_FSIZE stops the one file just past the quota
    assert.is_true(used <= 20 * MiB + 64 * 1024, "work_dir holds " .. used)
  end)

  E.it("3 GB in 10 MB files, each under RLIMIT_FSIZE, is stopped by the polls", function()
    local ex <close> = new{ quota = { bytes = "20m" }, timeout = 60 }
    local r = ex:execute(py([[
chunk = b"x" * (1 << 20)
for i in range(300):
    with open("part%d.bin" % i, "wb") as f:
        for _ in range(10):
            f.write(chunk)
print("wrote 3 GB")
]]))
    local used = du(ex.work_dir)
    print(("\n[%s] 3 GB in 10 MB files: exit %d, %d bytes in work_dir"):format(E.kind, r.exit_code, used))
    assert.is_nil(r.output:find("wrote 3 GB", 1, true))
    assert.equal(122, r.exit_code)
    assert.truthy(r.output:find("agentbox: workspace quota exceeded", 1, true), r.output)
    -- what one poll interval (20 ms at this size) lets through, far below 3 GB
    assert.is_true(used < 512 * MiB, "work_dir holds " .. used)
  end)

  E.it("the default quota (1 GiB) is in force without the option", function()
    local ex <close> = E.new{ timeout = 120 }
    local r = ex:execute(py([[
chunk = b"x" * (1 << 20)
for i in range(13):
    with open("part%d.bin" % i, "wb") as f:
        for _ in range(100):
            f.write(chunk)
print("wrote 1.3 GB")
]]))
    local used = du(ex.work_dir)
    print(("\n[%s] 1.3 GB, default quota: exit %d, %d bytes in work_dir"):format(E.kind, r.exit_code, used))
    assert.is_nil(r.output:find("wrote 1.3 GB", 1, true))
    assert.equal(122, r.exit_code)
    assert.truthy(r.output:find("over the quota of 1024.0 MiB (1073741824 bytes) and 100000 files", 1, true), r.output)
    assert.is_true(used < 1024 * MiB + 512 * MiB, "work_dir holds " .. used)
  end)

  E.it("the default quota (100,000 files) is in force without the option", function()
    -- a remote daemon copies each new file back with one archive GET: minutes
    local ex <close> = E.new{ timeout = 120 }
    local r = ex:execute(py([[
import os
os.mkdir("many")
for i in range(120000):
    open("many/f%d" % i, "w").close()
print("made 120000 files")
]]))
    local n = count(ex.work_dir)
    print(("\n[%s] 120,000 files, default quota: exit %d, %d entries in work_dir"):format(E.kind, r.exit_code, n))
    assert.is_nil(r.output:find("made 120000", 1, true))
    assert.equal(122, r.exit_code)
    assert.truthy(r.output:find("and 100000 files", 1, true), r.output)
    -- a walk of 100,000 entries takes a while: the block runs on meanwhile
    assert.is_true(n < 120000, n .. " entries")
  end, { remote = "copying back thousands of files takes minutes" })

  E.it("a block creating 200,000 files stops at a 2,000 file quota", function()
    -- a remote daemon copies each new file back with one archive GET: minutes
    local ex <close> = new{ quota = { files = 2000 }, timeout = 60 }
    local r = ex:execute(py([[
import os
os.mkdir("many")
for i in range(200000):
    open("many/f%d" % i, "w").close()
print("made 200000 files")
]]))
    local n = count(ex.work_dir)
    print(("\n[%s] 200,000 files, quota 2,000: exit %d, %d entries in work_dir"):format(E.kind, r.exit_code, n))
    assert.is_nil(r.output:find("made 200000", 1, true))
    assert.equal(122, r.exit_code)
    assert.truthy(r.output:find("files, over the quota of", 1, true), r.output)
    assert.is_true(n < 20000, n .. " entries")
  end, { remote = "copying back thousands of files takes minutes" })

  E.it("the quota is of the directory, across blocks: a full workspace runs nothing until files go", function()

    -- the host work_dir is not the sandbox's with a remote daemon (archive transfer)

    local ex <close> = new{ quota = { files = 2000 } }
    local r1 = ex:execute(py([[
import os
os.mkdir("a")
for i in range(1500):
    open("a/f%d" % i, "w").close()
print("first")
]]))
    assert.equal(0, r1.exit_code, r1.output)
    local r2 = ex:execute(py([[
import os
os.mkdir("b")
for i in range(1000):
    open("b/f%d" % i, "w").close()
print("second")
]]))
    local r3 = ex:execute(py('print("third")'))
    print(("\n[%s] 1,500 + 1,000 files, quota 2,000: exits %d %d %d, %d entries"):format(
      E.kind, r1.exit_code, r2.exit_code, r3.exit_code, count(ex.work_dir)))
    assert.equal(122, r2.exit_code)
    assert.is_nil(r2.output:find("second", 1, true))
    assert.equal(122, r3.exit_code)
    assert.is_nil(r3.output:find("third", 1, true))
    assert.truthy(r3.output:find("before the block started", 1, true), r3.output)
    assert.truthy(r3.output:find("nothing was run", 1, true), r3.output)
    -- the user removes files: blocks run again
    H.run({ "rm", "-rf", ex.work_dir .. "/b" })
    local r4 = ex:execute(py('print("fourth")'))
    assert.equal(0, r4.exit_code, r4.output)
    assert.truthy(r4.output:find("fourth", 1, true))
  end, { remote = "work_dir is not shared with the sandbox" })

  E.it("space reserved without writing (fallocate, KEEP_SIZE, io_uring) is refused", function()
    local ex <close> = new{ quota = { bytes = "20m" } }
    local r = ex:execute(py([[
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
fd = os.open("reserved", os.O_CREAT | os.O_WRONLY)
for mode, name in ((1, "keep_size"), (0, "plain"), (0x10, "zero_range")):
    rc = libc.fallocate(fd, mode, 0, 3 << 30)
    print(name, rc, os.strerror(ctypes.get_errno()) if rc else "ok")
st = os.fstat(fd)
print("apparent", st.st_size, "allocated", st.st_blocks * 512)
rc = libc.syscall(425, 8, ctypes.c_void_p(0))
print("io_uring_setup", rc, os.strerror(ctypes.get_errno()) if rc < 0 else "an fd")
]]))
    local used = du(ex.work_dir)
    print(("\n[%s] fallocate 3 GB: exit %d, %d bytes in work_dir\n%s"):format(E.kind, r.exit_code, used, r.output))
    assert.is_true(used < 1 * MiB, "work_dir holds " .. used)
    for _, name in ipairs({ "keep_size", "plain", "zero_range" }) do
      assert.truthy(r.output:find(name .. " -1 Operation not supported", 1, true), r.output)
    end
    assert.truthy(r.output:find("io_uring_setup -1 Function not implemented", 1, true), r.output)
    assert.equal(0, r.exit_code, r.output)
  end)

  E.it("fallocate through the i386 and x32 entries is refused as well", function()

    -- the host work_dir is not the sandbox's with a remote daemon (archive transfer)

    local ex <close> = new{ quota = { bytes = "20m" } }
    local src = E.tmpdir("f32") .. "/f32.c"
    H.write(src, [[
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
/* fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 3 GB) through int $0x80 (seccomp
 * sees AUDIT_ARCH_I386, number 324) and as an x32 call (285 | bit 30) */
int main(void) {
  int fd = open("reserved32", O_CREAT | O_WRONLY, 0644);
  long r, lo = 3L << 30;
  __asm__ volatile("push %%rbp\n\txor %%ebp, %%ebp\n\tint $0x80\n\tpop %%rbp"
                   : "=a"(r) : "a"(324L), "b"((long)fd), "c"(1L), "d"(0L), "S"(0L), "D"(lo & 0xffffffff) : "memory");
  printf("i386 %ld %s\n", r, r < 0 ? strerror((int)-r) : "ok");
  register long len __asm__("r10") = lo;
  __asm__ volatile("syscall" : "=a"(r) : "a"(285L | 0x40000000L), "D"((long)fd), "S"(1L), "d"(0L), "r"(len)
                   : "rcx", "r11", "memory");
  printf("x32 %ld %s\n", r, r < 0 ? strerror((int)-r) : "ok");
  return 0;
}
]])
    local bin = ex.work_dir .. "/f32"
    local cc = H.run({ "cc", "-O1", "-static", "-o", bin, src })
    assert.equal(0, cc.exit_code, cc.output)
    local r = ex:execute{ { lang = "sh", code = E.inside(ex) .. "/f32" } }
    local used = du(ex.work_dir)
    print(("\n[%s] i386/x32 fallocate: exit %d, %d bytes in work_dir\n%s"):format(E.kind, r.exit_code, used, r.output))
    -- refused: our filter answers every i386 and x32 call with ENOSYS
    -- (seccomp.c), so nothing reaches fallocate through them
    for _, abi in ipairs({ "i386", "x32" }) do
      assert.truthy(r.output:find(abi .. " -38 Function not implemented", 1, true), r.output)
    end
    assert.is_true(used < 5 * MiB, "work_dir holds " .. used)
  end, { remote = "work_dir is not shared with the sandbox" })

  E.it("deleted files the block holds open (fds, O_TMPFILE, mappings) count while it runs", function()
    local ex <close> = new{ quota = { bytes = "20m" }, timeout = 60 }
    local t0 = core.now()
    local r = ex:execute(py([[
import mmap, os
held = []
chunk = b"x" * (1 << 20)
for i in range(100):            # 1 GB in unlinked files kept open
    fd = os.open("h%d" % i, os.O_CREAT | os.O_RDWR)
    os.unlink("h%d" % i)
    for _ in range(10):
        os.write(fd, chunk)
    held.append(fd)
    if i % 2:                   # and through O_TMPFILE
        t = os.open(".", os.O_TMPFILE | os.O_RDWR)
        for _ in range(10):
            os.write(t, chunk)
        held.append(t)
    if i % 3 == 0:              # and through mappings whose fd is closed
        fd = os.open("m%d" % i, os.O_CREAT | os.O_RDWR)
        os.ftruncate(fd, 10 << 20)
        m = mmap.mmap(fd, 10 << 20)
        os.close(fd)
        os.unlink("m%d" % i)
        m[:] = b"y" * (10 << 20)
        held.append(m)
print("held 2 GB")
import time
time.sleep(30)
]]))
    local took = core.now() - t0
    print(("\n[%s] deleted files held open: exit %d in %.1f s\n%s"):format(E.kind, r.exit_code, took,
      quota_line(r.output) or r.output))
    assert.is_nil(r.output:find("held 2 GB", 1, true))
    assert.equal(122, r.exit_code)
    -- counted; or, where the supervisor cannot size a mapping (map_files
    -- needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE: the container), failed closed
    assert.truthy(r.output:find("of it in deleted files the block held open", 1, true)
                  or r.output:find("cannot size the deleted files a process of the block holds", 1, true), r.output)
    assert.is_true(took < 25, "took " .. took)
  end)

  E.it("deleted files held through fds alone are counted exactly", function()
    local ex <close> = new{ quota = { bytes = "20m" }, timeout = 60 }
    local r = ex:execute(py([[
import os, time
held, chunk = [], b"x" * (1 << 20)
for i in range(100):
    fd = os.open("h%d" % i, os.O_CREAT | os.O_RDWR)
    os.unlink("h%d" % i)
    for _ in range(10):
        os.write(fd, chunk)
    held.append(fd)
print("held 1 GB")
time.sleep(30)
]]))
    print(("\n[%s] deleted files held through fds: exit %d\n%s"):format(E.kind, r.exit_code, quota_line(r.output) or r.output))
    assert.equal(122, r.exit_code)
    assert.truthy(r.output:find("of it in deleted files the block held open", 1, true)
                  -- a container's stateful interpreter keeps the resident's saved
                  -- uid, so the supervisor (root without CAP_SYS_PTRACE) cannot
                  -- look into its fds: failed closed (README "Stateful Python")
                  or E.kind == "docker-stateful" and cannot_size(r.output), r.output)
  end)

  E.it("allocated blocks are counted, not apparent sizes: a sparse file costs what it holds", function()
    local ex <close> = new{ quota = { bytes = "20m" } }
    local r = ex:execute(py([[
with open("sparse", "wb") as f:
    f.seek(15 << 20)
    f.write(b"x")
with open("real", "wb") as f:
    f.write(b"y" * (10 << 20))
import os
print("apparent", os.path.getsize("sparse") + os.path.getsize("real"))
]]))
    assert.equal(0, r.exit_code, r.output)
    assert.truthy(r.output:find("apparent 26214401", 1, true), r.output)
  end)

  E.it("a chmod 000 directory does not hide what it holds", function()
    local ex <close> = new{ quota = { bytes = "20m" } }
    local r1 = ex:execute(py([[
import os
os.mkdir("hidden")
with open("hidden/x", "wb") as f:
    f.write(b"x" * (15 << 20))
os.chmod("hidden", 0)
print("hid 15 MB")
]]))
    local r2 = ex:execute(py([[
with open("visible", "wb") as f:
    f.write(b"y" * (15 << 20))
print("wrote 15 MB more")
]]))
    local used = du(ex.work_dir)
    print(("\n[%s] chmod 000 hiding: exits %d %d, %d bytes in work_dir\n%s\n%s"):format(
      E.kind, r1.exit_code, r2.exit_code, used, quota_line(r1.output) or "", quota_line(r2.output) or ""))
    os.execute("chmod -R u+rwx '" .. ex.work_dir .. "' 2>/dev/null")
    -- a supervisor that can read it counts the 15 MB (the second block is
    -- killed at the quota); one that cannot fails closed at once
    assert.is_nil(r2.output:find("wrote 15 MB more", 1, true))
    assert.is_true(r1.exit_code == 122 or r2.exit_code == 122)
    if r1.exit_code == 122 then
      assert.truthy(r1.output:find("cannot enter 'hidden' (Permission denied)", 1, true), r1.output)
      assert.truthy(r1.output:find("counts as over the quota", 1, true), r1.output)
    end
    assert.is_true(used <= 20 * MiB + 64 * 1024, "work_dir holds " .. used)
  end)

  E.it("hard links count once, links are not followed, a tree deeper than 256 levels fails closed", function()
    local outside = E.tmpdir("outside")
    H.run({ "sh", "-c", 'head -c 30000000 /dev/zero > "$1/big"', "sh", outside })
    local ex <close> = new{ quota = { bytes = "20m" } }
    local r = ex:execute(py(([[
import os
with open("one", "wb") as f:
    f.write(b"x" * (12 << 20))
for i in range(20):
    os.link("one", "link%%d" %% i)
os.symlink(%q, "out")
print("linked")
]]):format(outside)))
    assert.equal(0, r.exit_code, r.output)
    assert.truthy(r.output:find("linked", 1, true))
    local deep = ex:execute(py([[
import os
os.makedirs("/".join(["d"] * 300))
print("deep")
]]))
    assert.equal(122, deep.exit_code, deep.output)
    assert.truthy(deep.output:find("deeper than 256 levels", 1, true), deep.output)
  end)

  E.it("quota = false turns it off; bytes = false or files = false turns one off", function()
    local off <close> = new{ quota = false }
    local r = off:execute(py([[
with open("big", "wb") as f:
    f.write(b"x" * (30 << 20))
print("wrote 30 MB")
]]))
    assert.equal(0, r.exit_code, r.output)
    assert.is_true(du(off.work_dir) >= 30 * MiB)
    local files_only <close> = new{ quota = { bytes = false, files = 10 } }
    local r2 = files_only:execute(py([[
with open("big", "wb") as f:
    f.write(b"x" * (30 << 20))
for i in range(20):
    open("f%d" % i, "w").close()
]]))
    assert.equal(122, r2.exit_code, r2.output)
    assert.truthy(r2.output:find("over the quota of unlimited bytes and 10 files", 1, true)
                  or E.kind == "docker-stateful" and cannot_size(r2.output), r2.output)   -- as above
    assert.is_nil(quota_line(r.output))
  end)

  E.it("bad quota options are refused with what to write instead", function()
    for _, case in ipairs({
      { 5, "quota must be false or a table" },
      { { bytes = "lots" }, "quota.bytes must be a size such as" },
      { { bytes = 0 }, "quota.bytes must be" },
      { { files = 1.5 }, "quota.files must be a positive integer or false" },
      { { files = 0 }, "quota.files must be a positive integer or false" },
      { { size = 1 }, "quota: unknown key 'size' (known: bytes, files)" },
    }) do
      local ok, err = pcall(E.new, { quota = case[1] })
      assert.is_false(ok)
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
    end
    local ex <close> = E.new{ quota = { bytes = "1.5g", files = false } }
    assert.same({ bytes = 1610612736, files = 0 }, ex.quota)
    local dflt <close> = E.new{}
    assert.same({ bytes = 1 << 30, files = 100000 }, dflt.quota)
  end)
end)

-- The supervisor alone, as users other than the host's root: the in-container
-- supervisor after the privilege split (root without CAP_DAC_READ_SEARCH or
-- CAP_DAC_OVERRIDE, with CAP_SETUID) and LocalExecutor run by an ordinary user.
describe("workspace quota: the supervisor's walk", function()
  local sup = os.getenv("AGENTBOX_SUP")
  local dirs = {}
  after_each(function()
    for i = #dirs, 1, -1 do
      os.execute("chmod -R u+rwx '" .. dirs[i] .. "' 2>/dev/null")
      H.rm_rf(dirs[i])
      dirs[i] = nil
    end
  end)
  local function setup()
    local d = H.tmpdir("walk")
    dirs[#dirs + 1] = d
    local w = d .. "/w"
    assert(core.mkdir_p(w .. "/private/sub"))
    H.run({ "sh", "-c", 'head -c 5000000 /dev/zero > "$1/private/sub/x" && chown -R 65534:65534 "$1" && '
                      .. 'chmod 700 "$1/private" "$1/private/sub"', "sh", w })
    return w
  end
  local NO_DAC = { "capsh", "--drop=cap_dac_read_search,cap_dac_override", "--" , "-c", '"$0" "$@"' }
  local function run(prefix, w, bytes)
    local argv = {}
    for _, a in ipairs(prefix) do argv[#argv + 1] = a end
    -- a root supervisor runs the program as another uid (-u; it refuses
    -- root); an unused uid, since -u also sweeps every process of it
    local drop = prefix == NO_DAC and { "-u", "64999:64999" } or {}
    for _, a in ipairs({ sup }) do argv[#argv + 1] = a end
    for _, a in ipairs(drop) do argv[#argv + 1] = a end
    for _, a in ipairs({ "--quota-dir", w, "--quota-bytes", tostring(bytes), "--", "true" }) do argv[#argv + 1] = a end
    return H.run(argv)
  end
  local NOBODY = { "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups" }

  it("as root without DAC capabilities: the sandbox user's 0700 directories are read as their owner", function()
    assert.equal("0", H.run({ "id", "-u" }).stdout:match("%d+"), "these cases run the supervisor as other users: root needed")
    local w = setup()
    local r = run(NO_DAC, w, 20 * MiB)
    assert.equal(0, r.exit_code, r.output)
    r = run(NO_DAC, w, 2 * MiB)   -- and what they hold is counted
    assert.equal(122, r.exit_code, r.output)
    assert.truthy(r.output:find("holds at least 4.8 MiB", 1, true), r.output)
  end)

  it("as root without DAC capabilities: chmod 000 fails closed", function()
    local w = setup()
    H.run({ "chmod", "000", w .. "/private" })
    local r = run(NO_DAC, w, 20 * MiB)
    assert.equal(122, r.exit_code, r.output)
    assert.truthy(r.output:find("cannot enter 'private' (Permission denied)", 1, true), r.output)
    assert.truthy(r.output:find("nothing was run", 1, true), r.output)
  end)

  it("as an ordinary user: chmod 000 and u-x fail closed", function()
    local w = setup()
    assert.equal(0, run(NOBODY, w, 20 * MiB).exit_code)
    H.run({ "chmod", "000", w .. "/private/sub" })
    local r = run(NOBODY, w, 20 * MiB)
    assert.equal(122, r.exit_code, r.output)
    assert.truthy(r.output:find("cannot enter 'private/sub' (Permission denied)", 1, true), r.output)
    H.run({ "chmod", "400", w .. "/private/sub" })   -- listable, but its entries cannot be looked at
    r = run(NOBODY, w, 20 * MiB)
    assert.equal(122, r.exit_code, r.output)
    assert.truthy(r.output:find("cannot", 1, true), r.output)
  end)

  it("as root without CAP_SYS_PTRACE: deleted files held by a program of another uid are counted", function()
    local d = H.tmpdir("held")
    dirs[#dirs + 1] = d
    H.run({ "chown", "64999:64999", d })
    local script = d .. ".py"
    H.write(script, [[
import os, sys, time
held, chunk = [], b"x" * (1 << 20)
for i in range(100):
    fd = os.open(sys.argv[1] + "/h%d" % i, os.O_CREAT | os.O_RDWR)
    os.unlink(sys.argv[1] + "/h%d" % i)
    for _ in range(10):
        os.write(fd, chunk)
    held.append(fd)
time.sleep(20)
]])
    local r = H.run({ "capsh", "--drop=cap_sys_ptrace,cap_dac_read_search,cap_dac_override,cap_sys_admin,"
                        .. "cap_checkpoint_restore", "--", "-c", '"$0" "$@"',
                      sup, "-u", "64999:64999", "--quota-dir", d, "--quota-bytes", tostring(20 * MiB), "--",
                      "python3", script, d })
    os.remove(script)
    assert.equal(122, r.exit_code, r.output)
    assert.truthy(r.output:find("of it in deleted files the block held open", 1, true), r.output)
  end)

  -- core.spawn's quota field, on both ways a supervisor starts: the spawn
  -- server (sup) and a fork of this process (no sup)
  for _, via in ipairs({ "the spawn server", "a forked supervisor" }) do
    it("core.spawn{ quota = ... } through " .. via, function()
      local d = H.tmpdir("spawn")
      dirs[#dirs + 1] = d
      local function spawn(opts)
        opts.env = { PATH = os.getenv("PATH") }
        opts.cwd = d
        opts.sup = via == "the spawn server" and sup or nil
        local p <close> = assert(core.spawn(opts))
        while not p:done() do core.step(-1) end
        return p:result()
      end
      local r = spawn{ argv = { "sh", "-c", "i=0; while [ $i -lt 50 ]; do : > f$i; i=$((i+1)); done" },
                       quota = { files = 20 } }
      assert.is_true(r.quota_exceeded, r.output)
      assert.truthy(r.stderr:find("over the quota of unlimited bytes and 20 files", 1, true), r.output)
      r = spawn{ argv = { "true" }, quota = { files = 20 } }      -- over before it starts
      assert.is_true(r.quota_exceeded)
      assert.is_nil(r.exit_code)
      assert.truthy(r.stderr:find("before the block started", 1, true), r.output)
      r = spawn{ argv = { "true" }, quota = { files = 100 } }
      assert.is_false(r.quota_exceeded)
      assert.equal(0, r.exit_code)
      -- a poll kills the tree long before its deadline (the shell goes on
      -- to sleep after head hits RLIMIT_FSIZE)
      r = spawn{ argv = { "sh", "-c", "head -c 3000000 /dev/zero > big; sleep 30" }, timeout = 20,
                 quota = { bytes = 2 * MiB, dir = d } }
      assert.is_false(r.timed_out)
      assert.is_true(r.quota_exceeded, r.output)
      assert.truthy(r.stderr:find("while the block ran", 1, true), r.output)
      assert.is_true(r.wall < 10, "took " .. r.wall)
      r = spawn{ argv = { "true" }, quota = false }
      assert.is_false(r.quota_exceeded)
      for _, bad in ipairs({ { quota = 3, msg = "'quota' must be a table" },
                             { quota = { bytes = -1 }, msg = "quota.bytes must be a non-negative integer" },
                             { quota = { files = "x" }, msg = "quota.files must be a non-negative integer" },
                             { quota = { dir = 1, files = 1 }, msg = "quota.dir must be a string" } }) do
        local ok, err = pcall(core.spawn, { argv = { "true" }, cwd = d, quota = bad.quota })
        assert.is_false(ok)
        assert.truthy(tostring(err):find(bad.msg, 1, true), tostring(err))
      end
      local ok, err = pcall(core.spawn, { argv = { "true" }, quota = { files = 1 } })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("quota needs quota.dir or cwd", 1, true), tostring(err))
    end)
  end
end)

