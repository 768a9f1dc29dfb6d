"""Who the process is: its user and group ids, supplementary groups, and session.

Wrappers of the ``os`` functions, so no ctypes: the stages and `exec`'s preflight import this
at no cost.  Each does the one call and lets its ``OSError`` through as ``os`` raised it.
"""
from __future__ import annotations

import os


def setresuid(ruid: int, euid: int, suid: int) -> None:
    os.setresuid(ruid, euid, suid)


def setresgid(rgid: int, egid: int, sgid: int) -> None:
    os.setresgid(rgid, egid, sgid)


def seteuid(uid: int) -> None:
    """The effective uid alone (the saved one keeps root, so the caller can come back)."""
    os.seteuid(uid)


def setegid(gid: int) -> None:
    os.setegid(gid)


def setgroups(gids: list[int]) -> None:
    os.setgroups(gids)


def setsid() -> int:
    """A new session led by this process (no controlling terminal until one is set)."""
    return os.setsid()
