"""``--pidfd-socket`` (runc 1.2+): hand the caller a pidfd of the container's process.

A pidfd names the process itself, not a number that may be reused: a supervisor that
holds one can signal (pidfd_send_signal) or poll for the exit of exactly the process
it started.  The caller listens on an AF_UNIX stream socket; `create`, `run` and
`exec` connect to it early (a bad path fails before anything is made), then send
one message ``pidfd`` with the fd attached (SCM_RIGHTS) once the process exists.
"""
from __future__ import annotations

import os

from .errors import OciError


def connect(path: str):
    """Connect to the caller's socket now; return the socket (closed by :func:`send`)."""
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OciError(f"connect to pidfd socket {path}: {e.strerror}") from None
    return s


def send(sock, pid: int) -> None:
    """Open a pidfd for ``pid`` (a host pid) and send it; close the socket either way."""
    import array
    import _socket

    try:
        try:
            from .kernel.process import require_pidfd

            fd = require_pidfd(pid)
        except OSError as e:
            raise OciError(f"pidfd_open({pid}): {e.strerror}") from None
        try:
            anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [fd]))]
            sock.sendmsg([b"pidfd"], anc, _socket.MSG_NOSIGNAL)
        except OSError as e:
            raise OciError(f"send pidfd to the pidfd socket: {e.strerror}") from None
        finally:
            os.close(fd)
    finally:
        sock.close()
