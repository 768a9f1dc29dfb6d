"""`checkpoint`: a running container to CRIU images (runc 1.1.5's flags), and what restore shares.

    the container must be running or paused
    image dir made; --parent-path (relative, a directory), --page-server, --status-fd checked
    criu check; FEATURE_CHECK for --pre-dump (memory tracking) and --lazy-pages (userfaultfd)
    descriptors.json: what fds 0-2 were (restore maps pipes among them to its own stdio)
    bind mounts (destinations resolved in the rootfs), devices, cgroup binds → external mounts
    DUMP or PRE_DUMP over swrk (ocirun.criu); status-ready → one NUL byte on --status-fd
    unless --leave-running / --pre-dump: the container is gone (as `delete --force`)

Shared with :mod:`ocirun.restore` and with runc, so that a host set up for runc works the same:
CRIU's configuration file (``/etc/criu/runc.conf``, or the ``org.criu.config`` annotation's; empty:
none), the image files (``descriptors.json``), the external-mount keys and the network namespace
left out of the image (``empty_ns``: runc does not manage network devices; an engine's network
namespace is joined by path, and external anyway).

:func:`checkpoint` and :func:`ocirun.restore.restore` are the library calls (``ocirun.api.Runtime``
uses them); ``cmd_checkpoint`` here and ``ocirun.restore.cmd_restore`` turn the command line into
them.
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
def cg_mode(name: str) -> int:
    from .criu import CG_MODES

    if name not in CG_MODES:
        raise OciError(f"invalid manage-cgroups-mode value: {name!r} (soft, full, strict or ignore)")
    return CG_MODES[name]


def empty_ns_mask(names: list[str]) -> int:
    mask = EMPTY_NS["network"]  # always: the network is the engine's (runc's choice, kept for images)
    for name in names:
        if name not in EMPTY_NS:
            raise OciError(f"--empty-ns: namespace {name!r} is not supported (only network)")
        mask |= EMPTY_NS[name]
    return mask


def check_common(o: CriuOptions) -> None:
    """Refuse a bad --manage-cgroups-mode or --empty-ns before anything else is looked at."""
    cg_mode(o.manage_cgroups_mode)
    empty_ns_mask(o.empty_ns)


def image_dir(path: str) -> str:
    return os.path.abspath(path or os.path.join(os.getcwd(), "checkpoint"))


def dir_fd(path: str) -> int:
    os.makedirs(path, 0o700, exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def is_bind(m) -> bool:
    return m.type == "bind" or any(o in ("bind", "rbind") for o in m.options)


def criu_config_file(annotations: dict) -> str | None:
    """CRIU's configuration file for this container: the annotation's, none if it is empty, else
    the default one (CRIU skips a file that does not exist; its settings override ours)."""
    if CRIU_CONFIG_ANNOTATION in annotations:
        return annotations[CRIU_CONFIG_ANNOTATION] or None
    return DEFAULT_CRIU_CONFIG


def common_opts(o: CriuOptions, image_fd: int, work_fd: int | None, log_file: str, annotations: dict) -> dict:
    return {
        "images_dir_fd": image_fd, "work_dir_fd": work_fd, "log_level": 4, "log_file": log_file,
        "manage_cgroups": True, "manage_cgroups_mode": cg_mode(o.manage_cgroups_mode), "notify_scripts": True,
        "shell_job": o.shell_job, "tcp_established": o.tcp_established, "ext_unix_sk": o.ext_unix_sk,
        "file_locks": o.file_locks, "empty_ns": empty_ns_mask(o.empty_ns), "orphan_pts_master": True,
        "auto_dedup": o.auto_dedup, "lazy_pages": o.lazy_pages, "config_file": criu_config_file(annotations),
    }


def _external_ns(plan) -> list[str]:
    """Namespaces joined by path stay outside the image: ``net[<inode>]:extRootNetNS`` (runc's keys).
    ``plan``: the container's launch plan (ocirun.plan.LaunchPlan), as create kept it."""
    joined = dict(plan.joins)
    out = []
    for nstype, name in (("network", "net"), ("pid", "pid")):
        if joined.get(nstype):
            out.append(f"{name}[{os.stat(joined[nstype]).st_ino}]:extRoot{name.capitalize()}NS")
    return out


def criu_binary(name: str | None, lacking: dict[str, str]) -> str:
    """The criu binary, after `criu check`, and FEATURE_CHECK of ``lacking`` (feature → why wanted)."""
    from . import criu

    binary = criu.find_binary(name)
    criu.check(binary)
    if lacking:
        missing = criu.missing_features(binary, list(lacking))
        if missing:
            raise CriuError("CRIU is missing features: " + ", ".join(f"{lacking[m]}" for m in missing))
    return binary


def debug_opts(log, opts: dict) -> None:
    if getattr(log, "debugging", False):
        for name, value in opts.items():
            if value is not None and name not in ("ext_mnt", "inherit_fd", "cg_root", "join_ns", "ps"):
                log.debug(f"CRIU option {name} with value {value}")


def with_log(msg: str, log_dir: str, name: str) -> str:
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
    from . import criu
    from .launcher import container_plan
    from .state import PAUSED, RUNNING

    sd, st = core.load(cid)
    if st.status not in (RUNNING, PAUSED):
        raise NotRunning()
    check_common(o)
    image = image_dir(o.image_path)
    os.makedirs(image, 0o700, exist_ok=True)
    parent = parent_image(image, o.parent_path)
    ps = criu.parse_page_server(o.page_server) if o.page_server else None
    fd_ready = status_fd(o.status_fd) if o.lazy_pages and o.status_fd != -1 else -1
    lacking = {}
    if o.pre_dump:
        lacking["mem_track"] = "memory tracking (soft-dirty pages), which --pre-dump needs"
    if o.lazy_pages:
        lacking["lazy_pages"] = "userfaultfd, which --lazy-pages needs"
    binary = criu_binary(o.criu, lacking)
    plan = container_plan(sd, st.bundle)  # the container's, whatever the bundle holds now
    image_fd = dir_fd(image)
    work_fd = dir_fd(o.work_path) if o.work_path else None
    try:
        opts = common_opts(o, image_fd, work_fd, "dump.log", st.annotations)  # the config's, kept in the state
        opts.update(pid=st.pid, root=st.rootfs, leave_running=o.leave_running, external=_external_ns(plan))
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
            opts["ext_mnt"] = [criu.ext_mount(dest, dest) for dest in _external_mounts(plan, binds)]
        debug_opts(core.log, opts)

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
            raise CriuError(with_log(f"checkpoint failed: {text}", o.work_path or image, "dump.log")) from None
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


def _external_mounts(plan, cgroup_binds: dict) -> list[str]:
    """Mount points CRIU must leave to us (key = the mount point in the container): the bind mounts,
    at the path their destination resolved to in the rootfs, the device nodes, the cgroup binds.
    ``plan``: the container's launch plan (its mounts parsed: ``bind`` is :func:`is_bind`)."""
    from .pathsafe import resolve_in_root

    out = [resolve_in_root(plan.root_path, m.destination) for m in plan.mounts if m.bind]
    out += [d.path for d in plan.devices]
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


# -- the command line -----------------------------------------------------------------------------------
def options_from_flags(cls, flags: dict, g: dict, **extra):
    """runc's flags of both commands (parsed by ocirun.cli) → ``cls`` (Checkpoint- or RestoreOptions)."""
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
    o = options_from_flags(CheckpointOptions, flags, g, parent_path=flags.get("parent-path") or None,
                           leave_running=bool(flags.get("leave-running")), pre_dump=bool(flags.get("pre-dump")),
                           page_server=flags.get("page-server") or None, status_fd=fd)
    checkpoint(rt, args[0], o)
    return 0
