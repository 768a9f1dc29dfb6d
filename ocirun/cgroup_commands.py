"""The commands that act on a container's cgroup: ``update``, ``pause``, ``resume``, ``ps``, ``events``.

Each is called from :mod:`ocirun.cli` as ``fn(runtime, args, flags, global_flags) -> exit code``.  The cgroup
work itself lives in :mod:`ocirun.cgroups` (a :class:`~ocirun.cgroups.Manager` reopened from the state);
this module is runc 1.1.5's command layer on top of it: argument rules, flag parsing, the status checks
with runc's wording, and runc's output shapes (``ps --format json``, ``events`` records).

``update`` keeps what it applied in ``<statedir>/resources.json`` (runc keeps the merged resources in its
state.json), so a later update can fill in what a cgroup v2 write needs from earlier ones.
"""
from __future__ import annotations

import json
import os
import re
import sys

from .cli import Usage
from .errors import ConfigError, InvalidState, NotRunning, OciError
from .state import CREATED, PAUSED, RUNNING, STOPPED, StateDir, refresh, write_atomic

RESOURCES_FILE = "resources.json"
KERNEL_MEMORY_WARNING = "Kernel memory settings are ignored and will be removed"


# ---- shared helpers ------------------------------------------------------------------------------------
def _open(rt, cid: str) -> StateDir:
    sd = StateDir(rt.root, cid)
    if not sd.exists():
        sd.load()  # raises ContainerNotFound with runc's wording
    return sd


def _manager(st):
    if not st.cgroup:
        raise OciError(f"container {st.id} has no cgroup recorded in its state")
    from .cgroups import from_state

    return from_state(st.cgroup)


def _locked(sd: StateDir):
    """The container's lock and its refreshed state: ``with _locked(sd) as st: ...``."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        fd = sd.lock()
        try:
            yield refresh(sd, sd.load())
        finally:
            os.close(fd)

    return cm()


def _warn(rt, msg: str) -> None:
    if rt.log is not None:
        rt.log.warning(msg)
    else:  # pragma: no cover - the CLI always passes a logger
        sys.stderr.write(f"ocirun: warning: {msg}\n")


def _emit(obj) -> None:
    """One JSON document per line, compact, as Go's json.Encoder writes it."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# ---- pause / resume ------------------------------------------------------------------------------------
def pause(rt, args: list[str], flags: dict, g: dict) -> int:
    sd = _open(rt, args[0])
    with _locked(sd) as st:
        # runc: only a running or created container can be paused ("container not running" otherwise,
        # also for one that is already paused)
        if st.status not in (RUNNING, CREATED):
            raise NotRunning()
        mgr = _manager(st)
        if mgr.is_frozen():
            raise NotRunning()
        mgr.freeze()
    return 0


def resume(rt, args: list[str], flags: dict, g: dict) -> int:
    sd = _open(rt, args[0])
    with _locked(sd) as st:
        # refresh() reports "paused" only for a started container; a created one that was paused is
        # frozen too, and runc resumes both
        if st.status not in (RUNNING, CREATED, PAUSED) or not st.cgroup:
            raise InvalidState("container not paused")
        mgr = _manager(st)
        if not mgr.is_frozen():
            raise InvalidState("container not paused")
        mgr.thaw()
    return 0


# ---- update --------------------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_MUL = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """A size as Docker's go-units RAMInBytes reads it: ``512``, ``100k``, ``64m``, ``1.5GiB`` (binary units)."""
    m = _SIZE_RE.match(text)
    try:
        if not m:
            raise ValueError
        return int(float(m.group(1)) * _SIZE_MUL[(m.group(2) or "").lower()])
    except ValueError:
        raise ConfigError(f"invalid size: '{text}'") from None


def _int_flag(flags: dict, name: str) -> int:
    """A runc IntFlag: a bad value is a usage error worded as urfave/cli words it."""
    raw = flags.get(name)
    if raw is None:
        return 0
    try:
        return int(raw, 10)
    except ValueError:
        raise Usage(f'invalid value "{raw}" for flag -{name}: parse error') from None


def _num(flags: dict, name: str, unsigned: bool) -> int:
    raw = flags[name]
    kind = "ParseUint" if unsigned else "ParseInt"
    try:
        v = int(raw, 10)
    except ValueError:
        raise ConfigError(f'invalid value for {name}: {kind}: parsing "{raw}": invalid syntax') from None
    if unsigned and (v < 0 or raw.strip().startswith(("-", "+"))):
        raise ConfigError(f'invalid value for {name}: {kind}: parsing "{raw}": invalid syntax')
    if not (-(1 << 63) <= v < (1 << 64 if unsigned else 1 << 63)):
        raise ConfigError(f'invalid value for {name}: {kind}: parsing "{raw}": value out of range')
    return v


