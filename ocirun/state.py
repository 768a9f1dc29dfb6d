"""Container state on disk: ``<root>/<id>/state.json``, the per-container lock, id rules.

The file records what `create` decided (bundle, init pid and its start time,
cgroup paths, ...).  The *status* is never trusted from the file: it is derived
on every command from the init process (alive? same start time? not exec'd yet,
by its comm?), so a reused pid, a crashed runtime or a file left over cannot lie
to the caller.
"""
from __future__ import annotations

import fcntl
import os

from . import fastjson

from .errors import ContainerNotFound, InvalidIdError

DEFAULT_ROOT = "/run/ocirun"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"  # the config as `create` used it (for `inspect`), never the bundle's
PLAN_FILE = "plan.json"  # the launch plan `create` executed (ocirun.plan.LaunchPlan): what `exec` and `checkpoint` read
LOCK_FILE = "lock"
START_SOCKET = "exec.sock"  # the created init waits in accept() on it; `start` connects
#: The comm (/proc/PID/comm, ≤ 15 bytes) of the init stage until it execs the container's program:
#: set by ocirun.stage.entry.main (ocirun.stage.common.INIT_COMM), replaced by the kernel at execve — how `state` tells created from running.
INIT_COMM = "ocirun:[init]"
INIT_COMM_BYTES = INIT_COMM.encode()
MAX_ID_LEN = 1024

CREATING, CREATED, RUNNING, STOPPED, PAUSED = "creating", "created", "running", "stopped", "paused"


def check_id(cid: str) -> str:
    """Refuse ids that could escape the state root or confuse tools (runc's rules, plus a length cap)."""
    if not cid:
        raise InvalidIdError("container id cannot be empty")
    if len(cid) > MAX_ID_LEN:
        raise InvalidIdError(f"invalid container id: longer than {MAX_ID_LEN} characters")
    if cid in (".", "..") or "/" in cid or "\0" in cid:
        raise InvalidIdError(f"invalid container id format: {cid}")
    for ch in cid:
        if not (ch.isascii() and (ch.isalnum() or ch in "_+-.")):
            raise InvalidIdError(f"invalid container id format: {cid}")
    return cid


