"""runc's command tree: global flags, each command's flags and argument count, dispatch, exit codes.

The grammar (flags as urfave/cli parses them, usage errors) is ocirun.commands.argv; each command's
code is a module of ocirun.commands (or ocirun.checkpoint), named in :data:`ENTRY` and imported only
when that command runs, so `state` does not pay for what `create` needs.
"""
from __future__ import annotations

import os
import sys

from .commands.argv import HelpTopicError, Usage, check_arity, parse_flags, preserved_fds

__all__ = ["main", "run_cli", "COMMANDS", "GLOBAL_FLAGS", "ENTRY", "ARITY", "Usage", "HelpTopicError",
           "parse_flags"]

#: the commands that move a process into a cgroup (ocirun.cgroups.warm starts on their way in)
WRITES_CGROUP_PROCS = ("create", "run", "exec")

# flag name → (aliases, takes a value)
GLOBAL_FLAGS = {
    "root": (("root",), True),
    "log": (("log",), True),
    "log-format": (("log-format",), True),
    "debug": (("debug",), False),
    "systemd-cgroup": (("systemd-cgroup",), False),
    "rootless": (("rootless",), True),
    "criu": (("criu",), True),
    "help": (("help", "h"), False),
    "version": (("version", "v"), False),
}
CREATE_FLAGS = {
    "bundle": (("bundle", "b"), True),
    "pid-file": (("pid-file",), True),
    "console-socket": (("console-socket",), True),
    "pidfd-socket": (("pidfd-socket",), True),
    "no-pivot": (("no-pivot",), False),
    "no-new-keyring": (("no-new-keyring",), False),
    "preserve-fds": (("preserve-fds",), True),
}
#: runc's flags shared by checkpoint and restore (ocirun.checkpoint, ocirun.restore)
_CRIU_FLAGS = {
    "image-path": (("image-path",), True),
    "work-path": (("work-path",), True),
    "tcp-established": (("tcp-established",), False),
    "ext-unix-sk": (("ext-unix-sk",), False),
    "shell-job": (("shell-job",), False),
    "file-locks": (("file-locks",), False),
    "manage-cgroups-mode": (("manage-cgroups-mode",), True),
    "empty-ns": (("empty-ns",), "repeat"),
    "auto-dedup": (("auto-dedup",), False),
    "lazy-pages": (("lazy-pages",), False),
}
#: command → its flags, in the order the global help lists the commands
COMMANDS: dict[str, dict] = {
    "create": CREATE_FLAGS,
    "run": {**CREATE_FLAGS, "detach": (("detach", "d"), False), "keep": (("keep",), False),
            "no-subreaper": (("no-subreaper",), False)},
    "start": {},
    "state": {},
    "kill": {"all": (("all", "a"), False)},
    "delete": {"force": (("force", "f"), False)},
    "list": {"format": (("format", "f"), True), "quiet": (("quiet", "q"), False)},
    "spec": {"bundle": (("bundle", "b"), True), "rootless": (("rootless",), False)},
    "features": {},
    "update": {
        "resources": (("resources", "r"), True),
        "blkio-weight": (("blkio-weight",), True),
        "cpu-period": (("cpu-period",), True),
        "cpu-quota": (("cpu-quota",), True),
        "cpu-share": (("cpu-share", "cpu-shares"), True),
        "cpu-rt-period": (("cpu-rt-period",), True),
        "cpu-rt-runtime": (("cpu-rt-runtime",), True),
        "cpuset-cpus": (("cpuset-cpus",), True),
        "cpuset-mems": (("cpuset-mems",), True),
        "kernel-memory": (("kernel-memory",), True),
        "kernel-memory-tcp": (("kernel-memory-tcp",), True),
        "memory": (("memory",), True),
        "memory-reservation": (("memory-reservation",), True),
        "memory-swap": (("memory-swap",), True),
        "pids-limit": (("pids-limit",), True),
        "l3-cache-schema": (("l3-cache-schema",), True),
        "mem-bw-schema": (("mem-bw-schema",), True),
    },
    "pause": {},
    "resume": {},
    "ps": {"format": (("format", "f"), True)},
    "events": {"interval": (("interval",), True), "stats": (("stats",), False)},
    "exec": {
        "console-socket": (("console-socket",), True),
        "pidfd-socket": (("pidfd-socket",), True),
        "cwd": (("cwd",), True),
        "env": (("env", "e"), "repeat"),
        "tty": (("tty", "t"), False),
        "user": (("user", "u"), True),
        "additional-gids": (("additional-gids", "g"), "repeat"),
        "process": (("process", "p"), True),
        "detach": (("detach", "d"), False),
        "pid-file": (("pid-file",), True),
        "process-label": (("process-label",), True),
        "apparmor": (("apparmor",), True),
        "no-new-privs": (("no-new-privs",), False),
        "cap": (("cap", "c"), "repeat"),
        "preserve-fds": (("preserve-fds",), True),
        "cgroup": (("cgroup",), "repeat"),
        "ignore-paused": (("ignore-paused",), False),
    },
    "inspect": {"format": (("format", "f"), True)},
    "validate": {"bundle": (("bundle", "b"), True)},
    "checkpoint": {
        **_CRIU_FLAGS,
        "leave-running": (("leave-running",), False),
        "parent-path": (("parent-path",), True),
        "pre-dump": (("pre-dump",), False),
        "page-server": (("page-server",), True),
        "status-fd": (("status-fd",), True),
    },
    "restore": {
        **_CRIU_FLAGS,
        "bundle": (("bundle", "b"), True),
        "detach": (("detach", "d"), False),
        "pid-file": (("pid-file",), True),
        "console-socket": (("console-socket",), True),
        "no-subreaper": (("no-subreaper",), False),
        "no-pivot": (("no-pivot",), False),
        "lsm-profile": (("lsm-profile",), True),
        "lsm-mount-context": (("lsm-mount-context",), True),
    },
}
#: command → "module:function" (relative to this package).  The function is called as
#: ``fn(runtime, args, flags, global_flags)`` and returns the exit status; its module is imported only
#: when the command runs.
ENTRY = {
    "create": ".commands.lifecycle:cmd_create", "run": ".commands.lifecycle:cmd_run",
    "start": ".commands.lifecycle:cmd_start", "kill": ".commands.lifecycle:cmd_kill",
    "delete": ".commands.lifecycle:cmd_delete",
    "state": ".commands.inspect:cmd_state", "list": ".commands.inspect:cmd_list",
    "ps": ".commands.inspect:cmd_ps", "events": ".commands.inspect:cmd_events",
    "inspect": ".commands.isolation:cmd_inspect",
    "spec": ".commands.spec:cmd_spec", "features": ".commands.spec:cmd_features",
    "update": ".commands.update:cmd_update",
    "pause": ".commands.pause:cmd_pause", "resume": ".commands.pause:cmd_resume",
    "exec": ".commands.exec:cmd_exec",
    "validate": ".commands.validate:cmd_validate",
    "checkpoint": ".checkpoint:cmd_checkpoint", "restore": ".restore:cmd_restore",
}

