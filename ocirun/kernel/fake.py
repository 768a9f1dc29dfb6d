"""A recording stand-in for the kernel seam, for unit tests without root.

``FakeKernel(monkeypatch)`` replaces the privileged functions of the seam's modules
(:data:`RECORDED`) with recorders: each call is appended to ``calls`` as ``(name, args)``
and returns what ``returns[name]`` says (a value, or a callable given the args; an
exception instance is raised).  Code above the seam runs unchanged and the test
asserts the exact sequence of system calls it would have made.  :meth:`FakeKernel.fail`
injects an ``OSError`` worded as the ``os`` module words it, on every call or on the
calls a predicate picks.

The callers reach these functions as module attributes (``k.mount``, ``identity.setresuid``,
or a ``from .kernel.process import kill`` inside the function), which is what lets the
fake stand in; a name bound at import time (``from .kernel.linux import mount`` at the
top of a module) would keep the real call.
"""
from __future__ import annotations

import os

from . import bpf, files, identity, linux, nsfs, process, seccomp, tty

#: Module → the functions the fake replaces: every privileged primitive of the seam.
RECORDED = {
    linux: ("unshare", "setns", "mount", "umount2", "pivot_root", "sethostname", "setdomainname", "prctl",
            "openat2", "mount_setattr", "open_tree", "move_mount", "close_range", "personality", "capget",
            "capset", "setrlimit", "set_link_up", "sched_setattr", "ioprio_set", "fstatfs", "set_mempolicy",
            "sched_setaffinity", "set_name", "reset_signals", "join_session_keyring"),
    seccomp: ("set_mode_filter", "set_no_new_privs"),
    bpf: ("prog_load", "prog_attach", "prog_detach"),
    identity: ("setresuid", "setresgid", "seteuid", "setegid", "setgroups", "setsid"),
    files: ("mknod", "chown", "fchown", "chroot", "memfd_create"),
    tty: ("set_controlling_terminal", "window_size", "set_window_size"),
    nsfs: ("ns_type",),
    process: ("require_pidfd", "pidfd_send_signal", "kill", "prlimit"),
}

#: The calls that return a new fd: the fake hands out fresh numbers (from 1001) unless told otherwise.
FD_RETURNING = ("openat2", "open_tree", "memfd_create", "require_pidfd", "prog_load")


class FakeKernel:
    def __init__(self, monkeypatch, returns: dict | None = None):
        self.calls: list[tuple[str, tuple]] = []
        self.returns = dict(returns or {})
        self._next_fd = 1000
        for module, names in RECORDED.items():
            for name in names:
                monkeypatch.setattr(module, name, self._recorder(name))

    def _recorder(self, name: str):
        def call(*args, **kwargs):
            self.calls.append((name, args + tuple(kwargs.values())))
            ret = self.returns.get(name)
            if isinstance(ret, BaseException):
                raise ret
            if callable(ret):
                return ret(*args, **kwargs)
            if ret is None and name in FD_RETURNING:
                self._next_fd += 1
                return self._next_fd
            return ret
        return call

    def fail(self, name: str, err: int, when=None, filename: str | None = None) -> None:
        """Make ``name`` raise ``OSError(err)`` (the subclass and strerror ``os`` would give), on every
        call or only when ``when(*args)`` is true; other calls return what they did before."""
        before = self.returns.get(name)

        def maybe_fail(*args, **kwargs):
            if when is None or when(*args, *kwargs.values()):
                if filename is None:
                    raise OSError(err, os.strerror(err))
                raise OSError(err, os.strerror(err), filename)
            if isinstance(before, BaseException):
                raise before
            if callable(before):
                return before(*args, **kwargs)
            if before is None and name in FD_RETURNING:
                self._next_fd += 1
                return self._next_fd
            return before

        self.returns[name] = maybe_fail

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[tuple]:
        return [args for n, args in self.calls if n == name]
