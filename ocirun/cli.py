"""runc's command tree: global flags, subcommands, exit codes.

A small table-driven parser instead of argparse (≈7 ms to import): it accepts
what urfave/cli accepts for runc — ``--flag value``, ``--flag=value``,
``-flag value``, short aliases, flags before the positional arguments — so
every caller in CLIENTS.md works unchanged.  Command code is imported lazily,
so `state` does not pay for what `create` needs.
"""
from __future__ import annotations

import os
import sys


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
COMMANDS = {
    "create": CREATE_FLAGS,
    "run": {**CREATE_FLAGS, "detach": (("detach", "d"), False), "keep": (("keep",), False)},
    "start": {},
    "state": {},
    "kill": {"all": (("all", "a"), False)},
    "delete": {"force": (("force", "f"), False)},
    "list": {"format": (("format", "f"), True), "quiet": (("quiet", "q"), False)},
    "spec": {"bundle": (("bundle", "b"), True), "rootless": (("rootless",), False)},
    "features": {},
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
#: Commands that live in their own modules: name → (flags, "module:function").  The function is
#: called as ``fn(runtime, args, flags, global_flags)`` and returns the exit code; its module is
#: imported only when the command runs.
MODULE_COMMANDS: dict[str, tuple[dict, str]] = {
    "update": ({
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
    }, ".cgroup_commands:update"),
    "pause": ({}, ".cgroup_commands:pause"),
    "resume": ({}, ".cgroup_commands:resume"),
    "ps": ({"format": (("format", "f"), True)}, ".cgroup_commands:ps"),
    "events": ({"interval": (("interval",), True), "stats": (("stats",), False)}, ".cgroup_commands:events"),
    "exec": ({
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
    }, ".exec:cmd_exec"),
    "inspect": ({"format": (("format", "f"), True)}, ".inspect:cmd_inspect"),
    "validate": ({"bundle": (("bundle", "b"), True)}, ".commands.validate:cmd_validate"),
    "checkpoint": ({
        **_CRIU_FLAGS,
        "leave-running": (("leave-running",), False),
        "parent-path": (("parent-path",), True),
        "pre-dump": (("pre-dump",), False),
        "page-server": (("page-server",), True),
        "status-fd": (("status-fd",), True),
    }, ".checkpoint:cmd_checkpoint"),
    "restore": ({
        **_CRIU_FLAGS,
        "bundle": (("bundle", "b"), True),
        "detach": (("detach", "d"), False),
        "pid-file": (("pid-file",), True),
        "console-socket": (("console-socket",), True),
        "no-subreaper": (("no-subreaper",), False),
        "no-pivot": (("no-pivot",), False),
        "lsm-profile": (("lsm-profile",), True),
        "lsm-mount-context": (("lsm-mount-context",), True),
    }, ".restore:cmd_restore"),
}

#: command → (least, most) positional arguments (None: no upper bound), checked as runc checks them
ARITY = {
    "create": (1, 1), "run": (1, 1), "start": (1, 1), "state": (1, 1), "delete": (1, 1), "kill": (1, 2),
    "list": (0, 0), "spec": (0, 0), "features": (0, 0), "update": (1, 1), "pause": (1, 1), "resume": (1, 1),
    "ps": (1, None), "events": (1, 1), "exec": (1, None), "inspect": (1, 1), "checkpoint": (1, 1),
    "restore": (1, 1), "validate": (0, 0),
}
HELP_FLAG = {"help": (("help", "h"), False)}


class Usage(Exception):
    """A command line runc would refuse; ``command`` set: its help follows on stdout, as runc prints it."""

    def __init__(self, msg: str, command: str | None = None, prefix: str = "Incorrect Usage."):
        super().__init__(msg)
        self.command = command
        self.prefix = prefix


class HelpTopicError(Exception):
    """``help foo`` or an unknown command: runc's "No help topic" and exit status 3."""


def parse_flags(argv: list[str], table: dict, stop_at_positional: bool = False) -> tuple[dict, list[str]]:
    """Parse ``argv`` against ``table``; return (flags by canonical name, positional arguments)."""
    alias = {a: name for name, (aliases, _) in table.items() for a in aliases}
    flags: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" and not (rest and stop_at_positional):
            rest.extend(argv[i + 1:])
            break
        if arg.startswith("-") and arg != "-" and not (rest and stop_at_positional):
            body = arg.lstrip("-")
            name, eq, value = body.partition("=")
            canon = alias.get(name)
            if canon is None:
                raise Usage(f"flag provided but not defined: -{name}")
            if table[canon][1]:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise Usage(f"flag needs an argument: -{name}")
                    value = argv[i]
                if table[canon][1] == "repeat":  # repeatable: every value, in order
                    flags.setdefault(canon, []).append(value)
                else:
                    flags[canon] = value
            else:
                flags[canon] = value.lower() not in ("false", "0") if eq else True
        else:
            rest.append(arg)
        i += 1
    return flags, rest


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
        if cmd in COMMANDS:
            table, stop = COMMANDS[cmd], False
        elif cmd in MODULE_COMMANDS:
            # exec and ps: flags end at the container id (what follows is the command / ps's options)
            table, stop = MODULE_COMMANDS[cmd][0], cmd in ("exec", "ps")
        else:
            raise HelpTopicError(cmd)
        try:
            flags, args = parse_flags(argv[i + 1:], {**table, **HELP_FLAG}, stop_at_positional=stop)
        except Usage as e:
            raise Usage(str(e), cmd, f"Incorrect Usage: {e}") from None
        if flags.pop("help", False):
            return _print_help(cmd)
        _check_arity(cmd, args)
        if "preserve-fds" in table:
            flags["preserve-fds"] = preserved_fds(flags.get("preserve-fds", "0"))
        from .log import Logger

        fmt = g.get("log-format", "text")
        if fmt not in ("text", "json"):
            raise Usage(f"invalid log-format: {fmt}")
        log = Logger(g.get("log"), fmt, bool(g.get("debug")))
        return dispatch(cmd, flags, args, g, log)
    except Usage as e:
        if e.command is not None:
            from .help import command_help, program_name

            sys.stdout.write(f"{e.prefix}\n\n" + command_help(program_name(), e.command, _flags_of(e.command)))
        return _fail(log, f"{e}", usage=True)
    except HelpTopicError as e:
        _fail(log, f"No help topic for '{e}'")
        return 3
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the edge: one line on stderr and in the log, exit 1
        from .errors import OciError

        if not isinstance(e, (OciError, OSError)) and os.environ.get("OCIRUN_TRACEBACK"):
            raise
        msg = str(e) if isinstance(e, OciError) else _describe(e)
        return _fail(log, msg)


def _describe(e: Exception) -> str:
    if isinstance(e, OSError):
        text = e.strerror or str(e)
        return f"{text}: {e.filename}" if e.filename and str(e.filename) not in text else text
    return f"{type(e).__name__}: {e}"


def _fail(log, msg: str, usage: bool = False) -> int:
    from .errors import go_errno_text

    msg = go_errno_text(msg)
    if log is not None:
        log.error(msg)
    sys.stderr.write(f"ocirun: {msg}\n")
    return 1


def _flags_of(cmd: str) -> dict:
    return COMMANDS[cmd] if cmd in COMMANDS else MODULE_COMMANDS[cmd][0]


def _print_help(topic: str | None) -> int:
    """The global help, or ``topic``'s (runc's layout: ocirun.help); an unknown topic exits 3."""
    from .help import command_help, global_help, program_name

    name = program_name()
    if topic is None:
        sys.stdout.write(global_help(name, [*COMMANDS, *MODULE_COMMANDS]))
        return 0
    if topic in ("help", "h"):
        sys.stdout.write(f"NAME:\n   {name} help - Shows a list of commands or help for one command\n\n"
                         f"USAGE:\n   {name} help [command]\n")
        return 0
    if topic not in COMMANDS and topic not in MODULE_COMMANDS:
        raise HelpTopicError(topic)
    sys.stdout.write(command_help(name, topic, _flags_of(topic)))
    return 0


def preserved_fds(raw: str) -> int:
    """How many fds above stdio go to the container: ``--preserve-fds`` plus systemd's ``LISTEN_FDS``.

    Checked before this process opens anything (the --log file, sockets): a number that is not open
    in the caller would otherwise be taken by one of our own fds and handed to the container, and a
    negative one would reach stdio.  runc 1.1.5 runs both (handing its own fds over); ocirun refuses."""
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise Usage(f'invalid value "{raw}" for flag -preserve-fds: parse error')
    listen = os.environ.get("LISTEN_FDS")
    if listen and listen.isdigit() and os.environ.get("LISTEN_PID") == str(os.getpid()):
        n += int(listen)
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError:
            raise Usage(f"--preserve-fds={raw}: file descriptor {fd} is not open in the caller") from None
    return n


def _check_arity(cmd: str, args: list[str]) -> None:
    """runc's checkArgs: the same counts and wording (``"state" requires exactly 1 argument(s)``)."""
    least, most = ARITY[cmd]
    if least == most and len(args) != least:
        raise Usage(f'"{cmd}" requires exactly {least} argument(s)', cmd)
    if len(args) < least:
        raise Usage(f'"{cmd}" requires a minimum of {least} argument(s)', cmd)
    if most is not None and len(args) > most:
        raise Usage(f'"{cmd}" requires a maximum of {most} argument(s)', cmd)


def dispatch(cmd: str, flags: dict, args: list[str], g: dict, log) -> int:
    root = os.path.abspath(g.get("root") or _default_root(g))
    if cmd in ("spec", "features"):
        return _static(cmd, flags)
    if cmd == "list":
        return cmd_list(root, flags, log)
    from .container import Runtime

    rt = Runtime(root, log)
    if cmd in MODULE_COMMANDS:
        module, func = MODULE_COMMANDS[cmd][1].split(":")
        # __import__, not importlib (≈0.5 ms more on every exec): "ocirun.exec" from ".exec"
        name = __package__ + module
        __import__(name)
        return getattr(sys.modules[name], func)(rt, args, flags, g)
    if cmd in ("create", "run"):
        return cmd_create(rt, cmd, args[0], flags, g)
    cid = args[0]
    if cmd == "start":
        rt.start(cid)
        return 0
    if cmd == "state":
        from .fastjson import dumps

        st = rt.state(cid)
        sys.stdout.write(dumps(st.to_oci(), indent=2) + "\n")
        return 0
    if cmd == "kill":
        from .signals import parse_signal

        sig = parse_signal(args[1] if len(args) > 1 else "SIGTERM")
        rt.kill(cid, sig, bool(flags.get("all")))
        return 0
    if cmd == "delete":
        from .errors import ContainerNotFound

        try:
            rt.delete(cid, bool(flags.get("force")))
        except ContainerNotFound:
            if flags.get("force"):
                return 0  # runc: delete --force of a missing container succeeds
            raise
        return 0
    raise Usage(f"no such command: {cmd}")  # pragma: no cover


def _default_root(g: dict) -> str:
    from .rootless import default_root, prepare_xdg_root
    from .state import DEFAULT_ROOT

    root = default_root(DEFAULT_ROOT)
    if root != DEFAULT_ROOT:  # $XDG_RUNTIME_DIR/ocirun
        prepare_xdg_root(root)
    return root


def _static(cmd: str, flags: dict) -> int:
    import json

    if cmd == "features":
        from .features import features

        sys.stdout.write(json.dumps(features(), indent=4) + "\n")
        return 0
    from .specgen import default_spec

    bundle = flags.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        from .errors import OciError

        raise OciError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless=bool(flags.get("rootless"))), f, indent="\t")
    return 0


