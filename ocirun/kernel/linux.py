"""Namespaces, mounts, capabilities and process-attribute system calls.

Thin wrappers over libc (through ocirun.kernel.cabi, the part of ctypes we use): each one does
exactly one system call, raises ``OSError(errno, "<call>: <strerror>", path)`` on failure, and nothing else.
Policy (what to mount where, in which order) lives in the callers.
"""
from __future__ import annotations

import os

from . import _libc, cabi
from ._libc import check, libc, syscall
from .constants import *  # noqa: F401,F403  (the flags the calls below take)


def unshare(flags: int) -> None:
    check(libc.unshare(cabi.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    check(libc.setns(cabi.c_int(fd), cabi.c_int(nstype)), "setns")


def _b(path) -> bytes | None:
    if path is None:
        return None
    return os.fsencode(path)


def mount(source, target, fstype, flags: int = 0, data: str | None = None) -> None:
    ret = libc.mount(_b(source), _b(target), _b(fstype), cabi.c_ulong(flags), _b(data))
    check(ret, "mount", os.fsdecode(target) if target is not None else None)


def umount2(target, flags: int = 0) -> None:
    check(libc.umount2(_b(target), cabi.c_int(flags)), "umount2", os.fsdecode(target))


def pivot_root(new_root, put_old) -> None:
    syscall("pivot_root", _b(new_root), _b(put_old))


def sethostname(name: str) -> None:
    raw = name.encode()
    check(libc.sethostname(raw, cabi.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(libc.setdomainname(raw, cabi.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


def child_subreaper() -> bool:
    """Whether this process is a child subreaper (prctl PR_GET_CHILD_SUBREAPER)."""
    value = cabi.c_int(0)
    check(libc.prctl(cabi.c_int(PR_GET_CHILD_SUBREAPER), cabi.byref(value), cabi.c_ulong(0),
                     cabi.c_ulong(0), cabi.c_ulong(0)), "prctl")
    return bool(value.value)


def set_name(name: str) -> None:
    """Set the thread's comm name (what `ps` shows), e.g. ``ocirun:init``."""
    libc.prctl(PR_SET_NAME, cabi.c_char_p(name.encode()[:15]), 0, 0, 0)


class _OpenHow(cabi.Structure):
    _fields_ = [("flags", cabi.c_uint64), ("mode", cabi.c_uint64), ("resolve", cabi.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("openat2")), cabi.c_int(dirfd), _b(path), cabi.byref(how),
                       cabi.c_size_t(cabi.sizeof(how)))
    return check(ret, "openat2", path)


class _MountAttr(cabi.Structure):
    _fields_ = [("attr_set", cabi.c_uint64), ("attr_clr", cabi.c_uint64),
                ("propagation", cabi.c_uint64), ("userns_fd", cabi.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("mount_setattr")), cabi.c_int(dirfd), _b(path), cabi.c_uint(flags),
                       cabi.byref(attr), cabi.c_size_t(cabi.sizeof(attr)))
    check(ret, "mount_setattr", path or None)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("open_tree")), cabi.c_int(dirfd), _b(path), cabi.c_uint(flags))
    return check(ret, "open_tree", path or None)


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("move_mount")), cabi.c_int(from_fd), _b(from_path),
                       cabi.c_int(to_fd), _b(to_path), cabi.c_uint(flags))
    check(ret, "move_mount", to_path or None)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    syscall("close_range", cabi.c_uint(first), cabi.c_uint(last), cabi.c_uint(flags))


def personality(persona: int) -> int:
    cabi.set_errno(0)
    ret = libc.personality(cabi.c_ulong(persona))
    return check(ret, "personality")


def _nr(name: str) -> int:
    from ._libc import NR

    return NR[name]


# --- capabilities (capget/capset v3: two 32-bit words per set) ------------------------------
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(cabi.Structure):
    _fields_ = [("version", cabi.c_uint32), ("pid", cabi.c_int)]


class _CapData(cabi.Structure):
    _fields_ = [("effective", cabi.c_uint32), ("permitted", cabi.c_uint32), ("inheritable", cabi.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return (effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    syscall("capget", cabi.byref(hdr), data)
    return tuple((getattr(data[1], f) << 32) | getattr(data[0], f) for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    syscall("capset", cabi.byref(hdr), data)


def cap_last_cap(proc: str = "/proc") -> int:
    with open(f"{proc}/sys/kernel/cap_last_cap") as f:
        return int(f.read())


# --- rlimits (prlimit on self: covers every resource the spec names) ------------------------
class _Rlimit(cabi.Structure):
    _fields_ = [("cur", cabi.c_uint64), ("max", cabi.c_uint64)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    lim = _Rlimit(soft, hard)
    check(libc.prlimit(cabi.c_int(0), cabi.c_int(resource), cabi.byref(lim), None), "prlimit")


# --- signals ---------------------------------------------------------------------------------
def reset_signals() -> None:
    """Restore every signal to SIG_DFL and clear the mask.

    Python ignores SIGPIPE and SIGXFSZ, and a caller may have ignored anything
    (ignored dispositions survive execve).  glibc refuses to touch its reserved
    signals 32 and 33, so every disposition is reset with the raw rt_sigaction.
    """
    import _signal as signal  # the C module: `signal` would import enum

    dfl = (cabi.c_ulong * 4)()  # kernel sigaction: handler=SIG_DFL(0), flags, restorer, mask: all zero
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        libc.syscall(cabi.c_long(_nr("rt_sigaction")), cabi.c_int(sig), cabi.byref(dfl), None,
                     cabi.c_size_t(8))
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def signalfd(signals) -> int:
    """A new signalfd(2) for ``signals`` (1..64), close-on-exec and non-blocking.

    It reads only signals the caller keeps blocked; each read returns 128-byte
    signalfd_siginfo records whose first field is the signal number."""
    mask = cabi.c_uint64(0)  # the kernel's sigset: 64 bits, signal n is bit n-1
    for sig in signals:
        mask.value |= 1 << (sig - 1)
    cabi.set_errno(0)
    ret = libc.signalfd(cabi.c_int(-1), cabi.byref(mask), cabi.c_int(os.O_CLOEXEC | os.O_NONBLOCK))
    return check(ret, "signalfd")


# --- filesystem identity (to verify what we are about to write to or bind from) --------------
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
DEVPTS_SUPER_MAGIC = 0x1CD1
PIPEFS_MAGIC = 0x50495045  # anonymous pipes (pipe(2)); a named FIFO is on its own filesystem


class _Statfs(cabi.Structure):
    _fields_ = [("f_type", cabi.c_long), ("f_bsize", cabi.c_long), ("f_blocks", cabi.c_ulong),
                ("f_bfree", cabi.c_ulong), ("f_bavail", cabi.c_ulong), ("f_files", cabi.c_ulong),
                ("f_ffree", cabi.c_ulong), ("f_fsid", cabi.c_int * 2), ("f_namelen", cabi.c_long),
                ("f_frsize", cabi.c_long), ("f_flags", cabi.c_long), ("f_spare", cabi.c_long * 4)]


def fstatfs(fd: int) -> tuple[int, int]:
    """Return (filesystem magic, mount flags ST_*) of the filesystem ``fd`` is on."""
    buf = _Statfs()
    check(libc.fstatfs(cabi.c_int(fd), cabi.byref(buf)), "fstatfs")
    return buf.f_type, buf.f_flags


def mkfifo(path: str, mode: int = 0o622) -> None:
    os.mkfifo(path, mode)


# --- network: bring an interface up without pyroute2 (loopback in a new netns) ----------------
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def set_link_up(name: str = "lo") -> None:
    import _socket
    import fcntl
    import struct

    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))
    finally:
        s.close()


# --- scheduling: sched_setattr, ioprio_set, affinity --------------------------------------------
class _SchedAttr(cabi.Structure):
    _fields_ = [("size", cabi.c_uint32), ("sched_policy", cabi.c_uint32), ("sched_flags", cabi.c_uint64),
                ("sched_nice", cabi.c_int32), ("sched_priority", cabi.c_uint32),
                ("sched_runtime", cabi.c_uint64), ("sched_deadline", cabi.c_uint64),
                ("sched_period", cabi.c_uint64)]


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0, runtime: int = 0,
                  deadline: int = 0, period: int = 0, pid: int = 0) -> None:
    attr = _SchedAttr(cabi.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period)
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("sched_setattr")), cabi.c_int(pid), cabi.byref(attr),
                       cabi.c_uint(0))
    check(ret, "sched_setattr")


def ioprio_set(ioprio_class: int, level: int, pid: int = 0) -> None:
    IOPRIO_WHO_PROCESS = 1
    value = (ioprio_class << 13) | level
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("ioprio_set")), cabi.c_int(IOPRIO_WHO_PROCESS), cabi.c_int(pid),
                       cabi.c_int(value))
    check(ret, "ioprio_set")


