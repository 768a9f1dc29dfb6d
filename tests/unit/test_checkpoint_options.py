"""The pure parts of checkpoint/restore: flags → CRIU options, page-server addresses, --parent-path,
the org.criu.config annotation, bind destinations resolved in the rootfs.  No root, no CRIU."""
import os

import pytest

from ocirun import checkpoint as ck
from ocirun import criu
from ocirun.cli import COMMANDS, parse_flags
from ocirun.errors import OciError
from ocirun.pathsafe import resolve_in_root


@pytest.mark.parametrize("value, expected", [("0.0.0.0:27277", ("0.0.0.0", 27277)), ("host:1", ("host", 1)),
                                             ("[::1]:80", ("::1", 80)), ("[fe80::1]:65535", ("fe80::1", 65535))])
def test_page_server_addresses(value, expected):
    assert criu.parse_page_server(value) == expected


@pytest.mark.parametrize("value, words", [("27277", "ADDRESS:PORT"), (":1", "ADDRESS:PORT"), ("h:", "ADDRESS:PORT"),
                                          ("::1:80", "ADDRESS:PORT"), ("h:x", "invalid port"),
                                          ("h:0", "invalid port"), ("h:65536", "invalid port")])
def test_page_server_refusals(value, words):
    with pytest.raises(criu.CriuError, match=words):
        criu.parse_page_server(value)


def test_parent_path(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "pre").mkdir()
    (tmp_path / "file").write_text("")
    img = str(tmp_path / "img")
    assert ck.parent_image(img, None) is None
    assert ck.parent_image(img, "../pre") == "../pre"  # kept relative: CRIU opens it from the image dir
    with pytest.raises(OciError, match="--parent-path must be relative"):
        ck.parent_image(img, str(tmp_path / "pre"))
    with pytest.raises(OciError, match="invalid --parent-path: .*: no such file or directory"):
        ck.parent_image(img, "../missing")
    with pytest.raises(OciError, match="invalid --parent-path: .*: not a directory"):
        ck.parent_image(img, "../file")


def test_status_fd_checks(tmp_path):
    r, w = os.pipe()
    try:
        assert ck.status_fd(w) == w
        with pytest.raises(OciError, match="not open for writing"):
            ck.status_fd(r)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OciError, match="invalid --status-fd 9999: bad file descriptor"):
        ck.status_fd(9999)


def test_criu_config_file_from_the_annotation():
    assert ck.criu_config_file({}) == "/etc/criu/runc.conf"  # runc's: a host set up for runc is set up for us
    assert ck.criu_config_file({"org.criu.config": "/x.conf"}) == "/x.conf"
    assert ck.criu_config_file({"org.criu.config": ""}) is None  # empty: no file at all


def test_empty_ns_mask():
    assert ck.empty_ns_mask([]) == 0x40000000  # the network namespace always (the engine's, as runc)
    assert ck.empty_ns_mask(["network"]) == 0x40000000
    with pytest.raises(OciError, match="'pid' is not supported"):
        ck.empty_ns_mask(["pid"])


def test_common_options_carry_the_flags():
    o = ck.CheckpointOptions(auto_dedup=True, lazy_pages=True, shell_job=True, manage_cgroups_mode="soft")
    opts = ck.common_opts(o, 5, None, "dump.log", {"org.criu.config": "/c"})
    assert opts["auto_dedup"] and opts["lazy_pages"] and opts["shell_job"] and opts["config_file"] == "/c"
    assert opts["manage_cgroups_mode"] == criu.CG_MODES["soft"] and opts["empty_ns"] == 0x40000000
    fields = criu.decode(criu.encode_opts({**opts, "ps": criu.page_server("10.0.0.1", 27277),
                                           "parent_img": "../p", "track_mem": True, "status_fd": 7}))
    assert fields[16] == [1] and fields[48] == [1] and fields[51] == [b"/c"] and fields[38] == [0x40000000]
    assert fields[14] == [b"../p"] and fields[15] == [1] and fields[49] == [7]
    assert criu.decode(fields[11][0]) == {1: [b"10.0.0.1"], 2: [27277]}
    with pytest.raises(OciError, match="manage-cgroups-mode"):
        ck.common_opts(ck.CheckpointOptions(manage_cgroups_mode="bogus"), 5, None, "dump.log", {})


