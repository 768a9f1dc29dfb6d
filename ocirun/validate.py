"""Semantic checks that a schema cannot express, run before any side effect.

What ocirun does not implement is refused here rather than silently ignored
when ignoring it would weaken isolation or surprise the user (STYLE.md §3).
"""
from __future__ import annotations

import os

from .errors import ConfigError
from .plan import NAMESPACES, PERSONALITY_DOMAINS, PERSONALITY_FLAGS, RLIMITS, sysctl_namespace

#: The checks read a parsed :class:`ocirun.config.Spec`, whose loader (config.load) calls them: config
#: is named for the annotations only, never imported (as typing.TYPE_CHECKING, without typing's ≈10 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Spec


def validate_spec(spec: Spec) -> None:
    _check_root(spec)
    _check_process(spec)
    _check_namespaces(spec)
    _check_mounts(spec)
    _check_linux(spec)


def _fail(field: str, why: str) -> None:
    raise ConfigError(f"config.json: {field}: {why}")


def _check_root(spec: Spec) -> None:
    if not os.path.isdir(spec.root_path):
        _fail("root.path", f"rootfs {spec.root_path} does not exist or is not a directory")


def _check_process(spec: Spec) -> None:
    p = spec.process
    if p is None:
        return  # allowed at create (runtime.md); `start` then fails
    if not p.args:
        _fail("process.args", "must contain at least one entry")
    if not p.cwd.startswith("/"):
        _fail("process.cwd", f"{p.cwd!r} must be an absolute path")
    seen = set()
    for i, r in enumerate(p.rlimits):
        if r.type not in RLIMITS:
            _fail(f"process.rlimits[{i}].type", f"unknown rlimit {r.type!r}")
        if r.type in seen:
            _fail(f"process.rlimits[{i}].type", f"duplicate rlimit {r.type}")
        if r.soft > r.hard:
            _fail(f"process.rlimits[{i}]", f"soft limit {r.soft} exceeds hard limit {r.hard}")
        seen.add(r.type)
    if p.oomScoreAdj is not None and not -1000 <= p.oomScoreAdj <= 1000:
        _fail("process.oomScoreAdj", f"{p.oomScoreAdj} is outside -1000..1000")
    for i, e in enumerate(p.env):
        if "=" not in e:
            _fail(f"process.env[{i}]", f"{e!r} is not of the form KEY=value")
    if p.capabilities is not None:
        bad = _cap_set_conflict(p.capabilities)
        if bad:
            _fail(*bad)
    if p.apparmorProfile:
        from .lsm import apparmor_enabled

        if not apparmor_enabled():
            _fail("process.apparmorProfile", "AppArmor is not enabled on this host")
    if p.selinuxLabel:
        from .lsm import selinux_enabled

        if not selinux_enabled():
            _fail("process.selinuxLabel", "SELinux is not enabled on this host")
    if p.scheduler or p.ioPriority or p.execCPUAffinity:
        from .sched import check_process_scheduling

        check_process_scheduling(p)


def _cap_set_conflict(caps) -> tuple[str, str] | None:
    """(field, reason) when the sets break a rule capset(2) enforces, else None: checked before
    anything is created, instead of failing with EPERM at start (runc: "unable to apply caps")."""
    def names(which):
        return {c.upper() for c in (getattr(caps, which) or [])}

    extra = sorted(names("effective") - names("permitted"))
    if extra:
        return "process.capabilities.effective", f"{', '.join(extra)} not in permitted (capset(2) refuses that)"
    extra = sorted(names("inheritable") - names("bounding"))
    if extra:
        return "process.capabilities.inheritable", f"{', '.join(extra)} not in bounding (capset(2) refuses that)"
    return None


