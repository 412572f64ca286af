"""Messages between the job agent, its warm workers and job runners: one JSON object per line
on a Unix stream socket, with file descriptors passed alongside (``SCM_RIGHTS``).

Standard library only: the worker side runs under an environment's interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from typing import Any

MAX_LINE = 1 << 20


class Channel:
    """A socket read line by line (a buffer keeps what came after the line)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""
        self._fds: list[int] = []

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        data = (json.dumps(message) + "\n").encode()
        if fds:
            socket.send_fds(self.sock, [data[:1]], fds)
            data = data[1:]
        self.sock.sendall(data)

    def recv(self) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message and the descriptors that came with it; ``(None, [])`` at the end."""
        while b"\n" not in self._buf:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 8)
            self._fds += fds
            if not data:
                return None, self._take_fds()
            self._buf += data
            if len(self._buf) > MAX_LINE:
                raise ValueError("message too long")
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            return None, self._take_fds()
        return (message if isinstance(message, dict) else None), self._take_fds()

    def _take_fds(self) -> list[int]:
        fds, self._fds = self._fds, []
        return fds

    def close(self) -> None:
        for fd in self._take_fds():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.sock.close()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end (Linux ``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid

