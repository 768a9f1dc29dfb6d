"""The privileged filesystem calls: device nodes, ownership, the process's root, memory files.

mknod needs CAP_MKNOD, chown CAP_CHOWN, chroot CAP_SYS_CHROOT; a memfd is where a sealed copy of
the interpreter or a seccomp program lives, never on a filesystem the container can reach.
Wrappers of the ``os`` functions (no ctypes); each lets the ``OSError`` through unchanged, its
errno, strerror and filename as ``os`` gave them.  Changing a file's mode bits is not here: the
owner may always do it, as it may create or remove the file.
"""
from __future__ import annotations

import os


def mknod(path: str, mode: int, device: int = 0, dir_fd: int | None = None) -> None:
    os.mknod(path, mode, device, dir_fd=dir_fd)


def chown(path: str, uid: int, gid: int, dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
    os.chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=follow_symlinks)


def fchown(fd: int, uid: int, gid: int) -> None:
    os.fchown(fd, uid, gid)


def chroot(path: str) -> None:
    os.chroot(path)


def memfd_create(name: str, flags: int) -> int:
    return os.memfd_create(name, flags)
