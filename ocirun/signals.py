"""Signal names and numbers as `kill` accepts them: KILL, SIGKILL, 9, sigkill."""
from __future__ import annotations

import signal

from .errors import UsageError


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
        raise UsageError(f"unknown signal {text!r}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        rt = _realtime(name)
        if rt is not None:
            return rt
        raise UsageError(f"unknown signal {text!r}")
    return int(sig)


def _realtime(name: str) -> int | None:
    """SIGRTMIN+n / SIGRTMAX-n."""
    for base, attr, sign in (("SIGRTMIN", "SIGRTMIN", 1), ("SIGRTMAX", "SIGRTMAX", -1)):
        if name == base:
            return int(getattr(signal, attr))
        if name.startswith(base) and name[len(base)] in "+-":
            try:
                off = int(name[len(base) + 1:])
            except ValueError:
                return None
            return int(getattr(signal, attr)) + sign * off
    return None
