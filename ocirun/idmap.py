"""Idmapped mounts: a user namespace that carries a mount's uidMappings/gidMappings.

mount_setattr(MOUNT_ATTR_IDMAP) takes the mapping from a user namespace fd.  We
make a throwaway one: a child unshares CLONE_NEWUSER, we write its maps, keep
an fd to its namespace and let the child go.  The namespace lives on through
the fd and, once applied, through the mount.

A mapping is written exactly as a user namespace's own (``containerID hostID size``),
as runc (1.2+) and crun write it: the kernel maps an on-disk id as an id *inside*
the namespace down to the one outside, so on disk ``containerID`` shows on the mount
as ``hostID``.  A mount mapped like its container's user namespace therefore shows
the disk's ids unchanged inside the container, and what the container's root creates
is owned by uid 0 on disk.  :func:`detached_trees` makes the mounts themselves, in
the runtime (see there for why).
"""
from __future__ import annotations

import os

from . import procfs
from .kernel import linux as k


def userns_fd(uid_mappings: list, gid_mappings: list) -> int:
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: make the namespace, say so, wait to be released
        try:
            os.close(ready_r)
            os.close(done_w)
            k.unshare(k.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(1, "idmap: could not create a user namespace for the mount")
        for name, maps in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
            # runc's and crun's reading (see the module doc): on disk containerID ↔ hostID on the mount.
            # config.json's mount entries are dicts, linux.uidMappings records: procfs takes either.
            try:
                procfs.write_id_map(pid, name, maps)  # the host's /proc
            except procfs.ProcfsError as e:
                raise OSError(e.errno, f"idmap: write {name} {procfs.id_map_text(maps).strip()!r}: "
                                       f"{e.reason}") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def detached_trees(spec, mounts: list) -> dict[int, int]:
    """Every idmapped bind mount of the config made here, in the runtime, as a detached mount fd
    (keyed by its index in ``mounts``); the init only attaches it (``rootfs.bind_mount(tree=)``).

    Why here: mount_setattr(MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN over the user namespace of the
    source's filesystem (the initial one for a host directory), which the init of a container in a
    user namespace of its own lacks (EPERM); as the container's root (host uid 100000, say) it may
    not even reach the source.  runc 1.2 makes these mounts in the runtime for the same reasons.
    A mount without a mapping of its own (``idmap`` alone) takes the container's: a namespace
    with the same maps (as crun does), or the one the config joins by path.
    """
    from .rootfs import detached_bind

    out: dict[int, int] = {}
    try:
        for i, op in enumerate(mounts):  # the plan's mount operations (ocirun.plan.LaunchPlan.mounts)
            if not (op.bind and (op.idmap or op.uid_mappings)):
                continue
            try:
                ns = _mapping_ns(spec, op)
                try:
                    out[i] = detached_bind(op, ns)
                finally:
                    os.close(ns)
            except OSError as e:
                raise OSError(e.errno, f"mounts[{i}]: idmapped mount {op.source} to {op.destination}: "
                                       f"{e.strerror or e}") from None
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    return out


def _mapping_ns(spec, op) -> int:
    if op.uid_mappings:
        return userns_fd(op.uid_mappings, op.gid_mappings)
    user = spec.linux.namespace("user")  # validate: "idmap" alone requires one
    if user.path:
        return os.open(user.path, os.O_RDONLY | os.O_CLOEXEC)
    return userns_fd(spec.linux.uidMappings, spec.linux.gidMappings)
