"""What the v1 and v2 drivers share: reading and writing control files, making and removing directories,
freezing-then-signalling, and the state round trip.

Every write goes through :meth:`Manager.write`, which turns a kernel refusal into a :class:`CgroupError`
naming the file and the value (``write /sys/fs/cgroup/memory/x/memory.limit_in_bytes: "100": Device or
resource busy``) and, when ``journal`` is a list, records ``(path, value)`` so tests can assert the exact
order of writes (the kernel keeps only the last one in a fake tree).
"""
from __future__ import annotations

import errno
import os
from .. import signals as _signal  # a static table: `signal` imports enum
import time

from ..errors import CgroupError
from .paths import DEFAULT_PARENT

class _LazyLog:
    """``logging.getLogger("ocirun.cgroups")``, imported on the first message (logging costs ~15 ms)."""

    def __getattr__(self, name):
        import logging
        return getattr(logging.getLogger("ocirun.cgroups"), name)


log = _LazyLog()


def read(dirpath: str, name: str) -> str:
    path = os.path.join(dirpath, name)
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        err = CgroupError(f"read {path}: {e.strerror}")
        err.errno = e.errno
        raise err from e


def read_int(dirpath: str, name: str, default: int | None = None) -> int:
    """An integer file; ``max`` reads as -1.  With a default, a missing file reads as the default."""
    try:
        text = read(dirpath, name).strip()
    except CgroupError as e:
        if default is not None and getattr(e, "errno", None) == errno.ENOENT:
            return default
        raise
    if text == "max":
        return -1
    try:
        return int(text)
    except ValueError:
        raise CgroupError(f"read {os.path.join(dirpath, name)}: unexpected content {text!r}") from None


