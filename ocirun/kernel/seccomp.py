"""seccomp(2), the no_new_privs prctl, and the user-notification ioctls.

Thin ctypes wrappers, one system call each, ``OSError(errno, "<call>: <strerror>")``
on failure.  Nothing here knows about the runtime spec or libseccomp: the
caller hands over a ready BPF program (``struct sock_filter[]`` as bytes, the
format ``seccomp_export_bpf`` writes) and the flags to pass to the kernel.

Ordering (enforced by the kernel, arranged by the init stage): installing a
filter needs ``no_new_privs`` set *or* ``CAP_SYS_ADMIN`` in the caller's user
namespace.  runc installs the filter after no_new_privs when the config asks
for it, and otherwise while it still holds CAP_SYS_ADMIN, i.e. before the
capability sets are dropped.
"""
from __future__ import annotations

import fcntl
import struct

from . import cabi

from ._libc import check, syscall
from ._libc import prctl as _prctl

# --- seccomp(2) operations (linux/seccomp.h) -----------------------------------------------
SECCOMP_SET_MODE_STRICT = 0
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_GET_NOTIF_SIZES = 3

# --- filter flags: their numbers live in ocirun.kernel.constants ----------------------------
from .constants import (SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER,  # noqa: E402,F401
                        SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC,
                        SECCOMP_FILTER_FLAG_TSYNC_ESRCH, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)

# --- return actions (the high 16 bits of a filter's return value) ---------------------------
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF

SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1 << 0

# --- prctl ----------------------------------------------------------------------------------
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
SECCOMP_MODE_FILTER = 2  # the prctl spelling

BPF_MAXINSNS = 4096
SOCK_FILTER_SIZE = 8  # struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }



class _SockFprog(cabi.Structure):
    _fields_ = [("len", cabi.c_ushort), ("filter", cabi.c_void_p)]


class _SeccompData(cabi.Structure):
    _fields_ = [
        ("nr", cabi.c_int),
        ("arch", cabi.c_uint32),
        ("instruction_pointer", cabi.c_uint64),
        ("args", cabi.c_uint64 * 6),
    ]


class _SeccompNotif(cabi.Structure):
    _fields_ = [
        ("id", cabi.c_uint64),
        ("pid", cabi.c_uint32),
        ("flags", cabi.c_uint32),
        ("data", _SeccompData),
    ]


class _SeccompNotifResp(cabi.Structure):
    _fields_ = [
        ("id", cabi.c_uint64),
        ("val", cabi.c_int64),
        ("error", cabi.c_int32),
        ("flags", cabi.c_uint32),
    ]


class _SeccompNotifSizes(cabi.Structure):
    _fields_ = [
        ("seccomp_notif", cabi.c_uint16),
        ("seccomp_notif_resp", cabi.c_uint16),
        ("seccomp_data", cabi.c_uint16),
    ]


# --- ioctl numbers (asm-generic encoding, as on x86_64 and aarch64) -------------------------
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, typ: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (typ << 8) | nr


SECCOMP_IOCTL_NOTIF_RECV = _ioc(_IOC_READ | _IOC_WRITE, ord("!"), 0, cabi.sizeof(_SeccompNotif))
SECCOMP_IOCTL_NOTIF_SEND = _ioc(_IOC_READ | _IOC_WRITE, ord("!"), 1, cabi.sizeof(_SeccompNotifResp))
SECCOMP_IOCTL_NOTIF_ID_VALID = _ioc(_IOC_WRITE, ord("!"), 2, 8)


class Notification:
    """One ``struct seccomp_notif``: a trapped system call waiting for an answer.

    Read-only, compared by value.  Not a dataclass: ``dataclasses`` imports ``inspect`` (≈10 ms),
    and this module is loaded by every init stage that installs a filter."""

    __slots__ = ("id", "pid", "flags", "nr", "arch", "instruction_pointer", "args")

    def __init__(self, id: int, pid: int, flags: int, nr: int, arch: int, instruction_pointer: int,
                 args: tuple[int, ...]):
        for name, value in zip(self.__slots__, (id, pid, flags, nr, arch, instruction_pointer, args)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r}")

    def _key(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other):
        return self._key() == other._key() if other.__class__ is self.__class__ else NotImplemented

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        return "Notification(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def validate_bpf(bpf: bytes) -> int:
    """Return the instruction count of ``bpf``, or raise ValueError if it cannot be a program."""
    if not bpf or len(bpf) % SOCK_FILTER_SIZE:
        raise ValueError(f"BPF program of {len(bpf)} bytes is not a whole number of instructions")
    count = len(bpf) // SOCK_FILTER_SIZE
    if count > BPF_MAXINSNS:
        raise ValueError(f"BPF program has {count} instructions, the kernel allows {BPF_MAXINSNS}")
    return count


