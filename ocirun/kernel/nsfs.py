"""Namespace files (``/proc/PID/ns/*``, or a bind of one): which kind of namespace an fd names.

``validate`` asks this before anything is created, in the parent: ``fcntl`` only, no ctypes.
"""
from __future__ import annotations

import fcntl

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h


def ns_type(fd: int) -> int:
    """The CLONE_NEW* flag of the namespace ``fd`` refers to; OSError (ENOTTY) when it is not a
    namespace file."""
    return fcntl.ioctl(fd, NS_GET_NSTYPE)
