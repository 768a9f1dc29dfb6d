"""The containers under one state root, and every operation on them: the library behind the commands.

The state machine (create, start, state, kill, delete, list) is here; so are pause and resume and the
process list.  exec, update and the resource statistics and events are methods here too, carried out by
:mod:`ocirun.exec`, :mod:`ocirun.update` and :mod:`ocirun.events` (imported when called).  Each operation
takes the container's lock where it changes something, derives the status from the process (never from
the file alone) and refuses what runtime.md forbids in that status, with runc's wording.  Methods return
values and raise :class:`ocirun.errors.OciError`; printing and exit statuses are ocirun.commands'.
"""
from __future__ import annotations

import os

from .signals import SIGKILL
from .errors import ContainerExists, InvalidState, NotRunning, OciError
from .state import (CREATED, CREATING, PAUSED, RUNNING, STOPPED, ContainerState, StateDir, list_ids,
                    read_start_time, refresh)


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

    def existing(self, cid: str) -> StateDir:
        """The container's state dir; ContainerNotFound (runc's wording) when there is none.  Commands
        call it first where runc looks the container up before reading the rest of its arguments."""
        sd = self._dir(cid)
        if not sd.exists():
            sd.load()  # raises ContainerNotFound with runc's wording
        return sd

    # -- create ---------------------------------------------------------------------------------
    def create(self, cid: str, opts) -> ContainerState:
        from . import launcher, stagefork, stagespawn
        from .cgroups import warm

        warm.start()  # the first cgroup.procs write's RCU wait passes while we read the config
        # A re-exec'd init stage (a fresh interpreter: ≈13 ms until it waits for CONFIG) boots while we
        # validate the config; it only waits for CONFIG, and is killed and reaped if we stop here.  The
        # command line started it already, if it could (ocirun.stagespawn); none when launcher.create
        # forks it instead, with the plan in memory (ocirun.stagefork).
        claim = NewStateDir(self.root, cid)  # the id is checked here, before we own a stage
        init = stagespawn.take("init", opts.preserve_fds, opts.stdio)
        fork = init is None and stagefork.allowed()
        if init is None and not fork:
            init = stagespawn.spawn("init", opts.preserve_fds, opts.stdio)
        handed = False
        try:
            from . import config

            opts.bundle = os.path.abspath(opts.bundle)
            spec = config.load(opts.bundle)  # validation: nothing has changed on the system yet
            if spec.process is not None and spec.process.terminal and not opts.console_socket:
                # runc's checkTerminal: a detached container's pty master must go somewhere.
                raise config.ConfigError("process.terminal is true but no --console-socket was given "
                                         "(cannot allocate a tty for a detached container)")
            with claim as sd:
                if spec.process is not None and os.environ.get("NOTIFY_SOCKET"):
                    from . import notify  # systemd's NOTIFY_SOCKET: relayed from the container by `start`

                    spec = notify.prepare(spec, sd.path, opts.bundle)
                handed = True  # from here launcher.create kills and reaps the init on failure
                return launcher.create(spec, sd, opts, self.log, init=init, fork=fork)
        finally:
            if not handed and init is not None:
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
            # Raises, touching nothing, when the init cannot be woken (a start socket nobody listens
            # on): a container that start did not wake is never torn down by it.
            self.log.debug(f"waking the init {st.pid} of container {cid}")
            err = _connect_and_wait(sd, st)
            _remove_file(sd.start_socket)
            st.status = RUNNING
            if err is not None:
                # The init answered, then a startContainer hook (or the switch to the container's
                # user) failed: "stop the container, and continue the lifecycle at step 12".
                self._destroy(sd, st, _saved_hooks(st))
                raise OciError(err)
            self.log.debug(f"container {cid}: init {st.pid} executed the process")
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
        if all_procs and st.cgroup and st.status != CREATING:
            # Every process in the cgroup, whatever the status: a stopped container may still have
            # some (no pid namespace; runc signals them too, and succeeds when there are none).
            from .teardown import signal_container

            signal_container(st.cgroup, sig)
            return
        if st.status not in (CREATED, RUNNING, PAUSED) or st.pid <= 0:
            raise NotRunning()
        from .kernel.process import signal_pid

        # Through a pidfd opened once the pid still had the init's start time: never a reused pid.
        if not signal_pid(st.pid, sig, lambda pid: read_start_time(pid) == st.pid_start):
            raise NotRunning()
        if sig == SIGKILL and st.status in (PAUSED, CREATED) and st.cgroup:
            # A frozen task acts on SIGKILL only once thawed (cgroup v1); runc thaws for SIGKILL only.
            # CREATED too: refresh() reports a paused created container as "created".
            from .cgroups import from_state

            try:
                mgr = from_state(st.cgroup)
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
                if force:  # a half-made container (create killed before its first record): just the dir
                    remove_state_dir(sd.path)
                    return
                raise
            if st.status != STOPPED and not force:
                if st.status == CREATING:
                    raise InvalidState(f"cannot delete container {cid} while it is being created")
                raise InvalidState(f"cannot delete container {cid} that is not stopped: {st.status}")
            # Stopped or not, whatever is left in the cgroup is killed first (ocirun.teardown).
            self._destroy(sd, st, _saved_hooks(st))
        finally:
            os.close(lock)

    # -- pause / resume ---------------------------------------------------------------------------
    def pause(self, cid: str) -> None:
        """Freeze every process of the container (its cgroup's freezer)."""
        sd = self.existing(cid)
        lock = sd.lock()
        try:
            st = refresh(sd, sd.load())
            # runc: only a running or created container can be paused ("container not running"
            # otherwise, also for one that is already paused)
            if st.status not in (RUNNING, CREATED):
                raise NotRunning()
            from .cgroups import manager_of

            mgr = manager_of(st)
            if mgr.is_frozen():
                raise NotRunning()
            mgr.freeze()
        finally:
            os.close(lock)

    def resume(self, cid: str) -> None:
        """Thaw a paused container."""
        sd = self.existing(cid)
        lock = sd.lock()
        try:
            st = refresh(sd, sd.load())
            # refresh() reports "paused" only for a started container; a created one that was paused is
            # frozen too, and runc resumes both
            if st.status not in (RUNNING, CREATED, PAUSED) or not st.cgroup:
                raise InvalidState("container not paused")
            from .cgroups import manager_of

            mgr = manager_of(st)
            if not mgr.is_frozen():
                raise InvalidState("container not paused")
            mgr.thaw()
        finally:
            os.close(lock)

    # -- the container's processes, resources and events ------------------------------------------
    def pids(self, cid: str) -> list[int]:
        """Every process in the container's cgroup, as pids in our pid namespace (`ps`)."""
        sd = self.existing(cid)
        st = refresh(sd, sd.load())
        if not st.cgroup:
            return []
        from .cgroups import manager_of

        try:
            return manager_of(st).pids()
        except OciError as e:
            raise OciError(f"unable to get all container pids: {e}") from None

    def exec(self, cid: str, opts):
        """Run a new process in the container (:class:`ocirun.exec_process.ExecOptions`); its
        :class:`ocirun.exec.ExecResult`: the pid, and the exit status unless ``opts.detach``."""
        from .exec import execute

        return execute(self, cid, opts)

    def update(self, cid: str, resources: dict, l3_cache_schema: str | None = None,
               mem_bw_schema: str | None = None) -> dict:
        """Change the container's resource limits (ocirun.update); every resource set so far."""
        from .update import update

        return update(self.existing(cid), self.log, resources, l3_cache_schema, mem_bw_schema)

    def stats(self, cid: str) -> dict:
        """The container's resource usage, as runc's ``events --stats`` data (ocirun.events)."""
        from .events import stats

        return stats(self.existing(cid))

    def events(self, cid: str, interval: float, on_error=None):
        """runc's event records (stats every ``interval`` seconds, OOM notices) until the container
        stops: an iterator (ocirun.events.watch)."""
        from .events import watch

        return watch(self.existing(cid), interval, on_error)

    def _destroy(self, sd: StateDir, st: ContainerState, hooks) -> None:
        """Step 12 (undo create: ocirun.teardown) then step 13 (poststop hooks, failures are warnings)."""
        from .teardown import destroy

        destroy(sd, st)
        if hooks.poststop:
            from .hooks import run_phase

            st.status = STOPPED
            for i, hook in enumerate(hooks.poststop):
                try:
                    run_phase("poststop", [hook], st.hook_state())
                except OciError as e:
                    self.log.warning(str(e))


