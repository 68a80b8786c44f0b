# What agentbox_preload.py and agentbox_session.py share: the client's
# request (agentbox_client.py), the walk and kill of a process's tree, a
# server's start, and running a file as python3 file.py does. Each of them
# loads this file from its own directory (a container has it bind-mounted
# beside them: executor/python_helper.lua).
import os
import sys

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
# agentbox_client.py's (and agentbox-sup --preload-client's): the request's
# first field, and how long a client waits for a server's "A"
REQUEST = b"agentbox-preload-1"
ACCEPT_S = 5


def prctl(*args):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(*[ctypes.c_ulong(a) for a in args] + [ctypes.c_ulong(0)] * (5 - len(args)))


# ---------------------------------------------------------------- a request

def recv_request(sock):
    """One length-prefixed message with three fds (SCM_RIGHTS): (data, fds),
    data None when malformed. A client's request: REQUEST, cwd, file,
    grace_ms and the environment ("k=v"), NUL-separated."""
    import socket
    try:
        data, fds, _, _ = socket.recv_fds(sock, 65536, 3)
    except (OSError, ValueError):
        return None, []
    if len(fds) != 3 or len(data) < 4:
        return None, fds
    need = int.from_bytes(data[:4], "big")
    data = data[4:]
    while len(data) < need:
        part = sock.recv(need - len(data))
        if not part:
            return None, fds
        data += part
    return data, fds


def peer_of(conn):
    """The pid and uid of the process at the other end of conn."""
    import socket
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[0:4], sys.byteorder), int.from_bytes(cred[4:8], sys.byteorder)


# ------------------------------------------------------------ process trees

def _children(pid):
    """The children of pid (all its threads'), or None when the kernel has
    no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)."""
    kids = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return kids
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid), "rb") as f:
                kids += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists("/proc/%d/task/%s" % (pid, tid)):
                continue
            return None
        except OSError:
            pass
    return kids


def _stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _scan():
    """pid -> ppid of every live process (/proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st[0] not in (b"Z", b"X"):
                parent[int(d)] = int(st[1])
    return parent


def live_below(root, skip=()):
    """The live (not zombie) processes below root, but skip's and theirs."""
    kids = _children(root)
    if kids is None:
        parent = _scan()
        found, changed = {root}, True
        while changed:
            changed = False
            for pid, pp in parent.items():
                if pid not in found and pp in found and pid not in skip:
                    found.add(pid)
                    changed = True
        return found - {root}
    found, todo = set(), kids
    while todo:
        pid = todo.pop()
        if pid in found or pid in skip:
            continue
        st = _stat(pid)
        if not st or st[0] in (b"Z", b"X"):
            continue
        found.add(pid)
        todo += _children(pid) or []
    return found


def reap(pid):
    """Reap every child that ended: -> pid's wait status when it was one."""
    status = None
    while True:
        try:
            p, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if p == 0:
            return status
        if p == pid:
            status = st


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
            if sig != 9:
                os.kill(pid, 18)   # SIGCONT: a stopped process must see TERM
        except OSError:
            pass


# ----------------------------------------------------------------- a server

def start_server(seconds, modules):
    """The server's first steps (the template's, the keeper's): -> True when
    it is a resident of a warm container's block server."""
    import gc
    import importlib
    import signal
    # a resident (src/sup.h) runs with a real uid of its own and the
    # sandbox uid as its effective one; execve made the saved uid the
    # sandbox's, set back here before anything else, so the sandbox user
    # can neither signal it nor ptrace it. Locally the three are equal
    r, e, _ = os.getresuid()
    if r != e:
        os.setresuid(-1, -1, r)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_PDEATHSIG, 9)
    signal.alarm(seconds)
    for m in modules:
        importlib.import_module(m)
    signal.alarm(0)
    # what the imports made is never collected: a block's collections then
    # do not write to (so copy) the server's pages
    gc.collect()
    gc.freeze()
    return r != e


# ---------------------------------------------------------- running a file

def new_main():
    import builtins
    import types
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    main.__annotations__ = {}
    main.__spec__ = None
    main.__package__ = None
    sys.modules["__main__"] = main
    return main


def run_file(main, path, state, cwd=None):
    """Run the file at path in the module main as python3 path does (in
    cwd, when given); its directory takes the place of state["path0"] (the
    last block's) in sys.path. -> its wait status: an uncaught
    KeyboardInterrupt is SIGINT."""
    import importlib
    from importlib.machinery import SourceFileLoader
    # the import system's caches are the server's: a directory made since
    # its imports (work_dir's agentbox_mpl, made after a container's server
    # started) is cached as absent, and listings are cached too; python3
    # file.py would see them now
    importlib.invalidate_caches()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with open(path, "rb") as f:
            src = f.read()
    except OSError as e:
        sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n" % (sys.executable, path, e.errno, e.strerror))
        return 2 << 8
    sys.argv = [path]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = [sys.orig_argv[0], path]
    d = os.path.dirname(os.path.realpath(path))
    if state["path0"] in sys.path:
        sys.path[sys.path.index(state["path0"])] = d
    else:
        sys.path.insert(0, d)
    state["path0"] = d
    main.__file__ = path
    main.__cached__ = None
    main.__loader__ = SourceFileLoader("__main__", path)
    main.__name__ = "__main__"
    sys.modules["__main__"] = main
    try:
        compiled = compile(src, path, "exec")
    except SyntaxError:
        t, v, _ = sys.exc_info()
        v.__traceback__ = None
        sys.excepthook(t, v, None)
        return 1 << 8
    del src
    try:
        exec(compiled, main.__dict__)
    except SystemExit as e:
        return exit_code(e.code) << 8
    except BaseException:
        t, v, tb = sys.exc_info()
        # the traceback starts at the code's frame, as python3 file.py prints it
        v.__traceback__ = tb = tb.tb_next
        try:
            sys.excepthook(t, v, tb)
        except BaseException:
            pass
        interrupted = issubclass(t, KeyboardInterrupt)
        del t, v, tb
        return 2 if interrupted else 1 << 8
    return 0


def exit_code(c):
    """SystemExit's code as python3 makes it an exit code."""
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    try:
        sys.stderr.write(str(c) + "\n")
    except Exception:
        pass
    return 1
