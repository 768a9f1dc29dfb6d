"""Every write the runtime makes into procfs, through one verified handle.

Why: a path such as ``/proc/sys/net/ipv4/ip_forward`` or ``/proc/self/oom_score_adj`` means
whatever is mounted there *now*.  A mount stacked on a /proc subpath (an allowed lxcfs-style
overmount, a createContainer hook, a mount racing in through a shared peer group, a joined mount
namespace the container prepared) can put another procfs file there, say a host process's
``oom_score_adj`` or ``/proc/sys/kernel/core_pattern``, and an "is the fd on procfs" check still
passes (CVE-2025-52881).  So no procfs write resolves a path through the live /proc:

* inside a mount namespace we do not trust (the container's, after pivot_root, or one joined by
  path) the handle is ``open_tree(OPEN_TREE_CLONE)`` of /proc *without* AT_RECURSIVE: a private,
  detached copy of the procfs mount alone, which carries none of the mounts stacked below it;
* from the host side (the parent writing a child's ``uid_map``; a rootless parent cannot clone
  a mount) the handle is /proc itself, whose mounts the container cannot touch;
* either way the handle must be the *root* of a procfs (a bind of ``/proc/<pid>`` or of
  ``/proc/sys`` onto /proc is refused), every file is opened beneath it with openat2
  (RESOLVE_BENEATH | NO_XDEV | NO_SYMLINKS | NO_MAGICLINKS: no mount is crossed, no link
  followed) and checked again to be on procfs before the write;
* ``self`` and ``thread-self`` are resolved by reading those links *through the handle*, which
  names us as that procfs's pid namespace sees us (our getpid() may be another number there).

Users: sysctl, oom_score_adj and the LSM attr files (:mod:`ocirun.stage.create`, :mod:`ocirun.lsm`,
:mod:`ocirun.stage.exec` through it), time namespace offsets, uid/gid maps and setgroups
(:mod:`ocirun.launcher`, :mod:`ocirun.rootless`, :mod:`ocirun.idmap`), an exec'd process's
oom_score_adj (:mod:`ocirun.exec`).
"""
from __future__ import annotations

import os

from .kernel import linux as k

#: procfs's root directory inode (PROC_ROOT_INO)
PROC_ROOT_INO = 1
RESOLVE = k.RESOLVE_BENEATH | k.RESOLVE_NO_XDEV | k.RESOLVE_NO_SYMLINKS | k.RESOLVE_NO_MAGICLINKS

# seams for the unit tests (the fake kernel's fds are not real)
_write, _close, _fstat, _readlink = os.write, os.close, os.fstat, os.readlink


def _why(e: OSError) -> str:
    """The kernel's reason alone (the kernel seam prefixes the syscall's name to strerror)."""
    return os.strerror(e.errno) if e.errno else str(e.strerror)


class ProcfsError(OSError):
    """An OSError whose text names the file; ``reason`` is the bare cause, for callers with their own wording."""

    def __init__(self, errno: int, text: str, reason: str | None):
        super().__init__(errno, text)
        self.reason = reason or text


