"""The ENOSYS stub, run on a small classic-BPF interpreter (no root)."""
from __future__ import annotations

import struct

import pytest

from ocirun.seccomp import compile_filter, enosys

try:
    from .test_seccomp_translate import X32, X86, X86_64, FakeLib
except ImportError:  # collected without the tests package
    from test_seccomp_translate import X32, X86, X86_64, FakeLib

EPERM_RET = 0x00050001
ENOSYS_RET = 0x00050026
AARCH64 = 0xC00000B7


def run_bpf(bpf: bytes, nr: int, arch: int) -> int:
    """Just enough of cBPF for seccomp stubs: ld abs, ja, jeq/jgt/jset k, ret k."""
    insns = [struct.unpack("=HBBI", bpf[i:i + 8]) for i in range(0, len(bpf), 8)]
    data = struct.pack("=iI", nr, arch) + bytes(56)
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x05:
            pc += k
        elif code in (0x15, 0x25, 0x45):
            cond = {0x15: acc == k, 0x25: acc > k, 0x45: bool(acc & k)}[code]
            pc += jt if cond else jf
        elif code == 0x06:
            return k
        else:  # pragma: no cover
            raise AssertionError(f"opcode {code:#x}")


ORIGINAL = struct.pack("=HBBI", 0x06, 0, 0, EPERM_RET)  # "ret ERRNO(EPERM)"


def test_single_arch():
    prog = enosys.stub({AARCH64: 300}) + ORIGINAL
    assert run_bpf(prog, 300, AARCH64) == EPERM_RET
    assert run_bpf(prog, 301, AARCH64) == ENOSYS_RET
    assert run_bpf(prog, -1, AARCH64) == ENOSYS_RET          # unsigned compare, like the kernel's
    assert run_bpf(prog, 1000, X86_64) == EPERM_RET           # another arch: the original decides


def test_x86_64_x32_and_x86():
    prog = enosys.stub({X86_64: 449, X32: 0x40000000 | 447, X86: 440}) + ORIGINAL
    assert run_bpf(prog, 449, X86_64) == EPERM_RET
    assert run_bpf(prog, 450, X86_64) == ENOSYS_RET
    assert run_bpf(prog, 0x40000000 | 447, X86_64) == EPERM_RET    # x32 call under AUDIT_ARCH_X86_64
    assert run_bpf(prog, 0x40000000 | 448, X86_64) == ENOSYS_RET
    assert run_bpf(prog, 441, X86) == ENOSYS_RET
    assert run_bpf(prog, 5, X86) == EPERM_RET


def test_x86_64_without_x32():
    prog = enosys.stub({X86_64: 449}) + ORIGINAL
    assert run_bpf(prog, 0x40000000 | 500, X86_64) == EPERM_RET    # left to libseccomp's x32 handling
    assert run_bpf(prog, 500, X86_64) == ENOSYS_RET


@pytest.mark.parametrize("default,expect", [
    ("SCMP_ACT_ERRNO", True), ("SCMP_ACT_KILL", True), ("SCMP_ACT_KILL_PROCESS", True), ("SCMP_ACT_TRAP", True),
    ("SCMP_ACT_ALLOW", False), ("SCMP_ACT_LOG", False),
])
def test_when_needed(default, expect):
    from ocirun.seccomp.translate import ACTIONS
    base, datum = ACTIONS[default]
    assert enosys.needed(base | (1 if datum else 0)) is expect
    assert enosys.needed(0x00050000 | 38) is False                 # already ENOSYS (Podman's profile)


def test_compile_prepends_the_stub_with_per_arch_maxima():
    filt = compile_filter({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                           "syscalls": [{"names": ["read", "mkdir", "clone3", "no_such"], "action": "SCMP_ACT_ALLOW"}]},
                          backend=FakeLib())
    stub = enosys.stub({X86_64: 435, X86: 435, X32: 0x40000000 | 435})
    assert filt.bpf.startswith(stub) and len(filt.bpf) == len(stub) + 8
    assert run_bpf(filt.bpf, 436, X86_64) == ENOSYS_RET
    assert run_bpf(filt.bpf, 435, X86) == 0x7FFF0000               # the fake's program: ret ALLOW


def test_no_stub_for_permissive_default():
    filt = compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}, backend=FakeLib())
    assert filt.instructions == 1
