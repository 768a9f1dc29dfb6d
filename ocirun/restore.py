"""`restore`: a container brought back from CRIU images, made the way `create` makes one.

    config.json of the bundle; descriptors.json of the image
    criu check; the id claimed and locked with create's container.NewStateDir (state "creating")
    mount points made again through the binds (a private mount namespace: nothing stays mounted)
    rootfs bind-mounted at <state>/criu-root (CRIU wants its root to be a mount point)
    criu swrk spawned, put into the container's cgroup by create's launcher.setup_cgroup, limits on
    RESTORE; notifications: setup-namespaces (prestart + createRuntime hooks, as create runs them),
      post-restore (the pid), orphan-pts-master (the terminal → --console-socket)
    state "running", --pid-file; any failure: ocirun.teardown's kill, the cgroups, the state dir

The restored init is CRIU's sibling (``rst_sibling``): our child, so `restore` in the foreground can
wait for it, the Python API returns it as the caller's child and, detached, it is left to our
caller (a subreaper, like conmon) when we exit.  The options and what checkpoint and restore share
(CRIU's configuration file, empty_ns, the external mounts) are in :mod:`ocirun.checkpoint`.
"""
from __future__ import annotations

import json
import os

from .checkpoint import (CGROUP_BINDS, DESCRIPTORS, RestoreOptions, check_common, common_opts,
                         criu_binary, debug_opts, dir_fd, image_dir, is_bind, options_from_flags, with_log)
from .criu import CriuError
from .errors import OciError


def restore(core, cid: str, o: RestoreOptions):
    """Restore container ``cid`` from ``o.image_path`` with the config of ``o.bundle``; return its
    state (running; the restored init is our child).  On failure nothing is left behind."""
    from . import config, criu
    from .container import NewStateDir
    from .launcher import connect_console, initial_state, kept_plan, write_pid_file

    bundle = os.path.abspath(o.bundle or os.getcwd())
    claim = NewStateDir(core.root, cid)
    check_common(o)
    spec = config.load(bundle)
    image = image_dir(o.image_path)
    try:
        with open(os.path.join(image, DESCRIPTORS)) as f:
            descriptors = json.load(f)
    except (OSError, ValueError) as e:
        raise OciError(f"restore: {image}/{DESCRIPTORS}: {getattr(e, 'strerror', None) or e} "
                       f"(not a checkpoint image directory?)") from None
    binary = criu_binary(o.criu, {})
    mgr = None
    restored = {}
    root = None
    console_fd = image_fd = work_fd = None
    with claim as sd:
        try:
            st = initial_state(spec, cid, bundle, systemd_cgroup=o.systemd_cgroup)
            sd.save_config(spec.raw)  # as create keeps it, for inspect
            plan = kept_plan(spec, bundle)
            sd.save_plan(plan)  # as create keeps it: exec and checkpoint read it, never the bundle
            sd.save(st)
            if o.console_socket:
                console_fd = connect_console(o.console_socket)
            make_mountpoints(spec, bundle)
            root = _bind_root(spec, sd.path)
            image_fd = dir_fd(image)
            work_fd = dir_fd(o.work_path) if o.work_path else None
            opts = _restore_opts(spec, bundle, image, descriptors, o, image_fd, work_fd, root)
            extra = _external_ns_fds(spec, opts)
            swrk = criu.Swrk(binary, extra)
            for fd in extra:
                os.close(fd)
            try:
                # CRIU restores into the cgroup it runs in: made as create makes it, then CRIU put in.
                mgr = _container_cgroup(plan, spec, st, sd, swrk.pid, o, core.log)
                opts["cg_root"] = _cg_roots(swrk.pid)
                debug_opts(core.log, opts)

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
                    raise CriuError(with_log(f"restore failed: {text}", o.work_path or image,
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

    opts = common_opts(o, image_fd, work_fd, "restore.log", spec.annotations)
    opts.update(root=root, rst_sibling=True, evasive_devices=True, lsm_profile=o.lsm_profile or None,
                lsm_mount_context=o.lsm_mount_context or None)
    ext = [criu.ext_mount(resolve_in_root(spec.root_path, m.destination), _source(m, bundle))
           for m in spec.mounts if is_bind(m)]
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


def _container_cgroup(plan, spec, st, sd, pid: int, o: RestoreOptions, log):
    """The container's cgroup, made and joined by ``pid`` (criu swrk) with create's code, limits on."""
    from .launcher import CreateOptions, setup_cgroup

    resources = plan.cgroup_resources()
    mgr = setup_cgroup(spec, st.id, pid, CreateOptions(bundle=st.bundle, systemd_cgroup=o.systemd_cgroup),
                       st, resources, record=sd.save, log=log)
    sd.save_plan(plan)
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
        if not is_bind(m):
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




def _saved_cgroup_binds(image: str) -> dict[str, str]:
    try:
        with open(os.path.join(image, CGROUP_BINDS)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


# -- the command line -----------------------------------------------------------------------------------
def cmd_restore(rt, args: list[str], flags: dict, g: dict) -> int:
    from .kernel import linux as k

    detach = bool(flags.get("detach"))
    o = options_from_flags(RestoreOptions, flags, g, bundle=flags.get("bundle") or "",
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
