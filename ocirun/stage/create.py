"""The create stage: everything that happens inside the container before the user program runs.

`create` re-execs the interpreter (``python -I -S``, :func:`ocirun.stagespawn.spawn`) into
:func:`ocirun.stage.entry.main`, which receives CONFIG and calls :func:`stage1`; or, with the interpreter on
read-only mounts, forks and calls :func:`stage1` directly with the launch plan
(:mod:`ocirun.stagefork`).  Both stages execute the plan (:class:`ocirun.plan.LaunchPlan`) and read
nothing else of the config.  The sequence below reads top to bottom in spec order; each numbered step
starts at the sync point of that number in the diagram of :mod:`ocirun.sync`.

    stage 1 (a child of `create`)             stage 2 (forked by stage 1; pid 1 in a new pid ns)
    ─────────────────────────────             ─────────────────────────────────────────────────
    [0] CONFIG: decode the plan, import       setsid
    [1] CGROUP_JOINED: open the rootfs,       [4] CGROUP_DONE: lo up, mounts, devices
        join namespaces given by path         [5] HOOKS → HOOKS_DONE (prestart, createRuntime: the
        (user first)                              parent runs them); createContainer hooks here;
    [2] a new user ns: USERNS_READY,              pivot_root, keyring, hostname, sysctl, read-only
        wait for USERNS_MAPPED, become            and masked paths, read-only root, console,
        its root; unshare the others              oomScoreAdj, preflight (cwd, program), rlimits
    [3] fork stage 2, send its PID, exit      [6] READY; accept() on exec.sock until `start`
                                              [7] `start` connected: fds close-on-exec, LSM labels,
                                                  priorities, seccomp and the switch to the user
                                                  (caps, NNP), startContainer hooks, execve
"""
from __future__ import annotations

import os
import _signal as signal  # not `signal`: it imports enum, a cost paid by every create
import sys

from .. import sync
from ..kernel import identity
from ..kernel import linux as k
from ..pathsafe import O_PATH
from .common import (become_namespace_root, debug, describe, exec_process, fork_then, load_seccomp,
                     prepare_exec_state, preimport)