class NewStateDir:
    """The state dir of a container being made, by `create` or by `restore` (ocirun.checkpoint).

    Entering claims the id (``mkdir``: :class:`ContainerExists` if taken) and takes its lock;
    leaving releases the lock and, when the block failed, removes the dir again -- unless the
    error carries ``keep_state`` (its undo left something that `delete --force` must find, and the
    state names it)."""

    def __init__(self, root: str, cid: str):
        self.root, self.sd, self.lock = root, StateDir(root, cid), None

    def __enter__(self) -> StateDir:
        os.makedirs(self.root, mode=0o700, exist_ok=True)  # runc's mode (the state dirs below are 0711)
        try:
            os.mkdir(self.sd.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.sd.id) from None
        try:
            self.lock = self.sd.lock()
        except BaseException:
            remove_state_dir(self.sd.path)
            raise
        return self.sd

    def __exit__(self, kind, error, tb) -> bool:
        try:
            if error is not None and not getattr(error, "keep_state", False):
                remove_state_dir(self.sd.path)
        finally:
            os.close(self.lock)
        return False


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

    The plan (where the hook records are) is imported only when there are hooks to run.
    """
    if not any(st.hooks.get(p) for p in ("poststart", "poststop")):
        return _NO_HOOKS
    from .plan import Hooks

    return Hooks.parse(st.hooks)


class _NoHooks:
    poststart: list = []
    poststop: list = []


_NO_HOOKS = _NoHooks()


def _connect_and_wait(sd: StateDir, st: ContainerState) -> str | None:
    """Connect to the start socket (wakes the init), read until EOF; return the init's error, if any.

    Raises OciError when the init was not woken (connect refused, or no answer at all).

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
        # Nobody listening (a start socket left over by a `start` killed mid-way, the init gone):
        # this start woke nothing, so it changes nothing.
        raise OciError(f"cannot start container {st.id}: connect to the container's init: {e.strerror}") \
            from None
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
    if not data:  # it never answered: not woken by us, so not ours to tear down
        raise OciError(f"cannot start container {st.id}: container init exited before start")
    if data.startswith(b"0E"):
        return data[2:].decode(errors="replace")
    return None


def _remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_state_dir(path: str) -> None:
    from .teardown import remove_state_dir

    remove_state_dir(path)

