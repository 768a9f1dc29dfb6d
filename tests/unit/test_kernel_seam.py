"""The privileged sequences, checked call by call against the recording fake kernel (no root)."""
import errno

import pytest

from ocirun import plan

from ocirun import rootfs, security
from ocirun.config import Process
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel


def test_prepare_root_makes_host_mounts_slave_then_clones_the_rootfs(monkeypatch):
    fk = FakeKernel(monkeypatch)
    fd = rootfs.prepare_root(7, None)
    assert fk.names() == ["mount", "open_tree", "move_mount"]
    assert fk.of("mount")[0] == (None, "/", None, k.MS_SLAVE | k.MS_REC)
    src, path, flags = fk.of("open_tree")[0]
    assert src == 7 and flags & k.AT_RECURSIVE and flags & k.OPEN_TREE_CLONE
    assert fk.of("move_mount")[0][0] == fd and fk.of("move_mount")[0][2] == 7


@pytest.mark.parametrize("prop,expected", [("rprivate", k.MS_PRIVATE | k.MS_REC), ("slave", k.MS_SLAVE),
                                           ("unbindable", k.MS_SLAVE | k.MS_REC), (None, k.MS_SLAVE | k.MS_REC)])
def test_root_propagation_before_pivot(monkeypatch, prop, expected):
    """unbindable cannot be set before pivot_root (the rootfs could not be bound): / stays rslave, init
    applies it after; the private and slave forms go on / at once."""
    fk = FakeKernel(monkeypatch)
    rootfs.prepare_root(7, prop)
    assert fk.of("mount")[0] == (None, "/", None, expected)
    assert not fk.of("mount_setattr")


@pytest.mark.parametrize("prop", ["shared", "rshared"])
def test_shared_root_keeps_peers_but_the_rootfs_parent_goes_private(monkeypatch, prop):
    """runc's order: / shared as asked, then the mount holding the rootfs private, then the bind."""
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr(rootfs, "_mount_root_of", lambda fd: 99)
    monkeypatch.setattr(rootfs.os, "close", lambda fd: None)
    rootfs.prepare_root(7, prop)
    assert fk.of("mount")[0] == (None, "/", None, k.MS_SHARED | (k.MS_REC if prop == "rshared" else 0))
    assert [n for n in fk.names() if n in ("mount", "mount_setattr", "open_tree")] == \
        ["mount", "mount_setattr", "open_tree"]
    assert fk.of("mount_setattr")[0][0] == 99


def test_bind_mount_sets_attributes_while_detached(monkeypatch, tmp_path):
    from ocirun.plan import MountOp

    fk = FakeKernel(monkeypatch, {"fstatfs": (0x58465342, 0)})  # the target is on xfs, not procfs
    monkeypatch.setattr("ocirun.pathsafe.is_dir_fd", lambda fd: True)
    monkeypatch.setattr("ocirun.pathsafe.create_target", lambda rootfd, dest, is_dir: 555)
    monkeypatch.setattr("os.close", lambda fd: None)
    op = MountOp(destination="/data", source="/src", fstype="none", flags=k.MS_BIND | k.MS_REC | k.MS_RDONLY
                 | k.MS_NOSUID, bind=True, rec_set=k.MOUNT_ATTR_NOEXEC)
    rootfs.bind_mount(3, op)
    assert fk.names() == ["open_tree", "mount_setattr", "mount_setattr", "fstatfs", "move_mount"]
    tree = fk.of("mount_setattr")[0][0]
    assert fk.of("mount_setattr")[0][3] == k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NOSUID  # top mount only
    assert fk.of("mount_setattr")[1][2] & k.AT_RECURSIVE and fk.of("mount_setattr")[1][3] == k.MOUNT_ATTR_NOEXEC
    assert fk.of("move_mount")[0][:3] == (tree, "", 555)  # attached last, onto the verified target


def test_privilege_drop_order(monkeypatch):
    """bounding set while CAP_SETPCAP is held → uid switch with KEEPCAPS → capset → ambient."""
    fk = FakeKernel(monkeypatch)
    umasks = []
    monkeypatch.setattr("os.umask", umasks.append)
    proc = Process.parse({"args": ["x"], "user": {"uid": 1000, "gid": 100, "additionalGids": [5, 5, 6]},
                          "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                           "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                                           "ambient": ["CAP_KILL"]}})
    masks, notes = plan.capability_sets(proc, 40)
    assert notes == [] and masks["bounding"] == 1 << 5
    security.drop_bounding(masks["bounding"], 40)
    dropped = [args[1] for args in fk.of("prctl") if args[0] == k.PR_CAPBSET_DROP]
    assert dropped == [c for c in range(41) if c != 5]
    fk.calls.clear()
    security.set_user(proc)
    assert fk.calls == [("prctl", (k.PR_SET_KEEPCAPS, 1)), ("setgroups", ([5, 6],)),
                        ("setresgid", (100, 100, 100)), ("setresuid", (1000, 1000, 1000)),
                        ("prctl", (k.PR_SET_KEEPCAPS, 0))]
    assert umasks == [0o022]
    fk.calls.clear()
    security.apply_caps(masks, 40)
    assert fk.calls[0] == ("capset", (1 << 5, 1 << 5, 1 << 5))
    assert fk.of("prctl") == [(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_CLEAR_ALL), (k.PR_CAP_AMBIENT,
                                                                               k.PR_CAP_AMBIENT_RAISE, 5)]


def test_unknown_bounding_caps_on_older_kernels_are_tolerated(monkeypatch):
    FakeKernel(monkeypatch, {"prctl": OSError(errno.EINVAL, "bad cap")})
    security.drop_bounding(0, 3)  # EINVAL for caps the kernel does not know is not an error


def test_pivot_detaches_the_old_root(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.fchdir", lambda fd: None)
    monkeypatch.setattr("os.chdir", lambda p: None)
    rootfs.pivot(9)
    assert fk.names() == ["pivot_root", "mount", "umount2"]
    assert fk.of("pivot_root")[0] == (".", ".")
    assert fk.of("mount")[0] == (None, ".", None, k.MS_SLAVE | k.MS_REC)  # before the unmount, so it stays ours
    assert fk.of("umount2")[0] == (".", k.MNT_DETACH)
