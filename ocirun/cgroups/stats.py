"""Statistics shaped as the ``data`` object of runc's ``events --stats`` (runc ``types.Stats``).

Field names and units follow runc: cpu times in nanoseconds, memory in bytes; ``omitempty`` fields of
runc's types are left out when zero, so the JSON reads the same as runc's.
"""
from __future__ import annotations

import errno
import os

from .base import read, read_int, read_keyed
from ..errors import CgroupError

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UINT64_MAX = (1 << 64) - 1


def _prune(d):
    """Drop the zero-valued ``omitempty`` fields (everything except the keys runc always prints)."""
    keep = {"limit", "failcnt", "kernel", "user"}
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            if k != "raw":   # raw counters are reported as the kernel gives them, zeros included
                v = _prune(v)
            if v in (0, None, [], {}) and k not in keep:
                continue
            out[k] = v
        return out
    if isinstance(d, list):
        return [_prune(x) for x in d]
    return d


def _safe(fn, *args, default=None):
    try:
        return fn(*args)
    except CgroupError as e:
        if getattr(e, "errno", None) in (errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP, None):
            return default
        raise


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def _cpu_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def _blkio_entries(text: str) -> list[dict]:
    """v1 ``8:0 Read 4096`` lines (and ``Total N``, skipped) → runc BlkioEntry objects."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            ma, mi = parts[0].split(":")
            out.append({"major": int(ma), "minor": int(mi), "op": parts[1], "value": int(parts[2])})
        elif len(parts) == 2 and ":" in parts[0]:   # sectors / time files have no op
            ma, mi = parts[0].split(":")
            out.append({"major": int(ma), "minor": int(mi), "op": "", "value": int(parts[1])})
    return out


def _limit(v: int) -> int:
    return _UINT64_MAX if v < 0 else v


# ---- v1 ------------------------------------------------------------------------------------------------
_BLKIO_FULL = (("sectorsRecursive", "sectors_recursive"), ("ioServiceTimeRecursive", "io_service_time_recursive"),
               ("ioWaitTimeRecursive", "io_wait_time_recursive"), ("ioMergedRecursive", "io_merged_recursive"),
               ("ioQueueRecursive", "io_queued_recursive"), ("ioTimeRecursive", "time_recursive"),
               ("ioServicedRecursive", "io_serviced_recursive"),
               ("ioServiceBytesRecursive", "io_service_bytes_recursive"))
_BLKIO_IO = (("ioServicedRecursive", "io_serviced_recursive"),
             ("ioServiceBytesRecursive", "io_service_bytes_recursive"))
# Which files carry the numbers depends on the I/O scheduler: BFQ's debug set, BFQ's basic set, CFQ's
# (kernels < 5.0), else only the throttling layer counts (every kernel; the only source with mq-deadline or
# none).  A group whose first file is missing or has no device line is skipped — BFQ's files exist but stay
# at "Total 0" when no disk uses BFQ (runc's orderedStats).
_BLKIO_GROUPS = (("blkio.bfq.", _BLKIO_FULL), ("blkio.bfq.", _BLKIO_IO), ("blkio.", _BLKIO_FULL),
                 ("blkio.throttle.", _BLKIO_IO),
                 ("blkio.throttle.", (("ioServicedRecursive", "io_serviced"),
                                      ("ioServiceBytesRecursive", "io_service_bytes"))))


def v1_blkio(d: str) -> dict:
    """The blkio part of the stats from the first file group that has entries."""
    for prefix, group in _BLKIO_GROUPS:
        out: dict = {}
        for i, (key, name) in enumerate(group):
            entries = _safe(lambda: _blkio_entries(read(d, prefix + name)), default=[])
            if not entries:
                if i == 0:
                    break          # this scheduler's files are not in use: try the next group
                return out         # runc stops at the first empty file of a group in use
            out[key] = entries
        else:
            return out
    return {}


def _v1_mem_entry(d: str, prefix: str) -> dict:
    p = f"memory.{prefix}." if prefix else "memory."
    e = {"limit": _safe(read_int, d, p + "limit_in_bytes", default=0),
         "usage": _safe(read_int, d, p + "usage_in_bytes", default=0),
         "max": _safe(read_int, d, p + "max_usage_in_bytes", default=0),
         "failcnt": _safe(read_int, d, p + "failcnt", default=0)}
    return e


def v1_stats(paths: dict[str, str]) -> dict:
    data: dict = {"cpu": {"usage": {}, "throttling": {}}, "cpuset": {}, "memory": {}, "pids": {},
                  "blkio": {}, "hugetlb": {}}
    d = paths.get("cpuacct")
    if d:
        u = data["cpu"]["usage"]
        u["total"] = _safe(read_int, d, "cpuacct.usage", default=0)
        u["percpu"] = _safe(lambda: _ints(read(d, "cpuacct.usage_percpu")), default=[])
        u["percpu_kernel"] = _safe(lambda: _ints(read(d, "cpuacct.usage_percpu_sys")), default=[])
        u["percpu_user"] = _safe(lambda: _ints(read(d, "cpuacct.usage_percpu_user")), default=[])
        st = _safe(read_keyed, d, "cpuacct.stat", default={})
        u["kernel"] = st.get("system", 0) * 1_000_000_000 // _CLOCK_TICKS
        u["user"] = st.get("user", 0) * 1_000_000_000 // _CLOCK_TICKS
    d = paths.get("cpu")
    if d:
        st = _safe(read_keyed, d, "cpu.stat", default={})
        data["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0),
                                     "throttledPeriods": st.get("nr_throttled", 0),
                                     "throttledTime": st.get("throttled_time", 0)}
    d = paths.get("cpuset")
    if d:
        cs = data["cpuset"]
        cs["cpus"] = _safe(lambda: _cpu_list(read(d, "cpuset.cpus")), default=[])
        cs["mems"] = _safe(lambda: _cpu_list(read(d, "cpuset.mems")), default=[])
        for k in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                  "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level"):
            cs[k] = _safe(read_int, d, "cpuset." + k, default=0)
    d = paths.get("memory")
    if d:
        raw = _safe(read_keyed, d, "memory.stat", default={})
        data["memory"] = {"cache": raw.get("cache", 0), "usage": _v1_mem_entry(d, ""),
                          "swap": _v1_mem_entry(d, "memsw"), "kernel": _v1_mem_entry(d, "kmem"),
                          "kernelTCP": _v1_mem_entry(d, "kmem.tcp"), "raw": raw}
        for k in ("usage", "swap", "kernel", "kernelTCP"):
            data["memory"][k]["limit"] = _limit(data["memory"][k]["limit"])
    d = paths.get("pids")
    if d:
        data["pids"] = {"current": _safe(read_int, d, "pids.current", default=0),
                        "limit": max(0, _safe(read_int, d, "pids.max", default=0))}
    d = paths.get("blkio")
    if d:
        data["blkio"] = v1_blkio(d)
    d = paths.get("hugetlb")
    if d:
        for name in sorted(os.listdir(d)):
            if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes") and ".rsvd." not in name:
                size = name[len("hugetlb."):-len(".usage_in_bytes")]
                data["hugetlb"][size] = {"usage": read_int(d, name),
                                         "max": _safe(read_int, d, f"hugetlb.{size}.max_usage_in_bytes", default=0),
                                         "failcnt": _safe(read_int, d, f"hugetlb.{size}.failcnt", default=0)}
    return _finish(data)


def _finish(data: dict) -> dict:
    out = _prune(data) | {"hugetlb": data["hugetlb"]}
    if "pids" in out and not out["pids"].get("limit"):
        out["pids"].pop("limit", None)      # runc: `json:"limit,omitempty"` for pids only
    return out


# ---- v2 ------------------------------------------------------------------------------------------------
def v2_stats(d: str) -> dict:
    data: dict = {"cpu": {"usage": {}, "throttling": {}}, "cpuset": {}, "memory": {}, "pids": {},
                  "blkio": {}, "hugetlb": {}}
    st = _safe(read_keyed, d, "cpu.stat", default={})
    data["cpu"]["usage"] = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                            "user": st.get("user_usec", 0) * 1000}
    data["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                                 "throttledTime": st.get("throttled_usec", 0) * 1000}
    cpus = _safe(read, d, "cpuset.cpus.effective")
    if cpus is not None:
        data["cpuset"] = {"cpus": _cpu_list(cpus),
                          "mems": _cpu_list(_safe(read, d, "cpuset.mems.effective", default=""))}
    if os.path.exists(os.path.join(d, "memory.current")):
        raw = _safe(read_keyed, d, "memory.stat", default={})
        events = _safe(read_keyed, d, "memory.events", default={})
        data["memory"] = {
            "cache": raw.get("file", 0),
            "usage": {"limit": _limit(_safe(read_int, d, "memory.max", default=-1)),
                      "usage": read_int(d, "memory.current"),
                      "max": _safe(read_int, d, "memory.peak", default=0),
                      "failcnt": events.get("max", 0)},
            "swap": {"limit": _limit(_safe(read_int, d, "memory.swap.max", default=-1)),
                     "usage": _safe(read_int, d, "memory.swap.current", default=0),
                     "max": _safe(read_int, d, "memory.swap.peak", default=0),
                     "failcnt": _safe(read_keyed, d, "memory.swap.events", default={}).get("max", 0)},
            "raw": raw,
        }
    if os.path.exists(os.path.join(d, "pids.current")):
        data["pids"] = {"current": read_int(d, "pids.current"),
                        "limit": max(0, _safe(read_int, d, "pids.max", default=0))}
    io = _safe(read, d, "io.stat")
    if io:
        sb, sv = [], []
        for line in io.splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            ma, mi = (int(x) for x in parts[0].split(":"))
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for key, op, lst in (("rbytes", "Read", sb), ("wbytes", "Write", sb), ("rios", "Read", sv),
                                 ("wios", "Write", sv)):
                if key in kv:
                    lst.append({"major": ma, "minor": mi, "op": op, "value": int(kv[key])})
        data["blkio"] = {"ioServiceBytesRecursive": sb, "ioServicedRecursive": sv}
    for name in sorted(os.listdir(d)):
        if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
            size = name[len("hugetlb."):-len(".current")]
            ev = _safe(read_keyed, d, f"hugetlb.{size}.events", default={})
            data["hugetlb"][size] = {"usage": read_int(d, name), "max": 0, "failcnt": ev.get("max", 0)}
    return _finish(data)
