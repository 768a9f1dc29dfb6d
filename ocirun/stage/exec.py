"""The exec stage: what happens between `ocirun exec` and the execve of the new process.

`exec` re-execs the interpreter (``python -I -S``, see :func:`ocirun.stagespawn.spawn`)
with ``_OCIRUN_INITMODE=exec``; :func:`ocirun.stage.entry.main` resets signals, makes us
non-dumpable, receives CONFIG and hands over to :func:`exec_stage`.  With the interpreter on
read-only mounts `exec` forks instead and calls :func:`exec_stage` with CONFIG's fields in
memory (:mod:`ocirun.stagefork`, which does main's first steps).  Each numbered step starts at
the sync point of that number in the exec diagram of :mod:`ocirun.sync` (and of :mod:`ocirun.exec`).

    exec stage (a child of `exec`)           the process (forked; in the container's pid ns)
    ─────────────────────────────            ───────────────────────────────────────────────
    [0] CONFIG (namespace fds): decode,      [3] CGROUP_DONE (rlimits, oom_score_adj and, for a
        import, caps, seccomp, the agent         paused container, the cgroup: set by the parent)
    [1] CGROUP_JOINED: setns, user first,        become the namespace's root user, setsid,
        mount last (or chroot to the init's      memory policy, console, HOME, preflight (cwd,
        root without one; our root and cwd       program), fds close-on-exec, LSM labels,
        are now the container's: no host         priorities, seccomp and the switch to the user
        path is left)                            (caps, NNP)
    [2] fork, send PID, exit                 [4] READY, execve (the socket is close-on-exec: EOF)

Everything the later steps import is imported before the first setns: after
joining the mount namespace the host's library directory is out of reach.
"""
from __future__ import annotations

import os

from .. import sync
from ..kernel import files, identity
from ..kernel import linux as k
from ..plan import PROC_NS_FLAGS, capability_sets
from .common import (become_namespace_root, debug, exec_process, fork_then, load_seccomp,
                     prepare_exec_state, preimport)

BREAKOUT = ("current working directory is outside of container mount namespace root -- "
            "possible container breakout detected")


def exec_stage(sock, msg: dict, fds: list[int]) -> None:
    """Join the container, fork into its pid namespace; the child becomes the process.  Never returns."""
    from ..plan import ProcessPlan

    # [0] CONFIG (received by ocirun.stage.entry): the process as a launch plan's record, checked and
    # converted by the parent (ocirun.exec), as the init stage gets the container's
    process = ProcessPlan.from_wire(msg["process"])
    opts = msg["options"]
    index = opts["fd_index"]
    filtered = bool(msg.get("seccomp"))
    preimport(terminal=bool(process.terminal), seccomp=filtered, listener=filtered and bool(opts.get("listener_path")),
              scheduling=bool(process.scheduler or process.ioPriority or process.execCPUAffinity),
              memory_policy=opts.get("memory_policy") is not None)  # the container's linux.memoryPolicy
    from .. import security

    # Host-side facts, read while /proc is still ours.
    last_cap = k.cap_last_cap()
    masks, notes = capability_sets(process, last_cap)
    for level, text in notes:
        sync.send(sock, sync.WARNING, msg=text, level=level)
    debug(sock, msg, "nsexec container setup: joining the container's namespaces")
    seccomp = listener = None
    if msg.get("seccomp"):
        from ..seccomp import CompiledFilter

        seccomp = CompiledFilter.from_json(msg["seccomp"])
        if opts.get("listener_path"):
            from ..seccomp.notify import connect_listener

            listener = connect_listener(opts["listener_path"])
    console = fds[index["console"]] if "console" in index else None
    # The above (Python work, the agent's connection) overlaps the parent moving us into the container's
    # cgroup; the namespaces are joined and the process forked only once we are in it.
    # [1] CGROUP_JOINED, then join: user first (it owns the others), mount last (it takes our root
    # and cwd with it); the parent sends them in ocirun.plan.JOIN_ORDER.
    sync.recv(sock, sync.CGROUP_JOINED)
    joined_user = False
    for name, i in opts["namespaces"]:
        try:
            if name == "root":  # no mount namespace: the init's root, a detached tree in ours
                os.fchdir(fds[i])
                files.chroot(".")
                os.chdir("/")
            else:
                k.setns(fds[i], PROC_NS_FLAGS[name])
        except OSError as e:
            raise OSError(e.errno, f"join the container's {name} namespace: {e.strerror}") from None
        os.close(fds[i])
        joined_user = joined_user or name == "user"
    if process.capabilities is not None:
        # What capset would refuse, in runc's wording, before the fork.  After the joins: in a
        # container's user namespace we hold every capability (a rootless stage holds none before).
        security.check_caps(masks)

    # [2] Fork, send PID: setns(pid) applies to children only, so the child is in the container's pid ns.
    debug(sock, msg, "child process in init(): namespaces joined, forking the process")
    fork_then(sock, lambda: _process(sock, process, opts, masks, last_cap, seccomp, listener, console,
                                     joined_user, msg))


