# agentbox's stateful Python session (executor/python_session.lua says who runs it).
#
#   python3 agentbox_session.py serve GRACE_MS SECONDS MODULE...   the keeper
#   python3 -I -S agentbox_client.py NAME GRACE_MS FILE             one block's client
#
# The python blocks of one executor share one interpreter, as in a Jupyter
# kernel: what a block defines or imports is there for the next one.
#
# Processes. The keeper K (started once per executor under a supervisor of
# its own, a child subreaper, not dumpable) imports MODULE... (within
# SECONDS, else SIGALRM), forks the interpreter I, prints "ready NAME" and
# listens on the abstract unix socket NAME; only a peer of its own uid that
# is not one of its own descendants is served. I is a fork of K, so a new
# interpreter (after a timeout or a crash) costs a fork, not an import. I
# runs block code in one persistent __main__; K never does, so the code
# cannot stop K from cleaning up after it (it can kill K: see below).
#
# Supervision. The executor's supervisor runs each block's client like any
# program (session, nice, rlimits, seccomp, quota, deadline); the block
# runs in I, which is not the supervisor's descendant, so the client is its
# proxy (as in agentbox_preload.py):
#   * the client connects, K says "A" and takes the request (cwd, file) and
#     the client's stdin/stdout/stderr (SCM_RIGHTS), kills whatever is
#     left below it but I (nothing should be) and hands them to I, which
#     puts them on its fds 0-2, runs the file's code in __main__, puts
#     /dev/null back and sends K the block's wait status;
#   * then K KILLs everything below it but I (the block's children, their
#     setsid'd and double-forked descendants: K is their subreaper), closes
#     its copies of the fds and sends the status; the client mirrors it
#     (exit code or signal);
#   * the client's TERM (the supervisor's, at the deadline) makes it send
#     "T": K TERMs I and its whole tree, KILLs it at half the grace (before
#     the supervisor KILLs the client), says in the block's stderr that the
#     state is lost, answers "killed by SIGTERM" and forks a new I. Not a
#     KeyboardInterrupt: code that catches it, or sits in a C call, would
#     run on past its deadline;
#   * I dying during a block (os._exit, a signal, a crash) ends the block
#     with I's status and the same "state lost" line; a client that dies
#     (the quota, or the code killed it) ends the block too: K KILLs I and
#     its tree at once, since the block has no supervisor any more;
#   * K dying (the code can kill it: same uid) takes I and the block with it
#     (PDEATHSIG, and K's supervisor kills its tree); the client then dies
#     of SIGUSR1 (LOST) and the executor starts a new session. A client
#     that no one accepts within ACCEPT_S (K stopped or gone) dies of
#     SIGUSR2 (UNAVAILABLE): nothing ran. A block that dies of either
#     signal itself is reported as 128 + signal, not mirrored.
# The wire is the template's (agentbox_client.py), so agentbox-sup
# --preload-client is the client in a container; the request's grace and
# environment are not used (the session has its own).
# Threads the code starts are part of I: they run on between blocks (their
# output goes to /dev/null then, or into the block that runs).
# Exit codes as python3 file.py gives them: an exception prints its
# traceback and is 1 (the state is kept), SystemExit its code (the state is
# kept, as in Jupyter), an uncaught KeyboardInterrupt the signal SIGINT.
# What this shares with agentbox_preload.py (the request, the walk of a
# tree, the server's start, running the file) is in agentbox_blockproc.py.
import os
import sys

# the shared code, loaded as agentbox_preload.py does (see there why)
_here = os.path.dirname(os.path.realpath(__file__))
bp = type(sys)("agentbox_blockproc")
with open(os.path.join(_here, "agentbox_blockproc.py"), "rb") as _f:
    exec(compile(_f.read(), _f.name, "exec"), bp.__dict__)


# ----------------------------------------------------------------- the keeper

def _describe(st):
    if os.WIFEXITED(st):
        return "it exited with code %d" % os.WEXITSTATUS(st)
    return "it was killed by signal %d" % os.WTERMSIG(st)


