"""linux.intelRdt against a fake resctrl tree (tmp_path): exact file contents, groups made and removed.

The fake tree has what resctrl shows: ``info/<RESOURCE>`` directories, ``info/last_cmd_status``,
a root ``schemata`` and ``tasks``, pre-configured groups.  Only rmdir differs: resctrl (kernfs)
removes a group's control files with it, so :func:`remove` is given an rmdir that does the same.
"""
import os
import shutil

import pytest

from ocirun import intelrdt
from ocirun.errors import ConfigError

kernfs_rmdir = shutil.rmtree  # resctrl's rmdir: the directory goes with the files the kernel made in it


@pytest.fixture
def resctrl(tmp_path):
    root = tmp_path / "resctrl"
    for d in ("info/L3", "info/MB", "info/L2", "info/L3_MON", "mon_groups"):
        (root / d).mkdir(parents=True)
    (root / "info" / "last_cmd_status").write_text("ok\n")
    (root / "schemata").write_text("    L3:0=7ff;1=7ff\n    MB:0=100;1=100\n")
    (root / "tasks").write_text("")
    shared = root / "shared"
    shared.mkdir()
    (shared / "schemata").write_text("    L3:0=07f0;1=1f\n    MB:0= 20;1= 70\n")
    (shared / "tasks").write_text("")
    (shared / "mon_groups").mkdir()
    return str(root)


def read(path):
    with open(path) as f:
        return f.read()


def test_without_closid_the_container_id_group_is_made_and_removed(resctrl):
    cfg = {"l3CacheSchema": "L3:0=f;1=f0", "memBwSchema": "MB:0=20;1=70", "schemata": ["L2:0=3"]}
    assert intelrdt.check(cfg, resctrl) == resctrl
    rec = intelrdt.apply(cfg, "c1", 4242, resctrl)
    group = os.path.join(resctrl, "c1")
    assert rec == {"root": resctrl, "path": group, "made": True, "remove": True, "mon": None}
    # l3CacheSchema first, memBwSchema next, schemata last: one write
    assert read(f"{group}/schemata") == "L3:0=f;1=f0\nMB:0=20;1=70\nL2:0=3\n"
    assert read(f"{group}/tasks") == "4242"
    intelrdt.remove(rec, rmdir=kernfs_rmdir)
    assert not os.path.exists(group)
    assert read(f"{resctrl}/schemata").startswith("    L3:0=7ff")  # the root group untouched


def test_closid_given_with_schemata_is_created_but_never_removed(resctrl):
    cfg = {"closID": "guaranteed_group", "schemata": ["L3:0=7f0;1=1f", "MB:0=20;1=70"]}
    intelrdt.check(cfg, resctrl)
    rec = intelrdt.apply(cfg, "c2", 77, resctrl)
    group = os.path.join(resctrl, "guaranteed_group")
    assert read(f"{group}/schemata") == "L3:0=7f0;1=1f\nMB:0=20;1=70\n"
    assert read(f"{group}/tasks") == "77"
    assert rec["made"] and not rec["remove"]
    intelrdt.remove(rec, rmdir=kernfs_rmdir)
    assert os.path.isdir(group)


def test_preconfigured_closid_without_schemata_is_joined_and_its_schemata_not_written(resctrl):
    cfg = {"closID": "shared"}
    intelrdt.check(cfg, resctrl)
    before = read(f"{resctrl}/shared/schemata")
    rec = intelrdt.apply(cfg, "c3", 99, resctrl)
    assert read(f"{resctrl}/shared/tasks") == "99"
    assert read(f"{resctrl}/shared/schemata") == before
    assert rec == {"root": resctrl, "path": f"{resctrl}/shared", "made": False, "remove": False, "mon": None}


def test_closid_without_schemata_must_exist(resctrl):
    with pytest.raises(ConfigError, match=r"^config.json: linux.intelRdt.closID: .*/nope does not exist"):
        intelrdt.check({"closID": "nope"}, resctrl)
    assert not os.path.exists(f"{resctrl}/nope")


