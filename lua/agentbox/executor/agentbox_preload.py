# agentbox's preloaded Python (executor/python_preload.lua says who runs it).
#
#   python3 agentbox_preload.py serve SECONDS MODULE...   the template
#   python3 -I -S agentbox_client.py NAME GRACE_MS FILE     one block's client
#
# The template imports MODULE... once (within SECONDS, else SIGALRM), then
# prints "ready NAME" and listens on the abstract unix socket NAME (only a
# peer of its own uid is served). It never runs block code: every block is
# a fork of it, so nothing a block defines or patches reaches the next one.
#
# Supervision. The executor's supervisor starts the client like any program
# (session, nice, rlimits, seccomp, quota, deadline). The block itself cannot
# be the supervisor's descendant (only fork makes one), so the client is its
# proxy, and the block's whole tree lives inside a tree that dies with it:
#   * the template T (a child subreaper, under a supervisor of its own for
#     the executor's life) keeps one spare session S forked ahead, waiting
#     in accept, and forks the next spare when one is taken;
#   * S (a child subreaper) forks its block process B ahead too; once a
#     client connects, S says "A", takes the request (cwd, file, grace,
#     environment) and the client's stdin/stdout/stderr (SCM_RIGHTS) and
#     hands them to B, which becomes the block. B's orphans come back to S,
#     never to init. The client's TERM (the supervisor's, at the deadline)
#     goes to the whole tree, which is KILLed at half the grace, before the
#     supervisor KILLs the client; when B exits, what is left is KILLed;
#     then S sends B's wait status and the client mirrors it (exit code or
#     signal). When the client is gone (KILLed by its supervisor or by the
#     code) S KILLs the tree at once;
#   * T KILLs a session that stops (the code can SIGSTOP it), and every
#     process that comes back to it from a session that died other than
#     cleanly (the code killed its S);
#   * a client that no session takes within ACCEPT_S (T stopped or dead)
#     dies of UNAVAILABLE: nothing ran, the executor replaces the template.
# T and S are not dumpable (no ptrace, no /proc/PID/mem for code of the
# same uid); B is made dumpable again, as python3 file.py is.
# What this shares with agentbox_session.py (the request, the walk of a
# tree, the server's start, running the file) is in agentbox_blockproc.py;
# the client (agentbox_client.py) serves both.
import os
import sys

# the shared code (agentbox_blockproc.py, beside this file), loaded by hand:
# the blocks must find neither this directory in sys.path nor the module in
# sys.modules (python3 file.py's), and nothing is written beside it
_here = os.path.dirname(os.path.realpath(__file__))
bp = type(sys)("agentbox_blockproc")
with open(os.path.join(_here, "agentbox_blockproc.py"), "rb") as _f:
    exec(compile(_f.read(), _f.name, "exec"), bp.__dict__)


# --------------------------------------------------------------- the template

def _become_sandbox_user():
    # a block forked from a resident becomes the sandbox user alone (no
    # privilege needed: it is the effective uid)
    _, e, _ = os.getresuid()
    if os.getuid() != e:
        os.setresuid(e, e, e)
        # the uid change made it non-dumpable: readable again at once (the
        # supervisor's quota looks at every process of the sandbox user)
        bp.prctl(bp.PR_SET_DUMPABLE, 1)


def serve(seconds, modules):
    import select
    import signal
    import socket
    bp.start_server(seconds, modules)
    name = "agentbox-preload-" + os.urandom(16).hex()
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind("\0" + name)
    lst.listen(128)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    taken_r, taken_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)

    # one spare session, forked ahead (with its block process), waits in
    # accept: the forks are not on a block's path
    def spare():
        pid = os.fork()
        if pid == 0:
            session(lst, taken_w, [wake_r, wake_w, taken_r])
        return pid

    sessions = {spare()}
    sys.stdout.write("ready %s\n" % name)
    sys.stdout.flush()
    stray_check = False
    poll = select.poll()
    poll.register(taken_r, select.POLLIN)
    poll.register(wake_r, select.POLLIN)
    while True:
        try:
            events = poll.poll(10 if stray_check else None)
        except InterruptedError:
            events = []
        for fd, _ in events:
            try:
                n = len(os.read(fd, 512))
            except BlockingIOError:
                n = 0
            if fd == taken_r:
                for _ in range(n):
                    sessions.add(spare())
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if os.WIFSTOPPED(st):
                # a session is never stopped but by the code: it could not
                # watch its block any more
                os.kill(pid, 9)
                continue
            if pid in sessions:
                sessions.discard(pid)
                # a session that ended other than cleanly may have left its
                # block; a spare that died before its client came is replaced
                if not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
                    stray_check = True
                    if len(sessions) == 0:
                        sessions.add(spare())
        if stray_check:
            # children of T that are not sessions came back from a dead S
            strays = bp.live_below(os.getpid(), skip=sessions)
            bp.signal_all(strays, 9)
            stray_check = bool(strays)


