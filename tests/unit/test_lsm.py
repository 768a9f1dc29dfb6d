"""LSM labels on the fake kernel seam: what is written where, through which handle, and when.

The application path cannot run for real here (this kernel has no LSM); these tests pin the exact
calls: a non-recursive clone of /proc checked to be procfs, attr files opened beneath it with no
symlink or mount crossing, the values written, and their place in the sequence before execve.
"""
import errno
import os

import pytest

from ocirun import lsm, plan, procfs, security
from ocirun.stage import create
from ocirun.config import Spec
from ocirun.plan import launch_plan
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel

PROC = (k.PROC_SUPER_MAGIC, 0)
RESOLVE = k.RESOLVE_BENEATH | k.RESOLVE_NO_XDEV | k.RESOLVE_NO_SYMLINKS | k.RESOLVE_NO_MAGICLINKS
TASK = f"{os.getpid()}/task/{os.getpid()}"


@pytest.fixture
def fk(monkeypatch):
    """The fake kernel, plus the write/close seams of lsm recorded into the same call list."""
    fake = FakeKernel(monkeypatch, {"fstatfs": PROC})
    monkeypatch.setattr(procfs, "_write", lambda fd, data: fake.calls.append(("write", (fd, data))) or len(data))
    monkeypatch.setattr(procfs, "_close", lambda fd: fake.calls.append(("close", (fd,))))
    monkeypatch.setattr(procfs, "_fstat", lambda fd: os.stat_result((0o40555, procfs.PROC_ROOT_INO) + (0,) * 8))
    monkeypatch.setattr(procfs, "_readlink", lambda name, dir_fd: {"thread-self": TASK}[name])
    return fake


def test_mount_label_added_where_runc_adds_it():
    label = "system_u:object_r:container_file_t:s0:c1,c2"
    assert plan.labelled_mount_data("tmpfs", False, "mode=755", label) == f'mode=755,context="{label}"'
    assert plan.labelled_mount_data("devpts", False, "", label) == f'context="{label}"'
    for fstype in ("proc", "sysfs", "mqueue", "cgroup", "cgroup2"):
        assert plan.labelled_mount_data(fstype, False, "x=1", label) == "x=1"
    assert plan.labelled_mount_data("none", True, "", label) == ""
    assert plan.labelled_mount_data("tmpfs", False, "size=1k", None) == "size=1k"


def test_exec_writes_apparmor_then_selinux(fk):
    lsm.set_exec_labels("my-profile", "system_u:system_r:container_t:s0")
    assert fk.calls[0] == ("open_tree", (k.AT_FDCWD, "/proc", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC))
    assert not fk.of("open_tree")[0][2] & k.AT_RECURSIVE  # no mounts stacked on /proc subpaths come along
    procfd = 1001
    aa, se = 1002, 1003
    assert fk.calls[1:] == [
        ("fstatfs", (procfd,)),
        ("openat2", (procfd, f"{TASK}/attr/apparmor/exec", os.O_WRONLY | os.O_CLOEXEC, 0, RESOLVE)),
        ("fstatfs", (aa,)), ("write", (aa, b"exec my-profile")), ("close", (aa,)),
        ("openat2", (procfd, f"{TASK}/attr/exec", os.O_WRONLY | os.O_CLOEXEC, 0, RESOLVE)),
        ("fstatfs", (se,)), ("write", (se, b"system_u:system_r:container_t:s0")), ("close", (se,)),
        ("close", (procfd,)),
    ]


def test_apparmor_falls_back_to_attr_exec(fk):
    def openat2(dirfd, path, flags, mode, resolve):
        if path.endswith("apparmor/exec"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return 2000
    fk.returns["openat2"] = openat2
    lsm.set_exec_labels("p", None)
    assert [a[1] for a in fk.of("openat2")] == [f"{TASK}/attr/apparmor/exec", f"{TASK}/attr/exec"]
    assert fk.of("write") == [(2000, b"exec p")]


def test_no_labels_no_calls(fk):
    lsm.set_exec_labels(None, None)
    lsm.set_keyring_label(None)
    assert fk.calls == []


def test_keyring_label(fk):
    lsm.set_keyring_label("system_u:system_r:container_t:s0")
    assert fk.of("openat2")[0][1] == f"{TASK}/attr/keycreate"
    assert fk.of("write") == [(1002, b"system_u:system_r:container_t:s0")]


def test_proc_not_procfs_is_refused_before_any_write(fk):
    fk.returns["fstatfs"] = (0x01021994, 0)  # tmpfs mounted over /proc
    with pytest.raises(OSError, match="not procfs"):
        lsm.set_exec_labels("p", None)
    assert fk.of("write") == [] and fk.of("close") == [(1001,)]


def test_attr_file_not_on_procfs_is_refused(fk):
    answers = iter([PROC, (0x01021994, 0)])  # the handle is procfs, the opened file is not
    fk.returns["fstatfs"] = lambda fd: next(answers)
    with pytest.raises(OSError, match="apparmor failed to apply profile: .* not on procfs"):
        lsm.set_exec_labels("p", None)
    assert fk.of("write") == []


def test_lsm_refusing_the_write_is_worded(fk):
    def bad_write(fd, data):
        raise OSError(errno.EINVAL, "Invalid argument")
    procfs._write = bad_write
    with pytest.raises(OSError, match="apparmor failed to apply profile: write /proc/.*/attr/apparmor/exec: "
                                      "Invalid argument"):
        lsm.set_exec_labels("p", None)


def _spec(tmp_path, process: dict) -> Spec:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    raw = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 1000, "gid": 1000}, **process},
           "linux": {"namespaces": [{"type": "mount"}]}}
    return Spec.parse(raw, str(tmp_path))


@pytest.mark.parametrize("nnp", [True, False])
def test_labels_written_before_privilege_switch_seccomp_and_execve(fk, monkeypatch, tmp_path, nnp):
    """create stage [7]: exec state → LSM labels → (seccomp if no NNP) → privileges → hooks → seccomp → execve."""
    spec = _spec(tmp_path, {"apparmorProfile": "prof", "selinuxLabel": "lbl", "noNewPrivileges": nnp})
    events = fk.calls
    monkeypatch.setattr(create, "prepare_exec_state", lambda n: events.append(("prepare_exec_state", ())))
    monkeypatch.setattr(create, "_load_seccomp", lambda *a: events.append(("seccomp", ())))
    monkeypatch.setattr(security, "become_process", lambda *a: events.append(("become_process", ())))
    monkeypatch.setattr(create.os, "execve", lambda path, args, env: events.append(("execve", (path,))))
    lp = launch_plan(spec, str(tmp_path), 40)
    create._exec_sequence(lp, lp.process, "/bin/true", {"state": {}}, {}, object(), {}, 40, True, {})
    order = [n for n, a in events if n in ("prepare_exec_state", "write", "seccomp", "become_process", "execve")]
    writes = ["write", "write"]
    if nnp:
        assert order == ["prepare_exec_state", *writes, "become_process", "seccomp", "execve"]
    else:
        assert order == ["prepare_exec_state", *writes, "seccomp", "become_process", "execve"]
    assert [a[1] for n, a in events if n == "write"] == [b"exec prof", b"lbl"]
