"""Where the cgroup filesystems are, which mode the host runs, and where a container's cgroup goes.

Everything here is pure over three inputs that tests replace: the cgroup root (``/sys/fs/cgroup``), a
mountinfo file (``/proc/self/mountinfo``) and the runtime's own cgroup file (``/proc/self/cgroup``).

Mode detection
    ``unified``  a cgroup2 filesystem is mounted at the root itself;
    ``hybrid``   v1 hierarchies under the root *and* a cgroup2 mount at ``<root>/unified`` (systemd's
                 hybrid layout) — driven as v1, the container's cgroup is also made in the unified tree;
    ``v1``       only v1 hierarchies under the root.

cgroupsPath semantics (cgroupfs driver; same as runc's ``fs``/``fs2`` managers)
    absolute  ``/a/b``  → ``<mount>/a/b`` in every hierarchy (each v1 controller's mountpoint, or the v2 root).
    relative  ``a/b``   → relative to the runtime's own cgroup, read from ``/proc/self/cgroup``: on v1 per
                          hierarchy (runc ``subsysPath``: ``GetOwnCgroupPath(subsystem)/a/b``); on v2 relative
                          to the *parent* of the own cgroup (runc ``fs2._defaultDirPath``: the own cgroup has
                          processes in it, so no controllers could be enabled below it).
    absent              → ``/ocirun/<id>`` (absolute).  runc uses the relative path ``<id>``, which puts the
                          container under whatever cgroup the caller happens to run in; a fixed absolute
                          default is predictable and is what ``ps``/``delete`` in a later process reopen.
    Paths are cleaned like runc's ``utils.CleanPath``: ``..`` cannot climb above the root (``a/../../x`` →
    ``x``).  The root cgroup itself (``/``, ``.``) is refused: limits on it would hit the whole host and
    ``delete`` would try to remove it.
"""
from __future__ import annotations

import os
import posixpath
from ..errors import CgroupError
from ..mountinfo import parse

DEFAULT_PARENT = "/ocirun"

MODE_V1 = "v1"
MODE_HYBRID = "hybrid"
MODE_UNIFIED = "unified"


class Mount:
    """One cgroup mount: ``root`` is the mount's root inside the hierarchy (field 4 of mountinfo),
    ``controllers`` the v1 controllers (``["cpu", "cpuacct"]``, ``["name=systemd"]``; empty for cgroup2)."""
    __slots__ = ("mountpoint", "root", "fstype", "controllers")

    def __init__(self, mountpoint: str, root: str, fstype: str, controllers: list[str] | None = None):
        self.mountpoint, self.root, self.fstype = mountpoint, root, fstype
        self.controllers = list(controllers or [])

    def __repr__(self) -> str:
        return f"Mount({self.mountpoint!r}, {self.root!r}, {self.fstype!r}, {self.controllers!r})"


_V1_NON_CONTROLLER_OPTS = {"rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime", "nodiratime",
                           "strictatime", "clone_children", "noprefix", "xattr", "cpuset_v2_mode",
                           "favordynmods", "memory_localevents", "memory_recursiveprot",
                           "memory_hugetlb_accounting", "nsdelegate"}


def parse_mountinfo(text: str) -> list[Mount]:
    """Return every cgroup and cgroup2 mount in a mountinfo text, in file order."""
    mounts = []
    for m in parse(text, ("cgroup", "cgroup2")):
        ctrls = []
        if m.fstype == "cgroup":
            for opt in m.super_options.split(","):
                if opt.startswith("name=") or (opt not in _V1_NON_CONTROLLER_OPTS and "=" not in opt):
                    ctrls.append(opt)
        mounts.append(Mount(m.mountpoint, m.root, m.fstype, ctrls))
    return mounts


def read_mountinfo(mountinfo: str) -> list[Mount]:
    try:
        with open(mountinfo) as f:
            return parse_mountinfo(f.read())
    except OSError as e:
        raise CgroupError(f"read {mountinfo}: {e.strerror}") from e


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class Layout:
    """The cgroup filesystems found under one root: ``v1`` maps each controller (or name=X) to its mount,
    ``v2`` is the unified mount (the root itself in unified mode, ``<root>/unified`` in hybrid)."""
    __slots__ = ("mode", "root", "v1", "v2")

    def __init__(self, mode: str, root: str, v1: dict | None = None, v2: Mount | None = None):
        self.mode, self.root, self.v1, self.v2 = mode, root, dict(v1 or {}), v2