def resources_from_flags(flags: dict) -> dict:
    """runc's individual update flags → a LinuxResources object (only what was given)."""
    r: dict = {}

    def put(section: str, key: str, value) -> None:
        r.setdefault(section, {})[key] = value

    weight = _int_flag(flags, "blkio-weight")
    if weight:
        put("blockIO", "weight", weight)
    if flags.get("cpuset-cpus"):
        put("cpu", "cpus", flags["cpuset-cpus"])
    if flags.get("cpuset-mems"):
        put("cpu", "mems", flags["cpuset-mems"])
    for opt, key, unsigned in (("cpu-period", "period", True), ("cpu-rt-period", "realtimePeriod", True),
                               ("cpu-share", "shares", True), ("cpu-quota", "quota", False),
                               ("cpu-rt-runtime", "realtimeRuntime", False)):
        if flags.get(opt):
            put("cpu", key, _num(flags, opt, unsigned))
    for opt, key in (("memory", "limit"), ("memory-swap", "swap"), ("kernel-memory", "kernel"),
                     ("kernel-memory-tcp", "kernelTCP"), ("memory-reservation", "reservation")):
        val = flags.get(opt)
        if val:
            try:
                put("memory", key, -1 if val == "-1" else ram_in_bytes(val))
            except ConfigError as e:
                raise ConfigError(f"invalid value for {opt}: {e}") from None
    pids = _int_flag(flags, "pids-limit")
    if pids:
        put("pids", "limit", pids)
    return r


def read_resources(path: str) -> dict:
    """The ``--resources`` JSON from a file or, for ``-``, from stdin; validated against the schema.
    Like Go's json.Decoder, only the first JSON value is read; ``null`` means "nothing to change"."""
    source = "resources (stdin)" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    text = data.decode("utf-8", "replace").lstrip()
    try:
        raw, _end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}: invalid JSON: {'unexpected EOF' if not text else e}") from None
    if raw is None:
        return {}
    from . import schema

    schema.check(raw, "resources", source=source)
    return raw


#: The fields where a zero (or an empty string) means "leave as it is" (runc's plain integers; Docker sends
#: every one of them, zeros included).  Zero stays meaningful elsewhere (swappiness, cpu.idle, burst...).
UNSET_IF_ZERO = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"),
    "blockIO": ("weight", "leafWeight"),
    "pids": ("limit",),
}


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


