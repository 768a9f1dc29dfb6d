"""Start a stage as a fresh interpreter, re-exec'd from a read-only bind of itself; early when the
command line can.

The stage (``python -I -S -c <BOOT>`` → :func:`ocirun.stage.entry.main`) starts with no inherited
Python state, no environment but the fd numbers it needs, and no open file but stdio, the sync socket
and what the caller asked us to pass on (``--preserve-fds``); it waits for CONFIG and does nothing
before.  Booting it (the interpreter and the stage's imports, ≈13 ms here) is the longest step on the
critical path of `create`, `run` and `exec`, so the command line starts it as soon as it knows the
command (:func:`early`), before it imports the library and reads the config; the library takes that
one (:func:`take`) rather than spawning its own, and the command line kills and reaps one left
untaken (:func:`discard_unused`: the command failed before needing it).  When the stage is to be
forked instead (ocirun.stagefork) nothing is spawned.

Light on purpose: this module is imported before the rest of the command.
"""
from __future__ import annotations

import os
import sys

from . import sync

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOT = f"import sys;sys.path.insert(0,{PKG_PARENT!r});from ocirun.stage.entry import main;main()"
#: stage kind → the environment that selects it in ocirun.stage.entry
MODES = {"init": {}, "exec": {sync.ENV_INITMODE: "exec"}}

#: the stage :func:`early` started and nobody took yet: (kind, preserve_fds, (pid, socket))
_early: tuple | None = None


def interpreter() -> str:
    """The interpreter to re-exec; resolved once, never through PATH (podman gives us none)."""
    return os.path.realpath(sys.executable)


def spawn(mode: str = "init", preserve_fds: int = 0, stdio: tuple | None = None) -> tuple:
    """Start a stage of kind ``mode`` ("init" or "exec"); return (pid, our end of the sync socket).

    What it inherits is exactly stdio, ``--preserve-fds`` and the sync socket: every other fd
    the caller left open is made close-on-exec first (CVE-2024-21626: an engine's leaked
    directory fd would otherwise be reachable as ``/proc/self/fd/N`` from the container).
    ``stdio`` (three fds) replaces our stdin/stdout/stderr in the stage, and so in the process.
    It runs from a read-only bind of the interpreter (pathsafe.readonly_exe), so its
    /proc/<pid>/exe cannot be reopened for writing from inside (CVE-2019-5736).
    """
    from .kernel import linux as k
    from .pathsafe import readonly_exe

    k.close_range(3 + preserve_fds, 0xFFFFFFFF, 4)  # CLOSE_RANGE_CLOEXEC
    parent, child = sync.pair()
    os.set_inheritable(child.fileno(), True)
    env = {sync.ENV_INITPIPE: str(child.fileno()), **MODES[mode]}
    exe = interpreter()
    ro = readonly_exe(exe)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(stdio)] if stdio else ()
        pid = os.posix_spawn(f"/proc/self/fd/{ro}", [exe, "-I", "-S", "-c", BOOT], env, file_actions=actions)
    finally:
        child.close()
        os.close(ro)
    return pid, parent


def early(mode: str, preserve_fds: int) -> None:
    """Start the stage the command will need, now, unless it will be forked (ocirun.stagefork).
    Best effort: a failure here is met again, and reported, when the library spawns its own."""
    global _early
    from .stagefork import allowed

    if _early is not None or allowed():
        return
    try:
        _early = (mode, preserve_fds, spawn(mode, preserve_fds))
    except OSError:
        pass


def take(mode: str, preserve_fds: int, stdio: tuple | None) -> tuple | None:
    """The stage :func:`early` started, if it is the one asked for (same kind, same ``--preserve-fds``,
    our own stdio); None otherwise.  The caller owns it from here."""
    global _early
    if _early is None or stdio is not None or _early[:2] != (mode, preserve_fds):
        return None
    init, _early = _early[2], None
    return init


def discard_unused() -> None:
    """Kill and reap the stage :func:`early` started if nobody took it (the command failed first).
    Killed before its socket is closed: a stage that saw EOF first would say so on stderr."""
    global _early
    if _early is None:
        return
    (pid, sock), _early = _early[2], None
    from .kernel.process import kill

    try:
        kill(pid, 9)  # SIGKILL; our child, not reaped yet: its pid cannot have been reused
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    sock.close()
