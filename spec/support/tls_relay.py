#!/usr/bin/env python3
"""TLS-terminating relay to the local Docker daemon for the #docker specs:
makes it look like a remote daemon behind TLS (DOCKER_HOST=tcp://127.0.0.1:PORT
with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH holding ca.pem).

    tls_relay.py SOCKET CERT KEY

Listens on 127.0.0.1 (ephemeral port), prints the port on one line, then
relays each connection byte for byte. One thread: an SSL object must not be
read and written from two threads at once.
"""
import selectors
import socket
import ssl
import sys


def main():
    path, cert, key = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    peer = {}

    def close(s):
        other = peer.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            peer.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        for key_, _ in sel.select():
            s = key_.fileobj
            if s is srv:
                c, _ = srv.accept()
                try:
                    c = ctx.wrap_socket(c, server_side=True)
                    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    u.connect(path)
                except OSError:
                    c.close()
                    continue
                c.setblocking(False)
                u.setblocking(False)
                peer[c], peer[u] = u, c
                sel.register(c, selectors.EVENT_READ)
                sel.register(u, selectors.EVENT_READ)
                continue
            try:
                while s in peer:
                    data = s.recv(65536)
                    if not data:
                        close(s)
                        break
                    other = peer[s]
                    other.setblocking(True)
                    other.sendall(data)
                    other.setblocking(False)
                    # TLS may hold decrypted bytes the socket no longer signals
                    if not isinstance(s, ssl.SSLSocket) or not s.pending():
                        break
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            except OSError:
                close(s)


if __name__ == "__main__":
    main()