def cmd_list(root: str, flags: dict, log=None) -> int:
    from .container import Runtime

    fmt = flags.get("format", "table")
    if fmt not in ("table", "json"):
        raise Usage(f"invalid format option: {fmt}")
    states = Runtime(root, log).list()
    if flags.get("quiet"):
        for st in states:
            print(st.id)
        return 0
    if fmt == "json":
        from .fastjson import dumps

        # Go's encoder: compact, and a nil slice (no containers) is null, as `runc list -f json` prints
        sys.stdout.write((dumps([st.to_oci() for st in states], compact=True) if states else "null") + "\n")
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(st.id, str(st.to_oci()["pid"]), st.status, st.bundle, st.created, st.owner)
             for st in states]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _rootless(g: dict) -> bool:
    from .rootless import resolve

    return resolve(g.get("rootless"))


def cmd_create(rt, cmd: str, cid: str, flags: dict, g: dict) -> int:
    from .launcher import CreateOptions

    opts = CreateOptions(
        bundle=flags.get("bundle") or os.getcwd(),
        pid_file=flags.get("pid-file"),
        console_socket=flags.get("console-socket"),
        pidfd_socket=flags.get("pidfd-socket"),
        no_pivot=bool(flags.get("no-pivot")),
        no_new_keyring=bool(flags.get("no-new-keyring")),
        preserve_fds=flags.get("preserve-fds", 0),
        systemd_cgroup=bool(g.get("systemd-cgroup")),
        rootless=_rootless(g),
    )
    if cmd == "create":
        rt.create(cid, opts)
        return 0
    from .run import run

    return run(rt, cid, opts, detach=bool(flags.get("detach")), keep=bool(flags.get("keep")))
