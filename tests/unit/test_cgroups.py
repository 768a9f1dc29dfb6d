"""cgroups: mode detection, cgroupsPath semantics, lifecycle and every v1 resource on a fake tree."""
from __future__ import annotations

import json
import logging
import os

import pytest

from ocirun import cgroups
from ocirun.cgroups import paths as P
from ocirun.errors import CgroupError

from .test_cgroups_helpers import FakeHost, content, touch


# ---- detection ------------------------------------------------------------------------------------------
def test_detect_v1(tmp_path):
    h = FakeHost(tmp_path, "v1")
    lay = P.detect(h.root, h.mountinfo)
    assert lay.mode == "v1" and lay.v2 is None
    assert lay.v1["cpu"].mountpoint == lay.v1["cpuacct"].mountpoint == f"{h.root}/cpu,cpuacct"
    assert lay.v1["name=systemd"].mountpoint == f"{h.root}/systemd"
    assert "rw" not in lay.v1 and "nosuid" not in lay.v1
    assert cgroups.detect_mode(h.root, h.mountinfo) == "v1"


def test_detect_hybrid_and_unified(tmp_path):
    h = FakeHost(tmp_path / "a", "hybrid")
    assert cgroups.detect_mode(h.root, h.mountinfo) == "hybrid"
    h2 = FakeHost(tmp_path / "b", "unified")
    lay = P.detect(h2.root, h2.mountinfo)
    assert lay.mode == "unified" and lay.v2.mountpoint == h2.root and not lay.v1


def test_detect_last_mount_on_root_wins(tmp_path):
    h = FakeHost(tmp_path, "v1")
    with open(h.mountinfo, "a") as f:
        f.write(f"99 1 0:99 / {h.root} rw - cgroup2 cgroup2 rw\n")
    assert cgroups.detect_mode(h.root, h.mountinfo) == "unified"


def test_detect_nothing_mounted(tmp_path):
    mi = tmp_path / "mi"
    mi.write_text("1 0 0:1 / / rw - ext4 /dev/vda rw\n")
    with pytest.raises(CgroupError, match="no cgroup filesystem mounted"):
        P.detect(str(tmp_path / "cg"), str(mi))


def test_parse_mountinfo_escapes_and_options():
    text = ("41 31 0:38 / /sys/fs/cgroup/with\\040space rw,relatime - cgroup cgroup rw,nosuid,cpu,cpuacct,clone_children\n"
            "42 31 0:39 /sub /x rw - cgroup cgroup rw,name=systemd,release_agent=/bin/x\n")
    ms = P.parse_mountinfo(text)
    assert ms[0].mountpoint == "/sys/fs/cgroup/with space" and ms[0].controllers == ["cpu", "cpuacct"]
    assert ms[1].root == "/sub" and ms[1].controllers == ["name=systemd"]


# ---- cgroupsPath ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("given,want", [
    (None, "/ocirun/c1"), ("", "/ocirun/c1"), ("/a/b", "/a/b"), ("/a/../../b", "/b"), ("a/b", "a/b"),
    ("a/../../../x", "x"), ("//a//b/", "/a/b"), ("./a", "a"),
])
def test_inner_path(given, want):
    assert P.inner_path(given, "c1") == want


@pytest.mark.parametrize("bad", ["/", "/..", ".", "a/..", "a\0b"])
def test_inner_path_refuses_root_and_nul(bad):
    with pytest.raises(CgroupError, match="invalid cgroupsPath"):
        P.inner_path(bad, "c1")


def test_absolute_path_in_every_hierarchy(tmp_path):
    h = FakeHost(tmp_path, "hybrid", own={"memory": "/elsewhere"})
    m = cgroups.for_container("/pod/c1", "c1", **h.kw())
    assert m.mode == "hybrid"
    assert m.paths["memory"] == f"{h.root}/memory/pod/c1"
    assert m.paths["cpu"] == m.paths["cpuacct"] == f"{h.root}/cpu,cpuacct/pod/c1"
    assert m.paths["name=systemd"] == f"{h.root}/systemd/pod/c1"
    assert m.paths[""] == f"{h.root}/unified/pod/c1"


def test_default_path(tmp_path):
    h = FakeHost(tmp_path, "v1")
    m = cgroups.for_container(None, "abc", **h.kw())
    assert m.inner == "/ocirun/abc" and m.paths["pids"] == f"{h.root}/pids/ocirun/abc"


