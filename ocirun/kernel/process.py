"""Acting on other processes: signals (by pidfd where the kernel has them), pidfds, resource limits.

Processes named by pidfd: open one for a pid that is still the process we mean, signal it, wait for it.

A pid is only a number: once its process has exited and been reaped, the kernel may hand it to
any new process, and ``kill(pid)`` then hits that one.  A pidfd names the process itself: a
signal sent through it reaches that process or fails with ESRCH.  What remains is the instant
between reading a pid (from ``/proc`` or ``cgroup.procs``) and opening its pidfd, which the
callers close by checking, *after* the open, that the pid still is what they read (its start
time, or its presence in the cgroup).

No ctypes here: ``os.pidfd_open``, ``os.kill``, ``resource.prlimit`` and
``_signal.pidfd_send_signal`` (the C module under ``signal``, which imports enum) are the system
calls themselves, and `delete` and `kill` load this module on their hot path.  The recording
fake (:mod:`ocirun.kernel.fake`) replaces the four primitives :func:`require_pidfd`,
:func:`pidfd_send_signal`, :func:`kill` and :func:`prlimit`; the rest is policy built on them.
"""
from __future__ import annotations

import os

#: Whether the kernel has pidfds (5.3+); without them the callers fall back to kill(2).
HAVE_PIDFD = hasattr(os, "pidfd_open")


def require_pidfd(pid: int) -> int:
    """pidfd_open(2): a pidfd of ``pid`` (close-on-exec), or its ``OSError`` as ``os`` raises it."""
    return os.pidfd_open(pid)


def kill(pid: int, sig: int) -> None:
    """kill(2), for where no pidfd can name the process (our own unreaped child, an old kernel)."""
    os.kill(pid, sig)


def prlimit(pid: int, resource: int, limits: tuple[int, int]) -> None:
    """prlimit(2) on another process: set its (soft, hard) limit of ``resource``."""
    import resource as _resource

    _resource.prlimit(pid, resource, limits)


def pidfd_open(pid: int) -> int | None:
    """A pidfd of ``pid`` (close-on-exec), or None if the process is gone or pidfds are missing."""
    if not HAVE_PIDFD or pid <= 0:
        return None
    try:
        return require_pidfd(pid)
    except ProcessLookupError:
        return None
    except OSError as e:
        import errno

        if e.errno in (errno.ENOSYS, errno.EINVAL):  # an old kernel (or a thread id)
            return None
        raise


def pidfd_send_signal(fd: int, sig: int) -> None:
    """pidfd_send_signal(2); ProcessLookupError once that process has exited."""
    import _signal

    _signal.pidfd_send_signal(fd, sig)


def pidfd_signal(fd: int, sig: int) -> bool:
    """Send ``sig`` through a pidfd; False if that process has exited meanwhile."""
    try:
        pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    return True


def signal_pid(pid: int, sig: int, still_ours) -> bool:
    """Signal ``pid`` only if, once pinned by a pidfd, ``still_ours(pid)`` says it is the process meant.

    ``still_ours`` is asked after the pidfd is open, so the answer is about the very process the
    pidfd names (if the pid was reused before the open, the check sees the new process and says
    no).  Without pidfds, a plain kill(2) after the same check (the best the kernel offers).
    Returns whether a signal was sent."""
    fd = pidfd_open(pid)
    if fd is None:
        if HAVE_PIDFD or not still_ours(pid):
            return False
        try:
            kill(pid, sig)
        except ProcessLookupError:
            return False
        return True
    try:
        if not still_ours(pid):
            return False
        return pidfd_signal(fd, sig)
    finally:
        os.close(fd)


def wait_exited(fd: int, timeout: float) -> bool:
    """Wait until the process of pidfd ``fd`` has exited (a pidfd polls readable then); True if it has.

    Exited means dead, reaped or not: a zombie's pidfd is readable too."""
    import select

    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(max(0, int(timeout * 1000))))


def signal_listed(pids: list[int], sig: int, listed) -> int:
    """Signal each of ``pids`` (read from a list such as cgroup.procs) that ``listed()`` still names
    once its pidfd is open; return how many were signalled.

    All pidfds are opened first and the list is read again once: a pid still listed then belongs to
    the process its pidfd names (a process holds its pid until it is reaped), so one more read
    covers every pid.  Without pidfds: kill(2), as runc does."""
    if not HAVE_PIDFD:
        n = 0
        for pid in pids:
            try:
                kill(pid, sig)
                n += 1
            except ProcessLookupError:
                pass
        return n
    fds = {}
    try:
        for pid in pids:
            fd = pidfd_open(pid)
            if fd is not None:
                fds[pid] = fd
        if not fds:
            return 0
        still = set(listed())
        return sum(pidfd_signal(fd, sig) for pid, fd in fds.items() if pid in still)
    finally:
        for fd in fds.values():
            os.close(fd)
