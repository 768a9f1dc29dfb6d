"""cgroup v2 (unified) driver: one directory, controllers enabled in every ancestor's subtree_control, the
device allow list as an eBPF program.

v1-shaped fields of ``linux.resources`` are converted (:mod:`ocirun.cgroups.convert`): shares → cpu.weight,
blkio weight → io.bfq.weight or io.weight, memory+swap → memory.swap.max, throttle rates → io.max.  Fields
with no v2 equivalent that do not weaken isolation when dropped (swappiness, disableOOMKiller, kernel,
kernelTCP, network) are ignored with a warning, as runc does; ones that would change behaviour silently
(leafWeight, realtime without kernel support) are refused.  ``unified`` is written last, so it overrides.
"""
from __future__ import annotations

import errno
import os
from .. import signals as _signal  # a static table: `signal` imports enum
import time

from . import convert
# devices, ebpf (struct) and select are imported where device rules are applied or OOM events waited
# for: `delete`, `kill`, `state` only create a manager to find, signal or remove the cgroup.
from .base import Manager, log, read, read_int, read_keyed
from ..errors import CgroupError


class V2Manager(Manager):
    mode = "unified"

    def __init__(self, *, path: str, mount: str, **kw):
        super().__init__(**kw)
        self.path = path
        self.mount = mount

    @property
    def paths(self) -> dict[str, str]:
        return {"": self.path}

    def _leaf_dirs(self) -> list[str]:
        return [self.path]

    def _dir_mounts(self) -> list[tuple[str, str]]:
        return [(self.path, self.mount)]

    # ---- lifecycle -----------------------------------------------------------------------------------
    def create(self) -> None:
        try:
            self._mkdir_p(self.path, self.mount)
        except CgroupError as e:
            if not (self.rootless and getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS)):
                raise
        # like runc, enable every controller the root offers all the way down (so stats see them)
        avail = self._available()
        if avail:
            self._enable(avail, strict=False)

    def _available(self) -> list[str]:
        try:
            return read(self.mount, "cgroup.controllers").split()
        except CgroupError:
            return []

    def _ancestors(self) -> list[str]:
        rel = os.path.relpath(self.path, self.mount)
        out, cur = [self.mount], self.mount
        for part in ([] if rel == "." else rel.split("/"))[:-1]:
            cur = os.path.join(cur, part)
            out.append(cur)
        return out

    def _enable(self, ctrls: list[str], strict: bool = True, what: str = "") -> None:
        """Make ``ctrls`` available in the container's cgroup: ``+c`` in each ancestor's subtree_control."""
        avail = set(self._available())
        missing = [c for c in ctrls if c not in avail]
        if missing and strict:
            raise CgroupError(f"cannot set {what or missing[0]}: the {missing[0]} controller is not available "
                              f"in {self.mount} (cgroup.controllers: {' '.join(sorted(avail)) or 'none'})")
        ctrls = [c for c in ctrls if c in avail]
        for d in self._ancestors():
            try:
                enabled = set(read(d, "cgroup.subtree_control").split())
            except CgroupError:
                enabled = set()
            todo = [c for c in ctrls if c not in enabled]
            if not todo:
                continue
            try:
                self.write(d, "cgroup.subtree_control", " ".join("+" + c for c in todo))
            except CgroupError:
                for c in todo:   # one by one, so one refusal does not hide the others
                    try:
                        self.write(d, "cgroup.subtree_control", "+" + c)
                    except CgroupError:
                        if strict:
                            raise

    def add_pid(self, pid: int) -> None:
        try:
            self.write(self.path, "cgroup.procs", pid)
        except CgroupError as e:
            if not (self.rootless and getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS)):
                raise

    # ---- resources -----------------------------------------------------------------------------------
    def apply(self, resources: dict | None, *, update: bool = False) -> None:
        r = resources or {}
        d = self.path
        cpu = r.get("cpu") or {}
        if cpu:
            self._cpu(cpu)
        if cpu.get("cpus") or cpu.get("mems"):
            self._enable(["cpuset"], what="cpuset")
            if cpu.get("cpus"):
                self.write(d, "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                self.write(d, "cpuset.mems", cpu["mems"])
        if r.get("memory"):
            self._memory(r["memory"])
        pids = r.get("pids") or {}
        if pids.get("limit") is not None and not (update and pids["limit"] == 0):
            self._enable(["pids"], what="pids limit")
            self.write(d, "pids.max", convert.limit_str(int(pids["limit"])))
        if r.get("blockIO"):
            self._io(r["blockIO"])
        if r.get("hugepageLimits"):
            self._hugetlb(r["hugepageLimits"])
        if r.get("rdma"):
            self._enable(["rdma"], what="rdma limit")
            for dev, lim in r["rdma"].items():
                cmd = dev + "".join(f" {k}={lim[j]}" for j, k in (("hcaHandles", "hca_handle"),
                                                                  ("hcaObjects", "hca_object"))
                                    if lim.get(j) is not None)
                if cmd == dev:
                    raise CgroupError(f"rdma device {dev}: one of hcaHandles or hcaObjects is required")
                self.write(d, "rdma.max", cmd)
        net = r.get("network") or {}
        if net.get("classID") or net.get("priorities"):
            log.warning("linux.resources.network (net_cls/net_prio) has no cgroup v2 equivalent; ignored")
        if r.get("devices") is not None:
            self._devices(r["devices"])
        if r.get("unified"):
            self._unified(r["unified"])

    def _cpu(self, c: dict) -> None:
        d = self.path
        shares, quota, period = int(c.get("shares") or 0), int(c.get("quota") or 0), int(c.get("period") or 0)
        rt_runtime, rt_period = int(c.get("realtimeRuntime") or 0), int(c.get("realtimePeriod") or 0)
        burst, idle = c.get("burst"), c.get("idle")
        if not (shares or quota or period or rt_runtime or rt_period or burst is not None or idle is not None):
            return
        self._enable(["cpu"], what="cpu limit")
        if idle is not None:
            self.write(d, "cpu.idle", idle)
        if shares:
            self.write(d, "cpu.weight", convert.shares_to_weight(shares))
        if burst is not None and quota > 0 and burst > quota:
            raise CgroupError(f"invalid cpu burst {burst}: larger than the quota {quota}")
        burst_failed = False
        if burst is not None:
            try:
                self.write(d, "cpu.max.burst", burst)
            except CgroupError as e:
                if getattr(e, "errno", None) != errno.EINVAL or not (quota or period):
                    raise
                burst_failed = True   # may need the new quota first; retried below
        if quota or period:
            cur_q, cur_p = (read(d, "cpu.max").split() + ["max", "100000"])[:2] if os.path.exists(
                os.path.join(d, "cpu.max")) else ("max", "100000")
            # a zero means unchanged: keep the current half instead of resetting it (runc writes "max")
            q = ("max" if quota < 0 else str(quota)) if quota else cur_q
            p = str(period) if period else cur_p
            self.write(d, "cpu.max", f"{q} {p}")
            if burst_failed:
                self.write(d, "cpu.max.burst", burst)
        if rt_runtime or rt_period:
            if not os.path.exists(os.path.join(d, "cpu.rt_runtime_us")):
                raise CgroupError("cannot set realtime cpu limits: not supported on cgroup v2 by this kernel")
            if rt_period:
                self.write(d, "cpu.rt_period_us", rt_period)
            if rt_runtime:
                self.write(d, "cpu.rt_runtime_us", rt_runtime)

    def _memory(self, m: dict) -> None:
        d = self.path
        limit, swap = int(m.get("limit") or 0), int(m.get("swap") or 0)
        reservation = int(m.get("reservation") or 0)
        for k in ("kernel", "kernelTCP"):
            if m.get(k):
                log.warning("linux.resources.memory.%s has no cgroup v2 equivalent; ignored", k)
        if m.get("swappiness") is not None and m["swappiness"] != -1:
            log.warning("linux.resources.memory.swappiness has no cgroup v2 equivalent; ignored")
        if m.get("disableOOMKiller"):
            log.warning("linux.resources.memory.disableOOMKiller has no cgroup v2 equivalent; ignored")
        if m.get("useHierarchy") is False:
            log.warning("linux.resources.memory.useHierarchy=false: cgroup v2 is always hierarchical; ignored")
        swap_v2 = convert.memory_swap_to_v2(swap, limit)
        # swap == limit converts to 0, which here means "no swap" (runc drops it as "unset")
        swap_set = swap != 0 or swap_v2 != 0
        if not (limit or swap_set or reservation):
            return
        self._enable(["memory"], what="memory limit")
        if swap_set:
            val = convert.limit_str(swap_v2)
            try:
                self.write(d, "memory.swap.max", val)
            except CgroupError as e:
                # no swap accounting: setting "no swap" or "unlimited swap" is trivially true
                if not (getattr(e, "errno", None) == errno.ENOENT and val in ("max", "0")):
                    raise
        if limit:
            if m.get("checkBeforeUpdate") and limit > 0:
                usage = read_int(d, "memory.current", default=0)
                if limit < usage:
                    raise CgroupError(f"rejecting memory limit {limit} lower than current memory usage {usage}")
            self.write(d, "memory.max", convert.limit_str(limit))
        if reservation:
            self.write(d, "memory.low", convert.limit_str(reservation))

    def _io(self, b: dict) -> None:
        d = self.path
        weight, leaf = int(b.get("weight") or 0), int(b.get("leafWeight") or 0)
        wdev = b.get("weightDevice") or []
        thr = [("rbps", b.get("throttleReadBpsDevice") or []), ("wbps", b.get("throttleWriteBpsDevice") or []),
               ("riops", b.get("throttleReadIOPSDevice") or []), ("wiops", b.get("throttleWriteIOPSDevice") or [])]
        if leaf or any(w.get("leafWeight") for w in wdev):
            raise CgroupError("cannot set blkio leaf weight: not supported on cgroup v2")
        if not (weight or wdev or any(v for _, v in thr)):
            return
        self._enable(["io"], what="blkio limit")
        bfq = os.path.exists(os.path.join(d, "io.bfq.weight"))
        if weight:
            if bfq:
                self.write(d, "io.bfq.weight", weight)
            else:
                self.write(d, "io.weight", convert.blkio_weight_to_io_weight(weight))
        for wd in wdev:
            if wd.get("weight"):
                if bfq:
                    self.write(d, "io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}")
                else:
                    self.write(d, "io.weight",
                               f"{wd['major']}:{wd['minor']} {convert.blkio_weight_to_io_weight(wd['weight'])}")
        for key, entries in thr:
            for td in entries:
                rate = int(td["rate"])
                # v1 takes rate 0 as "remove the limit"; v2 spells that "max"
                self.write(d, "io.max", f"{td['major']}:{td['minor']} {key}={rate if rate else 'max'}")

    def _hugetlb(self, limits: list) -> None:
        d = self.path
        self._enable(["hugetlb"], what="hugepage limit")
        for h in limits:
            size = convert.page_size_name(convert.page_size_bytes(h.get("pageSize", "")))
            if not os.path.exists(os.path.join(d, f"hugetlb.{size}.max")):
                raise CgroupError(f"cannot set hugepage limit: page size {h.get('pageSize')} is not supported "
                                  f"({d}/hugetlb.{size}.max does not exist)")
            self.write(d, f"hugetlb.{size}.max", h["limit"])
            if os.path.exists(os.path.join(d, f"hugetlb.{size}.rsvd.max")):
                self.write(d, f"hugetlb.{size}.rsvd.max", h["limit"])

    def _unified(self, unified: dict) -> None:
        avail = set(self._available())
        for key, value in unified.items():
            if "/" in key or key in ("", ".", ".."):
                raise CgroupError(f"unified resource {key!r} must be a file name (no slashes)")
            ctrl, dot, _ = key.partition(".")
            if not dot:
                raise CgroupError(f"unified resource {key!r} must be in the form CONTROLLER.PARAMETER")
            if ctrl != "cgroup" and ctrl in avail:
                self._enable([ctrl], what=f"unified resource {key!r}")
            # one write per line, so that multi-line values (io.max for two devices) both land
            for line in str(value).split("\n") or [""]:
                if not line and "\n" in str(value):
                    continue
                try:
                    self.write(self.path, key, line)
                except CgroupError as e:
                    if getattr(e, "errno", None) in (errno.ENOENT, errno.EPERM) and ctrl != "cgroup" \
                            and ctrl not in avail:
                        raise CgroupError(f"unified resource {key!r} can't be set: controller {ctrl!r} "
                                          f"not available") from e
                    raise

    # ---- devices (eBPF) ------------------------------------------------------------------------------
    def _devices(self, devs: list) -> None:
        from . import devices as devmod, ebpf

        state = devmod.emulate(devmod.parse_rules(devs))
        prog = ebpf.assemble(state)
        try:
            self._install_device_program(prog)
        except CgroupError:
            if self.rootless:
                log.debug("rootless: device filter not installed")
                return
            raise

    def _install_device_program(self, prog: list) -> None:
        """Load the program, attach it with BPF_F_ALLOW_MULTI, then detach the ones attached before — so
        the cgroup is never without a filter while an update replaces it."""
        from ..kernel import bpf
        from . import ebpf

        try:
            dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CgroupError(f"open {self.path}: {e.strerror}") from e
        try:
            try:
                _, old = bpf.prog_query(dfd)
            except OSError:
                old = []
            try:
                pfd = bpf.prog_load(ebpf.encode(prog), name="ocirun_devices")
            except OSError as e:
                raise CgroupError(f"load device filter for {self.path}: {e.strerror}") from e
            try:
                bpf.prog_attach(dfd, pfd, flags=bpf.BPF_F_ALLOW_MULTI)
            except OSError as e:
                raise CgroupError(f"attach device filter to {self.path}: {e.strerror}") from e
            finally:
                os.close(pfd)   # the attachment holds its own reference
            for pid in old:
                try:
                    ofd = bpf.prog_get_fd_by_id(pid)
                except OSError:
                    continue
                try:
                    bpf.prog_detach(dfd, ofd)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        raise CgroupError(f"detach old device filter {pid} from {self.path}: {e.strerror}") from e
                finally:
                    os.close(ofd)
        finally:
            os.close(dfd)

    # ---- freezer and processes -----------------------------------------------------------------------
    def freeze(self, timeout: float = 10.0) -> None:
        freeze_v2(self, self.path, True, timeout)

    def thaw(self) -> None:
        freeze_v2(self, self.path, False, 10.0)

    def is_frozen(self) -> bool:
        return is_frozen_v2(self.path)

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        if sig == _signal.SIGKILL and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            self.write(self.path, "cgroup.kill", 1)
            return
        super().kill_all(sig)

    def stats(self) -> dict:
        from .stats import v2_stats
        return v2_stats(self.path)

    def oom_events(self) -> "OomWatcherV2":
        return OomWatcherV2(self.path)

    def to_state(self) -> dict:
        return super().to_state() | {"mount": self.mount}


def _events(d: str) -> dict[str, int]:
    try:
        return read_keyed(d, "cgroup.events")
    except CgroupError:
        return {}


def freeze_v2(mgr: Manager, d: str, frozen: bool, timeout: float) -> None:
    mgr.write(d, "cgroup.freeze", 1 if frozen else 0)
    want = 1 if frozen else 0
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        ev = _events(d)
        if "frozen" not in ev or ev["frozen"] == want:
            return
        if time.monotonic() > deadline:
            if frozen:
                mgr.write(d, "cgroup.freeze", 0)
            raise CgroupError(f"unable to {'freeze' if frozen else 'thaw'} {d}: timed out after {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def is_frozen_v2(d: str) -> bool:
    ev = _events(d)
    if "frozen" in ev:
        return ev["frozen"] == 1
    try:
        return read(d, "cgroup.freeze").strip() == "1"
    except CgroupError:
        return False


class OomWatcherV2:
    """v2 OOM notification: memory.events changes wake ``poll(POLLPRI)`` on it (kernfs_notify)."""

    def __init__(self, d: str):
        self.dir = d
        try:
            self._fd = os.open(os.path.join(d, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise CgroupError(f"open {os.path.join(d, 'memory.events')}: {e.strerror}") from e
        self._last = self.count()

    def fileno(self) -> int:
        return self._fd

    def count(self) -> int:
        ev = read_keyed(self.dir, "memory.events")
        return ev.get("oom_kill", 0) or ev.get("oom", 0)

    def wait(self, timeout: float | None = None) -> bool:
        """True when the oom/oom_kill counter has grown since the last call; False on timeout."""
        import select

        p = select.poll()
        p.register(self._fd, select.POLLPRI | select.POLLERR)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                n = self.count()
            except CgroupError:
                return False   # the cgroup is gone
            if n > self._last:
                self._last = n
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                return False
            p.poll(None if left is None else int(left * 1000) + 1)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.read(self._fd, 4096)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
