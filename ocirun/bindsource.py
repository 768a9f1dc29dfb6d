"""Bind sources of a user-namespaced container, opened with the runtime's credentials.

Stage 2 of a container with a user namespace runs as the root of that namespace (host uid
100000, say).  A bind source only the host's root may reach — a 0700 directory, or one under a
directory only root may traverse — would fail there with ``open_tree: Permission denied``,
although the runtime that was asked to make the mount can read it.  runc opens bind sources in
the host context and hands the fds in (1.1's mount fds, 1.2's mount sources); so do we.

The runtime forks a helper that joins the container's mount namespace (setns: its credentials
stay the runtime's), clones each source there as a detached tree (``open_tree(OPEN_TREE_CLONE)``
through :func:`ocirun.rootfs.detached_bind`, flags set while nothing can see it) and passes the
trees back; stage 2 only attaches each to its destination, resolved inside the rootfs
(``rootfs.bind_mount(tree=)``).  Cloning inside the container's mount namespace, not ours, keeps
what the kernel locked when that namespace was made for the user namespace (read-only, nosuid,
nodev... of the host's mounts, and their locked submounts): the tree is the one stage 2 would
have cloned itself, reached with the runtime's right to traverse.  A source path means what it
means in the container's mount namespace (one joined by path included), as before.

The idmapped binds are made by :mod:`ocirun.idmap` (before the container exists, in the runtime's
namespace); a rootless runtime has no more rights than the container's root, and cannot setns
into a mount namespace (no CAP_SYS_CHROOT): both are left out here.
"""
from __future__ import annotations

import os
import sys

from .kernel import linux as k
from .sync import MAX_FDS

#: fds per SCM_RIGHTS message (the kernel's limit); also what one sync message carries to stage 2.
SCM_MAX_FD = MAX_FDS
_BATCH = SCM_MAX_FD
_INT = 4


def made_by_runtime(op) -> bool:
    """Whether ``op`` (a plan.MountOp) is a bind that stage 2 would clone from its source: the
    binds this module makes for a user-namespaced container (not idmapped ones, not a remount,
    not the cgroup view)."""
    return (op.bind and not (op.idmap or op.uid_mappings) and op.fstype not in ("cgroup", "cgroup2")
            and not op.flags & k.MS_REMOUNT)


def wanted(spec) -> bool:
    """A user namespace (new or joined), a runtime that is root, some mount (binds sorted out by
    :func:`trees`)."""
    return spec.linux.namespace("user") is not None and os.geteuid() == 0 and bool(spec.mounts)


def trees(mounts: list, pid: int) -> dict[int, int]:
    """The detached trees of every bind :func:`made_by_runtime`, keyed by the mount's index in
    ``mounts`` (the plan's mount operations, ocirun.plan.LaunchPlan.mounts), cloned inside the mount namespace of ``pid`` (stage 2).  Raises OSError naming
    the mount (the wording stage 2 would have used) when a source cannot be cloned."""
    from .rootfs import detached_bind

    ops = [(i, op) for i, op in enumerate(mounts) if made_by_runtime(op)]
    if not ops:
        return {}
    if len(ops) > SCM_MAX_FD:
        raise OSError(7, f"{len(ops)} bind mounts in a user namespace: at most {SCM_MAX_FD} are supported")
    import _socket

    mntns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    child = os.fork()
    if child == 0:  # the helper: never returns, never raises into the runtime's code
        status = 1
        try:
            ours.close()
            k.setns(mntns, k.CLONE_NEWNS)
            made = []
            for i, op in ops:
                try:
                    made.append(detached_bind(op))
                except OSError as e:
                    theirs.sendmsg([f"E{i} {e.errno}".encode()])
                    break
            else:
                for at in range(0, len(made), _BATCH):
                    batch = made[at:at + _BATCH]
                    fds = b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in batch)
                    theirs.sendmsg([b"T"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
                theirs.sendmsg([b"D"])
                status = 0
        except BaseException as e:  # noqa: BLE001 - reported to the runtime, which raises it
            try:
                theirs.sendmsg([f"X {getattr(e, 'errno', 0) or 0} {e}".encode()[:1000]])
            except OSError:
                pass
        finally:
            os._exit(status)
    os.close(mntns)
    theirs.close()
    got: list[int] = []
    try:
        while True:
            data, anc, _flags, _addr = ours.recvmsg(1024, _socket.CMSG_SPACE(_BATCH * _INT))
            for level, typ, cdata in anc:
                if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
                    got += [int.from_bytes(cdata[j:j + _INT], sys.byteorder, signed=True)
                            for j in range(0, len(cdata) - len(cdata) % _INT, _INT)]
            if data == b"T":
                continue
            if data == b"D" and len(got) == len(ops):
                return {i: fd for (i, _op), fd in zip(ops, got)}
            raise _failure(data, dict(ops))
    except BaseException:
        for fd in got:
            os.close(fd)
        raise
    finally:
        ours.close()
        os.waitpid(child, 0)


def _failure(data: bytes, ops: dict) -> OSError:
    text = data.decode(errors="replace")
    if text.startswith("E"):
        index, _, err = text[1:].partition(" ")
        op = ops[int(index)]
        errno_ = int(err)
        return OSError(errno_, f"mount {op.source} to {op.destination}: {os.strerror(errno_)}")
    if text.startswith("X "):
        err, _, what = text[2:].partition(" ")
        return OSError(int(err) or 0, f"open bind sources in the container's mount namespace: {what}")
    return OSError(0, "open bind sources in the container's mount namespace: the helper exited without an answer")