def test_relative_path_v1_is_under_own_cgroup_per_hierarchy(tmp_path):
    # runc's subsysPath: GetOwnCgroupPath(subsystem) + inner; a mount of a sub-tree (cgroup ns) is honoured
    h = FakeHost(tmp_path, "v1", own={"memory": "/user/me", "pids": "/user/me/x", "cpu,cpuacct": "/ns/inner"},
                 mount_roots={"cpu,cpuacct": "/ns"})
    m = cgroups.for_container("c/d", "c1", **h.kw())
    assert m.paths["memory"] == f"{h.root}/memory/user/me/c/d"
    assert m.paths["pids"] == f"{h.root}/pids/user/me/x/c/d"
    assert m.paths["cpu"] == f"{h.root}/cpu,cpuacct/inner/c/d"
    assert m.paths["devices"] == f"{h.root}/devices/c/d"


def test_relative_path_v2_is_under_parent_of_own_cgroup(tmp_path):
    h = FakeHost(tmp_path, "unified", own={"": "/user.slice/session-1.scope"})
    m = cgroups.for_container("ctr", "c1", **h.kw())
    assert m.path == f"{h.root}/user.slice/ctr"
    m = cgroups.for_container("/ctr", "c1", **h.kw())
    assert m.path == f"{h.root}/ctr"


def test_systemd_driver(tmp_path):
    h = FakeHost(tmp_path, "v1")
    with pytest.raises(CgroupError, match="slice:prefix:name"):
        cgroups.for_container("/not/systemd", "c1", systemd=True, **h.kw())
    with pytest.raises(CgroupError, match="systemd is not running|not implemented"):
        cgroups.for_container("system.slice:docker:c1", "c1", systemd=True, **h.kw())
    assert P.parse_systemd_path(None, "c1") == ("system.slice", "ocirun", "c1")
    assert P.parse_systemd_path(":p:n", "c1") == ("system.slice", "p", "n")


# ---- create / destroy -----------------------------------------------------------------------------------
def test_create_and_destroy_only_what_we_made(tmp_path):
    h = FakeHost(tmp_path, "hybrid")
    os.makedirs(f"{h.root}/memory/pod")          # exists before: must survive destroy
    keep = f"{h.root}/memory/pod/other"
    os.makedirs(keep)
    m = cgroups.for_container("/pod/c1", "c1", **h.kw())
    m.create()
    assert f"{h.root}/memory/pod" not in m.created
    assert f"{h.root}/pids/pod" in m.created and f"{h.root}/pids/pod/c1" in m.created
    assert f"{h.root}/unified/pod/c1" in m.created
    os.makedirs(f"{h.root}/pids/pod/c1/sub/deeper")   # the container made its own sub-cgroups
    m.create()                                         # idempotent, records nothing twice
    assert len(m.created) == len(set(m.created))
    m2 = cgroups.from_state(json.loads(json.dumps(m.to_state())))
    m2.destroy()
    assert os.path.isdir(keep) and os.path.isdir(f"{h.root}/memory/pod")
    assert not os.path.exists(f"{h.root}/pids/pod") and not os.path.exists(f"{h.root}/unified/pod")
    assert not os.path.exists(f"{h.root}/memory/pod/c1")
    assert m2.created == []


