"""A config without a mount namespace: what validation lets through, and the switch back to the
runtime's mount namespace, call by call against the recording fake kernel (no root)."""
import pytest

from ocirun import rootfs
from ocirun.config import Spec
from ocirun.errors import ConfigError
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel
from ocirun.validate import validate_spec


def _spec(tmp_path, namespaces, linux=None, mounts=None):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    raw = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
           "mounts": mounts or [],
           "linux": {"namespaces": [{"type": t} for t in namespaces], **(linux or {})}}
    return Spec.parse(raw, str(tmp_path))


def test_no_mount_namespace_is_accepted_with_mounts_masks_and_readonly_paths(tmp_path):
    spec = _spec(tmp_path, ["pid", "network", "ipc", "uts"],
                 linux={"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
                 mounts=[{"destination": "/proc", "type": "proc", "source": "proc"},
                         {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}])
    validate_spec(spec)  # no error
    validate_spec(_spec(tmp_path, []))  # every namespace inherited (runtime-tools linux_ns_itype)


@pytest.mark.parametrize("namespaces,linux,mounts,field", [
    (["pid", "user"], {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                       "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}, None, "linux.namespaces"),
    (["pid"], {"rootfsPropagation": "private"}, None, "linux.rootfsPropagation"),
    (["pid"], None, [{"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]}],
     "mounts[0].options"),
])
def test_what_needs_a_mount_namespace_is_refused_naming_the_field(tmp_path, namespaces, linux, mounts, field):
    with pytest.raises(ConfigError) as e:
        validate_spec(_spec(tmp_path, namespaces, linux, mounts))
    assert str(e.value).startswith(f"config.json: {field}: ") and "mount namespace" in str(e.value)
    # the same config with a mount namespace passes this check
    validate_spec(_spec(tmp_path, namespaces + ["mount"], linux, mounts))


def test_enter_runtime_namespace_clones_root_then_setns_then_chroots_into_the_clone(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.fchdir", lambda fd: fk.calls.append(("fchdir", (fd,))))
    monkeypatch.setattr("os.chdir", lambda p: fk.calls.append(("chdir", (p,))))
    monkeypatch.setattr("os.close", lambda fd: fk.calls.append(("close", (fd,))))
    rootfs.enter_runtime_namespace(41)
    dirfd, path, flags = fk.of("open_tree")[0]
    assert (dirfd, path) == (k.AT_FDCWD, "/")
    assert flags & k.OPEN_TREE_CLONE and flags & k.AT_RECURSIVE  # the container's mounts come along
    tree = 1001  # the fake's first open_tree fd
    assert fk.calls[1:] == [("setns", (41, k.CLONE_NEWNS)), ("fchdir", (tree,)), ("chroot", (".",)),
                            ("chdir", ("/",)), ("close", (tree,)),
                            ("close", (41,))]  # the runtime namespace's fd never reaches the container


def test_enter_runtime_namespace_failure_names_the_step_and_closes_the_fd(monkeypatch):
    import errno

    FakeKernel(monkeypatch, {"setns": OSError(errno.EPERM, "Operation not permitted")})
    closed = []
    monkeypatch.setattr("os.close", closed.append)
    with pytest.raises(rootfs.RootfsError, match="enter the runtime mount namespace: Operation not permitted"):
        rootfs.enter_runtime_namespace(41)
    assert 41 in closed
