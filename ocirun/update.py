"""Change a running container's resource limits (`update`): its cgroup, and its resctrl schemata.

runc 1.1.5's rules: a zero means "leave as it is" for the fields where runc's value is a plain integer
(Docker sends every field, zeros included), kernel memory is warned about and ignored, and on cgroup v2
a swap limit alone is written together with the memory limit in force (memory.swap.max is swap minus
memory).  What was applied is kept in ``<statedir>/resources.json`` (runc keeps the merged resources in
its state.json), so a later update can fill in what a cgroup v2 write needs from earlier ones.
The flags and the ``--resources`` file are read by ocirun.commands.update.
"""
from __future__ import annotations

import contextlib
import json
import os

from .errors import NotRunning, OciError
from .state import STOPPED, StateDir, refresh, write_atomic

RESOURCES_FILE = "resources.json"
KERNEL_MEMORY_WARNING = "Kernel memory settings are ignored and will be removed"

#: The fields where a zero (or an empty string) means "leave as it is" (runc's plain integers; Docker sends
#: every one of them, zeros included).  Zero stays meaningful elsewhere (swappiness, cpu.idle, burst...).
UNSET_IF_ZERO = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"),
    "blockIO": ("weight", "leafWeight"),
    "pids": ("limit",),
}


@contextlib.contextmanager
def locked(sd: StateDir):
    """The container's lock and its refreshed state: ``with locked(sd) as st: ...``."""
    fd = sd.lock()
    try:
        yield refresh(sd, sd.load())
    finally:
        os.close(fd)


def prune_unchanged(r: dict) -> dict:
    """Drop the "unchanged" zeros (:data:`UNSET_IF_ZERO`), then sections left empty."""
    out = {}
    for section, v in r.items():
        if isinstance(v, dict) and section in UNSET_IF_ZERO:
            v = {k: x for k, x in v.items()
                 if not (k in UNSET_IF_ZERO[section] and (x is None or x == 0 or x == ""))}
            if not v:
                continue
        elif v is None:
            continue
        out[section] = v
    return out


def merge(base: dict, delta: dict) -> dict:
    out = dict(base)
    for k, v in delta.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "unified":
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def saved_resources(sd: StateDir) -> dict:
    """What earlier updates applied (``{}`` before the first)."""
    try:
        with open(os.path.join(sd.path, RESOURCES_FILE), "rb") as f:
            saved = json.loads(f.read())
        return saved if isinstance(saved, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def update(sd: StateDir, log, resources: dict, l3_cache_schema: str | None = None,
           mem_bw_schema: str | None = None) -> dict:
    """Apply ``resources`` (a LinuxResources object: only what changes) and the resctrl schemata to the
    container in ``sd``; return every resource any update has set so far.  NotRunning once stopped."""
    from .cgroups import manager_of

    mem = resources.get("memory") or {}
    if mem.get("kernel") or mem.get("kernelTCP"):
        log.warning(KERNEL_MEMORY_WARNING)
    if l3_cache_schema or mem_bw_schema:  # resctrl (ocirun.intelrdt), as runc
        from .intelrdt import update_schemata

        with locked(sd) as st:
            if st.status == STOPPED:
                raise NotRunning()
            st.intel_rdt = update_schemata(st.intel_rdt, st.id, st.pid, l3_cache_schema, mem_bw_schema)
            sd.save(st)
    delta = prune_unchanged(resources)
    if "memory" in delta:
        for key in ("kernel", "kernelTCP"):  # runc 1.1 ignores kernel memory on update
            delta["memory"].pop(key, None)
        if not delta["memory"]:
            del delta["memory"]
    with locked(sd) as st:
        if st.status == STOPPED:
            raise NotRunning()
        mgr = manager_of(st)
        saved = saved_resources(sd)
        apply = delta
        m = delta.get("memory") or {}
        if mgr.mode == "unified" and m.get("swap") and not m.get("limit"):
            # memory.swap.max is swap minus the memory limit: v2 needs the limit in force
            limit = (saved.get("memory") or {}).get("limit") or _current_v2_limit(mgr)
            if limit:
                apply = merge(delta, {"memory": {"limit": limit}})
        if apply:
            mgr.update(apply)
        kept = merge(saved, delta)
        write_atomic(os.path.join(sd.path, RESOURCES_FILE), json.dumps(kept).encode(), 0o600)
    return kept


def _current_v2_limit(mgr) -> int:
    from .cgroups.base import read_int

    try:
        v = read_int(mgr.path, "memory.max", default=-1)
    except OciError:
        return 0
    return v if v > 0 else 0
