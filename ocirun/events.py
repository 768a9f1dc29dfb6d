"""A running container's resource usage and OOM notices (`events`, `events --stats`), as runc reports them.

:func:`runc_stats` turns :meth:`ocirun.cgroups.Manager.stats` into runc 1.1's ``types.Stats``;
:func:`watch` yields runc's event records — ``{"type": "stats", "id": ..., "data": ...}`` every
interval and ``{"type": "oom", "id": ...}`` on each OOM — until the container stops.  Printing them
(one compact JSON document a line) is ocirun.commands.inspect's.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from .errors import OciError
from .state import STOPPED, StateDir, read_start_time, refresh

_CPUSET_KEYS = ("cpu_exclusive", "mems", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")
_BLKIO_KEYS = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
               "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive")


def runc_stats(s: dict) -> dict:
    """:meth:`Manager.stats` → runc 1.1's ``types.Stats`` as its JSON encoder prints it: the same keys in the
    same order, ``omitempty`` fields dropped when zero, the others always present (runc's
    convertLibcontainerStats step)."""
    def nz(d: dict, keys) -> dict:
        return {k: d[k] for k in keys if d.get(k)}

    cpu = s.get("cpu") or {}
    usage = cpu.get("usage") or {}
    out_cpu = {"usage": nz(usage, ("total", "percpu", "percpu_kernel", "percpu_user"))
               | {"kernel": usage.get("kernel", 0), "user": usage.get("user", 0)},
               "throttling": nz(cpu.get("throttling") or {}, ("periods", "throttledPeriods", "throttledTime"))}
    cs = s.get("cpuset") or {}
    out_cpuset = nz(cs, ("cpus",))
    for k in _CPUSET_KEYS:
        if k == "mems":
            out_cpuset |= nz(cs, ("mems",))
        else:
            out_cpuset[k] = cs.get(k, 0)
    mem = s.get("memory") or {}
    out_mem = nz(mem, ("cache",))
    for k in ("usage", "swap", "kernel", "kernelTCP"):
        e = mem.get(k) or {}
        out_mem[k] = {"limit": e.get("limit", 0)} | nz(e, ("usage", "max")) | {"failcnt": e.get("failcnt", 0)}
    if mem.get("raw"):
        out_mem["raw"] = dict(sorted(mem["raw"].items()))
    blkio = s.get("blkio") or {}
    out_blkio = {k: [nz(e, ("major", "minor", "op", "value")) for e in blkio[k]] for k in _BLKIO_KEYS
                 if blkio.get(k)}
    hugetlb = {size: nz(h, ("usage", "max")) | {"failcnt": h.get("failcnt", 0)}
               for size, h in sorted((s.get("hugetlb") or {}).items())}
    return {"cpu": out_cpu, "cpuset": out_cpuset, "memory": out_mem,
            "pids": nz(s.get("pids") or {}, ("current", "limit")), "blkio": out_blkio, "hugetlb": hugetlb,
            "intel_rdt": {}, "network_interfaces": None}


def _running(sd: StateDir):
    """The container's refreshed state and cgroup manager; runc's error once it has stopped."""
    from .cgroups import manager_of

    st = refresh(sd, sd.load())
    if st.status == STOPPED:
        raise OciError(f"container with id {st.id} is not running")
    return st, manager_of(st)


def stats(sd: StateDir) -> dict:
    """One runc stats object (``events --stats``' "data") of the container in ``sd``."""
    _st, mgr = _running(sd)
    return runc_stats(mgr.stats())


def watch(sd: StateDir, interval: float, on_error: Callable[[OciError], None] | None = None) -> Iterator[dict]:
    """runc's event records for the container in ``sd``, until it stops.  The checks (interval, status,
    cgroup) are made now; the records come as they happen.  A stats read that fails while the cgroup is
    still there goes to ``on_error`` (runc logs it and goes on)."""
    if interval <= 0:
        raise OciError("duration interval must be greater than 0")
    st, mgr = _running(sd)
    return _stream(sd, st, mgr, interval, on_error)


def _stream(sd: StateDir, st, mgr, interval: float, on_error) -> Iterator[dict]:
    """Stats every ``interval`` and an ``oom`` record on each OOM, until the container stops (its init exits
    or its cgroup goes away)."""
    import select
    import time

    from .kernel.process import HAVE_PIDFD, require_pidfd

    cid = st.id
    watcher = mgr.oom_events()
    pidfd = -1
    try:
        try:
            pidfd = require_pidfd(st.pid) if HAVE_PIDFD else -1
        except OSError:
            pidfd = -1
        if read_start_time(st.pid) != st.pid_start:
            return  # the init exited meanwhile
        poller = select.poll()
        poller.register(watcher.fileno(), select.POLLIN | select.POLLPRI | select.POLLERR)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        next_tick = time.monotonic() + interval
        while True:
            # without a pidfd, look at the init at least every half second
            left = max(0.0, next_tick - time.monotonic())
            timeout = left if pidfd >= 0 else min(left, 0.5)
            ready = {fd for fd, _ in poller.poll(int(timeout * 1000) + 1)}
            if pidfd in ready:
                return
            if watcher.fileno() in ready:
                if watcher.wait(0):
                    yield {"type": "oom", "id": cid}
                elif not os.path.isdir(mgr.path):
                    return  # the cgroup was removed
            if time.monotonic() >= next_tick:
                try:
                    cur = refresh(sd, sd.load())
                except OciError:
                    return  # deleted
                if cur.status == STOPPED:
                    return
                try:
                    data = runc_stats(mgr.stats())
                except OciError as e:
                    if not os.path.isdir(mgr.path):
                        return
                    if on_error is not None:
                        on_error(e)
                else:
                    yield {"type": "stats", "id": cid, "data": data}
                next_tick += interval
                if next_tick < time.monotonic():
                    next_tick = time.monotonic() + interval
            elif pidfd < 0 and read_start_time(st.pid) != st.pid_start:
                return
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        watcher.close()
