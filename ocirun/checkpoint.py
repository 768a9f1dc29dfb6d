"""`checkpoint` and `restore`: a running container to CRIU images and back, with runc's flags.

    checkpoint                                   restore
    ──────────                                   ───────
    the container must be running or paused      config.json of the bundle; descriptors.json
    image dir made, --parent-path checked        criu check; the id claimed as create claims it
    criu check; FEATURE_CHECK for --pre-dump     (container.NewStateDir), state "creating"
      (memory tracking), --lazy-pages            mount points made through the binds (a private
    descriptors.json: what fds 0-2 were            mount namespace: nothing stays mounted)
    bind mounts (destinations resolved in the    rootfs bind-mounted at <state>/criu-root
      rootfs), devices, cgroup binds → external  criu swrk spawned, put into the container's
    DUMP or PRE_DUMP over swrk (ocirun.criu);      cgroup by create's code (launcher.setup_cgroup)
      status-ready → "\\0" on --status-fd         RESTORE; notifications: setup-namespaces
    unless --leave-running / --pre-dump: the       (prestart + createRuntime hooks, as create),
      container is gone, state and cgroup          post-restore (pid), orphan-pts-master
      removed                                      (→ --console-socket)
                                                 state "running", --pid-file

What is shared with runc, so that a host set up for runc works the same: CRIU's configuration file
(``/etc/criu/runc.conf``, or the ``org.criu.config`` annotation's; empty: none), the image files
(``descriptors.json``), the external-mount keys and the network namespace left out of the image
(``empty_ns``: runc does not manage network devices, the engine's network namespace is external).

The restored init is CRIU's sibling (``rst_sibling``): our child, so `restore` in the foreground can
wait for it, the Python API returns it as the caller's child and, detached, it is left to our
caller (a subreaper, like conmon) when we exit.  :func:`checkpoint` and :func:`restore` are the
library calls (``ocirun.api.Runtime`` uses them); ``cmd_checkpoint`` / ``cmd_restore`` turn the
command line into them.
"""
from __future__ import annotations

import json
import os

from . import mountinfo
from .errors import NotRunning, OciError
from .criu import CriuError
from .records import Record, factory

DESCRIPTORS = "descriptors.json"
#: ocirun's own note in the image: the container's cgroup v1/hybrid bind mounts (destination → host source)
CGROUP_BINDS = "ocirun-cgroup-binds.json"
#: CRIU's configuration file when the config has no ``org.criu.config`` annotation (runc's: a host
#: configured for runc's checkpoints configures ours)
DEFAULT_CRIU_CONFIG = "/etc/criu/runc.conf"
CRIU_CONFIG_ANNOTATION = "org.criu.config"
#: --empty-ns names → clone flags (the network namespace is the only one runc knows here)
EMPTY_NS = {"network": 0x40000000}  # CLONE_NEWNET


class CriuOptions(Record):
    """What checkpoint and restore share (runc's flags of both commands)."""

    image_path: str = ""  # "": ./checkpoint
    work_path: str | None = None
    tcp_established: bool = False
    ext_unix_sk: bool = False
    shell_job: bool = False
    file_locks: bool = False
    manage_cgroups_mode: str = ""  # "" (CRIU's default), soft, full, strict, ignore
    empty_ns: list = factory(list)  # namespace types CRIU makes empty instead of restoring
    auto_dedup: bool = False
    lazy_pages: bool = False
    criu: str | None = None  # the binary (--criu); None: criu on PATH


class CheckpointOptions(CriuOptions):
    parent_path: str | None = None  # relative to image_path: a pre-dump this dump builds on
    leave_running: bool = False
    pre_dump: bool = False
    page_server: str | None = None  # ADDRESS:PORT
    status_fd: int = -1  # with lazy_pages: "\0" written there once the pages can be fetched


