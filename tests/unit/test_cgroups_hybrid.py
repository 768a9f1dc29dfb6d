"""Hybrid hosts: resources whose controller exists only in the unified hierarchy, and ``unified`` keys (fake tree)."""
from __future__ import annotations

import pytest

from ocirun import cgroups
from ocirun.errors import CgroupError

from .test_cgroups_helpers import FakeHost, content, touch

# this VM: every controller on v1 except hugetlb, which only the cgroup2 mount at <root>/unified offers
V1 = ["cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "name=systemd"]


@pytest.fixture
def hy(tmp_path):
    h = FakeHost(tmp_path, "hybrid", hierarchies=V1)
    uni = f"{h.root}/unified"
    touch(uni, {"cgroup.controllers": "hugetlb\n", "cgroup.subtree_control": ""})
    m = cgroups.for_container("/pod/c1", "c1", **h.kw())
    m.create()
    touch(f"{uni}/pod", {"cgroup.subtree_control": ""})
    touch(f"{uni}/pod/c1", {"hugetlb.2MB.max": "max\n", "hugetlb.2MB.rsvd.max": "max\n", "hugetlb.1GB.max": "max\n",
                            "cgroup.max.depth": "max\n", "memory.pressure": "", "hugetlb.2MB.current": "4096\n",
                            "hugetlb.2MB.events": "max 2\n"})
    touch(f"{h.root}/pids/pod/c1", ["pids.max"])
    m.journal = []
    return h, m


def test_hugepage_limits_go_to_the_unified_hierarchy(hy):
    h, m = hy
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}], "pids": {"limit": 10}})
    uni = f"{h.root}/unified"
    assert m.journal == [(f"{h.root}/pids/pod/c1/pids.max", "10"),
                         (f"{uni}/cgroup.subtree_control", "+hugetlb"),
                         (f"{uni}/pod/cgroup.subtree_control", "+hugetlb"),
                         (f"{uni}/pod/c1/hugetlb.2MB.max", "4194304"),
                         (f"{uni}/pod/c1/hugetlb.2MB.rsvd.max", "4194304")]
    assert content(f"{uni}/pod/c1", "hugetlb.2MB.max") == "4194304"


def test_hugetlb_stats_read_from_the_unified_hierarchy(hy):
    _, m = hy
    assert m.stats()["hugetlb"] == {"2MB": {"usage": 4096, "max": 0, "failcnt": 2}}


def test_unified_keys_for_v2_controllers_and_core_files(hy):
    h, m = hy
    m.apply({"unified": {"hugetlb.1GB.max": "0", "cgroup.max.depth": "3"}})
    uni = f"{h.root}/unified"
    assert (f"{uni}/pod/c1/hugetlb.1GB.max", "0") in m.journal
    assert content(f"{uni}/pod/c1", "cgroup.max.depth") == "3"


def test_unified_key_of_a_v1_bound_controller_is_refused_naming_it(hy):
    h, m = hy
    with pytest.raises(CgroupError) as e:
        m.apply({"unified": {"memory.max": "1000000"}})
    msg = str(e.value)
    assert "'memory.max'" in msg and f"bound to the cgroup v1 hierarchy {h.root}/memory" in msg
    assert "cgroup.controllers there: hugetlb" in msg
    with pytest.raises(CgroupError, match=r"'io.max'.*bound to the cgroup v1 hierarchy .*/blkio"):
        m.apply({"unified": {"io.max": "8:0 rbps=1"}})
    with pytest.raises(CgroupError, match=r"'frob.x'.*no such controller"):
        m.apply({"unified": {"frob.x": "1"}})
    assert m.journal == []     # checked before anything is written


def test_unified_still_refused_on_pure_v1(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=V1)
    m = cgroups.for_container("/c", "c", **h.kw())
    with pytest.raises(CgroupError, match="cannot use unified on cgroup v1"):
        m.apply({"unified": {"hugetlb.2MB.max": "1"}})


def test_hugepage_limit_with_no_hugetlb_anywhere(tmp_path):
    h = FakeHost(tmp_path, "hybrid", hierarchies=V1)
    touch(f"{h.root}/unified", {"cgroup.controllers": "\n"})
    m = cgroups.for_container("/c", "c", **h.kw())
    m.create()
    with pytest.raises(CgroupError, match="hugetlb cgroup controller is not mounted"):
        m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})


def _controllers_in_order(root: str, journal: list) -> list[str]:
    """The hierarchy each journalled write went to (``unified`` for the cgroup2 mount), repeats folded."""
    out = []
    for path, _ in journal:
        top = path[len(root) + 1:].split("/")[0]
        if not out or out[-1] != top:
            out.append(top)
    return out


def test_v1_resources_are_written_in_runcs_order(tmp_path):
    h = FakeHost(tmp_path, "v1")
    m = cgroups.for_container("/c", "c", **h.kw())
    m.create()
    for ctrl, files in {"cpuset": ["cpuset.cpus", "cpuset.mems"], "devices": ["devices.allow", "devices.deny"],
                        "memory": ["memory.limit_in_bytes"], "cpu,cpuacct": {"cpu.shares": "512\n"},
                        "pids": ["pids.max"], "blkio": ["blkio.weight"], "hugetlb": ["hugetlb.2MB.limit_in_bytes"],
                        "net_cls,net_prio": ["net_cls.classid", "net_prio.ifpriomap"], "rdma": ["rdma.max"]}.items():
        touch(f"{h.root}/{ctrl}/c", files)
    m.journal = []
    # given in another order than written; devices: [] (empty, but present) still resets the rules
    m.apply({"rdma": {"mlx4_0": {"hcaHandles": 2}},
             "network": {"classID": 1, "priorities": [{"name": "lo", "priority": 1}]},
             "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}], "blockIO": {"weight": 100},
             "pids": {"limit": 5}, "cpu": {"shares": 512, "cpus": "0", "mems": "0"}, "memory": {"limit": 1 << 20},
             "devices": []})
    assert _controllers_in_order(h.root, m.journal) == [
        "cpuset", "devices", "memory", "cpu,cpuacct", "pids", "blkio", "hugetlb", "net_cls,net_prio", "rdma"]


def test_hybrid_cpu_split_each_half_routed_on_its_own(tmp_path):
    # cpuset and memory are offered only by the unified mount; cpu stays on v1
    h = FakeHost(tmp_path, "hybrid", hierarchies=["cpu,cpuacct", "devices", "freezer", "blkio", "pids", "name=systemd"])
    uni = f"{h.root}/unified"
    touch(uni, {"cgroup.controllers": "cpuset memory\n", "cgroup.subtree_control": ""})
    m = cgroups.for_container("/c", "c", **h.kw())
    m.create()
    touch(f"{uni}/c", ["cpuset.cpus", "cpuset.mems", "memory.max"])
    touch(f"{h.root}/cpu,cpuacct/c", {"cpu.shares": "512\n"})
    touch(f"{h.root}/pids/c", ["pids.max"])
    m.journal = []
    m.apply({"cpu": {"cpus": "0", "mems": "0", "shares": 512}, "memory": {"limit": 1 << 20}, "pids": {"limit": 5}})
    assert m.journal == [(f"{h.root}/cpu,cpuacct/c/cpu.shares", "512"),
                         (f"{h.root}/pids/c/pids.max", "5"),
                         (f"{uni}/cgroup.subtree_control", "+cpuset"),
                         (f"{uni}/c/cpuset.cpus", "0"),
                         (f"{uni}/c/cpuset.mems", "0"),
                         (f"{uni}/cgroup.subtree_control", "+memory"),
                         (f"{uni}/c/memory.max", "1048576")]
