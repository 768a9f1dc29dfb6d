"""The Python API, for programs that embed a runtime (test harnesses, CI sandboxes).

    from ocirun.api import Runtime, ContainerNotFound

    rt = Runtime(root="/run/my-harness")
    result = rt.run("job-1", "/path/to/bundle", timeout=30)    # create + start + wait + delete
    print(result.exit_code, result.stdout)

One code path with the CLI: both drive :class:`ocirun.container.Runtime` (create, start, state,
kill, delete, list, exec, update, pause, resume, pids, stats, events), with
:mod:`ocirun.checkpoint` and :mod:`ocirun.restore` beside it; this module adds what a caller
in Python needs on top — typed results (:class:`State`, :class:`Result`), captured output, timeouts,
and the errors of :mod:`ocirun.errors` raised as they are instead of printed.  The CLI does not
import it, so `ocirun state` pays nothing for it (``dataclasses`` alone costs more than `state`).

Waiting for a container's exit status needs the process to be our child.  The init stage that
starts it exits, and the process is re-parented to the nearest *child subreaper*; `ocirun run`
makes itself one for good.  An embedding program should not be changed that much, so
:meth:`Runtime.run` and :meth:`Runtime.exec` are subreapers only while the process is being
launched (under a lock, restored afterwards), and then wait for that one pid — never
``waitpid(-1)``, which would take the exit statuses of the caller's other children.  No signal
handler is installed, so the API works from any thread.
"""
from __future__ import annotations

import contextlib
import os
import select
import tempfile
import threading
from dataclasses import dataclass, field

from .errors import (CgroupError, ConfigError, ContainerExists, ContainerNotFound, HookError, InitError,
                     InvalidConfig, InvalidIdError, InvalidState, NotRunning, OciError, SeccompError, Timeout,
                     UsageError)
from .state import DEFAULT_ROOT

__all__ = ["Runtime", "State", "Result", "OciError", "ContainerNotFound", "ContainerExists", "InvalidConfig",
           "ConfigError", "InvalidState", "NotRunning", "InvalidIdError", "InitError", "HookError",
           "CgroupError", "SeccompError", "Timeout", "UsageError"]