def _check_namespaces(spec: Spec) -> None:
    linux = spec.linux
    seen = set()
    for i, ns in enumerate(linux.namespaces):
        if ns.type not in NAMESPACES:
            _fail(f"linux.namespaces[{i}].type", f"unknown namespace type {ns.type!r}")
        if ns.type in seen:
            _fail(f"linux.namespaces[{i}].type", f"duplicate namespace {ns.type}")
        seen.add(ns.type)
        if ns.path:
            _check_ns_path(i, ns.type, ns.path)
    userns = linux.namespace("user")
    if (linux.uidMappings or linux.gidMappings) and userns is None:
        _fail("linux.uidMappings", "user namespace mappings require a user namespace")
    if userns is not None and userns.path is None and not (linux.uidMappings and linux.gidMappings):
        _fail("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    if userns is not None and userns.path and (linux.uidMappings or linux.gidMappings):
        _fail("linux.uidMappings", "cannot set mappings when joining an existing user namespace")
    if linux.timeOffsets and (linux.namespace("time") is None or linux.namespace("time").path):
        _fail("linux.timeOffsets", "requires a new time namespace")
    if spec.hostname and (linux.namespace("uts") is None):
        _fail("hostname", "unable to set hostname without a private UTS namespace")
    if spec.domainname and (linux.namespace("uts") is None):
        _fail("domainname", "unable to set domainname without a private UTS namespace")
    if linux.namespace("mount") is None:
        _check_no_mount_namespace(spec)
    for key in linux.sysctl:
        ns = sysctl_namespace(key)
        if ns is None:
            _fail(f"linux.sysctl.{key}", "is not namespaced and cannot be set in a container")
        if linux.namespace(ns) is None:
            _fail(f"linux.sysctl.{key}", f"requires a private {ns} namespace")


def _check_no_mount_namespace(spec: Spec) -> None:
    """What a container that inherits the runtime's mount namespace cannot have.

    Its filesystem is built in a throw-away namespace and handed back as a detached mount
    tree (ocirun.rootfs.enter_runtime_namespace), so the host's mount table is never touched.
    Returning to the runtime's namespace needs privilege over it, which a user namespace
    takes away; the propagation of a root that is no namespace's root means nothing; and a
    detached copy leaves unbindable mounts out, so they are refused rather than dropped.
    """
    linux = spec.linux
    if linux.namespace("user") is not None:
        _fail("linux.namespaces", "a user namespace needs a mount namespace as well "
                                  "(the runtime's mount namespace cannot be re-entered from it)")
    if linux.rootfsPropagation:
        _fail("linux.rootfsPropagation", "requires a mount namespace")
    for i, m in enumerate(spec.mounts):
        if {"unbindable", "runbindable"} & set(m.options):
            _fail(f"mounts[{i}].options", "unbindable mounts require a mount namespace")


def _check_ns_path(i: int, nstype: str, path: str) -> None:
    """The namespace file must exist and be of the declared type (checked with NS_GET_NSTYPE)."""
    from .kernel.nsfs import ns_type

    flag = NAMESPACES[nstype][0]
    if not os.path.isabs(path):
        _fail(f"linux.namespaces[{i}].path", f"{path!r} must be absolute")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        _fail(f"linux.namespaces[{i}].path", f"open {path}: {e.strerror}")
    try:
        try:
            actual = ns_type(fd)
        except OSError:
            _fail(f"linux.namespaces[{i}].path", f"{path} is not a namespace file")
        if actual != flag:
            _fail(f"linux.namespaces[{i}].path", f"{path} is not a {nstype} namespace")
    finally:
        os.close(fd)


def _check_mounts(spec: Spec) -> None:
    for i, m in enumerate(spec.mounts):
        opts = set(m.options)
        if (m.uidMappings or m.gidMappings) and not (m.uidMappings and m.gidMappings):
            _fail(f"mounts[{i}]", "uidMappings and gidMappings must be given together")
        if opts & {"idmap", "ridmap"} or m.uidMappings:
            if not ({"bind", "rbind"} & opts or m.type == "bind"):
                _fail(f"mounts[{i}].options", "idmapped mounts are only supported for bind mounts")
            if not m.uidMappings and spec.linux.namespace("user") is None:
                _fail(f"mounts[{i}].options", "idmap without uidMappings requires a user namespace")


def _check_linux(spec: Spec) -> None:
    linux = spec.linux
    if linux.personality:
        if linux.personality.get("domain") not in PERSONALITY_DOMAINS:
            _fail("linux.personality.domain", f"unknown domain {linux.personality.get('domain')!r}")
        for f in linux.personality.get("flags") or []:
            if f not in PERSONALITY_FLAGS:
                _fail("linux.personality.flags", f"unknown flag {f!r}")
    if linux.rootfsPropagation and linux.rootfsPropagation not in (
            "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"):
        _fail("linux.rootfsPropagation", f"unknown propagation {linux.rootfsPropagation!r}")
    for i, d in enumerate(linux.devices):
        if not d.path.startswith("/"):
            _fail(f"linux.devices[{i}].path", f"{d.path!r} must be an absolute path")
        if d.type not in ("c", "b", "u", "p"):
            _fail(f"linux.devices[{i}].type", f"unknown device type {d.type!r}")
    if linux.mountLabel:
        from .lsm import selinux_enabled

        if not selinux_enabled():
            _fail("linux.mountLabel", "SELinux is not enabled on this host")
    if linux.memoryPolicy is not None:
        from .mempolicy import plan as mempolicy_plan

        mempolicy_plan(linux.memoryPolicy)
    if linux.intelRdt is not None:
        from .intelrdt import check as intelrdt_check

        intelrdt_check(linux.intelRdt)
    if linux.netDevices:
        from .netdev import check

        check(linux.netDevices, linux.namespace("network") is not None)
    if linux.timeOffsets:
        for clock in linux.timeOffsets:
            if clock not in ("monotonic", "boottime"):
                _fail(f"linux.timeOffsets.{clock}", "only monotonic and boottime can be offset")
