"""The systemd cgroup driver (``--systemd-cgroup``): systemd owns the container's cgroup as a transient scope.

cgroupsPath is ``slice:prefix:name`` → the unit ``prefix-name.scope`` (``name.scope`` with no prefix) in
``slice`` (``system.slice`` when empty; runc's default when cgroupsPath is absent is
``system.slice:runc:<id>``, ours ``system.slice:ocirun:<id>``).  The sequence is runc's:

1. ``StartTransientUnit(unit, "replace", props)`` with Description, Slice, Delegate, DefaultDependencies=no,
   the accounting switches, the device policy and ``PIDs=[init pid]`` (a scope is born with its
   processes); wait for the job's ``JobRemoved`` signal and require result ``done``.  A leftover unit
   of the same name (``UnitExists``) is reset once (``ResetFailedUnit``) and the start retried.
2. The unit's cgroup is ``<expanded slice>/<unit>`` in every hierarchy (``a-b.slice`` →
   ``/a.slice/a-b.slice``).  systemd made it where it accounts (cpu, memory, pids, devices, blkio, name=systemd
   on v1); a cgroupfs manager on that absolute path makes it in the other hierarchies (cpuset, freezer, ...),
   joins the pid everywhere, and afterwards writes every limit — so both drivers end with the same files.
3. ``apply``: ``SetUnitProperties(unit, runtime=true, ...)`` with the resource properties runc sets
   (:func:`resource_properties`, :func:`device_properties`), so that systemd re-applying its idea of the unit
   (daemon-reload) does not undo the limits; then the cgroupfs writes.  A device-list change on a live
   container is done frozen: systemd briefly denies everything while it rewrites its list.
4. ``destroy``: ``StopUnit(unit, "replace")`` and wait, ``ResetFailedUnit`` (ignored if gone), then remove
   the directories the cgroupfs part made itself.

Everything else (freeze, pids, kill_all, stats, OOM events) is the cgroupfs manager's.
"""
from __future__ import annotations

import errno
import os

from . import convert
from . import devices as devmod
from .base import Manager, log
from .paths import parse_systemd_path, systemd_running
from ..errors import CgroupError

MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
JOB_TIMEOUT = 30.0
UINT64_MAX = (1 << 64) - 1