class RestoreOptions(CriuOptions):
    bundle: str = ""  # "": the current directory
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False  # accepted as runc does; CRIU restores the root as it was dumped
    lsm_profile: str | None = None
    lsm_mount_context: str | None = None
    systemd_cgroup: bool = False


# -- shared --------------------------------------------------------------------------------------------
def _cg_mode(name: str) -> int:
    from .criu import CG_MODES

    if name not in CG_MODES:
        raise OciError(f"invalid manage-cgroups-mode value: {name!r} (soft, full, strict or ignore)")
    return CG_MODES[name]


def _empty_ns_mask(names: list[str]) -> int:
    mask = EMPTY_NS["network"]  # always: the network is the engine's (runc's choice, kept for images)
    for name in names:
        if name not in EMPTY_NS:
            raise OciError(f"--empty-ns: namespace {name!r} is not supported (only network)")
        mask |= EMPTY_NS[name]
    return mask


def _check_common(o: CriuOptions) -> None:
    """Refuse a bad --manage-cgroups-mode or --empty-ns before anything else is looked at."""
    _cg_mode(o.manage_cgroups_mode)
    _empty_ns_mask(o.empty_ns)


def _image_path(path: str) -> str:
    return os.path.abspath(path or os.path.join(os.getcwd(), "checkpoint"))