def _process(sock, process, opts, masks, last_cap, seccomp, listener, console, joined_user, msg) -> None:
    from .. import security

    # (A parent that stopped listening cannot kill us with SIGPIPE: sync.send uses MSG_NOSIGNAL.)
    # [3] CGROUP_DONE: the parent has set our rlimits and oom_score_adj (it still has the host's
    # privileges) and, for a paused container, moved us into the cgroup.
    done, _ = sync.recv(sock, sync.CGROUP_DONE)
    if done["type"] != sync.CGROUP_DONE:
        os._exit(1)  # the parent gave up (it reports the error itself)
    opts["host_pid"] = done.get("pid")
    if joined_user:
        become_namespace_root()
    identity.setsid()
    if opts.get("memory_policy") is not None:  # before seccomp, which may forbid set_mempolicy
        from ..mempolicy import apply as set_memory_policy  # imported before the setns by preimport

        set_memory_policy(opts["memory_policy"])
    if process.terminal:
        # /dev/ptmx is the container's (we are in its mount namespace): the slave lives in its devpts.
        from ..terminal import setup_console  # imported before the setns by preimport

        setup_console(console, process.consoleSize, bind=False, owner=process.user.uid)
    elif console is not None:
        os.close(console)
    env = security.env_with_home(process)
    setgroups = security.setgroups_policy(process, opts)
    path = security.preflight(process, setgroups)
    # Before any seccomp filter (it may forbid close_range or rt_sigaction): fds close-on-exec,
    # signals back to defaults.
    prepare_exec_state(opts.get("preserve_fds", 0))
    # LSM labels for the execve: before the privilege switch (our attr files are root's while we
    # are non-dumpable) and before seccomp; through a private procfs handle (CVE-2025-52881).
    from ..lsm import set_exec_labels

    set_exec_labels(process.apparmorProfile, process.selinuxLabel)

    security.apply_priorities(process)  # needs CAP_SYS_NICE: before the filter and the user switch
    if seccomp is not None and not process.noNewPrivileges:
        _load_seccomp(seccomp, listener, msg)  # without NNP the filter needs CAP_SYS_ADMIN: load it now
        seccomp = None
    security.become_process(process, masks, last_cap, setgroups, _chdir)
    if seccomp is not None:
        _load_seccomp(seccomp, listener, msg)

    # [4] READY, then execve: the sync socket is close-on-exec, so the parent's next read is EOF.
    debug(sock, msg, f"setns_init: about to exec {process.args[0]}")
    try:
        sync.send(sock, sync.READY)
    except OSError:
        pass
    try:
        exec_process(path, process.args, env)
    except OSError as e:
        raise OSError(e.errno, f'exec: "{process.args[0]}": {(e.strerror or str(e)).lower()}') from None


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
    pid = msg["options"].get("host_pid") or os.getpid()
    load_seccomp(compiled, listener, dict(msg["state"]), msg["options"].get("listener_metadata"), pid)