# ---- pure: names ----------------------------------------------------------------------------------------
def unit_name(prefix: str, name: str) -> str:
    if name.endswith(".slice"):
        raise CgroupError(f"systemd cgroupsPath name {name!r}: a slice as the container's unit is not supported "
                          f"by ocirun; give a scope name")
    if not name:
        raise CgroupError("systemd cgroupsPath: the name part is empty")
    return f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def expand_slice(slice_: str) -> str:
    """``a-b-c.slice`` → ``/a.slice/a-b.slice/a-b-c.slice``; ``-.slice`` → ``/`` (systemd's slice naming)."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise CgroupError(f"invalid systemd slice {slice_!r}: must end in .slice and contain no '/'")
    if slice_ == "-.slice":
        return "/"
    base = slice_[:-len(".slice")]
    parts = base.split("-")
    if any(p == "" for p in parts):
        raise CgroupError(f"invalid systemd slice {slice_!r}: empty component between dashes")
    out, prefix = "", ""
    for p in parts:
        prefix = f"{prefix}-{p}" if prefix else p
        out += f"/{prefix}.slice"
    return out


# ---- pure: properties ------------------------------------------------------------------------------------
def _prop(name: str, sig: str, value):
    return (name, (sig, value))


def _u64(v: int) -> int:
    return UINT64_MAX if v < 0 else v


def _bitmask(cpus: str) -> bytes:
    """A cpuset list ("0-2,7") as systemd's AllowedCPUs byte array: bit n of byte n//8."""
    bits: set[int] = set()
    for part in cpus.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            raise CgroupError(f"invalid cpuset list {cpus!r}") from None
        bits.update(range(lo, hi + 1))
    if not bits:
        return b""
    out = bytearray(max(bits) // 8 + 1)
    for n in bits:
        out[n // 8] |= 1 << (n % 8)
    return bytes(out)


def cpu_quota_per_sec(quota: int, period: int) -> int:
    """CPUQuotaPerSecUSec from cfs quota/period, rounded up to systemd's 10 ms granularity (runc's rule, so
    that systemd does not write a smaller quota than asked); -1 → infinity."""
    if quota <= 0:
        return UINT64_MAX
    period = period or 100000
    v = quota * 1000000 // period
    if v % 10000:
        v = (v // 10000 + 1) * 10000
    return v


def resource_properties(r: dict | None, unified: bool, version: int = 0) -> list:
    """The unit properties runc sets for ``linux.resources`` (cgroup v1 names, or v2's when ``unified``)."""
    r = r or {}
    props = []
    mem, cpu, pids, blk = r.get("memory") or {}, r.get("cpu") or {}, r.get("pids") or {}, r.get("blockIO") or {}
    limit = int(mem.get("limit") or 0)
    if unified:
        if limit:
            props.append(_prop("MemoryMax", "t", _u64(limit)))
        if mem.get("reservation"):
            props.append(_prop("MemoryLow", "t", _u64(int(mem["reservation"]))))
        swap = convert.memory_swap_to_v2(int(mem.get("swap") or 0), limit)
        if swap:
            props.append(_prop("MemorySwapMax", "t", _u64(swap)))
        if cpu.get("shares"):
            props.append(_prop("CPUWeight", "t", convert.shares_to_weight(int(cpu["shares"]))))
        if blk.get("weight"):
            props.append(_prop("IOWeight", "t", convert.blkio_weight_to_io_weight(int(blk["weight"]))))
    else:
        if limit:
            props.append(_prop("MemoryLimit", "t", _u64(limit)))
        if cpu.get("shares"):
            props.append(_prop("CPUShares", "t", int(cpu["shares"])))
        if blk.get("weight"):
            props.append(_prop("BlockIOWeight", "t", int(blk["weight"])))
    quota, period = int(cpu.get("quota") or 0), int(cpu.get("period") or 0)
    if period and version >= 242:
        props.append(_prop("CPUQuotaPeriodUSec", "t", period))
    if quota or period:
        props.append(_prop("CPUQuotaPerSecUSec", "t", cpu_quota_per_sec(quota, period)))
    plimit = pids.get("limit")
    if plimit is not None and (int(plimit) > 0 or int(plimit) == -1):
        props.append(_prop("TasksMax", "t", _u64(int(plimit))))
    if unified and version >= 244:      # systemd's cpuset support is v2-only; v1 gets the cgroupfs write
        if cpu.get("cpus"):
            props.append(_prop("AllowedCPUs", "ay", _bitmask(cpu["cpus"])))
        if cpu.get("mems"):
            props.append(_prop("AllowedMemoryNodes", "ay", _bitmask(cpu["mems"])))
    if unified and r.get("unified"):
        props += unified_properties(r["unified"], version)
    return props


#: ``linux.resources.unified`` keys systemd has a unit property for (cgroup v2 only), as runc converts them.
_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.max": "MemoryMax",
                   "memory.min": "MemoryMin", "memory.swap.max": "MemorySwapMax"}
_UNIFIED_CPUSET = {"cpuset.cpus": "AllowedCPUs", "cpuset.mems": "AllowedMemoryNodes"}


def unified_properties(unified: dict, version: int = 0) -> list:
    """Unit properties for the ``unified`` keys systemd understands, placed after the typed resources' so
    they win as the cgroupfs writes do.  Without them a daemon-reload (systemd re-applying its idea of the
    unit) would reset e.g. memory.max that only ``unified`` set.  Other keys are left to the cgroupfs write
    alone; a value that is not a number (or ``max``) is refused naming the key, before anything is set."""
    props = []

    def number(key: str, text: str, allow_max: bool = True) -> int:
        if allow_max and text == "max":
            return UINT64_MAX
        try:
            n = int(text)
        except ValueError:
            raise CgroupError(f"unified resource {key!r} value invalid: {text!r}") from None
        if n < 0:
            raise CgroupError(f"unified resource {key!r} value invalid: {text!r}")
        return n

    for key, value in unified.items():
        v = str(value).strip()
        if key == "cpu.max":        # "quota [period]"
            fields = v.split()
            if not 1 <= len(fields) <= 2:
                raise CgroupError(f"unified resource {key!r} value invalid: {v!r}")
            quota = -1 if fields[0] == "max" else number(key, fields[0], allow_max=False)
            period = number(key, fields[1], allow_max=False) if len(fields) == 2 else 100000
            if version >= 242:
                props.append(_prop("CPUQuotaPeriodUSec", "t", period))
            props.append(_prop("CPUQuotaPerSecUSec", "t", cpu_quota_per_sec(quota, period)))
        elif key == "cpu.weight":
            props.append(_prop("CPUWeight", "t", number(key, v, allow_max=False)))
        elif key in _UNIFIED_CPUSET:
            if version >= 244:
                props.append(_prop(_UNIFIED_CPUSET[key], "ay", _bitmask(v)))
        elif key in _UNIFIED_MEMORY:
            props.append(_prop(_UNIFIED_MEMORY[key], "t", number(key, v)))
        elif key == "pids.max":
            props.append(_prop("TasksMax", "t", number(key, v)))
        else:
            log.debug("unified resource %s has no systemd unit property; written to the cgroup only", key)
    return props


def _proc_devices(path: str = "/proc/devices") -> dict[tuple[str, int], str]:
    out, kind = {}, ""
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("Character"):
                    kind = "c"
                elif line.startswith("Block"):
                    kind = "b"
                elif line and kind:
                    num, _, name = line.partition(" ")
                    if num.isdigit():
                        out[(kind, int(num))] = name
    except OSError:
        pass
    return out


def device_properties(devices: list | None, proc_devices: str = "/proc/devices") -> list:
    """DevicePolicy + DeviceAllow for the device list (the cgroupfs write that follows is what enforces it
    exactly; these keep systemd's own re-application from opening or closing devices behind our back).

    An allow list becomes ``strict`` plus one entry per exception: ``/dev/char/M:m`` for one device,
    ``char-<driver>`` (from /proc/devices) for a whole major, ``char-*`` for every char device.  Allow-all
    is ``auto`` with no entries.  A deny list cannot be said to systemd: like runc we give it ``strict`` with
    no entries (deny all) and let the cgroupfs list, written right after, open what it allows."""
    if devices is None:
        return []
    state = devmod.emulate(devmod.parse_rules(devices))
    if state.default_allow:
        if not state.exceptions:
            return [_prop("DevicePolicy", "s", "auto"), _prop("DeviceAllow", "a(ss)", [])]
        log.warning("systemd cannot express a device deny list; it is told deny-all, the cgroup files "
                    "carry the real list")
        return [_prop("DevicePolicy", "s", "strict"), _prop("DeviceAllow", "a(ss)", [])]
    names = None
    allow = []
    for (t, ma, mi), acc in state.exceptions.items():
        kind = "char" if t == "c" else "block"
        if ma is None:
            node = f"{kind}-*"
        elif mi is None:
            if names is None:
                names = _proc_devices(proc_devices)
            if (t, ma) not in names:
                log.warning("device major %s:%d has no driver name in /proc/devices; left out of DeviceAllow",
                            t, ma)
                continue
            node = f"{kind}-{names[(t, ma)]}"
        else:
            node = f"/dev/{kind}/{ma}:{mi}"
        allow.append((node, acc))
    return [_prop("DevicePolicy", "s", "strict"), _prop("DeviceAllow", "a(ss)", allow)]


def start_properties(slice_: str, container_id: str, pid: int, unified: bool) -> list:
    props = [_prop("Description", "s", f"ocirun container {container_id}"),
             _prop("Slice", "s", slice_),
             _prop("Delegate", "b", True),
             _prop("DefaultDependencies", "b", False),
             _prop("PIDs", "au", [pid]),
             _prop("MemoryAccounting", "b", True),
             _prop("CPUAccounting", "b", True),
             _prop("TasksAccounting", "b", True)]
    props.append(_prop("IOAccounting", "b", True) if unified else _prop("BlockIOAccounting", "b", True))
    return props


def parse_version(text: str) -> int:
    """``252.38-1~deb12u1`` → 252 (0 when unknown)."""
    digits = ""
    for ch in text.strip().lstrip("v"):
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else 0


# ---- the manager ---------------------------------------------------------------------------------------
class SystemdManager(Manager):
    driver = "systemd"

    def __init__(self, *, unit: str, slice_: str, fs: Manager, bus: str | None = None, is_bus: bool = False,
                 started: bool = False, start_devices: list | None = None):
        super().__init__(root=fs.root, inner=fs.inner, container_id=fs.container_id, rootless=fs.rootless)
        self.unit, self.slice, self.fs = unit, slice_, fs
        self.bus, self.is_bus = bus, is_bus
        self.started = started      # reopened from the state: the unit exists, add_pid only joins (exec)
        self.start_devices = start_devices
        self._conn = None
        self._version = None

    # the cgroupfs side carries paths, mode, created and the write journal
    mode = property(lambda self: self.fs.mode)
    paths = property(lambda self: self.fs.paths)
    path = property(lambda self: self.fs.path)

    @property
    def journal(self):
        return self.fs.journal

    @journal.setter
    def journal(self, value):
        if "fs" in self.__dict__:
            self.fs.journal = value

    # ---- D-Bus ---------------------------------------------------------------------------------------
    def _connection(self):
        if self._conn is None:
            from .dbus import Connection, systemd_address
            if self.bus is None:
                self.bus, self.is_bus = systemd_address()
            self._conn = Connection(self.bus, self.is_bus)
            try:
                self._conn.call(MANAGER_PATH, MANAGER_IFACE, "Subscribe")
            except CgroupError as e:
                if "AlreadySubscribed" not in str(e):
                    raise
            if self.is_bus:
                rule = ("type='signal',sender='org.freedesktop.systemd1',"
                        f"interface='{MANAGER_IFACE}',member='JobRemoved'")
                self._conn.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", (rule,),
                                destination="org.freedesktop.DBus")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, member: str, signature: str = "", body: tuple = ()) -> tuple:
        return self._connection().call(MANAGER_PATH, MANAGER_IFACE, member, signature, body)

    def _run_job(self, what: str, member: str, signature: str, body: tuple) -> None:
        """Call a method that queues a job and wait for that job's JobRemoved; the result must be "done"."""
        (job,) = self._call(member, signature, body)
        got = self._conn.wait_signal("JobRemoved", lambda b: len(b) >= 4 and b[1] == job, JOB_TIMEOUT)
        if got is None:
            raise CgroupError(f"systemd: timed out after {JOB_TIMEOUT:g}s waiting for {what} of {self.unit}")
        if got[3] != "done":
            raise CgroupError(f"systemd: {what} of {self.unit} failed: job result {got[3]!r} "
                              f"(see journalctl -u {self.unit})")

    def version(self) -> int:
        if self._version is None:
            try:
                (v,) = self._connection().call(MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                                               (MANAGER_IFACE, "Version"))
                self._version = parse_version(v[1] if isinstance(v, tuple) else str(v))
            except CgroupError as e:
                log.debug("systemd version unknown: %s", e)
                self._version = 0
        return self._version

    # ---- lifecycle -----------------------------------------------------------------------------------
    def create(self) -> None:
        """Nothing yet: a scope cannot exist without its processes, so it starts in :meth:`add_pid`."""

    def plan_create(self) -> None:
        self.fs.plan_create()  # the unit's name is in the state already; the directories are cgroupfs's

    def add_pid(self, pid: int) -> None:
        if not self.started:
            props = start_properties(self.slice, self.container_id, pid, self.mode == "unified")
            # The device rules go in at the start, as runc does: without a device policy systemd leaves the
            # devices controller out of the unit's mask (it does not delegate it) and, on v1, trims the
            # scope's empty devices directory whenever it realizes the unit -- racing our mkdir+join.
            props += device_properties(self.start_devices)
            from .dbus import DBusError
            try:
                self._run_job("start", "StartTransientUnit", "ssa(sv)a(sa(sv))", (self.unit, "replace", props, []))
            except DBusError as e:
                if e.name != "org.freedesktop.systemd1.UnitExists":
                    raise CgroupError(f"systemd: start {self.unit}: {e}") from None
                # a leftover (failed) unit of that name: reset it and try once more, as runc does
                self._reset_failed()
                try:
                    self._run_job("start", "StartTransientUnit", "ssa(sv)a(sa(sv))",
                                  (self.unit, "replace", props, []))
                except DBusError as e2:
                    raise CgroupError(f"systemd: start {self.unit}: {e2}") from None
            self.started = True
            # the unit's cgroup in the hierarchies systemd does not manage, and the pid joined everywhere
            self.fs.create()
        self.fs.add_pid(pid)

    def _reset_failed(self) -> None:
        try:
            self._call("ResetFailedUnit", "s", (self.unit,))
        except CgroupError as e:
            log.debug("ResetFailedUnit %s: %s", self.unit, e)

    def apply(self, resources: dict | None, *, update: bool = False) -> None:
        r = resources or {}
        props = resource_properties(r, self.mode == "unified", self.version() if r.get("cpu") else 0)
        if r.get("devices") is not None:
            props += device_properties(r["devices"])
        if props:
            frozen = False
            if update and r.get("devices") is not None and not self.fs.is_frozen():
                try:
                    self.fs.freeze()
                    frozen = True
                except CgroupError as e:
                    log.debug("could not freeze around the device update: %s", e)
            try:
                self._call("SetUnitProperties", "sba(sv)", (self.unit, True, props))
            except CgroupError as e:
                raise CgroupError(f"systemd: set properties of {self.unit}: {e}") from None
            finally:
                if frozen:
                    self.fs.thaw()
        self.fs.apply(r, update=update)

    def destroy(self) -> None:
        from .dbus import DBusError
        err = None
        # a unit we did not start (the start failed: UnitExists) belongs to someone else: never stop it
        if self.started:
            try:
                self._run_job("stop", "StopUnit", "ss", (self.unit, "replace"))
            except DBusError as e:
                if e.name != "org.freedesktop.systemd1.NoSuchUnit":
                    err = CgroupError(f"systemd: stop {self.unit}: {e}")
            except CgroupError as e:
                err = e
            if err is None:
                self._reset_failed()
            self.started = False
        self.close()
        try:
            self.fs.destroy()
        except CgroupError as e:
            # a directory systemd still holds is systemd's to remove
            if getattr(e, "errno", None) not in (errno.EBUSY, errno.ENOTEMPTY) or err is None:
                err = err or e
        if err is not None:
            raise err

    # ---- the rest is cgroupfs ------------------------------------------------------------------------
    def _leaf_dirs(self) -> list[str]:
        return self.fs._leaf_dirs()

    def pids(self) -> list[int]:
        return self.fs.pids()

    def kill_all(self, sig: int = 9) -> None:
        self.fs.kill_all(sig)

    def is_empty(self) -> bool:
        return self.fs.is_empty()

    def frozen_from_the_start(self) -> bool:
        return self.fs.frozen_from_the_start()

    def freeze(self, timeout: float = 10.0) -> None:
        self.fs.freeze(timeout)

    def thaw(self) -> None:
        self.fs.thaw()

    def is_frozen(self) -> bool:
        return self.fs.is_frozen()

    def stats(self) -> dict:
        return self.fs.stats()

    def oom_events(self):
        return self.fs.oom_events()

    def to_state(self) -> dict:
        return self.fs.to_state() | {"driver": self.driver, "unit": self.unit, "slice": self.slice,
                                     "bus": self.bus, "is_bus": self.is_bus}


