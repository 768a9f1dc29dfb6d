"""The exec stage: what happens between `ocirun exec` and the execve of the new process.

`exec` re-execs the interpreter (``python -I -S``, see :func:`ocirun.launcher.spawn_init`)
with ``_OCIRUN_INITMODE=exec``; :func:`ocirun.init.main` resets signals, makes us
non-dumpable, receives CONFIG and hands over to :func:`exec_stage`.  With the interpreter on
read-only mounts `exec` forks instead and calls :func:`exec_stage` with CONFIG's fields in
memory (:mod:`ocirun.stagefork`, which does main's first steps).  The sync
points match the diagram in :mod:`ocirun.exec`.

    exec stage (a child of `exec`)           the process (forked; in the container's pid ns)
    ─────────────────────────────            ───────────────────────────────────────────────
    [1] receive CONFIG (namespace fds);      [3] wait for CGROUP_DONE (rlimits, cgroup set)
        parse, import; wait for CGROUP_JOINED
        setns: user first, mount last (or        become the container's root user, setsid,
        chroot to the init's root without one;   console, HOME, preflight (cwd, program),
        our root and cwd are now the             rlimits/oom by the parent, caps, NNP,
        container's: no host path is left)       apparmor, seccomp
    [2] fork, report PID, exit
                                             [4] READY, close-on-exec every fd, execve

Everything the later steps import is imported before the first setns: after
joining the mount namespace the host's library directory is out of reach.
"""
from __future__ import annotations

import os

from . import sync
from .kernel import linux as k

#: /proc/<pid>/ns/<name> → clone flag.  The parent sends them in join order.
NS_FLAGS = {
    "user": k.CLONE_NEWUSER, "ipc": k.CLONE_NEWIPC, "uts": k.CLONE_NEWUTS, "net": k.CLONE_NEWNET,
    "pid": k.CLONE_NEWPID, "cgroup": k.CLONE_NEWCGROUP, "time": k.CLONE_NEWTIME, "mnt": k.CLONE_NEWNS,
}
JOIN_ORDER = ("user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt")

BREAKOUT = ("current working directory is outside of container mount namespace root -- "
            "possible container breakout detected")


def exec_stage(sock, msg: dict, fds: list[int]) -> None:
    """Join the container, fork into its pid namespace; the child becomes the process.  Never returns."""
    from .config import Process

    process = Process.parse(msg["process"])
    opts = msg["options"]
    index = opts["fd_index"]
    _preimport(process, msg)
    from . import security

    # Host-side facts, read while /proc is still ours.
    last_cap = k.cap_last_cap()
    masks, notes = security.cap_sets(process, last_cap)
    for level, text in notes:
        sync.send(sock, sync.WARNING, msg=text, level=level)
    seccomp = listener = None
    if msg.get("seccomp"):
        from .seccomp import CompiledFilter

        seccomp = CompiledFilter.from_json(msg["seccomp"])
        if opts.get("listener_path"):
            from .seccomp.notify import connect_listener

            listener = connect_listener(opts["listener_path"])
    console = fds[index["console"]] if "console" in index else None
    # The above (Python work, the agent's connection) overlaps the parent moving us into the container's
    # cgroup; the namespaces are joined and the process forked only once we are in it.
    sync.recv(sock, sync.CGROUP_JOINED)

    # [1] Join: user first (it owns the others), mount last (it takes our root and cwd with it).
    joined_user = False
    for name, i in opts["namespaces"]:
        try:
            if name == "root":  # no mount namespace: the init's root, a detached tree in ours
                os.fchdir(fds[i])
                os.chroot(".")
                os.chdir("/")
            else:
                k.setns(fds[i], NS_FLAGS[name])
        except OSError as e:
            raise OSError(e.errno, f"join the container's {name} namespace: {e.strerror}") from None
        os.close(fds[i])
        joined_user = joined_user or name == "user"
    if process.capabilities is not None:
        # What capset would refuse, in runc's wording, before the fork.  After the joins: in a
        # container's user namespace we hold every capability (a rootless stage holds none before).
        security.check_caps(masks)

    # [2] setns(pid) applies to children only: fork, so that the process is in the container's pid ns.
    pid = os.fork()
    if pid:
        sync.send(sock, sync.PID, pid=pid)
        os._exit(0)
    try:
        _process(sock, process, opts, masks, last_cap, seccomp, listener, console, joined_user, msg)
    except BaseException as e:
        from .init import _report

        _report(sock, e)
        os._exit(1)
    os._exit(1)  # not reached


