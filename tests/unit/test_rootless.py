"""The rootless decisions: --rootless values, where the state goes, when the map helpers are needed."""
import pytest

from ocirun import rootless
from ocirun.config import IdMapping
from ocirun.errors import OciError


@pytest.mark.parametrize("value, euid, userns, expected", [
    ("true", 0, False, True), ("false", 1000, True, False), ("auto", 1000, False, True),
    (None, 0, False, False), (None, 0, True, True), ("AUTO", 0, True, True),
])
def test_resolve(value, euid, userns, expected):
    assert rootless.resolve(value, euid=euid, userns=userns) is expected


def test_resolve_rejects_other_values():
    with pytest.raises(OciError, match="--rootless"):
        rootless.resolve("maybe", euid=0, userns=False)


@pytest.mark.parametrize("env, euid, userns, expected", [
    ({}, 1000, False, False),
    ({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, False, True),
    ({"XDG_RUNTIME_DIR": "/run/user/0"}, 0, False, False),          # real root: /run/ocirun
    ({"XDG_RUNTIME_DIR": "/run/user/1000", "USER": "alice"}, 0, True, True),   # rootless podman
    ({"XDG_RUNTIME_DIR": "/run/user/0", "USER": "root"}, 0, True, False),
])
def test_honor_xdg(env, euid, userns, expected):
    assert rootless.honor_xdg(env, euid=euid, userns=userns) is expected


def test_in_userns(tmp_path):
    init = tmp_path / "init"
    init.write_text("         0          0 4294967295\n")
    inner = tmp_path / "inner"
    inner.write_text("         0       1000          1\n")
    assert not rootless.in_userns(str(init))
    assert rootless.in_userns(str(inner))


def _m(c, h, s):
    return IdMapping(containerID=c, hostID=h, size=s)


def test_gid_helper_needed_beyond_own_gid():
    assert not rootless.needs_gid_helper([_m(0, 1000, 1)], egid=1000)
    assert rootless.needs_gid_helper([_m(0, 1000, 1), _m(1, 100000, 65536)], egid=1000)
    assert rootless.needs_gid_helper([_m(0, 1000, 2)], egid=1000)
    assert rootless.needs_gid_helper([_m(0, 0, 1)], egid=1000)


def test_prepare_xdg_root_makes_and_repairs_01700(tmp_path):
    import os

    root = tmp_path / "xdg" / "ocirun"
    rootless.prepare_xdg_root(str(root))
    assert os.stat(root).st_mode & 0o7777 == 0o1700
    os.chmod(root, 0o755)
    rootless.prepare_xdg_root(str(root))
    assert os.stat(root).st_mode & 0o7777 == 0o1700


def test_prepare_xdg_root_error_names_xdg(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OciError, match=r"the path in \$XDG_RUNTIME_DIR must be writable by the user: mkdir .*/file/ocirun"):
        rootless.prepare_xdg_root(str(blocker / "ocirun"))
