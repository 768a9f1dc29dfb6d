"""config-linux.md "Control groups": cgroupsPath and resources, observed from the host."""
from __future__ import annotations

import os

import pytest

MUST = "MUST"
SHOULD = "SHOULD"


def _created(ctr, resources: dict | None = None) -> int:
    if resources:
        ctr.linux.setdefault("resources", {}).update(resources)
    ctr.set_args("sleep", "300")
    ctr.create_ok()
    return ctr.pid


def _need(probe, controller):
    if not probe.has_controller(controller):
        pytest.skip(f"no {controller} cgroup controller")


def _procs(probe, controller, path) -> list[int]:
    return [int(x) for x in probe.read_cgroup(controller, path, "cgroup.procs").split()]


@pytest.mark.req(MUST, "config-linux.md", "Cgroups Path")
def test_cgroups_path_absolute(ctr, probe):
    """In the case of an absolute path (starting with /), the runtime MUST take the path to be relative
    to the cgroups mount point.  The cgroups will be created if they don't exist."""
    _need(probe, "pids")
    path = f"/{ctr.id}-abs"
    ctr.linux["cgroupsPath"] = path
    pid = _created(ctr, {"pids": {"limit": 50}})
    assert pid in _procs(probe, "pids", path)


@pytest.mark.req(MUST, "config-linux.md", "Cgroups Path")
def test_cgroups_path_nested(ctr, probe):
    """(cgroupsPath) The cgroups will be created if they don't exist (including missing parents)."""
    _need(probe, "pids")
    parent = f"/{ctr.id}-parent"
    path = f"{parent}/child"
    ctr.linux["cgroupsPath"] = path
    try:
        pid = _created(ctr, {"pids": {"limit": 50}})
        assert pid in _procs(probe, "pids", path)
    finally:
        ctr.cleanup()
        probe.remove_cgroups(ctr.id)