class Procfs:
    """A verified handle on a procfs root; ``with Procfs() as p: p.write("sys/kernel/x", "1")``.

    ``private`` (the default) clones the mount, which needs CAP_SYS_ADMIN over the current mount
    namespace: use it from the init and exec stages before the privilege switch.  ``private=False``
    is for the runtime's own (host) mount namespace only.
    """

    def __init__(self, proc: str = "/proc", private: bool = True):
        self.proc, self.procfd, self._links = proc, None, {}
        try:
            if private:
                self.procfd = k.open_tree(k.AT_FDCWD, proc, k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC)
            else:
                self.procfd = os.open(proc, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            what = "open a private handle on" if private else "open"
            raise ProcfsError(e.errno, f"{what} {proc}: {_why(e)}", _why(e)) from None
        try:
            magic, _ = k.fstatfs(self.procfd)
            if magic != k.PROC_SUPER_MAGIC:
                raise ProcfsError(1, f"{proc} is not procfs (refusing to write there)", "not procfs")
            if _fstat(self.procfd).st_ino != PROC_ROOT_INO:
                raise ProcfsError(1, f"{proc} is not the root of a procfs (refusing to write there)",
                                  "not a procfs root")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Procfs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _resolve(self, path: str) -> str:
        """``self/x`` → ``<pid>/x`` and ``thread-self/x`` → ``<pid>/task/<tid>/x``, as this procfs names us."""
        head, sep, rest = path.partition("/")
        if head not in ("self", "thread-self"):
            return path
        if head not in self._links:
            try:
                self._links[head] = _readlink(head, dir_fd=self.procfd)
            except OSError as e:  # not visible in this procfs's pid namespace
                raise ProcfsError(e.errno, f"resolve /proc/{head} in {self.proc}: {_why(e)}", _why(e)) from None
        return self._links[head] + sep + rest

    def write(self, paths: str | tuple[str, ...], value: str, what: str | None = None) -> str:
        """Write ``value`` to the first of ``paths`` (relative to the procfs root) that exists.

        Returns the path written, as resolved.  Errors name ``what`` (if given) and the file."""
        pre = f"{what}: " if what else ""
        candidates = (paths,) if isinstance(paths, str) else paths
        err = None
        for path in candidates:
            path = self._resolve(path)
            try:
                fd = k.openat2(self.procfd, path, os.O_WRONLY | os.O_CLOEXEC, 0, RESOLVE)
            except FileNotFoundError as e:
                if len(candidates) > 1:
                    err = e
                    continue
                raise ProcfsError(e.errno, f"{pre}open /proc/{path}: {_why(e)}", _why(e)) from None
            except OSError as e:
                raise ProcfsError(e.errno, f"{pre}open /proc/{path}: {_why(e)}", _why(e)) from None
            try:
                if k.fstatfs(fd)[0] != k.PROC_SUPER_MAGIC:
                    raise ProcfsError(1, f"{pre}/proc/{path} is not on procfs (refusing a redirected write)",
                                      "not on procfs (refusing a redirected write)")
                _write(fd, value.encode())
            except ProcfsError:
                raise
            except OSError as e:
                raise ProcfsError(e.errno, f"{pre}write /proc/{path}: {_why(e)}", _why(e)) from None
            finally:
                _close(fd)
            return path
        names = " or ".join(f"/proc/{p}" for p in candidates)
        raise ProcfsError(err.errno if err else 2, f"{pre}no {names}", _why(err) if err else None)

    def close(self) -> None:
        if self.procfd is not None:
            _close(self.procfd)
            self.procfd = None


def write(path: str, value: str, what: str | None = None, proc: str = "/proc", private: bool = True) -> str:
    """One write through a handle of its own (see :class:`Procfs` for ``private``)."""
    with Procfs(proc, private) as p:
        return p.write(path, value, what)


def _field(m, name: str) -> int:
    """A mapping entry's field: config.json's dicts (mounts) or parsed records (linux.uidMappings)."""
    return m[name] if isinstance(m, dict) else getattr(m, name)


def id_map_text(maps) -> str:
    """The kernel's uid_map/gid_map format: one ``containerID hostID size`` line per mapping."""
    return "".join(f"{_field(m, 'containerID')} {_field(m, 'hostID')} {_field(m, 'size')}\n" for m in maps)


def write_id_map(pid: int, name: str, maps, proc: Procfs | None = None) -> None:
    """Write ``maps`` to /proc/PID/NAME (``uid_map`` or ``gid_map``) of a user namespace we made.

    Through ``proc`` if given, else through a handle of its own on the host's /proc
    (``private=False``: the parent side, whose mounts the container cannot touch; a rootless parent
    cannot clone it).  A failure is a :class:`ProcfsError` worded
    ``write /proc/PID/NAME ('0 1000 1'): REASON`` (its ``reason`` the bare cause), for callers
    that re-raise it as their own error type."""
    text = id_map_text(maps)
    try:
        if proc is None:
            write(f"{pid}/{name}", text, private=False)
        else:
            proc.write(f"{pid}/{name}", text)
    except OSError as e:
        reason = getattr(e, "reason", e.strerror)
        raise ProcfsError(e.errno, f"write /proc/{pid}/{name} ({text.strip()!r}): {reason}", reason) from None