def for_container(cgroups_path: str | None, container_id: str, *, build_fs, rootless: bool = False,
                  environ=os.environ, run_dir: str = "/run/systemd/system",
                  devices: list | None = None) -> SystemdManager:
    """The manager for ``slice:prefix:name``.  ``build_fs(path)`` makes the cgroupfs manager for an absolute
    cgroup path (so the roots stay parameters)."""
    slice_, prefix, name = parse_systemd_path(cgroups_path, container_id)
    unit = unit_name(prefix, name)
    cg_path = expand_slice(slice_).rstrip("/") + "/" + unit
    if not environ.get("OCIRUN_SYSTEMD_BUS") and not systemd_running(run_dir):
        raise CgroupError(f"systemd cgroup driver: systemd is not running (no {run_dir}); cannot create "
                          f"{unit} in {slice_}: use the cgroupfs driver (drop --systemd-cgroup)")
    if rootless:
        raise CgroupError("systemd cgroup driver: rootless (user manager) mode is not supported; "
                          "use the cgroupfs driver")
    from .dbus import _jeepney, systemd_address
    _jeepney()    # a missing package is reported before anything is made
    bus, is_bus = systemd_address(environ)
    return SystemdManager(unit=unit, slice_=slice_, fs=build_fs(cg_path), bus=bus, is_bus=is_bus,
                          start_devices=devices)


def from_state(d: dict, fs: Manager) -> SystemdManager:
    return SystemdManager(unit=d["unit"], slice_=d.get("slice", ""), fs=fs, bus=d.get("bus"),
                          is_bus=bool(d.get("is_bus")), started=True)
