"""process.terminal: a pty made inside the container, its master sent to the console socket.

The pty is opened after pivot_root, through the container's own /dev/ptmx, so
its slave lives in the container's devpts instance; the master travels to the
caller (conmon, the containerd shim) with SCM_RIGHTS over ``--console-socket``.
"""
from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios


def setup_console(console_sock: int | None, size: dict | None) -> None:
    if console_sock is None:
        raise OSError(22, "process.terminal is true but no --console-socket was given")
    master, slave = os.openpty()
    try:
        if size:
            set_size(slave, size.get("height", 0), size.get("width", 0))
        sock = socket.socket(fileno=console_sock)
        try:
            name = os.ttyname(slave).encode()
            sock.sendmsg([name], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
        finally:
            sock.close()
    finally:
        os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    if slave > 2:
        os.close(slave)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
