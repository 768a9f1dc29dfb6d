"""cgroup v1 (and hybrid) driver: one directory per hierarchy, ``linux.resources`` written file by file.

Controllers are visited in runc's order (cpuset, devices, memory, cpu, pids, blkio, hugetlb, net_cls,
net_prio, rdma); a resource asked for on a controller that is not mounted is an error, as in runc
(``cannot set memory limit: ...``).  In hybrid mode the cgroup is also made in the unified hierarchy and
the process joins it there (as runc does), but limits stay on v1.

Zero means "unset" for the fields runc treats as plain integers (memory limit/reservation/swap, cpu
shares/quota/period/realtime*, blkio weights); pointer fields of runc's config (swappiness, cpu.idle,
cpu.burst, pids.limit, network.classID) are written whenever they are present — except that
:meth:`update` treats ``pids.limit: 0`` as unchanged, the way Docker sends an update.
"""
from __future__ import annotations

import errno
import os
import time

# convert, devices (the rule model) and select are imported where limits are applied or OOM events
# waited for: `delete`, `kill`, `state` only create a manager to find, signal or remove the cgroup.
from .base import Manager, log, read, read_int
from .. import signals as _signal  # a static table: `signal` imports enum
from ..errors import CgroupError

# runc's subsystem order; the join order does not matter but this keeps errors predictable
ORDER = ["cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "net_cls", "net_prio",
         "perf_event", "freezer", "rdma", "misc"]
_MAIN_PREFERENCE = ["pids", "devices", "freezer", "memory", "cpu", "cpuacct", "blkio", "cpuset", "name=systemd"]

# What apply() writes, in runc's order (unit tests assert the journal).  A hybrid host binds each controller
# to one hierarchy: one that is not mounted as v1 but is offered by the unified mount (hugetlb, say) takes
# its resource in v2 form, batched for the V2 manager, instead of the v1 writer.  Rows: (resource key, v1
# controller, v2 controller -- "" for the same name, None for "never sent to v2 here" --, v1 writer).
# "cpu" has two rows, one per controller it is split over (see V1Manager._cpu_half).
_RESOURCES = (
    ("cpu", "cpuset", "", "_cpuset"),
    ("devices", "devices", None, "_devices"),
    ("memory", "memory", "", "_memory"),
    ("cpu", "cpu", "", "_cpu"),
    ("pids", "pids", "", "_pids"),           # the writer also takes apply()'s ``update``
    ("blockIO", "blkio", "io", "_blkio"),
    ("hugepageLimits", "hugetlb", "", "_hugetlb"),
    ("network", "net_cls", None, "_network"),  # and net_prio
    ("rdma", "rdma", "", "_rdma"),
)
_CPUSET_FIELDS = ("cpus", "mems")   # of the cpu resource, written by the cpuset controller


