"""process.scheduler, process.ioPriority and process.execCPUAffinity (config.md).

Checked before any side effect (unknown policy/flag/class, bad CPU list), then
applied by the init and exec stages after `start`.  The scheduler and the I/O
priority are set while the stage still holds every capability (before seccomp,
the user switch and the capability sets, as runc does): a negative nice, a
real-time policy or IOPRIO_CLASS_RT need CAP_SYS_NICE (or CAP_SYS_ADMIN), which
the process itself may well not be given.  The CPU affinity needs no privilege and
is set last, so the runtime's own work is not pinned to the process's CPUs.
"""
from __future__ import annotations

import os

from .errors import ConfigError

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
               "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def parse_cpus(text: str) -> set[int]:
    """"0-3,7" → {0, 1, 2, 3, 7}."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(part)
        cpus.update(range(int(lo), int(hi if sep else lo) + 1))
    return cpus


def check_process_scheduling(p) -> None:
    s = p.scheduler
    if s:
        if s.get("policy") not in SCHED_POLICIES:
            raise ConfigError(f"config.json: process.scheduler.policy: unknown policy {s.get('policy')!r}")
        for f in s.get("flags") or []:
            if f not in SCHED_FLAGS:
                raise ConfigError(f"config.json: process.scheduler.flags: unknown flag {f!r}")
    io = p.ioPriority
    if io:
        if io.get("class") not in IOPRIO_CLASSES:
            raise ConfigError(f"config.json: process.ioPriority.class: unknown class {io.get('class')!r}")
        if not 0 <= int(io.get("priority", 0)) <= 7:
            raise ConfigError("config.json: process.ioPriority.priority: must be 0..7")
    aff = p.execCPUAffinity
    if aff:
        for key in ("initial", "final"):
            if aff.get(key):
                try:
                    cpus = parse_cpus(aff[key])
                except ValueError as e:
                    raise ConfigError(f"config.json: process.execCPUAffinity.{key}: bad CPU list part {e}") from None
                if not cpus & os.sched_getaffinity(0):
                    raise ConfigError(f"config.json: process.execCPUAffinity.{key}: no usable CPU in {aff[key]!r}")


def apply_priorities(p) -> None:
    """process.ioPriority and process.scheduler, for the calling process (kept across execve)."""
    from .kernel import linux as k

    if p.ioPriority:
        try:
            k.ioprio_set(IOPRIO_CLASSES[p.ioPriority["class"]], int(p.ioPriority.get("priority", 0)))
        except OSError as e:
            raise OSError(e.errno, f"process.ioPriority {p.ioPriority['class']}: {e.strerror}") from None
    s = p.scheduler
    if s:
        flags = 0
        for f in s.get("flags") or []:
            flags |= SCHED_FLAGS[f]
        try:
            k.sched_setattr(SCHED_POLICIES[s["policy"]], flags, int(s.get("nice", 0)), int(s.get("priority", 0)),
                            int(s.get("runtime", 0)), int(s.get("deadline", 0)), int(s.get("period", 0)))
        except OSError as e:
            raise OSError(e.errno, f"process.scheduler {s['policy']}: {e.strerror}") from None


def apply_cpu_affinity(p) -> None:
    """process.execCPUAffinity: ``final`` when given, else ``initial`` (the stage runs no more work
    of its own after this, so the two coincide for us)."""
    from .kernel import linux as k

    aff = p.execCPUAffinity
    if aff and aff.get("final"):
        k.sched_setaffinity(0, parse_cpus(aff["final"]))
    elif aff and aff.get("initial"):
        k.sched_setaffinity(0, parse_cpus(aff["initial"]))
