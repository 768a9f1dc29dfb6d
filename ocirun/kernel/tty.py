"""Terminal ioctls: take a controlling terminal, read and set a window size.

``fcntl`` and ``termios`` are C modules already loaded wherever a terminal is handled; no ctypes.
Errors are the ``OSError`` that ``fcntl.ioctl`` raises.
"""
from __future__ import annotations

import fcntl
import struct
import termios


def set_controlling_terminal(fd: int) -> None:
    """TIOCSCTTY: make the terminal on ``fd`` the session's controlling terminal (the caller leads
    a session with none)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def window_size(fd: int) -> tuple[int, int]:
    """TIOCGWINSZ: (rows, columns) of the terminal on ``fd``."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ: give the terminal on ``fd`` this size (the foreground process gets SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
