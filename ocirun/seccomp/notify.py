"""Handing the seccomp listener fd to the agent at ``linux.seccomp.listenerPath``.

config-linux.md, "listenerPath" and "The Container Process State": connect to
the AF_UNIX SOCK_STREAM socket, send exactly one *container process state*
(JSON) with the listener fd in SCM_RIGHTS (named ``seccompFd`` in ``fds``),
then close the connection.  The fds go with the first sendmsg(2) only; the
rest of a long payload may follow in further writes.  Any failure is an error
for the runtime (raised as :class:`~ocirun.errors.SeccompError`).

:func:`receive_state` is the agent's side, for the tests and for anyone
writing a small agent in Python.
"""
from __future__ import annotations

import json
import os
import socket

from .. import SPEC_VERSION
from ..errors import SeccompError

SECCOMP_FD_NAME = "seccompFd"
CONNECT_TIMEOUT = 10.0
MAX_STATE = 1024 * 1024


def process_state(state: dict, metadata: str | None = None, pid: int | None = None) -> dict:
    """The container process state message for container ``state`` (runtime.md's state object)."""
    msg = {
        "ociVersion": SPEC_VERSION,
        "fds": [SECCOMP_FD_NAME],
        "pid": state.get("pid", 0) if pid is None else pid,
        "state": state,
    }
    if metadata:
        msg["metadata"] = metadata
    return msg


def connect_listener(listener_path: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """Connect to the agent.  The init stage does this early, while the host path is reachable."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(listener_path)
    except OSError as e:
        sock.close()
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise SeccompError(f"failed to connect with seccomp agent at {listener_path} "
                           f"(linux.seccomp.listenerPath): {reason}") from None  # runc's first words
    return sock


def send_state(sock: socket.socket, fd: int, state: dict, metadata: str | None = None, *,
               pid: int | None = None, where: str = "listenerPath") -> None:
    """Send one container process state with the listener ``fd`` (SCM_RIGHTS on the first sendmsg),
    then close the connection, as config-linux.md requires."""
    payload = json.dumps(process_state(state, metadata, pid), separators=(",", ":")).encode()
    try:
        with sock:
            sent = socket.send_fds(sock, [payload], [fd])
            if sent < len(payload):
                sock.sendall(payload[sent:])
    except OSError as e:
        raise SeccompError(f"linux.seccomp.{where}: sending the seccomp fd: {e.strerror or e}") from None


def send_listener(listener_path: str, fd: int, state: dict, metadata: str | None = None, *,
                  pid: int | None = None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect to the agent at ``listener_path`` and send it the state with the listener ``fd``.

    ``fd`` stays open in the caller (the kernel duplicates it into the agent).
    """
    send_state(connect_listener(listener_path, timeout), fd, state, metadata, pid=pid,
               where=f"listenerPath {listener_path}")


def receive_state(conn: socket.socket, max_size: int = MAX_STATE) -> tuple[dict, dict[str, int]]:
    """Agent side: read one container process state until EOF; return it and its fds by name."""
    chunks: list[bytes] = []
    fds: list[int] = []
    size = 0
    while True:
        data, new_fds, _flags, _addr = socket.recv_fds(conn, 65536, 8)
        fds.extend(new_fds)
        if not data:
            break
        chunks.append(data)
        size += len(data)
        if size > max_size:
            for fd in fds:
                os.close(fd)
            raise ValueError(f"container process state larger than {max_size} bytes")
    try:
        msg = json.loads(b"".join(chunks))
        names = msg.get("fds") or []
    except (ValueError, AttributeError):
        for fd in fds:
            os.close(fd)
        raise
    for fd in fds[len(names):]:
        os.close(fd)
    return msg, dict(zip(names, fds))
