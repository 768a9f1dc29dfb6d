"""`ocirun checkpoint` and `ocirun restore`: a running container to CRIU images and back (runc's flags).

    checkpoint                                   restore
    ──────────                                   ───────
    criu check (its error text if it fails)      criu check
    the container must be running or paused      the id must be free; config.json of --bundle
    descriptors.json: what fds 0-2 were          state dir, cgroup (criu joins it: cg_root)
    bind mounts, devices → external mounts       rootfs bind-mounted at <state>/criu-root
    DUMP over swrk (ocirun.criu)                 pipes of descriptors.json → our stdio (inherit_fd)
    without --leave-running: the container       RESTORE over swrk; notifications: post-restore
    is gone, its state and cgroup removed          (pid), orphan-pts-master (→ --console-socket)
                                                 state.json `running`, --pid-file; foreground:
                                                 wait, exit with its status, delete (as `run`)

The restored init is CRIU's sibling (rst_sibling): our child, so `restore` in the foreground
can wait for it and, detached, leaves it to our caller (a subreaper, like conmon) when we exit.
"""
from __future__ import annotations

import json
import os

from . import mountinfo
from .errors import ContainerExists, NotRunning, OciError
from .criu import CriuError

DESCRIPTORS = "descriptors.json"
#: ocirun's own note in the image: the container's cgroup v1/hybrid bind mounts (destination → host source)
CGROUP_BINDS = "ocirun-cgroup-binds.json"


def _cg_mode(flags: dict) -> int:
    from .criu import CG_MODES

    mode = flags.get("manage-cgroups-mode", "")
    if mode not in CG_MODES:
        raise OciError(f"invalid manage-cgroups-mode value: {mode!r} (soft, full, strict or ignore)")
    return CG_MODES[mode]


