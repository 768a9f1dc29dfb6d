"""`ocirun features`: what this build supports, generated from the tables the code itself uses."""
from __future__ import annotations

from . import SPEC_VERSION
from .config import HOOK_PHASES
from .plan import CAPABILITIES, NAMESPACES, known_mount_options


def features() -> dict:
    from .lsm import apparmor_enabled, selinux_enabled

    linux = {
        "namespaces": sorted(NAMESPACES),
        "capabilities": list(CAPABILITIES),
        "cgroup": _cgroup_features(),
        "seccomp": _seccomp_features(),
        "apparmor": {"enabled": apparmor_enabled()},
        "selinux": {"enabled": selinux_enabled()},
        "intelRdt": {"enabled": False},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": True},
    }
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_PHASES),
        "mountOptions": known_mount_options(),
        "linux": linux,
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false",
                        "io.github.ocirun.version": _version()},
    }


def _version() -> str:
    from . import __version__

    return __version__


def _cgroup_features() -> dict:
    return {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True}


def _seccomp_features() -> dict:
    try:
        from . import seccomp

        return seccomp.features()
    except Exception:
        return {"enabled": False}