def read_keyed(dirpath: str, name: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` per line: memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in read(dirpath, name).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def exists(dirpath: str, name: str) -> bool:
    return os.path.exists(os.path.join(dirpath, name))


def read_procs(dirpath: str, recursive: bool = True) -> list[int]:
    """cgroup.procs of a cgroup and (recursive) of every cgroup below it."""
    pids: list[int] = []
    for top, dirs, _files in os.walk(dirpath) if recursive else [(dirpath, [], [])]:
        try:
            with open(os.path.join(top, "cgroup.procs")) as f:
                pids.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            continue
        except OSError as e:
            raise CgroupError(f"read {os.path.join(top, 'cgroup.procs')}: {e.strerror}") from e
    return sorted(set(pids))


class Manager:
    """One container's cgroup in every hierarchy the host has.  Built by :func:`ocirun.cgroups.for_container`
    or reopened by :func:`ocirun.cgroups.from_state` (the package picks the driver: this base class knows
    none of them, so no driver module imports back into it); concrete drivers are
    :class:`~ocirun.cgroups.v1.V1Manager` and :class:`~ocirun.cgroups.v2.V2Manager`."""

    driver = "cgroupfs"
    mode = ""

    def __init__(self, *, root: str, inner: str, container_id: str, rootless: bool = False,
                 created: list[str] | None = None):
        self.root = root
        self.inner = inner
        self.container_id = container_id
        self.rootless = rootless
        self.created: list[str] = list(created or [])
        self.journal: list[tuple[str, str]] | None = None

    # ---- the file seam -------------------------------------------------------------------------------
    def write(self, dirpath: str, name: str, value) -> None:
        path = os.path.join(dirpath, name)
        value = str(value)
        if self.journal is not None:
            self.journal.append((path, value))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as e:
            err = CgroupError(f"open {path}: {e.strerror}")
            err.errno = e.errno
            raise err from e
        try:
            os.write(fd, value.encode())
        except OSError as e:
            err = CgroupError(f'write {path}: "{value}": {e.strerror}')
            err.errno = e.errno
            raise err from e
        finally:
            os.close(fd)

    # ---- directories ---------------------------------------------------------------------------------
    def _mkdir_p(self, path: str, mount: str) -> None:
        """mkdir every missing component of ``path`` below ``mount``, remembering each one we made."""
        rel = os.path.relpath(path, mount)
        if rel.startswith(".."):
            raise CgroupError(f"cgroup path {path} escapes its hierarchy {mount}")
        parts = [] if rel == "." else rel.split("/")
        cur, i, restarts = mount, 0, 0
        while i < len(parts):
            cur = os.path.join(cur, parts[i])
            i += 1
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                if os.path.relpath(cur, mount) == DEFAULT_PARENT.lstrip("/") and cur not in self.created:
                    # ocirun's own default parent: whoever made it, the last container to go removes
                    # it (destroy ignores EBUSY/ENOTEMPTY on ancestors still in use).
                    self.created.append(cur)
                continue
            except FileNotFoundError as e:
                # A parent we found (or made) was removed meanwhile: a concurrent `delete` of the last
                # other container under the shared default parent.  Walk down again from the mount.
                if i > 1 and restarts < 8:
                    cur, i, restarts = mount, 0, restarts + 1
                    continue
                err = CgroupError(f"mkdir {cur}: {e.strerror}")
                err.errno = e.errno
                raise err from e
            except OSError as e:
                err = CgroupError(f"mkdir {cur}: {e.strerror}")
                err.errno = e.errno
                raise err from e
            if cur not in self.created:
                self.created.append(cur)
            self._on_mkdir(cur)

    def _on_mkdir(self, path: str) -> None:
        """Hook for what a new directory needs right away (v1 cpuset copies cpus/mems from its parent)."""

    def _leaf_dirs(self) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def _rmdir_retry(path: str, tries: int = 8) -> None:
        """rmdir, retrying on EBUSY while the last processes are being reaped (10 ms, doubling)."""
        delay = 0.01
        for i in range(tries):
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or i == tries - 1:
                    err = CgroupError(f"rmdir {path}: {e.strerror}")
                    err.errno = e.errno
                    raise err from e
            time.sleep(delay)
            delay *= 2

    def destroy(self) -> None:
        """Remove the directories we created, deepest first.  Sub-cgroups the container made inside its own
        cgroup go too (rmdir only, never a file).  Ancestors shared with other containers that are still in
        use (ENOTEMPTY/EBUSY) are left in place.

        Each leaf is first removed with a plain rmdir: only when the kernel refuses (EBUSY: sub-cgroups,
        or tasks still being reaped; ENOTEMPTY elsewhere) is it walked for sub-cgroups and retried — listing ten directories
        on every `delete` to find none cost more than the rmdirs themselves."""
        leaves = set(self._leaf_dirs())
        created = set(self.created)
        gone = set()
        first_err = None
        for path in sorted(created, key=lambda p: p.count("/"), reverse=True):
            try:
                if path in leaves:
                    self._rmdir_leaf(path)
                else:
                    self._rmdir_retry(path, tries=1)
                gone.add(path)
            except CgroupError as e:
                if path in leaves:
                    first_err = first_err or e
                elif getattr(e, "errno", None) not in (errno.ENOTEMPTY, errno.EBUSY):
                    first_err = first_err or e
        self.created = [p for p in self.created if p not in gone]
        if first_err is not None:
            raise first_err

    def _rmdir_leaf(self, leaf: str) -> None:
        try:
            os.rmdir(leaf)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):  # cgroupfs says EBUSY for sub-cgroups
                err = CgroupError(f"rmdir {leaf}: {e.strerror}")
                err.errno = e.errno
                raise err from e
        first_err = None
        for top, dirs, _ in os.walk(leaf, topdown=False):
            for d in dirs:
                try:
                    self._rmdir_retry(os.path.join(top, d))
                except CgroupError as e:
                    first_err = first_err or e
        if first_err is not None:
            raise first_err
        self._rmdir_retry(leaf, tries=8)

    # ---- processes -----------------------------------------------------------------------------------
    def pids(self) -> list[int]:
        return read_procs(self.path)

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Freeze, signal every process, thaw — so nothing forks in between (runc's signalAllProcesses).

        Each process is signalled through a pidfd, and only if its pid is still listed in the cgroup
        once that pidfd is open: a pid read from cgroup.procs whose process exited meanwhile (and
        whose number went to someone else) is never hit (ocirun.kernel.process)."""
        frozen = False
        try:
            self.freeze()
            frozen = True
        except CgroupError as e:
            log.debug("kill_all: cannot freeze %s: %s", self.path, e)
        try:
            pids = self.pids()
            if pids:
                from ..kernel.process import signal_listed

                signal_listed(pids, sig, self.pids)
        finally:
            if frozen:
                self.thaw()

    def frozen_from_the_start(self) -> bool:
        """Whether a process put into this cgroup now would be frozen: the cgroup exists and is frozen,
        or does not exist yet below a frozen ancestor (the freezer state is inherited).  `create`
        refuses such a cgroup rather than wait for an init stage that cannot run."""
        if self.is_frozen():
            return True
        d, kind = self._freezer_dir()
        if not d:
            return False
        while not os.path.isdir(d):
            d = os.path.dirname(d)
        if kind == "v1":
            try:
                return read(d, "freezer.state").strip() != "THAWED"
            except CgroupError:
                return False
        try:
            return "frozen 1" in read(d, "cgroup.events").splitlines()
        except CgroupError:
            return False

    def _freezer_dir(self) -> tuple[str, str]:
        """(the directory whose freezer state applies, "v1" or "v2"); ("", "") without a freezer."""
        return self.path, "v2"

    def is_empty(self) -> bool:
        """No process left in the cgroup (or below it): what `delete` waits for before the rmdirs."""
        try:
            return not self.pids()
        except CgroupError:
            return True  # gone already

    def plan_create(self) -> None:
        """Add to ``created`` every directory :meth:`create` is about to make, before it makes any.

        `create` saves the state right after this: a `create` killed at any instant then leaves no
        directory that its state does not name, and `delete --force` removes them (rmdir of one that
        was not made yet is a no-op).  The rule of :meth:`_mkdir_p` for ocirun's shared default parent
        is the same here: it is recorded whoever made it."""
        for d, mnt in self._dir_mounts():
            rel = os.path.relpath(d, mnt)
            if rel.startswith(".."):
                continue  # create() refuses it, with the error
            cur = mnt
            for part in [] if rel == "." else rel.split("/"):
                cur = os.path.join(cur, part)
                if cur in self.created:
                    continue
                if not os.path.isdir(cur) or os.path.relpath(cur, mnt) == DEFAULT_PARENT.lstrip("/"):
                    self.created.append(cur)

    def _dir_mounts(self) -> list[tuple[str, str]]:
        """(cgroup dir, its hierarchy's mountpoint) for each directory the container gets."""
        raise NotImplementedError

    def update(self, resources: dict) -> None:
        """Like :meth:`apply`, with Docker's convention that a zero means "leave as it is"."""
        self.apply(resources, update=True)

    # ---- state ---------------------------------------------------------------------------------------
    def to_state(self) -> dict:
        return {"driver": self.driver, "mode": self.mode, "root": self.root, "path": self.inner,
                "id": self.container_id, "rootless": self.rootless, "paths": self.paths,
                "created": list(self.created)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode} {self.inner}>"
