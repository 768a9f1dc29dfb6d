"""Fork the init or exec stage from the command's own process, when that is safe.

A stage re-exec'd as a fresh interpreter (:func:`ocirun.stagespawn.spawn`) costs an interpreter
start, the stage's imports, a message carrying the config and a second parse of it: ≈15 ms of every
create, run and exec.  A fork costs well under a millisecond and hands the stage the parsed config in
memory.  What the re-exec gave that a fork does not, and how each is made up for here:

* **/proc/<pid>/exe** (CVE-2019-5736).  The re-exec'd stage runs from a read-only detached bind of
  the interpreter (:func:`ocirun.pathsafe.readonly_exe`), so a process that gets that exe
  (``#!/proc/self/exe`` in the image, exec'd by the stage) cannot reopen it for writing.  A forked
  stage's exe is the file this command was started from.  So the fork is taken only when that file,
  and every shared object mapped executable, lies on a read-only mount (:func:`protection`): a
  container cannot make a mount of a namespace it is not in writable, and a reopen fails with EROFS.
  The immutable inode flag (FS_IMMUTABLE_FL) is *not* enough: any container process with
  CAP_LINUX_IMMUTABLE (in its bounding set, or given later by ``exec --cap``) can clear it through
  an fd of the exe.  Otherwise: the re-exec.
* **fds.**  The command's are all inherited, its per-container lock included (`start` would wait on it
  for ever): every fd but stdio, ``--preserve-fds`` and the ones the stage is handed is closed in the
  child before it does anything else (the re-exec's close-on-exec sweep, done by hand).
* **memory holding host data** (the command's heap, environment, arguments).  The child is made
  non-dumpable first thing, as the re-exec'd stage is, until the execve: /proc/<pid>/{mem,environ,
  maps,exe,fd} then need ptrace rights over it (CAP_SYS_PTRACE in the host's user namespace), which is
  also what today's stage relies on for the config it holds.  /proc/<pid>/cmdline needs none, so the
  arguments after argv[0] are zeroed, and so is the environment block (os.environ emptied: hooks the
  stage runs without an ``env`` of their own inherit nothing of the caller's, as with runc's init).
* **signals and Python state.**  Dispositions and mask back to defaults at the kernel level (the
  command may block or catch signals: ``run`` and a foreground ``exec`` do); stdio is flushed before
  the fork; the child never returns into the command: it ends in execve or ``os._exit``.  Only a
  single-threaded caller forks (ocirun.cgroups.warm's own thread aside, which holds no lock while it
  waits in the kernel): an embedding program's thread could hold a lock for ever.
"""
from __future__ import annotations

import gc
import os
import sys

from . import sync
from .kernel import linux as k

ST_RDONLY = 1

_LAST: tuple[bool, str] = (False, "not checked")


def protection() -> tuple[bool, str]:
    """(may fork, why): whether this process's executable and its mapped shared objects lie on
    read-only mounts now (≈0.2 ms: /proc/self/maps and a statvfs each).  Checked on every call, not
    once per process: a long-lived caller of the Python API may see a mount made writable meanwhile."""
    global _LAST
    _LAST = _check()
    return _LAST


def mapped_dirs() -> list[str]:
    """The directories holding the interpreter and every file it maps executable, parents first: what
    a deployment (or a test, or the benchmark) makes read-only so that :func:`protection` allows the fork."""
    import sys

    dirs = {os.path.dirname(os.path.realpath(sys.executable))}
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and "x" in fields[1] and fields[5].startswith("/"):
                dirs.add(os.path.dirname(fields[5].strip()))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def last_reason() -> str:
    """Why the last :func:`protection` allowed or refused the fork (for the --debug record)."""
    return _LAST[1]


