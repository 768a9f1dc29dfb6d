"""`create`, `run`, `start`, `kill`, `delete`: their flags → calls on :class:`ocirun.container.Runtime`.

Each succeeds silently with exit status 0, as runc's do; `run` in the foreground exits with the
container's status (ocirun.run).
"""
from __future__ import annotations

import os


def _create_options(flags: dict, g: dict):
    from ..launcher import CreateOptions
    from ..rootless import resolve

    return CreateOptions(
        bundle=flags.get("bundle") or os.getcwd(),
        pid_file=flags.get("pid-file"),
        console_socket=flags.get("console-socket"),
        pidfd_socket=flags.get("pidfd-socket"),
        no_pivot=bool(flags.get("no-pivot")),
        no_new_keyring=bool(flags.get("no-new-keyring")),
        preserve_fds=flags.get("preserve-fds", 0),  # checked and counted by ocirun.commands.argv.preserved_fds
        systemd_cgroup=bool(g.get("systemd-cgroup")),
        rootless=resolve(g.get("rootless")),
    )


def cmd_create(rt, args: list[str], flags: dict, g: dict) -> int:
    """``create [options] <container-id>``."""
    rt.create(args[0], _create_options(flags, g))
    return 0


def cmd_run(rt, args: list[str], flags: dict, g: dict) -> int:
    """``run [options] <container-id>``: create + start; in the foreground, the container's exit status."""
    from ..run import run

    return run(rt, args[0], _create_options(flags, g), detach=bool(flags.get("detach")),
               keep=bool(flags.get("keep")), subreaper=not flags.get("no-subreaper"))


def cmd_start(rt, args: list[str], flags: dict, g: dict) -> int:
    rt.start(args[0])
    return 0


def cmd_kill(rt, args: list[str], flags: dict, g: dict) -> int:
    """``kill [--all] <container-id> [signal]`` (default SIGTERM; a name, with or without SIG, or a number)."""
    from ..signals import parse_signal

    sig = parse_signal(args[1] if len(args) > 1 else "SIGTERM")
    rt.kill(args[0], sig, bool(flags.get("all")))
    return 0


def cmd_delete(rt, args: list[str], flags: dict, g: dict) -> int:
    from ..errors import ContainerNotFound

    try:
        rt.delete(args[0], bool(flags.get("force")))
    except ContainerNotFound:
        if flags.get("force"):
            return 0  # runc: delete --force of a missing container succeeds
        raise
    return 0
