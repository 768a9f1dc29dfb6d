"""Pure translation: the spec's ``linux.seccomp`` object → an ordered list of libseccomp operations.

No I/O and no libseccomp here: everything that can be decided from the JSON
alone is decided here (and every mistake reported with the JSON path of the
field), so that the unit tests cover it without root and without the library.
What needs libseccomp (syscall name → number, arch support, BPF generation)
happens in :mod:`ocirun.seccomp.compile`, which replays the :class:`Plan`.

The tables below are the one source for ``features`` (actions, operators,
architectures, flags).  Their values are libseccomp's ``SCMP_ACT_*``,
``SCMP_ARCH_*`` (= the kernel's ``AUDIT_ARCH_*``) and ``SCMP_CMP_*``, and the
kernel's ``SECCOMP_FILTER_FLAG_*``.

Semantics, following runc (``libcontainer/seccomp/seccomp_linux.go``) where
the spec is silent:

* ``errnoRet`` / ``defaultErrnoRet`` default to ``EPERM`` for ``SCMP_ACT_ERRNO``
  and ``SCMP_ACT_TRACE``; with any other action they are an error (the spec:
  "the runtime MUST print an error and fail").
* ``SCMP_ACT_KILL`` is ``SCMP_ACT_KILL_THREAD`` (libseccomp's alias).
* A rule's ``args`` are ANDed in one libseccomp rule.  libseccomp refuses two
  comparisons on the same argument in one rule, so when an index repeats the
  rule is split into one rule per comparison, i.e. the comparisons are ORed
  (runc's historical behaviour, which Docker's profile relies on).
* ``valueTwo`` is the datum of ``SCMP_CMP_MASKED_EQ`` (``(arg & value) == valueTwo``)
  and is ignored by the other operators.
* A rule whose action equals the default action is dropped (libseccomp would
  refuse it); an unknown syscall name is skipped with a warning (the name may
  be newer than the installed libseccomp), but an unknown action, operator,
  architecture or flag is an error.
* Syscalls numbered above every syscall the profile names get ENOSYS instead
  of a restrictive default action (:mod:`.enosys`, as runc's patchbpf).
* ``SCMP_ACT_NOTIFY`` needs ``listenerPath``; it is refused as the default
  action and for the syscalls the init stage needs after loading the filter to
  hand the listener fd to the runtime (:data:`NOTIFY_FORBIDDEN`), which would
  otherwise deadlock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SeccompError
from .enosys import needed as enosys_needed
from .model import check_listener

EPERM = 1
MAX_ARGS = 6
U64_MAX = (1 << 64) - 1

# --- actions: libseccomp SCMP_ACT_* (equal to the kernel's SECCOMP_RET_*) -------------------
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

#: spec name → (base value, takes a 16-bit errno/trace datum)
ACTIONS: dict[str, tuple[int, bool]] = {
    "SCMP_ACT_KILL": (ACT_KILL_THREAD, False),
    "SCMP_ACT_KILL_PROCESS": (ACT_KILL_PROCESS, False),
    "SCMP_ACT_KILL_THREAD": (ACT_KILL_THREAD, False),
    "SCMP_ACT_TRAP": (ACT_TRAP, False),
    "SCMP_ACT_ERRNO": (ACT_ERRNO, True),
    "SCMP_ACT_TRACE": (ACT_TRACE, True),
    "SCMP_ACT_ALLOW": (ACT_ALLOW, False),
    "SCMP_ACT_LOG": (ACT_LOG, False),
    "SCMP_ACT_NOTIFY": (ACT_NOTIFY, False),
}

# --- operators: libseccomp SCMP_CMP_* -------------------------------------------------------
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# --- architectures: libseccomp SCMP_ARCH_* = kernel AUDIT_ARCH_* ----------------------------
_64 = 0x80000000
_LE = 0x40000000
_N32 = 0x20000000
ARCHES: dict[str, int] = {
    "SCMP_ARCH_X86": 3 | _LE,
    "SCMP_ARCH_X86_64": 62 | _64 | _LE,
    "SCMP_ARCH_X32": 62 | _LE,
    "SCMP_ARCH_ARM": 40 | _LE,
    "SCMP_ARCH_AARCH64": 183 | _64 | _LE,
    "SCMP_ARCH_MIPS": 8,
    "SCMP_ARCH_MIPS64": 8 | _64,
    "SCMP_ARCH_MIPS64N32": 8 | _64 | _N32,
    "SCMP_ARCH_MIPSEL": 8 | _LE,
    "SCMP_ARCH_MIPSEL64": 8 | _64 | _LE,
    "SCMP_ARCH_MIPSEL64N32": 8 | _64 | _LE | _N32,
    "SCMP_ARCH_PPC": 20,
    "SCMP_ARCH_PPC64": 21 | _64,
    "SCMP_ARCH_PPC64LE": 21 | _64 | _LE,
    "SCMP_ARCH_S390": 22,
    "SCMP_ARCH_S390X": 22 | _64,
    "SCMP_ARCH_PARISC": 15,
    "SCMP_ARCH_PARISC64": 15 | _64,
    "SCMP_ARCH_RISCV64": 243 | _64 | _LE,
    "SCMP_ARCH_LOONGARCH64": 258 | _64 | _LE,
    "SCMP_ARCH_M68K": 4,
    "SCMP_ARCH_SH": 42 | _LE,
    "SCMP_ARCH_SHEB": 42,
}

# --- seccomp(2) filter flags (their numbers: ocirun.kernel.constants, which loads no ctypes) ---
from ..kernel.constants import SECCOMP_FILTER_FLAG_LOG as FLAG_LOG  # noqa: E402
from ..kernel.constants import SECCOMP_FILTER_FLAG_NEW_LISTENER as FLAG_NEW_LISTENER  # noqa: E402
from ..kernel.constants import SECCOMP_FILTER_FLAG_SPEC_ALLOW as FLAG_SPEC_ALLOW  # noqa: E402
from ..kernel.constants import SECCOMP_FILTER_FLAG_TSYNC as FLAG_TSYNC  # noqa: E402
from ..kernel.constants import SECCOMP_FILTER_FLAG_TSYNC_ESRCH as FLAG_TSYNC_ESRCH  # noqa: E402
from ..kernel.constants import SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as FLAG_WAIT_KILLABLE_RECV  # noqa: E402

#: the flags a config may name (the runtime adds NEW_LISTENER and TSYNC_ESRCH itself)
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

#: syscalls that must not be SCMP_ACT_NOTIFY: between loading the filter and execve the
#: init stage sends the listener fd to the runtime (sendmsg) and may log (write).
NOTIFY_FORBIDDEN = frozenset({"write", "sendmsg"})

#: above this many rules, ask libseccomp for its binary-tree layout (runc's threshold).
OPTIMIZE_THRESHOLD = 32


@dataclass(frozen=True)
class ArgCmp:
    index: int
    op: int
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Rule:
    field: str          # JSON path of the syscall name, for messages
    name: str           # syscall name, resolved by libseccomp at compile time
    action: int         # full libseccomp action (with errno/trace datum)
    args: tuple[ArgCmp, ...] = ()


@dataclass
class Plan:
    default_action: int
    arches: list[tuple[str, int]] = field(default_factory=list)   # (field, SCMP_ARCH value)
    flags: int = 0
    optimize: int = 0                                             # 0 or 2 (binary tree)
    rules: list[Rule] = field(default_factory=list)
    needs_listener: bool = False
    warnings: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)                # every syscall named, in order
    enosys: bool = False                                          # prepend the ENOSYS stub


def _where(path: str) -> str:
    return f"linux.seccomp.{path}" if path else "linux.seccomp"


def _fail(path: str, msg: str) -> SeccompError:
    return SeccompError(f"{_where(path)}: {msg}")


def _uint(value, path: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an unsigned integer, not {value!r}")
    if not 0 <= value <= maximum:
        raise _fail(path, f"{value} out of range (0-{maximum})")
    return value


def _str(value, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, not {value!r}")
    return value


def _list(value, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(path, f"must be an array, not {type(value).__name__}")
    return value


def action_value(name, errno_ret, path: str, errno_path: str) -> int:
    """The libseccomp action for the spec's action name and optional errnoRet."""
    name = _str(name, path)
    try:
        base, takes_datum = ACTIONS[name]
    except KeyError:
        raise _fail(path, f'unknown action "{name}"') from None
    if not takes_datum:
        if errno_ret is not None:
            raise _fail(errno_path, f"not supported with action {name}")
        return base
    datum = EPERM if errno_ret is None else _uint(errno_ret, errno_path, 0xFFFF)
    return base | datum


