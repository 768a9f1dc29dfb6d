"""cgroups v2 on a fake tree, the device list model, the eBPF program and the v1↔v2 conversions."""
from __future__ import annotations

import itertools
import json
import logging
import os

import pytest

from ocirun import cgroups
from ocirun.cgroups import convert, devices as D, ebpf as E
from ocirun.errors import CgroupError

from .test_cgroups_helpers import FakeHost, content, touch

V2_FILES = {"cgroup.procs": "", "cgroup.freeze": "0\n", "cgroup.kill": "", "cpu.weight": "", "cpu.max": "max 100000\n",
            "cpu.max.burst": "", "cpu.idle": "", "cpuset.cpus": "", "cpuset.mems": "", "memory.max": "",
            "memory.swap.max": "", "memory.low": "", "memory.current": "1000\n", "pids.max": "", "io.weight": "",
            "io.max": "", "hugetlb.2MB.max": "", "hugetlb.2MB.rsvd.max": "", "rdma.max": "", "memory.high": ""}
CTRLS = "cpuset cpu io memory hugetlb pids rdma misc"


@pytest.fixture
def v2(tmp_path):
    h = FakeHost(tmp_path, "unified")
    touch(h.root, {"cgroup.controllers": CTRLS + "\n", "cgroup.subtree_control": ""})
    touch(h.root + "/pod", {"cgroup.controllers": CTRLS + "\n", "cgroup.subtree_control": "cpu\n"})
    m = cgroups.for_container("/pod/c", "c", **h.kw())
    m.journal = []
    m.create()
    touch(m.path, V2_FILES)
    m.host = h
    return m


def J(m, name, value):
    return (f"{m.path}/{name}", value)


def test_v2_create_enables_controllers_in_ancestors(v2):
    h = v2.host
    assert v2.created == [f"{h.root}/pod/c"]
    assert v2.journal == [(f"{h.root}/cgroup.subtree_control", " ".join("+" + c for c in CTRLS.split())),
                          (f"{h.root}/pod/cgroup.subtree_control",
                           " ".join("+" + c for c in CTRLS.split() if c != "cpu"))]
    for f in V2_FILES:     # a real cgroupfs directory is removable with its control files in it
        os.unlink(f"{v2.path}/{f}")
    v2.destroy()
    assert not os.path.exists(f"{h.root}/pod/c") and os.path.isdir(f"{h.root}/pod")


def test_v2_missing_controller_is_an_error(v2):
    touch(v2.host.root, {"cgroup.controllers": "cpu memory\n"})
    with pytest.raises(CgroupError, match="the pids controller is not available"):
        v2.apply({"pids": {"limit": 5}})


def _quiet(m):
    """Pretend every controller is already enabled so journals show only the resource writes."""
    for d in (m.host.root, m.host.root + "/pod"):
        touch(d, {"cgroup.subtree_control": CTRLS + "\n"})
    m.journal.clear()


def test_v2_memory(v2, caplog):
    _quiet(v2)
    with caplog.at_level(logging.WARNING, logger="ocirun.cgroups"):
        v2.apply({"memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824, "kernel": 5,
                             "kernelTCP": 5, "swappiness": 10, "disableOOMKiller": True, "useHierarchy": False}})
    assert v2.journal == [J(v2, "memory.swap.max", "536870912"), J(v2, "memory.max", "536870912"),
                          J(v2, "memory.low", "268435456")]
    for word in ("kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy"):
        assert word in caplog.text
    v2.journal.clear()
    v2.apply({"memory": {"limit": -1}})
    assert v2.journal == [J(v2, "memory.swap.max", "max"), J(v2, "memory.max", "max")]


def test_v2_memory_swap_rules(v2):
    _quiet(v2)
    with pytest.raises(CgroupError, match="should be >= memory limit"):
        v2.apply({"memory": {"limit": 200, "swap": 100}})
    with pytest.raises(CgroupError, match="without memory limit"):
        v2.apply({"memory": {"swap": 100}})
    os.unlink(f"{v2.path}/memory.swap.max")
    v2.journal.clear()
    v2.apply({"memory": {"limit": 100, "swap": 100}})     # swap 0 without swap accounting: fine
    assert v2.journal == [J(v2, "memory.swap.max", "0"), J(v2, "memory.max", "100")]
    with pytest.raises(CgroupError, match="memory.swap.max"):
        v2.apply({"memory": {"limit": 100, "swap": 300}})


def test_v2_memory_check_before_update(v2):
    _quiet(v2)
    with pytest.raises(CgroupError, match="lower than current memory usage 1000"):
        v2.update({"memory": {"limit": 500, "checkBeforeUpdate": True}})
    v2.update({"memory": {"limit": 5000, "checkBeforeUpdate": True}})
    assert content(v2.path, "memory.max") == "5000"


