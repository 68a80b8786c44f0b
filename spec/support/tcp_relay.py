#!/usr/bin/env python3
"""TCP-to-unix-socket relay for the #docker specs: makes the local daemon look
remote (DOCKER_HOST=tcp://127.0.0.1:PORT), so the DockerExecutor takes its
archive-API path.

    tcp_relay.py SOCKET [LOGFILE]

Listens on 127.0.0.1 (ephemeral port), prints the port on one line, then
relays each connection byte for byte. Request lines seen from clients are
appended to LOGFILE, so a spec can check which endpoints were used. A
half-close is passed on (shutdown(SHUT_WR)), as exec streams need.
"""
import re
import socket
import sys
import threading

REQUEST = re.compile(rb"(?:^|\r\n)((?:GET|POST|PUT|DELETE|HEAD) \S+) HTTP/1\.[01]\r\n")


def pump(src, dst, log):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if log is not None:
                for m in REQUEST.finditer(data[:4096]):
                    log(m.group(1).decode("latin-1"))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    path = sys.argv[1]
    lock = threading.Lock()
    logf = open(sys.argv[2], "a", buffering=1) if len(sys.argv) > 2 else None

    def log(line):
        if logf:
            with lock:
                logf.write(line + "\n")

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)

    def serve(client):
        # as dockerd (Go sets it on every TCP connection): no Nagle delay
        # on the small frames of exec and attach streams
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            return
        a = threading.Thread(target=pump, args=(client, upstream, log), daemon=True)
        b = threading.Thread(target=pump, args=(upstream, client, None), daemon=True)
        a.start()
        b.start()
        a.join()
        b.join()
        client.close()
        upstream.close()

    while True:
        client, _ = srv.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