def translate(seccomp: dict) -> Plan:
    """Check ``seccomp`` and turn it into a :class:`Plan`; raise SeccompError naming the field."""
    if not isinstance(seccomp, dict):
        raise _fail("", "must be an object")
    if "defaultAction" not in seccomp:
        raise _fail("defaultAction", "required")
    default = action_value(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"),
                           "defaultAction", "defaultErrnoRet")
    if default == ACT_NOTIFY:
        raise _fail("defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    plan = Plan(default_action=default, enosys=enosys_needed(default))

    for i, arch in enumerate(_list(seccomp.get("architectures"), "architectures")):
        path = f"architectures[{i}]"
        arch = _str(arch, path)
        if arch not in ARCHES:
            raise _fail(path, f'unknown architecture "{arch}"')
        plan.arches.append((_where(path), ARCHES[arch]))

    wait_killable = None
    for i, flag in enumerate(_list(seccomp.get("flags"), "flags")):
        path = f"flags[{i}]"
        flag = _str(flag, path)
        if flag not in FLAGS:
            raise _fail(path, f'unknown flag "{flag}"')
        if FLAGS[flag] == FLAG_WAIT_KILLABLE_RECV:
            wait_killable = path
        plan.flags |= FLAGS[flag]

    for i, call in enumerate(_list(seccomp.get("syscalls"), "syscalls")):
        _translate_call(plan, call, f"syscalls[{i}]")

    if plan.needs_listener:
        plan.flags |= FLAG_NEW_LISTENER
        if plan.flags & FLAG_TSYNC:
            # TSYNC and NEW_LISTENER together are refused unless failures report ESRCH.
            plan.flags |= FLAG_TSYNC_ESRCH
    elif wait_killable:
        plan.flags &= ~FLAG_WAIT_KILLABLE_RECV
        plan.warnings.append(f"{_where(wait_killable)}: ignored, no rule uses SCMP_ACT_NOTIFY")
    if len(plan.rules) > OPTIMIZE_THRESHOLD:
        plan.optimize = 2
    check_listener(seccomp, plan.needs_listener)
    return plan


def _translate_call(plan: Plan, call, path: str) -> None:
    if not isinstance(call, dict):
        raise _fail(path, "must be an object")
    names = _list(call.get("names"), f"{path}.names")
    if not names:
        raise _fail(f"{path}.names", "must contain at least one syscall name")
    if "action" not in call:
        raise _fail(f"{path}.action", "required")
    action = action_value(call["action"], call.get("errnoRet"), f"{path}.action", f"{path}.errnoRet")

    args = []
    counts = [0] * MAX_ARGS
    for j, arg in enumerate(_list(call.get("args"), f"{path}.args")):
        apath = f"{path}.args[{j}]"
        if not isinstance(arg, dict):
            raise _fail(apath, "must be an object")
        for key in ("index", "value", "op"):
            if key not in arg:
                raise _fail(f"{apath}.{key}", "required")
        index = _uint(arg["index"], f"{apath}.index", MAX_ARGS - 1)
        op = _str(arg["op"], f"{apath}.op")
        if op not in OPERATORS:
            raise _fail(f"{apath}.op", f'unknown operator "{op}"')
        value = _uint(arg["value"], f"{apath}.value", U64_MAX)
        value_two = _uint(arg.get("valueTwo", 0), f"{apath}.valueTwo", U64_MAX)
        counts[index] += 1
        args.append(ArgCmp(index, OPERATORS[op], value, value_two))

    # One rule (AND) unless an argument index repeats: then one rule per comparison (OR).
    groups = [tuple(args)] if max(counts) <= 1 else [(a,) for a in args]

    for k, name in enumerate(names):
        npath = f"{path}.names[{k}]"
        name = _str(name, npath)
        if not name:
            raise _fail(npath, "empty syscall name")
        plan.names.append(name)
        if action == ACT_NOTIFY:
            if name in NOTIFY_FORBIDDEN:
                raise _fail(npath, f"SCMP_ACT_NOTIFY cannot be used for the {name} syscall "
                                   "(the runtime needs it to hand over the listener)")  # runc's words
            plan.needs_listener = True
        if action == plan.default_action:
            continue  # redundant with the default; libseccomp would refuse it
        for group in groups:
            plan.rules.append(Rule(_where(npath), name, action, group))