def test_cli_flags_reach_the_options():
    table = COMMANDS["checkpoint"]
    flags, args = parse_flags(["--pre-dump", "--parent-path", "../p", "--page-server", "h:1", "--status-fd", "4",
                               "--lazy-pages", "--auto-dedup", "--empty-ns", "network", "--empty-ns", "network",
                               "c1"], table)
    o = ck.options_from_flags(ck.CheckpointOptions, flags, {"criu": "/c"}, pre_dump=True)
    assert args == ["c1"] and o.lazy_pages and o.auto_dedup and o.empty_ns == ["network", "network"]
    assert o.criu == "/c" and flags["parent-path"] == "../p" and flags["status-fd"] == "4"
    flags, _ = parse_flags(["--no-pivot", "--lsm-profile", "apparmor:x", "--lsm-mount-context", "ctx",
                            "--lazy-pages", "--auto-dedup", "--empty-ns", "network", "c1"],
                           COMMANDS["restore"])
    o = ck.options_from_flags(ck.RestoreOptions, flags, {}, no_pivot=True, lsm_profile=flags["lsm-profile"])
    assert o.no_pivot and o.lsm_profile == "apparmor:x" and o.lazy_pages and o.auto_dedup


def test_resolve_in_root_follows_symlinks_inside_the_rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "real" / "conf").mkdir(parents=True)
    os.symlink("/real/conf", root / "conf")  # absolute: read as if the rootfs were /
    os.symlink("../../../../etc", root / "real" / "up")  # cannot climb out
    os.symlink("conf", root / "rel")
    os.symlink("loop", root / "loop")
    assert resolve_in_root(str(root), "/conf") == "/real/conf"
    assert resolve_in_root(str(root), "/conf/sub/x") == "/real/conf/sub/x"  # missing tails kept
    assert resolve_in_root(str(root), "/real/up/passwd") == "/etc/passwd"
    assert resolve_in_root(str(root), "/rel") == "/real/conf"
    assert resolve_in_root(str(root), "/a/../conf") == "/real/conf"
    assert resolve_in_root(str(root), "/plain/dir") == "/plain/dir"
    with pytest.raises(OSError, match="too many levels"):
        resolve_in_root(str(root), "/loop")


def test_external_mounts_use_the_resolved_destination(tmp_path):
    root = tmp_path / "rootfs"
    (root / "real").mkdir(parents=True)
    os.symlink("/real", root / "conf")
    from ocirun.config import Spec
    from ocirun.plan import launch_plan

    raw = {"ociVersion": "1.2.0", "root": {"path": str(root)},
           "mounts": [{"destination": "/conf", "source": "/etc", "options": ["bind"]},
                      {"destination": "/proc", "type": "proc", "source": "proc"}],
           "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}}
    plan = launch_plan(Spec.parse(raw, str(tmp_path)), str(tmp_path), 40)  # what checkpoint reads, kept by create
    assert ck._external_mounts(plan, {"/sys/fs/cgroup/cpu": "/sys/fs/cgroup/cpu/x"}) == [
        "/real", "/dev/fuse", "/sys/fs/cgroup/cpu"]


def test_new_state_dir_claims_and_undoes(tmp_path):
    """create's and restore's claim of an id: taken once, removed on failure unless keep_state."""
    from ocirun.container import NewStateDir
    from ocirun.errors import ContainerExists

    root = str(tmp_path / "root")
    with NewStateDir(root, "c1") as sd:
        assert os.path.isdir(sd.path)
    with pytest.raises(ContainerExists):
        with NewStateDir(root, "c1"):
            pass
    assert os.path.isdir(os.path.join(root, "c1"))  # the other's dir is untouched
    with pytest.raises(RuntimeError):
        with NewStateDir(root, "c2"):
            raise RuntimeError("failed")
    assert not os.path.exists(os.path.join(root, "c2"))
    err = RuntimeError("undo failed")
    err.keep_state = True
    with pytest.raises(RuntimeError):
        with NewStateDir(root, "c3"):
            raise err
    assert os.path.isdir(os.path.join(root, "c3"))