def set_mode_filter(bpf: bytes, flags: int = 0) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog): install ``bpf`` on the calling thread.

    Returns the kernel's answer: the listener fd when ``flags`` has
    SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0.  Falls back to
    prctl(PR_SET_SECCOMP) on kernels without seccomp(2) when no flags are asked.
    """
    count = validate_bpf(bpf)
    buf = cabi.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(count, cabi.addressof(buf))
    try:
        return syscall("seccomp", cabi.c_uint(SECCOMP_SET_MODE_FILTER), cabi.c_uint(flags),
                       cabi.byref(prog))
    except OSError as e:
        if e.errno != 38 or flags:  # ENOSYS: only a pre-3.17 kernel
            raise
    return check(_prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, cabi.addressof(prog)),
                 "prctl(PR_SET_SECCOMP)")


def get_action_avail(action: int) -> bool:
    """seccomp(SECCOMP_GET_ACTION_AVAIL): does this kernel know the return action?"""
    value = cabi.c_uint32(action & SECCOMP_RET_ACTION_FULL)
    try:
        syscall("seccomp", cabi.c_uint(SECCOMP_GET_ACTION_AVAIL), cabi.c_uint(0), cabi.byref(value))
    except OSError as e:
        if e.errno in (95, 22):  # EOPNOTSUPP: unknown action; EINVAL: kernel without the op
            return False
        raise
    return True


def flags_supported(flags: int) -> bool:
    """Does the kernel accept these SECCOMP_FILTER_FLAG_* bits?  (Probe with a NULL program:
    EFAULT means the flags passed the kernel's checks, EINVAL that they did not.)"""
    try:
        syscall("seccomp", cabi.c_uint(SECCOMP_SET_MODE_FILTER), cabi.c_uint(flags), cabi.c_void_p(0))
    except OSError as e:
        return e.errno == 14  # EFAULT
    raise OSError(0, "seccomp: a NULL program was accepted")  # pragma: no cover


def get_notif_sizes() -> tuple[int, int, int]:
    """seccomp(SECCOMP_GET_NOTIF_SIZES): the kernel's sizes of notif, notif_resp, seccomp_data."""
    sizes = _SeccompNotifSizes()
    syscall("seccomp", cabi.c_uint(SECCOMP_GET_NOTIF_SIZES), cabi.c_uint(0), cabi.byref(sizes))
    return sizes.seccomp_notif, sizes.seccomp_notif_resp, sizes.seccomp_data


def get_mode() -> int:
    """prctl(PR_GET_SECCOMP): 0 (disabled), 1 (strict) or 2 (filter) for the calling thread."""
    return check(_prctl(PR_GET_SECCOMP), "prctl(PR_GET_SECCOMP)")


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): irreversible for this process and its children."""
    check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(PR_SET_NO_NEW_PRIVS)")


def get_no_new_privs() -> bool:
    return bool(check(_prctl(PR_GET_NO_NEW_PRIVS), "prctl(PR_GET_NO_NEW_PRIVS)"))


# --- user notification (the agent's side) --------------------------------------------------
def notif_recv(listener: int) -> Notification:
    """SECCOMP_IOCTL_NOTIF_RECV: block until a trapped system call arrives."""
    raw = _SeccompNotif()  # the kernel insists on a zeroed buffer
    fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, raw, True)
    return Notification(raw.id, raw.pid, raw.flags, raw.data.nr, raw.data.arch,
                        raw.data.instruction_pointer, tuple(raw.data.args))


def notif_send(listener: int, notif_id: int, val: int = 0, error: int = 0, flags: int = 0) -> None:
    """SECCOMP_IOCTL_NOTIF_SEND: the trapped call returns ``val`` (error == 0) or ``-error``.

    ``error`` is a negative errno as in the kernel's ``struct seccomp_notif_resp``
    (``-errno.EPERM``); ``flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE`` lets the call run.
    """
    resp = _SeccompNotifResp(notif_id, val, error, flags)
    fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp, True)


def notif_id_valid(listener: int, notif_id: int) -> bool:
    """SECCOMP_IOCTL_NOTIF_ID_VALID: is the target still blocked in this notification?"""
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, struct.pack("=Q", notif_id))
    except OSError as e:
        if e.errno == 2:  # ENOENT
            return False
        raise
    return True