# ---------------------------------------------------------------- one session


def recv_request(sock, fail):
    """The request and the block's three fds; anything else ends this
    process with exit code fail."""
    data, fds = bp.recv_request(sock)
    if data is None:
        os._exit(fail)
    return data, fds


def session(lst, taken_w, close):
    import select
    import signal
    import socket
    import time
    try:
        signal.set_wakeup_fd(-1)
        for fd in close:
            os.close(fd)
        bp.prctl(bp.PR_SET_CHILD_SUBREAPER, 1)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        to_b, b_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        b = os.fork()
        if b == 0:
            lst.close()
            to_b.close()
            os.close(taken_w)
            os.close(wake_r)
            os.close(wake_w)
            block(b_end)
        b_end.close()
        conn, _ = lst.accept()
        lst.close()
        os.write(taken_w, b"x")
        os.close(taken_w)
        peer, uid = bp.peer_of(conn)
        if uid != os.geteuid():   # the sandbox user (a resident's getuid is its own)
            os._exit(0)
        conn.sendall(b"A")
        data, fds = recv_request(conn, 3)
        fields = data.split(b"\0")
        if fields[0] != bp.REQUEST:
            os._exit(3)
        grace_ms = int(fields[3])
        msg = str(peer).encode() + b"\0" + data
        socket.send_fds(to_b, [len(msg).to_bytes(4, "big") + msg[:4096]], fds)
        if len(msg) > 4096:
            to_b.sendall(msg[4096:])
        to_b.close()
        for fd in fds:
            os.close(fd)
        poll = select.poll()
        poll.register(conn.fileno(), select.POLLIN)
        poll.register(wake_r, select.POLLIN)
        status, kill_at = None, None
        while status is None:
            wait = None if kill_at is None else max(0, int((kill_at - time.monotonic()) * 1000))
            for fd, ev in poll.poll(wait):
                if fd == wake_r:
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                    continue
                msg = conn.recv(64) if ev & select.POLLIN else b""
                if not msg:
                    # the client is gone: so is the block
                    while _kill_tree(9):
                        pass
                    os._exit(0)
                if b"T" in msg and kill_at is None:
                    bp.signal_all(bp.live_below(os.getpid()), 15)
                    kill_at = time.monotonic() + grace_ms / 2000
            if kill_at is not None and time.monotonic() >= kill_at:
                bp.signal_all(bp.live_below(os.getpid()), 9)
            status = bp.reap(b)
        # the block is done: what it left is killed, as the supervisor does
        while _kill_tree(9):
            pass
        conn.sendall(status.to_bytes(4, "big", signed=True))
        os._exit(0)
    except BaseException:
        os._exit(4)


def _kill_tree(sig):
    """Kill every descendant and reap; True while some remain. A child
    subreaper has no child exactly when nothing is left below it."""
    import time
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            return False
    bp.signal_all(bp.live_below(os.getpid()), sig)
    time.sleep(0.001)
    return True


# ------------------------------------------------------------------ the block

def block(sock):
    """Forked ahead by its session; waits for the request, becomes the block."""
    import signal
    try:
        data, fds = recv_request(sock, 0)
        sock.close()
        _become_sandbox_user()
        fields = data.split(b"\0")
        peer, cwd, path, env = int(fields[0]), fields[2], fields[3], fields[5:]
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setsid()
        bp.prctl(bp.PR_SET_DUMPABLE, 1)
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        # the limits the supervisor gave the client (the quota's fsize too)
        import resource
        for n in dir(resource):
            if n.startswith("RLIMIT_"):
                try:
                    resource.setrlimit(getattr(resource, n), resource.prlimit(peer, getattr(resource, n)))
                except (OSError, ValueError):
                    pass
        os.chdir(cwd)
        os.environb.clear()
        for kv in env:
            k, _, v = kv.partition(b"=")
            if k:
                os.environb[k] = v
        path = os.fsdecode(path)
    except BaseException:
        os._exit(127)
    _run(path)


def _reseed():
    # random reseeds itself at fork (os.register_at_fork); numpy's global
    # generator does not
    r = sys.modules.get("random")
    if r is not None:
        r.seed()
    nr = sys.modules.get("numpy.random")
    if nr is not None:
        try:
            nr.seed()
        except Exception:
            pass


def _run(path):
    _reseed()
    st = bp.run_file(bp.new_main(), path, {"path0": sys.path[0]})
    if st == 2:
        # an uncaught KeyboardInterrupt: python3 file.py dies of SIGINT
        import signal
        _finish(None)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        st = 1 << 8
    _finish(st >> 8)


def _finish(code):
    """What the interpreter does at exit: threads, atexit, flushing."""
    try:
        import threading
        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            if code == 0:
                code = 120
    if code is not None:
        os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3:])
    else:
        sys.stderr.write("usage: agentbox_preload.py serve SECONDS MODULE...\n")
        sys.exit(2)