def _check() -> tuple[bool, str]:
    if os.environ.get("OCIRUN_NO_FORK"):  # for A/B measurements and as an escape hatch
        return False, "OCIRUN_NO_FORK is set"
    try:
        exe = os.readlink("/proc/self/exe")
        if not os.statvfs("/proc/self/exe").f_flag & ST_RDONLY:
            return False, f"the interpreter {exe} is on a writable mount"
        seen = set()
        with open("/proc/self/maps", "rb") as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) < 6 or b"x" not in fields[1] or fields[4] == b"0" or not fields[5].startswith(b"/"):
                    continue
                key = (fields[3], fields[4])  # device, inode
                if key in seen:
                    continue
                seen.add(key)
                # The mapped file itself (map_files), not its name: a name may have been mounted over.
                start, end = (int(x, 16) for x in fields[0].split(b"-"))  # map_files: "%lx-%lx"
                if not os.statvfs(f"/proc/self/map_files/{start:x}-{end:x}").f_flag & ST_RDONLY:
                    return False, f"{fields[5].strip().decode(errors='replace')} is on a writable mount"
    except OSError as e:  # no /proc, or map_files refused (it needs CAP_SYS_ADMIN): cannot tell
        return False, f"cannot verify the interpreter's mounts: {e.strerror or e}"
    return True, f"the interpreter {exe} and its {len(seen)} mapped objects are on read-only mounts"


def allowed() -> bool:
    """Whether the stages may be forked from this process rather than re-exec'd: the interpreter is on
    read-only mounts (:func:`protection`), and no other thread may hold a lock (:func:`single_threaded`:
    a Python API caller's threads)."""
    return protection()[0] and single_threaded()


def single_threaded() -> bool:
    """Whether this process has one thread, ocirun.cgroups.warm's aside: a fork copies only the calling
    one, and a lock another held (an embedding program's logging, malloc, import lock) would never be
    released in the child.  warm's thread holds none (see :func:`ocirun.cgroups.warm.alive`); if it ends
    between the two looks, two threads and "not alive" refuse the fork: the safe side."""
    from .cgroups import warm

    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return False
    return threads == 1 or (threads == 2 and warm.alive())


def fork_stage(entry, *, comm: str, keep: list[int], preserve_fds: int = 0, stdio: tuple | None = None):
    """Fork; the child becomes the stage and runs ``entry(sock)``, never returning here.

    Returns (pid, our end of the sync socket), as stagespawn.spawn does.  ``keep``: the fds the stage is
    handed (they keep their numbers); with stdio and ``--preserve-fds`` the only ones it keeps.
    ``stdio`` (three fds) replaces stdin/stdout/stderr in the stage."""
    parent, child = sync.pair()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    pid = os.fork()
    if pid:
        child.close()
        return pid, parent
    try:
        k.prctl(k.PR_SET_DUMPABLE, 0)
        # No collections in the child (it lives until its execve): a pass would walk, and so copy,
        # every page of the inherited heap that holds a tracked object.
        gc.disable()
        k.reset_signals()
        k.set_name(comm)
        parent.close()
        if stdio:
            for i, fd in enumerate(stdio):
                os.dup2(fd, i)
        _close_all_but({child.fileno(), *keep, *range(3, 3 + preserve_fds)})
        _scrub_host_strings()
        entry(child)
    except BaseException as e:
        from .stage.common import report as _report

        _report(child, e)
        os._exit(1)
    os._exit(0)


def _close_all_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(fd for fd in keep if fd >= 3):
        if fd > low:
            k.close_range(low, fd - 1)
        low = fd + 1
    k.close_range(low, 0xFFFFFFFF)


def _scrub_host_strings() -> None:
    """Zero the arguments after argv[0] and the environment block, which /proc/<pid>/cmdline (read
    by anyone in the pid namespace) and /proc/<pid>/environ show; empty os.environ (unsetenv)."""
    os.environ.clear()
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])  # fields 48–51 of proc(5)
    first = k.string_length(arg_start) + 1
    k.zero_memory(arg_start + first, arg_end - arg_start - first)
    k.zero_memory(env_start, env_end - env_start)
