"""Linux security modules: which one is active, and applying a container's labels when it is.

What runc does (checked on a kernel with no LSM, runc 1.1.5), and what we do:

* ``process.selinuxLabel`` without SELinux: runc refuses ("selinux label is specified in config,
  but selinux is disabled or not supported"); so do we, at create, naming the field.
* ``process.apparmorProfile`` without AppArmor: runc fails at create ("apparmor failed to apply
  profile: write /proc/self/attr/exec: invalid argument"); we refuse before anything is made.
* ``linux.mountLabel`` without SELinux: runc passes ``context=`` to the mounts and the kernel
  rejects the first one (EINVAL); we refuse up front.  (Silently running unlabelled would drop
  confinement the config asked for.)

When the LSM is active the labels are applied as runc applies them: the SELinux label as the
session keyring's label (``attr/keycreate``, before the keyring is made) and as the exec label
(``attr/exec``); the AppArmor profile as ``exec <profile>`` on ``attr/apparmor/exec`` (``attr/exec``
on kernels without the per-LSM directory); both take effect at the container program's execve.
The mount label becomes a ``context="..."`` option of the mounts runc labels (tmpfs, devpts and
other plain filesystems; not proc, sysfs, mqueue, cgroup or binds).

Every attr write goes through :class:`ocirun.procfs.Procfs` (the one procfs writer of the
runtime): a private, non-recursive clone of the /proc mount (open_tree without AT_RECURSIVE carries
none of the mounts stacked on /proc subpaths), ``thread-self`` read through it, the attr file opened
beneath it with no symlinks and no mount crossing, and checked to be procfs.  A container that
bind-mounts something over /proc/self/attr/exec (or races one in, the CVE-2025-52881 class) cannot
redirect these writes.  The caller may pass its own open handle (``writer``) to share one clone.
"""
from __future__ import annotations

import os

from .procfs import Procfs


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y" and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(" - selinuxfs " in line for line in f)
    except OSError:
        return False


# ---- what to write ---------------------------------------------------------------------------------
#: Filesystem types whose mount gets the mount label (runc: every mount that goes through its generic
#: path; proc, sysfs, mqueue, cgroup and binds do not).
def exec_attr_writes(apparmor_profile: str | None, selinux_label: str | None) -> list[tuple[tuple[str, ...], str]]:
    """The attr writes that label the next execve, in order: (candidate attr names, value).

    AppArmor first, then SELinux, as runc does; the first candidate name that exists is used."""
    out = []
    if apparmor_profile:
        out.append((("apparmor/exec", "exec"), f"exec {apparmor_profile}"))
    if selinux_label:
        out.append((("exec",), selinux_label))
    return out


# ---- how to write it ----------------------------------------------------------------------------------
def _attr_paths(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"thread-self/attr/{name}" for name in names)


def set_exec_labels(apparmor_profile: str | None, selinux_label: str | None, writer=None) -> None:
    """Label the next execve of this thread (AppArmor profile, SELinux process label)."""
    writes = exec_attr_writes(apparmor_profile, selinux_label)
    if not writes:
        return
    w = writer or Procfs()
    try:
        for names, value in writes:
            what = "apparmor failed to apply profile" if names[0].startswith("apparmor") \
                else "selinux failed to set the process label"
            w.write(_attr_paths(names), value, what)
    finally:
        if writer is None:
            w.close()


def set_keyring_label(selinux_label: str | None, writer=None) -> None:
    """The label of keyrings this thread creates next (the container's session keyring)."""
    if not selinux_label:
        return
    w = writer or Procfs()
    try:
        w.write(_attr_paths(("keycreate",)), selinux_label, "selinux failed to set the keyring label")
    finally:
        if writer is None:
            w.close()