def test_existing_closid_must_match_l3_and_mb(resctrl):
    # leading zeros and spaces as the kernel prints them do not matter
    intelrdt.check({"closID": "shared", "l3CacheSchema": "L3:0=7F0;1=01f", "memBwSchema": "MB:1=70"}, resctrl)
    with pytest.raises(ConfigError, match=r"linux.intelRdt.l3CacheSchema: 'L3:0=ff' does not match .*L3:0=07f0"):
        intelrdt.check({"closID": "shared", "l3CacheSchema": "L3:0=ff"}, resctrl)
    with pytest.raises(ConfigError, match=r"linux.intelRdt.memBwSchema: 'MB:0=30' does not match"):
        intelrdt.check({"closID": "shared", "memBwSchema": "MB:0=30"}, resctrl)


def test_closid_slash_is_the_root_group(resctrl):
    rec = intelrdt.apply({"closID": "/"}, "c4", 5, resctrl)
    assert rec["path"] == resctrl and not rec["made"] and not rec["remove"]
    assert read(f"{resctrl}/tasks") == "5"


def test_monitoring_group_is_named_after_the_container_and_removed(resctrl):
    cfg = {"closID": "shared", "enableMonitoring": True}
    intelrdt.check(cfg, resctrl)
    rec = intelrdt.apply(cfg, "c5", 1234, resctrl)
    mon = f"{resctrl}/shared/mon_groups/c5"
    assert rec["mon"] == mon
    assert read(f"{mon}/tasks") == "1234"
    assert read(f"{resctrl}/shared/tasks") == "1234"
    intelrdt.add_task(rec, 1300)  # `ocirun exec`
    assert read(f"{mon}/tasks") == "1300" and read(f"{resctrl}/shared/tasks") == "1300"
    intelrdt.remove(rec, rmdir=kernfs_rmdir)
    assert not os.path.exists(mon)
    assert os.path.isdir(f"{resctrl}/shared")  # closID given: the group stays


def test_monitoring_group_that_exists_is_an_error(resctrl):
    os.makedirs(f"{resctrl}/shared/mon_groups/c6")
    with pytest.raises(intelrdt.ResctrlError, match="MON group .*/shared/mon_groups/c6 already exists"):
        intelrdt.apply({"closID": "shared", "enableMonitoring": True}, "c6", 1, resctrl, rmdir=kernfs_rmdir)


def test_failure_after_the_group_was_made_removes_it(resctrl):
    """A new group in the fake tree has no mon_groups/ (the kernel would make one): the MON group
    cannot be created, and apply undoes the group it made, closID or not."""
    with pytest.raises(intelrdt.ResctrlError, match=r"^linux.intelRdt.enableMonitoring: create .*/newgroup/"
                                                    r"mon_groups/c7: No such file or directory$"):
        intelrdt.apply({"closID": "newgroup", "schemata": ["L3:0=1"], "enableMonitoring": True}, "c7", 1, resctrl,
                       rmdir=kernfs_rmdir)
    assert not os.path.exists(f"{resctrl}/newgroup")


def test_real_write_failure_names_file_and_status(resctrl):
    os.makedirs(f"{resctrl}/c8/tasks")  # a directory where the kernel's file would be: the write fails
    with open(f"{resctrl}/info/last_cmd_status", "w") as f:
        f.write("Can't move task 1 to group\n")
    with pytest.raises(intelrdt.ResctrlError,
                       match=r"^linux.intelRdt: write '1' to .*/c8/tasks: Is a directory "
                             r"\(last_cmd_status: Can't move task 1 to group\)$"):
        intelrdt.apply({}, "c8", 1, resctrl)
    assert os.path.isdir(f"{resctrl}/c8")  # it existed before: not ours to remove


@pytest.mark.parametrize("cfg,field,why", [
    ({"closID": ".."}, "closID", "is not \"/\" or a single directory name"),
    ({"closID": "a/b"}, "closID", "single directory name"),
    ({"memBwSchema": "L3:0=1"}, "memBwSchema", "must start with 'MB:'"),
    ({"schemata": ["L3:0=1\nMB:0=2"]}, r"schemata\[0\]", "must be one line"),
    ({"schemata": ["L3"]}, r"schemata\[0\]", "is not RESOURCE:ID=VALUE"),
    ({"schemata": ["SMBA:0=1"]}, r"schemata\[0\]", "resource SMBA is not available .*info/ has: L2, L3, MB"),
])
def test_check_refuses_with_the_field(resctrl, cfg, field, why):
    with pytest.raises(ConfigError, match=f"^config.json: linux.intelRdt.{field}: .*{why}"):
        intelrdt.check(cfg, resctrl)


