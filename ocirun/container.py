"""The state machine: create, start, state, kill, delete, list, run.

Each operation takes the container's lock, derives the status from the
process (never from the file alone) and refuses what runtime.md forbids in that
status, with runc's wording.
"""
from __future__ import annotations

import os
import time

from .signals import SIGKILL
from .errors import ContainerExists, InvalidState, NotRunning, OciError
from .state import (CREATED, PAUSED, RUNNING, STOPPED, ContainerState, StateDir, list_ids, read_start_time,
                    refresh)


class Runtime:
    """Operations on the containers under one state root."""

    def __init__(self, root: str, log):
        self.root = root
        self.log = log

    # -- helpers --------------------------------------------------------------------------------
    def _dir(self, cid: str) -> StateDir:
        return StateDir(self.root, cid)

    def load(self, cid: str) -> tuple[StateDir, ContainerState]:
        sd = self._dir(cid)
        st = sd.load()
        return sd, refresh(sd, st)

    # -- create ---------------------------------------------------------------------------------
    def create(self, cid: str, opts) -> ContainerState:
        from . import launcher

        sd = self._dir(cid)
        # The init stage (a fresh interpreter: ≈15–20 ms until it waits for CONFIG) boots while we
        # validate the config; it only waits for CONFIG, and is killed and reaped if we stop here.
        init = launcher.spawn_init(preserve_fds=opts.preserve_fds, stdio=opts.stdio)
        handed = False
        try:
            from . import config

            opts.bundle = os.path.abspath(opts.bundle)
            spec = config.load(opts.bundle)  # validation: nothing has changed on the system yet
            if spec.process is not None and spec.process.terminal and not opts.console_socket:
                # runc's checkTerminal: a detached container's pty master must go somewhere.
                raise config.ConfigError("process.terminal is true but no --console-socket was given "
                                         "(cannot allocate a tty for a detached container)")
            os.makedirs(self.root, mode=0o700, exist_ok=True)  # runc's mode (the state dirs below are 0711)
            try:
                os.mkdir(sd.path, 0o711)
            except FileExistsError:
                raise ContainerExists(cid) from None
            lock = sd.lock()
            try:
                if spec.process is not None and os.environ.get("NOTIFY_SOCKET"):
                    from . import notify  # systemd's NOTIFY_SOCKET: relayed from the container by `start`

                    spec = notify.prepare(spec, sd.path, opts.bundle)
                handed = True  # from here launcher.create kills and reaps the init on failure
                return launcher.create(spec, sd, opts, self.log, init=init)
            except BaseException:
                _remove_dir(sd.path)
                raise
            finally:
                os.close(lock)
        finally:
            if not handed:
                launcher.discard_init(*init)

    # -- start ----------------------------------------------------------------------------------
    def start(self, cid: str) -> ContainerState:
        sd = self._dir(cid)
        if not sd.exists():
            sd.load()  # raises ContainerNotFound with runc's wording
        lock = sd.lock()
        relay = None
        try:
            st = refresh(sd, sd.load())
            if st.status == STOPPED:
                raise InvalidState("cannot start a container that has stopped")
            if st.status != CREATED:
                raise InvalidState("cannot start an already running container" if st.status == RUNNING
                                   else f"cannot start a container in the {st.status} state")
            relay = _notify_relay(sd)
            err = _connect_and_wait(sd, st)
            _remove_file(sd.start_socket)
            st.status = RUNNING
            if err is not None:
                # A startContainer hook (or the switch to the container's user) failed:
                # "stop the container, and continue the lifecycle at step 12".
                self._kill_and_wait(st)
                self._destroy(sd, st, _saved_hooks(st))
                raise OciError(err)
            self._poststart(sd, st)
        except BaseException:
            if relay is not None:
                relay.close()
            raise
        finally:
            os.close(lock)
        if relay is not None:  # outside the lock: waiting for READY must not block `delete`
            relay.relay(os.environ["NOTIFY_SOCKET"], st.pid,
                        lambda: read_start_time(st.pid) == st.pid_start)
        return st

    def _poststart(self, sd: StateDir, st: ContainerState) -> None:
        hooks = _saved_hooks(st)
        if not hooks.poststart:
            return
        from .hooks import run_phase

        try:
            run_phase("poststart", hooks.poststart, st.hook_state())
        except OciError:
            # runtime.md step 9: generate an error, stop the container, continue at step 12.
            self._kill_and_wait(st)
            self._destroy(sd, st, hooks)
            raise

    # -- state / list -----------------------------------------------------------------------------
    def state(self, cid: str) -> ContainerState:
        return self.load(cid)[1]

    def list(self) -> list[ContainerState]:
        """Every container under the root, ``owner`` set as runc's list sets it (see :func:`owner_of`)."""
        out = []
        for cid in list_ids(self.root):
            try:
                sd, st = self.load(cid)
                st.owner = owner_of(sd.path)
            except (OciError, FileNotFoundError):  # removed meanwhile
                continue
            except ValueError as e:  # a corrupt state.json: the others are still listed, as runc lists them
                if self.log is not None:
                    self.log.warning(f"load container {cid}: {e}")
                continue
            out.append(st)
        return out

    # -- kill -------------------------------------------------------------------------------------
    def kill(self, cid: str, sig: int, all_procs: bool = False) -> None:
        sd, st = self.load(cid)
        if st.status not in (CREATED, RUNNING, PAUSED) or st.pid <= 0:
            raise NotRunning()
        if all_procs and st.cgroup:
            from .cgroups import Manager

            Manager.from_state(st.cgroup).kill_all(sig)
            return
        try:
            os.kill(st.pid, sig)
        except ProcessLookupError:
            raise NotRunning() from None
        if sig == SIGKILL and st.status in (PAUSED, CREATED) and st.cgroup:
            # A frozen task acts on SIGKILL only once thawed (cgroup v1); runc thaws for SIGKILL only.
            # CREATED too: refresh() reports a paused created container as "created".
            from .cgroups import Manager

            try:
                mgr = Manager.from_state(st.cgroup)
                if mgr.is_frozen():
                    mgr.thaw()
            except OciError:
                pass

    # -- delete -----------------------------------------------------------------------------------
    def delete(self, cid: str, force: bool = False) -> None:
        sd = self._dir(cid)
        if not sd.exists():
            sd.load()
        lock = sd.lock()
        try:
            try:
                st = refresh(sd, sd.load())
            except OciError:
                if force:  # a half-made container (create was killed): just remove what is there
                    _remove_dir(sd.path)
                    return
                raise
            if st.status != STOPPED:
                if not force:
                    if st.status == "creating":
                        raise InvalidState(f"cannot delete container {cid} while it is being created")
                    raise InvalidState(f"cannot delete container {cid} that is not stopped: {st.status}")
                self._kill_and_wait(st)
            self._destroy(sd, st, _saved_hooks(st))
        finally:
            os.close(lock)

    def _kill_and_wait(self, st: ContainerState) -> None:
        if st.cgroup:
            try:
                from .cgroups import Manager

                mgr = Manager.from_state(st.cgroup)
                if mgr.is_frozen():
                    mgr.thaw()
                mgr.kill_all(SIGKILL)
            except OciError:
                pass
        if st.pid <= 0:
            return
        try:
            os.kill(st.pid, SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            start = read_start_time(st.pid)
            if start is None or start != st.pid_start:
                break
            try:
                os.waitpid(st.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.002)

    def _destroy(self, sd: StateDir, st: ContainerState, hooks) -> None:
        """Step 12 (undo create) then step 13 (poststop hooks, failures are warnings)."""
        if st.cgroup:
            from .cgroups import Manager

            Manager.from_state(st.cgroup).destroy()
        if st.intel_rdt:
            from .intelrdt import remove

            remove(st.intel_rdt)
        _remove_dir(sd.path)
        if hooks.poststop:
            from .hooks import run_phase

            st.status = STOPPED
            for i, hook in enumerate(hooks.poststop):
                try:
                    run_phase("poststop", [hook], st.hook_state())
                except OciError as e:
                    self.log.warning(str(e))


def owner_of(path: str) -> str:
    """The user name of ``path``'s owner, or ``#uid`` without one: runc's list OWNER (the state dir's
    owner, so a rootless user's containers show that user, root's show root)."""
    import pwd

    uid = os.stat(path).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _notify_relay(sd: StateDir):
    """NOTIFY_SOCKET set and the container made for it at create: bind its socket (ocirun.notify)."""
    if not os.environ.get("NOTIFY_SOCKET") or not os.path.isdir(os.path.join(sd.path, "notify")):
        return None
    from .notify import Relay

    return Relay(sd.path)


def _saved_hooks(st: ContainerState):
    """The hooks as they were at create time (config.json may have changed since, runtime.md step 2).

    config is imported only when there are hooks to run.
    """
    if not any(st.hooks.get(p) for p in ("poststart", "poststop")):
        return _NO_HOOKS
    from .config import Hooks

    return Hooks.parse(st.hooks)


class _NoHooks:
    poststart: list = []
    poststop: list = []


_NO_HOOKS = _NoHooks()


def _connect_and_wait(sd: StateDir, st: ContainerState) -> str | None:
    """Connect to the start socket (wakes the init), read until EOF; return the init's error, if any.

    The init answers "0" once woken, then either execs (its end is close-on-exec:
    EOF) or sends "E<message>" if a startContainer hook or the privilege switch failed.
    """
    # _socket, not socket: the socket module imports enum, which costs more than this whole call.
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    dirfd = os.open(sd.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(sd.start_socket)}")
    except OSError as e:
        s.close()
        return f"connect to the container's init: {e.strerror}"
    finally:
        os.close(dirfd)
    data = b""
    s.settimeout(0.1)
    try:
        while True:
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                if read_start_time(st.pid) != st.pid_start:
                    break
                continue
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data:
        return "container init exited before start"
    if data.startswith(b"0E"):
        return data[2:].decode(errors="replace")
    return None


def _remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_dir(path: str) -> None:
    """Remove a container's state dir (flat: state.json, lock, exec.sock) without importing shutil."""
    try:
        entries = list(os.scandir(path))  # the d_type of getdents: no stat per entry
    except FileNotFoundError:
        return
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            _remove_dir(e.path)
        else:
            _remove_file(e.path)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
