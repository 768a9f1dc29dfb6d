"""Parent side of `create`: start the init stage, answer it, record the container.

The init stage is forked from this process when the interpreter and everything it maps lie on
read-only mounts (:mod:`ocirun.stagefork`: it then gets the launch plan in memory), else it is a fresh
interpreter (``python -I -S``) re-exec'd from a read-only bind of itself (:mod:`ocirun.stagespawn`,
which the command line may have started early).
"""
from __future__ import annotations

import os
import time
from .records import Record

from . import SPEC_VERSION, stagespawn, sync
from .config import Spec
from .errors import HookError, InitError, OciError
from .signals import SIGKILL
from .state import ContainerState, StateDir, read_start_time



class CreateOptions(Record):
    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    #: runc 1.2's --pidfd-socket: a pidfd of the container's init is sent there (ocirun.pidfd)
    pidfd_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    systemd_cgroup: bool = False
    rootless: bool = False
    #: (stdin, stdout, stderr) fds for the container's process instead of ours (the Python API's capture)
    stdio: tuple | None = None


def stagefork_reason() -> str:
    from .stagefork import last_reason

    return last_reason()


def fork_init(plan, config: dict, fds: list[int], opts: CreateOptions) -> tuple:
    """Fork the init stage (ocirun.stagefork): it gets CONFIG's fields and fds as they are here, and
    the ``plan`` itself, with no message and no second decoding.  Returns (pid, our end of the socket)."""
    from .stagefork import fork_stage

    def entry(sock) -> None:
        from .stage.create import stage1

        stage1(sock, {"type": sync.CONFIG, **config}, fds, plan=plan)

    from .stage.common import INIT_COMM

    return fork_stage(entry, comm=INIT_COMM, keep=fds, preserve_fds=opts.preserve_fds, stdio=opts.stdio)


def discard_init(pid: int, sock) -> None:
    """Kill and reap an init stage that never got its CONFIG (create failed before).

    Killed before its socket is closed: a stage that saw EOF first would report it on stderr, after
    the real error (runc's pre-spawned nothing prints one line)."""
    _undo(pid, None, None)
    sock.close()