# ------------------------------------------------------------------------------------------------
def stage1(sock, msg: dict, fds: list[int], plan=None) -> None:
    """Stage 1, from CONFIG to the fork of stage 2 (steps [0]–[3]).  Never returns.  ``plan``: what the
    parent decided (ocirun.plan.LaunchPlan), given when the stage was forked from `create`
    (ocirun.stagefork), read from CONFIG here when the stage was re-exec'd.  The stages execute the plan
    and read nothing else of the config."""
    from ..plan import NAMESPACES, LaunchPlan

    # [0] CONFIG (received by ocirun.stage.entry, or handed over by ocirun.stagefork)
    if plan is None:
        plan = LaunchPlan.from_wire(msg["plan"])
    # runc's words for this step (its nsexec), which runc's debug tests and users' scripts look for.
    debug(sock, msg, "nsexec container setup: joining and creating the container's namespaces")
    _preimport(plan)
    # Up to here only Python work, done while the parent moves us into the cgroup: every kernel object
    # of the container (namespaces, its processes, their memory) is made after we are in it.
    # [1] CGROUP_JOINED
    sync.recv(sock, sync.CGROUP_JOINED)

    # Files we need later are opened now, as the runtime's user: inside a new user namespace
    # their paths may not be traversable any more.
    root_fd = os.open(plan.root_path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    handles = {}

    # Join the namespaces given by path: open them all first (paths resolve in the runtime
    # mount namespace), then setns in order, user first.
    joins = [(nstype, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for nstype, path in plan.joins]
    for nstype, path, nsfd in joins:
        try:
            k.setns(nsfd, NAMESPACES[nstype][0])
        except OSError as e:
            raise OSError(e.errno, f"join {nstype} namespace {path}: {e.strerror}") from None
        os.close(nsfd)

    mntns = plan.mount_namespace
    if plan.seccomp_listener:
        # Connect to the seccomp agent now: after pivot_root its socket path is out of reach.
        # Without an SCMP_ACT_NOTIFY rule listenerPath is ignored (config-linux.md): the plan has none.
        from ..seccomp.notify import connect_listener

        handles["listener"] = connect_listener(plan.seccomp_listener)
    if mntns == "joined":  # the rootfs path means what it means in the joined namespace
        os.close(root_fd)
        root_fd = os.open(plan.root_path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # Stand in the rootfs: unshare(CLONE_NEWNS) moves our cwd to its copy in the new namespace,
    # which is how we find the rootfs there without walking a path we may no longer traverse.
    os.fchdir(root_fd)
    os.close(root_fd)

    # [2] A new user namespace first: the parent writes our maps (USERNS_READY → USERNS_MAPPED),
    # then we become its root.
    if plan.new_user:
        # A non-root parent can open our /proc/<pid>/{uid,gid}_map only while we are dumpable
        # (runc does the same); nothing of the container runs yet, and we go back at once.
        unprivileged = os.geteuid() != 0
        k.unshare(k.CLONE_NEWUSER)
        if unprivileged:
            k.prctl(k.PR_SET_DUMPABLE, 1)
        sync.send(sock, sync.USERNS_READY)
        sync.recv(sock, sync.USERNS_MAPPED)
        if unprivileged:
            k.prctl(k.PR_SET_DUMPABLE, 0)
        become_namespace_root()
    flags = 0
    if mntns is None:
        # No mount namespace: the container inherits the runtime's.  Its filesystem is built in a
        # throw-away one all the same, and this fd takes stage 2 back (rootfs.enter_runtime_namespace).
        handles["runtime_mntns"] = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        flags = k.CLONE_NEWNS
    flags |= plan.unshare_flags
    if any(m.fstype in ("cgroup", "cgroup2") for m in plan.mounts):
        # The container's own cgroup per hierarchy, for the cgroup mount of stage 2: read here, in its
        # cgroups and still outside a new cgroup namespace (inside, every path reads "/").
        from ..rootfs import own_cgroup_binds

        handles["cgroup_binds"] = own_cgroup_binds()
    if flags:
        k.unshare(flags)
    handles["root"] = os.open(".", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if plan.time_offsets:
        _write_time_offsets(plan.time_offsets)

    # [3] Fork, send PID: in a new pid namespace the child is pid 1; time namespaces also apply to children.
    debug(sock, msg, "child process in init(): namespaces entered, forking the container's init")
    fork_then(sock, lambda: stage2(sock, plan, msg, fds, handles))


def _preimport(plan) -> None:
    """Import now what the later steps need (see :func:`ocirun.stage.common.preimport`), with what
    only this stage uses: the filesystem steps and the hooks."""
    process = plan.process
    seccomp = process is not None and plan.seccomp is not None
    preimport(terminal=bool(process is not None and process.terminal), seccomp=seccomp,
              listener=seccomp and bool(plan.seccomp_listener),
              scheduling=bool(process is not None and (
                  process.scheduler or process.ioPriority or process.execCPUAffinity)),
              memory_policy=plan.memory_policy is not None)
    from .. import mountinfo, rootfs  # noqa: F401  (mountinfo: the cgroup mount, --no-pivot)
    if any((plan.hooks.createContainer, plan.hooks.startContainer)):
        from .. import hooks  # noqa: F401
        import subprocess  # noqa: F401


def _write_time_offsets(offsets: list) -> None:
    """Through a private /proc handle: the mount namespace may be one joined by path."""
    from .. import procfs

    procfs.write("self/timens_offsets", "\n".join(f"{clock} {secs} {nsecs}" for clock, secs, nsecs in offsets))


# ------------------------------------------------------------------------------------------------
def stage2(sock, plan, msg: dict, fds: list[int], handles: dict) -> None:
    """Stage 2, the container's init, from CGROUP_DONE to execve (steps [4]–[7]).  Never returns."""
    from .. import lsm, rootfs, security

    opts = msg["options"]
    userns = plan.user_namespace
    identity.setsid()
    # [4] CGROUP_DONE: our cgroup limits are on.  Applying a device list passes through deny-all,
    # which must not race with our own mknod below.
    done, tree_fds = sync.recv(sock, sync.CGROUP_DONE)
    # With a user namespace, the runtime cloned the bind sources with its own credentials
    # (ocirun.bindsource): mount index → detached tree, attached below.
    trees = dict(zip(done.get("trees") or (), tree_fds))
    if plan.new_network:
        k.set_link_up("lo")

    # fds handed over: the console socket (for a terminal) comes by SCM_RIGHTS.
    fd_index = opts["fd_index"]
    console_sock = fds[fd_index["console"]] if "console" in fd_index else None

    # The filesystem, reached through the rootfs fd stage 1 opened.
    import _socket

    start_sock = _socket.socket(fileno=fds[fd_index["start"]])
    rootfd = rootfs.prepare_root(handles["root"], plan.rootfs_propagation)
    os.close(handles["root"])
    dev_is_bind = False
    readonly_dev = False  # a read-only /dev tmpfs: made read-only once its devices and console are in
    for i, op in enumerate(plan.mounts):
        if op.destination == "/dev" and op.bind:
            dev_is_bind = True
        readonly_dev = rootfs.defer_readonly_dev(op) or readonly_dev
        if op.bind and (op.idmap or op.uid_mappings):  # made by the runtime (ocirun.idmap): attach it
            rootfs.bind_mount(rootfd, op, tree=fds[fd_index[f"idmap{i}"]])
        elif i in trees:  # cloned by the runtime (ocirun.bindsource): attach it
            try:
                rootfs.bind_mount(rootfd, op, tree=trees.pop(i))
            except OSError as e:
                raise rootfs.RootfsError(f"mount {op.source} to {op.destination}: {e.strerror or e}") from None
        else:
            rootfs.do_mount(rootfd, op, userns, handles.get("cgroup_binds"))
    rootfs.mount_dev_defaults(rootfd, userns, dev_is_bind)
    for d in plan.devices:
        rootfs.create_device(rootfd, d.path, d.type, d.major, d.minor, d.fileMode, d.uid, d.gid, userns)
    rootfs.dev_links(rootfd, dev_is_bind)
    if plan.process is not None:
        rootfs.ensure_cwd(rootfd, plan.process.cwd)
    debug(sock, msg, "init: mounts and devices in place")

    # [5] HOOKS → HOOKS_DONE before pivot_root: prestart + createRuntime in the runtime namespace
    # (the parent; only when there are any), then createContainer here, in the container namespaces.
    if plan.hooks.prestart or plan.hooks.createRuntime:
        sync.send(sock, sync.HOOKS)
        sync.recv(sock, sync.HOOKS_DONE)
    if plan.hooks.createContainer:
        from ..hooks import run_phase

        run_phase("createContainer", plan.hooks.createContainer, _hook_state(msg, os.getpid()))

    # Switch root, then what must be done from inside.
    if opts.get("no_pivot"):
        rootfs.move_root(rootfd)
    else:
        rootfs.pivot(rootfd)
    os.close(rootfd)
    if plan.rootfs_propagation:
        from ..plan import PROPAGATION_ROOTFS

        k.mount(None, "/", None, PROPAGATION_ROOTFS[plan.rootfs_propagation])
    # Every procfs write from here on (keyring label, sysctl, oom_score_adj, LSM exec labels) goes
    # through one private clone of the container's /proc: no mount stacked on a /proc subpath, from
    # the config, a hook or a peer mount namespace, can redirect it (CVE-2025-52881; ocirun.procfs).
    proc = _procfs_handle(plan)
    if proc is not None:
        handles["procfs"] = proc
    if not opts.get("no_new_keyring"):
        # runc's default: a fresh session keyring named after the container (--no-new-keyring keeps ours),
        # labelled with the process label when SELinux is on
        if plan.process is not None:
            lsm.set_keyring_label(plan.process.selinuxLabel, proc)
        try:
            k.join_session_keyring(f"_ses.{msg['state']['id']}")
        except OSError as e:
            if e.errno != 38:  # ENOSYS: kernels without keyrings
                raise
    if plan.hostname is not None:  # (only with a uts namespace)
        k.sethostname(plan.hostname)
    if plan.domainname is not None:
        k.setdomainname(plan.domainname)
    for key, value in plan.sysctl.items():
        proc.write(f"sys/{key.replace('.', '/')}", value)
    for path in plan.readonly_paths:
        rootfs.readonly_path(path)
    for path in plan.masked_paths:
        rootfs.mask_path(path)
    if plan.root_readonly:
        rootfs.readonly_root()
    if plan.personality is not None:
        k.personality(plan.personality)
    _reopen_dev_null()
    if plan.memory_policy is not None:  # inherited by the process across execve; failing here fails `create`
        from ..mempolicy import apply as set_memory_policy

        set_memory_policy(plan.memory_policy)

    process = plan.process
    if process is None:
        # runtime.md: create applies everything but process; `start` MUST then fail.
        if console_sock is not None:
            os.close(console_sock)
        if readonly_dev:
            rootfs.readonly_dev()
        if "runtime_mntns" in handles:  # no mount namespace in the config: back to the runtime's
            rootfs.enter_runtime_namespace(handles.pop("runtime_mntns"))
        sync.send(sock, sync.READY)
        sock.close()
        _wait_for_start(start_sock)
        _fail_after_start("process was not set in config.json: there is nothing to start")
    if process.terminal:
        from ..terminal import setup_console

        setup_console(console_sock, process.consoleSize, owner=process.user.uid)
    elif console_sock is not None:
        os.close(console_sock)
    if readonly_dev:
        rootfs.readonly_dev()
    if "runtime_mntns" in handles:  # no mount namespace: back to the runtime's, after the last mount
        rootfs.enter_runtime_namespace(handles.pop("runtime_mntns"))  # (the console bind)
    if process.oomScoreAdj is not None:
        proc.write("self/oom_score_adj", str(process.oomScoreAdj))
    if proc is not None and not (process.apparmorProfile or process.selinuxLabel):
        handles.pop("procfs").close()  # now, not at execve: dissolving the clone costs ≈0.1 ms

    last_cap, masks = plan.last_cap, plan.capabilities  # decided (and its notes logged) by the parent
    seccomp = plan.seccomp  # compiled by the parent
    # Check, as the target user, that cwd and the program are usable, so that `create` reports
    # `exec: "x": ...` as runc does (podman maps that wording to exit 126/127).
    setgroups = security.setgroups_policy(process, opts)
    path = security.preflight(process, setgroups)
    process.env = security.env_with_home(process)  # read as root, from the container's /etc/passwd
    # rlimits now, so that one the kernel refuses fails `create` (engines read create's error).
    security.apply_rlimits(process.rlimits)
    if process.capabilities is not None:  # likewise caps capset would refuse after `start`
        security.check_caps(masks)

    # [6] READY: the parent records `created`.  Block in accept() until `start` connects.
    debug(sock, msg, "init: closing the pipe to signal completion (ready, waiting for start)")
    sync.send(sock, sync.READY)
    sock.close()
    _wait_for_start(start_sock)

    # [7] `start` connected: from here errors go to `start` over its connection.  Privileges in the
    # order that keeps each step possible (see ocirun.security), seccomp as late as possible,
    # startContainer hooks, execve.
    try:
        _exec_sequence(plan, process, path, msg, opts, seccomp, masks, last_cap, setgroups, handles)
    except BaseException as e:
        _fail_after_start(describe(e))


def _exec_sequence(plan, process, path: str, msg: dict, opts: dict, seccomp, masks: dict, last_cap: int,
                   setgroups: bool, handles: dict) -> None:
    """[7] after `start`: exec state, LSM labels, privileges, startContainer hooks, seccomp, execve."""
    from .. import lsm, security

    # Before any seccomp filter is loaded (it may forbid close_range or rt_sigaction): every
    # fd above stdio and --preserve-fds becomes close-on-exec, signals go back to defaults.
    prepare_exec_state(opts.get("preserve_fds", 0))
    # LSM labels for the execve, while we may still open our attr files (non-dumpable: root's)
    # and before any seccomp filter; they also apply to startContainer hooks (as in runc).
    lsm.set_exec_labels(process.apparmorProfile, process.selinuxLabel, handles.get("procfs"))
    security.apply_priorities(process)  # needs CAP_SYS_NICE: before the filter and the user switch
    if seccomp is not None and not process.noNewPrivileges:
        # Without NNP, loading a filter needs CAP_SYS_ADMIN: do it while we still have it.
        _load_seccomp(seccomp, msg, handles.get("listener"), plan.seccomp_metadata)
        seccomp = None
    security.become_process(process, masks, last_cap, setgroups, os.chdir)
    if seccomp is not None:
        # With NNP: as late as possible, but before the startContainer hooks, as runc does; a hook
        # runs under the container's filter either way (one whose syscall it forbids fails `start`).
        _load_seccomp(seccomp, msg, handles.get("listener"), plan.seccomp_metadata)
    if plan.hooks.startContainer:
        from ..hooks import run_phase

        run_phase("startContainer", plan.hooks.startContainer, _hook_state(msg, os.getpid(), "running"))
    exec_process(path, process.args, process.env)


def _reopen_dev_null() -> None:
    """Stdio that is the host's /dev/null becomes the container's own (as runc's reOpenDevNull).

    The host's device node lives on a mount the container cannot see: CRIU cannot checkpoint
    an fd on it ("Can't lookup mount"), and nothing in the container should hold a host file."""
    import stat

    try:
        null = os.stat("/dev/null")
    except OSError:
        return
    if not stat.S_ISCHR(null.st_mode) or null.st_rdev != os.makedev(1, 3):
        return
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev and (st.st_dev, st.st_ino) != \
                (null.st_dev, null.st_ino):
            new = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            os.dup2(new, fd)  # dup2's copy is inheritable
            os.close(new)


_START_FD = None


def _wait_for_start(start_sock) -> None:
    """Accept `start`'s connection on the start socket, answer "0", keep the connection open.

    The connection is close-on-exec: `start` reads until EOF, so it learns that
    execve happened (EOF after "0") or reads our error text after the "0".
    """
    global _START_FD
    catch = (15, 2, 1, 3, 10, 12)  # TERM INT HUP QUIT USR1 USR2
    for sig in catch:
        # As pid 1 of a new pid namespace, default-action signals would be ignored: honour them
        # while we wait, as a created container is expected to die on `kill`.
        signal.signal(sig, lambda s, f: os._exit(128 + s))
    conn_fd, _ = start_sock._accept()  # _socket's accept: returns the fd
    for sig in catch:
        signal.signal(sig, signal.SIG_DFL)
    start_sock.close()
    os.set_inheritable(conn_fd, False)
    os.write(conn_fd, b"0")
    _START_FD = conn_fd


def _fail_after_start(text: str) -> None:
    if _START_FD is not None:
        try:
            os.write(_START_FD, b"E" + text.encode()[:4000])
        except OSError:
            pass
    print(f"ocirun: {text}", file=sys.stderr)
    os._exit(1)


def _procfs_handle(plan):
    """The private /proc handle of stage 2, or None when nothing will be written to procfs."""
    process = plan.process
    if not (plan.sysctl or (process is not None and (
            process.oomScoreAdj is not None or process.selinuxLabel or process.apparmorProfile))):
        return None
    from ..procfs import Procfs

    return Procfs()


def _hook_state(msg: dict, pid: int, status: str = "creating") -> dict:
    st = dict(msg["state"])
    st["pid"] = pid
    st["status"] = status
    return st


def _load_seccomp(compiled, msg: dict, listener, metadata: str | None) -> None:
    state = dict(msg["state"])
    state["pid"] = os.getpid()
    load_seccomp(compiled, listener, state, metadata, state["pid"])
