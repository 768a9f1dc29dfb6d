"""Build the container's filesystem: propagation, rootfs bind, config mounts, /dev, pivot_root.

Runs in the init stage, inside the new mount namespace, in spec order.  Every
destination is resolved inside the rootfs by :mod:`ocirun.pathsafe` and
mounted through ``/proc/self/fd/N`` of the verified target.
"""
from __future__ import annotations

import errno
import os
import stat

from . import pathsafe
from .kernel import files
from .kernel import linux as k
from .pathsafe import O_PATH, fd_path
from .plan import PROPAGATION_ROOTFS, MountOp

#: The devices every container gets (runtime-linux / config-linux "Default Devices").
DEFAULT_DEVICES = [
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
]
DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]


class RootfsError(Exception):
    """A mount or device step failed; the message names the destination."""


def prepare_root(root_fd: int, propagation: str | None) -> int:
    """Give ``/`` the config's propagation (rslave by default), then bind the rootfs onto itself.

    pivot_root needs the new root to be a mount point.  rslave keeps host mounts visible but never
    lets container mounts leak back out.  A config that asks for ``shared``/``rshared`` (containerd's
    CRI does, for a volume with Bidirectional propagation) keeps the container's copies of the host's
    mounts in their peer groups, as runc does, so a mount made under such a volume reaches the host;
    the mount holding the rootfs is made private first, so the rootfs bind itself (and the container's
    own mounts on it) never propagates anywhere.  ``unbindable`` variants are applied after
    pivot_root (ocirun.stage.create): the rootfs could not be bound out of an unbindable mount.  The rootfs
    is reached only through ``root_fd``, opened before we entered a user namespace (its path may not
    be traversable from inside).  Returns an O_PATH fd of the new bind mount's root.
    """
    if propagation not in ("private", "rprivate", "slave", "rslave", "shared", "rshared"):
        propagation = "rslave"
    k.mount(None, "/", None, PROPAGATION_ROOTFS[propagation])
    if propagation in ("shared", "rshared"):
        # The mount root_fd is on becomes the parent of the bind below: private, so that the bind
        # does not propagate to its peers (runc's rootfsParentMountPrivate).
        parent = _mount_root_of(root_fd)
        try:
            k.mount_setattr(parent, "", k.AT_EMPTY_PATH, propagation=k.MS_PRIVATE)
        finally:
            os.close(parent)
    tree = k.open_tree(root_fd, "", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | k.AT_RECURSIVE | k.AT_EMPTY_PATH)
    try:
        k.move_mount(tree, "", root_fd, "", k.MOVE_MOUNT_F_EMPTY_PATH | k.MOVE_MOUNT_T_EMPTY_PATH)
    except BaseException:
        os.close(tree)
        raise
    return tree


