# The attacks of spec/seccomp_sandbox_spec.lua: each refused system call made
# for real, with arguments that succeed (or reach the kernel and fail there
# with an errno of the kernel's own, never EPERM or ENOSYS) when no filter
# stands in the way. One line per attack: "<name> ok" or "<name> <ERRNO>".
# argv[1]: a directory this process may write (for the mount attack).
import ctypes, errno, fcntl, os, pty, struct, subprocess, sys, termios

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
WORK = sys.argv[1]
X86 = os.uname().machine == 'x86_64'
# x86_64 and aarch64 numbers (the generic table from 424 up is shared)
NR = dict(
    ptrace=(101, 117), process_vm_readv=(310, 270), process_vm_writev=(311, 271),
    mount=(165, 40), umount2=(166, 39), pivot_root=(155, 41), unshare=(272, 97), setns=(308, 268),
    clone=(56, 220), bpf=(321, 280), perf_event_open=(298, 241), keyctl=(250, 219), add_key=(248, 217),
    request_key=(249, 218), userfaultfd=(323, 282), kexec_load=(246, 104), kexec_file_load=(320, 294),
    init_module=(175, 105), finit_module=(313, 273), delete_module=(176, 106),
    io_uring_setup=(425, 425), io_uring_enter=(426, 426), io_uring_register=(427, 427),
    open_tree=(428, 428), move_mount=(429, 429), fsopen=(430, 430), fsconfig=(431, 431),
    fsmount=(432, 432), clone3=(435, 435))

def nr(name):
    return NR[name][0 if X86 else 1]

def arg(a):
    if isinstance(a, bytes): return ctypes.c_char_p(a)
    if isinstance(a, int): return ctypes.c_long(a)
    return a

def sc(name, *args):
    r = libc.syscall(ctypes.c_long(nr(name)), *[arg(a) for a in args])
    return r, ctypes.get_errno()

def verdict(r, e):
    return 'ok' if r >= 0 else errno.errorcode.get(e, str(e))

def say(name, v):
    print(name, v, flush=True)

def call(name, *args):
    say(name, verdict(*sc(name, *args)))

def sleeper():
    pid = os.fork()
    if pid == 0:
        os.execv('/bin/sleep', ['sleep', '30'])
    return pid

def reap(pid):
    try: os.kill(pid, 9)
    except OSError: pass
    os.waitpid(pid, 0)

def in_child(name, fn):
    """fn() in a forked child: a namespace or a tracer must not stay on this process"""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try: v = fn()
        except Exception as ex: v = 'exception:' + repr(ex)
        os.write(w, v.encode())
        os._exit(0)
    os.close(w)
    v = os.read(r, 200).decode()
    os.waitpid(pid, 0)
    say(name, v or 'child-died')

status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
say('no_new_privs', 'ok' if status['NoNewPrivs'].strip() == '1' else 'off')

