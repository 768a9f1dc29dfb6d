"""cgroups on the real kernel (root): every mounted v1 controller, the hybrid unified tree, and cgroup v2
(device eBPF filter, freeze, kill, hugetlb) in the unified hierarchy at /sys/fs/cgroup/unified.

Every cgroup is named ocirun-test-*; teardown kills what the test started, destroys the manager and fails if
any directory with the test's name is left in any hierarchy.
"""
from __future__ import annotations

import errno
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from ocirun import cgroups
from ocirun.cgroups import devices as D, ebpf as E
from ocirun.errors import CgroupError

pytestmark = pytest.mark.root

ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"


def _mode():
    try:
        return cgroups.detect_mode()
    except CgroupError:
        return None


need_v1 = pytest.mark.skipif(_mode() not in ("v1", "hybrid"), reason="needs cgroup v1 hierarchies")


def _leftovers(name: str) -> list[str]:
    return glob.glob(f"{ROOT}/*/{name}") + glob.glob(f"{ROOT}/{name}")


class Tracker:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.mgrs: list = []
        self.names: list[str] = []

    def name(self, tag="") -> str:
        n = f"ocirun-test-{tag}{uuid.uuid4().hex[:8]}"
        self.names.append(n)
        return n

    def spawn(self, code: str = "import time; time.sleep(100)") -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.procs.append(p)
        return p


@pytest.fixture
def t():
    tr = Tracker()
    yield tr
    for p in tr.procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for m in tr.mgrs:
        try:
            m.thaw()
        except CgroupError:
            pass
        m.destroy()
    left = [d for n in tr.names for d in _leftovers(n)]
    assert left == [], f"cgroup dirs leaked: {left}"


def _own_cgroup(pid: int) -> dict[str, str]:
    out = {}
    for line in open(f"/proc/{pid}/cgroup").read().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls or ""] = path
    return out


def _r(d: str, f: str) -> str:
    return open(os.path.join(d, f)).read().strip()