def _mount_root_of(fd: int) -> int:
    """An O_PATH fd of the root of the mount that ``fd`` is on (mount_setattr acts on mount roots only).

    Walks up by ``..`` while the mount id (``mnt_id`` of /proc/self/fdinfo) stays the same."""
    cur = os.open(".", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    mnt = _mount_id(cur)
    while True:
        up = os.open("..", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cur)
        if _mount_id(up) != mnt or os.path.samestat(os.fstat(up), os.fstat(cur)):
            os.close(up)
            return cur
        os.close(cur)
        cur = up


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    raise OSError(f"no mnt_id for fd {fd}")


def do_mount(rootfd: int, op: MountOp, userns: bool, cgroup_binds: list | None = None) -> None:
    """Perform one config mount, resolved inside the rootfs (``cgroup_binds``: see :func:`mount_cgroup`)."""
    try:
        _do_mount(rootfd, op, userns, cgroup_binds)
    except OSError as e:
        raise RootfsError(f"mount {op.source or op.fstype} to {op.destination}: {e.strerror or e}") from None


def _do_mount(rootfd: int, op: MountOp, userns: bool, cgroup_binds: list | None = None) -> None:
    if op.fstype == "cgroup" or op.fstype == "cgroup2":
        return mount_cgroup(rootfd, op, cgroup_binds)
    if op.flags & k.MS_REMOUNT:
        return remount(rootfd, op)
    if op.bind:
        return bind_mount(rootfd, op)
    covered_mode = _covered_dir_mode(rootfd, op) if op.fstype == "tmpfs" else None
    target = _checked_target(rootfd, op, pathsafe.create_target(rootfd, op.destination, True))
    try:
        copy_from = None
        if op.tmpcopyup:
            copy_from = os.open(fd_path(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            k.mount(op.source or op.fstype, fd_path(target), op.fstype, op.flags & ~k.MS_REMOUNT, op.data or None)
        except OSError as e:
            # mqueue/sysfs in a user namespace without the matching ns: fall back to a bind of the host's
            if userns and e.errno == errno.EPERM and op.fstype in ("sysfs", "mqueue"):
                host = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}[op.fstype]
                k.mount(host, fd_path(target), None, k.MS_BIND | k.MS_REC)
            else:
                raise
        if copy_from is not None:
            newfd = pathsafe.open_in_root(rootfd, op.destination, os.O_RDONLY | os.O_DIRECTORY)
            try:
                copy_tree(copy_from, newfd)
            finally:
                os.close(newfd)
                os.close(copy_from)
        if covered_mode is not None:
            newfd = pathsafe.open_in_root(rootfd, op.destination)
            try:
                os.chmod(fd_path(newfd), covered_mode)
            finally:
                os.close(newfd)
        _apply_propagation_and_attrs(rootfd, op)
    finally:
        os.close(target)


def _covered_dir_mode(rootfd: int, op: MountOp) -> int | None:
    """The permission bits of the directory a tmpfs will cover, which the tmpfs takes (runc's order: a
    0700 directory stays 0700, a sticky /tmp stays 1777) -- unless the config gives ``mode=`` itself,
    or the directory does not exist yet (then tmpfs's own 1777)."""
    if any(o.startswith("mode=") for o in (op.data or "").split(",")):
        return None
    try:
        fd = pathsafe.open_in_root(rootfd, op.destination)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return stat.S_IMODE(st.st_mode) if stat.S_ISDIR(st.st_mode) else None


def detached_bind(op: MountOp, userns_fd: int | None = None) -> int:
    """The bind as a detached mount (an fd): the source tree cloned, its attributes and idmapping
    set while nothing can see it."""
    tree_flags = k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | (k.AT_RECURSIVE if op.flags & k.MS_REC else 0)
    tree = k.open_tree(k.AT_FDCWD, op.source, tree_flags)
    try:
        attr_set, attr_clr = mount_attrs(op.flags, op.clear)
        if attr_set or attr_clr:
            k.mount_setattr(tree, "", k.AT_EMPTY_PATH, attr_set, attr_clr)
        if op.rec_set or op.rec_clr:
            k.mount_setattr(tree, "", k.AT_EMPTY_PATH | k.AT_RECURSIVE, op.rec_set, op.rec_clr)
        if userns_fd is not None:
            rec = k.AT_RECURSIVE if op.idmap == "ridmap" else 0
            k.mount_setattr(tree, "", k.AT_EMPTY_PATH | rec, k.MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    except BaseException:
        os.close(tree)
        raise
    return tree


def bind_mount(rootfd: int, op: MountOp, tree: int | None = None) -> None:
    """Bind with the new mount API: clone the source tree, set its attributes while it is still
    detached, then attach it to the verified target.  No window exists in which the bind is
    visible with the wrong flags, and no path is re-resolved after the lookup.  ``tree``: a
    detached bind made beforehand (the runtime's idmapped mounts, :mod:`ocirun.idmap`); it is
    attached here and closed."""
    if tree is None:
        tree = detached_bind(op)
    try:
        is_dir = pathsafe.is_dir_fd(tree)
        target = _checked_target(rootfd, op, pathsafe.create_target(rootfd, op.destination, is_dir))
        try:
            k.move_mount(tree, "", target, "", k.MOVE_MOUNT_F_EMPTY_PATH | k.MOVE_MOUNT_T_EMPTY_PATH)
        finally:
            os.close(target)
    finally:
        os.close(tree)
    if op.propagation:
        fd = pathsafe.open_in_root(rootfd, op.destination)
        try:
            for prop in op.propagation:
                k.mount(None, fd_path(fd), None, prop)
        finally:
            os.close(fd)


#: Files inside /proc that may be mounted over: what lxcfs provides, and ns_last_pid for CRIU
#: (the list runc allows).  Anything else whose resolved target is on procfs is refused: a mount
#: over /proc or under it could fake what the runtime reads there (cap_last_cap) or redirect what
#: it writes (sysctl, oom_score_adj), whether asked for directly or reached through a symlink in
#: the image (CVE-2019-19921, CVE-2025-52881).
PROC_OVERMOUNT_ALLOWED = frozenset((
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
))


def _checked_target(rootfd: int, op: MountOp, target: int) -> int:
    """Refuse a mount target that the image or the config could use against the runtime.

    ``target`` is the O_PATH fd the destination resolved to (inside the rootfs); it is
    returned, or closed before raising.  Checks are on the resolved inode, not on the path,
    so a symlink in the image changes nothing.
    """
    try:
        if k.fstatfs(target)[0] == k.PROC_SUPER_MAGIC:
            if op.destination not in PROC_OVERMOUNT_ALLOWED or not _no_symlinks(rootfd, op.destination, target):
                raise OSError(errno.EPERM, f"{op.destination} resolves into procfs: refusing to mount over it")
        if op.fstype in ("proc", "sysfs") and not _no_symlinks(rootfd, op.destination, target):
            # An image with /proc -> /vol/p would have procfs mounted where a later mount hides it,
            # leaving the image's own files at /proc (CVE-2019-16884).
            raise OSError(errno.EPERM, f'filesystem "{op.fstype}" must be mounted on ordinary directory '
                                       f"(not through a symlink: {op.destination})")  # runc's words
    except BaseException:
        os.close(target)
        raise
    return target


def _no_symlinks(rootfd: int, path: str, target: int) -> bool:
    """Whether ``path`` reaches ``target`` from the rootfs without following any symlink."""
    try:
        fd = k.openat2(rootfd, path.lstrip("/") or ".", O_PATH, 0,
                       k.RESOLVE_IN_ROOT | k.RESOLVE_NO_SYMLINKS | k.RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return False
        raise
    try:
        a, b = os.fstat(fd), os.fstat(target)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    finally:
        os.close(fd)


def remount(rootfd: int, op: MountOp) -> None:
    """An entry with `remount` changes the mount already at the destination instead of stacking one."""
    fd = pathsafe.open_in_root(rootfd, op.destination)
    try:
        flags = op.flags | (k.MS_BIND if op.bind else 0)
        k.mount(op.source, fd_path(fd), op.fstype, flags, op.data or None)
    finally:
        os.close(fd)
    _apply_propagation_and_attrs(rootfd, op)


def mount_attrs(flags: int, clear: int) -> tuple[int, int]:
    """mount(2) MS_* flags to set/clear → MOUNT_ATTR_* to set/clear for mount_setattr(2)."""
    pairs = ((k.MS_RDONLY, k.MOUNT_ATTR_RDONLY), (k.MS_NOSUID, k.MOUNT_ATTR_NOSUID),
             (k.MS_NODEV, k.MOUNT_ATTR_NODEV), (k.MS_NOEXEC, k.MOUNT_ATTR_NOEXEC),
             (k.MS_NODIRATIME, k.MOUNT_ATTR_NODIRATIME), (k.MS_NOSYMFOLLOW, k.MOUNT_ATTR_NOSYMFOLLOW))
    attr_set = attr_clr = 0
    for ms, attr in pairs:
        if flags & ms:
            attr_set |= attr
        elif clear & ms:
            attr_clr |= attr
    if flags & k.MS_NOATIME:
        attr_set, attr_clr = attr_set | k.MOUNT_ATTR_NOATIME, attr_clr | k.MOUNT_ATTR__ATIME
    elif flags & k.MS_STRICTATIME:
        attr_set, attr_clr = attr_set | k.MOUNT_ATTR_STRICTATIME, attr_clr | k.MOUNT_ATTR__ATIME
    elif flags & k.MS_RELATIME:
        attr_clr |= k.MOUNT_ATTR__ATIME
    return attr_set, attr_clr


def _apply_propagation_and_attrs(rootfd: int, op: MountOp) -> None:
    if not (op.propagation or op.rec_set or op.rec_clr):
        return
    fd = pathsafe.open_in_root(rootfd, op.destination)
    try:
        for prop in op.propagation:
            k.mount(None, fd_path(fd), None, prop)
        if op.rec_set or op.rec_clr:
            _setattr_recursive(fd_path(fd), op)
    finally:
        os.close(fd)


def _setattr_recursive(path: str, op: MountOp) -> None:
    k.mount_setattr(k.AT_FDCWD, path, k.AT_RECURSIVE, op.rec_set, op.rec_clr)


def copy_tree(src_dirfd: int, dst_dirfd: int) -> None:
    """tmpcopyup: copy the directory that the tmpfs now hides into the tmpfs (files, dirs, links)."""
    for entry in os.scandir(src_dirfd):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dirfd)
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dirfd)
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_dirfd)
            try:
                copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_dirfd), name, dir_fd=dst_dirfd)
        elif stat.S_ISREG(st.st_mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dirfd)
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IMODE(st.st_mode),
                        dir_fd=dst_dirfd)
            try:
                while chunk := os.read(s, 1 << 20):
                    os.write(d, chunk)
            finally:
                os.close(s)
                os.close(d)
        else:
            continue
        files.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dirfd, follow_symlinks=False)