# other processes: trace or read/write the memory of our own child
child = sleeper()
r, e = sc('ptrace', 16, child, 0, 0)                         # PTRACE_ATTACH
say('ptrace', verdict(r, e))
if r == 0: sc('ptrace', 17, child, 0, 0)                      # PTRACE_DETACH
buf = ctypes.create_string_buffer(b'secret!!')
local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
remote = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)    # the same address in the forked copy
call('process_vm_readv', child, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
call('process_vm_writev', child, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
reap(child)

# mounts. Without a filter, root mounts a tmpfs on WORK/m (and unmounts it);
# the others reach the kernel and fail on their arguments there
m = os.path.join(WORK, 'm')
os.makedirs(m, exist_ok=True)
r, e = sc('mount', b'none', m.encode(), b'tmpfs', 0, 0)
say('mount', verdict(r, e))
if r == 0: sc('umount2', m.encode(), 2)                       # MNT_DETACH
call('umount2', b'/nonexistent-agentbox', 0)
call('pivot_root', b'/nonexistent-agentbox-a', b'/nonexistent-agentbox-b')
call('open_tree', -100, b'/nonexistent-agentbox', 0)        # AT_FDCWD
call('move_mount', -1, b'', -1, b'', 0)
call('fsopen', b'tmpfs', 0)
call('fsconfig', -1, 0, 0, 0, 0)
call('fsmount', -1, 0, 0)

# namespaces
in_child('unshare', lambda: verdict(*sc('unshare', 0x10000000)))            # CLONE_NEWUSER
call('setns', -1, 0)
def clone_ns():
    r, e = sc('clone', 0x10000000 | 17, 0, 0, 0, 0)          # CLONE_NEWUSER | SIGCHLD
    if r == 0: os._exit(0)
    if r > 0: os.waitpid(r, 0)
    return verdict(r, e)
in_child('clone_newuser', clone_ns)
def clone3_ns():
    args = struct.pack('8Q', 0x10000000, 0, 0, 0, 17, 0, 0, 0)   # struct clone_args
    b = ctypes.create_string_buffer(args, len(args))
    r, e = sc('clone3', ctypes.addressof(b), len(args))
    if r == 0: os._exit(0)
    if r > 0: os.waitpid(r, 0)
    return verdict(r, e)
in_child('clone3', clone3_ns)
p = subprocess.run(['unshare', '-U', '-r', 'id', '-u'], capture_output=True, text=True)
say('unshare_cmd', 'ok' if p.returncode == 0 and p.stdout.strip() == '0'
    else 'EPERM' if 'Operation not permitted' in p.stderr else 'fail:' + p.stderr.strip())

# bpf(BPF_PROG_LOAD): a socket filter "r0 = 0; exit"
insns = struct.pack('<BBhi', 0xb7, 0, 0, 0) + struct.pack('<BBhi', 0x95, 0, 0, 0)
ib = ctypes.create_string_buffer(insns, len(insns))
lic = ctypes.create_string_buffer(b'GPL')
attr = struct.pack('<IIQQIIQ', 1, 2, ctypes.addressof(ib), ctypes.addressof(lic), 0, 0, 0) + bytes(72)
ab = ctypes.create_string_buffer(attr, len(attr))
call('bpf', 5, ctypes.addressof(ab), len(attr))             # BPF_PROG_LOAD, BPF_PROG_TYPE_SOCKET_FILTER

# perf_event_open: our own task clock, user space only (allowed at paranoid 2)
pa = bytearray(128)
struct.pack_into('<IIIQ', pa, 0, 1, 128, 1, 0)              # PERF_TYPE_SOFTWARE, size, SW_TASK_CLOCK
struct.pack_into('<Q', pa, 40, (1 << 5) | (1 << 6))        # exclude_kernel | exclude_hv
pb = ctypes.create_string_buffer(bytes(pa), 128)
call('perf_event_open', ctypes.addressof(pb), 0, -1, -1, 0)

# keyrings
call('keyctl', 0, -3, 0)                                     # KEYCTL_GET_KEYRING_ID of the session keyring
call('add_key', b'user', b'agentbox-probe', b'x', 1, -2)     # into the process keyring
call('request_key', b'user', b'agentbox-probe-none', 0, 0)   # the kernel: ENOKEY

call('userfaultfd', 0o2000000 | 1)                           # O_CLOEXEC | UFFD_USER_MODE_ONLY

params = ctypes.create_string_buffer(120)
call('io_uring_setup', 1, ctypes.addressof(params))
call('io_uring_enter', -1, 0, 0, 0, 0, 0)
call('io_uring_register', -1, 0, 0, 0)

# the kernel itself (this VM's kernel has neither kexec nor modules: ENOSYS)
call('kexec_load', 0, 0, 0, 0)
call('kexec_file_load', -1, -1, 0, b'', 0)
call('init_module', 0, 0, b'')
call('finit_module', -1, b'', 0)
call('delete_module', b'agentbox_none', 0)

# terminals: TIOCSTI on a pty that is our controlling terminal (the
# keystroke a shell reads once we exit), TIOCLINUX (virtual consoles only)
def tiocsti():
    os.setsid()
    mfd, sfd = pty.openpty()
    fcntl.ioctl(sfd, termios.TIOCSCTTY, 0)
    try:
        fcntl.ioctl(sfd, termios.TIOCSTI, b'x')
    except OSError as ex:
        return errno.errorcode.get(ex.errno, str(ex.errno))
    return 'ok' if os.read(mfd, 16) else 'nothing'
in_child('tiocsti', tiocsti)
def tioclinux():
    mfd, sfd = pty.openpty()
    try:
        fcntl.ioctl(sfd, 0x541C, b'\x00' * 8)
    except OSError as ex:
        return errno.errorcode.get(ex.errno, str(ex.errno))
    return 'ok'
in_child('tioclinux', tioclinux)
print('done', 'ok', flush=True)
