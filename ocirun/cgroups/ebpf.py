"""The cgroup v2 device filter: a BPF_PROG_TYPE_CGROUP_DEVICE program assembled by hand.

The kernel runs it on every open/mknod of a device node with a ``struct bpf_cgroup_dev_ctx``::

    u32 access_type;   /* (access << 16) | type; type BPF_DEVCG_DEV_BLOCK=1, _CHAR=2;
                          access BPF_DEVCG_ACC_MKNOD=1, _READ=2, _WRITE=4 */
    u32 major;
    u32 minor;

and allows the access iff the program returns 1.  The program is compiled from the same
:class:`~ocirun.cgroups.devices.DeviceState` the v1 driver writes, so both enforce the same thing:

    r2 = type, r3 = access, r4 = major, r5 = minor          (prologue, 6 instructions)
    default deny:  for each exception  — if the device matches and (access & ~granted) == 0: return 1
    default allow: for each exception  — if the device matches and (access & denied) != 0:   return 0
    return default

Each exception is one block; a failed test jumps to the next block (offsets are counted inside the block).
"""
from __future__ import annotations

import struct

from .devices import DeviceState

# instruction classes / fields (linux/bpf.h, linux/bpf_common.h)
BPF_LDX, BPF_ALU, BPF_JMP, BPF_ALU64 = 0x01, 0x04, 0x05, 0x07
BPF_W, BPF_MEM = 0x00, 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JEQ, BPF_JNE, BPF_JSET, BPF_EXIT = 0x10, 0x50, 0x40, 0x90

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

LICENSE = "Apache"


class Insn(tuple):
    """(code, dst, src, off, imm) — one ``struct bpf_insn``."""

    def __new__(cls, code, dst=0, src=0, off=0, imm=0):
        return super().__new__(cls, (code, dst, src, off, imm))

    code = property(lambda s: s[0])
    dst = property(lambda s: s[1])
    src = property(lambda s: s[2])
    off = property(lambda s: s[3])
    imm = property(lambda s: s[4])

    def encode(self) -> bytes:
        code, dst, src, off, imm = self
        return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)

    def __repr__(self) -> str:
        return f"Insn(0x{self[0]:02x}, dst=r{self[1]}, src=r{self[2]}, off={self[3]}, imm={self[4]})"


def ldx_w(dst, src, off):
    return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)


def alu32_k(op, dst, imm):
    return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)


def mov32_x(dst, src):
    return Insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)


def mov64_k(dst, imm):
    return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)


def jmp_k(op, dst, imm, off):
    return Insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)


def exit_():
    return Insn(BPF_JMP | BPF_EXIT)


def access_bits(access: str) -> int:
    bits = 0
    for c in access:
        bits |= _ACCESS_BITS[c]
    return bits


PROLOGUE = [
    ldx_w(2, 1, 0), alu32_k(BPF_AND, 2, 0xFFFF),   # r2 = type
    ldx_w(3, 1, 0), alu32_k(BPF_RSH, 3, 16),       # r3 = access
    ldx_w(4, 1, 4),                                # r4 = major
    ldx_w(5, 1, 8),                                # r5 = minor
]


def _block(type_: str, major, minor, access: str, default_allow: bool) -> list[Insn]:
    """One exception: tests that jump past the block on mismatch (offset 0 = placeholder), then return."""
    tests: list[list] = []
    tests.append([jmp_k(BPF_JNE, 2, _TYPES[type_], 0)])
    if major is not None:
        tests.append([jmp_k(BPF_JNE, 4, major, 0)])
    if minor is not None:
        tests.append([jmp_k(BPF_JNE, 5, minor, 0)])
    bits = access_bits(access)
    if not default_allow:
        if bits != ALL_ACCESS:              # any requested access outside the granted ones → not this rule
            tests.append([jmp_k(BPF_JSET, 3, ALL_ACCESS & ~bits, 0)])
        ret = 1
    else:
        if bits != ALL_ACCESS:              # no requested access among the denied ones → not this rule
            tests.append([mov32_x(1, 3), alu32_k(BPF_AND, 1, bits), jmp_k(BPF_JEQ, 1, 0, 0)])
        ret = 0
    flat = [i for t in tests for i in t] + [mov64_k(0, ret), exit_()]
    out = []
    for idx, insn in enumerate(flat):
        if insn.code & 0x07 == BPF_JMP and insn.code != BPF_JMP | BPF_EXIT:
            insn = Insn(insn.code, insn.dst, insn.src, len(flat) - idx - 1, insn.imm)
        out.append(insn)
    return out


def assemble(state: DeviceState) -> list[Insn]:
    prog = list(PROLOGUE)
    for (type_, major, minor), access in state.exceptions.items():
        prog += _block(type_, major, minor, access, state.default_allow)
    prog += [mov64_k(0, 1 if state.default_allow else 0), exit_()]
    return prog


def encode(prog: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in prog)


def run(prog: list[Insn], type_: str, major: int, minor: int, access: str) -> int:
    """A tiny interpreter for the instructions :func:`assemble` emits, so unit tests can check the
    program's decisions against :meth:`DeviceState.allows` without root."""
    regs = [0] * 11
    ctx = ((access_bits(access) << 16) | _TYPES[type_], major, minor)
    pc = 0
    while True:
        code, dst, src, off, imm = prog[pc]
        pc += 1
        cls = code & 0x07
        if code == BPF_LDX | BPF_MEM | BPF_W:
            regs[dst] = ctx[off // 4]
        elif cls in (BPF_ALU, BPF_ALU64):
            op = code & 0xF0
            val = regs[src] if code & BPF_X else imm
            if op == BPF_MOV:
                regs[dst] = val
            elif op == BPF_AND:
                regs[dst] &= val
            elif op == BPF_RSH:
                regs[dst] >>= val
            else:
                raise ValueError(f"unexpected ALU op {code:#x}")
            if cls == BPF_ALU:
                regs[dst] &= 0xFFFFFFFF
        elif code == BPF_JMP | BPF_EXIT:
            return regs[0]
        elif cls == BPF_JMP:
            op = code & 0xF0
            a = regs[dst]
            taken = {BPF_JEQ: a == imm, BPF_JNE: a != imm, BPF_JSET: bool(a & imm)}[op]
            if taken:
                pc += off
        else:
            raise ValueError(f"unexpected instruction {code:#x}")
