"""`exec [options] <container-id> <command> [args...]` and `exec -p process.json <container-id>`.

runc's exec flags become an :class:`ocirun.exec_process.ExecOptions`; :meth:`ocirun.container.Runtime.exec`
builds the process and launches it.  Every failure is printed as runc prints it, ``exec failed: ...``,
with runc's exit status 255; in the foreground the exit status is the process's.
"""
from __future__ import annotations

from ..errors import OciError
from ..exec_process import ExecOptions
from .argv import many

EXIT_FAILED = 255  # runc's exit status when exec itself fails


def options_from_flags(args: list[str], flags: dict) -> ExecOptions:
    """The command and its arguments (``args``, after the container id) and runc's exec flags."""
    return ExecOptions(
        process_file=flags.get("process"),
        args=list(args),
        tty=bool(flags["tty"]) if "tty" in flags else None,
        console_socket=flags.get("console-socket"),
        pidfd_socket=flags.get("pidfd-socket"),
        detach=bool(flags.get("detach")),
        pid_file=flags.get("pid-file"),
        cwd=flags.get("cwd"),
        env=many(flags.get("env")),
        user=flags.get("user"),
        additional_gids=many(flags.get("additional-gids")),
        caps=many(flags.get("cap")),
        no_new_privs=bool(flags["no-new-privs"]) if "no-new-privs" in flags else None,
        process_label=flags.get("process-label"),
        apparmor=flags.get("apparmor"),
        preserve_fds=flags.get("preserve-fds", 0),  # checked and counted by ocirun.commands.argv.preserved_fds
        cgroups=many(flags.get("cgroup")),
        ignore_paused=bool(flags.get("ignore-paused")),
    )


def cmd_exec(rt, args: list[str], flags: dict, g: dict) -> int:
    try:
        result = rt.exec(args[0], options_from_flags(args[1:], flags))
    except (OciError, OSError) as e:
        from .edge import describe, fail

        fail(rt.log, f"exec failed: {e if isinstance(e, OciError) else describe(e)}")
        return EXIT_FAILED
    return 0 if result.status is None else result.status