def _load_saved(sd: StateDir) -> dict:
    try:
        with open(os.path.join(sd.path, RESOURCES_FILE), "rb") as f:
            saved = json.loads(f.read())
        return saved if isinstance(saved, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def update(rt, args: list[str], flags: dict, g: dict) -> int:
    cid = args[0]
    sd = _open(rt, cid)
    if flags.get("resources"):
        r = read_resources(flags["resources"])  # runc: every other option is then ignored
    else:
        r = resources_from_flags(flags)
    mem = r.get("memory") or {}
    if mem.get("kernel") or mem.get("kernelTCP"):
        _warn(rt, KERNEL_MEMORY_WARNING)
    if flags.get("l3-cache-schema") or flags.get("mem-bw-schema"):  # resctrl (ocirun.intelrdt), as runc
        from .intelrdt import update_schemata

        with _locked(sd) as st:
            if st.status == STOPPED:
                raise NotRunning()
            st.intel_rdt = update_schemata(st.intel_rdt, st.id, st.pid, flags.get("l3-cache-schema"),
                                           flags.get("mem-bw-schema"))
            sd.save(st)
    delta = prune_unchanged(r)
    if "memory" in delta:
        for key in ("kernel", "kernelTCP"):  # runc 1.1 ignores kernel memory on update
            delta["memory"].pop(key, None)
        if not delta["memory"]:
            del delta["memory"]
    with _locked(sd) as st:
        if st.status == STOPPED:
            raise NotRunning()
        mgr = _manager(st)
        saved = _load_saved(sd)
        apply = delta
        m = delta.get("memory") or {}
        if mgr.mode == "unified" and m.get("swap") and not m.get("limit"):
            # memory.swap.max is swap minus the memory limit: v2 needs the limit in force
            limit = (saved.get("memory") or {}).get("limit") or _current_v2_limit(mgr)
            if limit:
                apply = merge(delta, {"memory": {"limit": limit}})
        if apply:
            mgr.update(apply)
        write_atomic(os.path.join(sd.path, RESOURCES_FILE), json.dumps(merge(saved, delta)).encode(), 0o600)
    return 0


def _current_v2_limit(mgr) -> int:
    from .cgroups.base import read_int

    try:
        v = read_int(mgr.path, "memory.max", default=-1)
    except OciError:
        return 0
    return v if v > 0 else 0


# ---- ps ------------------------------------------------------------------------------------------------
def _pids(rt, cid: str) -> list[int]:
    sd = _open(rt, cid)
    st = refresh(sd, sd.load())
    if not st.cgroup:
        return []
    try:
        return _manager(st).pids()
    except OciError as e:
        raise OciError(f"unable to get all container pids: {e}") from None


def ps(rt, args: list[str], flags: dict, g: dict) -> int:
    pids = _pids(rt, args[0])
    fmt = flags.get("format", "table")
    if fmt == "json":
        # runc encodes an empty (nil) slice as null
        sys.stdout.write((json.dumps(pids, separators=(",", ":")) if pids else "null") + "\n")
        return 0
    if fmt != "table":
        raise OciError("invalid format option")
    import shutil
    import subprocess

    ps_args = args[1:]
    if ps_args[:1] == ["--"]:  # "ps ID -- -o pid,comm": the separator is ours, not ps's
        ps_args = ps_args[1:]
    ps_args = ps_args or ["-ef"]
    exe = shutil.which("ps", path=os.environ.get("PATH") or os.defpath) or "ps"
    proc = subprocess.run([exe, *ps_args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    output = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise OciError(f"exit status {proc.returncode}: {output}")
    lines = output.split("\n")
    fields = lines[0].split()
    if "PID" not in fields:
        raise OciError("couldn't find PID field in ps output")
    index = fields.index("PID")
    wanted = set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        parts = line.split()
        try:
            pid = int(parts[index])
        except (IndexError, ValueError):
            raise OciError(f"unable to parse pid: {line.strip()}") from None
        if pid in wanted:
            out.append(line)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


# ---- events --------------------------------------------------------------------------------------------
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_DURATION_RE = re.compile(rf"([-+]?)((?:{_DURATION_PART})+|0)")


def parse_duration(text: str, flag: str = "interval") -> float:
    """A Go duration (``5s``, ``250ms``, ``1m30s``, ``0``) in seconds."""
    m = _DURATION_RE.fullmatch(text)
    if not m:
        raise Usage(f'invalid value "{text}" for flag -{flag}: parse error')
    total = sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(_DURATION_PART, m.group(2)))
    return -total if m.group(1) == "-" else total


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


def events(rt, args: list[str], flags: dict, g: dict) -> int:
    cid = args[0]
    sd = _open(rt, cid)
    interval = parse_duration(flags.get("interval", "5s"))
    if interval <= 0:
        raise OciError("duration interval must be greater than 0")
    st = refresh(sd, sd.load())
    if st.status == STOPPED:
        raise OciError(f"container with id {cid} is not running")
    mgr = _manager(st)
    try:
        if flags.get("stats"):
            _emit({"type": "stats", "id": cid, "data": runc_stats(mgr.stats())})
            return 0
        return _stream(sd, st, mgr, interval)
    except BrokenPipeError:
        # the reader went away: stop quietly (and keep Python from complaining at exit)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _stream(sd: StateDir, st, mgr, interval: float) -> int:
    """Stats every ``interval`` and an ``oom`` record on each OOM, until the container stops (its init exits
    or its cgroup goes away)."""
    import select
    import time

    from .kernel.process import HAVE_PIDFD, require_pidfd
    from .state import read_start_time

    cid = st.id
    watcher = mgr.oom_events()
    pidfd = -1
    try:
        try:
            pidfd = require_pidfd(st.pid) if HAVE_PIDFD else -1
        except OSError:
            pidfd = -1
        if read_start_time(st.pid) != st.pid_start:
            return 0  # the init exited meanwhile
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
                return 0
            if watcher.fileno() in ready:
                if watcher.wait(0):
                    _emit({"type": "oom", "id": cid})
                elif not os.path.isdir(mgr.path):
                    return 0  # the cgroup was removed
            if time.monotonic() >= next_tick:
                try:
                    cur = refresh(sd, sd.load())
                except OciError:
                    return 0  # deleted
                if cur.status == STOPPED:
                    return 0
                try:
                    _emit({"type": "stats", "id": cid, "data": runc_stats(mgr.stats())})
                except OciError as e:
                    if not os.path.isdir(mgr.path):
                        return 0
                    sys.stderr.write(f"ocirun: {e}\n")  # runc logs the error and goes on
                next_tick += interval
                if next_tick < time.monotonic():
                    next_tick = time.monotonic() + interval
            elif pidfd < 0 and read_start_time(st.pid) != st.pid_start:
                return 0
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        watcher.close()