def mount_cgroup(rootfd: int, op: MountOp, binds: list[tuple[str, str]] | None = None) -> None:
    """Give the container its own cgroup view at the destination.

    With cgroup v2 (unified) we mount cgroup2; in a cgroup namespace its root is
    the container's cgroup.  With v1 or hybrid we mount a tmpfs and bind into it,
    per hierarchy, the directory of the container's *own* cgroup, read-only when
    asked, as runc does: ``binds`` from :func:`own_cgroup_binds`, computed before
    the cgroup namespace was made.  A bind's root is that directory, and ``..`` of
    a mount's root leads to the tmpfs, never up the hierarchy: even with ``rw`` the
    container can create or write nothing outside its own cgroup.
    """
    target = pathsafe.create_target(rootfd, op.destination, True)
    flags = op.flags & (k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | k.MS_RELATIME)
    try:
        if _unified_only():
            k.mount("cgroup2", fd_path(target), "cgroup2", flags)
            return
        if binds is None:  # a caller bug: reading them now would give the hierarchy roots (see above)
            raise OSError(errno.EINVAL, "the container's cgroup directories were not recorded before unshare")
        k.mount("tmpfs", fd_path(target), "tmpfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "mode=755")
    finally:
        os.close(target)
    for name, src in binds:
        dest = op.destination.rstrip("/") + "/" + name
        bind_mount(rootfd, MountOp(destination=dest, source=src, fstype=None,
                                   flags=k.MS_BIND | k.MS_REC | flags, bind=True))
        # Combined hierarchies (cpu,cpuacct) get per-controller symlinks as on the host.
        if "," in name:
            for ctrl in name.split(","):
                pfd = pathsafe.open_in_root(rootfd, op.destination, O_PATH | os.O_DIRECTORY)
                try:
                    os.symlink(name, ctrl, dir_fd=pfd)
                except FileExistsError:
                    pass
                finally:
                    os.close(pfd)
    if flags & k.MS_RDONLY:
        fd = pathsafe.open_in_root(rootfd, op.destination)
        try:
            k.mount(None, fd_path(fd), None, k.MS_REMOUNT | k.MS_BIND | flags)
        finally:
            os.close(fd)


def _unified_only() -> bool:
    # The fd must not outlive this check: opened before pivot_root, it is the host's
    # /sys/fs/cgroup, and process.cwd = /proc/self/fd/N would walk into it (CVE-2024-21626).
    try:
        fd = os.open("/sys/fs/cgroup", O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return k.fstatfs(fd)[0] == 0x63677270
    except OSError:
        return False
    finally:
        os.close(fd)


def own_cgroup_binds(mountinfo: str = "/proc/self/mountinfo",
                     proc_self_cgroup: str = "/proc/self/cgroup") -> list[tuple[str, str]]:
    """What :func:`mount_cgroup` binds on v1/hybrid: read by the init stage once the parent has moved
    it into the container's cgroup and *before* it unshares a cgroup namespace -- inside one,
    /proc/self/cgroup says ``/`` for every hierarchy and mountinfo shows each host mount's root as
    ``/../..``, which would name the hierarchy roots (the host's whole tree, other tenants included)."""
    from . import mountinfo as mi

    own = {}
    with open(proc_self_cgroup) as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                own[parts[1]] = parts[2]
    return cgroup_binds(mi.read(mountinfo, ("cgroup", "cgroup2")), own)


def cgroup_binds(mounts, own: dict[str, str], under: str = "/sys/fs/cgroup") -> list[tuple[str, str]]:
    """(name under the cgroup mount, source directory) for each hierarchy mounted at ``under/<name>``:
    the directory of our own cgroup in it.  ``mounts``: :func:`ocirun.mountinfo.parse` entries in
    mountinfo order (a later mount on the same point hides the earlier); ``own``: the lines of
    /proc/self/cgroup as {controller list (``cpu,cpuacct``, ``name=systemd``, ``""`` for cgroup2): path}.
    A hierarchy whose mount does not show our cgroup (the mount is of another subtree) is left out:
    binding its root would show cgroups that are not the container's."""
    import posixpath

    top = {}
    for m in mounts:
        if posixpath.dirname(m.mountpoint.rstrip("/")) == under and m.fstype in ("cgroup", "cgroup2"):
            top[m.mountpoint] = m
    out = []
    for mountpoint, m in top.items():
        if m.fstype == "cgroup2":
            path = own.get("")
        else:  # the hierarchy whose controllers (or name=) are all among the mount's options
            opts = set(m.super_options.split(","))
            path = next((p for ctrls, p in own.items() if ctrls and set(ctrls.split(",")) <= opts), None)
        # ".." in a path: it was read inside a cgroup namespace whose root is below what it names
        # (normalising "/../.." to "/" would name the hierarchy root)
        if path is None or ".." in path.split("/") or ".." in m.root.split("/"):
            continue
        rel = posixpath.relpath(path, m.root)
        if rel == ".." or rel.startswith("../"):
            continue
        out.append((posixpath.basename(mountpoint), posixpath.normpath(posixpath.join(mountpoint, rel))))
    return out


def mount_dev_defaults(rootfd: int, userns: bool, dev_is_bind: bool) -> None:
    """Create the default devices unless /dev came from the host (the links: :func:`dev_links`)."""
    if dev_is_bind:
        return
    for path, typ, major, minor, mode in DEFAULT_DEVICES:
        create_device(rootfd, path, typ, major, minor, mode, 0, 0, userns)


def dev_links(rootfd: int, dev_is_bind: bool) -> None:
    """/dev/fd, /dev/std* and /dev/ptmx → pts/ptmx, after linux.devices (as runc: an engine's own
    /dev/ptmx device entry, e.g. podman --privileged, gives way to the link to the container's devpts)."""
    if dev_is_bind:
        return
    for target, link in DEV_SYMLINKS:
        _symlink_in_root(rootfd, target, link)
    # /dev/ptmx → pts/ptmx when a devpts is mounted (config-linux "Default devices")
    try:
        fd = pathsafe.open_in_root(rootfd, "/dev/pts/ptmx")
        os.close(fd)
        _symlink_in_root(rootfd, "pts/ptmx", "/dev/ptmx", replace=True)
    except OSError:
        pass
    shm = pathsafe.mkdirall_in_root(rootfd, "/dev/shm", 0o1777)
    os.close(shm)


def _symlink_in_root(rootfd: int, target: str, link: str, replace: bool = False) -> None:
    parent, _, name = link.rpartition("/")
    pfd = pathsafe.mkdirall_in_root(rootfd, parent)
    try:
        if replace:
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
        try:
            os.symlink(target, name, dir_fd=pfd)
        except FileExistsError:
            pass
    finally:
        os.close(pfd)


def create_device(rootfd: int, path: str, typ: str, major: int, minor: int, mode: int | None,
                  uid: int | None, gid: int | None, userns: bool) -> None:
    """mknod ``path`` in the rootfs; in a user namespace bind the host's node instead (mknod is denied)."""
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[typ]
    perm = 0o666 if mode is None else stat.S_IMODE(mode)
    parent, _, name = os.path.normpath(path).rpartition("/")  # "/dev/x/" is /dev/x, as in runc
    pfd = pathsafe.mkdirall_in_root(rootfd, parent or "/")
    try:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        dev = os.makedev(major, minor)
        if st is not None:
            if stat.S_IFMT(st.st_mode) == kind and (kind == stat.S_IFIFO or st.st_rdev == dev):
                _chown_chmod(pfd, name, perm, uid, gid, userns)
                return
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                pass  # an empty placeholder file (e.g. from a previous bind target): bind over it
            else:
                raise RootfsError(f"{path} exists and is not the requested device {typ} {major}:{minor}")
        if userns:
            if st is None:
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=pfd)
                os.close(fd)
            tfd = k.openat2(pfd, name, O_PATH, 0, k.RESOLVE_IN_ROOT | k.RESOLVE_NO_SYMLINKS)
            try:
                k.mount(path, fd_path(tfd), None, k.MS_BIND)
            finally:
                os.close(tfd)
            return
        if st is not None:
            os.unlink(name, dir_fd=pfd)
        files.mknod(name, kind | perm, dev, dir_fd=pfd)
        _chown_chmod(pfd, name, perm, uid, gid, userns)
    except OSError as e:
        raise RootfsError(f"create device {path}: {e.strerror}") from None
    finally:
        os.close(pfd)


def _chown_chmod(pfd: int, name: str, perm: int, uid, gid, userns: bool) -> None:
    fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        os.chmod(fd_path(fd), perm)
        if uid is not None or gid is not None:
            files.chown(fd_path(fd), uid if uid is not None else -1, gid if gid is not None else -1)
    finally:
        os.close(fd)


def ensure_cwd(rootfd: int, cwd: str) -> None:
    """Create ``process.cwd`` (0755, root's) when it does not exist, after the mounts it may lie
    under, resolved inside the rootfs: runc creates a missing cwd rather than failing the container.
    Best effort: an existing path is left alone whatever it is, and a path that cannot be made (under
    procfs, through a magic link) is left for the chdir, which reports it naming the cwd."""
    try:
        os.close(pathsafe.open_in_root(rootfd, cwd))
        return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        os.close(pathsafe.mkdirall_in_root(rootfd, cwd, 0o755))
    except OSError:
        pass


def pivot(root_fd: int) -> None:
    """pivot_root into the rootfs and detach the old root (the `pivot_root(".", ".")` idiom)."""
    oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(root_fd)
        k.pivot_root(".", ".")
        os.fchdir(oldroot)
        # Make the old root slave so our unmount does not propagate to the host, then detach it.
        k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC)
        k.umount2(".", k.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(oldroot)


def move_root(root_fd: int) -> None:
    """--no-pivot: MS_MOVE the rootfs over / and chroot (for ramfs roots where pivot_root fails).

    The host's root stays the mount namespace's root beneath the container's, with every host mount
    on it.  First the full procfs and sysfs mounts among them are detached (or covered), so that the
    kernel refuses a new procfs/sysfs mount in a user namespace made inside the container: it allows
    one only while a fully visible instance exists in the mount namespace (mount_too_revealing), and
    the container's own /proc is not one (maskedPaths cover files in it).  What this cannot close:
    with CAP_SYS_ADMIN, ``umount -l /`` removes the container's root from over the host's, and a
    setns to the container's own mount namespace then lands on the host's root (docs/security.md).
    """
    hide_outside_procfs_sysfs(root_fd)
    os.fchdir(root_fd)
    k.mount(".", "/", None, k.MS_MOVE)  # not /proc/self/fd/N: the host's /proc is gone by now
    files.chroot(".")
    os.chdir("/")


#: The filesystems the kernel lets a user namespace mount only while a fully visible instance exists
#: in the mount namespace (FS_USERNS_VISIBLE).
_VISIBILITY_CHECKED = ("proc", "sysfs")


def hide_outside_procfs_sysfs(root_fd: int) -> None:
    """Detach every full procfs/sysfs mount outside the rootfs (the mount of ``root_fd`` and what is
    below it); one the kernel will not let us unmount (MNT_LOCKED: inherited by a mount namespace
    owned by the container's user namespace) gets a read-only empty tmpfs over it, which hides it
    from a further user namespace (where the cover is locked in turn).

    Runs in the container's own mount namespace, whose mounts were made slave or private by
    :func:`prepare_root`: nothing propagates back to the host.  The mount table is read through one
    fd of /proc/self/mountinfo opened before anything goes (the host's /proc is among the first).
    A mount point the container's root cannot reach (a directory it may not search, possible only
    in a user namespace) is left as it is: runc fails the container there, but such mounts are
    other tenants' (masked) /proc and the container cannot reach them either."""
    from . import mountinfo

    own = _mount_id(root_fd)
    fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
    unreachable = set()
    try:
        for _ in range(3):  # one pass does it; the others see what a failed detach left
            todo = [(p, parent) for p, parent in
                    revealing_mounts(mountinfo.parse(_pread_all(fd).decode(errors="replace")), own)
                    if p not in unreachable]
            if not todo:
                return
            for mountpoint, parent in todo:
                if not _hide(mountpoint, parent):
                    unreachable.add(mountpoint)
    finally:
        os.close(fd)
    raise RootfsError(f"--no-pivot: cannot hide the host's {', '.join(p for p, _ in todo)} from the container")


def revealing_mounts(entries, rootfs_id: int) -> list[tuple[str, str | None]]:
    """(mount point, its parent's mount point) of the full procfs/sysfs mounts outside the subtree
    of mount ``rootfs_id`` that nothing is mounted over, shallowest first (detaching one takes the
    mounts below it along).  ``entries``: :func:`ocirun.mountinfo.parse` of the mount table."""
    children, by_id = {}, {}
    for e in entries:
        children.setdefault(e.parent, []).append(e)
        by_id[e.id] = e
    inside, stack = set(), [rootfs_id]
    while stack:
        i = stack.pop()
        if i not in inside:
            inside.add(i)
            stack.extend(c.id for c in children.get(i, ()))
    out = {}
    for e in entries:
        if e.fstype not in _VISIBILITY_CHECKED or e.root != "/" or e.id in inside:
            continue
        if any(c.mountpoint == e.mountpoint for c in children.get(e.id, ())):
            continue  # covered (by us, on an earlier pass)
        parent = by_id.get(e.parent)
        out.setdefault(e.mountpoint, parent.mountpoint if parent is not None and parent.id != e.id else None)
    return sorted(out.items(), key=lambda item: (item[0].count("/"), item[0]))


def _hide(mountpoint: str, parent: str | None) -> bool:
    """Detach, or else cover, the mount at ``mountpoint``; False when the path cannot be reached.

    Its parent mount (``parent``: its mount point), then the mount and those below it, become
    slaves first: with ``rootfsPropagation: shared`` the container's copies of the host's mounts
    are still peers of the host's, and an unmount propagates through the parent's peer group (a
    new mount through the mount point's): the detach or the cover would reach the host's table.
    A slave receives from the host and sends nothing back."""
    try:
        if parent is not None:
            k.mount(None, parent, None, k.MS_SLAVE)
        k.mount(None, mountpoint, None, k.MS_SLAVE | k.MS_REC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.EACCES):
            return e.errno == errno.ENOENT  # ENOENT: below one detached already
        raise RootfsError(f"--no-pivot: make {mountpoint} a slave: {e.strerror or e}") from None
    try:
        k.umount2(mountpoint, k.MNT_DETACH)
        return True
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EPERM):  # locked in our user namespace: cover it
            raise RootfsError(f"--no-pivot: detach {mountpoint}: {e.strerror or e}") from None
    try:
        k.mount("tmpfs", mountpoint, "tmpfs", k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "mode=0")
    except OSError as e:
        raise RootfsError(f"--no-pivot: cover {mountpoint}: {e.strerror or e}") from None
    return True


