"""ocirun.procfs on the fake kernel seam: the exact calls of the one procfs writer.

The real attacks are in tests/linux/test_escape_procfs.py; these pin what makes them fail: a
non-recursive clone, checked to be a procfs root, ``self`` read through the clone, files opened
beneath it with no mount crossing and no link, checked again, and nothing opened when a check fails.
"""
import errno
import os

import pytest

from ocirun import procfs
from ocirun.stage import create
from ocirun.config import Spec
from ocirun.plan import launch_plan
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel

PROC = (k.PROC_SUPER_MAGIC, 0)
RESOLVE = k.RESOLVE_BENEATH | k.RESOLVE_NO_XDEV | k.RESOLVE_NO_SYMLINKS | k.RESOLVE_NO_MAGICLINKS


def _stat(ino):
    return os.stat_result((0o40555, ino) + (0,) * 8)


@pytest.fixture
def fk(monkeypatch):
    fake = FakeKernel(monkeypatch, {"fstatfs": PROC})
    monkeypatch.setattr(procfs, "_write", lambda fd, data: fake.calls.append(("write", (fd, data))) or len(data))
    monkeypatch.setattr(procfs, "_close", lambda fd: fake.calls.append(("close", (fd,))))
    monkeypatch.setattr(procfs, "_fstat", lambda fd: _stat(procfs.PROC_ROOT_INO))
    monkeypatch.setattr(procfs, "_readlink", lambda name, dir_fd: fake.calls.append(("readlink", (name, dir_fd)))
                        or {"self": "7", "thread-self": "7/task/9"}[name])
    return fake


def test_self_is_resolved_through_the_clone(fk):
    with procfs.Procfs() as p:
        assert p.write("self/oom_score_adj", "500") == "7/oom_score_adj"
        assert p.write("self/timens_offsets", "1 5 0") == "7/timens_offsets"  # the link is read once
    assert fk.calls == [
        ("open_tree", (k.AT_FDCWD, "/proc", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC)),  # no AT_RECURSIVE
        ("fstatfs", (1001,)),
        ("readlink", ("self", 1001)),
        ("openat2", (1001, "7/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC, 0, RESOLVE)),
        ("fstatfs", (1002,)), ("write", (1002, b"500")), ("close", (1002,)),
        ("openat2", (1001, "7/timens_offsets", os.O_WRONLY | os.O_CLOEXEC, 0, RESOLVE)),
        ("fstatfs", (1003,)), ("write", (1003, b"1 5 0")), ("close", (1003,)),
        ("close", (1001,)),
    ]


def test_sysctl_path_is_taken_as_is(fk):
    procfs.write("sys/net/ipv4/ip_forward", "1")
    assert fk.of("openat2")[0][1] == "sys/net/ipv4/ip_forward" and fk.of("readlink") == []


def test_a_procfs_directory_bound_on_proc_is_refused(fk, monkeypatch):
    monkeypatch.setattr(procfs, "_fstat", lambda fd: _stat(4026531841))
    with pytest.raises(OSError, match="not the root of a procfs"):
        procfs.write("sys/kernel/hostname", "x")
    assert fk.of("openat2") == [] and fk.of("close") == [(1001,)]


def test_a_file_not_on_procfs_gets_nothing(fk):
    answers = iter([PROC, (k.TMPFS_MAGIC, 0)])
    fk.returns["fstatfs"] = lambda fd: next(answers)
    with pytest.raises(OSError, match=r"/proc/sys/kernel/hostname is not on procfs") as e:
        procfs.write("sys/kernel/hostname", "x")
    assert fk.of("write") == [] and e.value.reason.startswith("not on procfs")


def test_errors_name_the_file(fk):
    fk.returns["openat2"] = FileNotFoundError(errno.ENOENT, "No such file or directory")
    with pytest.raises(OSError, match=r"^\[Errno 2\] open /proc/sys/kernel/nope: No such file or directory"):
        procfs.write("sys/kernel/nope", "1")
    with pytest.raises(OSError, match=r"label: no /proc/thread-self/attr/a or /proc/thread-self/attr/b"):
        procfs.write(("thread-self/attr/a", "thread-self/attr/b"), "v", "label")


def test_a_crossed_mount_is_an_error_not_a_fallback(fk):
    fk.returns["openat2"] = OSError(errno.EXDEV, "Invalid cross-device link")
    with pytest.raises(OSError, match="open /proc/7/oom_score_adj: Invalid cross-device link"):
        procfs.write("self/oom_score_adj", "1")


def _spec(tmp_path, linux=None, process=None):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    raw = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, **(process or {})},
           "linux": {"namespaces": [{"type": "mount"}], **(linux or {})}}
    return launch_plan(Spec.parse(raw, str(tmp_path)), str(tmp_path), 40)  # what stage 2 reads


def test_stage2_opens_a_handle_only_when_it_will_write(fk, tmp_path):
    assert create._procfs_handle(_spec(tmp_path)) is None
    assert fk.calls == []
    for spec in (_spec(tmp_path, linux={"sysctl": {"net.ipv4.ip_forward": "1"}}),
                 _spec(tmp_path, process={"oomScoreAdj": 0}),
                 _spec(tmp_path, process={"apparmorProfile": "p"})):
        create._procfs_handle(spec).close()
    assert fk.names().count("open_tree") == 3
