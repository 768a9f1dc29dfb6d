"""Control groups: one :class:`Manager` per container over cgroup v1, v2 or the hybrid layout.

Public API::

    mgr = for_container(spec_cgroups_path, container_id)     # mode detected from root + mountinfo
    mgr.create(); mgr.apply(linux_resources); mgr.add_pid(pid)
    mgr.update(resources)            # zeros mean unchanged (Docker's update JSON)
    mgr.freeze(); mgr.thaw(); mgr.is_frozen(); mgr.pids(); mgr.kill_all(signal.SIGKILL)
    mgr.stats()                      # runc `events --stats` "data" object
    w = mgr.oom_events(); w.wait(timeout); w.count(); w.close()
    mgr.destroy()                    # only what create() made, deepest first
    state["cgroups"] = mgr.to_state(); ... from_state(state["cgroups"])
    mgr = manager_of(container_state) # the cgroup a container's state records (pause, update, ps...)

Path semantics and mode detection: :mod:`ocirun.cgroups.paths`.  Drivers: :mod:`.v1` (also hybrid) and
:mod:`.v2`; ``--systemd-cgroup``: :mod:`.systemd` (a transient scope over D-Bus, :mod:`.dbus`, then the
same cgroupfs writes); the device list model shared by both: :mod:`.devices`, its eBPF form: :mod:`.ebpf`.
Only :mod:`.paths` and :mod:`.base` are imported here; drivers load on first use.
"""
from __future__ import annotations

from .base import Manager
from .paths import MODE_HYBRID, MODE_UNIFIED, MODE_V1, detect
from ..errors import CgroupError

__all__ = ["Manager", "for_container", "from_state", "manager_of", "detect_mode", "CgroupError",
           "MODE_V1", "MODE_HYBRID", "MODE_UNIFIED"]


def detect_mode(root: str = "/sys/fs/cgroup", mountinfo: str = "/proc/self/mountinfo") -> str:
    """``"v1"``, ``"hybrid"`` or ``"unified"``."""
    return detect(root, mountinfo).mode


def for_container(cgroups_path: str | None, container_id: str, *, root: str = "/sys/fs/cgroup",
                  mountinfo: str = "/proc/self/mountinfo", systemd: bool = False, rootless: bool = False,
                  proc_self_cgroup: str = "/proc/self/cgroup", devices: list | None = None) -> Manager:
    """The manager for one container's cgroup (nothing is created until :meth:`Manager.create`).

    ``devices``: the device rules the container will get; the systemd driver starts its unit with them
    (cgroupfs writes every limit in :meth:`Manager.apply`)."""
    from . import paths as P
    if systemd:
        from . import systemd as sd

        def build_fs(abs_path: str) -> Manager:
            return for_container(abs_path, container_id, root=root, mountinfo=mountinfo,
                                 proc_self_cgroup=proc_self_cgroup)
        return sd.for_container(cgroups_path, container_id, build_fs=build_fs, rootless=rootless, devices=devices)
    layout = P.detect(root, mountinfo)
    inner = P.inner_path(cgroups_path, container_id)
    own = P.read_own_cgroups(proc_self_cgroup) if not inner.startswith("/") else {}
    common = dict(root=layout.root, inner=inner, container_id=container_id, rootless=rootless)
    if layout.mode == MODE_UNIFIED:
        from .v2 import V2Manager
        return V2Manager(path=P.v2_dir(layout.v2, inner, own), mount=layout.v2.mountpoint, **common)
    from .v1 import V1Manager
    paths, mounts = {}, {}
    for ctrl, m in layout.v1.items():
        paths[ctrl] = P.v1_dir(m, inner, own)
        mounts[ctrl] = m.mountpoint
    if layout.mode == MODE_HYBRID:
        paths[""] = P.v2_dir(layout.v2, inner, own)
        mounts[""] = layout.v2.mountpoint
    return V1Manager(paths=paths, mounts=mounts, hybrid=layout.mode == MODE_HYBRID, **common)


def from_state(d: dict) -> Manager:
    """Reopen a manager saved with :meth:`Manager.to_state` (by a later ``delete``/``pause``/``update``)."""
    if isinstance(d, dict) and d.get("driver") == "systemd" and {"unit", "paths", "root", "path"} <= set(d):
        from . import systemd as sd
        return sd.from_state(d, from_state(d | {"driver": "cgroupfs"}))
    if not isinstance(d, dict) or d.get("driver") != "cgroupfs":
        raise CgroupError(f"unsupported cgroup state: {d!r:.200}")
    common = dict(root=d["root"], inner=d["path"], container_id=d.get("id", ""),
                  rootless=bool(d.get("rootless")), created=d.get("created") or [])
    if d.get("mode") == MODE_UNIFIED:
        from .v2 import V2Manager
        return V2Manager(path=d["paths"][""], mount=d["mount"], **common)
    from .v1 import V1Manager
    return V1Manager(paths=d["paths"], mounts=d["mounts"], hybrid=d.get("mode") == MODE_HYBRID, **common)


def manager_of(st) -> Manager:
    """The manager of the cgroup container state ``st`` records (ocirun.state.ContainerState);
    an OciError naming the container when it records none."""
    if not st.cgroup:
        from ..errors import OciError

        raise OciError(f"container {st.id} has no cgroup recorded in its state")
    return from_state(st.cgroup)
