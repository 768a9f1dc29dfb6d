"""What the re-exec'd interpreter runs first: :func:`main`, for `create` and for `exec` alike.

ocirun.stagespawn starts ``python -I -S -c <boot>`` (:data:`ocirun.stagespawn.BOOT`) with the sync socket
named by ``_OCIRUN_INITPIPE``; ``_OCIRUN_INITMODE=exec`` (:data:`ocirun.sync.ENV_INITMODE`) makes it
the exec stage.  Only the stage asked for is imported.
"""
from __future__ import annotations

import os

from .. import sync
from ..kernel import linux as k
from .common import EXEC_COMM, INIT_COMM, report


def main() -> None:
    """Entry of the re-exec'd stage.  Never returns."""
    fd = int(os.environ[sync.ENV_INITPIPE])
    import _socket

    sock = _socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    exec_mode = os.environ.get(sync.ENV_INITMODE) == "exec"
    try:
        # Signals back to defaults first: Python ignores SIGPIPE and SIGXFSZ and traps SIGINT,
        # and a container must not inherit that (nor must `kill` of a created container be caught).
        k.reset_signals()
        # Non-dumpable: a process in the container cannot open /proc/<us>/exe (the interpreter)
        # or ptrace us while we still hold host resources (CVE-2019-5736 class).
        k.prctl(k.PR_SET_DUMPABLE, 0)
        # The comm until execve replaces it: `state` reads "created" from it (ocirun.state.refresh).
        k.set_name(EXEC_COMM if exec_mode else INIT_COMM)
        # [0] CONFIG
        msg, fds = sync.recv(sock, sync.CONFIG)
        if exec_mode:
            from .exec import exec_stage

            exec_stage(sock, msg, fds)
        else:
            from .create import stage1

            stage1(sock, msg, fds)
    except BaseException as e:  # report anything to the parent, with the step that failed
        report(sock, e)
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":  # python -I -S -m ocirun.stage.entry (the launcher uses -c; handy for debugging)
    main()