def create(spec: Spec, sd: StateDir, opts: CreateOptions, log, init: tuple | None = None,
           fork: bool = False) -> ContainerState:
    """Run the whole create sequence; on any failure undo everything and raise.

    ``init``: (pid, socket) of an init stage spawned by the caller (ocirun.stagespawn)
    (so that it boots while the config is validated); spawned here when None, or forked with
    ``fork`` (the caller asked ocirun.stagefork.allowed)."""
    console_fd = pidfd_sock = None
    try:
        st = initial_state(spec, sd.id, opts.bundle, rootless=opts.rootless, systemd_cgroup=opts.systemd_cgroup)
        sd.save_config(spec.raw)  # the config as used, for `inspect`; the plan is kept for the others below
        compiled = _compile_seccomp(spec, log)
        console_fd = connect_console(opts.console_socket) if opts.console_socket else None
        if opts.pidfd_socket:
            from . import pidfd

            pidfd_sock = pidfd.connect(opts.pidfd_socket)
        start_sock = _listen(sd)
    except BaseException:
        if init is not None:
            discard_init(*init)
        if console_fd is not None:
            os.close(console_fd)
        if pidfd_sock is not None:
            pidfd_sock.close()
        raise
    from .kernel.linux import cap_last_cap
    from .plan import launch_plan

    # What the config asks for, decided once (ocirun.plan.LaunchPlan): the stage executes it, and the
    # binds this process prepares for it are read from the same mount operations.
    plan = launch_plan(spec, opts.bundle, cap_last_cap(), compiled, rootless=opts.rootless)
    for level, text in plan.notes:  # what cannot be granted: said once, here, before anything is made
        log.log(level, text)
    # The init stage: spawned by the caller already, forked below (ocirun.stagefork), or spawned now.
    forked = init is None and fork
    s1, sock = init if init is not None else (None, None) if forked else \
        stagespawn.spawn("init", opts.preserve_fds, opts.stdio)
    s2 = None
    s2_start = 0
    cgroup = None
    try:
        # CONFIG goes first, so that the init parses and imports while we make its cgroup and move it
        # in (the kernel's first cgroup.procs write waits for an RCU grace period, ≈10–17 ms here);
        # it creates no namespace and forks nothing before CGROUP_JOINED.
        # fds travel with CONFIG; ``fd_index`` names each one's position in the message.
        fds = [start_sock.fileno()]
        fd_index = {"start": 0}
        if console_fd is not None:
            fd_index["console"] = len(fds)
            fds.append(console_fd)
        idmap_fds = _idmapped_trees(spec, plan.mounts)
        for i, fd in idmap_fds.items():
            fd_index[f"idmap{i}"] = len(fds)
            fds.append(fd)
        config = dict(plan=plan.to_wire(), state=st.hook_state(),
                      options={"no_pivot": opts.no_pivot, "preserve_fds": opts.preserve_fds,
                               "no_new_keyring": opts.no_new_keyring,
                               "fd_index": fd_index, "setgroups": _setgroups_allowed(spec),
                               "debug": getattr(log, "debugging", False),
                               "keep_groups": _keep_groups(spec)})
        if forked:
            s1, sock = fork_init(plan, config, fds, opts)
            log.debug(f"init stage {s1} forked ({stagefork_reason()}); its plan is in its memory")
        else:
            sync.send(sock, sync.CONFIG, fds=fds, **config)
            log.debug(f"init stage {s1} started; config of {opts.bundle} sent")
        for fd in idmap_fds.values():
            os.close(fd)
        if console_fd is not None:
            os.close(console_fd)
            console_fd = None
        resources = plan.cgroup_resources()
        # The state ("creating") names the cgroup before any directory of it is made: if this
        # process is killed at any instant, `delete --force` finds and removes everything.
        cgroup = setup_cgroup(spec, sd.id, s1, opts, st, resources, record=sd.save, log=log)
        log.debug(f"init stage {s1} moved into its cgroup {st.cgroup.get('path', '')}")
        try:
            sync.send(sock, sync.CGROUP_JOINED)
        except OSError:
            pass  # the init failed already: its ERROR (or EOF) is next in the queue
        sd.save_plan(plan)  # what `exec` and `checkpoint` read; written while the stage works
        while True:
            _wait_for_init(sock, cgroup)  # bounded: refused if the stage is frozen in its cgroup
            try:
                msg, _ = sync.recv(sock)  # no message to us carries fds: recv refuses (and closes) any
            except sync.PeerError as e:
                raise (HookError if e.payload.get("hook") else InitError)(str(e)) from None
            kind = msg["type"]
            if kind == sync.WARNING:
                log.log(msg.get("level", "warning"), msg["msg"])
            elif kind == sync.USERNS_READY:
                write_id_maps(s1, spec)
                log.debug(f"id maps written for the user namespace of {s1}")
                sync.send(sock, sync.USERNS_MAPPED)
            elif kind == sync.PID:
                s2 = msg["pid"]
                s2_start = read_start_time(s2) or 0  # now: what the undo below checks before killing
                _reap(s1, cgroup)
                # Limits go on after the init stage's last fork: a pids limit of 0 is valid.
                if cgroup is not None:
                    cgroup.apply(resources)
                if spec.linux.intelRdt is not None:
                    from . import intelrdt

                    st.intel_rdt = intelrdt.apply(spec.linux.intelRdt, sd.id, s2, intelrdt.find_root())
                    sd.save(st)  # a killed create leaves a record that `delete --force` can act on
                if spec.linux.netDevices:
                    from .netdev import move_devices

                    move_devices(spec.linux.netDevices, f"/proc/{s2}/ns/net")
                trees = _bind_trees(spec, plan.mounts, s2)
                try:
                    sync.send(sock, sync.CGROUP_DONE, fds=list(trees.values()), trees=list(trees))
                finally:
                    for fd in trees.values():
                        os.close(fd)
                st.pid = s2
                st.pid_start = s2_start
                log.debug(f"container init is pid {s2}; cgroup limits applied")
            elif kind == sync.HOOKS:
                run_create_hooks(spec, st)
                log.debug("prestart and createRuntime hooks done")
                sync.send(sock, sync.HOOKS_DONE)
            elif kind == sync.READY:
                break
        if pidfd_sock is not None:
            from . import pidfd

            sock_, pidfd_sock = pidfd_sock, None
            pidfd.send(sock_, s2)
        st.status = "created"
        sd.save(st)
        log.debug(f"container {sd.id} created: init {s2} waits for start")
        if opts.pid_file:
            write_pid_file(opts.pid_file, s2)
        return st
    except BaseException as e:
        try:
            _undo(s1, s2 and (s2, s2_start), cgroup)
        except OciError as undo_error:
            # Something could not be removed: the state (it names all of it) stays for `delete --force`.
            log.warning(f"{undo_error} (left for `delete --force {sd.id}`)")
            e.keep_state = True
        if st.intel_rdt:
            from .intelrdt import remove

            remove(st.intel_rdt, undo=True)
        if isinstance(e, HookError):
            _poststop_after_failure(spec, st, log)
        if isinstance(e, sync.ProtocolError):
            raise InitError(f"init stage failed: {e}") from None
        raise
    finally:
        if sock is not None:
            sock.close()
        start_sock.close()
        if console_fd is not None:
            os.close(console_fd)
        if pidfd_sock is not None:
            pidfd_sock.close()


