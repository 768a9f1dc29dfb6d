"""process.terminal: a pty made inside the container, its master sent to the console socket.

The pty is opened after pivot_root, through the container's own /dev/ptmx, so
its slave lives in the container's devpts instance; the master travels to the
caller (conmon, the containerd shim) with SCM_RIGHTS over ``--console-socket``.
"""
from __future__ import annotations

import array
import errno
import os
import socket

from .kernel import files, tty


def setup_console(console_sock: int | None, size: dict | None, bind: bool = True, owner: int = 0) -> None:
    """Make the pty, send its master to the console socket, make the slave our stdio and
    controlling terminal.  ``bind``: also bind it onto /dev/console (the container's init does;
    an `exec`'d process must not take the init's console).  ``owner``: process.user.uid, who gets
    the slave (its group stays the devpts mount's, tty), as runc does: the process can reopen its
    terminal (``$(tty)``, /dev/stdout) and set its modes.  ``size``: set before the master leaves,
    so the process starts on it (the caller's window size when the config gives none)."""
    if console_sock is None:
        raise OSError(22, "process.terminal is true but no --console-socket was given")
    master, slave = os.openpty()
    try:
        _hand_over_master(console_sock, master, slave, size, owner)
    except BaseException:
        os.close(slave)  # the master is closed by the hand-over whatever happens
        raise
    if bind:
        bind_console(slave)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    tty.set_controlling_terminal(0)
    if slave > 2:
        os.close(slave)


def _hand_over_master(console_sock: int, master: int, slave: int, size: dict | None, owner: int) -> None:
    """Give the slave to ``owner``, set its size, send the master to the console socket; the master and
    the socket are closed on every way out."""
    sock = socket.socket(fileno=console_sock)
    try:
        if owner:
            try:
                files.fchown(slave, owner, -1)
            except OSError as e:
                # EINVAL: the uid is not mapped in the container's user namespace; the slave stays
                # root's, as runc leaves it (fixStdioPermissions skips EINVAL/EPERM/EROFS).
                if e.errno not in (errno.EPERM, errno.EINVAL, errno.EROFS):
                    raise OSError(e.errno, f"chown the terminal to uid {owner}: {e.strerror}") from None
        if size:
            set_size(slave, size.get("height", 0), size.get("width", 0))
        name = os.ttyname(slave).encode()
        sock.sendmsg([name], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    finally:
        sock.close()
        os.close(master)


def bind_console(slave: int) -> None:
    """Bind the pty slave onto /dev/console (config-linux "Default Devices").

    The target is created with O_CREAT|O_EXCL|O_NOFOLLOW or, if the image has one, opened
    with O_NOFOLLOW and checked to be a plain file or a char device: a symlink planted at
    /dev/console is refused, never followed (CVE-2025-52565 class).  The mount goes through
    the fds, so what we checked is what gets covered.
    """
    import stat

    from .kernel import linux as k

    try:
        fd = os.open("/dev/console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    target = os.open("/dev/console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(target).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise OSError(1, "/dev/console is not a regular file or a device: refusing to bind the console on it")
        k.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{target}", None, k.MS_BIND)
    finally:
        os.close(target)


def set_size(fd: int, rows: int, cols: int) -> None:
    tty.set_window_size(fd, rows, cols)
