"""Runs a command with a pseudo-terminal as its stdin, stdout and stderr, and
copies what it wrote to our stdout with the terminal's CRLF turned back into
LF; exits with the command's exit code. Specs use it for what only happens on
a terminal (coloured transcripts), which a pipe cannot show.

    python3 in_tty.py <argv...>
"""
import os
import pty
import sys

pid, fd = pty.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
chunks = []
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:  # EIO: every holder of the terminal has exited
        break
    if not data:
        break
    chunks.append(data)
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(b"".join(chunks).replace(b"\r\n", b"\n"))
sys.stdout.flush()
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
