"""What the create stage and the exec stage do the same way.

Both run in the re-exec'd interpreter (:mod:`ocirun.stage.entry`), both must import every module they
will need before they lose sight of the host's library directory (a new user namespace, setns into
the container's mount namespace, pivot_root), and both end the same way: every fd close-on-exec,
signals back to defaults, LSM labels, seccomp around the privilege switch, execve.
"""
from __future__ import annotations

import os
import sys

from .. import sync
from ..kernel import identity
from ..kernel import linux as k

#: The stage's comm (/proc/PID/comm, at most 15 bytes) until execve replaces it.  ``INIT_COMM`` is how
#: `state` tells a created container from a running one; it is :data:`ocirun.state.INIT_COMM`, spelled
#: out here because the stage does not import state (it pulls in fastjson): a unit test keeps them equal.
INIT_COMM = "ocirun:[init]"
EXEC_COMM = "ocirun:[exec]"


def preimport(*, terminal: bool, seccomp: bool, listener: bool, scheduling: bool, memory_policy: bool) -> None:
    """Import now every module the later steps of either stage need.

    Once we are in a new user namespace our uid may no longer be able to read the interpreter's
    library directory, and after pivot_root or setns into the container's mount namespace the
    host's filesystem is gone altogether: a lazy import there would fail.  Each stage adds the
    modules only it uses.
    """
    import errno, fcntl, stat, struct  # noqa: F401,E401  (binascii comes with seccomp.model below)

    from .. import errors, lsm, pathsafe, security  # noqa: F401  (errors: report() names HookError)
    if terminal:
        from .. import terminal as _terminal  # noqa: F401
    if seccomp:
        from .. import seccomp as _seccomp  # noqa: F401
        from ..kernel import seccomp as _kseccomp  # noqa: F401
        from ..seccomp import model  # noqa: F401
        if listener:  # notify imports json and socket (≈5 ms): only for an agent
            from ..seccomp import notify  # noqa: F401
    if scheduling:
        from .. import sched  # noqa: F401
    if memory_policy:
        from .. import mempolicy  # noqa: F401


def debug(sock, msg: dict, text: str) -> None:
    """A debug record for the parent's log (`--debug`): a stage has no log of its own.  Where runc's
    suite or users' scripts look for runc's words for a step, the text uses them."""
    if msg["options"].get("debug"):
        sync.send(sock, sync.WARNING, msg=text, level="debug")


def describe(e: BaseException) -> str:
    """``e`` as one line for the user.  OSError(errno, message) is how the stages raise with context:
    show the message (and the file), not Python's "[Errno N]" prefix (the caller reads one line, as
    from runc)."""
    text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text


def fork_then(sock, child) -> None:
    """Fork; the parent sends PID and exits 0, the child runs ``child()``, which execs the process and
    so never returns; an error on the way is reported and exits 1.  Both stages fork once for the same
    reason: a new or joined pid namespace takes in only children."""
    pid = os.fork()
    if pid:
        sync.send(sock, sync.PID, pid=pid)
        os._exit(0)
    try:
        child()
    except BaseException as e:
        report(sock, e)
        os._exit(1)
    os._exit(0)  # not reached: child() execs (a test's recorded execve returns here: it "succeeded")


def report(sock, e: BaseException) -> None:
    """Send ``e`` to the parent as ERROR, one line as runc prints it (stderr if the socket is gone)."""
    if isinstance(e, SystemExit):
        return
    text = describe(e)
    from ..errors import HookError

    try:
        sync.send(sock, sync.ERROR, msg=text, hook=isinstance(e, HookError))
    except OSError:
        print(f"ocirun init: {text}", file=sys.stderr)


def become_namespace_root() -> None:
    """In a user namespace we just created or joined: become its root (the ids we came with may be
    unmapped there)."""
    identity.setresgid(0, 0, 0)
    identity.setresuid(0, 0, 0)


def prepare_exec_state(preserve_fds: int) -> None:
    """Every fd above stdio + preserved ones becomes close-on-exec: no host fd reaches the
    container (CVE-2024-21626 class), including ones we do not know about; signal
    dispositions and mask go back to the defaults (Python ignores SIGPIPE and SIGXFSZ)."""
    k.close_range(3 + preserve_fds, 0xFFFFFFFF, 4)  # CLOSE_RANGE_CLOEXEC
    for i in range(3, 3 + preserve_fds):
        try:
            os.set_inheritable(i, True)
        except OSError:
            pass
    k.reset_signals()


def load_seccomp(compiled, listener, state: dict, metadata: str | None, pid: int) -> None:
    """Load the filter; with a notify listener, send its fd and the container's state to the agent
    connected to earlier (only with a listenerPath, so :func:`preimport` loaded notify)."""
    from .. import seccomp as sc

    fd = sc.load(compiled)
    if fd is not None:
        from ..seccomp.notify import send_state

        send_state(listener, fd, state, metadata, pid=pid)
        os.close(fd)


def exec_process(path: str, args: list[str], env: list[str]) -> None:
    """execve the user program; fds and signals were prepared by :func:`prepare_exec_state`.

    Anything opened since (hooks' pipes, the seccomp listener) was opened close-on-exec.
    """
    envp = {}
    for e in env:
        key, _, value = e.partition("=")
        envp[key] = value
    os.execve(path, args, envp)
