"""The foreground terminal of `run` and `exec` when no ``--console-socket`` is given.

The pty is made inside the container (:mod:`ocirun.terminal`), and its master
comes back to us over a socket as it would to conmon or the containerd shim:
:class:`ConsoleListener` (a socket path, for `create`'s launcher) or
:func:`console_pair` (a socketpair, for `exec`).  :func:`attach` then does what
runc does in the foreground: the caller's terminal goes raw, bytes are copied both
ways, its size follows SIGWINCH, other signals are forwarded to the process (the
caller's :class:`ocirun.forward.Forwarder`), and the terminal is restored when the
process exits.
"""
from __future__ import annotations

import array
import errno
import os
import select
import socket
import termios

from .forward import SIGCHLD, SIGWINCH
from .kernel import tty as ktty

DRAIN_IDLE = 0.2  # seconds without output after the exit before we stop copying


def recv_master(sock: socket.socket) -> int:
    """Receive the pty master sent by :func:`ocirun.terminal.setup_console` (name + SCM_RIGHTS)."""
    fds = array.array("i")
    _data, anc, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    if not fds:
        raise OSError(errno.EPROTO, "console: no pty master received")
    for extra in fds[1:]:
        os.close(extra)
    os.set_inheritable(fds[0], False)
    return fds[0]


def console_pair() -> tuple[socket.socket, int]:
    """(our end, the fd to hand to the init stage as its console socket)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours, theirs.detach()


class ConsoleListener:
    """A console socket in a private temporary directory (0700), removed on :meth:`close`."""

    def __init__(self) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="ocirun-tty-")
        self.path = os.path.join(self.dir, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def accept_master(self, timeout: float = 10.0) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(timeout)
            return recv_master(conn)

    def close(self) -> None:
        import shutil

        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get_size(fd: int) -> tuple[int, int] | None:
    try:
        return ktty.window_size(fd)
    except OSError:
        return None


def caller_size(stdin: int = 0, stdout: int = 1) -> tuple[int, int] | None:
    """The window size of the caller's terminal (stdin's, else stdout's), or None without one."""
    for fd in (stdin, stdout):
        if os.isatty(fd):
            size = get_size(fd)
            return size if size and size != (0, 0) else None
    return None


def set_size(fd: int, rows: int, cols: int) -> None:
    ktty.set_window_size(fd, rows, cols)


def make_raw(attrs: list) -> list:
    """cfmakeraw(3) on a tcgetattr list."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
               | termios.IGNCR | termios.ICRNL | termios.IXON)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


def attach(master: int, fwd, stdin: int = 0, stdout: int = 1) -> int:
    """Bridge the caller's terminal and ``master`` until ``fwd.pid`` (our child) exits; return its status.

    ``fwd``: the caller's :class:`ocirun.forward.Forwarder`, its target named.  Its signals are
    read here: SIGWINCH resizes the pty, SIGCHLD reaps (any other child that exits meanwhile,
    orphans re-parented to a subreaper, is reaped too), every other one is forwarded.
    """
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)

    def resize():
        size = caller_size(stdin, stdout)
        if size:
            try:
                set_size(master, *size)
            except OSError:
                pass

    try:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSANOW, make_raw(saved))
        resize()
        os.set_blocking(master, False)
        return _pump(master, fwd, stdin, stdout, resize)
    finally:
        if saved is not None:
            try:
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            except termios.error:
                pass


def _pump(master: int, fwd, stdin: int, stdout: int, resize) -> int:
    status = None
    watch_in = True
    pending = b""  # input not yet accepted by the pty
    alive = True  # False once the master reads EIO: no slave left open
    sigs = fwd.fileno()
    while True:
        if status is None:
            status = fwd.exited(255)
        if status is not None:
            if alive:
                _drain(master, stdout)
            return status
        rlist = fwd.waitables() + ([master] if alive else []) + ([stdin] if watch_in and not pending else [])
        wlist = [master] if pending and alive else []
        r, w, _ = select.select(rlist, wlist, [])
        if sigs in r:
            for sig in fwd.take():
                if sig == SIGWINCH:
                    resize()
                elif sig != SIGCHLD:
                    fwd.send(sig)
        if master in r:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                data = b""
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data, alive = b"", False
            if data:
                _write_all(stdout, data)
        if stdin in r:
            try:
                data = os.read(stdin, 65536)
            except OSError:
                data = b""
            if data:
                pending = data
            else:
                watch_in = False  # EOF: stop reading (the process keeps its terminal)
        if pending and master in w:
            try:
                n = os.write(master, pending)
                pending = pending[n:]
            except BlockingIOError:
                pass
            except OSError:
                pending = b""


def _drain(master: int, stdout: int) -> None:
    """Copy what the process left in the pty, until EIO (no slave left) or it stays quiet."""
    while True:
        r, _, _ = select.select([master], [], [], DRAIN_IDLE)
        if not r:
            return
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            continue
        except OSError:
            return
        if not data:
            return
        _write_all(stdout, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except OSError:
            return  # the caller's terminal went away: keep serving the process
        data = data[n:]
