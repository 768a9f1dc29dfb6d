"""Start the kernel's RCU grace period of the first ``cgroup.procs`` write early, in a thread.

Every ``cgroup.procs`` write takes the kernel's one global ``cgroup_threadgroup_rwsem`` for writing;
the first writer after a quiet period waits for an RCU grace period (``rcu_sync_enter``), ≈5–20 ms
here, and one that comes within a grace period after the previous writer left does not wait.  With
the stages forked (ocirun.stagefork) nothing else is left to overlap that wait, so `create` and `exec`
were spending it on their critical path, after reading the config.  :func:`start` writes our own pid
into the cgroup we are already in (a no-op move) from a thread, right at the start of the command:
the grace period then passes while the command reads and checks its config, and the container's
writes a few ms later find the rwsem warm.  (On cgroup v1 the write holds ``cgroup_mutex`` during
the wait, so a ``mkdir`` of the container's cgroup waits for it too: it starts no later than before.)

Best effort: any failure (no cgroupfs, no permission, a cgroup outside our mounts) is ignored.
"""
from __future__ import annotations

import os


_started = False
#: held by the thread while it runs (ocirun.stagefork.single_threaded tells it from an embedder's threads)
_running = None


def start() -> None:
    """Start the thread, once per process (the command line starts it as soon as it knows the command;
    ``container.Runtime.create`` and ``exec`` start it for the Python API's callers)."""
    global _started, _running
    if _started:
        return
    _started = True
    import _thread

    # Imported here, in the calling thread: the thread must not hold an import lock when the command
    # forks a stage (ocirun.stagefork), or the child could wait for it for ever.
    from . import paths  # noqa: F401
    _running = _thread.allocate_lock()
    _running.acquire()
    try:
        _thread.start_new_thread(_warm, ())
    except RuntimeError:
        _running.release()


def alive() -> bool:
    """Whether the thread is still running.  It holds no lock a forked child could need: it takes no
    import lock (what it runs was imported by :func:`start`), and the files it reads and writes (two in
    procfs, one cgroup file) are its own objects, which the child never touches."""
    return _running is not None and _running.locked()


def _warm() -> None:
    try:
        _write_own_procs()
    finally:
        _running.release()


def _write_own_procs() -> None:
    try:
        path = own_procs_file()
        if path is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")  # "0": the writing process itself
        finally:
            os.close(fd)
    except BaseException:  # a thread's exception would be printed: nothing here may reach the caller
        pass


def own_procs_file(root: str = "/sys/fs/cgroup", mountinfo: str = "/proc/self/mountinfo",
                   proc_self_cgroup: str = "/proc/self/cgroup") -> str | None:
    """``cgroup.procs`` of the cgroup we are in, in one mounted hierarchy (the unified one when there
    is one); None when our cgroup is not visible under any mount (then we must not write anywhere)."""
    import posixpath

    from .paths import detect, read_own_cgroups

    layout = detect(root, mountinfo)
    own = read_own_cgroups(proc_self_cgroup)
    if layout.v2 is not None and "" in own:
        mount, path = layout.v2, own[""]
    else:
        for ctrl, mount in layout.v1.items():
            if ctrl in own:
                path = own[ctrl]
                break
        else:
            return None
    if mount.root != "/":
        rel = posixpath.relpath(path, mount.root)
        if rel == ".." or rel.startswith("../"):
            return None
    else:
        rel = path.lstrip("/")
    return posixpath.join(mount.mountpoint, rel, "cgroup.procs") if rel not in ("", ".") else \
        posixpath.join(mount.mountpoint, "cgroup.procs")