class Keeper:
    def __init__(self, grace_ms):
        import signal
        import socket
        self.grace = grace_ms / 1000
        self.me = os.getpid()
        self.name = "agentbox-session-" + os.urandom(16).hex()
        self.lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lst.bind("\0" + self.name)
        self.lst.listen(8)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        self.interp, self.isock, self.istatus = None, None, None
        self.note = None   # why the state was lost between blocks
        self.fork()

    # I: a fork of this process
    def fork(self):
        import socket
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            mine.close()
            self.lst.close()
            interpreter(theirs, self.me)
        theirs.close()
        self.interp, self.isock, self.istatus = pid, mine, None
        # an interpreter that cannot start (no /dev/null, ...) ends K,
        # rather than a new one forked after each death
        mine.settimeout(10)
        try:
            ok = mine.recv(1) == b"R"
        except OSError:
            ok = False
        mine.settimeout(None)
        if not ok:
            sys.stderr.write("agentbox_session.py: the interpreter did not start\n")
            sys.stderr.flush()
            os._exit(3)

    def reap(self):
        st = bp.reap(self.interp)
        if st is not None:
            self.istatus = st

    def clear(self, keep):
        """KILL everything below K but keep (I, or None: everything)."""
        while True:
            self.reap()
            pids = bp.live_below(self.me)
            if keep is not None and self.istatus is None:
                pids.discard(keep)
            if not pids:
                return
            bp.signal_all(pids, 9)
            self.select_sleep(0.001)

    def select_sleep(self, s):
        import select
        select.select([self.wake_r], [], [], s)
        self.drain()

    def drain(self):
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass

    def replace(self, why):
        """I is gone or must go: everything below K dies, a new I starts."""
        self.clear(None)
        self.isock.close()
        self.fork()
        return why

    def serve(self):
        import select
        p = select.poll()
        p.register(self.lst.fileno(), select.POLLIN)
        p.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _ in p.poll():
                if fd == self.wake_r:
                    self.drain()
                    self.reap()
                    if self.istatus is not None:
                        # I died between blocks (a thread of the code)
                        self.note = self.replace("between blocks, " + _describe(self.istatus))
                    else:
                        self.clear(self.interp)
                else:
                    try:
                        conn, _ = self.lst.accept()
                    except OSError:
                        continue
                    try:
                        self.block(conn)
                    except OSError:
                        pass
                    finally:
                        conn.close()

    def block(self, conn):
        peer, uid = bp.peer_of(conn)
        # another user, or the code itself (a block that would run in the
        # interpreter that is running it). Effective uids: a keeper with a
        # real and saved uid of its own (out of the code's reach, as a warm
        # container's resident) serves the user it runs code as
        if uid != os.geteuid() or peer in bp.live_below(self.me):
            return
        conn.sendall(b"A")
        conn.settimeout(bp.ACCEPT_S)
        data, fds = bp.recv_request(conn)
        conn.settimeout(None)
        fields = data.split(b"\0") if data else []
        if len(fields) < 3 or fields[0] != bp.REQUEST:
            for fd in fds:
                os.close(fd)
            return
        try:
            status, why = self.run(conn, fds, fields[1], fields[2], peer)
            if why:
                _say(fds[2], "\nagentbox: the Python session's interpreter was restarted (%s): the variables "
                     "and imports of earlier blocks are lost\n" % why)
        finally:
            for fd in fds:
                os.close(fd)
        conn.sendall(status.to_bytes(4, "big", signed=True))

    def run(self, conn, fds, cwd, path, peer):
        import select
        import socket
        import time
        self.reap()
        if self.istatus is not None:
            self.note = self.replace("between blocks, " + _describe(self.istatus))
        self.clear(self.interp)
        if self.note:
            _say(fds[2], "agentbox: the Python session's interpreter was restarted (%s): the variables and "
                 "imports of earlier blocks are lost\n" % self.note)
            self.note = None
        msg = b"\0".join([cwd, path, str(peer).encode()])
        try:
            socket.send_fds(self.isock, [len(msg).to_bytes(4, "big") + msg], fds)
        except OSError:
            pass   # I is dead: its status comes below
        p = select.poll()
        p.register(conn.fileno(), select.POLLIN)
        p.register(self.isock.fileno(), select.POLLIN)
        p.register(self.wake_r, select.POLLIN)
        got, why, kill_at = b"", None, None
        while True:
            wait = None if kill_at is None else max(0, int((kill_at - time.monotonic()) * 1000))
            for fd, ev in p.poll(wait):
                if fd == self.wake_r:
                    self.drain()
                elif fd == self.isock.fileno():
                    part = self.isock.recv(4 - len(got)) if ev & select.POLLIN else b""
                    got += part
                    if not part:
                        p.unregister(fd)
                else:
                    m = conn.recv(64) if ev & select.POLLIN else b""
                    if not m:
                        # the client is gone (the quota, or the code): so is the block
                        bp.signal_all(bp.live_below(self.me), 9)
                        return 0, self.replace("the block's client process was killed")
                    if b"T" in m and kill_at is None:
                        why = "this block timed out"
                        bp.signal_all(bp.live_below(self.me), 15)
                        kill_at = time.monotonic() + self.grace / 2
            self.reap()
            if kill_at is not None and time.monotonic() >= kill_at:
                bp.signal_all(bp.live_below(self.me), 9)
            if self.istatus is not None:
                # after a timeout the client dies of TERM whatever ended I:
                # a client KILLed before this answer tells the executor
                # that K did not end the block
                status = 15 if kill_at is not None else self.istatus
                return status, self.replace(why or _describe(status))
            if len(got) == 4 and why is None:
                # the block is done: what it left is killed, as the supervisor does
                self.clear(self.interp)
                if self.istatus is None:
                    return int.from_bytes(got, "big", signed=True), None


def _say(fd, text):
    try:
        os.write(fd, text.encode())
    except OSError:
        pass


