"""Signal names and numbers as `kill` accepts them: KILL, SIGKILL, 9, sigkill, RTMIN+3.

A static Linux table instead of the signal module: ``import signal`` pulls in
enum, which costs more than the whole `kill` command should.
"""
from __future__ import annotations

import os

from .errors import UsageError

SIGKILL = 9
SIGTERM = 15

#: Linux numbering (the same on x86_64 and aarch64).
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
    "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24,
    "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN = 34  # glibc reserves 32 and 33
SIGRTMAX = 64


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 <= num <= SIGRTMAX:  # 0 sends nothing: `kill ID 0` only checks that the init is alive
            return num
        raise UsageError(f"unknown signal {text!r}")
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value, sign in (("RTMIN", SIGRTMIN, 1), ("RTMAX", SIGRTMAX, -1)):
        if name == base:
            return value
        if name.startswith(base) and name[len(base):len(base) + 1] in ("+", "-"):
            off = name[len(base) + 1:]
            if off.isdigit():
                num = value + sign * int(off) if name[len(base)] == ("+" if sign > 0 else "-") else -1
                if SIGRTMIN <= num <= SIGRTMAX:
                    return num
    raise UsageError(f"unknown signal {text!r}")


def exit_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal that killed it
    (`run`, `exec`, `restore` and the Python API all exit or answer with this)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def reap_exited(pid: int, on_no_child: int) -> int | None:
    """Reap every child that has exited, without waiting; return ``pid``'s :func:`exit_status` if
    it was among them, ``on_no_child`` if no child is left (someone else reaped it), else None.

    The foreground `run` and `exec` call it whenever SIGCHLD arrives (:mod:`ocirun.forward`)."""
    found = None
    while True:
        try:
            got, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found if found is not None else on_no_child
        if got == 0:
            return found
        if got == pid:
            found = exit_status(status)


def zombie_exit_status(pid: int, on_gone: int) -> int:
    """The :func:`exit_status` of a process that is *not* our child, read from its /proc stat while it
    is a zombie (field 52, exit_code, the wait status its parent will get); ``on_gone`` once its new
    parent has reaped it.  Only `run --no-subreaper` needs this: without the subreaper the container's
    init is re-parented to someone else, and only they can wait for it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return on_gone
    if fields[:1] != [b"Z"] or len(fields) < 50:  # fields[0] is field 3 (state); exit_code is field 52
        return on_gone
    return exit_status(int(fields[49]))


def wait_reaping(pid: int, on_no_child: int) -> int:
    """Wait for ``pid`` and return its :func:`exit_status`, reaping every other child meanwhile.

    In the foreground ``restore`` is a child subreaper: the container's orphans are re-parented
    to us, and waiting for ``pid`` alone would leave them zombies until we exit, so we wait for
    any child.  (``run`` and ``exec`` wait the same way, signals forwarded: :mod:`ocirun.forward`.)
    ``on_no_child`` is returned if no child is left before ``pid`` was seen (someone else reaped
    it).  InterruptedError is retried, though since PEP 475 Python retries EINTR itself: a guard.
    """
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return on_no_child
        except InterruptedError:
            continue
        if got == pid:
            return exit_status(status)
