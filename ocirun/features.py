"""`ocirun features`: what this build supports, generated from the tables the code itself uses.

Every list below is the very object the code that acts on the config consults (validate.py, plan.py,
the seccomp translator, mempolicy.py, security.py), never a copy: a name cannot be reported without
being handled, nor handled without being reported.  tests/linux/test_features_truth.py tries each
item on this machine, and tests/unit/test_feature_table.py keeps the README's table in step.

Booleans that describe the host rather than the runtime (apparmor, selinux, seccomp ``enabled`` and
``supportedFlags``) are read from the running kernel, as features-linux.md asks; the others say what
the runtime implements "irrespective of the availability on the host" (intelRdt, idmap, netDevices).
"""
from __future__ import annotations

from . import SPEC_VERSION
from .config import HOOK_PHASES
from .plan import CAPABILITIES, NAMESPACES, known_mount_options


def unsafe_annotations() -> list[str]:
    """config.json annotations that change what ocirun does (features.md; a trailing "." is a prefix)."""
    from .checkpoint import CRIU_CONFIG_ANNOTATION
    from .security import KEEP_GROUPS_ANNOTATION

    return [KEEP_GROUPS_ANNOTATION, CRIU_CONFIG_ANNOTATION]


def features() -> dict:
    from .lsm import apparmor_enabled, selinux_enabled
    from .mempolicy import FLAGS as MPOL_FLAGS, MODES as MPOL_MODES

    linux = {
        "namespaces": sorted(NAMESPACES),
        "capabilities": list(CAPABILITIES),
        "cgroup": _cgroup_features(),
        "seccomp": _seccomp_features(),
        "apparmor": {"enabled": apparmor_enabled()},
        "selinux": {"enabled": selinux_enabled()},
        # ocirun.intelrdt: closID/l3CacheSchema/memBwSchema/schemata and enableMonitoring (mon_groups)
        "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
        "memoryPolicy": {"modes": list(MPOL_MODES), "flags": list(MPOL_FLAGS)},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": True},
    }
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_PHASES),
        "mountOptions": known_mount_options(),
        "linux": linux,
        # checkpoint/restore are implemented (ocirun.checkpoint; they need a working criu, as runc's)
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "true",
                        "io.github.ocirun.version": _version()},
        "potentiallyUnsafeConfigAnnotations": unsafe_annotations(),
    }


def _version() -> str:
    from . import __version__

    return __version__


def _cgroup_features() -> dict:
    """v1, v2 (and the hybrid layout) by cgroupfs; the systemd driver when its module is part of this
    build (ocirun.cgroups.systemd); the user-manager (rootless) systemd mode is refused there."""
    from importlib.util import find_spec

    systemd = find_spec("ocirun.cgroups.systemd") is not None
    return {"v1": True, "v2": True, "systemd": systemd, "systemdUser": False, "rdma": True}


def _seccomp_features() -> dict:
    try:
        from . import seccomp

        return seccomp.features()
    except Exception:
        return {"enabled": False}
