"""The ENOSYS stub: syscalls newer than the profile fail with ENOSYS, not the default action.

A profile is written against the syscalls its author knew.  With a
restrictive default (Docker's ``SCMP_ACT_ERRNO`` → EPERM), a syscall added to
the kernel later (``fchmodat2``, ``mseal``, ...) fails with EPERM, which libc
reads as a real refusal instead of "not implemented here, fall back".  runc
therefore prepends a stub to the program (``libcontainer/seccomp/patchbpf``);
ocirun does the same, written here from the BPF semantics:

    ld  [arch]
    for each architecture of the filter (x86_64 and x32 share one AUDIT_ARCH,
    x32 syscall numbers carry bit 30):
        jeq #AUDIT_ARCH, 0, next
        ld  [nr]
        jgt #<highest syscall the profile names for that arch>, enosys, original
    ja  original
    enosys:   ret #ERRNO(ENOSYS)
    original: <libseccomp's program>

The stub is skipped when the default action is permissive (ALLOW, LOG) or is
already ERRNO(ENOSYS) (Podman's profile), exactly the cases where it would not
change any outcome.  Pure functions; :mod:`.compile` feeds them libseccomp's
per-arch syscall numbers.
"""
from __future__ import annotations

import struct

ENOSYS = 38
RET_ERRNO = 0x00050000

# classic BPF opcodes (linux/filter.h, linux/bpf_common.h)
LD_W_ABS = 0x20
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JSET_K = 0x45
RET_K = 0x06

OFF_NR = 0      # struct seccomp_data.nr
OFF_ARCH = 4    # struct seccomp_data.arch

AUDIT_ARCH_X86_64 = 0xC000003E
SCMP_ARCH_X32 = 0x4000003E
X32_SYSCALL_BIT = 0x40000000

_INSN = struct.Struct("=HBBI")


def kernel_arch(arch: int) -> int:
    """The AUDIT_ARCH the kernel reports for a libseccomp arch token (x32 → x86_64)."""
    return AUDIT_ARCH_X86_64 if arch == SCMP_ARCH_X32 else arch


def stub(last: dict[int, int]) -> bytes:
    """The stub for ``last`` = {SCMP_ARCH token: highest syscall number the profile names}."""
    groups: dict[int, dict[int, int]] = {}
    for arch, nr in last.items():
        groups.setdefault(kernel_arch(arch), {})[arch] = nr

    prog: list[list] = [[LD_W_ABS, 0, 0, OFF_ARCH]]    # [code, jt, jf, k]; labels resolved below
    for n, (karch, members) in enumerate(groups.items()):
        nxt = f"next{n}"
        prog.append([JMP_JEQ_K, 0, nxt, karch])
        prog.append([LD_W_ABS, 0, 0, OFF_NR])
        if karch == AUDIT_ARCH_X86_64:
            x32 = members.get(SCMP_ARCH_X32)
            native = members.get(AUDIT_ARCH_X86_64)
            prog.append([JMP_JSET_K, f"x32_{n}", 0, X32_SYSCALL_BIT])
            prog.append(_check(native))
            prog.append(("label", f"x32_{n}"))
            prog.append(_check(x32))
        else:
            prog.append(_check(members[karch]))
        prog.append(("label", nxt))
    prog.append([JMP_JA, 0, 0, "original"])
    prog.append(("label", "enosys"))
    prog.append([RET_K, 0, 0, RET_ERRNO | ENOSYS])
    prog.append(("label", "original"))
    return _assemble(prog)


def _check(nr: int | None) -> list:
    if nr is None:  # the filter has this arch variant but the profile names none of its syscalls
        return [JMP_JA, 0, 0, "original"]
    return [JMP_JGT_K, "enosys", "original", nr]


def _assemble(prog: list) -> bytes:
    labels, insns = {}, []
    for item in prog:
        if isinstance(item, tuple):
            labels[item[1]] = len(insns)
        else:
            insns.append(item)
    out = []
    for pc, (code, jt, jf, k) in enumerate(insns):
        def rel(target):
            return labels[target] - pc - 1 if isinstance(target, str) else target
        if code == JMP_JA:
            k = rel(k)
        jt, jf = rel(jt), rel(jf)
        if not (0 <= jt < 256 and 0 <= jf < 256):  # pragma: no cover - the stub is a few dozen insns
            raise ValueError("ENOSYS stub too long for 8-bit jumps")
        out.append(_INSN.pack(code, jt, jf, k))
    return b"".join(out)


def needed(default_action: int) -> bool:
    """Does a filter with this default action need the stub?"""
    action = default_action & 0xFFFF0000
    if action in (0x7FFF0000, 0x7FFC0000):  # ALLOW, LOG
        return False
    return default_action != RET_ERRNO | ENOSYS
