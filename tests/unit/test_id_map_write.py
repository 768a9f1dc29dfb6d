"""procfs.write_id_map: the one writer of /proc/PID/{uid,gid}_map, and each caller's own wording.

Three callers write a user namespace's maps (launcher: root parent; rootless: an unprivileged
parent's own id; idmap: the throw-away namespace of an idmapped mount).  These pin the text written,
the handle used (the host's /proc, never a clone) and that every caller's error reads as before.
"""
import errno
import os

import pytest

from ocirun import idmap, launcher, procfs, rootless
from ocirun.config import IdMapping, Spec
from ocirun.errors import InitError
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel

RESOLVE = k.RESOLVE_BENEATH | k.RESOLVE_NO_XDEV | k.RESOLVE_NO_SYMLINKS | k.RESOLVE_NO_MAGICLINKS
HOST_PROC_FD = 900


@pytest.fixture
def fk(monkeypatch):
    fake = FakeKernel(monkeypatch, {"fstatfs": (k.PROC_SUPER_MAGIC, 0)})
    monkeypatch.setattr(procfs, "_write", lambda fd, data: fake.calls.append(("write", (fd, data))) or len(data))
    monkeypatch.setattr(procfs, "_close", lambda fd: fake.calls.append(("close", (fd,))))
    monkeypatch.setattr(procfs, "_fstat", lambda fd: os.stat_result((0o40555, procfs.PROC_ROOT_INO) + (0,) * 8))
    real_open = os.open

    def host_open(path, flags, *a, **kw):  # Procfs(private=False) opens /proc itself, not through the seam
        if path == "/proc":
            fake.calls.append(("open", (path, flags)))
            return HOST_PROC_FD
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(procfs.os, "open", host_open)
    return fake


def test_text_takes_records_and_config_dicts():
    maps = [IdMapping(0, 100000, 65536), {"containerID": 1, "hostID": 2, "size": 3}]
    assert procfs.id_map_text(maps) == "0 100000 65536\n1 2 3\n"
    assert procfs.id_map_text([]) == ""


def test_written_through_the_host_proc_beneath_it(fk):
    procfs.write_id_map(42, "uid_map", [IdMapping(0, 1000, 1)])
    assert fk.calls[0] == ("open", ("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))  # not open_tree
    assert ("openat2", (HOST_PROC_FD, "42/uid_map", os.O_WRONLY | os.O_CLOEXEC, 0, RESOLVE)) in fk.calls
    assert [c[1][1] for c in fk.calls if c[0] == "write"] == [b"0 1000 1\n"]
    assert fk.names().count("open_tree") == 0


def test_error_names_the_file_the_text_and_the_reason(fk):
    fk.returns["openat2"] = OSError(errno.EPERM, "Operation not permitted")
    with pytest.raises(procfs.ProcfsError) as e:
        procfs.write_id_map(42, "gid_map", [IdMapping(0, 1000, 1)])
    assert e.value.errno == errno.EPERM
    assert e.value.strerror == "write /proc/42/gid_map ('0 1000 1'): Operation not permitted"
    assert e.value.reason == "Operation not permitted"


def _spec(tmp_path):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return Spec.parse({"ociVersion": "1.3.0", "root": {"path": "rootfs"},
                       "linux": {"uidMappings": m, "gidMappings": m}}, str(tmp_path))


def test_launcher_uses_one_handle_for_both_maps(fk, tmp_path, monkeypatch):
    monkeypatch.setattr(launcher.os, "geteuid", lambda: 0)
    launcher.write_id_maps(42, _spec(tmp_path))
    assert fk.names().count("open") == 1
    assert [c[1][1] for c in fk.calls if c[0] == "openat2"] == ["42/uid_map", "42/gid_map"]
    assert [c[1][1] for c in fk.calls if c[0] == "write"] == [b"0 100000 65536\n"] * 2


def test_each_caller_keeps_its_wording(fk, tmp_path, monkeypatch):
    fk.returns["openat2"] = OSError(errno.EINVAL, "Invalid argument")
    monkeypatch.setattr(launcher.os, "geteuid", lambda: 0)
    with pytest.raises(InitError) as e:
        launcher.write_id_maps(42, _spec(tmp_path))
    assert str(e.value) == "write /proc/42/uid_map ('0 100000 65536'): Invalid argument"
    with pytest.raises(InitError) as e:
        rootless._write(42, "uid_map", [IdMapping(0, 1000, 1)])
    assert str(e.value) == "write /proc/42/uid_map ('0 1000 1'): Invalid argument"


def test_idmap_wording(fk, monkeypatch):
    """userns_fd's own message, with its child and pipes replaced: only the map write is real."""
    fk.returns["openat2"] = OSError(errno.EINVAL, "Invalid argument")
    monkeypatch.setattr(idmap.os, "fork", lambda: 4242)
    monkeypatch.setattr(idmap.os, "read", lambda fd, n: b"1")
    monkeypatch.setattr(idmap.os, "waitpid", lambda pid, opts: (pid, 0))
    with pytest.raises(OSError) as e:
        idmap.userns_fd([{"containerID": 0, "hostID": 1000, "size": 1}], [])
    assert e.value.errno == errno.EINVAL
    assert e.value.strerror == "idmap: write uid_map '0 1000 1': Invalid argument"
