-- Our seccomp filter, read back from inside a block with either executor:
-- /proc/self/status shows it stacked (Docker's default plus ours), and the
-- calls a code sandbox never needs fail where the kernel (and Docker's
-- default profile) would allow them: io_uring_setup gave an fd before.
local C = require("spec.support.contract")

local PROBE = [=[
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 'fd' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
print('filters', status.get('Seccomp_filters', '?').strip())
print('nnp', status['NoNewPrivs'].strip())
params = ctypes.create_string_buffer(120)                            # struct io_uring_params
print('io_uring_setup', call(425, 1, ctypes.addressof(params)))
print('ptrace', call(101, 0x4206, os.getppid(), 0, 0))               # PTRACE_SEIZE the supervisor
print('process_vm_readv', call(310, os.getppid(), 0, 0, 0, 0, 0))
print('pidfd_getfd', call(438, 0, 0, 0))
print('bpf', call(321, 0, 0, 0))
print('perf_event_open', call(298, 0, 0, -1, -1, 0))
print('userfaultfd', call(323, 0))
print('keyctl', call(250, 0, 0))
print('unshare_user', call(272, 0x10000000))                         # CLONE_NEWUSER
print('clone3', call(435, 0, 0))
print('kexec_load', call(246, 0, 0, 0, 0))
print('getpid', 'fd' if call(39) == 'fd' else 'err')
]=]

local EXPECT = {
  io_uring_setup = "ENOSYS", ptrace = "EPERM", process_vm_readv = "EPERM", pidfd_getfd = "EPERM", bpf = "EPERM",
  perf_event_open = "EPERM", userfaultfd = "EPERM", keyctl = "EPERM", unshare_user = "EPERM", clone3 = "ENOSYS",
  kexec_load = "EPERM", getpid = "fd",
}

C.each("the seccomp filter", function(E)
  E.it("is stacked on the program and refuses what a sandbox never needs", function()
    local ex = E.new{ timeout = 20 }
    local r = ex:execute{ { lang = "python", code = PROBE } }
    assert.equal(0, r.exit_code, r.output)
    local got = {}
    for name, v in r.output:gmatch("(%S+) (%S+)\n") do got[name] = v end
    -- Docker's default profile is one filter, ours the second; a local host
    -- may already run under filters of its own
    assert.is_true(tonumber(got.filters) >= (E.docker and 2 or 1), r.output)
    assert.equal("1", r.output:match("nnp (%d)"), r.output)
    for name, want in pairs(EXPECT) do
      assert.equal(want, got[name], name .. " in:\n" .. r.output)
    end
  end)

  E.it("leaves ordinary work alone: threads, fork, subprocess, mmap", function()
    local ex = E.new{ timeout = 20 }
    local r = ex:execute{ { lang = "python", code = table.concat({
      "import threading, subprocess, mmap, multiprocessing",
      "t = threading.Thread(target=lambda: None); t.start(); t.join()",
      "print(subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip())",
      "m = mmap.mmap(-1, 4096); m.write(b'x'); print('mmap', m[:1])",
      "with multiprocessing.Pool(2) as p: print(p.map(abs, [-1, -2]))",
    }, "\n") } }
    assert.equal(0, r.exit_code, r.output)
    assert.equal("sub\nmmap b'x'\n[1, 2]\n", r.output)
  end)
end)