#: command → (least, most) positional arguments (None: no upper bound), checked as runc checks them
ARITY = {
    "create": (1, 1), "run": (1, 1), "start": (1, 1), "state": (1, 1), "delete": (1, 1), "kill": (1, 2),
    "list": (0, 0), "spec": (0, 0), "features": (0, 0), "update": (1, 1), "pause": (1, 1), "resume": (1, 1),
    "ps": (1, None), "events": (1, 1), "exec": (1, None), "inspect": (1, 1), "checkpoint": (1, 1),
    "restore": (1, 1), "validate": (0, 0),
}
#: commands whose flags end at the container id (what follows is the command / ps's options)
STOP_AT_ID = ("exec", "ps")
HELP_FLAG = {"help": (("help", "h"), False)}


def main(argv: list[str] | None = None) -> None:
    """The `ocirun` command (its launcher, ``python -m ocirun``): run it, then leave the process at once.

    One command is one short-lived process, so it ends with ``os._exit`` after flushing stdio rather
    than ``sys.exit``: interpreter finalization (module teardown, collecting every object) costs
    ≈1–2 ms per call, against runc's ≈5 ms for a whole `state`, and nothing here needs it -- no atexit
    handlers or ``__del__``, the log is one write(2) per record, state and pid files are written and
    closed before a command returns, and no command leaves a thread running.  In-process callers use
    :func:`run_cli` (or ``ocirun.api``), which returns the exit status instead."""
    code = run_cli(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away: nothing left to tell it
            pass
    os._exit(code)


def run_cli(argv: list[str]) -> int:
    log = None
    try:
        # Global flags come before the command.
        i = 0
        globals_argv = []
        while i < len(argv) and argv[i].startswith("-"):
            globals_argv.append(argv[i])
            name = argv[i].lstrip("-").partition("=")[0]
            takes = next((t for n, (al, t) in GLOBAL_FLAGS.items() if name in al), False)
            if takes and "=" not in argv[i] and i + 1 < len(argv):
                i += 1
                globals_argv.append(argv[i])
            i += 1
        g, _ = parse_flags(globals_argv, GLOBAL_FLAGS)
        if g.get("version"):
            from .help import program_name, version_text

            sys.stdout.write(version_text(program_name()))
            return 0
        if g.get("help") or i >= len(argv):
            return _print_help(None)
        cmd = argv[i]
        if cmd in ("help", "h"):
            return _print_help(argv[i + 1] if i + 1 < len(argv) else None)
        if cmd not in COMMANDS:
            raise HelpTopicError(cmd)
        table = COMMANDS[cmd]
        try:
            flags, args = parse_flags(argv[i + 1:], {**table, **HELP_FLAG}, stop_at_positional=cmd in STOP_AT_ID)
        except Usage as e:
            raise Usage(str(e), cmd, f"Incorrect Usage: {e}") from None
        if flags.pop("help", False):
            return _print_help(cmd)
        check_arity(cmd, args, *ARITY[cmd])
        if "preserve-fds" in table:
            flags["preserve-fds"] = preserved_fds(flags.get("preserve-fds", "0"))
        from .log import Logger

        fmt = g.get("log-format", "text")
        if fmt not in ("text", "json"):
            raise Usage(f"invalid log-format: {fmt}")
        log = Logger(g.get("log"), fmt, bool(g.get("debug")))
        try:
            if cmd in WRITES_CGROUP_PROCS:
                # The two longest waits of these commands, set going before they import their code and
                # read their config: the kernel's first cgroup.procs write after a quiet spell waits for
                # an RCU grace period (10–25 ms here; ocirun.cgroups.warm), and the stage's interpreter
                # boots (≈13 ms; ocirun.stagespawn: killed below if the command never takes it).
                from . import stagespawn
                from .cgroups import warm

                warm.start()
                stagespawn.early("exec" if cmd == "exec" else "init", flags.get("preserve-fds", 0))
            return dispatch(cmd, flags, args, g, log)
        finally:
            if cmd in WRITES_CGROUP_PROCS:
                from . import stagespawn

                stagespawn.discard_unused()
    except Usage as e:
        if e.command is not None:
            from .help import command_help, program_name

            sys.stdout.write(f"{e.prefix}\n\n" + command_help(program_name(), e.command, COMMANDS[e.command]))
        from .commands.edge import fail

        return fail(log, f"{e}")
    except HelpTopicError as e:
        from .commands.edge import fail

        fail(log, f"No help topic for '{e}'")
        return 3
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the edge: one line on stderr and in the log, exit 1
        from .commands.edge import describe, fail
        from .errors import OciError

        if not isinstance(e, (OciError, OSError)) and os.environ.get("OCIRUN_TRACEBACK"):
            raise
        return fail(log, str(e) if isinstance(e, OciError) else describe(e))


def _print_help(topic: str | None) -> int:
    """The global help, or ``topic``'s (runc's layout: ocirun.help); an unknown topic exits 3."""
    from .help import command_help, global_help, program_name

    name = program_name()
    if topic is None:
        sys.stdout.write(global_help(name, list(COMMANDS)))
        return 0
    if topic in ("help", "h"):
        sys.stdout.write(f"NAME:\n   {name} help - Shows a list of commands or help for one command\n\n"
                         f"USAGE:\n   {name} help [command]\n")
        return 0
    if topic not in COMMANDS:
        raise HelpTopicError(topic)
    sys.stdout.write(command_help(name, topic, COMMANDS[topic]))
    return 0


def dispatch(cmd: str, flags: dict, args: list[str], g: dict, log) -> int:
    """Run ``cmd``'s entry (:data:`ENTRY`) on the containers under the state root."""
    root = os.path.abspath(g.get("root") or _default_root(g))
    from .container import Runtime

    module, func = ENTRY[cmd].split(":")
    # __import__, not importlib (≈0.5 ms more on every exec): "ocirun.commands.exec" from ".commands.exec"
    name = __package__ + module
    __import__(name)
    return getattr(sys.modules[name], func)(Runtime(root, log), args, flags, g)


def _default_root(g: dict) -> str:
    from .rootless import default_root, prepare_xdg_root
    from .state import DEFAULT_ROOT

    root = default_root(DEFAULT_ROOT)
    if root != DEFAULT_ROOT:  # $XDG_RUNTIME_DIR/ocirun
        prepare_xdg_root(root)
    return root