def _dir_fd(path: str) -> int:
    os.makedirs(path, 0o700, exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _is_bind(m) -> bool:
    return m.type == "bind" or any(o in ("bind", "rbind") for o in m.options)


def _criu_config_file(annotations: dict) -> str | None:
    """CRIU's configuration file for this container: the annotation's, none if it is empty, else
    the default one (CRIU skips a file that does not exist; its settings override ours)."""
    if CRIU_CONFIG_ANNOTATION in annotations:
        return annotations[CRIU_CONFIG_ANNOTATION] or None
    return DEFAULT_CRIU_CONFIG


def _common_opts(o: CriuOptions, image_fd: int, work_fd: int | None, log_file: str, annotations: dict) -> dict:
    return {
        "images_dir_fd": image_fd, "work_dir_fd": work_fd, "log_level": 4, "log_file": log_file,
        "manage_cgroups": True, "manage_cgroups_mode": _cg_mode(o.manage_cgroups_mode), "notify_scripts": True,
        "shell_job": o.shell_job, "tcp_established": o.tcp_established, "ext_unix_sk": o.ext_unix_sk,
        "file_locks": o.file_locks, "empty_ns": _empty_ns_mask(o.empty_ns), "orphan_pts_master": True,
        "auto_dedup": o.auto_dedup, "lazy_pages": o.lazy_pages, "config_file": _criu_config_file(annotations),
    }


def _external_ns(spec) -> list[str]:
    """Namespaces joined by path stay outside the image: ``net[<inode>]:extRootNetNS`` (runc's keys)."""
    out = []
    for nstype, name in (("network", "net"), ("pid", "pid")):
        ns = spec.linux.namespace(nstype)
        if ns is not None and ns.path:
            out.append(f"{name}[{os.stat(ns.path).st_ino}]:extRoot{name.capitalize()}NS")
    return out


def _binary(name: str | None, lacking: dict[str, str]) -> str:
    """The criu binary, after `criu check`, and FEATURE_CHECK of ``lacking`` (feature → why wanted)."""
    from . import criu

    binary = criu.find_binary(name)
    criu.check(binary)
    if lacking:
        missing = criu.missing_features(binary, list(lacking))
        if missing:
            raise CriuError("CRIU is missing features: " + ", ".join(f"{lacking[m]}" for m in missing))
    return binary


def _debug_opts(log, opts: dict) -> None:
    if getattr(log, "debugging", False):
        for name, value in opts.items():
            if value is not None and name not in ("ext_mnt", "inherit_fd", "cg_root", "join_ns", "ps"):
                log.debug(f"CRIU option {name} with value {value}")


def _with_log(msg: str, log_dir: str, name: str) -> str:
    from .criu import log_errors

    detail = log_errors(os.path.join(log_dir, name))
    if not detail:
        return msg
    return f"{msg.split(': ', 1)[0]}: {detail} (see {os.path.join(log_dir, name)})"


# -- checkpoint -----------------------------------------------------------------------------------------
def parent_image(image: str, parent: str | None) -> str | None:
    """``--parent-path``: relative to the image directory (CRIU opens it from there), and a directory."""
    if not parent:
        return None
    if os.path.isabs(parent):
        raise OciError(f"--parent-path must be relative to --image-path: {parent}")
    real = os.path.join(image, parent)
    try:
        if not os.path.isdir(real):
            os.stat(real)  # the error of a missing path
            raise NotADirectoryError(20, "not a directory")
    except OSError as e:
        raise OciError(f"invalid --parent-path: {real}: {e.strerror.lower()}") from None
    return parent


def status_fd(fd: int) -> int:
    """``--status-fd``: an open descriptor we may write to."""
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as e:
        raise OciError(f"invalid --status-fd {fd}: {e.strerror.lower()}") from None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise OciError(f"invalid --status-fd {fd}: not open for writing")
    return fd


def checkpoint(core, cid: str, o: CheckpointOptions) -> str:
    """Checkpoint container ``cid`` (``core``: ocirun.container.Runtime) into ``o.image_path``;
    return the image directory.  Unless ``leave_running`` or ``pre_dump``, the container is gone
    afterwards (CRIU killed its processes; its state and cgroup are removed, as `delete --force`)."""
    from . import config, criu
    from .state import PAUSED, RUNNING

    sd, st = core.load(cid)
    if st.status not in (RUNNING, PAUSED):
        raise NotRunning()
    _check_common(o)
    image = _image_path(o.image_path)
    os.makedirs(image, 0o700, exist_ok=True)
    parent = parent_image(image, o.parent_path)
    ps = criu.parse_page_server(o.page_server) if o.page_server else None
    fd_ready = status_fd(o.status_fd) if o.lazy_pages and o.status_fd != -1 else -1
    lacking = {}
    if o.pre_dump:
        lacking["mem_track"] = "memory tracking (soft-dirty pages), which --pre-dump needs"
    if o.lazy_pages:
        lacking["lazy_pages"] = "userfaultfd, which --lazy-pages needs"
    binary = _binary(o.criu, lacking)
    spec = config.Spec.parse(sd.load_config(), st.bundle)  # the container's, whatever the bundle holds now
    image_fd = _dir_fd(image)
    work_fd = _dir_fd(o.work_path) if o.work_path else None
    try:
        opts = _common_opts(o, image_fd, work_fd, "dump.log", spec.annotations)
        opts.update(pid=st.pid, root=st.rootfs, leave_running=o.leave_running, external=_external_ns(spec))
        if ps is not None:
            opts["ps"] = criu.page_server(*ps)
        if parent is not None:
            opts.update(parent_img=parent, track_mem=True)
        freezer = (st.cgroup.get("paths") or {}).get("freezer") if isinstance(st.cgroup, dict) else None
        if freezer:
            opts["freeze_cgroup"] = freezer
        if not o.pre_dump:  # a pre-dump saves memory only: no mounts, no fds
            _record_stdio(st.pid, image)
            binds = cgroup_binds(st.pid)
            with open(os.path.join(image, CGROUP_BINDS), "w") as f:
                json.dump(binds, f)
            opts["ext_mnt"] = [criu.ext_mount(dest, dest) for dest in _external_mounts(spec, binds)]
        _debug_opts(core.log, opts)

        def on_notify(script: str, pid: int, fds: list[int]) -> None:
            nonlocal fd_ready
            if script == "status-ready" and fd_ready != -1:  # lazy pages: the page server listens
                try:
                    os.write(fd_ready, b"\0")
                except OSError as e:
                    core.log.warning(f"cannot write to --status-fd {fd_ready}: {e.strerror}")
                os.close(fd_ready)
                fd_ready = -1

        swrk = criu.Swrk(binary)
        try:
            swrk.run(criu.PRE_DUMP if o.pre_dump else criu.DUMP, criu.encode_opts(opts), on_notify)
        except (CriuError, OSError) as e:
            text = str(e) if isinstance(e, CriuError) else (e.strerror or str(e))
            raise CriuError(_with_log(f"checkpoint failed: {text}", o.work_path or image, "dump.log")) from None
        finally:
            swrk.close()
    finally:
        os.close(image_fd)
        if work_fd is not None:
            os.close(work_fd)
    if not (o.leave_running or o.pre_dump):
        core.delete(cid, force=True)  # CRIU killed the processes: the container is gone (as runc)
    return image


def _record_stdio(pid: int, image: str) -> None:
    """descriptors.json: what fds 0-2 of the init were; restore maps pipes among them to its own stdio."""
    descriptors = []
    for i in range(3):
        try:
            descriptors.append(os.readlink(f"/proc/{pid}/fd/{i}"))
        except OSError:
            descriptors.append("/dev/null")
    with open(os.path.join(image, DESCRIPTORS), "w") as f:
        json.dump(descriptors, f)


def _external_mounts(spec, cgroup_binds: dict) -> list[str]:
    """Mount points CRIU must leave to us (key = the mount point in the container): the bind mounts,
    at the path their destination resolved to in the rootfs, the device nodes, the cgroup binds."""
    from .pathsafe import resolve_in_root

    out = [resolve_in_root(spec.root_path, m.destination) for m in spec.mounts if _is_bind(m)]
    out += [d.path for d in spec.linux.devices]
    out += list(cgroup_binds)
    return out


def cgroup_binds(pid: int, proc: str = "/proc") -> dict[str, str]:
    """The container's cgroup bind mounts: destination inside → the host directory bound there.

    Matched by filesystem type and super options to the host's mount of the same hierarchy."""
    cgroup = ("cgroup", "cgroup2")
    host = {(m.fstype, m.super_options): m.mountpoint
            for m in mountinfo.read(f"{proc}/self/mountinfo", cgroup) if m.root == "/"}
    out = {}
    for m in mountinfo.read(f"{proc}/{pid}/mountinfo", cgroup):
        src = host.get((m.fstype, m.super_options))
        if src is not None:
            out[m.mountpoint] = os.path.join(src, m.root.lstrip("/"))
    return out


def _saved_cgroup_binds(image: str) -> dict[str, str]:
    try:
        with open(os.path.join(image, CGROUP_BINDS)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


# -- restore --------------------------------------------------------------------------------------------
def restore(core, cid: str, o: RestoreOptions):
    """Restore container ``cid`` from ``o.image_path`` with the config of ``o.bundle``; return its
    state (running; the restored init is our child).  On failure nothing is left behind."""
    from . import config, criu
    from .container import NewStateDir
    from .launcher import connect_console, initial_state, write_pid_file

    bundle = os.path.abspath(o.bundle or os.getcwd())
    claim = NewStateDir(core.root, cid)
    _check_common(o)
    spec = config.load(bundle)
    image = _image_path(o.image_path)
    try:
        with open(os.path.join(image, DESCRIPTORS)) as f:
            descriptors = json.load(f)
    except (OSError, ValueError) as e:
        raise OciError(f"restore: {image}/{DESCRIPTORS}: {getattr(e, 'strerror', None) or e} "
                       f"(not a checkpoint image directory?)") from None
    binary = _binary(o.criu, {})
    mgr = None
    restored = {}
    root = None
    console_fd = image_fd = work_fd = None
    with claim as sd:
        try:
            st = initial_state(spec, cid, bundle, systemd_cgroup=o.systemd_cgroup)
            sd.save_config(spec.raw)  # as create keeps it: exec, checkpoint, inspect read this, never the bundle
            sd.save(st)
            if o.console_socket:
                console_fd = connect_console(o.console_socket)
            make_mountpoints(spec, bundle)
            root = _bind_root(spec, sd.path)
            image_fd = _dir_fd(image)
            work_fd = _dir_fd(o.work_path) if o.work_path else None
            opts = _restore_opts(spec, bundle, image, descriptors, o, image_fd, work_fd, root)
            extra = _external_ns_fds(spec, opts)
            swrk = criu.Swrk(binary, extra)
            for fd in extra:
                os.close(fd)
            try:
                # CRIU restores into the cgroup it runs in: made as create makes it, then CRIU put in.
                mgr = _container_cgroup(spec, st, sd, swrk.pid, o, core.log)
                opts["cg_root"] = _cg_roots(swrk.pid)
                _debug_opts(core.log, opts)

                def on_notify(script: str, pid: int, fds: list[int]) -> None:
                    from .state import read_start_time

                    if script == "setup-namespaces":  # the namespaces exist, nothing runs yet: create's hooks
                        from .launcher import run_create_hooks

                        st.pid = pid
                        run_create_hooks(spec, st)
                    elif script == "post-restore":
                        restored["pid"], restored["start"] = pid, read_start_time(pid) or 0
                    elif script == "orphan-pts-master" and fds and console_fd is not None:
                        _send_master(console_fd, fds[0])  # the restored terminal, to --console-socket

                try:
                    resp = swrk.run(criu.RESTORE, criu.encode_opts(opts), on_notify)
                except (CriuError, OSError) as e:
                    text = str(e) if isinstance(e, CriuError) else (e.strerror or str(e))
                    raise CriuError(_with_log(f"restore failed: {text}", o.work_path or image,
                                              "restore.log")) from None
                answer = criu.decode(resp.get(4, [b""])[0])
                pid = criu._int32(answer.get(1, [0])[0]) or restored.get("pid", 0)
            finally:
                swrk.close()
            if pid <= 0:
                raise CriuError("restore: criu did not report the restored init's pid")
            from .state import read_start_time

            st.pid = pid
            st.pid_start = read_start_time(pid) or 0
            st.status = "running"
            st.started = True
            sd.save(st)
            if o.pid_file:
                write_pid_file(o.pid_file, pid)
            return st
        except BaseException as e:
            _undo(restored, mgr, e, core.log, cid)
            raise
        finally:
            if root is not None:
                _unmount(root)
            for fd in (image_fd, work_fd, console_fd):
                if fd is not None:
                    os.close(fd)


def _restore_opts(spec, bundle: str, image: str, descriptors: list, o: RestoreOptions, image_fd: int,
                  work_fd: int | None, root: str) -> dict:
    from . import criu
    from .pathsafe import resolve_in_root

    opts = _common_opts(o, image_fd, work_fd, "restore.log", spec.annotations)
    opts.update(root=root, rst_sibling=True, evasive_devices=True, lsm_profile=o.lsm_profile or None,
                lsm_mount_context=o.lsm_mount_context or None)
    ext = [criu.ext_mount(resolve_in_root(spec.root_path, m.destination), _source(m, bundle))
           for m in spec.mounts if _is_bind(m)]
    ext += [criu.ext_mount(d.path, d.path) for d in spec.linux.devices]
    ext += [criu.ext_mount(dest, src) for dest, src in _saved_cgroup_binds(image).items()]
    opts["ext_mnt"] = ext
    opts["inherit_fd"] = [criu.inherit_fd(d, i) for i, d in enumerate(descriptors) if "pipe:" in d]
    opts["join_ns"] = [criu.join_ns(_CRIU_NS[ns.type], ns.path) for ns in spec.linux.namespaces
                       if ns.path and ns.type in _CRIU_NS]
    return opts


def _external_ns_fds(spec, opts: dict) -> list[int]:
    """Namespaces joined by path, opened for CRIU (fds 4, 5 in it) and named as at checkpoint."""
    from . import criu

    extra = []
    for nstype, name in (("network", "net"), ("pid", "pid")):
        ns = spec.linux.namespace(nstype)
        if ns is not None and ns.path:
            try:
                extra.append(os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as e:
                for fd in extra:
                    os.close(fd)
                raise OciError(f"restore: {nstype} namespace {ns.path}: {e.strerror.lower()}") from None
            opts["inherit_fd"].append(criu.inherit_fd(f"extRoot{name.capitalize()}NS", 3 + len(extra)))
    return extra


def _container_cgroup(spec, st, sd, pid: int, o: RestoreOptions, log):
    """The container's cgroup, made and joined by ``pid`` (criu swrk) with create's code, limits on."""
    from .launcher import CreateOptions, resources_with_default_devices, setup_cgroup

    resources = resources_with_default_devices(spec.linux.resources)
    mgr = setup_cgroup(spec, st.id, pid, CreateOptions(bundle=st.bundle, systemd_cgroup=o.systemd_cgroup),
                       st, resources, record=sd.save, log=log)
    sd.save(st)
    mgr.apply(resources)
    return mgr


def _undo(restored: dict, mgr, error: BaseException, log, cid: str) -> None:
    """The one teardown (ocirun.teardown): every process in the cgroup, the restored init by pidfd
    (pid + start time), a bounded wait, the cgroups; the state dir goes with NewStateDir unless
    something could not be removed (then ``keep_state``: `delete --force` finds it in the state)."""
    from .teardown import Process, kill_all

    init = Process(restored["pid"], restored["start"]) if restored.get("start") else None
    try:
        kill_all(mgr, init)
        if mgr is not None:
            mgr.destroy()
    except OciError as undo_error:
        log.warning(f"{undo_error} (left for `delete --force {cid}`)")
        error.keep_state = True
    finally:
        if init is not None:
            init.close()


def make_mountpoints(spec, bundle: str) -> None:
    """Make the container's mount points in its rootfs again, as create made them, before CRIU
    restores the mounts onto them: CRIU mounts, it does not create (a nested bind's mount point lives
    in the source of the bind above it, which may have lost it since).

    Done in a child in a mount namespace of its own (a slave of ours): the binds that let the nested
    mount points be made inside their parents' sources vanish with it, so nothing is left mounted on
    the host, even if we are killed.  Mount points under a tmpfs are skipped (CRIU restores the
    tmpfs with its content), as are the cgroup mounts (CRIU restores them)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        code = 0
        try:
            _make_mountpoints_here(spec, bundle)
        except BaseException as e:
            text = f"{getattr(e, 'strerror', None) or e}"
            if getattr(e, "filename", None):
                text = f"{e.filename}: {text}"
            os.write(w, text.encode()[:4000])
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            err = f.read().decode(errors="replace")
    finally:
        _, status = os.waitpid(pid, 0)
    if err or status:
        raise OciError(f"restore: making the mount points in the rootfs: {err or 'failed'}")


def _make_mountpoints_here(spec, bundle: str) -> None:
    from .kernel import linux as k
    from .pathsafe import O_PATH, create_target, fd_path

    k.unshare(k.CLONE_NEWNS)
    k.mount(None, "/", None, k.MS_REC | k.MS_SLAVE)
    tmpfs = [m.destination.rstrip("/") for m in spec.mounts if m.type == "tmpfs"]
    rootfd = os.open(spec.root_path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for m in spec.mounts:
        if m.type in ("cgroup", "cgroup2") or any(m.destination.startswith(t + "/") for t in tmpfs):
            continue
        if not _is_bind(m):
            os.close(create_target(rootfd, m.destination, True))
            continue
        source = _source(m, bundle)
        target = create_target(rootfd, m.destination, os.path.isdir(source))  # a missing source: raises
        try:
            k.mount(source, fd_path(target), None, k.MS_BIND | k.MS_REC)
        finally:
            os.close(target)


def _bind_root(spec, state_dir: str) -> str:
    """CRIU wants the root to be a mount point whose parent is not overmounted: the rootfs bound at
    ``<state>/criu-root`` (removed by :func:`_unmount`; a killed restore's by ocirun.teardown)."""
    from .kernel import linux as k

    root = os.path.join(state_dir, "criu-root")
    os.mkdir(root, 0o755)
    try:
        k.mount(spec.root_path, root, None, k.MS_BIND | k.MS_REC)
    except OSError as e:
        os.rmdir(root)
        raise OciError(f"restore: bind {spec.root_path} to {root}: {e.strerror}") from None
    return root


def _send_master(console_fd: int, master: int) -> None:
    import array
    import socket

    s = socket.socket(fileno=os.dup(console_fd))
    try:
        s.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    finally:
        s.close()


_CRIU_NS = {"ipc": "ipc", "uts": "uts", "mount": "mnt", "user": "user", "time": "time"}


def _source(m, bundle: str) -> str:
    src = m.source or ""
    return src if os.path.isabs(src) else os.path.join(bundle, src)


def _cg_roots(pid: int) -> list:
    """CRIU's cgroup roots: where the swrk process was put, per controller (cgroup v1) or "" (v2)."""
    from .criu import cgroup_root

    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)  # "name=systemd" stays as CRIU names it
            out.append(cgroup_root(ctrls, path))
    return out


def _unmount(root: str) -> None:
    from .kernel import linux as k

    try:
        k.umount2(root, k.MNT_DETACH)
    except OSError:
        pass
    try:
        os.rmdir(root)
    except OSError:
        pass


# -- the command line -----------------------------------------------------------------------------------
def _criu_options(cls, flags: dict, g: dict, **extra):
    return cls(image_path=flags.get("image-path") or "", work_path=flags.get("work-path") or None,
               tcp_established=bool(flags.get("tcp-established")), ext_unix_sk=bool(flags.get("ext-unix-sk")),
               shell_job=bool(flags.get("shell-job")), file_locks=bool(flags.get("file-locks")),
               manage_cgroups_mode=flags.get("manage-cgroups-mode", ""), empty_ns=list(flags.get("empty-ns", [])),
               auto_dedup=bool(flags.get("auto-dedup")), lazy_pages=bool(flags.get("lazy-pages")),
               criu=g.get("criu"), **extra)


def cmd_checkpoint(rt, args: list[str], flags: dict, g: dict) -> int:
    fd = flags.get("status-fd", "-1")
    try:
        fd = int(fd, 10)
    except ValueError:
        raise OciError(f'invalid value "{fd}" for flag -status-fd: parse error') from None
    o = _criu_options(CheckpointOptions, flags, g, parent_path=flags.get("parent-path") or None,
                      leave_running=bool(flags.get("leave-running")), pre_dump=bool(flags.get("pre-dump")),
                      page_server=flags.get("page-server") or None, status_fd=fd)
    checkpoint(rt, args[0], o)
    return 0


def cmd_restore(rt, args: list[str], flags: dict, g: dict) -> int:
    from .kernel import linux as k

    detach = bool(flags.get("detach"))
    o = _criu_options(RestoreOptions, flags, g, bundle=flags.get("bundle") or "",
                      pid_file=flags.get("pid-file"), console_socket=flags.get("console-socket"),
                      no_pivot=bool(flags.get("no-pivot")), lsm_profile=flags.get("lsm-profile"),
                      lsm_mount_context=flags.get("lsm-mount-context"),
                      systemd_cgroup=bool(g.get("systemd-cgroup")))
    if not detach and not flags.get("no-subreaper"):
        k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
    st = restore(rt, args[0], o)
    if detach:
        return 0
    from .signals import wait_reaping

    status = wait_reaping(st.pid, on_no_child=255)
    rt.delete(args[0], force=True)
    return status
