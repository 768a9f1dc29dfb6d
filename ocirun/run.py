"""`ocirun run`: create + start, then (in the foreground) wait and exit with the container's status.

We become a child subreaper before `create`, so the container's init — whose
parent, the init stage, exits — is re-parented to us and we can wait for it.
Signals we receive are forwarded to it, as runc does.
"""
from __future__ import annotations

import os
import signal

from .kernel import linux as k

FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM)


def run(rt, cid: str, opts, detach: bool = False, keep: bool = False) -> int:
    if not detach:
        k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
    console = None if detach else _foreground_console(opts)
    st = None
    try:
        st = rt.create(cid, opts)
        master = console.accept_master() if console is not None else None
        if master is not None:  # the process starts on our window size, not 0x0 (attach follows it later)
            from .tty import caller_size, set_size

            size = caller_size()
            if size:
                set_size(master, *size)
    except BaseException:
        if st is not None:  # created, but the pty master did not arrive
            _cleanup(rt, cid)
        raise
    finally:
        if console is not None:
            console.close()
            opts.console_socket = None
    if detach:
        try:
            rt.start(cid)
        except BaseException:
            _cleanup(rt, cid)
            raise
        return 0
    pid = st.pid
    for sig in FORWARDED:
        signal.signal(sig, lambda s, f: _forward(pid, s))
    try:
        rt.start(cid)
    except BaseException:
        _cleanup(rt, cid)
        raise
    if master is not None:  # process.terminal without --console-socket: bridge our terminal (ocirun.tty)
        from .tty import attach

        try:
            status = attach(master, pid)
        finally:
            os.close(master)
    else:
        status = _wait(pid)
    if not keep:
        rt.delete(cid, force=True)
    return status


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait(pid: int) -> int:
    """Wait for the container's init, reaping any other orphan re-parented to us meanwhile."""
    from .signals import wait_reaping

    return wait_reaping(pid, on_no_child=255)


def _cleanup(rt, cid: str) -> None:
    try:
        rt.delete(cid, force=True)
    except Exception:
        pass


def _foreground_console(opts):
    """A console socket of our own when the process wants a terminal and the caller gave none."""
    if opts.console_socket:
        return None
    import json

    try:
        with open(os.path.join(opts.bundle, "config.json"), "rb") as f:
            terminal = bool((json.loads(f.read()).get("process") or {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return None  # create reports it
    if not terminal:
        return None
    from .tty import ConsoleListener

    console = ConsoleListener()
    opts.console_socket = console.path
    return console