def detect(root: str = "/sys/fs/cgroup", mountinfo: str = "/proc/self/mountinfo") -> Layout:
    """Work out v1 / hybrid / unified from the mounts at and below ``root``."""
    root = posixpath.normpath(root)
    mounts = [m for m in read_mountinfo(mountinfo) if _under(m.mountpoint, root)]
    # The last mount on a mountpoint wins (it hides the earlier ones).
    at_root = [m for m in mounts if m.mountpoint == root]
    if at_root and at_root[-1].fstype == "cgroup2":
        return Layout(MODE_UNIFIED, root, v2=at_root[-1])
    layout = Layout(MODE_V1, root)
    for m in mounts:
        if m.fstype == "cgroup":
            for c in m.controllers:
                layout.v1.setdefault(c, m)
        elif m.mountpoint == posixpath.join(root, "unified"):
            layout.v2 = m
    if not layout.v1:
        if layout.v2 is not None:   # only a cgroup2 below the root: treat that as the unified root
            return Layout(MODE_UNIFIED, layout.v2.mountpoint, v2=layout.v2)
        raise CgroupError(f"no cgroup filesystem mounted at or under {root}")
    if layout.v2 is not None:
        layout.mode = MODE_HYBRID
    return layout


def read_own_cgroups(proc_self_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """Map each hierarchy's controllers (and "" for v2) to this process's cgroup path in it."""
    out: dict[str, str] = {}
    try:
        with open(proc_self_cgroup) as f:
            text = f.read()
    except OSError as e:
        raise CgroupError(f"read {proc_self_cgroup}: {e.strerror}") from e
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if ctrls == "":
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


def clean_path(path: str) -> str:
    """runc's CleanPath: resolve ``..`` lexically without climbing above ``/``; keep relative relative."""
    if "\0" in path:
        raise CgroupError(f"invalid cgroupsPath {path!r}: contains a NUL byte")
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.startswith("/"):
        return cleaned
    return cleaned.lstrip("/")


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """The container's cgroup path as the spec gives it, cleaned, with the default applied."""
    if not cgroups_path:
        return posixpath.join(DEFAULT_PARENT, container_id)
    p = clean_path(cgroups_path)
    if p in ("/", ""):
        raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}: refusing to use the root cgroup")
    return p


def _join_in_mount(m: Mount, cgroup_path: str) -> str:
    """Directory of the cgroup ``cgroup_path`` (as /proc/self/cgroup names it) inside mount ``m``."""
    rel = posixpath.relpath(cgroup_path, m.root) if m.root != "/" else cgroup_path.lstrip("/")
    if rel == "." or rel.startswith("../") or rel == "..":
        # our own cgroup is outside what this mount shows (cgroup namespace, bind of a subtree):
        # the best we can do is the mount's root
        rel = ""
    return posixpath.normpath(posixpath.join(m.mountpoint, rel))


def v1_dir(m: Mount, inner: str, own: dict[str, str]) -> str:
    if inner.startswith("/"):
        return posixpath.normpath(m.mountpoint + inner)
    own_path = "/"
    for c in m.controllers:
        if c in own:
            own_path = own[c]
            break
    return posixpath.normpath(posixpath.join(_join_in_mount(m, own_path), inner))


def v2_dir(m: Mount, inner: str, own: dict[str, str]) -> str:
    if inner.startswith("/"):
        return posixpath.normpath(m.mountpoint + inner)
    parent = posixpath.dirname(own.get("", "/").rstrip("/")) or "/"
    return posixpath.normpath(posixpath.join(_join_in_mount(m, parent), inner))


def parse_systemd_path(cgroups_path: str | None, container_id: str) -> tuple[str, str, str]:
    """``slice:prefix:name`` → (slice, prefix, name); runc's default is ``system.slice:runc:<id>``."""
    if not cgroups_path:
        return "system.slice", "ocirun", container_id
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError(f"expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, "
                          f"got \"{cgroups_path}\" instead")
    slice_, prefix, name = parts
    if "/" in slice_ or "/" in prefix or "/" in name:
        raise CgroupError(f"invalid systemd cgroupsPath {cgroups_path!r}: no '/' allowed")
    return slice_ or "system.slice", prefix, name


def systemd_running(run_dir: str = "/run/systemd/system") -> bool:
    """sd_booted(3): systemd is the init system iff this directory exists."""
    return os.path.isdir(run_dir)