def sched_setaffinity(pid: int, cpus) -> None:
    """The CPUs ``pid`` (0: the caller) may run on; a wrapper of ``os.sched_setaffinity``."""
    os.sched_setaffinity(pid, cpus)


# --- NUMA memory policy ------------------------------------------------------------------------
_ULONG_BITS = cabi.sizeof(cabi.c_ulong) * 8
MPOL_MAX_NODES = 1024  # the largest MAX_NUMNODES a kernel can be built with (NODES_SHIFT ≤ 10)


def set_mempolicy(mode: int, nodes=()) -> None:
    """set_mempolicy(2) for the calling thread (inherited across fork and execve).

    ``mode`` carries the MPOL_F_* flags; ``nodes`` are node numbers.  The kernel reads
    ``maxnode - 1`` bits of the mask (a historical off-by-one), hence the ``+ 1``.
    """
    nodes = list(nodes)
    if not nodes:
        cabi.set_errno(0)
        ret = libc.syscall(cabi.c_long(_nr("set_mempolicy")), cabi.c_int(mode), None, cabi.c_ulong(0))
        check(ret, "set_mempolicy")
        return
    nbits = max(nodes) + 1
    mask = (cabi.c_ulong * ((nbits + _ULONG_BITS - 1) // _ULONG_BITS))()
    for n in nodes:
        mask[n // _ULONG_BITS] |= 1 << (n % _ULONG_BITS)
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("set_mempolicy")), cabi.c_int(mode), mask,
                       cabi.c_ulong(len(mask) * _ULONG_BITS + 1))
    check(ret, "set_mempolicy")


def get_mempolicy() -> tuple[int, list[int]]:
    """The calling thread's policy: (mode with its MPOL_F_* flags, node numbers of its mask)."""
    mode = cabi.c_int(0)
    mask = (cabi.c_ulong * (MPOL_MAX_NODES // _ULONG_BITS))()
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("get_mempolicy")), cabi.byref(mode), mask,
                       cabi.c_ulong(MPOL_MAX_NODES), None, cabi.c_ulong(0))
    check(ret, "get_mempolicy")
    nodes = [i * _ULONG_BITS + b for i, word in enumerate(mask) for b in range(_ULONG_BITS) if word >> b & 1]
    return mode.value, nodes


# --- keyrings ------------------------------------------------------------------------------------
KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str | None = None) -> int:
    """Give the process a new session keyring, so the container does not share the caller's."""
    cabi.set_errno(0)
    ret = libc.syscall(cabi.c_long(_nr("keyctl")), cabi.c_int(KEYCTL_JOIN_SESSION_KEYRING),
                       cabi.c_char_p(name.encode() if name else None))
    return check(ret, "keyctl(JOIN_SESSION_KEYRING)")


# --- the process's own memory (ocirun.stagefork) --------------------------------------------------
def zero_memory(address: int, length: int) -> None:
    """Overwrite ``length`` bytes of our own memory at ``address`` with zeros (a forked stage wipes the
    command's environment block and arguments, which /proc/<pid>/{environ,cmdline} read)."""
    if length > 0:
        libc.memset(cabi.c_void_p(address), 0, cabi.c_size_t(length))


def string_length(address: int) -> int:
    """strlen() of the NUL-terminated string at ``address`` in our own memory."""
    strlen = libc.strlen
    strlen.restype = cabi.c_size_t
    return strlen(cabi.c_void_p(address))