def test_monitoring_needs_a_mon_resource(resctrl):
    shutil.rmtree(f"{resctrl}/info/L3_MON")
    with pytest.raises(ConfigError, match="linux.intelRdt.enableMonitoring: resctrl monitoring is not available"):
        intelrdt.check({"enableMonitoring": True}, resctrl)


def test_find_root_reads_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    fs = tmp_path / "filesystems"
    fs.write_text("nodev\tsysfs\nnodev\tresctrl\n")
    mi.write_text("22 1 0:21 / /sys rw - sysfs sysfs rw\n"
                  "40 22 0:35 / /mnt/my\\040rdt rw,relatime shared:9 - resctrl resctrl rw\n")
    assert intelrdt.find_root(str(mi), str(fs)) == "/mnt/my rdt"
    mi.write_text("22 1 0:21 / /sys rw - sysfs sysfs rw\n")
    with pytest.raises(ConfigError, match=r"^config.json: linux.intelRdt: no resctrl filesystem is mounted "
                                          r"\(mount it with: mount -t resctrl resctrl /sys/fs/resctrl\)$"):
        intelrdt.find_root(str(mi), str(fs))
    fs.write_text("nodev\tsysfs\n")
    with pytest.raises(ConfigError, match="this kernel has no resctrl filesystem"):
        intelrdt.find_root(str(mi), str(fs))


def test_parse_schemata():
    assert intelrdt.parse_schemata("    L3:0=7f0;1=1f\n    MB:0= 20;1= 70\n") == {
        "L3": {"0": "7f0", "1": "1f"}, "MB": {"0": "20", "1": "70"}}


def test_update_schemata_joins_and_writes_l3_then_mb(resctrl):
    """`ocirun update --l3-cache-schema/--mem-bw-schema` on a container created without intelRdt."""
    rec = intelrdt.update_schemata(None, "c9", 321, "L3:0=3", "MB:0=50", root=resctrl)
    assert rec["path"] == f"{resctrl}/c9" and rec["remove"]
    assert read(f"{resctrl}/c9/tasks") == "321"
    assert read(f"{resctrl}/c9/schemata") == "L3:0=3\nMB:0=50\n"
    rec2 = intelrdt.update_schemata(rec, "c9", 321, None, "MB:0=70", root=resctrl)
    assert rec2 is rec and read(f"{resctrl}/c9/schemata") == "MB:0=70\n"


def test_update_schemata_refusals(resctrl):
    shutil.rmtree(f"{resctrl}/info/MB")
    with pytest.raises(intelrdt.ResctrlError, match=r"^Intel RDT/MBA: memory bandwidth schema is not enabled"):
        intelrdt.update_schemata(None, "c10", 1, None, "MB:0=50", root=resctrl)
    with pytest.raises(intelrdt.ResctrlError, match=r"^Intel RDT/CAT: l3 cache schema: must be one line"):
        intelrdt.update_schemata(None, "c10", 1, "L3:0=1\nL3:1=1", None, root=resctrl)
    assert not os.path.exists(f"{resctrl}/c10")


def test_own_root_is_looked_up_once_per_process(monkeypatch):
    """create asks at validation and again when it makes the group: one mountinfo read serves both."""
    from types import SimpleNamespace

    from ocirun import intelrdt as R
    calls = []

    def read(path, fstypes):
        calls.append(path)
        return [SimpleNamespace(mountpoint="/sys/fs/resctrl")]
    monkeypatch.setattr(R._mountinfo, "read", read)
    monkeypatch.setattr(R, "_own_root", [])
    assert R.find_root() == R.find_root() == "/sys/fs/resctrl"
    assert calls == ["/proc/self/mountinfo"]
    R.find_root("/other/mountinfo")      # an explicit table (tests, other namespaces) is always read
    assert calls == ["/proc/self/mountinfo", "/other/mountinfo"]
