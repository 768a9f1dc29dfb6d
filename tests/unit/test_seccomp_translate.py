"""linux.seccomp → libseccomp calls, on a recording fake of the library (no root, no libseccomp)."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from ocirun.errors import SeccompError
from ocirun.seccomp import CompiledFilter, compile_filter, translate as T

KILL_PROCESS, KILL_THREAD, TRAP, ERRNO = 0x80000000, 0x00000000, 0x00030000, 0x00050000
NOTIFY, TRACE, LOG, ALLOW = 0x7FC00000, 0x7FF00000, 0x7FFC0000, 0x7FFF0000
NE, LT, LE, EQ, GE, GT, MASKED_EQ = range(1, 8)
X86_64, X86, X32 = 0xC000003E, 0x40000003, 0x4000003E

#: Docker's default profile, from the shared folder beside the repository (skipped when absent)
DOCKER = str(Path(__file__).resolve().parents[3] / "shared" / "client-configs" / "docker-run-config.json")


class FakeLib:
    """Records the libseccomp calls in order; knows a handful of x86_64 syscall numbers."""

    NRS = {"read": 0, "write": 1, "open": 2, "close": 3, "mkdir": 83, "mkdirat": 258, "getppid": 110,
           "personality": 135, "umask": 95, "socketcall": -101, "clone3": 435, "sendmsg": 46}

    def __init__(self, fail_arch=(), fail_rule=()):
        self.calls = []
        self.fail_arch = set(fail_arch)
        self.fail_rule = set(fail_rule)

    def version(self):
        return "9.9.9"

    def init(self, default_action):
        self.calls.append(("init", default_action))

    def arch_add(self, arch):
        if arch in self.fail_arch:
            raise OSError(errno.EINVAL, "Invalid argument")
        self.calls.append(("arch_add", arch))

    def set_optimize(self, level):
        self.calls.append(("optimize", level))

    def resolve(self, name):
        self.calls.append(("resolve", name))
        return self.NRS.get(name)

    X86_NRS = {"read": 3, "write": 4, "mkdir": 39, "socketcall": 102, "clone3": 435}

    def native_arch(self):
        return X86_64

    def resolve_arch(self, arch, name):
        nr = {X86_64: self.NRS, X86: self.X86_NRS}.get(arch, {}).get(name)
        if arch == X32 and self.NRS.get(name, -1) >= 0:
            nr = self.NRS[name] | 0x40000000
        return nr if nr is not None and nr >= 0 else None

    def rule_add(self, action, nr, args):
        if nr in self.fail_rule:
            raise OSError(errno.EEXIST, "File exists")
        self.calls.append(("rule_add", action, nr, tuple((a.index, a.op, a.value, a.value_two) for a in args)))

    def export_bpf(self):
        self.calls.append(("export",))
        return b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # ret ALLOW

    def rules(self):
        return [c[1:] for c in self.calls if c[0] == "rule_add"]


def run(seccomp, lib=None):
    lib = lib or FakeLib()
    filt = compile_filter(seccomp, backend=lib)
    return filt, lib


def error_of(seccomp) -> str:
    with pytest.raises(SeccompError) as ei:
        run(seccomp)
    return str(ei.value)


# --- the whole sequence ---------------------------------------------------------------------
def test_exact_call_sequence():
    filt, lib = run({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
        ],
    })
    assert lib.calls == [
        ("init", ERRNO | 38),
        ("arch_add", X86_64), ("arch_add", X86), ("arch_add", X32),
        ("resolve", "read"), ("rule_add", ALLOW, 0, ()),
        ("resolve", "write"), ("rule_add", ALLOW, 1, ()),
        ("resolve", "personality"), ("rule_add", ALLOW, 135, ((0, EQ, 8, 0),)),
        ("resolve", "mkdir"), ("rule_add", ERRNO | 42, 83, ()),
        ("export",),
    ]
    assert filt == CompiledFilter(b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0, False, [])


# --- actions and errnoRet -------------------------------------------------------------------
@pytest.mark.parametrize("name,value", [
    ("SCMP_ACT_KILL", KILL_THREAD), ("SCMP_ACT_KILL_PROCESS", KILL_PROCESS),
    ("SCMP_ACT_KILL_THREAD", KILL_THREAD), ("SCMP_ACT_TRAP", TRAP), ("SCMP_ACT_ERRNO", ERRNO | errno.EPERM),
    ("SCMP_ACT_TRACE", TRACE | errno.EPERM), ("SCMP_ACT_LOG", LOG),
])
def test_every_action(name, value):
    _, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": name}]})
    assert lib.rules() == [(value, 83, ())]


def test_every_default_action():
    for name, (base, datum) in T.ACTIONS.items():
        if name == "SCMP_ACT_NOTIFY":
            continue
        _, lib = run({"defaultAction": name})
        assert lib.calls[0] == ("init", base | (errno.EPERM if datum else 0))


def test_notify_action_and_listener_flag():
    filt, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                     "listenerMetadata": "hello",
                     "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    assert lib.rules() == [(NOTIFY, 83, ())]
    assert filt.needs_listener and filt.flags == T.FLAG_NEW_LISTENER


def test_errno_ret_values():
    _, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
        {"names": ["umask"], "action": "SCMP_ACT_TRACE", "errnoRet": 1234},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ]})
    assert lib.rules() == [(ERRNO, 83, ()), (TRACE | 1234, 95, ()), (ERRNO | 38, 435, ())]


def test_default_errno_ret():
    _, lib = run({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7})
    assert lib.calls[0] == ("init", TRACE | 7)


def test_errno_ret_refused_for_actions_without_errno():
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL"},
        {"names": ["mkdir"], "action": "SCMP_ACT_LOG", "errnoRet": 1}]}) == \
        "linux.seccomp.syscalls[1].errnoRet: not supported with action SCMP_ACT_LOG"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}) == \
        "linux.seccomp.defaultErrnoRet: not supported with action SCMP_ACT_ALLOW"


def test_errno_ret_range():
    assert error_of({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}) == \
        "linux.seccomp.defaultErrnoRet: 70000 out of range (0-65535)"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]}) == \
        "linux.seccomp.syscalls[0].errnoRet: -1 out of range (0-65535)"


def test_rule_equal_to_default_is_dropped():
    _, lib = run({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},                  # = default (EPERM)
        {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},   # different errno: kept
    ]})
    assert lib.rules() == [(ERRNO | 2, 95, ())]


# --- arguments ------------------------------------------------------------------------------
@pytest.mark.parametrize("op,value", [("SCMP_CMP_NE", NE), ("SCMP_CMP_LT", LT), ("SCMP_CMP_LE", LE),
                                      ("SCMP_CMP_EQ", EQ), ("SCMP_CMP_GE", GE), ("SCMP_CMP_GT", GT)])
def test_every_operator(op, value):
    _, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0o22, "op": op}]}]})
    assert lib.rules() == [(ERRNO | 1, 95, ((0, value, 0o22, 0),))]


def test_masked_eq_uses_value_two():
    _, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["open"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 0o100, "valueTwo": 0o100, "op": "SCMP_CMP_MASKED_EQ"}]}]})
    assert lib.rules() == [(ERRNO | 1, 2, ((1, MASKED_EQ, 0o100, 0o100),))]


def test_distinct_indexes_are_anded_in_one_rule():
    _, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["open", "mkdir"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 2 ** 64 - 1, "valueTwo": 0, "op": "SCMP_CMP_NE"}]}]})
    both = ((0, EQ, 1, 0), (2, NE, 2 ** 64 - 1, 0))
    assert lib.rules() == [(ERRNO | 1, 2, both), (ERRNO | 1, 83, both)]


def test_repeated_index_splits_into_ored_rules():
    _, lib = run({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 3, "op": "SCMP_CMP_GT"}]}]})
    assert lib.rules() == [(ALLOW, 135, ((0, EQ, 0, 0),)), (ALLOW, 135, ((0, EQ, 8, 0),)),
                           (ALLOW, 135, ((1, GT, 3, 0),))]


@pytest.mark.parametrize("arg,msg", [
    ({"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}, "args[0].index: 6 out of range (0-5)"),
    ({"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}, "args[0].value: -1 out of range (0-18446744073709551615)"),
    ({"index": 0, "value": 2 ** 64, "op": "SCMP_CMP_EQ"},
     "args[0].value: 18446744073709551616 out of range (0-18446744073709551615)"),
    ({"index": 0, "value": True, "op": "SCMP_CMP_EQ"}, "args[0].value: must be an unsigned integer, not True"),
    ({"index": 0, "value": 1, "op": "SCMP_CMP_EQ", "valueTwo": "x"},
     "args[0].valueTwo: must be an unsigned integer, not 'x'"),
    ({"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}, 'args[0].op: unknown operator "SCMP_CMP_FOO"'),
    ({"index": 0, "value": 1}, "args[0].op: required"),
])
def test_bad_args(arg, msg):
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]}) == f"linux.seccomp.syscalls[0].{msg}"


# --- names ----------------------------------------------------------------------------------
def test_unknown_syscall_is_skipped_with_a_warning():
    filt, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["no_such_call"], "action": "SCMP_ACT_LOG"}]})
    assert lib.rules() == [(ERRNO | 1, 83, ())]
    assert filt.warnings == ['linux.seccomp.syscalls[0].names[1]: unknown syscall "no_such_call" skipped']
    assert [c for c in lib.calls if c[0] == "resolve"] == [("resolve", "mkdir"), ("resolve", "no_such_call")]


def test_pseudo_syscall_numbers_are_passed_through():
    # libseccomp gives syscalls absent from the native arch (socketcall on x86_64) a negative
    # number that it translates for the other arches: not "unknown".
    filt, lib = run({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                     "syscalls": [{"names": ["socketcall"], "action": "SCMP_ACT_ERRNO"}]})
    assert lib.rules() == [(ERRNO | 1, -101, ())] and filt.warnings == []


def test_names_errors():
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]}) \
        == "linux.seccomp.syscalls[0].names: must contain at least one syscall name"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [""], "action": "SCMP_ACT_LOG"}]}) \
        == "linux.seccomp.syscalls[0].names[0]: empty syscall name"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [3], "action": "SCMP_ACT_LOG"}]}) \
        == "linux.seccomp.syscalls[0].names[0]: must be a string, not 3"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}) \
        == "linux.seccomp.syscalls[0].action: required"


def test_rule_add_failure_names_the_field():
    with pytest.raises(SeccompError) as ei:
        run({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["umask", "mkdir"], "action": "SCMP_ACT_LOG"}]}, FakeLib(fail_rule={83}))
    assert str(ei.value) == 'linux.seccomp.syscalls[0].names[1]: adding the rule for "mkdir": File exists'


# --- unknown tokens are errors --------------------------------------------------------------
def test_unknown_action():
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["c"], "action": "SCMP_ACT_ALLOW"}, {"names": ["d"], "action": "SCMP_ACT_FOO"}]}) == \
        'linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"'
    assert error_of({"defaultAction": "ALLOW"}) == 'linux.seccomp.defaultAction: unknown action "ALLOW"'
    assert error_of({}) == "linux.seccomp.defaultAction: required"
    assert error_of([]) == "linux.seccomp: must be an object"


def test_unknown_arch():
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}) \
        == 'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"'


def test_arch_unsupported_by_libseccomp():
    with pytest.raises(SeccompError) as ei:
        run({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_M68K"]}, FakeLib(fail_arch={4}))
    assert str(ei.value) == ("linux.seccomp.architectures[0]: not supported by libseccomp 9.9.9: "
                             "Invalid argument")


def test_unknown_flag():
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}) \
        == 'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"'


# --- flags ----------------------------------------------------------------------------------
def test_flags():
    filt, _ = run({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]})
    assert filt.flags == 1 | 2 | 4 and not filt.needs_listener


def test_wait_killable_recv_without_notify_is_dropped():
    filt, _ = run({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
    assert filt.flags == 0
    assert filt.warnings == ["linux.seccomp.flags[0]: ignored, no rule uses SCMP_ACT_NOTIFY"]


def test_notify_flags():
    filt, _ = run({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                   "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    # TSYNC with NEW_LISTENER is only accepted with TSYNC_ESRCH
    assert filt.flags == T.FLAG_WAIT_KILLABLE_RECV | T.FLAG_TSYNC | T.FLAG_NEW_LISTENER | T.FLAG_TSYNC_ESRCH


def test_flag_values_match_the_kernel_seam():
    from ocirun.kernel import seccomp as k
    assert T.FLAGS == {"SECCOMP_FILTER_FLAG_TSYNC": k.SECCOMP_FILTER_FLAG_TSYNC,
                       "SECCOMP_FILTER_FLAG_LOG": k.SECCOMP_FILTER_FLAG_LOG,
                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW": k.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                       "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": k.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV}
    assert (T.FLAG_NEW_LISTENER, T.FLAG_TSYNC_ESRCH) == (k.SECCOMP_FILTER_FLAG_NEW_LISTENER,
                                                         k.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    assert (T.ACT_ALLOW, T.ACT_NOTIFY, T.ACT_KILL_PROCESS) == (k.SECCOMP_RET_ALLOW, k.SECCOMP_RET_USER_NOTIF,
                                                               k.SECCOMP_RET_KILL_PROCESS)
    # ioctl numbers as in <linux/seccomp.h> on x86_64
    assert k.SECCOMP_IOCTL_NOTIF_RECV == 0xC0502100
    assert k.SECCOMP_IOCTL_NOTIF_SEND == 0xC0182101
    assert k.SECCOMP_IOCTL_NOTIF_ID_VALID == 0x40082102


# --- notify rules ---------------------------------------------------------------------------
def test_notify_rules_errors():
    assert error_of({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}) == \
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                     "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}) == \
        ("linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall "
         "(the runtime needs it to hand over the listener)")
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}) == \
        "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY"
    assert error_of({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}) == \
        "linux.seccomp.listenerMetadata: must not be set without listenerPath"


def test_listener_path_without_notify_is_ignored():
    filt, _ = run({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a", "listenerMetadata": "m"})
    assert filt.flags == 0 and not filt.needs_listener


# --- optimisation ---------------------------------------------------------------------------
def test_binary_tree_above_32_rules():
    names = list(FakeLib.NRS)
    few = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}
    _, lib = run(few)
    assert ("optimize", 2) not in lib.calls
    many = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": names * 3, "action": "SCMP_ACT_ALLOW"}]}
    _, lib = run(many)
    assert lib.calls[1] == ("optimize", 2)


# --- the compiled object --------------------------------------------------------------------
def test_compiled_filter_json_roundtrip():
    f = CompiledFilter(b"\x06\x00\x00\x00\x00\x00\xff\x7f" * 3, 9, True, ["w"])
    assert CompiledFilter.from_json(json.loads(json.dumps(f.to_json()))) == f
    with pytest.raises(ValueError):
        CompiledFilter.from_json({"bpf": "AAAA", "flags": 0})


# --- the real libseccomp (no root needed to compile) ----------------------------------------
def _docker_profile():
    if not os.path.exists(DOCKER):
        pytest.skip("no Docker client config")
    with open(DOCKER) as f:
        return json.load(f)["linux"]["seccomp"]


def test_real_libseccomp_docker_profile_is_deterministic():
    pytest.importorskip("pyseccomp")
    profile = _docker_profile()
    a = compile_filter(profile)
    b = compile_filter(json.loads(json.dumps(profile)))
    assert a.bpf == b.bpf and a.instructions > 300 and a.flags == 0
    a.check()


def test_real_libseccomp_small_profile():
    pytest.importorskip("pyseccomp")
    f = compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "surely_not_a_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]})
    assert f.instructions > 3
    assert f.warnings == ['linux.seccomp.syscalls[0].names[1]: unknown syscall "surely_not_a_syscall" skipped']
    # the errno datum appears in the program as a `ret` constant
    assert (ERRNO | 42).to_bytes(4, "little") in f.bpf