def test_destroy_keeps_shared_parent_in_use(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"])
    a = cgroups.for_container("/shared/a", "a", **h.kw())
    a.create()
    os.makedirs(f"{h.root}/pids/shared/b")           # another container appears under the same parent
    a.destroy()
    assert os.path.isdir(f"{h.root}/pids/shared/b") and not os.path.exists(f"{h.root}/pids/shared/a")


def test_cpuset_new_dirs_copy_parent(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=["cpuset"])
    mp = f"{h.root}/cpuset"
    touch(mp, {"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"})
    touch(f"{mp}/p", {"cpuset.cpus": "", "cpuset.mems": ""})
    touch(f"{mp}/p/c", {"cpuset.cpus": "", "cpuset.mems": ""})
    m = cgroups.for_container("/p/c", "c", **h.kw())
    m.journal = []
    m.create()
    assert m.journal == [(f"{mp}/p/cpuset.cpus", "0-3"), (f"{mp}/p/cpuset.mems", "0"),
                         (f"{mp}/p/c/cpuset.cpus", "0-3"), (f"{mp}/p/c/cpuset.mems", "0")]


def test_add_pid_joins_every_hierarchy_once(tmp_path):
    h = FakeHost(tmp_path, "hybrid", hierarchies=["cpu,cpuacct", "pids"])
    m = cgroups.for_container("/c", "c", **h.kw())
    m.create()
    for d in set(m.paths.values()):
        touch(d, ["cgroup.procs"])
    m.journal = []
    m.add_pid(1234)
    assert sorted(p for p, _ in m.journal) == sorted([f"{h.root}/cpu,cpuacct/c/cgroup.procs",
                                                      f"{h.root}/pids/c/cgroup.procs",
                                                      f"{h.root}/unified/c/cgroup.procs"])
    assert content(f"{h.root}/pids/c", "cgroup.procs") == "1234"


def test_pids_recursive(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"])
    m = cgroups.for_container("/c", "c", **h.kw())
    m.create()
    touch(m.path, {"cgroup.procs": "10\n12\n"})
    touch(m.path + "/sub", {"cgroup.procs": "11\n10\n"})
    assert m.pids() == [10, 11, 12]


# ---- v1 resources ---------------------------------------------------------------------------------------
V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "",
               "memory.soft_limit_in_bytes": "", "memory.swappiness": "", "memory.oom_control": "",
               "memory.kmem.tcp.limit_in_bytes": "", "memory.use_hierarchy": "", "memory.usage_in_bytes": "5\n",
               "memory.max_usage_in_bytes": "7\n"},
    "cpu,cpuacct": {"cpu.shares": "", "cpu.cfs_period_us": "", "cpu.cfs_quota_us": "", "cpu.cfs_burst_us": "",
                    "cpu.rt_period_us": "", "cpu.rt_runtime_us": "", "cpu.idle": ""},
    "cpuset": {"cpuset.cpus": "0\n", "cpuset.mems": "0\n"},
    "pids": {"pids.max": ""},
    "blkio": {"blkio.weight": "", "blkio.weight_device": "", "blkio.leaf_weight": "",
              "blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": ""},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "", "hugetlb.2MB.rsvd.limit_in_bytes": "",
                "hugetlb.1GB.limit_in_bytes": ""},
    "net_cls,net_prio": {"net_cls.classid": "", "net_prio.ifpriomap": ""},
    "rdma": {"rdma.max": ""},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED\n"},
}


@pytest.fixture
def v1(tmp_path):
    h = FakeHost(tmp_path, "v1")
    m = cgroups.for_container("/c", "c", **h.kw())
    m.create()
    for hier, files in V1_FILES.items():
        touch(f"{h.root}/{hier}/c", files)
    m.journal = []
    m.host = h
    return m


def W(m, ctrl, name, value):
    return (f"{m.paths[ctrl]}/{name}", value)


def test_v1_memory_all_fields(v1, caplog):
    with caplog.at_level(logging.WARNING, logger="ocirun.cgroups"):
        v1.apply({"memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824, "kernel": 1 << 20,
                             "kernelTCP": 1 << 19, "swappiness": 0, "disableOOMKiller": True,
                             "useHierarchy": True, "checkBeforeUpdate": True}})
    assert v1.journal == [
        W(v1, "memory", "memory.limit_in_bytes", "536870912"),          # current limit above new memsw:
        W(v1, "memory", "memory.memsw.limit_in_bytes", "1073741824"),   # limit first
        W(v1, "memory", "memory.soft_limit_in_bytes", "268435456"),
        W(v1, "memory", "memory.kmem.tcp.limit_in_bytes", "524288"),
        W(v1, "memory", "memory.oom_control", "1"),
        W(v1, "memory", "memory.swappiness", "0"),
        W(v1, "memory", "memory.use_hierarchy", "1"),
    ]
    assert "memory.kernel" in caplog.text
    assert content(v1.paths["memory"], "memory.limit_in_bytes") == "536870912"


def test_v1_memory_lowering_writes_limit_first(v1):
    touch(v1.paths["memory"], {"memory.limit_in_bytes": "1073741824\n"})
    v1.apply({"memory": {"limit": 104857600, "swap": 209715200}})
    assert [n for n, _ in v1.journal] == [f"{v1.paths['memory']}/memory.limit_in_bytes",
                                          f"{v1.paths['memory']}/memory.memsw.limit_in_bytes"]