@pytest.mark.req(MUST, "config-linux.md", "Cgroups Path")
def test_cgroups_path_consistent(ctr, probe):
    """If the value is specified, the runtime MUST consistently attach to the same place in the cgroups
    hierarchy given the same value of cgroupsPath."""
    _need(probe, "pids")
    path = f"/{ctr.id}-same"
    ctr.linux["cgroupsPath"] = path
    ctr.linux.setdefault("resources", {})["pids"] = {"limit": 50}
    for _ in range(2):
        ctr.script("cat /proc/self/cgroup")
        out = ctr.run()
        assert out.returncode == 0, out.stderr
        lines = [line for line in out.stdout.splitlines() if ":pids:" in line or line.startswith("0::")]
        assert any(line.endswith(path) for line in lines), out.stdout


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Memory")
def test_memory_limits(ctr, probe):
    """`memory`: `limit` sets limit of memory usage, `reservation` sets soft limit, `swappiness` (all
    properties of config.json MUST be applied by create)."""
    _need(probe, "memory")
    res = {"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024}
    if not probe.cgroup_v2():
        res["swappiness"] = 10
    _created(ctr, {"memory": res})
    path = ctr.linux["cgroupsPath"]
    assert probe.read_cgroup("memory", path, "memory.limit_in_bytes", "memory.max") == str(64 * 1024 * 1024)
    assert probe.read_cgroup("memory", path, "memory.soft_limit_in_bytes", "memory.low") == str(32 * 1024 * 1024)
    if not probe.cgroup_v2():
        assert probe.read_cgroup("memory", path, "memory.swappiness") == "10"


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Memory")
def test_memory_swap(ctr, probe):
    """`swap` sets limit of memory+Swap usage."""
    _need(probe, "memory")
    if not probe.cgroup_v2() and not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        pytest.skip("no swap accounting")
    _created(ctr, {"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    path = ctr.linux["cgroupsPath"]
    if probe.cgroup_v2():
        assert probe.read_cgroup("memory", path, "", "memory.swap.max") == str(64 << 20)
    else:
        assert probe.read_cgroup("memory", path, "memory.memsw.limit_in_bytes") == str(128 << 20)


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Memory")
def test_memory_limit_enforced(ctr, probe):
    """`limit` sets limit of memory usage: a process going beyond it is OOM-killed."""
    _need(probe, "memory")
    ctr.linux["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20} if os.path.exists(
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") else {"limit": 16 << 20}
    ctr.linux["resources"]["memory"].pop("swap", None) if probe.cgroup_v2() else None
    ctr.config["mounts"].append({"destination": "/big", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["size=256m"]})
    ctr.script("head -c 67108864 /dev/zero > /big/fill; echo survived")
    res = ctr.run()
    assert "survived" not in res.stdout


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "PIDs")
def test_pids_limit(ctr, probe):
    """`pids`: `limit` specifies the maximum number of tasks in the cgroup."""
    _need(probe, "pids")
    _created(ctr, {"pids": {"limit": 42}})
    assert probe.read_cgroup("pids", ctr.linux["cgroupsPath"], "pids.max") == "42"


@pytest.mark.req(SHOULD, "config-linux.md", "PIDs")
@pytest.mark.deviates("runc", "runc treats a pids limit of 0 as unset (no limit)")
def test_pids_limit_zero(ctr, probe):
    """`0` is a valid limit value for the pids cgroup controller from the kernel's perspective and SHOULD
    be treated as such by runtimes."""
    _need(probe, "pids")
    _created(ctr, {"pids": {"limit": 0}})
    assert probe.read_cgroup("pids", ctr.linux["cgroupsPath"], "pids.max") == "0"


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "PIDs")
def test_pids_limit_enforced(ctr, probe):
    """`limit` specifies the maximum number of tasks in the cgroup (a fork beyond it fails)."""
    _need(probe, "pids")
    ctr.linux["resources"]["pids"] = {"limit": 3}
    ctr.script("for i in 1 2 3 4 5 6; do sleep 5 & done; echo done")
    res = ctr.run()
    out = res.stdout + res.stderr
    assert "fork" in out or "Resource temporarily unavailable" in out, out


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "CPU")
def test_cpu(ctr, probe):
    """`cpu`: `shares`, `quota`, `period` (and `cpus`, `mems` for cpusets)."""
    _need(probe, "cpu")
    cpu = {"shares": 512, "quota": 20000, "period": 100000}
    if probe.has_controller("cpuset"):
        cpu["cpus"] = "0"
        cpu["mems"] = "0"
    _created(ctr, {"cpu": cpu})
    path = ctr.linux["cgroupsPath"]
    if probe.cgroup_v2():
        assert probe.read_cgroup("cpu", path, "", "cpu.max") == "20000 100000"
    else:
        assert probe.read_cgroup("cpu", path, "cpu.shares") == "512"
        assert probe.read_cgroup("cpu", path, "cpu.cfs_quota_us") == "20000"
        assert probe.read_cgroup("cpu", path, "cpu.cfs_period_us") == "100000"
    if "cpus" in cpu:
        assert probe.read_cgroup("cpuset", path, "cpuset.cpus", "cpuset.cpus") == "0"
        assert probe.read_cgroup("cpuset", path, "cpuset.mems", "cpuset.mems") == "0"


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Block IO")
def test_block_io_throttle(ctr, probe):
    """`blockIO`: `throttleReadBpsDevice` ... an array of per-device bandwidth rate limits."""
    _need(probe, "blkio" if not probe.cgroup_v2() else "io")
    major, minor = divmod(os.stat("/").st_dev, 256)
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    _created(ctr, {"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}})
    path = ctr.linux["cgroupsPath"]
    if probe.cgroup_v2():
        assert f"{major}:{minor} rbps=1048576" in probe.read_cgroup("io", path, "", "io.max")
    else:
        assert probe.read_cgroup("blkio", path, "blkio.throttle.read_bps_device") == f"{major}:{minor} 1048576"


@pytest.mark.req(MUST, "config-linux.md", "Unified")
def test_unified_missing_controller_fails(ctr, probe):
    """The runtime MUST generate an error when the configuration refers to a cgroup controller that is not
    present or that cannot be enabled."""
    ctr.linux["resources"]["unified"] = {"nosuchcontroller.max": "1"}
    ctr.set_args("true")
    assert ctr.run().returncode != 0
    assert probe.find_cgroups(ctr.id) == []


def _unified_dir(probe, path: str = "") -> str:
    """The container's directory in the cgroup v2 hierarchy: the root on a v2 host, `unified/` on a hybrid
    host (skip on a pure v1 host, where `unified` cannot apply)."""
    if probe.cgroup_v2():
        base = probe.CGROUP_ROOT
    else:
        base = os.path.join(probe.CGROUP_ROOT, "unified")
        if not os.path.exists(os.path.join(base, "cgroup.controllers")):
            pytest.skip("no cgroup v2 hierarchy on this host")
    return os.path.join(base, path.lstrip("/"))


def _hugepage_size() -> str:
    """The smallest huge page size of the kernel, as the spec and the cgroup file names write it ("2MB")."""
    try:
        sizes = sorted(int(d.split("-")[1][:-2]) for d in os.listdir("/sys/kernel/mm/hugepages"))
    except OSError:
        sizes = []
    if not sizes:
        pytest.skip("kernel without huge pages")
    kb = sizes[0]
    name = f"{kb // 1048576}GB" if kb % 1048576 == 0 else f"{kb // 1024}MB" if kb % 1024 == 0 else f"{kb}KB"
    return name


_RUNC_V1_UNIFIED = "runc 1.1 refuses `unified` on a cgroup v1 or hybrid host (\"cannot use unified on cgroup v1\")"


@pytest.mark.req(MUST, "config-linux.md", "Unified")
@pytest.mark.deviates("runc", _RUNC_V1_UNIFIED)
def test_unified_unknown_key_written(ctr, probe):
    """Each key in the map refers to a file in the cgroup unified hierarchy. Configuration unknown to the
    runtime MUST still be written to the relevant file (a core `cgroup.*` file no controller owns)."""
    unified = _unified_dir(probe)
    ctr.linux.setdefault("resources", {})["unified"] = {"cgroup.max.descendants": "7"}
    pid = _created(ctr)
    assert pid > 0
    with open(os.path.join(unified, ctr.linux["cgroupsPath"].lstrip("/"), "cgroup.max.descendants")) as f:
        assert f.read().strip() == "7"


@pytest.mark.req(MUST, "config-linux.md", "Unified")
@pytest.mark.deviates("runc", _RUNC_V1_UNIFIED)
def test_unified_controller_enabled(ctr, probe):
    """The OCI runtime MUST ensure that the needed cgroup controllers are enabled for the cgroup (a
    `hugetlb.*` key: hugetlb enabled in the parent's subtree_control, the value written)."""
    unified = _unified_dir(probe)
    with open(os.path.join(unified, "cgroup.controllers")) as f:
        if "hugetlb" not in f.read().split():
            pytest.skip("no hugetlb controller in the cgroup v2 hierarchy")
    size = _hugepage_size()
    ctr.linux["cgroupsPath"] = f"/{ctr.id}/nested"
    ctr.linux.setdefault("resources", {})["unified"] = {f"hugetlb.{size}.max": "4194304"}
    assert _created(ctr) > 0
    with open(os.path.join(unified, ctr.id, "cgroup.subtree_control")) as f:
        assert "hugetlb" in f.read().split()
    with open(os.path.join(unified, ctr.id, "nested", f"hugetlb.{size}.max")) as f:
        assert f.read().strip() == "4194304"


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Huge page limits")
@pytest.mark.deviates("runc", "runc 1.1 on a hybrid host only looks for a v1 hugetlb hierarchy (\"cannot set "
                              "hugetlb limit\") although the controller is in the cgroup v2 hierarchy")
def test_hugepage_limits(ctr, probe):
    """`hugepageLimits` represents the hugetlb controller: `pageSize` and `limit` (bytes) set the limit of
    that page size for the container's cgroup."""
    size = _hugepage_size()
    path = ctr.linux["cgroupsPath"]
    if probe.has_controller("hugetlb") and not probe.cgroup_v2():
        where, name = probe.cgroup_dir("hugetlb", path), f"hugetlb.{size}.limit_in_bytes"
    else:
        where, name = _unified_dir(probe, path), f"hugetlb.{size}.max"
        with open(os.path.join(_unified_dir(probe), "cgroup.controllers")) as f:
            if "hugetlb" not in f.read().split():
                pytest.skip("no hugetlb cgroup controller")
    assert _created(ctr, {"hugepageLimits": [{"pageSize": size, "limit": 8388608}]}) > 0
    with open(os.path.join(where, name)) as f:
        assert f.read().strip() == "8388608"


def _controller_anywhere(probe, name: str) -> bool:
    """The controller is usable: a v1 hierarchy, or listed by the cgroup v2 (or hybrid unified) root."""
    if probe.has_controller(name):
        return True
    for root in (probe.CGROUP_ROOT, os.path.join(probe.CGROUP_ROOT, "unified")):
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                if name in f.read().split():
                    return True
        except OSError:
            pass
    return False


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Network")
def test_network_class_id(ctr, probe):
    """`classID` is the network class identifier the cgroup's network packets will be tagged with; if the
    runtime cannot apply it (no net_cls controller on the host) it MUST generate an error and a new
    container MUST NOT be created."""
    ctr.linux.setdefault("resources", {})["network"] = {"classID": 1048577}
    if _controller_anywhere(probe, "net_cls"):
        if probe.cgroup_v2():
            pytest.skip("net_cls in a cgroup v2 hierarchy")
        assert _created(ctr) > 0
        assert probe.read_cgroup("net_cls", ctr.linux["cgroupsPath"], "net_cls.classid") == "1048577"
    else:
        ctr.set_args("true")
        assert ctr.run().returncode != 0
        assert ctr.state() is None and probe.find_cgroups(ctr.id) == []


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "RDMA")
def test_rdma_without_controller_fails(ctr, probe):
    """`rdma` represents the cgroup subsystem rdma; if the runtime cannot apply a property as specified
    (no rdma controller on the host) it MUST generate an error and a new container MUST NOT be created."""
    if _controller_anywhere(probe, "rdma"):
        pytest.skip("the host has an rdma controller (a limit would need an RDMA device)")
    ctr.linux.setdefault("resources", {})["rdma"] = {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}
    ctr.set_args("true")
    assert ctr.run().returncode != 0
    assert ctr.state() is None and probe.find_cgroups(ctr.id) == []


@pytest.mark.req(MUST, "config-linux.md", "IntelRdt")
@pytest.mark.deviates("runc", "runc ignores linux.intelRdt when resctrl is not mounted")
def test_intel_rdt_without_resctrl_fails(ctr):
    """If no mounted resctrl pseudo-filesystem is available in the runtime mount namespace, the runtime
    MUST generate an error."""
    with open("/proc/self/mountinfo") as f:
        if " resctrl " in f.read():
            pytest.skip("resctrl is mounted here")
    ctr.linux["intelRdt"] = {"closID": "ocirun-test"}
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(SHOULD, "config-linux.md", "Cgroup ownership")
def test_cgroup_v1_ownership_unchanged(ctr, probe):
    """Runtimes SHOULD NOT change the ownership of container cgroups when cgroups v1 is in use."""
    if probe.cgroup_v2():
        pytest.skip("cgroup v2 host")
    _need(probe, "pids")
    ctr.use_userns(400000, 65536)
    ctr.add_namespace("cgroup")
    ctr.process["user"] = {"uid": 1000, "gid": 1000}
    ctr.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                 "options": ["nosuid", "noexec", "nodev", "relatime"]})
    pid = _created(ctr, {"pids": {"limit": 50}})
    assert pid > 0, "the container process died during create"
    st = os.stat(probe.cgroup_dir("pids", ctr.linux["cgroupsPath"]))
    assert (st.st_uid, st.st_gid) == (0, 0)
