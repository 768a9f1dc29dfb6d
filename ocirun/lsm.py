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

Every attr write goes through :class:`ProcAttrWriter`: a private, non-recursive clone of the
/proc mount (open_tree without AT_RECURSIVE carries none of the mounts stacked on /proc
subpaths), opened beneath it with no symlinks and no mount crossing, and checked to be procfs.
A container that bind-mounts something over /proc/self/attr/exec (or races one in, the
CVE-2025-52881 class) cannot redirect these writes.
"""
from __future__ import annotations

import os

from .kernel import linux as k


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
_UNLABELLED = {"proc", "sysfs", "mqueue", "cgroup", "cgroup2", "bind", "none"}


def labelled_mount_data(fstype: str | None, bind: bool, data: str, label: str | None) -> str:
    """The mount's data string with ``context="label"`` added where runc adds it."""
    if not label or bind or (fstype or "") in _UNLABELLED:
        return data
    opt = f'context="{label}"'
    return f"{data},{opt}" if data else opt


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
_write, _close = os.write, os.close  # seams for the unit tests (the fake kernel's fds are not real)
_RESOLVE = k.RESOLVE_BENEATH | k.RESOLVE_NO_XDEV | k.RESOLVE_NO_SYMLINKS | k.RESOLVE_NO_MAGICLINKS


class ProcAttrWriter:
    """Writes this thread's /proc attr files through a private procfs handle (see the module doc).

    Needs CAP_SYS_ADMIN over the current mount namespace (open_tree clone), so it is used before
    the privilege switch.  The init and exec stages are single-threaded: the main thread's id is the
    pid, and ``<pid>/task/<pid>`` is what /proc/thread-self names.
    """

    def __init__(self, proc: str = "/proc", write=None, close=None):
        self._write, self._close = write or _write, close or _close
        try:
            self.procfd = k.open_tree(k.AT_FDCWD, proc, k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC)
        except OSError as e:
            raise OSError(e.errno, f"open a private handle on {proc}: {e.strerror}") from None
        try:
            magic, _ = k.fstatfs(self.procfd)
            if magic != k.PROC_SUPER_MAGIC:
                raise OSError(1, f"{proc} is not procfs (refusing to write security attributes there)")
        except BaseException:
            self.close()
            raise
        self.task = f"{os.getpid()}/task/{os.getpid()}"

    def write(self, names: tuple[str, ...], value: str, what: str) -> str:
        """Write ``value`` to the first of ``attr/<name>`` that exists; return the path written."""
        err = None
        for name in names:
            path = f"{self.task}/attr/{name}"
            try:
                fd = k.openat2(self.procfd, path, os.O_WRONLY | os.O_CLOEXEC, 0, _RESOLVE)
            except FileNotFoundError as e:
                err = e
                continue
            except OSError as e:
                raise OSError(e.errno, f"{what}: open /proc/{path}: {e.strerror}") from None
            try:
                magic, _ = k.fstatfs(fd)
                if magic != k.PROC_SUPER_MAGIC:
                    raise OSError(1, f"{what}: /proc/{path} is not on procfs (refusing a redirected write)")
                self._write(fd, value.encode())
            except OSError as e:
                if e.strerror and e.strerror.startswith(what):
                    raise
                raise OSError(e.errno, f"{what}: write /proc/{path}: {e.strerror}") from None
            finally:
                self._close(fd)
            return path
        raise OSError(err.errno if err else 2, f"{what}: no /proc/thread-self/attr/{' or attr/'.join(names)}")

    def close(self) -> None:
        if self.procfd is not None:
            self._close(self.procfd)
            self.procfd = None


def set_exec_labels(apparmor_profile: str | None, selinux_label: str | None, writer=None) -> None:
    """Label the next execve of this thread (AppArmor profile, SELinux process label)."""
    writes = exec_attr_writes(apparmor_profile, selinux_label)
    if not writes:
        return
    w = writer or ProcAttrWriter()
    try:
        for names, value in writes:
            what = "apparmor failed to apply profile" if names[0].startswith("apparmor") \
                else "selinux failed to set the process label"
            w.write(names, value, what)
    finally:
        if writer is None:
            w.close()


def set_keyring_label(selinux_label: str | None, writer=None) -> None:
    """The label of keyrings this thread creates next (the container's session keyring)."""
    if not selinux_label:
        return
    w = writer or ProcAttrWriter()
    try:
        w.write(("keycreate",), selinux_label, "selinux failed to set the keyring label")
    finally:
        if writer is None:
            w.close()
