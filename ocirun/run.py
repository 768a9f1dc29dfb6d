"""`ocirun run`: create + start, then (in the foreground) wait and exit with the container's status.

We become a child subreaper before `create`, so the container's init — whose
parent, the init stage, exits — is re-parented to us and we can wait for it.
From before `create` until we return, every signal we can catch is ours
(:mod:`ocirun.forward`): none is lost or ends us while the container is made, and
each is forwarded to the init once it runs, as runc does.  Whatever ends the wait
(the init's exit, an error), what we created is deleted, unless ``--keep``.
"""
from __future__ import annotations

import os

from .kernel import linux as k


def run(rt, cid: str, opts, detach: bool = False, keep: bool = False, subreaper: bool = True) -> int:
    """``subreaper=False`` is ``--no-subreaper``, for a caller that is the reaper itself: the init goes
    to it, and we learn the exit status from the zombie's /proc entry before that caller reaps it
    (255 when it was faster; runc would wait for ever)."""
    if detach:
        return _run_detached(rt, cid, opts)
    from .forward import Forwarder

    with Forwarder(reaper=subreaper) as fwd:
        if subreaper:
            k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        console = _foreground_console(opts)
        st = master = None
        started = exited = False
        try:
            try:
                st = rt.create(cid, opts)  # on failure it removes what it made
                master = console.accept_master() if console is not None else None
                if master is not None:  # the process starts on our window size, not 0x0 (attach follows it)
                    from .tty import caller_size, set_size

                    size = caller_size()
                    if size:
                        set_size(master, *size)
            finally:
                if console is not None:
                    console.close()
                    opts.console_socket = None
            fwd.target(st.pid)
            rt.start(cid)
            started = True
            if master is not None:  # process.terminal without --console-socket: bridge our terminal
                from .tty import attach

                status = attach(master, fwd)
            else:
                status = fwd.wait(on_no_child=255)
            exited = True
        finally:
            if master is not None:
                os.close(master)
            if st is not None:
                _leave(rt, cid, fwd, keep and started, exited)
    return status


def _leave(rt, cid: str, fwd, keep: bool, exited: bool) -> None:
    """Delete the container, on every way out of `run`: its process exited, `start` failed, the
    terminal bridge failed...  ``keep`` (``--keep``, once the process has run): keep it, stopped."""
    if keep:
        if not exited:
            from .signals import SIGKILL

            fwd.send(SIGKILL)  # kept, stopped: we are not there to wait for it any more
        return
    if exited:
        rt.delete(cid, force=True)
        return
    try:
        rt.delete(cid, force=True)
    except Exception:
        pass  # the error that brought us here is the one to report


def _run_detached(rt, cid: str, opts) -> int:
    rt.create(cid, opts)
    try:
        rt.start(cid)
    except BaseException:
        _cleanup(rt, cid)
        raise
    return 0


def _cleanup(rt, cid: str) -> None:
    try:
        rt.delete(cid, force=True)
    except Exception:
        pass


def _foreground_console(opts):
    """A console socket of our own when the process wants a terminal and the caller gave none."""
    if opts.console_socket:
        return None
    from .fastjson import loads  # not json: it imports re and enum (≈8 ms of every foreground run)

    try:
        with open(os.path.join(opts.bundle, "config.json"), "rb") as f:
            terminal = bool((loads(f.read()).get("process") or {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return None  # create reports it
    if not terminal:
        return None
    from .tty import ConsoleListener

    console = ConsoleListener()
    opts.console_socket = console.path
    return console