# ---- v1 ---------------------------------------------------------------------------------------------------
@need_v1
def test_v1_full_lifecycle(t):
    name = t.name()
    m = cgroups.for_container(f"/{name}/ctr", "ctr")
    t.mgrs.append(m)
    m.create()
    for d in set(m.paths.values()):
        assert os.path.isdir(d)
    has_swap = os.path.exists(os.path.join(m.paths["memory"], "memory.memsw.limit_in_bytes"))
    res = {"memory": {"limit": 256 << 20, "reservation": 128 << 20, "swappiness": 10, "disableOOMKiller": False,
                      "useHierarchy": True, "kernelTCP": 64 << 20, "kernel": 0},
           "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000, "cpus": "0", "mems": "0",
                   "idle": 0},
           "pids": {"limit": 20},
           "devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
                       {"allow": True, "type": "c", "access": "m"}]}
    if has_swap:
        res["memory"]["swap"] = 512 << 20
    blk = os.stat("/").st_dev
    res["blockIO"] = {"throttleReadBpsDevice": [{"major": os.major(blk), "minor": os.minor(blk), "rate": 1 << 20}]}
    dev_block = [l.split() for l in open("/proc/partitions").read().splitlines()[2:] if l.split()]
    if dev_block:
        maj, mi = int(dev_block[0][0]), int(dev_block[0][1])
        res["blockIO"] = {"throttleReadBpsDevice": [{"major": maj, "minor": mi, "rate": 1 << 20}],
                          "throttleWriteIOPSDevice": [{"major": maj, "minor": mi, "rate": 100}]}
    m.apply(res)
    p = t.spawn()
    m.add_pid(p.pid)

    mem, cpu, dev = m.paths["memory"], m.paths["cpu"], m.paths["devices"]
    assert _r(mem, "memory.limit_in_bytes") == str(256 << 20)
    assert _r(mem, "memory.soft_limit_in_bytes") == str(128 << 20)
    assert _r(mem, "memory.swappiness") == "10"
    assert _r(mem, "memory.kmem.tcp.limit_in_bytes") == str(64 << 20)
    assert "oom_kill_disable 0" in _r(mem, "memory.oom_control")
    if has_swap:
        assert _r(mem, "memory.memsw.limit_in_bytes") == str(512 << 20)
    assert _r(cpu, "cpu.shares") == "512"
    assert _r(cpu, "cpu.cfs_quota_us") == "50000" and _r(cpu, "cpu.cfs_period_us") == "100000"
    if os.path.exists(os.path.join(cpu, "cpu.cfs_burst_us")):
        assert _r(cpu, "cpu.cfs_burst_us") == "10000"
    assert _r(m.paths["cpuset"], "cpuset.cpus") == "0" and _r(m.paths["cpuset"], "cpuset.mems") == "0"
    assert _r(m.paths["pids"], "pids.max") == "20"
    assert sorted(_r(dev, "devices.list").splitlines()) == ["c *:* m", "c 1:3 rwm", "c 1:5 r"]
    if dev_block:
        assert _r(m.paths["blkio"], "blkio.throttle.read_bps_device") == f"{maj}:{mi} {1 << 20}"
        assert _r(m.paths["blkio"], "blkio.throttle.write_iops_device") == f"{maj}:{mi} 100"

    # the process is in the container's cgroup in every hierarchy (and in the unified tree in hybrid mode)
    own = _own_cgroup(p.pid)
    for key in own:
        if key in ("", ) and m.mode != "hybrid":
            continue
        assert own[key] == f"/{name}/ctr", (key, own)
    assert m.pids() == [p.pid]

    m.freeze()
    assert m.is_frozen() and _r(m.paths["freezer"], "freezer.state") == "FROZEN"
    m.thaw()
    assert not m.is_frozen()

    s = m.stats()
    json.dumps(s)
    assert s["pids"] == {"current": 1, "limit": 20}
    assert s["memory"]["usage"]["limit"] == 256 << 20
    assert "cpu" in s and "total_rss" in s["memory"]["raw"] or "rss" in s["memory"]["raw"]

    # a later process reopens the same cgroups from state.json
    m2 = cgroups.from_state(json.loads(json.dumps(m.to_state())))
    m2.update({"memory": {"limit": 134217728, "reservation": 0, "swap": 268435456 if has_swap else 0, "kernel": 0},
               "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}})
    assert _r(mem, "memory.limit_in_bytes") == "134217728" and _r(cpu, "cpu.shares") == "512"
    m2.kill_all(signal.SIGTERM)
    assert p.wait(5) == -signal.SIGTERM
    for _ in range(100):
        if not m2.pids():
            break
        time.sleep(0.01)
    m2.destroy()
    t.mgrs.remove(m)
    assert _leftovers(name) == []


@need_v1
def test_v1_kernel_refusal_names_file_and_value(t):
    name = t.name()
    m = cgroups.for_container(f"/{name}", "c")
    t.mgrs.append(m)
    m.create()
    with pytest.raises(CgroupError) as ei:
        m.apply({"cpu": {"cpus": "4095"}})
    assert str(ei.value) in (f'write {m.paths["cpuset"]}/cpuset.cpus: "4095": Numerical result out of range',
                             f'write {m.paths["cpuset"]}/cpuset.cpus: "4095": Invalid argument')
    # memory limit below what the cgroup already uses: the kernel answers EBUSY
    # charges made before joining stay with the old cgroup: allocate after joining
    p2 = t.spawn(f"import sys, time; open('{m.paths['memory']}/cgroup.procs', 'w').write(str(__import__('os').getpid()));"
                 "x = bytearray(40 << 20); x[::4096] = b'x' * len(x[::4096]); print('ok', flush=True); time.sleep(100)")
    assert p2.stdout.readline().strip() == "ok"
    try:
        m.apply({"memory": {"limit": 1 << 20}})
    except CgroupError as e:
        assert str(e).startswith(f'write {m.paths["memory"]}/memory.limit_in_bytes: "1048576": Device or resource busy')
        assert "current usage" in str(e)
    else:   # the kernel reclaimed it all (swap): then the limit holds
        assert _r(m.paths["memory"], "memory.limit_in_bytes") == "1048576"
    m.kill_all()


@need_v1
def test_v1_devices_enforced(t):
    name = t.name()
    m = cgroups.for_container(f"/{name}", "c")
    t.mgrs.append(m)
    m.create()
    m.apply({"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]})
    code = textwrap.dedent(f"""
        import os
        open('{m.paths['devices']}/cgroup.procs', 'w').write(str(os.getpid()))
        for dev in ('/dev/null', '/dev/zero'):
            try:
                open(dev, 'rb').close(); print(dev, 'ok')
            except OSError as e:
                print(dev, e.errno)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10).stdout
    assert out.split("\n")[:2] == ["/dev/null ok", f"/dev/zero {errno.EPERM}"]
    # an update that only adds /dev/zero writes just that
    m.journal = []
    m.update({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                          {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]})
    assert m.journal == [(f"{m.paths['devices']}/devices.allow", "c 1:5 r")]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10).stdout
    assert out.split("\n")[:2] == ["/dev/null ok", "/dev/zero ok"]


@need_v1
def test_v1_realtime(t):
    name = t.name("rt-")
    m = cgroups.for_container(f"/{name}", "c")
    t.mgrs.append(m)
    m.create()
    if not os.path.exists(os.path.join(m.paths["cpu"], "cpu.rt_runtime_us")):
        pytest.skip("no CONFIG_RT_GROUP_SCHED")
    m.apply({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}})
    assert _r(m.paths["cpu"], "cpu.rt_runtime_us") == "10000"
    with pytest.raises(CgroupError, match="cpu.rt_runtime_us"):
        m.apply({"cpu": {"realtimeRuntime": 10 ** 9}})


@need_v1
def test_v1_oom_notification(t):
    name = t.name()
    m = cgroups.for_container(f"/{name}", "c")
    t.mgrs.append(m)
    m.create()
    mem = {"limit": 32 << 20}
    if os.path.exists(os.path.join(m.paths["memory"], "memory.memsw.limit_in_bytes")):
        mem["swap"] = 32 << 20
    m.apply({"memory": mem})
    with m.oom_events() as w:
        before = w.count()
        p = t.spawn(f"import os; open('{m.paths['memory']}/cgroup.procs', 'w').write(str(os.getpid())); "
                    "x = bytearray(200 << 20); x[::4096] = b'x' * len(x[::4096])")
        assert w.wait(20)
        assert p.wait(20) == -signal.SIGKILL
        assert w.count() > before


@need_v1
def test_v1_relative_path_is_under_own_cgroup(t):
    name = t.name()
    m = cgroups.for_container(name, "c")
    own = _own_cgroup(os.getpid())
    assert m.paths["memory"] == os.path.normpath(f"{ROOT}/memory{own['memory']}/{name}")
    t.names.append(name)


# ---- v2 in the unified hierarchy ---------------------------------------------------------------------------
need_unified = pytest.mark.skipif(not os.path.exists(f"{UNIFIED}/cgroup.procs") and _mode() != "unified",
                                  reason="no cgroup2 mount")


@pytest.fixture
def v2root():
    """The cgroup2 root to test on; restores the root's subtree_control (create() enables what it offers).
    Request it before ``t`` so that it is torn down after the test's cgroups are gone."""
    root = UNIFIED if os.path.exists(f"{UNIFIED}/cgroup.procs") else ROOT
    before = set(open(f"{root}/cgroup.subtree_control").read().split())
    yield root
    after = set(open(f"{root}/cgroup.subtree_control").read().split())
    for c in after - before:
        try:
            with open(f"{root}/cgroup.subtree_control", "w") as f:
                f.write("-" + c)
        except OSError:
            pass


DEVICE_PROBE = textwrap.dedent("""
    import os, sys
    open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()))
    for dev in ('/dev/null', '/dev/zero'):
        try:
            open(dev, 'rb').close(); print(dev, 'ok')
        except OSError as e:
            print(dev, e.errno)
    try:
        os.mknod('/tmp/ocirun-test-mknod-%d' % os.getpid(), 0o600 | 0o020000, os.makedev(1, 7))
        os.unlink('/tmp/ocirun-test-mknod-%d' % os.getpid()); print('mknod ok')
    except OSError as e:
        print('mknod', e.errno)
""")


@need_unified
def test_v2_bpf_verifier_accepts_programs():
    from ocirun.kernel import bpf
    sets = [[], [{"allow": True, "access": "rwm"}],
            [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": True, "type": "b", "access": "m"}, {"allow": True, "type": "c", "major": 136, "access": "rw"}],
            [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}]]
    for s in sets:
        fd = bpf.prog_load(E.encode(E.assemble(D.emulate(D.parse_rules(s)))))
        os.close(fd)


@need_unified
def test_v2_devices_freeze_kill_stats(v2root, t):
    name = t.name()
    m = cgroups.for_container(f"/{name}/ctr", "ctr", root=v2root)
    assert m.mode == "unified"
    t.mgrs.append(m)
    m.create()
    m.apply({"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})

    def probe():
        return subprocess.run([sys.executable, "-c", DEVICE_PROBE, m.path], capture_output=True, text=True,
                              timeout=10).stdout.split("\n")[:3]

    assert probe() == ["/dev/null ok", f"/dev/zero {errno.EPERM}", f"mknod {errno.EPERM}"]
    from ocirun.kernel import bpf
    fd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, first = bpf.prog_query(fd)
        m.update({"devices": [{"allow": False, "access": "rwm"},
                              {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                              {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
                              {"allow": True, "type": "c", "access": "m"}]})
        _, second = bpf.prog_query(fd)
    finally:
        os.close(fd)
    assert len(first) == 1 and len(second) == 1 and first != second   # replaced, not stacked
    assert probe() == ["/dev/null ok", "/dev/zero ok", "mknod ok"]

    p = t.spawn()
    m.add_pid(p.pid)
    assert m.pids() == [p.pid]
    m.freeze()
    assert m.is_frozen()
    assert open(f"/proc/{p.pid}/stat").read().split(") ")[1][0] in "SDT"
    m.thaw()
    assert not m.is_frozen()
    json.dumps(m.stats())
    m.kill_all(signal.SIGKILL)
    assert p.wait(5) == -signal.SIGKILL


@need_unified
def test_v2_hugetlb_if_available(v2root, t):
    avail = open(f"{v2root}/cgroup.controllers").read().split()
    if "hugetlb" not in avail:
        pytest.skip("hugetlb not offered by the unified root")
    name = t.name()
    m = cgroups.for_container(f"/{name}", "c", root=v2root)
    t.mgrs.append(m)
    m.create()
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}]})
    assert _r(m.path, "hugetlb.2MB.max") == str(4 << 20) and _r(m.path, "hugetlb.1GB.max") == "0"
    if os.path.exists(f"{m.path}/hugetlb.2MB.rsvd.max"):
        assert _r(m.path, "hugetlb.2MB.rsvd.max") == str(4 << 20)
    assert "2MB" in m.stats()["hugetlb"]
    with pytest.raises(CgroupError, match="the memory controller is not available|memory"):
        if "memory" not in avail:
            m.apply({"memory": {"limit": 1 << 20}})
        else:
            raise CgroupError("memory")


@need_unified
def test_v2_private_cgroup2_mount_detected(v2root, t, tmp_path):
    """In a private mount namespace, mount cgroup2 on a tmp dir and drive a container cgroup through it."""
    name = t.name()
    mnt = tmp_path / "cg2"
    mnt.mkdir()
    code = textwrap.dedent(f"""
        import json, os, subprocess, sys
        subprocess.run(['mount', '-t', 'cgroup2', 'none', '{mnt}'], check=True)
        from ocirun import cgroups
        m = cgroups.for_container('/{name}', 'c', root='{mnt}')
        out = {{'mode': m.mode, 'path': m.path}}
        m.create()
        p = subprocess.Popen(['sleep', '100'])
        m.add_pid(p.pid)
        out['pids'] = m.pids() == [p.pid]
        m.freeze(); out['frozen'] = m.is_frozen(); m.thaw()
        m.kill_all(); p.wait()
        m.destroy()
        out['gone'] = not os.path.exists(m.path)
        print(json.dumps(out))
    """)
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"mode": "unified", "path": f"{mnt}/{name}", "pids": True, "frozen": True, "gone": True}