def test_v2_cpu(v2):
    _quiet(v2)
    v2.apply({"cpu": {"shares": 1024, "quota": 50000, "burst": 10000, "period": 100000, "idle": 0,
                      "cpus": "0-1", "mems": "0"}})
    assert v2.journal == [J(v2, "cpu.idle", "0"), J(v2, "cpu.weight", "39"), J(v2, "cpu.max.burst", "10000"),
                          J(v2, "cpu.max", "50000 100000"), J(v2, "cpuset.cpus", "0-1"), J(v2, "cpuset.mems", "0")]


@pytest.mark.parametrize("cur,quota,period,want", [
    ("max 100000", -1, 0, "max 100000"), ("20000 100000", 0, 50000, "20000 50000"),
    ("20000 100000", 30000, 0, "30000 100000"), ("max 100000", -1, 250000, "max 250000"),
])
def test_v2_cpu_max_keeps_unchanged_half(v2, cur, quota, period, want):
    _quiet(v2)
    touch(v2.path, {"cpu.max": cur + "\n"})
    v2.update({"cpu": {"quota": quota, "period": period}})
    assert content(v2.path, "cpu.max") == want


def test_v2_cpu_realtime_refused_without_kernel_support(v2):
    _quiet(v2)
    with pytest.raises(CgroupError, match="realtime"):
        v2.apply({"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 10000}})


def test_v2_io(v2):
    _quiet(v2)
    v2.apply({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                          "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                          "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
                          "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}],
                          "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]}})
    assert v2.journal == [J(v2, "io.weight", "4950"), J(v2, "io.weight", "8:0 10000"),
                          J(v2, "io.max", "8:0 rbps=600"), J(v2, "io.max", "8:0 wbps=max"),
                          J(v2, "io.max", "8:16 riops=200"), J(v2, "io.max", "8:16 wiops=300")]
    touch(v2.path, ["io.bfq.weight"])
    v2.journal.clear()
    v2.apply({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}})
    assert v2.journal == [J(v2, "io.bfq.weight", "500"), J(v2, "io.bfq.weight", "8:0 100")]
    with pytest.raises(CgroupError, match="leaf weight"):
        v2.apply({"blockIO": {"leafWeight": 10}})


def test_v2_pids_hugetlb_rdma_network(v2, caplog):
    _quiet(v2)
    with caplog.at_level(logging.WARNING, logger="ocirun.cgroups"):
        v2.apply({"pids": {"limit": 0}, "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
                  "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
                  "network": {"classID": 1}})
    assert v2.journal == [J(v2, "pids.max", "0"), J(v2, "hugetlb.2MB.max", "209715200"),
                          J(v2, "hugetlb.2MB.rsvd.max", "209715200"),
                          J(v2, "rdma.max", "mlx5_1 hca_handle=3 hca_object=10000")]
    assert "net_cls" in caplog.text
    v2.journal.clear()
    v2.update({"pids": {"limit": 0}})
    v2.apply({"pids": {"limit": -1}})
    assert v2.journal == [J(v2, "pids.max", "max")]
    with pytest.raises(CgroupError, match="1GB is not supported"):
        v2.apply({"hugepageLimits": [{"pageSize": "1GB", "limit": 1}]})


def test_v2_unified(v2):
    _quiet(v2)
    v2.apply({"memory": {"limit": 100},
              "unified": {"memory.high": "50", "io.max": "259:0 rbps=2097152 wiops=120\n253:0 rbps=2097152 wiops=120"}})
    assert v2.journal == [J(v2, "memory.max", "100"), J(v2, "memory.high", "50"),
                          J(v2, "io.max", "259:0 rbps=2097152 wiops=120"),
                          J(v2, "io.max", "253:0 rbps=2097152 wiops=120")]
    with pytest.raises(CgroupError, match="no slashes"):
        v2.apply({"unified": {"../memory.max": "1"}})
    with pytest.raises(CgroupError, match="CONTROLLER.PARAMETER"):
        v2.apply({"unified": {"foo": "1"}})
    with pytest.raises(CgroupError, match="controller 'net' not available"):
        v2.apply({"unified": {"net.prio": "1"}})


def test_v2_unified_enables_controller(v2):
    v2.journal.clear()
    touch(v2.host.root + "/pod", {"cgroup.subtree_control": "cpu\n"})
    touch(v2.host.root, {"cgroup.subtree_control": CTRLS})
    v2.apply({"unified": {"pids.max": "10"}})
    assert v2.journal == [(f"{v2.host.root}/pod/cgroup.subtree_control", "+pids"), J(v2, "pids.max", "10")]


def test_v2_devices_compile_and_install(v2, monkeypatch):
    got = []
    monkeypatch.setattr(v2, "_install_device_program", got.append)
    v2.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    (prog,) = got
    assert E.run(prog, "c", 1, 3, "rw") == 1 and E.run(prog, "c", 1, 5, "r") == 0
    v2.apply({})          # no "devices" key: the filter is left alone
    assert len(got) == 1


def test_v2_freeze_waits_for_events(v2, monkeypatch):
    touch(v2.path, {"cgroup.events": "populated 1\nfrozen 0\n"})
    real = v2.write

    def kernel(d, name, value):
        real(d, name, value)
        if name == "cgroup.freeze":
            touch(d, {"cgroup.events": f"populated 1\nfrozen {value}\n"})
    monkeypatch.setattr(v2, "write", kernel)
    v2.freeze()
    assert v2.is_frozen()
    v2.thaw()
    assert not v2.is_frozen()
    monkeypatch.setattr(v2, "write", real)
    with pytest.raises(CgroupError, match="unable to freeze"):
        v2.freeze(timeout=0.05)
    assert content(v2.path, "cgroup.freeze") == "0"


def test_v2_kill_all_uses_cgroup_kill(v2):
    v2.journal.clear()
    v2.kill_all(9)
    assert v2.journal == [J(v2, "cgroup.kill", "1")]


def test_v2_stats(v2):
    touch(v2.path, {"cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 2\nnr_throttled 1\n"
                                "throttled_usec 3\n", "memory.current": "4096\n", "memory.max": "max\n",
                    "memory.stat": "anon 100\nfile 200\n", "memory.events": "low 0\nhigh 0\nmax 2\noom 1\n"
                                                                            "oom_kill 1\n",
                    "memory.swap.current": "0\n", "memory.swap.max": "max\n", "pids.current": "3\n",
                    "pids.max": "10\n", "io.stat": "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
                    "hugetlb.2MB.current": "0\n", "hugetlb.2MB.events": "max 0\n"})
    s = v2.stats()
    assert s["cpu"] == {"usage": {"total": 10000, "kernel": 4000, "user": 6000},
                        "throttling": {"periods": 2, "throttledPeriods": 1, "throttledTime": 3000}}
    assert s["memory"]["usage"] == {"limit": (1 << 64) - 1, "usage": 4096, "failcnt": 2}
    assert s["memory"]["cache"] == 200 and s["memory"]["raw"] == {"anon": 100, "file": 200}
    assert s["pids"] == {"current": 3, "limit": 10}
    assert s["blkio"]["ioServicedRecursive"] == [{"major": 8, "op": "Read", "value": 3},
                                                 {"major": 8, "op": "Write", "value": 4}]
    assert s["hugetlb"] == {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}
    json.dumps(s)


def test_v2_oom_watcher_counts(v2):
    touch(v2.path, {"memory.events": "oom 0\noom_kill 0\n"})
    with v2.oom_events() as w:
        assert not w.wait(0.01)
        touch(v2.path, {"memory.events": "oom 1\noom_kill 1\n"})
        assert w.wait(0.5) and w.count() == 1


def test_v2_state_roundtrip(v2):
    st = json.loads(json.dumps(v2.to_state()))
    assert st["mode"] == "unified" and st["paths"] == {"": v2.path}
    m = cgroups.from_state(st)
    assert type(m).__name__ == "V2Manager" and m.path == v2.path and m.mount == v2.mount
    assert m.created == v2.created


# ---- device list model ---------------------------------------------------------------------------------
def rules(*specs):
    return D.parse_rules([dict(zip(("allow", "type", "major", "minor", "access"), s)) for s in specs])


def test_emulate_merges_and_removes():
    st = D.emulate(rules((False, "a", None, None, "rwm"), (True, "c", 1, 3, "r"), (True, "c", 1, 3, "w"),
                         (True, "b", 8, None, "rwm"), (False, "b", 8, None, "w")))
    assert st.default_allow is False
    assert st.entries() == ["c 1:3 rw", "b 8:* rm"]
    st = D.emulate(rules((True, "c", 1, 3, "rw"), (True, "a", 1, 3, "r")))   # an "a" rule resets everything
    assert st.default_allow is True and st.entries() == []


def test_emulate_refuses_removal_covered_by_wildcard():
    with pytest.raises(CgroupError, match="wider exception c \\*:\\* m"):
        D.emulate(rules((True, "c", None, None, "m"), (False, "c", 1, 3, "m")))


def test_parse_rules_validation():
    with pytest.raises(CgroupError, match="allow"):
        D.parse_rules([{"type": "c"}])
    with pytest.raises(CgroupError, match="device type"):
        D.parse_rules([{"allow": True, "type": "x"}])
    with pytest.raises(CgroupError, match="device access cannot be empty"):
        D.parse_rules([{"allow": True, "access": ""}])
    # runc ignores what is not r, w or m (its own tests write "rwa")
    assert D.parse_rules([{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwa"}])[0].entry() == \
        "c 1:11 rw"
    assert D.parse_rules([{"allow": True, "type": "c", "major": -1, "minor": 5}])[0].entry() == "c *:5 rwm"


def test_parse_list():
    assert D.parse_list("a *:* rwm\n") is None
    st = D.parse_list("c 1:3 rwm\nb *:* m\n")
    assert st.exceptions == {("c", 1, 3): "rwm", ("b", None, None): "m"} and not st.default_allow


# ---- eBPF -------------------------------------------------------------------------------------------------
def test_ebpf_exact_instructions_default_deny():
    st = D.emulate(rules((False, "a", None, None, "rwm"), (True, "c", 1, 3, "rw"), (True, "c", None, None, "m")))
    prog = E.assemble(st)
    assert [tuple(i) for i in prog] == [
        (0x61, 2, 1, 0, 0), (0x54, 2, 0, 0, 0xFFFF), (0x61, 3, 1, 0, 0), (0x74, 3, 0, 0, 16),
        (0x61, 4, 1, 4, 0), (0x61, 5, 1, 8, 0),
        # c 1:3 rw
        (0x55, 2, 0, 5, 2), (0x55, 4, 0, 4, 1), (0x55, 5, 0, 3, 3), (0x45, 3, 0, 2, 1), (0xB7, 0, 0, 0, 1),
        (0x95, 0, 0, 0, 0),
        # c *:* m
        (0x55, 2, 0, 3, 2), (0x45, 3, 0, 2, 6), (0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0),
        (0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0),
    ]
    assert E.encode(prog)[:8] == bytes([0x61, 0x12, 0, 0, 0, 0, 0, 0])
    assert len(E.encode(prog)) == 8 * len(prog)


def test_ebpf_exact_instructions_default_allow():
    st = D.emulate(rules((True, "a", None, None, "rwm"), (False, "b", 8, None, "w")))
    assert [tuple(i) for i in E.assemble(st)[6:]] == [
        (0x55, 2, 0, 6, 1), (0x55, 4, 0, 5, 8), (0xBC, 1, 3, 0, 0), (0x54, 1, 0, 0, 4), (0x15, 1, 0, 2, 0),
        (0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0), (0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)]


RULESETS = [
    [],
    [(False, "a", None, None, "rwm")],
    [(True, "a", None, None, "rwm")],
    [(False, "a", None, None, "rwm"), (True, "c", 1, 3, "rwm"), (True, "c", 1, 5, "rw"), (True, "c", None, None, "m"),
     (True, "b", None, None, "m"), (True, "c", 136, None, "rwm"), (True, "b", 8, 0, "r")],
    [(True, "a", None, None, "rwm"), (False, "c", 1, 3, "w"), (False, "b", None, 0, "rm"), (False, "c", 5, None, "rwm")],
    [(True, "c", 10, 200, "rwm"), (False, "c", 10, 200, "w"), (True, "b", 7, 1, "r")],
]


@pytest.mark.parametrize("spec", RULESETS)
def test_ebpf_program_agrees_with_v1_semantics(spec):
    st = D.emulate(rules(*spec))
    prog = E.assemble(st)
    for t, ma, mi in itertools.product("bc", (0, 1, 5, 7, 8, 10, 136), (0, 1, 3, 5, 200)):
        for n in range(1, 4):
            for acc in itertools.combinations("rwm", n):
                acc = "".join(acc)
                assert E.run(prog, t, ma, mi, acc) == int(st.allows(t, ma, mi, acc)), (t, ma, mi, acc)


# ---- conversions -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262144, 10000), (512, 20), (0, 0)])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight
    if shares:
        assert convert.shares_to_weight(convert.weight_to_shares(weight)) == weight


@pytest.mark.parametrize("blkio,io", [(10, 1), (500, 4950), (1000, 10000), (0, 0)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io
    if blkio:
        assert convert.blkio_weight_to_io_weight(convert.io_weight_to_blkio_weight(io)) == io


def test_swap_and_page_sizes():
    assert convert.memory_swap_to_v2(0, -1) == -1
    assert convert.memory_swap_to_v2(300, 100) == 200
    assert convert.memory_swap_to_v2(-1, 100) == -1
    assert convert.page_size_bytes("64KB") == 65536 and convert.page_size_name(1 << 30) == "1GB"
    assert convert.page_size_name(convert.page_size_bytes("2048KB")) == "2MB"