class V1Manager(Manager):
    mode = "v1"

    def __init__(self, *, paths: dict[str, str], mounts: dict[str, str], hybrid: bool = False, **kw):
        super().__init__(**kw)
        self.paths = dict(paths)      # controller (or name=X; "" = unified in hybrid) → cgroup dir
        self.mounts = dict(mounts)    # same keys → mountpoint
        self.mode = "hybrid" if hybrid else "v1"

    # ---- paths ---------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        for c in _MAIN_PREFERENCE:
            if c in self.paths:
                return self.paths[c]
        return next(iter(self.paths.values()), "")  # "" : none (a rootless container whose cgroups were skipped)

    def _dirs(self) -> list[tuple[str, str]]:
        """Unique (dir, mountpoint) pairs: co-mounted controllers share one directory."""
        seen, out = set(), []
        for key, d in self.paths.items():
            if d not in seen:
                seen.add(d)
                out.append((d, self.mounts[key]))
        return out

    def _leaf_dirs(self) -> list[str]:
        return [d for d, _ in self._dirs()]

    def _dir_mounts(self) -> list[tuple[str, str]]:
        return self._dirs()

    def _dir(self, ctrl: str, what: str) -> str:
        d = self.paths.get(ctrl)
        if d is None and self.rootless and ctrl in self.mounts:  # skipped by create(): not delegated to us
            raise CgroupError(f"cannot set {what}: container could not join or create cgroup "
                              f"(rootless: no write access under {self.mounts[ctrl]})")
        if d is None:
            raise CgroupError(f"cannot set {what}: the {ctrl} cgroup controller is not mounted under {self.root}")
        return d

    # ---- lifecycle -----------------------------------------------------------------------------------
    def create(self) -> None:
        planned = set(self.created)  # plan_create()'s record, when create() follows it
        for key in list(self.paths):
            d, mnt = self.paths[key], self.mounts[key]
            before = len(self.created)
            try:
                self._mkdir_p(d, mnt)
            except CgroupError as e:
                if self.rootless and getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
                    log.debug("rootless: skipping %s: %s", key, e)
                    del self.paths[key]
                    # Nothing of this hierarchy is ours to remove later: undo what we made, forget
                    # the shared default parent that was only recorded (we may not rmdir it), and
                    # what plan_create() recorded there before the attempt.
                    here = [p for p in self.created[before:] if p not in planned] + \
                        [p for p in planned if p == mnt or p.startswith(mnt.rstrip("/") + "/")]
                    for p in sorted(here, key=lambda p: p.count("/"), reverse=True):
                        try:
                            os.rmdir(p)
                        except OSError:
                            pass
                    self.created = [p for p in self.created if p not in here]
                    continue
                raise
        if "cpuset" in self.paths:
            self._cpuset_fill(self.paths["cpuset"], self.mounts["cpuset"])

    def _cpuset_fill(self, d: str, mnt: str) -> None:
        """A new v1 cpuset starts with empty cpus/mems and takes no task; copy each level's from its parent
        (runc's cpuset ensureParent)."""
        rel = os.path.relpath(d, mnt)
        cur = mnt
        for part in [] if rel == "." else rel.split("/"):
            parent, cur = cur, os.path.join(cur, part)
            for f in ("cpuset.cpus", "cpuset.mems"):
                try:
                    if read(cur, f).strip() == "":
                        self.write(cur, f, read(parent, f).strip())
                except CgroupError as e:
                    if getattr(e, "errno", None) != errno.ENOENT:
                        raise

    def add_pid(self, pid: int) -> None:
        for d, _ in self._dirs():
            try:
                self.write(d, "cgroup.procs", pid)
            except CgroupError as e:
                if self.rootless and getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
                    continue
                raise

    # ---- resources -----------------------------------------------------------------------------------
    def apply(self, resources: dict | None, *, update: bool = False) -> None:
        r = resources or {}
        if r.get("unified") and not self._hybrid_v2():
            raise CgroupError("invalid configuration: cannot use unified on cgroup v1")
        v2_only = {}    # hybrid: resources whose controller exists only in the unified hierarchy
        for key, v1_name, v2_name, writer in _RESOURCES:
            if key == "cpu":
                self._cpu_half(r.get("cpu") or {}, v1_name, writer, v2_only)
                continue
            value = r.get(key)
            if not (value or key == "devices" and value is not None):   # devices: [] still sets the rules
                continue
            if v2_name is not None and self._in_v2_only(v1_name, v2_name):
                v2_only[key] = value
            elif key == "pids":
                self._pids(value, update)
            else:
                getattr(self, writer)(value)
        if v2_only:
            self._v2().apply(v2_only, update=update)
        if r.get("unified"):
            self._hybrid_unified(r["unified"])

    def _cpu_half(self, cpu: dict, ctrl: str, writer: str, v2_only: dict) -> None:
        """One half of the cpu resource: cpus/mems are cpuset's, the rest cpu's.  On a hybrid host each
        half goes to the unified hierarchy on its own, merged into one ``cpu`` entry of the v2 batch."""
        if ctrl == "cpuset":
            if not (cpu.get("cpus") or cpu.get("mems")):
                return
            part = {k: cpu[k] for k in _CPUSET_FIELDS if cpu.get(k)}
        else:
            if not cpu:
                return
            part = {k: v for k, v in cpu.items() if k not in _CPUSET_FIELDS}
        if self._in_v2_only(ctrl):
            v2_only.setdefault("cpu", {}).update(part)
        else:
            getattr(self, writer)(cpu)

    # ---- hybrid: the unified hierarchy next to the v1 ones -------------------------------------------
    # A controller is bound to at most one hierarchy.  On a hybrid host the ones not mounted as v1 (here:
    # hugetlb, whose v1 hierarchy systemd never mounted) are offered by the cgroup2 mount at <root>/unified.
    # A v1-shaped resource for such a controller is written there in its v2 form, and ``unified`` keys are
    # written there too (runtime-spec: write them, error when the controller is not present).  runc 1.1
    # refuses both on a hybrid host ("cannot use unified on cgroup v1", "cannot set hugetlb limit: container
    # could not join or create cgroup"); what ocirun accepts here only ever reaches the unified hierarchy.
    def _hybrid_v2(self) -> bool:
        return self.mode == "hybrid" and "" in self.paths

    def _v2_available(self) -> list[str]:
        try:
            return read(self.mounts[""], "cgroup.controllers").split()
        except CgroupError:
            return []

    def _in_v2_only(self, v1_name: str, v2_name: str = "") -> bool:
        return (v1_name not in self.paths and self._hybrid_v2()
                and (v2_name or v1_name) in self._v2_available())

    def _v2(self):
        from .v2 import V2Manager
        v2 = V2Manager(path=self.paths[""], mount=self.mounts[""], root=self.root, inner=self.inner,
                       container_id=self.container_id, rootless=self.rootless)
        v2.journal = self.journal
        return v2

    def _hybrid_unified(self, unified: dict) -> None:
        avail = self._v2_available()
        v1_bound = {c for c in self.paths if c}
        for key in unified:
            ctrl = key.partition(".")[0]
            if "/" in key or "." not in key or ctrl == "cgroup" or ctrl in avail:
                continue
            if os.path.exists(os.path.join(self.paths[""], key)):
                continue    # a core file every cgroup2 directory has (cpu.stat, memory.pressure, ...)
            v1_name = {"io": "blkio"}.get(ctrl, ctrl)
            why = (f"it is bound to the cgroup v1 hierarchy {self.mounts[v1_name]}" if v1_name in v1_bound
                   else "no such controller")
            raise CgroupError(f"invalid configuration: cannot set unified resource {key!r} on this hybrid host: "
                              f"the {ctrl} controller "
                              f"is not available in the cgroup v2 hierarchy {self.mounts['']} ({why}; "
                              f"cgroup.controllers there: {' '.join(avail) or 'none'})")
        self._v2()._unified(unified)

    def _cpuset(self, cpu: dict) -> None:
        d = self._dir("cpuset", "cpuset")
        if cpu.get("cpus"):
            self.write(d, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self.write(d, "cpuset.mems", cpu["mems"])

    def _devices(self, devices: list) -> None:
        from . import devices as devmod

        target = devmod.emulate(devmod.parse_rules(devices))
        try:
            d = self._dir("devices", "devices")
        except CgroupError:
            if self.rootless:
                return
            raise
        try:
            current = devmod.parse_list(read(d, "devices.list"))
        except CgroupError:
            current = None
        for fname, entry in devmod.v1_transition(current, target):
            try:
                self.write(d, fname, entry)
            except CgroupError:
                if self.rootless:
                    return
                raise

    def _memory(self, m: dict) -> None:
        limit = int(m.get("limit") or 0)
        swap = int(m.get("swap") or 0)
        reservation = int(m.get("reservation") or 0)
        kernel, kernel_tcp = int(m.get("kernel") or 0), int(m.get("kernelTCP") or 0)
        swappiness = m.get("swappiness")
        wants = (limit or swap or reservation or kernel_tcp or m.get("disableOOMKiller") is not None
                 or m.get("useHierarchy") is not None or (swappiness is not None and swappiness != -1))
        if kernel:
            log.warning("linux.resources.memory.kernel is not supported by this kernel and is ignored")
        if not wants:
            return
        d = self._dir("memory", "memory limit")
        has_swap = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if limit == -1 and swap == 0 and has_swap:
            swap = -1    # "unlimited memory" means unlimited memory+swap too
        if swap and not has_swap:
            raise CgroupError(f"cannot set memory+swap limit: swap accounting is not enabled "
                              f"({d}/memory.memsw.limit_in_bytes does not exist)")
        if limit and swap:
            # order the two writes so that limit <= memsw holds after each one
            cur = read_int(d, "memory.limit_in_bytes")
            if swap == -1 or cur < swap:
                self._mem_write(d, "memory.memsw.limit_in_bytes", swap)
                self._mem_write(d, "memory.limit_in_bytes", limit)
            else:
                self._mem_write(d, "memory.limit_in_bytes", limit)
                self._mem_write(d, "memory.memsw.limit_in_bytes", swap)
        elif limit:
            self._mem_write(d, "memory.limit_in_bytes", limit)
        elif swap:
            self._mem_write(d, "memory.memsw.limit_in_bytes", swap)
        if reservation:
            self.write(d, "memory.soft_limit_in_bytes", reservation)
        if kernel_tcp:
            self.write(d, "memory.kmem.tcp.limit_in_bytes", kernel_tcp)
        if m.get("disableOOMKiller") is not None:
            self.write(d, "memory.oom_control", 1 if m["disableOOMKiller"] else 0)
        if swappiness is not None and swappiness != -1:
            if not 0 <= swappiness <= 100:
                raise CgroupError(f"invalid memory swappiness value: {swappiness} (valid range is 0-100)")
            self.write(d, "memory.swappiness", swappiness)
        if m.get("useHierarchy") is not None:
            try:
                self.write(d, "memory.use_hierarchy", 1 if m["useHierarchy"] else 0)
            except CgroupError as e:
                if m["useHierarchy"] or getattr(e, "errno", None) != errno.EINVAL:
                    raise
                log.warning("memory.useHierarchy=false ignored: this kernel always accounts hierarchically")

    def _mem_write(self, d: str, name: str, value: int) -> None:
        try:
            self.write(d, name, value)
        except CgroupError as e:
            if getattr(e, "errno", None) == errno.EBUSY:
                pfx = name[:-len("limit_in_bytes")]
                usage = read_int(d, pfx + "usage_in_bytes", default=0)
                peak = read_int(d, pfx + "max_usage_in_bytes", default=0)
                e.message = f"{e.message} (current usage: {usage}, peak usage: {peak})"
                e.args = (e.message,)
            raise

    def _cpu(self, c: dict) -> None:
        shares, quota, period = int(c.get("shares") or 0), int(c.get("quota") or 0), int(c.get("period") or 0)
        rt_runtime, rt_period = int(c.get("realtimeRuntime") or 0), int(c.get("realtimePeriod") or 0)
        burst, idle = c.get("burst"), c.get("idle")
        if not (shares or quota or period or rt_runtime or rt_period or burst is not None or idle is not None):
            return
        d = self._dir("cpu", "cpu limit")
        if shares:
            self.write(d, "cpu.shares", shares)
            got = read_int(d, "cpu.shares")
            if got < shares:
                raise CgroupError(f"the maximum allowed cpu-shares is {got}")
            if got > shares:
                raise CgroupError(f"the minimum allowed cpu-shares is {got}")
        # The kernel checks quota/period (and burst) against each other and the parent: a write of one may
        # be refused (EINVAL) until the other is in place, so retry it after the quota (runc does the same).
        retry = []
        if period:
            try:
                self.write(d, "cpu.cfs_period_us", period)
            except CgroupError as e:
                if getattr(e, "errno", None) != errno.EINVAL or not quota:
                    raise
                retry.append(("cpu.cfs_period_us", period))
        if burst is not None:
            if quota > 0 and burst > quota:
                raise CgroupError(f"invalid cpu burst {burst}: larger than the quota {quota}")
            try:
                self.write(d, "cpu.cfs_burst_us", burst)
            except CgroupError as e:
                if getattr(e, "errno", None) == errno.ENOENT and not burst:
                    pass
                elif getattr(e, "errno", None) != errno.EINVAL or not quota:
                    raise
                else:
                    retry.append(("cpu.cfs_burst_us", burst))
        if quota:
            self.write(d, "cpu.cfs_quota_us", quota)
            for name, v in retry:
                self.write(d, name, v)
        if rt_period:
            self.write(d, "cpu.rt_period_us", rt_period)
        if rt_runtime:
            self.write(d, "cpu.rt_runtime_us", rt_runtime)
        if idle is not None:
            self.write(d, "cpu.idle", idle)

    def _pids(self, p: dict, update: bool) -> None:
        limit = p.get("limit")
        if limit is None or (update and limit == 0):
            return
        from .convert import limit_str

        self.write(self._dir("pids", "pids limit"), "pids.max", limit_str(int(limit)))

    def _blkio(self, b: dict) -> None:
        weight, leaf = int(b.get("weight") or 0), int(b.get("leafWeight") or 0)
        wdev = b.get("weightDevice") or []
        thr = [(k, b.get(k) or []) for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                                            "throttleReadIOPSDevice", "throttleWriteIOPSDevice")]
        if not (weight or leaf or wdev or any(v for _, v in thr)):
            return
        d = self._dir("blkio", "blkio limit")
        if os.path.exists(os.path.join(d, "blkio.weight")):
            wfile, wdfile = "blkio.weight", "blkio.weight_device"
        else:
            wfile, wdfile = "blkio.bfq.weight", "blkio.bfq.weight_device"

        def need(name: str, what: str) -> None:
            if not os.path.exists(os.path.join(d, name)):
                raise CgroupError(f"cannot set {what}: {d}/{name} does not exist "
                                  f"(no CFQ/BFQ weight support in this kernel's block layer)")

        if weight:
            need(wfile, "blkio weight")
            self.write(d, wfile, weight)
        if leaf:
            need("blkio.leaf_weight", "blkio leaf weight")
            self.write(d, "blkio.leaf_weight", leaf)
        for wd in wdev:
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                need(wdfile, "blkio weight device")
                self.write(d, wdfile, f"{dev} {wd['weight']}")
            if wd.get("leafWeight"):
                need("blkio.leaf_weight_device", "blkio leaf weight device")
                self.write(d, "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}")
        files = {"throttleReadBpsDevice": "blkio.throttle.read_bps_device",
                 "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
                 "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
                 "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device"}
        for key, entries in thr:
            for td in entries:
                self.write(d, files[key], f"{td['major']}:{td['minor']} {td['rate']}")

    def _hugetlb(self, limits: list) -> None:
        from . import convert

        d = self._dir("hugetlb", "hugepage limit")
        for h in limits:
            size = convert.page_size_name(convert.page_size_bytes(h.get("pageSize", "")))
            name = f"hugetlb.{size}.limit_in_bytes"
            if not os.path.exists(os.path.join(d, name)):
                raise CgroupError(f"cannot set hugepage limit: page size {h.get('pageSize')} is not supported "
                                  f"({d}/{name} does not exist)")
            self.write(d, name, h["limit"])
            if os.path.exists(os.path.join(d, f"hugetlb.{size}.rsvd.limit_in_bytes")):
                self.write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", h["limit"])

    def _network(self, n: dict) -> None:
        if n.get("classID") is not None:
            self.write(self._dir("net_cls", "network class id"), "net_cls.classid", n["classID"])
        for p in n.get("priorities") or []:
            self.write(self._dir("net_prio", "network priorities"), "net_prio.ifpriomap",
                       f"{p['name']} {p['priority']}")

    def _rdma(self, rdma: dict) -> None:
        d = self._dir("rdma", "rdma limit")
        for dev, lim in rdma.items():
            cmd = dev
            if lim.get("hcaHandles") is not None:
                cmd += f" hca_handle={lim['hcaHandles']}"
            if lim.get("hcaObjects") is not None:
                cmd += f" hca_object={lim['hcaObjects']}"
            if cmd == dev:
                raise CgroupError(f"rdma device {dev}: one of hcaHandles or hcaObjects is required")
            self.write(d, "rdma.max", cmd)

    # ---- freezer ------------------------------------------------------------------------------------
    def _freezer(self) -> tuple[str, str]:
        if "freezer" in self.paths:
            return "v1", self.paths["freezer"]
        if "" in self.paths and os.path.exists(os.path.join(self.paths[""], "cgroup.freeze")):
            return "v2", self.paths[""]
        raise CgroupError(f"cannot freeze: the freezer cgroup controller is not mounted under {self.root}")

    def freeze(self, timeout: float = 10.0) -> None:
        kind, d = self._freezer()
        if kind == "v2":
            from .v2 import freeze_v2
            return freeze_v2(self, d, True, timeout)
        deadline = time.monotonic() + timeout
        i = 0
        while True:
            # write again every few rounds: tasks forked while FREEZING can keep it from completing
            if i % 25 == 0:
                self.write(d, "freezer.state", "FROZEN")
            state = read(d, "freezer.state").strip()
            if state == "FROZEN":
                return
            if time.monotonic() > deadline:
                self.write(d, "freezer.state", "THAWED")
                raise CgroupError(f"unable to freeze {d}: still {state} after {timeout:g}s")
            time.sleep(0.001 if i < 10 else 0.01)
            i += 1

    def thaw(self) -> None:
        kind, d = self._freezer()
        if kind == "v2":
            from .v2 import freeze_v2
            return freeze_v2(self, d, False, 10.0)
        self.write(d, "freezer.state", "THAWED")

    def _freezer_dir(self) -> tuple[str, str]:
        try:
            kind, d = self._freezer()
        except CgroupError:
            return "", ""
        return d, kind

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Hybrid: SIGKILL through the unified hierarchy's cgroup.kill when the kernel has it (every
        process is in some cgroup of that hierarchy, so this reaches them all at once, frozen or not);
        a task frozen by the v1 freezer acts on it once thawed.  Otherwise freeze/signal/thaw."""
        unified = self.paths.get("")
        if sig == _signal.SIGKILL and unified and os.path.exists(os.path.join(unified, "cgroup.kill")):
            self.write(unified, "cgroup.kill", 1)
            if self.is_frozen():
                self.thaw()
            return
        super().kill_all(sig)

    def is_frozen(self) -> bool:
        try:
            kind, d = self._freezer()
        except CgroupError:
            return False
        if kind == "v2":
            from .v2 import is_frozen_v2
            return is_frozen_v2(d)
        try:
            return read(d, "freezer.state").strip() == "FROZEN"
        except CgroupError:
            return False

    # ---- stats and events ----------------------------------------------------------------------------
    def stats(self) -> dict:
        from .stats import v1_stats, v2_stats
        data = v1_stats(self.paths)
        if self._in_v2_only("hugetlb"):
            data["hugetlb"] = v2_stats(self.paths[""])["hugetlb"]
        return data

    def oom_events(self) -> "OomWatcher":
        return OomWatcher(self._dir("memory", "an OOM notification"))

    def to_state(self) -> dict:
        return super().to_state() | {"mounts": self.mounts}


class OomWatcher:
    """v1 OOM notification: an eventfd registered on memory.oom_control through cgroup.event_control.

    ``fileno()`` becomes readable on each OOM (and when the cgroup is removed; :meth:`wait` tells those
    apart).  ``count()`` reads the kernel's ``oom_kill`` counter."""

    def __init__(self, memdir: str):
        self.dir = memdir
        self._efd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            self._ofd = os.open(os.path.join(memdir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            with open(os.path.join(memdir, "cgroup.event_control"), "w") as f:
                f.write(f"{self._efd} {self._ofd}")
        except OSError as e:
            os.close(self._efd)
            raise CgroupError(f"register OOM notification in {memdir}: {e.strerror}") from e

    def fileno(self) -> int:
        return self._efd

    def count(self) -> int:
        for line in read(self.dir, "memory.oom_control").splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def wait(self, timeout: float | None = None) -> bool:
        """True on an OOM event; False on timeout or when the cgroup has gone away."""
        import select

        r, _, _ = select.select([self._efd], [], [], timeout)
        if not r:
            return False
        os.eventfd_read(self._efd)
        return os.path.exists(os.path.join(self.dir, "cgroup.event_control"))

    def close(self) -> None:
        for fd in (self._efd, getattr(self, "_ofd", -1)):
            if fd >= 0:
                os.close(fd)
        self._efd = self._ofd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
