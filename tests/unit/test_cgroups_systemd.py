"""The systemd cgroup driver's pure parts: unit and slice names, the unit properties runc sets, the bus
address, and the manager built over a fake cgroup tree (the D-Bus conversation itself runs against a real
systemd in tests/linux/test_cgroups_systemd_real.py)."""
from __future__ import annotations

import json

import pytest

from ocirun import cgroups
from ocirun.cgroups import dbus
from ocirun.cgroups import systemd as sd
from ocirun.errors import CgroupError

from .test_cgroups_helpers import FakeHost

INF = (1 << 64) - 1


@pytest.mark.parametrize("slice_,want", [
    ("system.slice", "/system.slice"), ("-.slice", "/"), ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("machine.slice", "/machine.slice")])
def test_expand_slice(slice_, want):
    assert sd.expand_slice(slice_) == want


@pytest.mark.parametrize("bad,msg", [("system", "must end in .slice"), ("a/b.slice", "no '/'"),
                                     ("a--b.slice", "empty component"), ("-a.slice", "empty component")])
def test_expand_slice_refusals(bad, msg):
    with pytest.raises(CgroupError, match=msg):
        sd.expand_slice(bad)


def test_unit_name():
    assert sd.unit_name("ocirun", "abc") == "ocirun-abc.scope"
    assert sd.unit_name("", "abc") == "abc.scope"
    with pytest.raises(CgroupError, match="slice as the container's unit"):
        sd.unit_name("p", "x.slice")
    with pytest.raises(CgroupError, match="name part is empty"):
        sd.unit_name("p", "")


@pytest.mark.parametrize("quota,period,want", [(50000, 100000, 500000), (12345, 100000, 130000),
                                                (-1, 100000, INF), (100000, 0, 1000000), (1, 1000000, 10000)])
def test_cpu_quota_per_sec_rounds_up_to_10ms(quota, period, want):
    assert sd.cpu_quota_per_sec(quota, period) == want


def test_v1_properties():
    r = {"memory": {"limit": 1 << 20, "swap": 2 << 20}, "cpu": {"shares": 512, "quota": 50000, "period": 100000,
                                                                 "cpus": "0-1"},
         "pids": {"limit": 42}, "blockIO": {"weight": 300}}
    assert sd.resource_properties(r, unified=False, version=252) == [
        ("MemoryLimit", ("t", 1 << 20)), ("CPUShares", ("t", 512)), ("BlockIOWeight", ("t", 300)),
        ("CPUQuotaPeriodUSec", ("t", 100000)), ("CPUQuotaPerSecUSec", ("t", 500000)), ("TasksMax", ("t", 42))]


def test_v2_properties():
    r = {"memory": {"limit": 1 << 20, "swap": 3 << 20, "reservation": 4096},
         "cpu": {"shares": 1024, "cpus": "0-2,9", "mems": "0"}, "pids": {"limit": -1}, "blockIO": {"weight": 500}}
    assert sd.resource_properties(r, unified=True, version=252) == [
        ("MemoryMax", ("t", 1 << 20)), ("MemoryLow", ("t", 4096)), ("MemorySwapMax", ("t", 2 << 20)),
        ("CPUWeight", ("t", 39)), ("IOWeight", ("t", 4950)), ("TasksMax", ("t", INF)),
        ("AllowedCPUs", ("ay", bytes([0b111, 0b10]))), ("AllowedMemoryNodes", ("ay", b"\x01"))]
    # old systemd: no period property, no cpuset properties
    old = sd.resource_properties({"cpu": {"period": 50000, "cpus": "0"}}, unified=True, version=241)
    assert old == [("CPUQuotaPerSecUSec", ("t", INF))]


def test_unlimited_and_unset_values():
    assert sd.resource_properties({"memory": {"limit": -1}, "pids": {"limit": 0}}, unified=False) == [
        ("MemoryLimit", ("t", INF))]
    assert sd.resource_properties(None, unified=True) == []


