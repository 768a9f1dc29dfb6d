"""Launch a new process in a created or running container: the runtime's side of `exec`.

    Runtime.exec (this module)               exec stage (ocirun.stage.exec: forked or python -I -S)
    ──────────────────────────               ──────────────────────────────────────────────────────
    load the state; refuse stopped, paused
    the process: --process FILE, or the
      kept plan's process + flags
      (<root>/<id>/plan.json, from create)
    its seccomp program; /proc/<init>/ns/*
    spawn the stage (or fork it: CONFIG is
      then its memory, the fds its own)
    ── CONFIG {process, namespaces} + fds ───▶
    (the process as a ProcessPlan: the
    container's launch plan's record)
    put it in the cgroup                     decode, import (nothing joined yet)
    ── CGROUP_JOINED ────────────────────────▶
                                             [1] setns, user first, mount last
                                             [2] fork into the container's pid ns
    ◀──────────────────────── PID {pid} ─────    (the stage exits)
    prlimit, oom_score_adj (host privileges),
    cgroup now if the container is paused
    ── CGROUP_DONE ──────────────────────────▶
                                             [3] console, preflight, user, caps, NNP, seccomp
    ◀──────────────────────── READY ─────────
                                             [4] execve (the socket is close-on-exec)
    EOF = exec'd; pid file; --detach returns now, else wait, forward signals, return its status

With ``--detach`` we are not a subreaper, so when the stage exits the process is
re-parented to the caller (conmon and containerd's shim are subreapers) and no
ocirun process stays behind.  In the foreground we are the subreaper and wait.
Errors are worded as runc words them; ocirun.commands.exec prints them as ``exec failed: ...`` with
exit status 255.  The process object itself is built and checked by :mod:`ocirun.exec_process`.
"""
from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` imports enum (≈2 ms of every exec)

from . import sync
from .exec_process import ExecFailed, ExecOptions, ExecRefused, build_process, check_terminal, parse_sub_cgroups
from .records import Record  # not dataclasses: it imports inspect (≈10 ms of every exec)

__all__ = ["execute", "ExecResult", "ExecOptions", "ExecFailed", "ExecRefused", "open_namespaces"]

EXIT_FAILED = 255  # runc's exit status when exec itself fails (also the status of a process we cannot wait for)


class ExecResult(Record):
    """A launched process: its pid (in our pid namespace) and, unless detached, its exit status
    (128+N when killed by signal N)."""

    pid: int
    status: int | None = None


def execute(rt, cid: str, opts: ExecOptions) -> ExecResult:
    """Run ``opts``' process in container ``cid`` (``rt``: an :class:`ocirun.container.Runtime`)."""
    from .state import PAUSED, STOPPED

    sd, st = rt.load(cid)
    if st.status == STOPPED:
        raise ExecRefused("cannot exec in a stopped container")
    if st.status == PAUSED and not opts.ignore_paused:
        raise ExecRefused("cannot exec in a paused container (use --ignore-paused to override)")
    if st.pid <= 0:
        raise ExecRefused("container is not running")
    from . import launcher, stagefork, stagespawn
    from .cgroups import warm

    warm.start()  # the first cgroup.procs write's RCU wait passes while we read the process
    # A re-exec'd exec stage (a fresh interpreter: ≈13 ms until it waits for CONFIG) boots while we
    # read and check the process and the seccomp profile; killed and reaped if we stop before handing
    # it over.  The command line started it already, if it could (ocirun.stagespawn); none when _launch
    # forks it instead (ocirun.stagefork).
    init = stagespawn.take("exec", opts.preserve_fds, opts.stdio)
    if init is None:
        init = (None, None) if stagefork.allowed() else stagespawn.spawn("exec", opts.preserve_fds, opts.stdio)
    try:
        # The launch plan create executed, kept in the state dir: never the bundle's config.json, which
        # may have been edited (a process without the container's seccomp filter) or removed since.
        plan = launcher.container_plan(sd, st.bundle)
        raw = build_process(opts, None if plan.process is None else plan.process.to_config())
        terminal = bool(raw.get("terminal"))
        check_terminal(terminal, opts.detach, opts.console_socket)
        subs = parse_sub_cgroups(opts.cgroups)
        seccomp_wire, from_config = _container_seccomp(plan, rt.log)
    except BaseException:
        if init[0] is not None:
            launcher.discard_init(*init)
        raise
    return _launch(rt, st, raw, opts, terminal, subs, seccomp_wire, from_config, paused=st.status == PAUSED,
                   init=init)


def _container_seccomp(plan, log) -> tuple[dict | None, dict]:
    """The container's seccomp program, for the wire, and the stage options that also come from the
    container's plan (the seccomp agent; ``linux.memoryPolicy``, which belongs to a task, so the
    exec'd process gets it set, as runc does).  ``plan`` is the launch plan create kept, so an exec'd
    process gets the container's filter whatever the bundle holds now (runc keeps it in state.json);
    the program is the one create compiled, its warnings said again as each exec compiled it before."""
    options = {}
    if plan.memory_policy is not None:
        options["memory_policy"] = plan.memory_policy
    compiled = plan.seccomp
    if compiled is None:
        return None, options
    for w in compiled.warnings:
        log.warning(w)
    if plan.seccomp_listener:  # none without an SCMP_ACT_NOTIFY rule
        options.update(listener_path=plan.seccomp_listener, listener_metadata=plan.seccomp_metadata)
    return compiled.to_json(), options


def sub_dirs_of(mgr, subs: dict[str, str]) -> list[str]:
    """The existing sub-cgroup directories to join, below the container's own."""
    paths = dict(getattr(mgr, "paths", None) or {"": mgr.path})
    out = []
    for ctrl, sub in subs.items():
        rel = os.path.normpath(sub.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):  # refused, as runc does, rather than clamped
            raise ExecFailed(f"{sub} is not a sub cgroup path")
        rel = "" if rel == "." else rel
        if ctrl == "":
            bases = list(dict.fromkeys(paths.values()))
        else:
            keys = [key for key in paths if ctrl in key.split(",")] or ([""] if "" in paths and
                                                                        len(paths) == 1 else [])
            if not keys:
                raise ExecFailed(f"unknown controller {ctrl} in SubCgroupPaths")  # runc's words
            bases = [paths[key] for key in keys]
        for base in bases:
            d = os.path.join(base, rel) if rel else base
            if d not in out:
                out.append(d)
    return out


def open_namespaces(pid: int, pid_start: int, proc: str = "/proc", root: bool = False) -> list[tuple[str, int]]:
    """Open the init's namespaces that differ from ours, in join order (user first, mount last).

    ``root``: the container has no mount namespace of its own (its root is a detached tree in the
    runtime's, ocirun.rootfs.enter_runtime_namespace): also open the init's root, last, as
    ``("root", fd)``, for the exec stage to chroot into after the joins.
    """
    from .plan import PROC_JOIN_ORDER as JOIN_ORDER
    from .state import read_start_time

    out = []
    try:
        for name in JOIN_ORDER:
            path = f"{proc}/{pid}/ns/{name}"
            try:
                theirs = os.stat(path)
            except FileNotFoundError:
                if not os.path.exists(f"{proc}/self/ns/{name}"):
                    continue  # this kernel has no such namespace type
                raise
            ours = os.stat(f"{proc}/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                continue
            out.append((name, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        if root:
            out.append(("root", os.open(f"{proc}/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)))
        # The fds are only the container's if the init is still the process we recorded.
        if read_start_time(pid, proc) != pid_start:
            raise ExecFailed("cannot exec in a stopped container")
    except BaseException:
        for _, fd in out:
            os.close(fd)
        raise
    return out


def _launch(rt, st, raw: dict, opts: ExecOptions, terminal: bool, subs: dict, seccomp_wire, from_config: dict,
            paused: bool, init: tuple) -> ExecResult:
    """``init``: (pid, socket) of the exec stage, spawned by :func:`execute`; ours to kill and reap on failure.
    (None, None): the stage is forked here once its CONFIG is ready (ocirun.stagefork)."""
    from . import launcher
    from .cgroups import from_state
    from .plan import Process, process_plan

    stage, sock = init
    try:
        process = process_plan(Process.parse(raw))  # what the stage executes, as the init stage's process
        mgr = from_state(st.cgroup) if st.cgroup else None
        sub_dirs = sub_dirs_of(mgr, subs) if (mgr is not None and subs) else []
        namespaces = open_namespaces(st.pid, st.pid_start,
                                     root=bool(st.namespaces) and "mount" not in st.namespaces)
    except BaseException:
        if stage is not None:
            launcher.discard_init(stage, sock)
        raise
    console_fd = None
    tty_sock = None
    final = None
    started: dict = {}
    forward = None
    pidfd_sock = None
    try:
        if not opts.detach:
            from .forward import Forwarder

            # Every signal is ours to forward from now on (ocirun.forward): one that arrives before the
            # process exists is kept and delivered once it does (it may well run before we know it).
            forward = Forwarder()
        if opts.pidfd_socket:
            from . import pidfd

            pidfd_sock = pidfd.connect(opts.pidfd_socket)
        if terminal:
            if opts.console_socket:
                console_fd = launcher.connect_console(opts.console_socket)
            else:
                from .tty import caller_size, console_pair

                tty_sock, console_fd = console_pair()
                # The process starts on the caller's window size (attach only follows it later,
                # once the process may have read 0x0): the stage sets it on the pty before execve.
                size = caller_size()
                if size:
                    process.consoleSize = {"height": size[0], "width": size[1]}
        if not opts.detach:
            from .kernel import linux as k

            # The process is the stage's child: when the stage exits it must come to us.
            k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)  # before the stage forks (after CGROUP_JOINED)
        # CONFIG first: the stage parses and imports while we move it into the cgroup (the kernel's
        # first cgroup.procs write waits for an RCU grace period); it joins nothing before CGROUP_JOINED.
        fds, fd_index = [], {}
        for name, fd in namespaces:
            fd_index[name] = len(fds)
            fds.append(fd)
        if console_fd is not None:
            fd_index["console"] = len(fds)
            fds.append(console_fd)
        config = dict(process=process.to_wire(), seccomp=seccomp_wire, state=st.hook_state(),
                      options={"namespaces": [[name, fd_index[name]] for name, _ in namespaces],
                               "fd_index": fd_index, "preserve_fds": opts.preserve_fds,
                               "setgroups": _setgroups_allowed(st.pid), "keep_groups": _keep_groups(st),
                               "debug": getattr(rt.log, "debugging", False),
                               **from_config})
        if stage is None:
            stage, sock = _fork_stage(config, fds, opts)
            rt.log.debug(f"exec stage {stage} forked ({launcher.stagefork_reason()})")
        else:
            sync.send(sock, sync.CONFIG, fds=fds, **config)
        for _, fd in namespaces:
            os.close(fd)
        namespaces = []
        if console_fd is not None:
            os.close(console_fd)
            console_fd = None
        if mgr is not None and not paused:
            _join_cgroups(mgr, sub_dirs, stage)  # before the stage forks: the process inherits it
        if st.intel_rdt:  # the container's resctrl group (and MON group), inherited the same way
            from .intelrdt import add_task

            add_task(st.intel_rdt, stage)
        try:
            sync.send(sock, sync.CGROUP_JOINED)
        except OSError:
            pass  # the stage failed already: its ERROR (or EOF) is next in the queue

        try:
            final = _handshake(rt, sock, stage, mgr, sub_dirs, process, paused and opts.detach, paused, started)
        finally:
            final = started.get("pid")  # known once PID arrived, even if a later step failed
        if pidfd_sock is not None:
            from . import pidfd

            sock_, pidfd_sock = pidfd_sock, None
            pidfd.send(sock_, final)
        if opts.pid_file:
            launcher.write_pid_file(opts.pid_file, final)
        if opts.detach:
            return ExecResult(pid=final)
        forward.target(final)
        sock.close()
        sock = None
        if tty_sock is not None:
            from .tty import attach, recv_master

            master = recv_master(tty_sock)
            tty_sock.close()
            tty_sock = None
            try:
                return ExecResult(pid=final, status=attach(master, forward))
            finally:
                os.close(master)
        return ExecResult(pid=final, status=forward.wait(on_no_child=EXIT_FAILED))
    except BaseException:
        if started.get("stage_reaped"):
            stage = None  # its pid may belong to someone else by now
        if final:  # through the pidfd opened when its pid arrived: never a pid reused since
            from .kernel.process import pidfd_signal

            if started.get("pidfd") is not None:
                pidfd_signal(started["pidfd"], signal.SIGKILL)
        if stage:  # our child, not reaped yet: its pid is still its own
            from .kernel.process import kill

            try:
                kill(stage, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if stage:
            _reap(stage)
        if final and not opts.detach:
            from .kernel.process import wait_exited

            # bounded: a process frozen in a paused container acts on SIGKILL only once thawed
            if started.get("pidfd") is None or wait_exited(started["pidfd"], 10.0):
                _reap(final)
        raise
    finally:
        if started.get("pidfd") is not None:
            os.close(started["pidfd"])
        if forward is not None:
            forward.close()
        for _, fd in namespaces:
            os.close(fd)
        if console_fd is not None:
            os.close(console_fd)
        if tty_sock is not None:
            tty_sock.close()
        if sock is not None:
            sock.close()
        if pidfd_sock is not None:
            pidfd_sock.close()


def _fork_stage(config: dict, fds: list[int], opts: ExecOptions) -> tuple:
    """Fork the exec stage (ocirun.stagefork) with CONFIG's fields and fds as they are here."""
    from .stage.common import EXEC_COMM
    from .stagefork import fork_stage

    def entry(sock) -> None:
        from .stage.exec import exec_stage

        exec_stage(sock, {"type": sync.CONFIG, **config}, fds)

    return fork_stage(entry, comm=EXEC_COMM, keep=fds, preserve_fds=opts.preserve_fds, stdio=opts.stdio)


def _join_cgroups(mgr, sub_dirs: list[str], pid: int) -> None:
    from .errors import CgroupError

    try:
        mgr.add_pid(pid)
        for d in sub_dirs:
            mgr.write(d, "cgroup.procs", pid)
    except CgroupError as e:
        raise ExecFailed(f"unable to start container process: error adding pid {pid} to cgroups: {e}") from None


def _handshake(rt, sock, stage: int, mgr, sub_dirs, process, early_return: bool, paused: bool,
               started: dict) -> int:
    """Answer the stage until the process has exec'd; return its pid (in our pid namespace), also
    recorded in ``started["pid"]`` as soon as it is known."""
    from .errors import InitError

    final = None
    ready = False
    while True:
        try:
            msg, _ = sync.recv(sock)  # no message to us carries fds: recv refuses (and closes) any
        except sync.PeerError as e:
            raise ExecFailed(f"unable to start container process: {e}") from None
        except (sync.ProtocolError, ConnectionResetError) as e:
            if final is not None and ready:
                return final  # EOF after READY: execve closed the stage's socket
            if final is not None:
                raise ExecFailed("unable to start container process: the process exited before exec") from None
            raise ExecFailed(f"unable to start container process: {e}") from None
        kind = msg["type"]
        if kind == sync.WARNING:
            rt.log.log(msg.get("level", "warning"), msg["msg"])
        elif kind == sync.PID:
            final = started["pid"] = int(msg["pid"])
            from .kernel.process import pidfd_open

            started["pidfd"] = pidfd_open(final)  # what a failure path signals (ocirun.teardown's rule)
            _reap(stage)
            started["stage_reaped"] = True
            if mgr is not None and paused:
                _join_cgroups(mgr, sub_dirs, final)  # frozen from here until `resume`
            _host_side_limits(final, process)
            try:
                sync.send(sock, sync.CGROUP_DONE, pid=final)
            except OSError:
                continue  # it died already: its ERROR (or EOF) is next in the queue
            if early_return:
                return final
        elif kind == sync.READY:
            if final is None:
                raise InitError("exec stage: READY before PID")
            ready = True


def _host_side_limits(pid: int, process) -> None:
    """rlimits and oom_score_adj, set from here: the process may be in a user namespace where it could
    not raise them itself."""
    import resource

    from .kernel.process import prlimit
    from .plan import RLIMIT_NAMES

    for resource_, soft_, hard_ in process.rlimits:  # a ProcessPlan's (resource, soft, hard)
        soft = resource.RLIM_INFINITY if soft_ >= 2**63 else soft_
        hard = resource.RLIM_INFINITY if hard_ >= 2**63 else hard_
        try:
            prlimit(pid, resource_, (soft, hard))
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)
            raise ExecFailed(f"unable to start container process: setrlimit {RLIMIT_NAMES[resource_]} "
                             f"soft={soft_} hard={hard_}: {reason}") from None
    if process.oomScoreAdj is not None:
        try:
            from .procfs import write

            write(f"{pid}/oom_score_adj", str(process.oomScoreAdj), private=False)  # the host's /proc
        except OSError as e:
            raise ExecFailed("unable to start container process: write oom_score_adj: "
                             f"{getattr(e, 'reason', e.strerror)}") from None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _keep_groups(st) -> bool:
    """The container's ``run.oci.keep_original_groups`` applies to exec'd processes too (as crun)."""
    from .security import keeps_original_groups

    return keeps_original_groups(st.annotations)


def _setgroups_allowed(pid: int) -> bool:
    """Whether the container's user namespace allows setgroups(2) (a rootless one mapping only
    its creator's gid denies it, and the exec'd process must not try)."""
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True
