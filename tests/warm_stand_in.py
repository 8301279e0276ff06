"""`python tests/warm_stand_in.py SOCKET SCRIPT ARGS...` behaves as `python SCRIPT ARGS...` for the launcher that
started it (torchrun), but SCRIPT runs warm: the server at SOCKET (tests/warm_python.py's warm_stand_ins) forks it
from a process that has imported torch, on this process's stdin, stdout, stderr, working directory and
environment. This process imports nothing heavy: it passes on the signals it receives (SIGTERM, SIGINT, SIGHUP,
SIGUSR1, SIGUSR2) and ends as SCRIPT ended: with its exit status, or killed by the same signal."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def main() -> None:
    socket_path, *args = sys.argv[1:]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.connect(socket_path)

    def forward(received: int, _frame) -> None:
        with contextlib.suppress(OSError):
            server.send(str(received).encode())

    request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(server, [json.dumps(request).encode()], [0, 1, 2])
    for number in FORWARDED:
        signal.signal(number, forward)
    status = server.recv(64)  # retried after each forwarded signal (PEP 475)
    code = int(status) if status else -signal.SIGKILL  # no status: the server killed it
    if code < 0:
        with contextlib.suppress(OSError):  # SIGKILL's action cannot be set, nor need be
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main()