def initial_state(spec: Spec, cid: str, bundle: str, *, rootless: bool = False,
                  systemd_cgroup: bool = False) -> ContainerState:
    """The record of a container being made from ``spec`` ("creating", no pid yet): what `create`
    and `restore` (ocirun.checkpoint) both keep of the config, so the two cannot drift apart."""
    return ContainerState(
        id=cid, bundle=bundle, rootfs=spec.root_path, created=_now(), owner="",
        annotations=spec.annotations, ociVersion=SPEC_VERSION, rootless=rootless,
        systemd_cgroup=systemd_cgroup,
        namespaces={ns.type: ns.path or "" for ns in spec.linux.namespaces},
        hooks=spec.raw.get("hooks") or {},
    )


def _keep_groups(spec: Spec) -> bool:
    from .security import keeps_original_groups

    return keeps_original_groups(spec.annotations)


def _setgroups_allowed(spec: Spec) -> bool:
    """False when a non-root parent maps only its own gid into a new user namespace: the kernel
    then requires setgroups to be denied there (the init must not call setgroups(2))."""
    if os.geteuid() == 0 or spec.linux.namespace("user") is None or spec.linux.namespace("user").path:
        return True
    from .rootless import needs_gid_helper

    return needs_gid_helper(spec.linux.gidMappings)


def _poststop_after_failure(spec: Spec, st: ContainerState, log) -> None:
    """A failed create-phase hook: "stop the container, and continue the lifecycle at step 12"
    — the container is destroyed (done by the caller) and poststop hooks run, failures warned."""
    from .hooks import run_phase

    state = st.hook_state()
    state["status"] = "stopped"
    for i, hook in enumerate(spec.hooks.poststop):
        try:
            run_phase("poststop", [hook], state)
        except OciError as e:
            log.warning(str(e))


def run_create_hooks(spec: Spec, st: ContainerState) -> None:
    from .hooks import run_phase

    state = st.hook_state()
    state["status"] = "creating"
    run_phase("prestart", spec.hooks.prestart, state)
    run_phase("createRuntime", spec.hooks.createRuntime, state)


def _undo(s1: int, s2: tuple | None, cgroup) -> None:
    """Kill whatever the init stage became, reap it, remove its cgroup: ocirun.teardown's kill (every
    process in the cgroup, the init by pidfd, a bounded wait), then the stage we spawned.

    ``s2``: (pid, start time) of the container's init once reported."""
    from .kernel.process import kill
    from .teardown import Process, kill_all

    if s1 is not None:  # None: create failed before the stage was forked
        try:
            kill(s1, SIGKILL)  # our child, not reaped yet: its pid cannot have been reused
        except ProcessLookupError:
            pass
    init = Process(*s2) if s2 else None
    survivors = False
    try:
        kill_all(cgroup, init)  # thaws a frozen cgroup: the stage dies there too
    except OciError:
        survivors = True  # (an ancestor frozen meanwhile): the destroy below says what is left
    finally:
        if init is not None:
            init.close()
    if s1 is not None:
        _reap(s1, None, timeout=0 if survivors else 10.0)
    if cgroup is not None:
        cgroup.destroy()