def test_v1_memory_unlimited_sets_swap_unlimited(v1):
    v1.apply({"memory": {"limit": -1}})
    assert v1.journal == [W(v1, "memory", "memory.memsw.limit_in_bytes", "-1"),
                          W(v1, "memory", "memory.limit_in_bytes", "-1")]


def test_v1_memory_errors(v1):
    with pytest.raises(CgroupError, match="swappiness value: 101"):
        v1.apply({"memory": {"swappiness": 101}})
    os.unlink(f"{v1.paths['memory']}/memory.memsw.limit_in_bytes")
    with pytest.raises(CgroupError, match="swap accounting is not enabled"):
        v1.apply({"memory": {"limit": 100, "swap": 200}})
    v1.journal.clear()
    v1.apply({"memory": {"limit": -1, "swappiness": -1}})     # no memsw: swap left alone; -1 = inherit
    assert v1.journal == [W(v1, "memory", "memory.limit_in_bytes", "-1")]


def test_v1_write_error_names_file_and_value(v1):
    f = f"{v1.paths['memory']}/memory.limit_in_bytes"
    os.unlink(f)
    os.symlink("/dev/full", f)
    with pytest.raises(CgroupError) as ei:
        v1.apply({"memory": {"limit": 100}})
    assert str(ei.value).startswith(f'write {f}: "100": No space left on device')


def test_v1_cpu_all_fields(v1):
    v1.apply({"cpu": {"shares": 1024, "quota": 50000, "burst": 10000, "period": 100000, "realtimeRuntime": 9500,
                      "realtimePeriod": 100000, "cpus": "0-1", "mems": "0", "idle": 0}})
    assert v1.journal == [
        W(v1, "cpuset", "cpuset.cpus", "0-1"), W(v1, "cpuset", "cpuset.mems", "0"),
        W(v1, "cpu", "cpu.shares", "1024"), W(v1, "cpu", "cpu.cfs_period_us", "100000"),
        W(v1, "cpu", "cpu.cfs_burst_us", "10000"), W(v1, "cpu", "cpu.cfs_quota_us", "50000"),
        W(v1, "cpu", "cpu.rt_period_us", "100000"), W(v1, "cpu", "cpu.rt_runtime_us", "9500"),
        W(v1, "cpu", "cpu.idle", "0"),
    ]


def test_v1_cpu_burst_over_quota_refused(v1):
    with pytest.raises(CgroupError, match="burst"):
        v1.apply({"cpu": {"quota": 1000, "burst": 2000}})


def test_v1_pids(v1):
    v1.apply({"pids": {"limit": 0}})
    v1.apply({"pids": {"limit": -1}})
    v1.apply({"pids": {"limit": 32771}})
    v1.update({"pids": {"limit": 0}})                      # update: zero = unchanged
    assert v1.journal == [W(v1, "pids", "pids.max", v) for v in ("0", "max", "32771")]


