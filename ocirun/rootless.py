"""Rootless operation: when ocirun runs without real root, and where its state lives then.

runc's rules, so that an engine that drives both sees the same behaviour:

* ``--rootless true|false|auto`` (default auto).  Auto means rootless when the
  effective uid is not 0, or when we are root only inside a user namespace that
  does not map the whole id range (rootless podman's ``ocirun`` runs as uid 0
  there, and cannot create host cgroups).  Rootless only changes how cgroup
  errors are treated: a cgroup we cannot create or join is skipped, unless the
  config asks for a limit that then has nowhere to go (an error, as runc's
  "container could not join or create cgroup").
* The state root defaults to ``$XDG_RUNTIME_DIR/ocirun`` for a non-root user
  (and for "root" in a user namespace whose ``$USER`` is not root), else
  ``/run/ocirun``.

Nothing else differs: the user namespace, its single-id mapping, binding
devices instead of mknod and the /sys bind all follow from the config itself
(``ocirun spec --rootless`` writes one) and from the kernel's refusals.
"""
from __future__ import annotations

import os

FULL_RANGE = 4294967295


def in_userns(uid_map: str = "/proc/self/uid_map") -> bool:
    """True unless our user namespace maps the whole id range onto itself (the initial namespace)."""
    try:
        with open(uid_map) as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    first = lines[0].split()
    return not (len(first) == 3 and first[0] == "0" and first[1] == "0" and int(first[2]) == FULL_RANGE)


def resolve(value: str | None, euid: int | None = None, userns: bool | None = None) -> bool:
    """The effective rootless setting for ``--rootless VALUE`` (None = the default, auto)."""
    v = "auto" if value is None or value is True else str(value).lower()
    if v == "true":
        return True
    if v == "false":
        return False
    if v != "auto":
        from .errors import OciError

        raise OciError(f'invalid value "{value}" for flag --rootless: expected true, false or auto')
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return True
    return in_userns() if userns is None else userns


def honor_xdg(env=os.environ, euid: int | None = None, userns: bool | None = None) -> bool:
    """Whether the state root goes under $XDG_RUNTIME_DIR (runc's shouldHonorXDGRuntimeDir)."""
    if not env.get("XDG_RUNTIME_DIR"):
        return False
    if (os.geteuid() if euid is None else euid) != 0:
        return True
    if not (in_userns() if userns is None else userns):
        return False
    return env.get("USER", "") != "root"


def default_root(system_root: str, env=os.environ) -> str:
    """``$XDG_RUNTIME_DIR/ocirun`` when :func:`honor_xdg`, else ``system_root``."""
    if honor_xdg(env):
        return os.path.join(env["XDG_RUNTIME_DIR"], "ocirun")
    return system_root


def prepare_xdg_root(root: str) -> None:
    """Make the default state root under $XDG_RUNTIME_DIR as runc does for its own: mode 0700 plus
    the sticky bit, which tells the session manager's periodic cleanup (XDG Base Directory spec)
    to leave it alone.  Done on every command that uses the default root, as runc's ``Before``."""
    from .errors import OciError

    try:
        os.makedirs(root, 0o700, exist_ok=True)
    except OSError as e:
        raise OciError(f"the path in $XDG_RUNTIME_DIR must be writable by the user: mkdir {root}: "
                       f"{e.strerror}") from None
    try:
        if os.stat(root).st_mode & 0o7777 != 0o1700:
            os.chmod(root, 0o1700)
    except OSError as e:
        raise OciError(f"you should check permission of the path in $XDG_RUNTIME_DIR: chmod {root}: "
                       f"{e.strerror}") from None


# ---- the user namespace's maps, written by an unprivileged parent ---------------------------------
def _own_single(maps, own_id: int) -> bool:
    return len(maps) == 1 and maps[0].size == 1 and maps[0].hostID == own_id


def needs_gid_helper(gid_mappings, egid: int | None = None) -> bool:
    """True when an unprivileged parent needs newgidmap for this mapping (anything beyond its own gid).

    Decided before the init stage starts: with only our own gid mapped, the kernel requires
    ``setgroups`` to be denied in the new namespace, so the container cannot call setgroups(2)."""
    return not _own_single(gid_mappings, os.getegid() if egid is None else egid)


def write_maps(pid: int, uid_mappings, gid_mappings) -> None:
    """Write the maps of the user namespace of ``pid`` as a non-root user.

    Our own single id is written directly (after denying setgroups, which the kernel requires
    for the gid map); anything else goes through the setuid helpers newuidmap/newgidmap of the
    ``uidmap`` package, which check it against /etc/subuid and /etc/subgid.
    """
    from .errors import InitError

    if not _own_single(uid_mappings, os.geteuid()):
        _helper("newuidmap", pid, uid_mappings, "/etc/subuid")
    else:
        _write(pid, "uid_map", uid_mappings)
    if needs_gid_helper(gid_mappings):
        _helper("newgidmap", pid, gid_mappings, "/etc/subgid")
    else:
        try:
            _write_text(pid, "setgroups", "deny")
        except OSError as e:
            raise InitError(f"write /proc/{pid}/setgroups ('deny'): {getattr(e, 'reason', e.strerror)}") from None
        _write(pid, "gid_map", gid_mappings)


def _write_text(pid: int, name: str, text: str) -> None:
    from .procfs import write

    write(f"{pid}/{name}", text, private=False)  # the host's /proc (a rootless parent cannot clone it)


def _write(pid: int, name: str, maps) -> None:
    from .errors import InitError
    from .procfs import ProcfsError, write_id_map

    try:
        write_id_map(pid, name, maps)  # the host's /proc (a rootless parent cannot clone it)
    except ProcfsError as e:
        raise InitError(e.strerror) from None


def _helper(tool: str, pid: int, maps, ranges_file: str) -> None:
    """Run newuidmap/newgidmap PID  containerID hostID size ...  (found on the system PATH only)."""
    import subprocess

    from .errors import InitError

    path = next((p for p in (f"/usr/bin/{tool}", f"/bin/{tool}", f"/usr/sbin/{tool}") if os.path.isfile(p)),
                None)
    if path is None:
        raise InitError(f"rootless: the mapping needs {tool} (package uidmap), which is not installed; "
                        f"map only your own id, or install it")
    argv = [path, str(pid)]
    for m in maps:
        argv += [str(m.containerID), str(m.hostID), str(m.size)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, close_fds=True)
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace").strip().replace("\n", "; ")[:300]
        raise InitError(f"rootless: {' '.join(argv)} failed (check the ranges in {ranges_file}): {out}")
