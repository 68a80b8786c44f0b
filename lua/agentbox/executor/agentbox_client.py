# A python block's client, for agentbox's preloaded template
# (agentbox_preload.py) and stateful session (agentbox_session.py) alike:
#
#   python3 -I -S agentbox_client.py NAME GRACE_MS FILE
#
# The executor's supervisor runs it as the block's program (python_helper.lua
# makes the argv); the block runs in the server listening on the abstract
# unix socket NAME, so this process is the block's proxy. The server says
# "A"; the client sends a big-endian length and
# "agentbox-preload-1\0cwd\0file\0grace_ms" plus the environment ("k=v"),
# NUL-separated, with its fds 0, 1, 2 as SCM_RIGHTS; the supervisor's TERM
# (the deadline) is passed on as "T"; the reply is the block's wait status,
# 4 bytes big-endian, and the client ends as the block did (exit code or
# signal). It dies of UNAVAILABLE when nobody took the block (nothing ran)
# and of LOST when the server went away before the status (the block's
# process died with it); a block that dies of either is 128 + signal.
# agentbox-sup --preload-client (src/preloadcl.c) is the same client in C,
# for a container. Nothing else is here: it is compiled at every block's
# start.
import os
import sys

# Linux's SIGUSR1, SIGUSR2 (python_preload.lua and python_session.lua know them)
LOST, UNAVAILABLE = 10, 12
ACCEPT_S = 5
REQUEST = b"agentbox-preload-1"


def main(name, grace_ms, path):
    # _socket and _signal, not socket and signal: those import enum, which
    # doubles this process's start
    import _signal
    import _socket

    def die(sig):
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if sig not in (_signal.SIGKILL, _signal.SIGSTOP):   # neither can be handled (EINVAL)
            _signal.signal(sig, _signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)

    fields = [REQUEST, os.fsencode(os.getcwd()), os.fsencode(path), grace_ms.encode()]
    payload = b"\0".join(fields + [k + b"=" + v for k, v in os.environb.items()])
    fds = b"".join(i.to_bytes(4, sys.byteorder) for i in (0, 1, 2))
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(b"\0" + name.encode())
        # the server is of this uid: another user's process that bound the
        # name of a dead server would get the block's fds
        cred = s.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        if int.from_bytes(cred[4:8], sys.byteorder) != os.geteuid():
            die(UNAVAILABLE)
        # the server takes the connection at once (it waits in accept);
        # not within ACCEPT_S: it is stopped or gone, nothing ran, and the
        # executor starts a new one and runs the block there
        s.settimeout(ACCEPT_S)
        if s.recv(1) != b"A":
            die(UNAVAILABLE)
        s.settimeout(None)
        s.sendmsg([len(payload).to_bytes(4, "big") + payload[:4096]],
                  [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if len(payload) > 4096:
            s.sendall(payload[4096:])
    except OSError:
        die(UNAVAILABLE)

    def term(*_):
        try:
            s.send(b"T")
        except OSError:
            pass
    _signal.signal(_signal.SIGTERM, term)
    got = b""
    while len(got) < 4:
        try:
            part = s.recv(4 - len(got))
        except OSError:
            part = b""
        if not part:
            die(LOST)
        got += part
    st = int.from_bytes(got, "big", signed=True)
    if os.WIFEXITED(st):
        os._exit(os.WEXITSTATUS(st))
    sig = os.WTERMSIG(st)
    if sig in (LOST, UNAVAILABLE):
        os._exit(128 + sig)
    die(sig)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.stderr.write("usage: agentbox_client.py NAME GRACE_MS FILE\n")
        sys.exit(2)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
