"""What the installed libseccomp is and knows, asked through a bare dlopen (no pyseccomp).

In the kernel seam because it is ctypes (the package's only ctypes lives under ocirun/kernel/); the
filter itself is compiled with pyseccomp (ocirun.seccomp.compile).

Used by the cache key and by ``features``; cheap enough for the hot path
(dlopen of an already-mapped-or-small library, no ``ldconfig`` subprocess).
"""
from __future__ import annotations

import ctypes

SONAME = "libseccomp.so.2"
NR_SCMP_ERROR = -1

_lib = None
_version: str | None = None


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def handle():
    """The libseccomp handle, or None when it is not installed."""
    global _lib
    if _lib is None:
        try:
            _lib = ctypes.CDLL(SONAME)
        except OSError:
            from ctypes.util import find_library
            name = find_library("seccomp")
            if name is None:
                return None
            _lib = ctypes.CDLL(name)
        _lib.seccomp_version.restype = ctypes.POINTER(_Version)
        _lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
        _lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    return _lib


def version() -> str:
    """``major.minor.micro`` of libseccomp, or ``"none"``."""
    global _version
    if _version is None:
        lib = handle()
        if lib is None:
            return "none"
        v = lib.seccomp_version().contents
        _version = f"{v.major}.{v.minor}.{v.micro}"
    return _version


def arch_supported(arch: int) -> bool:
    """Does this libseccomp know the SCMP_ARCH_* token ``arch``?"""
    lib = handle()
    return lib is not None and lib.seccomp_syscall_resolve_name_arch(arch, b"read") != NR_SCMP_ERROR
