"""The handle on libc (ocirun.kernel.cabi), per-architecture syscall numbers, and errno → OSError.

Loaded once, keeping errno for every call, so that every failure can be reported as
``OSError(errno, "what", path)`` the way the rest of Python does.
"""
from __future__ import annotations

import os

from . import cabi

libc = cabi.Library(None)  # errno kept for every call (raise_errno)
libc.syscall.restype = cabi.c_long


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Raw prctl(2), every argument as unsigned long (a pointer fits).  The one caller of
    libc.prctl with integer arguments: no global ``argtypes`` on the shared function."""
    u = cabi.c_ulong
    return libc.prctl(cabi.c_int(option), u(arg2), u(arg3), u(arg4), u(arg5))

# Syscalls that glibc 2.36 has no wrapper for (or whose wrapper we avoid).
# Numbers from the kernel's unistd tables; x86_64 and aarch64 (asm-generic).
_SYSCALLS = {
    "x86_64": {
        "pivot_root": 155, "setns": 308, "unshare": 272, "seccomp": 317,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
        "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442,
        "pidfd_send_signal": 424, "sched_setattr": 314, "ioprio_set": 251,
        "set_mempolicy": 238, "get_mempolicy": 239, "capget": 125, "capset": 126, "bpf": 321,
        "personality": 135, "close_range": 436, "execveat": 322,
        "memfd_create": 319, "kcmp": 312, "rt_sigaction": 13, "keyctl": 250,
    },
    "aarch64": {
        "pivot_root": 41, "setns": 268, "unshare": 97, "seccomp": 277,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
        "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442,
        "pidfd_send_signal": 424, "sched_setattr": 274, "ioprio_set": 30,
        "set_mempolicy": 237, "get_mempolicy": 236, "capget": 90, "capset": 91, "bpf": 280,
        "personality": 92, "close_range": 436, "execveat": 281,
        "memfd_create": 279, "kcmp": 272, "rt_sigaction": 134, "keyctl": 219,
    },
}

ARCH = os.uname().machine  # not platform.machine(): the platform module imports re
try:
    NR = _SYSCALLS[ARCH]
except KeyError:  # pragma: no cover - only on unsupported hardware
    raise ImportError(f"ocirun: unsupported architecture {ARCH!r} (known: {', '.join(_SYSCALLS)})")


def raise_errno(what: str, path: str | None = None) -> None:
    """Raise ``OSError`` from the current errno, naming the operation and path."""
    err = cabi.get_errno()
    if path is None:
        raise OSError(err, f"{what}: {os.strerror(err)}")
    raise OSError(err, f"{what}: {os.strerror(err)}", path)


def check(ret: int, what: str, path: str | None = None) -> int:
    """Return ``ret`` unless it is -1, in which case raise from errno."""
    if ret == -1:
        raise_errno(what, path)
    return ret


def syscall(name: str, *args) -> int:
    """Invoke the raw syscall ``name`` (by number, for this architecture)."""
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(NR[name]), *args)
    if ret == -1:
        raise_errno(name, None)
    return ret
