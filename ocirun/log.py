"""--log / --log-format text|json, the way runc writes them.

containerd's shim and conmon read the runtime's error from the log file as JSON
lines ``{"level":"error","msg":"...","time":"..."}``; without --log, errors go
to stderr only.  Writes are single ``write(2)`` calls on an O_APPEND fd, so
concurrent ocirun processes sharing one log file never interleave a line.
"""
from __future__ import annotations

import os
import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.fmt = fmt
        self.min_level = LEVELS["debug"] if debug else LEVELS["info"]
        self.fd = None
        if path:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _emit(self, level: str, msg: str) -> None:
        if LEVELS[level] < self.min_level:
            return
        if self.fd is None:
            # Without --log, stderr gets warnings, and with --debug every record, formatted as runc
            # writes them there (`time="..." level=debug msg="..."`, or a JSON line).  Errors are
            # printed by the CLI edge itself.
            if level == "warning" or (level != "error" and self.min_level == LEVELS["debug"]):
                sys.stderr.write(self.format(level, msg))
            return
        os.write(self.fd, self.format(level, msg).encode())

    def format(self, level: str, msg: str) -> str:
        now = _timestamp()
        if self.fmt == "json":
            from .fastjson import dumps

            return dumps({"level": _level_word(level), "msg": msg, "time": now}, compact=True) + "\n"
        return f'time="{now}" level={_level_word(level)} msg="{_escape(msg)}"\n'

    @property
    def debugging(self) -> bool:
        """--debug was given: the init stage then sends its own debug records to relay."""
        return self.min_level == LEVELS["debug"]

    def log(self, level: str, msg: str) -> None:
        """A record at ``level`` (a name of LEVELS), e.g. one relayed from the init stage."""
        self._emit(level if level in LEVELS else "warning", msg)

    def debug(self, msg: str) -> None:
        self._emit("debug", msg)

    def info(self, msg: str) -> None:
        self._emit("info", msg)

    def warning(self, msg: str) -> None:
        self._emit("warning", msg)

    def error(self, msg: str) -> None:
        self._emit("error", msg)


def _level_word(level: str) -> str:
    return "warning" if level == "warning" else level


def _escape(msg: str) -> str:
    return msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _timestamp() -> str:
    t = time.time()
    lt = time.localtime(t)
    off = time.strftime("%z", lt)  # RFC 3339 as Go writes it: "Z" for UTC, else +hh:mm
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + ("Z" if off in ("+0000", "-0000") else f"{off[:3]}:{off[3:]}")