def test_device_properties(tmp_path):
    pd = tmp_path / "devices"
    pd.write_text("Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n")
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
             {"allow": True, "type": "c", "major": 136, "access": "rwm"},
             {"allow": True, "type": "b", "access": "m"}, {"allow": True, "type": "b", "major": 99, "access": "r"}]
    assert sd.device_properties(rules, str(pd)) == [
        ("DevicePolicy", ("s", "strict")),
        ("DeviceAllow", ("a(ss)", [("/dev/char/1:3", "rw"), ("char-pts", "rwm"), ("block-*", "m")]))]
    assert sd.device_properties([{"allow": True, "access": "rwm"}]) == [
        ("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    # a deny list: systemd is told deny-all (the cgroup files carry the real list)
    assert sd.device_properties([{"allow": True, "access": "rwm"},
                                 {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]) == [
        ("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    assert sd.device_properties(None) == []


def test_start_properties():
    props = dict(sd.start_properties("system.slice", "c1", 4242, unified=False))
    assert props["PIDs"] == ("au", [4242]) and props["Slice"] == ("s", "system.slice")
    assert props["Delegate"] == ("b", True) and props["DefaultDependencies"] == ("b", False)
    assert props["BlockIOAccounting"] == ("b", True) and "IOAccounting" not in props
    assert dict(sd.start_properties("s.slice", "c1", 1, unified=True))["IOAccounting"] == ("b", True)


def test_parse_version():
    assert sd.parse_version("252.38-1~deb12u1") == 252
    assert sd.parse_version("v255") == 255 and sd.parse_version("") == 0


def test_systemd_address(monkeypatch):
    assert dbus.systemd_address({"OCIRUN_SYSTEMD_BUS": "/x/private"}) == ("unix:path=/x/private", False)
    assert dbus.systemd_address({"OCIRUN_SYSTEMD_BUS": "unix:path=/run/dbus/system_bus_socket"}) == (
        "unix:path=/run/dbus/system_bus_socket", True)
    monkeypatch.setattr(dbus, "PRIVATE_SOCKET", "/nonexistent/private")
    assert dbus.systemd_address({}) == (dbus.SYSTEM_BUS, True)
    assert dbus.systemd_address({"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/b"}) == ("unix:path=/b", True)


def test_not_running_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("OCIRUN_SYSTEMD_BUS", raising=False)
    with pytest.raises(CgroupError) as e:
        sd.for_container("system.slice:ocirun:abc", "abc", build_fs=lambda p: None,
                         run_dir=str(tmp_path / "nosystemd"))
    assert str(e.value) == (f"systemd cgroup driver: systemd is not running (no {tmp_path}/nosystemd); cannot "
                            "create ocirun-abc.scope in system.slice: use the cgroupfs driver (drop --systemd-cgroup)")


def test_manager_over_a_fake_tree_and_state_roundtrip(tmp_path, monkeypatch):
    h = FakeHost(tmp_path, "hybrid")
    monkeypatch.setenv("OCIRUN_SYSTEMD_BUS", str(tmp_path / "private"))
    m = cgroups.for_container("a-b.slice:pfx:c1", "c1", systemd=True, **h.kw())
    assert m.unit == "pfx-c1.scope" and m.slice == "a-b.slice" and m.driver == "systemd"
    assert m.paths["memory"] == f"{h.root}/memory/a.slice/a-b.slice/pfx-c1.scope"
    assert m.paths[""] == f"{h.root}/unified/a.slice/a-b.slice/pfx-c1.scope"
    m.create()     # nothing: the scope is born in add_pid with its first process
    assert m.created == [] and m.fs.created == [] and not m.started
    st = json.loads(json.dumps(m.to_state()))
    assert st["driver"] == "systemd" and st["unit"] == "pfx-c1.scope" and st["mode"] == "hybrid"
    assert st["bus"] == f"unix:path={tmp_path}/private" and st["is_bus"] is False
    m2 = cgroups.from_state(st)
    assert type(m2) is sd.SystemdManager and m2.started and m2.paths == m.paths and m2.bus == m.bus
    # a unit this manager did not start is never stopped by it (a failed start: UnitExists)
    m.destroy()


def test_connect_failure_names_the_address(tmp_path):
    with pytest.raises(CgroupError, match=f"connect to systemd at unix:path={tmp_path}/none"):
        dbus.Connection(f"unix:path={tmp_path}/none", False)


def test_unit_starts_with_the_device_policy(tmp_path, monkeypatch):
    """The device rules are start properties (runc's order): systemd neither delegates nor realizes the
    devices controller for a unit without a device policy, and on v1 trims the scope's empty devices
    directory whenever it realizes the unit, racing the join."""
    h = FakeHost(tmp_path, "hybrid")
    monkeypatch.setenv("OCIRUN_SYSTEMD_BUS", str(tmp_path / "private"))
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                  "access": "rwm"}]
    m = cgroups.for_container("system.slice:ocirun:c1", "c1", systemd=True, devices=rules, **h.kw())
    jobs = []
    monkeypatch.setattr(m, "_run_job", lambda what, member, sig, body: jobs.append((member, body)))
    monkeypatch.setattr(m.fs, "create", lambda: None)
    monkeypatch.setattr(m.fs, "add_pid", lambda pid: None)
    m.add_pid(4242)
    (member, (unit, mode, props, aux)), = jobs
    props = dict(props)
    assert member == "StartTransientUnit" and unit == "ocirun-c1.scope" and props["PIDs"] == ("au", [4242])
    assert props["DevicePolicy"] == ("s", "strict") and props["DeviceAllow"] == ("a(ss)", [("/dev/char/1:3", "rwm")])
    # no rules (a rootless container): no device properties
    m2 = cgroups.for_container("system.slice:ocirun:c2", "c2", systemd=True, **h.kw())
    jobs.clear()
    monkeypatch.setattr(m2, "_run_job", lambda what, member, sig, body: jobs.append((member, body)))
    monkeypatch.setattr(m2.fs, "create", lambda: None)
    monkeypatch.setattr(m2.fs, "add_pid", lambda pid: None)
    m2.add_pid(1)
    assert "DevicePolicy" not in dict(jobs[0][1][2])


def test_device_rules_start_from_deny_all():
    """runc's allowlist: absent rules still mean "the defaults only"; the spec's rules come before the defaults;
    rootless applies only what the spec says (it has no device cgroup of its own)."""
    from ocirun.plan import DEFAULT_DEVICE_RULES, resources_with_default_devices as rwd
    out = rwd(None)
    assert out["devices"] == [{"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES]
    allow_all = {"allow": True, "access": "rwm"}
    assert rwd({"devices": [allow_all], "pids": {"limit": 3}})["devices"][:2] == [out["devices"][0], allow_all]
    assert rwd({"pids": {"limit": 3}}, rootless=True) == {"pids": {"limit": 3}}
    assert rwd({"devices": []}, rootless=True)["devices"][0] == {"allow": False, "access": "rwm"}


def test_unified_keys_become_unit_properties_on_v2():
    """runc's conversion: the keys systemd has a property for follow the typed resources (so they win);
    on v1/hybrid (systemd does not own the unified tree there) nothing is said to systemd."""
    r = {"memory": {"limit": 1 << 20},
         "unified": {"memory.max": "2097152", "memory.high": "max", "pids.max": " 64 ", "cpu.weight": "50",
                     "cpu.max": "max 50000", "cpuset.cpus": "0-1", "io.weight": "default 100"}}
    props = sd.resource_properties(r, unified=True, version=252)
    names = [n for n, _ in props]
    assert names[0] == "MemoryMax" and props[0][1] == ("t", 1 << 20)
    d = dict(props[1:])
    assert d["MemoryMax"] == ("t", 2097152) and d["MemoryHigh"] == ("t", INF) and d["TasksMax"] == ("t", 64)
    assert d["CPUWeight"] == ("t", 50) and d["CPUQuotaPeriodUSec"] == ("t", 50000)
    assert d["CPUQuotaPerSecUSec"] == ("t", INF) and d["AllowedCPUs"] == ("ay", b"\x03")
    assert "IOWeight" not in d      # left to the cgroupfs write
    assert dict(sd.unified_properties({"cpu.max": "25000"}, 241)) == {"CPUQuotaPerSecUSec": ("t", 250000)}
    assert sd.unified_properties({"cpuset.mems": "0"}, 243) == []
    assert sd.resource_properties({"unified": {"memory.max": "1"}}, unified=False, version=252) == []
    for bad in ({"memory.max": "lots"}, {"pids.max": "-3"}, {"cpu.max": "1 2 3"}, {"cpu.weight": "max"}):
        with pytest.raises(CgroupError, match=f"unified resource '{next(iter(bad))}' value invalid"):
            sd.unified_properties(bad, 252)
