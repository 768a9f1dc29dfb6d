"""The foreground `run` and `exec`: every signal we can catch is passed on to the container's process.

As runc does, from before anything is created until the command returns: SIGCHLD
means "reap", SIGWINCH resizes the pty when we bridge one (:func:`ocirun.tty.attach`),
and every other signal goes to the process (`run`: the container's init; `exec`:
the exec'd process) — 1..31 but SIGKILL, SIGSTOP and SIGCHLD, and every real-time
signal, 34..64.  Not 32 and 33: glibc keeps them for itself and refuses to block them.

How: the signals are *blocked*, and read from a signalfd(2) by the loop that waits
for the process, rather than caught by Python handlers.

* Nothing interrupts `create` or `start`: a signal that arrives meanwhile waits in the
  kernel's queue and is forwarded once the process runs.  None is lost, and none ends
  us — SIGPWR or SIGRTMIN+3, whose default action is to terminate, would otherwise
  kill `ocirun run` and leave its container behind.
* One descriptor serves both waits: alone (:meth:`Forwarder.wait`) or next to the
  pty and the caller's terminal (:func:`ocirun.tty.attach`).
* A real fault in our own code still kills us (the kernel forces the default action
  of a blocked SIGSEGV it raises itself); a Python handler would return to the
  faulting instruction forever.  A SIGSEGV sent with kill(2) is forwarded.

Children we start while the signals are blocked inherit the mask: the init and exec
stages clear it first (``kernel.linux.reset_signals``), hooks are started with it
cleared (:mod:`ocirun.hooks`).  The process is signalled through a pidfd, opened
before it can be reaped, so a signal never reaches a process that reused its pid.
"""
from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` imports enum

from .kernel import linux as k
from .signals import SIGRTMAX, SIGRTMIN, reap_exited, zombie_exit_status

SIGCHLD = 17
SIGWINCH = 28
_UNCATCHABLE = (9, 19)  # SIGKILL, SIGSTOP

#: Passed on to the process: every signal that can be caught, but SIGCHLD.
FORWARDED = (tuple(s for s in range(1, 32) if s not in _UNCATCHABLE + (SIGCHLD,))
             + tuple(range(SIGRTMIN, SIGRTMAX + 1)))
#: Blocked and read from the signalfd while a :class:`Forwarder` is open.
CAUGHT = FORWARDED + (SIGCHLD,)
_SIGINFO_SIZE = 128  # struct signalfd_siginfo; its first field (uint32) is the signal number


class Forwarder:
    """Own every catchable signal from now until :meth:`close`; forward them once :meth:`target` names
    the process.  A context manager; one per foreground command, in the main thread."""

    def __init__(self, reaper: bool = True) -> None:
        #: whether we are the process's reaper (a child subreaper, so the container's init comes to
        #: us); False for `run --no-subreaper`, where it is watched through its pidfd instead
        self.reaper = reaper
        self.pid: int | None = None
        self.pidfd: int | None = None
        self._us = os.getpid()
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, CAUGHT)
        try:
            self.fd: int | None = k.signalfd(CAUGHT)
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            raise

    def __enter__(self) -> "Forwarder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        """Readable when signals are waiting (for select)."""
        return self.fd

    def target(self, pid: int) -> None:
        """Forward to ``pid`` from now on: our child, not yet reaped, so the pidfd names exactly it.
        Signals received before are still queued: the first :meth:`take` returns them."""
        from .kernel.process import pidfd_open

        self.pidfd = pidfd_open(pid)  # None without pidfds (kernel < 5.3): kill(2), until we reap it
        self.pid = pid

    def take(self) -> list[int]:
        """The signals received since the last call, as the kernel hands them out: lowest number first,
        one of each standard signal however often it came, every instance of a real-time one.

        Not those we caused ourselves: a write to a pipe whose reader is gone (a hook that did not
        read its state) raises SIGPIPE, and SIGXFSZ likewise, sent by us to us; ignored as Python
        ignores them, they are still queued while blocked, and are not the container's business."""
        out: list[int] = []
        while True:
            try:
                data = os.read(self.fd, _SIGINFO_SIZE * 32)
            except BlockingIOError:
                return out
            words = memoryview(data).cast("I")  # per record: ssi_signo, ssi_errno, ssi_code, ssi_pid, ...
            for i in range(0, len(words), _SIGINFO_SIZE // 4):
                if words[i + 3] != self._us:
                    out.append(words[i])

    def send(self, sig: int) -> None:
        """Pass ``sig`` on to the process; nothing if it has exited (or no target is named yet)."""
        if self.pidfd is not None:
            from .kernel.process import pidfd_signal

            pidfd_signal(self.pidfd, sig)
        elif self.pid is not None:  # no pidfds: the pid is still its own until we reap it, after which
            from .kernel.process import kill  # nothing is sent (wait and the tty bridge return once reaped)

            try:
                kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def waitables(self) -> list[int]:
        """The fds to select on: the signalfd, and when we are not the reaper, the process's pidfd
        (readable once it exits; no SIGCHLD tells us)."""
        if not self.reaper and self.pidfd is not None:
            return [self.fd, self.pidfd]
        return [self.fd]

    def exited(self, on_no_child: int) -> int | None:
        """The process's exit status once it has exited, else None; every exited child of ours is
        reaped.  ``on_no_child``: returned if someone else reaped it before we saw its status."""
        if self.reaper:
            return reap_exited(self.pid, on_no_child)
        reap_exited(-1, 0)  # our own children (the init stage)
        if self.pidfd is not None:
            import select

            if not select.select([self.pidfd], [], [], 0)[0]:
                return None
        elif os.path.exists(f"/proc/{self.pid}") and zombie_exit_status(self.pid, -1) == -1:
            return None  # no pidfds (kernel < 5.3): alive while its /proc entry is there and not a zombie
        return zombie_exit_status(self.pid, on_no_child)

    def wait(self, on_no_child: int) -> int:
        """Forward signals until the process exits; return its exit status (128+N if killed by
        signal N).  Every other child that exits meanwhile is reaped: as a subreaper, the container's
        orphans come to us.  ``on_no_child``: returned if someone else reaped it."""
        import select

        while True:
            status = self.exited(on_no_child)
            if status is not None:
                return status
            select.select(self.waitables(), [], [])
            for sig in self.take():
                if sig != SIGCHLD:
                    self.send(sig)

    def close(self) -> None:
        """Give the signals back.  What is still pending was meant for a process that is gone, and
        most of it would end us once unblocked: it is dropped (ignored while the mask is restored).
        SIGCHLD is left alone: ignoring it would have the kernel reap our children."""
        if self.fd is None:
            return
        os.close(self.fd)
        self.fd = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        dropped = [s for s in FORWARDED if s not in self._old_mask]
        handlers = {s: signal.signal(s, signal.SIG_IGN) for s in dropped}
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        for sig, handler in handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