@dataclass(frozen=True)
class State:
    """A container's state (runtime.md's state object, with runc's extra fields), status derived now."""

    id: str
    status: str  # "creating", "created", "running", "paused" or "stopped"
    pid: int  # 0 once stopped
    bundle: str
    rootfs: str
    created: str  # RFC 3339
    owner: str = ""
    annotations: dict = field(default_factory=dict)
    oci_version: str = ""

    @classmethod
    def _from(cls, st) -> "State":
        oci = st.to_oci()
        return cls(id=oci["id"], status=oci["status"], pid=oci["pid"], bundle=oci["bundle"],
                   rootfs=oci["rootfs"], created=oci["created"], owner=oci["owner"],
                   annotations=dict(oci.get("annotations") or {}), oci_version=oci["ociVersion"])

    def to_oci(self) -> dict:
        """The JSON object `ocirun state` prints."""
        out = {"ociVersion": self.oci_version, "id": self.id, "pid": self.pid, "status": self.status,
               "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created, "owner": self.owner}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Result:
    """What a process did: its exit code (128+N when killed by signal N) and its captured output."""

    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def text(self, encoding: str = "utf-8") -> str:
        """stdout decoded (undecodable bytes replaced)."""
        return self.stdout.decode(encoding, errors="replace")


class _PyLog:
    """The runtime's warnings go to :mod:`logging` (logger ``ocirun``) rather than to our stderr."""

    def __init__(self):
        import logging

        self.logger = logging.getLogger("ocirun")

    def debug(self, msg: str) -> None:
        self.logger.debug(msg)

    def info(self, msg: str) -> None:
        self.logger.info(msg)

    def warning(self, msg: str) -> None:
        self.logger.warning(msg)

    def error(self, msg: str) -> None:
        self.logger.error(msg)

    def log(self, level: str, msg: str) -> None:
        """A record at a named level (ocirun.log.Logger's interface: the init stage's notes carry one)."""
        {"debug": self.debug, "info": self.info, "error": self.error}.get(level, self.warning)(msg)


_ADOPT_LOCK = threading.Lock()


@contextlib.contextmanager
def _adopting():
    """Be a child subreaper while a container process is launched, so that it becomes our child."""
    from .kernel import linux as k

    with _ADOPT_LOCK:
        was = k.child_subreaper()
        if not was:
            k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        try:
            yield
        finally:
            if not was:
                k.prctl(k.PR_SET_CHILD_SUBREAPER, 0)


class _Capture:
    """stdin from bytes (or /dev/null), stdout and stderr into anonymous files: no pipe to drain while
    waiting, and a process that fills its output cannot block on us."""

    def __init__(self, input: bytes | str | None):
        stdin = tempfile.TemporaryFile()
        if input:
            stdin.write(input.encode() if isinstance(input, str) else input)
            stdin.seek(0)
        self.files = [stdin, tempfile.TemporaryFile(), tempfile.TemporaryFile()]

    @property
    def fds(self) -> tuple:
        return tuple(f.fileno() for f in self.files)

    def read(self) -> tuple[bytes, bytes]:
        out = []
        for f in self.files[1:]:
            f.seek(0)
            out.append(f.read())
        return out[0], out[1]

    def close(self) -> None:
        for f in self.files:
            f.close()


def _refuse_terminal(bundle: str) -> None:
    """run() captures stdout and stderr: a process that wants a terminal cannot have both."""
    from .config import read_json

    conf = read_json(os.path.join(bundle, "config.json"), "config file")
    if (conf.get("process") or {}).get("terminal") is True:
        raise InvalidConfig("config.json: process.terminal: Runtime.run captures the output and gives no "
                            "terminal; set it to false, or use create(console_socket=...) and start()")


def _fd(obj) -> int | None:
    if obj is None or isinstance(obj, int):
        return obj
    return obj.fileno()


def _wait(pid: int, timeout: float | None) -> int | None:
    """Wait for our child ``pid``; its exit code, or None if ``timeout`` passed first."""
    if timeout is not None:
        from .kernel.process import require_pidfd

        pidfd = require_pidfd(pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        if not ready:
            return None
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            # Not our child after all (a subreaper above us took it, or someone reaped it).
            return 255
        from .signals import exit_status

        return exit_status(status)


def _kill_and_reap(pid: int) -> None:
    try:
        from .kernel.process import kill

        kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class Runtime:
    """The containers under one state root (``root``), as `ocirun --root ROOT` sees them.

    Every method raises an :class:`~ocirun.errors.OciError` subclass on failure, with the message
    the CLI would print: :class:`ContainerNotFound`, :class:`ContainerExists`,
    :class:`InvalidConfig` (config.json), :class:`InvalidIdError`, :class:`InvalidState` (and its
    :class:`NotRunning`), :class:`InitError` / :class:`HookError` (create failed inside),
    :class:`Timeout`.  A failed call leaves nothing behind, as with the CLI.
    """

    def __init__(self, root: str = DEFAULT_ROOT, log=None):
        from .container import Runtime as _Core

        self.root = os.path.abspath(root)
        self._core = _Core(self.root, log if log is not None else _PyLog())

    # -- the lifecycle ------------------------------------------------------------------------
    def create(self, cid: str, bundle: str, *, stdin=None, stdout=None, stderr=None, pid_file: str | None = None,
               console_socket: str | None = None, no_pivot: bool = False, preserve_fds: int = 0) -> State:
        """`ocirun create`: the container waits for :meth:`start`.  ``stdin``/``stdout``/``stderr``
        (fds or file objects) become the process's; by default it gets ours, as with the CLI."""
        from .launcher import CreateOptions

        stdio = None
        if (stdin, stdout, stderr) != (None, None, None):
            stdio = tuple(_fd(f) if f is not None else i for i, f in enumerate((stdin, stdout, stderr)))
        opts = CreateOptions(bundle=bundle, pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                             preserve_fds=preserve_fds, stdio=stdio)
        return State._from(self._core.create(cid, opts))

    def start(self, cid: str) -> State:
        """`ocirun start`: run the user program of a created container."""
        return State._from(self._core.start(cid))

    def state(self, cid: str) -> State:
        """`ocirun state`."""
        return State._from(self._core.state(cid))

    def list(self) -> list[State]:
        """`ocirun list`: every container under the root, sorted by id."""
        return [State._from(st) for st in self._core.list()]

    def kill(self, cid: str, signal: int | str = "SIGTERM", all: bool = False) -> None:
        """`ocirun kill`: ``signal`` as a number or a name (``"KILL"``, ``"SIGUSR1"``, ``"RTMIN+3"``)."""
        from .signals import parse_signal

        sig = signal if isinstance(signal, int) else parse_signal(str(signal))
        self._core.kill(cid, sig, all)

    def delete(self, cid: str, force: bool = False) -> None:
        """`ocirun delete`; with ``force`` a running container is killed first."""
        self._core.delete(cid, force)

    def inspect(self, cid: str) -> dict:
        """`ocirun inspect --format json`: the container's isolation as the kernel shows it (docs/inspect.md)."""
        from .inspect import inspect

        return inspect(self.root, cid)

    # -- a running container's processes and resources ------------------------------------------
    def pause(self, cid: str) -> None:
        """`ocirun pause`: freeze every process of the container."""
        self._core.pause(cid)

    def resume(self, cid: str) -> None:
        """`ocirun resume`: thaw a paused container."""
        self._core.resume(cid)

    def ps(self, cid: str) -> list[int]:
        """`ocirun ps --format json`: the pids of every process in the container's cgroup."""
        return self._core.pids(cid)

    def update(self, cid: str, resources: dict) -> dict:
        """`ocirun update --resources`: ``resources`` is a LinuxResources object (config.json's
        ``linux.resources``, only what changes; checked against the schema).  Returns every resource
        updates have set so far."""
        from . import schema

        schema.check(resources, "resources", source="resources")
        return self._core.update(cid, resources)

    def stats(self, cid: str) -> dict:
        """`ocirun events --stats`'s data: the container's resource usage, in runc's shape."""
        return self._core.stats(cid)

    def events(self, cid: str, interval: float = 5.0):
        """`ocirun events`: an iterator of runc's event records (``{"type": "stats", "id", "data"}``
        every ``interval`` seconds, ``{"type": "oom", "id"}`` on each OOM) that ends when the container
        stops.  A failed stats read is logged (logger ``ocirun``) and skipped, as runc does."""
        log = self._core.log
        return self._core.events(cid, interval, on_error=lambda e: log.warning(str(e)))

    # -- checkpoint / restore (CRIU) -----------------------------------------------------------
    def checkpoint(self, cid: str, image_path: str, *, work_path: str | None = None, leave_running: bool = False,
                   pre_dump: bool = False, parent_path: str | None = None, page_server: str | None = None,
                   lazy_pages: bool = False, status_fd: int = -1, criu: str | None = None, **flags) -> str:
        """`ocirun checkpoint`: save the container into ``image_path`` (made if missing); return that
        directory.  Unless ``leave_running`` or ``pre_dump`` the container is gone afterwards.

        ``parent_path``: a pre-dump's directory relative to ``image_path``; ``page_server``:
        ``"ADDRESS:PORT"``; ``status_fd``: with ``lazy_pages``, gets ``b"\\0"`` once the pages can be
        fetched.  ``flags``: the other options of :class:`ocirun.checkpoint.CheckpointOptions`
        (``tcp_established``, ``shell_job``, ``empty_ns``, ``auto_dedup``, ``manage_cgroups_mode`` ...);
        ``criu``: the binary (default ``criu`` on PATH)."""
        from .checkpoint import CheckpointOptions, checkpoint

        opts = CheckpointOptions(image_path=image_path, work_path=work_path, leave_running=leave_running,
                                 pre_dump=pre_dump, parent_path=parent_path, page_server=page_server,
                                 lazy_pages=lazy_pages, status_fd=status_fd, criu=criu, **flags)
        return checkpoint(self._core, cid, opts)

    def restore(self, cid: str, bundle: str, image_path: str, *, work_path: str | None = None,
                pid_file: str | None = None, console_socket: str | None = None, criu: str | None = None,
                **flags) -> State:
        """`ocirun restore --detach`: bring container ``cid`` back from ``image_path`` with the config
        of ``bundle``; return its state (``running``).

        The restored process is our child (CRIU restores it as its own sibling): wait for it with
        ``os.waitpid(state.pid, 0)``, then :meth:`delete`.  Its stdio is what it had, with pipes
        replaced by ours (fds 0-2).  ``flags``: the other options of
        :class:`ocirun.checkpoint.RestoreOptions`."""
        from .checkpoint import RestoreOptions
        from .restore import restore

        opts = RestoreOptions(bundle=os.path.abspath(bundle), image_path=image_path, work_path=work_path,
                              pid_file=pid_file, console_socket=console_socket, criu=criu, **flags)
        return State._from(restore(self._core, cid, opts))

    # -- processes with their output ----------------------------------------------------------
    def run(self, cid: str, bundle: str, *, input: bytes | str | None = None, timeout: float | None = None,
            keep: bool = False) -> Result:
        """`ocirun run` with the output captured: create, start, wait, delete (unless ``keep``).

        On ``timeout`` (seconds) the container is killed and deleted and :class:`Timeout` is raised,
        with what it wrote so far in ``.stdout`` / ``.stderr``.
        """
        _refuse_terminal(bundle)
        cap = _Capture(input)
        try:
            with _adopting():
                st = self.create(cid, bundle, stdin=cap.files[0], stdout=cap.files[1], stderr=cap.files[2])
            try:
                self.start(cid)
                code = _wait(st.pid, timeout)
                if code is None:
                    _kill_and_reap(st.pid)
                    raise self._timeout(f"container {cid}", timeout, cap)
            except BaseException:
                _kill_and_reap(st.pid)
                with contextlib.suppress(OciError):
                    self.delete(cid, force=True)
                raise
            if not keep:
                self.delete(cid, force=True)
            return Result(code, *cap.read())
        finally:
            cap.close()

    def exec(self, cid: str, args: list[str], *, env: list[str] | dict | None = None, cwd: str | None = None,
             user: str | None = None, input: bytes | str | None = None, timeout: float | None = None,
             ignore_paused: bool = False) -> Result:
        """`ocirun exec` with the output captured: run ``args`` in the container, wait, return the result.

        ``env`` adds to the container's environment (``["K=V"]`` or a dict), ``user`` is ``uid[:gid]``.
        """
        from .exec_process import ExecOptions

        if isinstance(env, dict):
            env = [f"{k}={v}" for k, v in env.items()]
        cap = _Capture(input)
        try:
            opts = ExecOptions(args=list(args), tty=False, detach=True, cwd=cwd, env=list(env or []), user=user,
                               ignore_paused=ignore_paused, stdio=cap.fds)
            with _adopting():
                pid = self._core.exec(cid, opts).pid
            code = _wait(pid, timeout)
            if code is None:
                _kill_and_reap(pid)
                raise self._timeout(f"exec in container {cid}", timeout, cap)
            return Result(code, *cap.read())
        finally:
            cap.close()

    @staticmethod
    def _timeout(what: str, timeout, cap: _Capture) -> Timeout:
        err = Timeout(f"{what}: still running after {timeout}s (killed)")
        err.stdout, err.stderr = cap.read()
        return err