#: How long the parent waits on a silent init stage before it looks whether the stage can still
#: answer (a frozen cgroup: it never will).  Hooks and mounts may take long; a frozen init, for ever.
_INIT_CHECK = 1.0


def _wait_for_init(sock, cgroup) -> None:
    """Wait until the init stage has something to say; refuse, rather than hang, when its cgroup is
    frozen (runc's wording): a frozen stage can neither answer nor exit (which would end the wait)."""
    import select

    p = select.poll()
    p.register(sock.fileno(), select.POLLIN)
    while not p.poll(int(_INIT_CHECK * 1000)):
        if cgroup is not None and cgroup.is_frozen():
            raise InitError("container's cgroup unexpectedly frozen")


def _reap(pid: int, cgroup=None, timeout: float = 10.0) -> None:
    """Reap our child ``pid``; bounded: a stage frozen in its cgroup never exits (refused as such),
    and one that will not die after SIGKILL is left to be reaped when we exit."""
    from .kernel.process import pidfd_open, wait_exited

    fd = pidfd_open(pid)  # our unreaped child: the pid is still its own
    if fd is not None:
        try:
            deadline = time.monotonic() + timeout
            while not wait_exited(fd, _INIT_CHECK):
                if cgroup is not None and cgroup.is_frozen():
                    raise InitError("container's cgroup unexpectedly frozen")
                if time.monotonic() > deadline:
                    return
        finally:
            os.close(fd)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _now() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{t % 10**9:09d}Z"


def write_pid_file(path: str, pid: int) -> None:
    from .state import write_atomic

    path = os.path.abspath(path)
    write_atomic(path, str(pid).encode(), 0o644)


def write_id_maps(pid: int, spec: Spec) -> None:
    """Write /proc/PID/{uid,gid}_map from the spec (we are root in the parent user namespace)."""
    linux = spec.linux
    if os.geteuid() != 0:  # rootless: own id directly, ranges through newuidmap/newgidmap
        from .rootless import write_maps

        return write_maps(pid, linux.uidMappings, linux.gidMappings)
    from .procfs import Procfs, ProcfsError, write_id_map

    with Procfs(private=False) as proc:  # the host's /proc, one handle for both maps: see ocirun.procfs
        for name, maps in (("uid_map", linux.uidMappings), ("gid_map", linux.gidMappings)):
            try:
                write_id_map(pid, name, maps, proc)
            except ProcfsError as e:
                raise InitError(e.strerror) from None


