"""bpf(2) for cgroup device programs: load, attach, detach, query, get-fd-by-id.

``union bpf_attr`` is built as a zeroed 128-byte buffer with the fields of each command packed at their
offsets from linux/bpf.h (the kernel accepts a larger attr as long as the tail it does not know is zero).
"""
from __future__ import annotations

import os
import struct

from . import cabi

from ._libc import syscall

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6          # enum bpf_attach_type
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2

_ATTR_SIZE = 128


def _bpf(cmd: int, attr: cabi.Array, what: str) -> int:
    try:
        return syscall("bpf", cabi.c_int(cmd), cabi.byref(attr), cabi.c_uint(_ATTR_SIZE))
    except OSError as e:
        raise OSError(e.errno, f"bpf({what}): {os.strerror(e.errno)}") from None


def _attr(fields: list[tuple[int, str, int]]) -> cabi.Array:
    buf = cabi.create_string_buffer(_ATTR_SIZE)
    for off, fmt, val in fields:
        struct.pack_into("<" + fmt, buf, off, val)
    return buf


def prog_load(insns: bytes, *, prog_type: int = BPF_PROG_TYPE_CGROUP_DEVICE, license: str = "Apache",
              name: str = "", log_size: int = 1 << 16) -> int:
    """Load a program; return its fd.  On a verifier refusal the OSError carries the verifier's log."""
    insn_buf = cabi.create_string_buffer(insns, len(insns))
    lic = cabi.create_string_buffer(license.encode())
    log = cabi.create_string_buffer(log_size)
    attr = _attr([(0, "I", prog_type), (4, "I", len(insns) // 8),
                  (8, "Q", cabi.addressof(insn_buf)), (16, "Q", cabi.addressof(lic)),
                  (24, "I", 1), (28, "I", log_size), (32, "Q", cabi.addressof(log))])
    struct.pack_into("16s", attr, 48, name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
    except OSError as e:
        text = log.value.decode(errors="replace").strip()
        if text:
            raise OSError(e.errno, f"{e.strerror}: verifier: {text[-2000:]}") from None
        raise
    finally:
        del insn_buf, lic


def prog_attach(target_fd: int, prog_fd: int, attach_type: int = BPF_CGROUP_DEVICE,
                flags: int = BPF_F_ALLOW_MULTI) -> None:
    _bpf(BPF_PROG_ATTACH, _attr([(0, "I", target_fd), (4, "I", prog_fd), (8, "I", attach_type),
                                 (12, "I", flags)]), "BPF_PROG_ATTACH")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int = BPF_CGROUP_DEVICE) -> None:
    _bpf(BPF_PROG_DETACH, _attr([(0, "I", target_fd), (4, "I", prog_fd), (8, "I", attach_type)]),
         "BPF_PROG_DETACH")


def prog_query(target_fd: int, attach_type: int = BPF_CGROUP_DEVICE, max_progs: int = 64) -> tuple[int, list[int]]:
    """Return (attach_flags, ids of the programs attached directly to the cgroup)."""
    ids = (cabi.c_uint32 * max_progs)()
    attr = _attr([(0, "I", target_fd), (4, "I", attach_type), (8, "I", 0), (16, "Q", cabi.addressof(ids)),
                  (24, "I", max_progs)])
    _bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    flags = struct.unpack_from("<I", attr, 12)[0]
    count = struct.unpack_from("<I", attr, 24)[0]
    return flags, list(ids[:min(count, max_progs)])


def prog_get_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr([(0, "I", prog_id)]), "BPF_PROG_GET_FD_BY_ID")