def test_v1_blkio_all_fields(v1):
    v1.apply({"blockIO": {"weight": 10, "leafWeight": 10,
                          "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                                           {"major": 8, "minor": 16, "weight": 500}],
                          "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                          "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 700}],
                          "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}],
                          "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]}})
    assert v1.journal == [
        W(v1, "blkio", "blkio.weight", "10"), W(v1, "blkio", "blkio.leaf_weight", "10"),
        W(v1, "blkio", "blkio.weight_device", "8:0 500"), W(v1, "blkio", "blkio.leaf_weight_device", "8:0 300"),
        W(v1, "blkio", "blkio.weight_device", "8:16 500"),
        W(v1, "blkio", "blkio.throttle.read_bps_device", "8:0 600"),
        W(v1, "blkio", "blkio.throttle.write_bps_device", "8:0 700"),
        W(v1, "blkio", "blkio.throttle.read_iops_device", "8:16 200"),
        W(v1, "blkio", "blkio.throttle.write_iops_device", "8:16 300"),
    ]


def test_v1_blkio_bfq_and_missing(v1):
    d = v1.paths["blkio"]
    for f in ("blkio.weight", "blkio.weight_device", "blkio.leaf_weight"):
        os.unlink(f"{d}/{f}")
    touch(d, ["blkio.bfq.weight", "blkio.bfq.weight_device"])
    v1.apply({"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}})
    assert v1.journal == [W(v1, "blkio", "blkio.bfq.weight", "300"),
                          W(v1, "blkio", "blkio.bfq.weight_device", "8:0 100")]
    with pytest.raises(CgroupError, match="leaf weight"):
        v1.apply({"blockIO": {"leafWeight": 10}})
    for f in ("blkio.bfq.weight", "blkio.bfq.weight_device"):
        os.unlink(f"{d}/{f}")
    with pytest.raises(CgroupError, match="cannot set blkio weight"):
        v1.apply({"blockIO": {"weight": 300}})
    v1.journal.clear()
    v1.apply({"blockIO": {"weight": 0}})       # zero = unset: nothing to do, no error
    assert v1.journal == []


def test_v1_hugetlb(v1):
    v1.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "1GB", "limit": 0},
                                 {"pageSize": "2048KB", "limit": 4194304}]})
    assert v1.journal == [
        W(v1, "hugetlb", "hugetlb.2MB.limit_in_bytes", "209715200"),
        W(v1, "hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", "209715200"),
        W(v1, "hugetlb", "hugetlb.1GB.limit_in_bytes", "0"),
        W(v1, "hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
        W(v1, "hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
    ]
    with pytest.raises(CgroupError, match="64KB is not supported"):
        v1.apply({"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]})
    with pytest.raises(CgroupError, match="invalid hugepage size"):
        v1.apply({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]})


def test_v1_network_and_rdma(v1):
    v1.apply({"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500},
                                                             {"name": "eth1", "priority": 1000}]},
              "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}}})
    assert v1.journal == [
        W(v1, "net_cls", "net_cls.classid", "1048577"),
        W(v1, "net_prio", "net_prio.ifpriomap", "eth0 500"), W(v1, "net_prio", "net_prio.ifpriomap", "eth1 1000"),
        W(v1, "rdma", "rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
        W(v1, "rdma", "rdma.max", "mlx4_0 hca_object=1000"),
    ]


def test_v1_unified_refused(v1):
    with pytest.raises(CgroupError, match="cannot use unified on cgroup v1"):
        v1.apply({"unified": {"memory.high": "1"}})


def test_v1_missing_controller(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"])
    m = cgroups.for_container("/c", "c", **h.kw())
    with pytest.raises(CgroupError, match="cannot set memory limit: the memory cgroup controller is not mounted"):
        m.apply({"memory": {"limit": 1 << 20}})
    m.apply({"memory": {"limit": 0}, "cpu": {"shares": 0}})    # nothing asked: no error


def test_v1_devices_from_fresh_cgroup(v1):
    v1.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                          {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
                          {"allow": True, "type": "c", "access": "m"}]})
    assert v1.journal == [W(v1, "devices", "devices.deny", "a *:* rwm"),
                          W(v1, "devices", "devices.allow", "c 10:229 rw"),
                          W(v1, "devices", "devices.allow", "b 8:0 r"),
                          W(v1, "devices", "devices.allow", "c *:* m")]


def test_v1_devices_update_writes_only_the_difference(v1):
    touch(v1.paths["devices"], {"devices.list": "c 1:3 rwm\nc 10:229 rw\nc *:* m\n"})
    v1.update({"devices": [{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"},
                           {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rw"},
                           {"allow": True, "type": "c", "access": "m"}]})
    assert v1.journal == [W(v1, "devices", "devices.deny", "c 10:229 w"),
                          W(v1, "devices", "devices.allow", "c 5:1 rw")]


def test_v1_devices_default_allow(v1):
    v1.apply({"devices": [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1,
                                                             "minor": 3, "access": "w"}]})
    assert v1.journal == [W(v1, "devices", "devices.allow", "a *:* rwm"),
                          W(v1, "devices", "devices.deny", "c 1:3 w")]


def test_v1_docker_update(v1):
    touch(v1.paths["memory"], {"memory.limit_in_bytes": "67108864\n"})
    v1.update({"memory": {"limit": 134217728, "reservation": 0, "swap": 268435456, "kernel": 0},
               "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}})
    assert v1.journal == [W(v1, "memory", "memory.memsw.limit_in_bytes", "268435456"),
                          W(v1, "memory", "memory.limit_in_bytes", "134217728")]


def test_v1_freeze_thaw(v1):
    v1.freeze()
    assert v1.is_frozen() and content(v1.paths["freezer"], "freezer.state") == "FROZEN"
    v1.thaw()
    assert not v1.is_frozen()


def test_v1_freeze_timeout_thaws_again(v1, monkeypatch):
    real = v1.write

    def stuck(d, name, value):
        real(d, name, value)
        if value == "FROZEN":
            touch(d, {"freezer.state": "FREEZING\n"})
    monkeypatch.setattr(v1, "write", stuck)
    with pytest.raises(CgroupError, match="unable to freeze"):
        v1.freeze(timeout=0.05)
    assert content(v1.paths["freezer"], "freezer.state") == "THAWED"


def test_v1_kill_all_freezes_signals_thaws(v1, monkeypatch):
    """Signalled while frozen, through ocirun.kernel.process.signal_listed (each pid by pidfd, if the
    cgroup still lists it once the pidfd is open: tests/unit/test_teardown.py)."""
    from ocirun.kernel import process

    touch(v1.paths["pids"], {"cgroup.procs": "111\n222\n"})
    sent = []

    def signal_listed(pids, sig, listed):
        assert listed() == pids  # the cgroup's list, read again
        sent.extend((pid, sig, content(v1.paths["freezer"], "freezer.state")) for pid in pids)

    monkeypatch.setattr(process, "signal_listed", signal_listed)
    v1.kill_all(15)
    assert sent == [(111, 15, "FROZEN"), (222, 15, "FROZEN")]
    assert content(v1.paths["freezer"], "freezer.state") == "THAWED"


def test_v1_stats(v1):
    d = v1.paths
    touch(d["cpuacct"], {"cpuacct.usage": "5000\n", "cpuacct.usage_percpu": "3000 2000 \n",
                         "cpuacct.usage_percpu_sys": "1000 0\n", "cpuacct.usage_percpu_user": "2000 2000\n",
                         "cpuacct.stat": "user 2\nsystem 1\n", "cpu.stat": "nr_periods 4\nnr_throttled 1\n"
                                                                           "throttled_time 99\n"})
    touch(d["memory"], {"memory.stat": "cache 4096\nrss 8192\nswap 0\n", "memory.limit_in_bytes": "1048576\n",
                        "memory.failcnt": "3\n"})
    touch(d["pids"], {"pids.current": "2\n", "pids.max": "max\n"})
    touch(d["blkio"], {"blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 50\nTotal 150\n",
                       "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n"})
    touch(d["hugetlb"], {"hugetlb.2MB.usage_in_bytes": "0\n", "hugetlb.2MB.max_usage_in_bytes": "0\n",
                         "hugetlb.2MB.failcnt": "0\n"})
    s = v1.stats()
    assert s["cpu"]["usage"]["total"] == 5000 and s["cpu"]["usage"]["percpu"] == [3000, 2000]
    assert s["cpu"]["usage"]["user"] == 2 * 10**9 // os.sysconf("SC_CLK_TCK")
    assert s["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 99}
    assert s["memory"]["usage"] == {"limit": 1048576, "usage": 5, "max": 7, "failcnt": 3}
    assert s["memory"]["cache"] == 4096 and s["memory"]["raw"] == {"cache": 4096, "rss": 8192, "swap": 0}
    assert s["pids"] == {"current": 2}
    # runc's BlkioEntry has `minor,omitempty`: minor 0 is left out, as runc prints it
    assert s["blkio"]["ioServiceBytesRecursive"] == [{"major": 8, "op": "Read", "value": 100},
                                                     {"major": 8, "op": "Write", "value": 50}]
    assert s["hugetlb"] == {"2MB": {"failcnt": 0, "usage": 0, "max": 0}}
    json.dumps(s)


def test_v1_state_roundtrip(v1):
    st = json.loads(json.dumps(v1.to_state()))
    assert st["driver"] == "cgroupfs" and st["mode"] == "v1" and st["path"] == "/c"
    m = cgroups.from_state(st)
    assert type(m) is type(v1) and m.paths == v1.paths and m.created == v1.created and m.mounts == v1.mounts
    with pytest.raises(CgroupError):
        cgroups.from_state({"driver": "systemd"})