def _listen(sd: StateDir):
    """The start socket: the created init accepts on it; `start` connects to wake it.

    A socket rather than runc's fifo: the init can wait on it without reopening
    anything through /proc (which a non-dumpable process in a user namespace
    cannot), and the connection carries the init's answer back to `start`.
    Bound through an O_PATH fd of the state dir to stay clear of sun_path's 108 bytes.
    The C module `_socket`, not `socket` (which imports enum, selectors: ≈2 ms of every create).
    """
    import _socket as socket

    from .pathsafe import O_PATH

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dirfd = os.open(sd.path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s.bind(f"/proc/self/fd/{dirfd}/{os.path.basename(sd.start_socket)}")
    finally:
        os.close(dirfd)
    s.listen(1)
    return s


def connect_console(path: str) -> int:
    import _socket as socket  # see _listen

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OciError(f"connect to console socket {path}: {e.strerror}") from None
    return s.detach()


def _idmapped_trees(spec: Spec, mounts: list) -> dict[int, int]:
    """The idmapped bind mounts, made here as detached mounts for the init to attach (see
    ocirun.idmap.detached_trees for why the runtime makes them)."""
    if not any(m.uidMappings or {"idmap", "ridmap"} & set(m.options or ()) for m in spec.mounts):
        return {}
    from .idmap import detached_trees

    try:
        return detached_trees(spec, mounts)
    except OSError as e:
        raise OciError(str(e.strerror or e)) from None


def _bind_trees(spec: Spec, mounts: list, pid: int) -> dict[int, int]:
    """The bind mounts of a user-namespaced container, cloned with our credentials inside its mount
    namespace for stage 2 to attach (see ocirun.bindsource for why)."""
    from . import bindsource

    if not bindsource.wanted(spec):
        return {}
    try:
        return bindsource.trees(mounts, pid)
    except OSError as e:
        raise InitError(str(e.strerror or e)) from None


def setup_cgroup(spec: Spec, cid: str, pid: int, opts: CreateOptions, st: ContainerState, resources: dict,
                  record=None, log=None):
    """Create the container's cgroup and move the init stage in before it forks (the limits of
    ``resources`` go on later; a systemd unit starts with its device rules, see cgroups.systemd).

    As runc: a cgroup that exists already and is frozen is refused (the init would hang in it), a
    non-empty one is warned about.  ``record(st)`` is called with the directories about to be made
    already in ``st.cgroup``, before the first mkdir (see Manager.plan_create)."""
    from . import cgroups

    mgr = cgroups.for_container(spec.linux.cgroupsPath, cid, systemd=opts.systemd_cgroup, rootless=opts.rootless,
                                devices=resources.get("devices"))
    if mgr.frozen_from_the_start():
        raise cgroups.CgroupError("container's cgroup unexpectedly frozen")
    if log is not None:
        try:
            n = len(mgr.pids())
        except cgroups.CgroupError:
            n = 0
        if n:
            log.warning(f"container's cgroup is not empty: {n} process(es) found")
    mgr.plan_create()
    st.cgroup = mgr.to_state()
    if record is not None:
        record(st)
    try:
        mgr.create()  # may fail part-way (one hierarchy out of ten): what it made is in mgr.created
        mgr.add_pid(pid)
    except BaseException:
        try:
            mgr.destroy()
        except Exception:
            pass  # the original error is the one to report
        raise
    st.cgroup = mgr.to_state()
    return mgr


def container_plan(sd: StateDir, bundle: str):
    """The launch plan of an existing container, for `exec` and `checkpoint`: the one create kept; for a
    container made by an ocirun that kept only its config (an upgrade under running containers), the plan
    create makes of that kept config (``bundle``: the container's, from its state, against which the
    config's relative paths resolve).  Never of the bundle's config.json: that file is exactly what may
    no longer be the container's config."""
    plan = sd.load_plan()
    if plan is None:
        plan = kept_plan(Spec.parse(sd.load_config(), bundle), bundle)  # ConfigError: no kept config either
    return plan


def kept_plan(spec: Spec, bundle: str):
    """The launch plan create makes of ``spec``, for a container whose plan was not kept by create: one
    that `restore` brings back, or one made by an ocirun that kept only config.json (exec and checkpoint
    still work across an upgrade).  CRIU restores the processes' own filters and a running container's
    profile was compiled once already: the program is compiled (through the cache) for later `exec`s only,
    its warnings left unsaid."""
    from .kernel.linux import cap_last_cap
    from .plan import launch_plan

    compiled = None
    if spec.linux.seccomp:
        from . import seccomp

        compiled = seccomp.compile_filter(spec.linux.seccomp, cache_dir=seccomp.default_cache_dir())
    return launch_plan(spec, bundle, cap_last_cap(), compiled)


def _compile_seccomp(spec: Spec, log):
    """Compile the seccomp profile here, in the parent, so the init stage never imports libseccomp; the
    program (an ocirun.seccomp.model.CompiledFilter) travels in the launch plan."""
    if not spec.linux.seccomp:
        return None
    from . import seccomp

    compiled = seccomp.compile_filter(spec.linux.seccomp, cache_dir=seccomp.default_cache_dir())
    for w in compiled.warnings:
        log.warning(w)
    return compiled