def _pread_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def enter_runtime_namespace(ns_fd: int) -> None:
    """Put this process back in the runtime's mount namespace, its root still the container's.

    For a config without a mount namespace (the container MUST inherit the runtime's).  The
    filesystem was built, pivoted and masked in a throw-away namespace as for any container;
    here ``/`` with everything under it is cloned into a detached mount tree, we setns back to
    ``ns_fd`` (which resets root and cwd to the host's) and chroot into the clone.  The host's
    mount table never holds a container mount (runc mounts into it and leaves them behind), the
    throw-away namespace dies with us leaving it, and the detached tree with the container's
    last process.  ``..`` stops at the root of a detached tree, so the chroot cannot be walked
    out of as one inside the host's tree can.  ``ns_fd`` is closed.
    """
    try:
        tree = k.open_tree(k.AT_FDCWD, "/", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | k.AT_RECURSIVE)
        try:
            k.setns(ns_fd, k.CLONE_NEWNS)
            os.fchdir(tree)
            files.chroot(".")
            os.chdir("/")
        finally:
            os.close(tree)
    except OSError as e:
        raise RootfsError(f"enter the runtime mount namespace: {e.strerror or e}") from None
    finally:
        os.close(ns_fd)


def mask_path(path: str) -> None:
    """Hide ``path``: /dev/null over a file, a read-only empty tmpfs over a directory.

    The /dev/null we bind from is opened and verified to be the real char device
    1:3 first, so an image that planted its own /dev/null cannot expose a host
    file through this bind (CVE-2025-31133 class).
    """
    try:
        # O_PATH|O_NOFOLLOW on a symlink opens the link itself: /dev/null is then bound over the link's
        # own inode (opening the path reaches /dev/null), and its target is never followed or covered.
        fd = os.open(path, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if pathsafe.is_dir_fd(fd):
            k.mount("tmpfs", fd_path(fd), "tmpfs", k.MS_RDONLY, None)
            return
        null = os.open("/dev/null", O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(null)
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
                raise RootfsError("/dev/null is not the null device: refusing to use it for maskedPaths")
            k.mount(fd_path(null), fd_path(fd), None, k.MS_BIND)
        finally:
            os.close(null)
    finally:
        os.close(fd)


def readonly_path(path: str) -> None:
    """Make ``path`` read-only: bind it onto itself, then remount the bind read-only."""
    try:
        fd = os.open(path, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno == errno.ELOOP:
            return
        raise
    try:
        k.mount(fd_path(fd), fd_path(fd), None, k.MS_BIND | k.MS_REC)
        mfd = os.open(path, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _, st_flags = k.fstatfs(mfd)
            keep = (k.MS_NOSUID if st_flags & 2 else 0) | (k.MS_NODEV if st_flags & 4 else 0) | \
                   (k.MS_NOEXEC if st_flags & 8 else 0)
            k.mount(None, fd_path(mfd), None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_REC | keep)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


def defer_readonly_dev(op: MountOp) -> bool:
    """A read-only tmpfs at /dev is mounted read-write (True returned): devpts, the default devices,
    their links and the console go in first, then :func:`readonly_dev` (runc's order; mounted read-only
    at once, nothing could be created in it)."""
    if op.destination.rstrip("/") == "/dev" and not op.bind and op.fstype == "tmpfs" and op.flags & k.MS_RDONLY:
        op.flags &= ~k.MS_RDONLY
        return True
    return False


def readonly_dev() -> None:
    """Make the container's /dev mount read-only (after pivot_root: /dev is the container's)."""
    fd = os.open("/dev", O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        k.mount_setattr(fd, "", k.AT_EMPTY_PATH, k.MOUNT_ATTR_RDONLY, 0)
    finally:
        os.close(fd)


def readonly_root() -> None:
    fd = os.open("/", O_PATH | os.O_CLOEXEC)
    try:
        _, st_flags = k.fstatfs(fd)
        keep = (k.MS_NOSUID if st_flags & 2 else 0) | (k.MS_NODEV if st_flags & 4 else 0) | \
               (k.MS_NOEXEC if st_flags & 8 else 0)
    finally:
        os.close(fd)
    k.mount(None, "/", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | keep)
