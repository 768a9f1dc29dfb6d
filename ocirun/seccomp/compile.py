"""Replay a :class:`~ocirun.seccomp.translate.Plan` into libseccomp and export the BPF program.

libseccomp is reached through pyseccomp, imported on first use only: loading
it costs an ``ldconfig -p`` subprocess (``ctypes.util.find_library``), so a
cache hit and the init stage must never get here.

The library sits behind a small backend interface (:class:`Libseccomp`) so
that the unit tests can put a recording fake in its place and see the exact
sequence of ``seccomp_*`` calls.
"""
from __future__ import annotations

import os

from ..errors import SeccompError
from . import enosys
from .model import CompiledFilter
from .translate import Plan

SCMP_FLTATR_CTL_OPTIMIZE = 8
NR_SCMP_ERROR = -1


class Libseccomp:
    """The real backend: one libseccomp filter context at a time, through pyseccomp."""

    def __init__(self):
        try:
            import pyseccomp
        except (ImportError, RuntimeError) as e:  # RuntimeError: "Unable to find libseccomp"
            raise SeccompError(f"seccomp: libseccomp is not available: {e}") from None
        self._lib = pyseccomp
        self._filter = None

    def version(self) -> str:
        from ..kernel.libseccomp import version
        return version()

    def init(self, default_action: int) -> None:
        self._filter = self._lib.SyscallFilter(default_action)

    def arch_add(self, arch: int) -> None:
        """Add ``arch`` unless the filter already has it (the native one always is)."""
        if not self._filter.exist_arch(arch):
            self._filter.add_arch(arch)

    def set_optimize(self, level: int) -> None:
        self._filter.set_attr(SCMP_FLTATR_CTL_OPTIMIZE, level)

    def resolve(self, name: str) -> int | None:
        """Native number (or libseccomp's negative pseudo-number) of ``name``; None if unknown."""
        nr = self._lib.resolve_syscall(self._lib.Arch.NATIVE, name)
        return None if nr == NR_SCMP_ERROR else nr

    def native_arch(self) -> int:
        return self._lib.system_arch()

    def resolve_arch(self, arch: int, name: str) -> int | None:
        """Number of ``name`` on ``arch``; None when unknown there (or only a pseudo-number)."""
        nr = self._lib.resolve_syscall(arch, name)
        return None if nr < 0 else nr

    def rule_add(self, action: int, nr: int, args: tuple) -> None:
        cmps = [self._lib.Arg(a.index, a.op, a.value, a.value_two) for a in args]
        self._filter.add_rule(action, nr, *cmps)

    def export_bpf(self) -> bytes:
        from ..kernel.files import memfd_create

        fd = memfd_create("ocirun-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            with open(fd, "r+b", buffering=0, closefd=False) as f:
                self._filter.export_bpf(f)
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
            self._filter = None


def _err(e: OSError) -> str:
    return os.strerror(e.errno) if e.errno else str(e)


def last_syscalls(plan: Plan, lib) -> dict[int, int]:
    """{arch token: highest number among the profile's syscalls} for every arch of the filter."""
    last = {}
    for arch in dict.fromkeys([lib.native_arch()] + [a for _, a in plan.arches]):
        nrs = [nr for name in dict.fromkeys(plan.names) if (nr := lib.resolve_arch(arch, name)) is not None]
        if nrs:
            last[arch] = max(nrs)
    return last


def build(plan: Plan, backend=None) -> CompiledFilter:
    """Run ``plan`` through ``backend`` (default: libseccomp) and return the exported filter."""
    lib = backend if backend is not None else Libseccomp()
    warnings = list(plan.warnings)
    try:
        lib.init(plan.default_action)
    except OSError as e:
        raise SeccompError(f"linux.seccomp.defaultAction: libseccomp refused it: {_err(e)}") from None

    for where, arch in plan.arches:
        try:
            lib.arch_add(arch)
        except OSError as e:
            raise SeccompError(f"{where}: not supported by libseccomp {lib.version()}: {_err(e)}") from None

    if plan.optimize:
        try:
            lib.set_optimize(plan.optimize)
        except OSError:
            pass  # an older libseccomp: the linear layout is only slower

    resolved: dict[str, int | None] = {}
    for rule in plan.rules:
        if rule.name not in resolved:
            resolved[rule.name] = nr = lib.resolve(rule.name)
            if nr is None:
                warnings.append(f'{rule.field}: unknown syscall "{rule.name}" skipped')
        nr = resolved[rule.name]
        if nr is None:
            continue
        try:
            lib.rule_add(rule.action, nr, rule.args)
        except OSError as e:
            raise SeccompError(f'{rule.field}: adding the rule for "{rule.name}": {_err(e)}') from None

    try:
        bpf = lib.export_bpf()
    except OSError as e:
        raise SeccompError(f"seccomp: exporting the BPF program: {_err(e)}") from None
    if plan.enosys:
        bpf = enosys.stub(last_syscalls(plan, lib)) + bpf
    filt = CompiledFilter(bpf=bpf, flags=plan.flags, needs_listener=plan.needs_listener,
                          warnings=warnings)
    try:
        filt.check()
    except ValueError as e:
        raise SeccompError(f"seccomp: {e}") from None
    return filt
