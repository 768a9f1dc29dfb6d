"""The one way a container goes away: kill every process, wait (bounded), remove what create made.

Used by `delete` (with or without ``--force``, whatever the status), `run`'s exit (a forced
delete), `start` when the woken init reports a failure, the failure paths of `create` and
`restore`; `kill --all` uses :func:`signal_container`.  What it does, in order:

1. **Kill** every process in the container's cgroup, whatever the status says: a stopped
   container whose program left a background child (no pid namespace to take it down with
   pid 1) still has it there, and its cgroups cannot be removed while it lives.  SIGKILL goes
   through ``cgroup.kill`` where the kernel has it (cgroup v2 and the unified hierarchy of the
   hybrid layout: one write, frozen tasks included), else freeze / signal each pid / thaw, each
   pid by pidfd (ocirun.kernel.process); a cgroup frozen by the v1 freezer is thawed so the
   signal acts.  The init itself is signalled through a pidfd opened only once its start time
   matched the recorded one, so a reused pid is never hit (this also covers a container that
   has no cgroup of its own, such as a rootless one without delegation).
2. **Wait** until the cgroup is empty and the init has exited, for at most :data:`KILL_TIMEOUT`
   seconds, re-sending the kill from time to time (a process moved in meanwhile); if something
   survives, fail with the state left in place, so that `delete` can be tried again.
3. **Remove** the cgroups (only directories create recorded), the resctrl group, anything
   mounted below the state directory (restore's criu-root), then the state directory.

Step 3 trusts the state's record of what was made.  `create` and `restore` write that record
*before* they make anything (``Manager.plan_create``), so a create killed at any instant leaves
nothing that a forced delete of its id cannot find.
"""
from __future__ import annotations

import os
import time

from .errors import OciError
from .signals import SIGKILL

#: How long the processes of a container get to exit after SIGKILL (memory-heavy ones take time
#: to tear down their address space; a task stuck in uninterruptible sleep may never go).
KILL_TIMEOUT = 10.0


class Process:
    """The container's init as the state records it: pid + start time, pinned by a pidfd if alive."""

    def __init__(self, pid: int, start: int):
        self.pid, self.start = pid, start
        self.fd = None
        if pid > 0:
            from .kernel.process import pidfd_open
            from .state import read_start_time

            self.fd = pidfd_open(pid)
            # Checked after the open: the pidfd names whoever has the pid now, so a match means it is ours.
            if read_start_time(pid) != start or not start:
                self.close()

    def alive(self) -> bool:
        if self.fd is not None:
            from .kernel.process import wait_exited

            return not wait_exited(self.fd, 0)
        if self.pid <= 0:
            return False
        from .kernel.process import HAVE_PIDFD
        from .state import read_start_time

        return not HAVE_PIDFD and read_start_time(self.pid) == self.start

    def kill(self) -> None:
        if self.fd is not None:
            from .kernel.process import pidfd_signal

            pidfd_signal(self.fd, SIGKILL)
        elif self.alive():  # no pidfds on this kernel: kill(2) after the start-time check
            from .kernel.process import kill

            try:
                kill(self.pid, SIGKILL)
            except ProcessLookupError:
                pass

    def reap(self) -> None:
        """Collect it if it is our child (`run` is a subreaper); anyone else's reaps it themselves."""
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def manager(cgroup: dict | None):
    """The cgroup manager of a state's ``cgroup`` record, or None (no cgroup was recorded)."""
    if not cgroup:
        return None
    from .cgroups import from_state

    return from_state(cgroup)


def kill_all(mgr, init: Process | None, timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL every process of the container and wait until none is left; raise if some survive.

    Cheap when there is nothing to kill (a stopped container with a pid namespace): one read of
    cgroup.procs, and the init's pidfd was never opened."""
    busy = mgr is not None and not mgr.is_empty()
    if not busy and (init is None or not init.alive()):
        return
    if busy:
        _kill_cgroup(mgr)
    if init is not None:
        init.kill()
    deadline = time.monotonic() + timeout
    resend = time.monotonic() + 0.5
    delay = 0.001
    while True:
        if init is not None:
            init.reap()
        init_gone = init is None or not init.alive()
        if init_gone and (mgr is None or mgr.is_empty()):
            return
        now = time.monotonic()
        if now > deadline:
            left = "" if mgr is None else f" (cgroup {mgr.path} still has {len(mgr.pids())} process(es))"
            raise OciError(f"container's processes did not exit within {timeout:g}s after SIGKILL{left}")
        if now > resend and mgr is not None:
            _kill_cgroup(mgr, per_pid=True)  # one moved in since (or not reachable through cgroup.kill)
            resend = now + 0.5
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _kill_cgroup(mgr, per_pid: bool = False) -> None:
    from .cgroups import CgroupError
    from .cgroups.base import Manager

    try:
        if per_pid:
            fs = getattr(mgr, "fs", mgr)  # systemd: the cgroupfs side
            Manager.kill_all(fs, SIGKILL)  # freeze, signal each listed pid by pidfd, thaw
        else:
            mgr.kill_all(SIGKILL)
        if mgr.is_frozen():  # v1 freezer: a frozen task acts on SIGKILL once thawed
            mgr.thaw()
    except CgroupError as e:
        if mgr.is_empty():
            return
        raise OciError(f"kill the container's processes: {e}") from None


def signal_container(cgroup: dict, sig: int) -> None:
    """`kill --all`: ``sig`` to every process in the container's cgroup, whatever the status (runc's
    signalAllProcesses); nothing to do, and no error, when the cgroup is gone or empty."""
    mgr = manager(cgroup)
    if mgr is not None:
        mgr.kill_all(sig)


def destroy(sd, st, init: Process | None = None, timeout: float = KILL_TIMEOUT) -> None:
    """Steps 1–3 of the module docstring for the container of state dir ``sd`` and record ``st``."""
    mgr = manager(st.cgroup)
    own = init is None
    if own:
        init = Process(st.pid, st.pid_start)
    try:
        kill_all(mgr, init, timeout)
    finally:
        if own:
            init.close()
    if mgr is not None:
        mgr.destroy()
    if st.intel_rdt:
        from .intelrdt import remove

        remove(st.intel_rdt)
    remove_state_dir(sd.path)


def remove_state_dir(path: str) -> None:
    """Remove a container's state dir (state.json, lock, exec.sock, notify/), unmounting first what is
    mounted below it (restore's bind of the rootfs at criu-root, left there by a killed `restore`):
    the walk below must never descend into a mount, which would delete the files of the rootfs."""
    try:
        entries = list(os.scandir(path))  # the d_type of getdents: no stat per entry
    except FileNotFoundError:
        return
    if any(e.is_dir(follow_symlinks=False) for e in entries):
        _unmount_below(path)
        entries = list(os.scandir(path))
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            remove_state_dir(e.path)
        else:
            try:
                os.unlink(e.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _unmount_below(path: str) -> None:
    from . import mountinfo
    from .kernel import linux as k

    real = os.path.realpath(path)
    below = sorted((m.mountpoint for m in mountinfo.read("/proc/self/mountinfo")
                    if m.mountpoint.startswith(real.rstrip("/") + "/")), key=len, reverse=True)
    for mp in below:
        try:
            k.umount2(mp, k.MNT_DETACH | k.UMOUNT_NOFOLLOW)
        except OSError as e:
            import errno

            if e.errno != errno.EINVAL:  # EINVAL: a mount stacked on the same point, gone with the first
                raise OciError(f"unmount {mp}: {e.strerror}") from None
