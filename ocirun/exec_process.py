"""What `exec` runs and where: its options, and the process object built from them.

runc's getProcess and validateProcessSpec, with their wording: the process is either a whole process
object (``--process FILE``) or the process of the launch plan create kept in the state dir
(``<root>/<id>/plan.json``, :meth:`ocirun.plan.ProcessPlan.to_config`) with the options applied (args, cwd, env, user, capabilities...), then checked against the process
schema.  Also the ``--cgroup`` sub-cgroup syntax and runc's terminal rules.  No side effect: the launch
is :mod:`ocirun.exec`; the flags that fill :class:`ExecOptions` are read by :mod:`ocirun.commands.exec`.

The --process file is read here, not by the command, because runc reads it only after finding the
container and checking its status: `exec -p missing.json <stopped container>` reports the status.
"""
from __future__ import annotations

import os

from .errors import InvalidState, OciError
from .records import Record, factory  # not dataclasses: it imports inspect (≈10 ms of every exec)


class ExecFailed(OciError):
    """exec did not start the process (printed as ``exec failed: ...``)."""


class ExecRefused(ExecFailed, InvalidState):
    """exec refused in the container's status (stopped, paused): an InvalidState for the Python API."""


class ExecOptions(Record):
    """How to run a process in a container: ``process_file`` (a whole process object, ``-`` for stdin),
    or ``args`` and the other fields applied to the container's own process (runc's exec flags)."""

    process_file: str | None = None
    args: list[str] = factory(list)
    tty: bool | None = None
    console_socket: str | None = None
    pidfd_socket: str | None = None
    detach: bool = False
    pid_file: str | None = None
    cwd: str | None = None
    env: list[str] = factory(list)
    user: str | None = None
    additional_gids: list[str] = factory(list)
    caps: list[str] = factory(list)
    no_new_privs: bool | None = None
    process_label: str | None = None
    apparmor: str | None = None
    preserve_fds: int = 0
    cgroups: list[str] = factory(list)
    ignore_paused: bool = False
    stdio: tuple | None = None  # (stdin, stdout, stderr) fds for the process instead of ours (ocirun.api)


def build_process(opts: ExecOptions, base: dict | None) -> dict:
    """The process object to run: the --process file as is, or the container's process with the flags
    applied (runc's getProcess).  Checked as runc checks it, then against the process schema.

    ``base``: the container's process object as create kept it (ocirun.plan.ProcessPlan.to_config; None
    without one); used only without --process, and left unchanged (copied before the flags are applied)."""
    from . import schema

    if opts.process_file:
        from .config import read_json

        raw = read_json(opts.process_file, "process file")
        source = os.path.basename(opts.process_file) if opts.process_file != "-" else "process"
    else:
        if not opts.args:
            raise ExecFailed("process args cannot be empty")
        raw = dict(base or {})
        source = "config.json"
        raw["args"] = list(opts.args)
        if opts.cwd:
            raw["cwd"] = opts.cwd
        if opts.apparmor:
            raw["apparmorProfile"] = opts.apparmor
        if opts.process_label:
            raw["selinuxLabel"] = opts.process_label
        if opts.caps:
            caps = {k: list(v or []) for k, v in (raw.get("capabilities") or {}).items()}
            for name in ("bounding", "effective", "permitted"):
                caps[name] = caps.get(name, []) + opts.caps
            if caps.get("inheritable"):  # ambient needs inheritable: only when the spec has some
                caps["ambient"] = caps.get("ambient", []) + opts.caps
            raw["capabilities"] = caps
        raw["env"] = list(raw.get("env") or []) + opts.env
        raw["terminal"] = bool(opts.tty)
        if opts.no_new_privs is not None:
            raw["noNewPrivileges"] = opts.no_new_privs
        user = dict(raw.get("user") or {"uid": 0, "gid": 0})
        if opts.user:
            uid, sep, gid = opts.user.partition(":")
            if sep:
                user["gid"] = _atoi(gid, "gid")
            user["uid"] = _atoi(uid, "uid")
        gids = list(user.get("additionalGids") or [])
        for g in opts.additional_gids:
            n = _atoi(g, "additional-gids")
            if n < 0:
                raise ExecFailed(f"additional-gids must be a positive number {n}")
            gids.append(n)
        if gids:
            user["additionalGids"] = gids
        raw["user"] = user
    _validate_process(raw)
    schema.check(raw, "process", source=source)
    return raw


def _atoi(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ExecFailed(f'parsing {text} as int for {what} failed: strconv.Atoi: parsing "{text}": '
                         f'invalid syntax') from None


def _validate_process(raw: dict) -> None:
    """runc's validateProcessSpec, with its wording."""
    cwd = raw.get("cwd")
    if not cwd:
        raise ExecFailed("Cwd property must not be empty")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ExecFailed("Cwd must be an absolute path")
    if not raw.get("args"):
        raise ExecFailed("args must not be empty")
    for pair in raw.get("env") or ():  # runc's populateProcessEnvironment, its wording
        name, eq, _ = pair.partition("=") if isinstance(pair, str) else ("", "", "")
        if not eq:
            raise ExecFailed("invalid environment variable: missing '='")
        if not name:
            raise ExecFailed("invalid environment variable: name cannot be empty")
    if raw.get("selinuxLabel"):
        from .lsm import selinux_enabled

        if not selinux_enabled():
            raise ExecFailed("selinux label is specified in config, but selinux is disabled or not supported")
    if raw.get("apparmorProfile"):
        from .lsm import apparmor_enabled

        if not apparmor_enabled():
            raise ExecFailed("unable to start container process: apparmor failed to apply profile: "
                             "AppArmor is not enabled on this host")


def check_terminal(terminal: bool, detach: bool, console_socket: str | None) -> None:
    """runc's checkTerminal."""
    if detach and terminal and not console_socket:
        raise ExecFailed("cannot allocate tty if runc will detach without setting console socket")
    if (not detach or not terminal) and console_socket:
        raise ExecFailed("cannot use console socket if runc will not detach or allocate tty")


def parse_sub_cgroups(values: list[str]) -> dict[str, str]:
    """``--cgroup [<controller>[,<controller>...]:]<path>`` (repeatable) → controller → sub-path
    ("" = every controller; allowed once, alone)."""
    out: dict[str, str] = {}
    for v in values:
        parts = v.split(":")
        if len(parts) > 2:
            raise ExecFailed(f"invalid --cgroup argument: {v}")
        if len(parts) == 1:
            if len(values) != 1:
                raise ExecFailed(f"invalid --cgroup argument: {v} (missing <controller>: prefix)")
            out[""] = v
            continue
        for ctrl in parts[0].split(","):
            if not ctrl:
                raise ExecFailed(f"invalid --cgroup argument: {v}")
            if ctrl in out:
                raise ExecFailed(f"invalid --cgroup argument: {v} (duplicated controller: {ctrl})")
            out[ctrl] = parts[1]
    return out