class ContainerState:
    """What `create` records; ``status`` is filled in by :func:`refresh`.

    A plain class rather than a dataclass: `state`, `kill` and `delete` load it,
    and importing dataclasses costs more than the whole rest of those commands.
    """

    #: field → default (a callable makes a fresh value)
    FIELDS = {
        "id": "", "bundle": "", "rootfs": "",
        "pid": 0,
        "pid_start": 0,  # start time (clock ticks since boot) of the init, to detect pid reuse
        "created": "", "owner": "",
        "annotations": dict,
        "config_hash": "",
        "cgroup": dict,  # ocirun.cgroups Manager.to_state()
        "intel_rdt": dict,  # ocirun.intelrdt.apply()'s record: the resctrl group to clean up on delete
        "namespaces": dict,  # type -> path joined, or "" when new
        "hooks": dict,  # config.json's hooks as they were at create time
        "rootless": False, "systemd_cgroup": False, "started": False,
        "ociVersion": "",
        "status": "creating",  # derived, written for humans and for hooks
    }
    __slots__ = tuple(FIELDS)

    def __init__(self, **values):
        for name, default in self.FIELDS.items():
            value = values.pop(name, default)
            setattr(self, name, value() if callable(value) and value is default else value)
        if values:
            raise TypeError(f"unknown state fields: {', '.join(values)}")

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_oci(self) -> dict:
        """The state object of runtime.md, with runc's extra fields (as `runc state` prints)."""
        out = {
            "ociVersion": self.ociVersion,
            "id": self.id,
            "pid": self.pid if self.status in (CREATED, RUNNING, PAUSED, CREATING) else 0,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    def hook_state(self) -> dict:
        """The state passed to hooks on stdin: the spec's fields only."""
        out = {"ociVersion": self.ociVersion, "id": self.id, "status": self.status,
               "pid": self.pid, "bundle": self.bundle}
        if self.annotations:
            out["annotations"] = self.annotations
        return out


class StateDir:
    """One container's directory under the state root."""

    def __init__(self, root: str, cid: str):
        self.root = root
        self.id = check_id(cid)
        self.path = os.path.join(root, cid)

    # -- paths --------------------------------------------------------------------------------
    @property
    def state_file(self) -> str:
        return os.path.join(self.path, STATE_FILE)

    @property
    def config_file(self) -> str:
        return os.path.join(self.path, CONFIG_FILE)

    @property
    def plan_file(self) -> str:
        return os.path.join(self.path, PLAN_FILE)

    @property
    def start_socket(self) -> str:
        return os.path.join(self.path, START_SOCKET)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    # -- lock ----------------------------------------------------------------------------------
    def lock(self, blocking: bool = True) -> int:
        """Take the container's exclusive flock; returns the fd (close it to release)."""
        fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- state.json ----------------------------------------------------------------------------
    def load(self) -> ContainerState:
        try:
            with open(self.state_file, "rb") as f:
                raw = fastjson.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        known = ContainerState.FIELDS
        return ContainerState(**{k: v for k, v in raw.items() if k in known})

    def save(self, st: ContainerState) -> None:
        write_atomic(self.state_file, fastjson.dumps(st.to_dict(), compact=True).encode(), 0o600)

    # -- config.json: the config create used ---------------------------------------------------------
    def save_config(self, raw: dict) -> None:
        """Keep the validated config for `inspect`, which shows what it asked for beside what the kernel
        holds: the bundle's config.json may be edited or removed once the container exists.  0600 like
        state.json (a config can hold secrets in its env), in the 0711 state dir."""
        write_atomic(self.config_file, fastjson.dumps(raw).encode(), 0o600)

    def load_config(self) -> dict:
        """The config kept by :meth:`save_config` (never parsed by state/kill/delete/start).

        A container made by an ocirun that kept none is refused, not served from the bundle: that
        file is exactly what may no longer be the container's config."""
        from .errors import ConfigError

        try:
            with open(self.config_file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ConfigError(f"container {self.id} has no saved config ({self.config_file}): it was created "
                              f"by an older ocirun; recreate it") from None
        except OSError as e:
            raise ConfigError(f"container {self.id}: saved config {self.config_file}: {e.strerror}") from None
        try:
            raw = fastjson.loads(data)
        except ValueError as e:
            raise ConfigError(f"container {self.id}: saved config {self.config_file}: invalid JSON: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"container {self.id}: saved config {self.config_file}: expected a JSON object")
        return raw

    # -- plan.json: the launch plan create executed --------------------------------------------------
    def save_plan(self, plan) -> None:
        """Keep the launch plan (an ocirun.plan.LaunchPlan) for `exec` and `checkpoint`: a process started
        later gets the container's process defaults, seccomp program and memory policy as `create` decided
        them, whatever the bundle holds now.  Written as state.json is (rename, 0600: the env may hold
        secrets)."""
        write_atomic(self.plan_file, fastjson.dumps(plan.to_wire(), compact=True).encode(), 0o600)

    def load_plan(self):
        """The plan kept by :meth:`save_plan`; None for a container made by an ocirun that kept only its
        config (ocirun.launcher.container_plan then plans that kept config)."""
        from .errors import ConfigError
        from .plan import LaunchPlan

        try:
            with open(self.plan_file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"container {self.id}: saved launch plan {self.plan_file}: {e.strerror}") from None
        try:
            return LaunchPlan.from_wire(fastjson.loads(data))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ConfigError(f"container {self.id}: saved launch plan {self.plan_file}: invalid: {e}") from None


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a torn one.

    The rename gives that; there is no fsync (as in runc and crun): what is written here (state,
    pid file, resources) describes processes that do not survive a crash of the host, and with a
    --root on disk rather than tmpfs the fsync cost 1–3 ms per write, twice per `create`.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_stat(pid: int, proc: str = "/proc") -> tuple[int, bytes] | None:
    """(start time, comm) from /proc/PID/stat — fields 22 and 2 of one read — or None if the pid is
    gone (or a zombie: the process has exited)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    end = data.rindex(b")")
    rest = data[end + 2:].split()
    if rest[0] in (b"Z", b"X"):  # zombie or dead: the process has exited
        return None
    return int(rest[19]), data[data.index(b"(") + 1:end]


def read_start_time(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if the pid is gone."""
    stat = read_stat(pid, proc)
    return None if stat is None else stat[0]


def refresh(sd: StateDir, st: ContainerState, proc: str = "/proc") -> ContainerState:
    """Derive the status from the kernel, as runc's refreshState does: the init's pid and start time
    (another start time: the pid was reused, the container is stopped), and whether the init still
    waits for `start` — its comm is :data:`INIT_COMM`, which the init stage sets and execve replaces
    with the program's name.  The start socket must exist too (`start` removes it once it has woken
    the init, before the execve); on its own, a file left over proves nothing."""
    if st.pid <= 0:  # never signal or trust pid 0/-1: kill(0) would hit the caller's process group
        st.status = CREATING
        return st
    stat = read_stat(st.pid, proc)
    if stat is None or stat[0] != st.pid_start:
        st.status = STOPPED
        return st
    if stat[1] == INIT_COMM_BYTES and os.path.exists(sd.start_socket):
        st.status = CREATED
    else:
        st.status = RUNNING
    if st.cgroup and is_frozen(st.cgroup):
        st.status = PAUSED  # runc reports a paused created container as paused too
    return st


def is_frozen(cgroup: dict) -> bool:
    """The freezer state from the paths `create` recorded: v1 freezer.state, else v2 cgroup.events.

    Read directly rather than through ocirun.cgroups, whose import would double the cost of `state`.
    """
    paths = cgroup.get("paths") or {}
    if "freezer" in paths:
        try:
            with open(os.path.join(paths["freezer"], "freezer.state")) as f:
                return f.read().strip() == "FROZEN"
        except OSError:
            return False
    path = paths.get("") or (os.path.join(cgroup.get("root", ""), cgroup.get("path", "").lstrip("/"))
                             if cgroup.get("mode") == "unified" else "")
    if not path:
        return False
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return "frozen 1\n" in f.read()
    except OSError:
        return False


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))
