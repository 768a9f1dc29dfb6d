"""A recording stand-in for the kernel seam, for unit tests without root.

``FakeKernel(monkeypatch)`` replaces the functions of :mod:`ocirun.kernel.linux`
with recorders: each call is appended to ``calls`` as ``(name, args)`` and
returns what ``returns[name]`` says (a value, or a callable given the args; an
exception instance is raised).  Code above the seam runs unchanged and the test
asserts the exact sequence of system calls it would have made.
"""
from __future__ import annotations

from . import linux

RECORDED = ("unshare", "setns", "mount", "umount2", "pivot_root", "sethostname", "setdomainname", "prctl",
            "openat2", "mount_setattr", "open_tree", "move_mount", "close_range", "personality", "capget",
            "capset", "setrlimit", "set_link_up", "sched_setattr", "ioprio_set", "fstatfs", "set_mempolicy")


class FakeKernel:
    def __init__(self, monkeypatch, returns: dict | None = None):
        self.calls: list[tuple[str, tuple]] = []
        self.returns = dict(returns or {})
        self._next_fd = 1000
        for name in RECORDED:
            monkeypatch.setattr(linux, name, self._recorder(name))

    def _recorder(self, name: str):
        def call(*args, **kwargs):
            self.calls.append((name, args + tuple(kwargs.values())))
            ret = self.returns.get(name)
            if isinstance(ret, BaseException):
                raise ret
            if callable(ret):
                return ret(*args, **kwargs)
            if ret is None and name in ("openat2", "open_tree"):
                self._next_fd += 1
                return self._next_fd
            return ret
        return call

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[tuple]:
        return [args for n, args in self.calls if n == name]
