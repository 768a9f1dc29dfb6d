"""runc's command-line grammar: flags parsed as urfave/cli parses them, and its usage errors.

A small table-driven parser instead of argparse (≈7 ms to import): it accepts what urfave/cli accepts
for runc — ``--flag value``, ``--flag=value``, ``-flag value``, short aliases, flags before the
positional arguments — so every caller in CLIENTS.md works unchanged.  The tables themselves (which
command takes which flag) are ocirun.cli's.
"""
from __future__ import annotations

import os


class Usage(Exception):
    """A command line runc would refuse; ``command`` set: its help follows on stdout, as runc prints it."""

    def __init__(self, msg: str, command: str | None = None, prefix: str = "Incorrect Usage."):
        super().__init__(msg)
        self.command = command
        self.prefix = prefix


class HelpTopicError(Exception):
    """``help foo`` or an unknown command: runc's "No help topic" and exit status 3."""


def parse_flags(argv: list[str], table: dict, stop_at_positional: bool = False) -> tuple[dict, list[str]]:
    """Parse ``argv`` against ``table`` (flag name → (aliases, takes a value: False, True or
    ``"repeat"``)); return (flags by canonical name, positional arguments)."""
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


def check_arity(cmd: str, args: list[str], least: int, most: int | None) -> None:
    """runc's checkArgs: the same counts and wording (``"state" requires exactly 1 argument(s)``)."""
    if least == most and len(args) != least:
        raise Usage(f'"{cmd}" requires exactly {least} argument(s)', cmd)
    if len(args) < least:
        raise Usage(f'"{cmd}" requires a minimum of {least} argument(s)', cmd)
    if most is not None and len(args) > most:
        raise Usage(f'"{cmd}" requires a maximum of {most} argument(s)', cmd)


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


def int_flag(flags: dict, name: str) -> int:
    """A runc IntFlag: a bad value is a usage error worded as urfave/cli words it."""
    raw = flags.get(name)
    if raw is None:
        return 0
    try:
        return int(raw, 10)
    except ValueError:
        raise Usage(f'invalid value "{raw}" for flag -{name}: parse error') from None


def many(value) -> list[str]:
    """A repeatable flag's values (none: an empty list)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