def _dir_fd(path: str) -> int:
    os.makedirs(path, 0o700, exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _is_bind(m) -> bool:
    return m.type == "bind" or any(o in ("bind", "rbind") for o in m.options)


def _common_opts(flags: dict, image_fd: int, work_fd: int | None, log_file: str) -> dict:
    return {
        "images_dir_fd": image_fd, "work_dir_fd": work_fd, "log_level": 4, "log_file": log_file,
        "manage_cgroups": True, "manage_cgroups_mode": _cg_mode(flags), "notify_scripts": True,
        "shell_job": bool(flags.get("shell-job")), "tcp_established": bool(flags.get("tcp-established")),
        "ext_unix_sk": bool(flags.get("ext-unix-sk")), "file_locks": bool(flags.get("file-locks")),
        "orphan_pts_master": True,
    }


def _external_ns(spec) -> list[str]:
    """Namespaces joined by path stay outside the image: ``net[<inode>]:extRootNetNS`` (runc's keys)."""
    out = []
    for nstype, name in (("network", "net"), ("pid", "pid")):
        ns = spec.linux.namespace(nstype)
        if ns is not None and ns.path:
            out.append(f"{name}[{os.stat(ns.path).st_ino}]:extRoot{name.capitalize()}NS")
    return out


# -- checkpoint -----------------------------------------------------------------------------------------
def cmd_checkpoint(rt, args: list[str], flags: dict, g: dict) -> int:
    from . import config, criu
    from .state import PAUSED, RUNNING

    cid = args[0]
    sd, st = rt.load(cid)
    if st.status not in (RUNNING, PAUSED):
        raise NotRunning()
    binary = criu.find_binary(g.get("criu"))
    criu.check(binary)
    spec = config.Spec.parse(sd.load_config(), st.bundle)  # the container's, whatever the bundle holds now
    image = os.path.abspath(flags.get("image-path") or os.path.join(os.getcwd(), "checkpoint"))
    work = flags.get("work-path")
    image_fd = _dir_fd(image)
    work_fd = _dir_fd(work) if work else None
    try:
        # What fds 0-2 of the init were: restore maps pipes among them to its own stdio.
        descriptors = []
        for i in range(3):
            try:
                descriptors.append(os.readlink(f"/proc/{st.pid}/fd/{i}"))
            except OSError:
                descriptors.append("/dev/null")
        with open(os.path.join(image, DESCRIPTORS), "w") as f:
            json.dump(descriptors, f)
        opts = _common_opts(flags, image_fd, work_fd, "dump.log")
        opts.update(pid=st.pid, root=st.rootfs, leave_running=bool(flags.get("leave-running")),
                    external=_external_ns(spec))
        ext = [criu.ext_mount(m.destination, m.destination) for m in spec.mounts if _is_bind(m)]
        ext += [criu.ext_mount(d.path, d.path) for d in spec.linux.devices]
        # cgroup v1/hybrid: /sys/fs/cgroup/<ctrl> are binds of the host's hierarchies (ocirun.rootfs)
        binds = cgroup_binds(st.pid)
        ext += [criu.ext_mount(dest, dest) for dest in binds]
        with open(os.path.join(image, CGROUP_BINDS), "w") as f:
            json.dump(binds, f)
        opts["ext_mnt"] = ext
        freezer = (st.cgroup.get("paths") or {}).get("freezer") if isinstance(st.cgroup, dict) else None
        if freezer:
            opts["freeze_cgroup"] = freezer
        swrk = criu.Swrk(binary)
        try:
            swrk.run(criu.DUMP, criu.encode_opts(opts))
        except CriuError as e:
            raise CriuError(_with_log(f"checkpoint failed: {e}", work or image, "dump.log")) from None
        except OSError as e:
            raise CriuError(_with_log(f"checkpoint failed: {e.strerror or e}", work or image, "dump.log")) \
                from None
        finally:
            swrk.close()
    finally:
        os.close(image_fd)
        if work_fd is not None:
            os.close(work_fd)
    if not flags.get("leave-running"):
        rt.delete(cid, force=True)  # CRIU killed the processes: the container is gone (as runc)
    return 0


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


def _with_log(msg: str, log_dir: str, name: str) -> str:
    from .criu import log_errors

    detail = log_errors(os.path.join(log_dir, name))
    if not detail:
        return msg
    return f"{msg.split(': ', 1)[0]}: {detail} (see {os.path.join(log_dir, name)})"


# -- restore --------------------------------------------------------------------------------------------
def cmd_restore(rt, args: list[str], flags: dict, g: dict) -> int:
    from . import config, criu
    from .kernel import linux as k
    from .launcher import _connect_console, initial_state, write_pid_file

    cid = args[0]
    bundle = os.path.abspath(flags.get("bundle") or os.getcwd())
    spec = config.load(bundle)
    image = os.path.abspath(flags.get("image-path") or os.path.join(os.getcwd(), "checkpoint"))
    try:
        with open(os.path.join(image, DESCRIPTORS)) as f:
            descriptors = json.load(f)
    except (OSError, ValueError) as e:
        raise OciError(f"restore: {image}/{DESCRIPTORS}: {getattr(e, 'strerror', None) or e} "
                       f"(not a checkpoint image directory?)") from None
    binary = criu.find_binary(g.get("criu"))
    criu.check(binary)
    detach = bool(flags.get("detach"))
    if not detach and not flags.get("no-subreaper"):
        k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)

    sd = rt._dir(cid)
    os.makedirs(rt.root, mode=0o711, exist_ok=True)
    try:
        os.mkdir(sd.path, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    lock = sd.lock()
    st = initial_state(spec, cid, bundle, systemd_cgroup=bool(g.get("systemd-cgroup")))
    mgr = None
    root = os.path.join(sd.path, "criu-root")
    mounted = False
    console_fd = None
    image_fd = work_fd = None
    restored = {}
    try:
        sd.save_config(spec.raw)  # as create keeps it: exec, checkpoint, inspect read this, never the bundle
        if flags.get("console-socket"):
            console_fd = _connect_console(flags["console-socket"])
        from . import cgroups
        from .launcher import resources_with_default_devices

        resources = resources_with_default_devices(spec.linux.resources)
        mgr = cgroups.for_container(spec.linux.cgroupsPath, cid, systemd=st.systemd_cgroup,
                                    devices=resources.get("devices"))
        mgr.plan_create()  # recorded before made: a killed restore leaves nothing `delete --force` misses
        st.cgroup = mgr.to_state()
        sd.save(st)
        mgr.create()
        st.cgroup = mgr.to_state()
        sd.save(st)
        # CRIU wants the root to be a mount point whose parent is not overmounted.
        os.mkdir(root, 0o755)
        k.mount(spec.root_path, root, None, k.MS_BIND | k.MS_REC)
        mounted = True
        image_fd = _dir_fd(image)
        work = flags.get("work-path")
        work_fd = _dir_fd(work) if work else None
        opts = _common_opts(flags, image_fd, work_fd, "restore.log")
        opts.update(root=root, rst_sibling=True, evasive_devices=True)
        ext = [criu.ext_mount(m.destination, _source(m, bundle)) for m in spec.mounts if _is_bind(m)]
        ext += [criu.ext_mount(d.path, d.path) for d in spec.linux.devices]
        ext += [criu.ext_mount(dest, src) for dest, src in _saved_cgroup_binds(image).items()]
        opts["ext_mnt"] = ext
        opts["inherit_fd"] = [criu.inherit_fd(d, i) for i, d in enumerate(descriptors) if "pipe:" in d]
        opts["join_ns"] = [criu.join_ns(_CRIU_NS[ns.type], ns.path) for ns in spec.linux.namespaces
                           if ns.path and ns.type in _CRIU_NS]
        extra = []
        for nstype, name in (("network", "net"), ("pid", "pid")):
            ns = spec.linux.namespace(nstype)
            if ns is not None and ns.path:
                extra.append(os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC))
                opts["inherit_fd"].append(criu.inherit_fd(f"extRoot{name.capitalize()}NS", 3 + len(extra)))

        swrk = criu.Swrk(binary, extra)
        for fd in extra:
            os.close(fd)
        try:
            # CRIU restores into the cgroup it runs in: put it into the container's first.
            mgr.add_pid(swrk.pid)
            mgr.apply(resources)
            opts["cg_root"] = _cg_roots(swrk.pid)

            def on_notify(script: str, pid: int, fds: list[int]) -> None:
                if script == "post-restore":
                    from .state import read_start_time

                    restored["pid"], restored["start"] = pid, read_start_time(pid) or 0
                elif script == "orphan-pts-master" and fds and console_fd is not None:
                    _send_master(console_fd, fds[0])  # the restored terminal, to --console-socket

            try:
                resp = swrk.run(criu.RESTORE, criu.encode_opts(opts), on_notify)
            except (CriuError, OSError) as e:
                text = str(e) if isinstance(e, CriuError) else (e.strerror or str(e))
                raise CriuError(_with_log(f"restore failed: {text}", work or image, "restore.log")) from None
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
        if flags.get("pid-file"):
            write_pid_file(flags["pid-file"], pid)
    except BaseException as e:
        # The one teardown (ocirun.teardown): every process in the cgroup, the restored init by
        # pidfd (pid + start time), a bounded wait, the cgroups, the criu-root mount, the state dir.
        from .teardown import Process, kill_all, remove_state_dir

        init = Process(restored["pid"], restored["start"]) if restored.get("start") else None
        try:
            kill_all(mgr, init)
            if mgr is not None:
                mgr.destroy()
        except OciError as undo_error:
            rt.log.warning(f"{undo_error} (left for `delete --force {cid}`)")
            raise e
        finally:
            if init is not None:
                init.close()
        _unmount(root, mounted)
        remove_state_dir(sd.path)
        raise
    finally:
        if mounted and os.path.isdir(root):
            _unmount(root, mounted)
        for fd in (image_fd, work_fd, console_fd):
            if fd is not None:
                os.close(fd)
        os.close(lock)
    if detach:
        return 0
    from .signals import wait_reaping

    status = wait_reaping(st.pid, on_no_child=255)
    rt.delete(cid, force=True)
    return status


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


def _unmount(root: str, mounted: bool) -> None:
    from .kernel import linux as k

    if mounted:
        try:
            k.umount2(root, k.MNT_DETACH)
        except OSError:
            pass
    try:
        os.rmdir(root)
    except OSError:
        pass