def _process(sock, process, opts, masks, last_cap, seccomp, listener, console, joined_user, msg) -> None:
    from . import security
    from .init import _prepare_exec_state, exec_process

    # (A parent that stopped listening cannot kill us with SIGPIPE: sync.send uses MSG_NOSIGNAL.)
    # [3] The parent sets our rlimits and oom_score_adj (it still has the host's privileges) and,
    # for a paused container, moves us into the cgroup now.
    done, _ = sync.recv(sock, sync.CGROUP_DONE)
    if done["type"] != sync.CGROUP_DONE:
        os._exit(1)  # the parent gave up (it reports the error itself)
    opts["host_pid"] = done.get("pid")
    if joined_user:
        # Become the namespace's root: the ids we came with may be unmapped here.
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    os.setsid()
    if opts.get("memory_policy") is not None:  # before seccomp, which may forbid set_mempolicy
        from .mempolicy import apply as set_memory_policy  # imported before the setns by _preimport

        set_memory_policy(opts["memory_policy"])
    if process.terminal:
        # /dev/ptmx is the container's (we are in its mount namespace): the slave lives in its devpts.
        from .terminal import setup_console  # imported before the setns by _preimport

        setup_console(console, process.consoleSize, bind=False, owner=process.user.uid)
    elif console is not None:
        os.close(console)
    env = security.env_with_home(process)
    setgroups = security.setgroups_policy(process, opts)
    path = security.preflight(process, setgroups)
    # Before any seccomp filter (it may forbid close_range or rt_sigaction): fds close-on-exec,
    # signals back to defaults.
    _prepare_exec_state(opts.get("preserve_fds", 0))
    # LSM labels for the execve: before the privilege switch (our attr files are root's while we
    # are non-dumpable) and before seccomp; through a private procfs handle (CVE-2025-52881).
    from .lsm import set_exec_labels

    set_exec_labels(process.apparmorProfile, process.selinuxLabel)

    security.apply_priorities(process)  # needs CAP_SYS_NICE: before the filter and the user switch
    if seccomp is not None and not process.noNewPrivileges:
        _load_seccomp(seccomp, listener, msg)  # without NNP the filter needs CAP_SYS_ADMIN: load it now
        seccomp = None
    security.become_process(process, masks, last_cap, setgroups, _chdir)
    if seccomp is not None:
        _load_seccomp(seccomp, listener, msg)

    # [4] READY, then execve: the sync socket is close-on-exec, so the parent's next read is EOF.
    try:
        sync.send(sock, sync.READY)
    except OSError:
        pass
    try:
        exec_process(path, process.args, env, opts.get("preserve_fds", 0))
    except OSError as e:
        raise OSError(e.errno, f'exec: "{process.args[0]}": {(e.strerror or str(e)).lower()}') from None


def _preimport(process, msg: dict) -> None:
    import errno, fcntl, stat, struct  # noqa: F401,E401

    from . import init, lsm, pathsafe, security  # noqa: F401
    from .security import ExecError  # noqa: F401
    if process.terminal:
        import array, socket, termios  # noqa: F401,E401

        from . import terminal  # noqa: F401
    if msg.get("seccomp"):
        from . import seccomp  # noqa: F401
        from .kernel import seccomp as _kseccomp  # noqa: F401
        from .seccomp import model  # noqa: F401
        if msg["options"].get("listener_path"):  # notify imports json and socket: only for an agent
            from .seccomp import notify  # noqa: F401
    if process.scheduler or process.ioPriority or process.execCPUAffinity:
        from . import plan, sched  # noqa: F401
    if msg["options"].get("memory_policy") is not None:  # the container's linux.memoryPolicy (ocirun.exec)
        from . import mempolicy  # noqa: F401


def _chdir(cwd: str) -> None:
    """chdir to the process's cwd and check we landed under the container's root.

    Our root is the container's (setns to its mount namespace moved it), so the path resolves
    there; getcwd() fails for a directory outside our root, which only a leaked host fd could give
    (CVE-2024-21626) — refuse rather than exec in it.
    """
    try:
        os.chdir(cwd)
    except OSError as e:
        raise OSError(e.errno, f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}") from None
    try:
        here = os.getcwd()
    except OSError:
        raise OSError(1, BREAKOUT) from None
    if not here.startswith("/"):
        raise OSError(1, BREAKOUT)


def _load_seccomp(compiled, listener, msg: dict) -> None:
    from . import seccomp as sc

    fd = sc.load(compiled)
    if fd is not None:
        from .seccomp.notify import send_state

        state = dict(msg["state"])
        pid = msg["options"].get("host_pid") or os.getpid()
        send_state(listener, fd, state, msg["options"].get("listener_metadata"), pid=pid)
        os.close(fd)