# a resident of a warm container's block server (src/sup.h): set by serve
_RESIDENT = [False]


def serve(grace_ms, seconds, modules):
    _RESIDENT[0] = bp.start_server(seconds, modules)
    k = Keeper(grace_ms)
    sys.stdout.write("ready %s\n" % k.name)
    sys.stdout.flush()
    k.serve()


# ------------------------------------------------------------ the interpreter

def interpreter(sock, keeper):
    import signal
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        # K's listener and pipes, and the fds of the block that ended K's
        # last interpreter (their pipes must reach EOF when it is answered)
        os.closerange(3, sock.fileno())
        os.closerange(sock.fileno() + 1, os.sysconf("SC_OPEN_MAX"))
        # the user the code runs as. A resident keeper (a warm container's,
        # real and saved uid of its own) keeps its real and saved uid in I
        # between blocks: the block server's sweep before and after each
        # block (kill(-1) as the sandbox user) reaches every process whose
        # real or saved uid is the sandbox user's, and I must outlive it.
        # During a block I's real uid is the sandbox user's (_block), so
        # what the code starts is the sandbox user's alone (a shell would
        # otherwise drop to the resident's uid) and its signals do not
        # reach K; the saved uid, kept, lets I take its real uid back
        # after the block. The code could do the same and signal K (end
        # its session, as it can locally: K is the session, not the
        # server), never ptrace it (K's effective uid is not its real one,
        # and it is not dumpable); K's tree stays its subreaper's to kill
        euid, egid = os.geteuid(), os.getegid()
        if os.getresgid() != (egid, egid, egid):
            os.setresgid(egid, egid, egid)
        if os.getresuid() != (euid, euid, euid) and not _RESIDENT[0]:
            os.setresuid(euid, euid, euid)
        bp.prctl(bp.PR_SET_PDEATHSIG, 9)
        if os.getppid() != keeper:
            os._exit(0)
        # its own session: kill(0, ...) in the code reaches the code only
        os.setsid()
        bp.prctl(bp.PR_SET_DUMPABLE, 1)
        null = os.open(os.devnull, os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(null, i)
        main = bp.new_main()
        sock.sendall(b"R")
    except BaseException:
        os._exit(127)
    state = {"path0": sys.path[0] if sys.path else None,
             "uids": _RESIDENT[0] and (os.getuid(), os.geteuid())}
    while True:
        data, fds = bp.recv_request(sock)
        if data is None:
            os._exit(0)
        cwd, path, peer = data.split(b"\0")
        # not reaped here: the children K killed stay zombies until the
        # code waits for them, so a Popen kept in a variable says -9
        st = _block(main, state, fds, cwd, os.fsdecode(path), int(peer), null)
        try:
            sock.sendall(st.to_bytes(4, "big", signed=True))
        except OSError:
            os._exit(0)
        if state.get("lost_uids"):
            # the code gave up the resident's uid: the sweep would kill I
            # anyway; K replaces it and the next block says so
            os._exit(0)


def _block(main, state, fds, cwd, path, peer, null):
    import resource
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
        os.close(fd)
    _fix_streams()
    # the quota's file-size limit that the supervisor gave the client (a
    # soft limit here: the interpreter's hard one must outlive the block)
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        lim = resource.prlimit(peer, resource.RLIMIT_FSIZE)[0]
        hard = fsize[1]
        if lim != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or lim < hard):
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim, hard))
    except (OSError, ValueError):
        pass
    uids = state["uids"]
    try:
        if uids:
            os.setresuid(uids[1], uids[1], uids[0])
        st = bp.run_file(main, path, state, cwd)
    finally:
        _flush()
        if uids:
            try:
                os.setresuid(uids[0], uids[1], uids[0])
            except OSError:
                state["lost_uids"] = True
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, fsize)
        except (OSError, ValueError):
            pass   # the code lowered the hard limit: its choice, for the session
        for i in (0, 1, 2):
            os.dup2(null, i)
    return st


def _fix_streams():
    """A block that closed sys.stdout (or its fd) must not break the next."""
    import io
    for name, fd, mode in (("stdin", 0, "rb"), ("stdout", 1, "wb"), ("stderr", 2, "wb")):
        orig = getattr(sys, "__%s__" % name)
        if orig is None or orig.closed:
            raw = io.open(fd, mode, buffering=0 if mode == "wb" else -1, closefd=False)
            new = io.TextIOWrapper(raw, encoding=sys.getfilesystemencoding() if name == "stdin" else None,
                                   errors="backslashreplace" if name == "stderr" else None,
                                   write_through=mode == "wb", line_buffering=False)
            setattr(sys, "__%s__" % name, new)
            if getattr(sys, name) is orig:
                setattr(sys, name, new)


def _flush():
    for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            f.flush()
        except BaseException:
            pass


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    else:
        sys.stderr.write("usage: agentbox_session.py serve GRACE_MS SECONDS MODULE...\n")
        sys.exit(2)
