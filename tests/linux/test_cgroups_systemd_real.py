"""The systemd cgroup driver against a real systemd (root).

This VM does not boot systemd (PID 1 is another init), so the module boots one: /usr/lib/systemd/systemd
as PID 1 of new pid, mount, cgroup, uts and ipc namespaces, with a fresh tmpfs on /run, a fresh tmpfs on
/sys/fs/cgroup with the host's cgroup hierarchies mounted in it again (so they are rooted at a test cgroup
``ocirun-sdtest-<pid>``; systemd remounts that tmpfs read-only and adds directories to it, which must not
reach the host's) and a default target that pulls in nothing.  ocirun runs through ``nsenter`` into those
namespaces, exactly as it would on a systemd host: it finds /run/systemd/system, talks to
/run/systemd/private, and its init's pid is one systemd can see.  From the host the scope's cgroup is
``<hierarchy>/ocirun-sdtest-<pid>/system.slice/<unit>``.  Teardown: ``systemctl exit``, then every test
cgroup directory is removed (deepest first).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from ocirun import mountinfo
from ocirun.cgroups.paths import parse_mountinfo

from ..procutil import run_to_files
from .conftest import OCIRUN

pytestmark = pytest.mark.root
SYSTEMD = "/usr/lib/systemd/systemd"
CG = "/sys/fs/cgroup"


#: Units that would touch the host if anything started them (see SystemdNS).
MASKED = ["sysinit.target", "basic.target", "sockets.target", "timers.target", "paths.target", "local-fs.target",
          "multi-user.target", "default.target", "systemd-journald.socket",
          "systemd-journald-dev-log.socket", "systemd-journald-audit.socket", "systemd-journald.service",
          "systemd-journal-flush.service", "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service",
          "systemd-tmpfiles-clean.timer", "systemd-tmpfiles-clean.service", "systemd-sysusers.service",
          "systemd-sysctl.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
          "systemd-modules-load.service", "systemd-remount-fs.service", "systemd-update-utmp.service",
          "systemd-random-seed.service", "systemd-machine-id-commit.service", "systemd-udevd.service",
          "systemd-udevd-control.socket", "systemd-udevd-kernel.socket", "systemd-logind.service"]


def _host_mounts():
    with open("/proc/self/mountinfo") as f:
        return [m for m in parse_mountinfo(f.read()) if m.mountpoint.startswith(CG)]


def _cgroup_fs_state() -> tuple:
    """The host's /sys/fs/cgroup as the systemd under test must leave it: its entries, its
    superblock (device) and whether it is read-only."""
    top = [m for m in mountinfo.read() if m.mountpoint == CG][-1]
    return sorted(os.listdir(CG)), top.device, bool(os.statvfs(CG).f_flag & os.ST_RDONLY)


def _systemd_is_pid1() -> bool:
    return os.path.isdir("/run/systemd/system")


class SystemdNS:
    """A systemd booted in its own namespaces; ``run`` executes a command inside them."""

    def __init__(self, workdir: str, writable: str):
        self.name = f"ocirun-sdtest-{os.getpid()}"
        self.mounts = _host_mounts()
        self.host_cgroup_fs = _cgroup_fs_state()
        self.dirs = sorted({os.path.join(m.mountpoint, self.name) for m in self.mounts})
        self.log = open(os.path.join(workdir, "systemd.log"), "w+")
        self.pid = None
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)
            if os.path.exists(os.path.join(os.path.dirname(d), "cpuset.cpus")):
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(os.path.dirname(d), f)) as src, open(os.path.join(d, f), "w") as dst:
                        dst.write(src.read().strip())
        # systemd sets /sys/fs/cgroup up and then remounts it read-only, which changes the
        # superblock: the host's tmpfs, shared even by a private mount namespace, would become
        # read-only and keep the controller directories systemd makes.  So it gets a tmpfs of its
        # own, with the host's hierarchies mounted in it again (inside the cgroup namespace, so
        # rooted at the test cgroup).  Only a pure-v2 host mounts cgroup2 at /sys/fs/cgroup itself.
        cgroup_fs = []
        if any(m.mountpoint != CG for m in self.mounts):
            cgroup_fs.append(f"mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs {CG}")
        for m in self.mounts:
            if m.fstype == "cgroup2":
                mount = "mount -t cgroup2 cgroup2"
            else:
                opts = ",".join(m.controllers)
                if all(c.startswith("name=") for c in m.controllers):
                    opts = "none," + opts
                mount = f"mount -t cgroup -o {opts} cgroup"
            cgroup_fs.append(f"mkdir -p {m.mountpoint} && {mount} {m.mountpoint}")
        inner = "\n".join([
            "set -e",
            "mount -t proc proc /proc",
            "mount -t tmpfs -o mode=755 tmpfs /run",
            "mkdir -p /run/systemd/system /run/lock",
            "printf '[Unit]\\nDescription=ocirun test target\\n' > /run/systemd/system/ocirun-test.target",
            # This systemd shares the host's disk.  Whatever pulls in sysinit.target would run the host's
            # boot services on it (systemd-tmpfiles --boot --remove empties /tmp, sysctl, binfmt, journald
            # writing /var/log/journal ...), so those units are masked, and / is read-only in here except
            # for the pytest directory that holds the bundles and the state.
            *[f"ln -s /dev/null /run/systemd/system/{u}" for u in MASKED],
            # the system bus, without the host's dependencies (for test_through_the_system_bus only)
            "printf '[Unit]\\nDefaultDependencies=no\\n[Socket]\\nListenStream=/run/dbus/system_bus_socket\\n'"
            " > /run/systemd/system/dbus.socket",
            "printf '[Unit]\\nDefaultDependencies=no\\nRequires=dbus.socket\\n[Service]\\nExecStart=/usr/bin/"
            "dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\\n'"
            " > /run/systemd/system/dbus.service",
            f"mount --bind {writable} {writable}",
            "mount -o remount,bind,ro /",
            *cgroup_fs,
            f"exec env -i container=ocirun-test PATH=/usr/sbin:/usr/bin:/sbin:/bin {SYSTEMD} --system "
            "--unit=ocirun-test.target --log-target=console --show-status=0",
        ])
        join = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in self.dirs)
        outer = (f"{join} && exec unshare --pid --mount --cgroup --uts --ipc --fork --propagation private "
                 f"bash -c {_quote(inner)}")
        self.proc = subprocess.Popen(["bash", "-c", outer], stdout=self.log, stderr=self.log,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.pid is None:
                try:
                    with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                        kids = f.read().split()
                    if kids and os.readlink(f"/proc/{kids[0]}/exe") == SYSTEMD:
                        self.pid = int(kids[0])
                except OSError:
                    pass
            if self.pid and os.path.exists(f"/proc/{self.pid}/root/run/systemd/private"):
                r = self.run("systemctl", "is-system-running", timeout=10)
                if r.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.1)
        self.log.seek(0)
        raise RuntimeError(f"systemd did not come up: {self.log.read()[-2000:]}")

    def run(self, *args, timeout: float = 60, env=None) -> subprocess.CompletedProcess:
        return run_to_files(["nsenter", "-t", str(self.pid), "-m", "-p", "-C", "--", *args],
                            stdin=subprocess.DEVNULL, timeout=timeout, env=env)

    def show(self, unit: str, *props: str) -> dict:
        r = self.run("systemctl", "show", unit, "-p", ",".join(props))
        out: dict = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
        return {k: v[0] if len(v) == 1 else v for k, v in out.items()}

    def host_dir(self, hierarchy: str, unit: str, slice_path: str = "system.slice") -> str:
        return os.path.join(CG, hierarchy, self.name, slice_path, unit)

    def close(self) -> None:
        if self.pid:
            self.run("systemctl", "exit", "0", timeout=20)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            if self.pid:
                os.kill(self.pid, 9)
            self.proc.wait(timeout=10)
        for d in self.dirs:
            for top, subdirs, _ in os.walk(d, topdown=False):
                for s in subdirs:
                    os.rmdir(os.path.join(top, s))
            os.rmdir(d)
        self.log.close()


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    if _systemd_is_pid1():
        pytest.skip("systemd already runs this host: test it directly (not done by this module)")
    if not os.path.exists(SYSTEMD) or not shutil.which("nsenter") or not shutil.which("unshare"):
        pytest.skip(f"needs {SYSTEMD}, nsenter and unshare")
    ns = SystemdNS(str(tmp_path_factory.mktemp("systemd")), str(tmp_path_factory.getbasetemp()))
    try:
        ns.wait_ready()
        yield ns
    finally:
        ns.close()


class SdOci:
    """ocirun --systemd-cgroup inside the systemd namespaces, with its own state root."""

    def __init__(self, ns: SystemdNS, tmp_path, rootfs: str):
        self.ns, self.tmp, self.rootfs = ns, tmp_path, rootfs
        self.root = str(tmp_path / "state")
        self.made: list[str] = []

    def __call__(self, *args, **kw):
        return self.ns.run(OCIRUN, "--root", self.root, "--systemd-cgroup", *args, **kw)

    def bundle(self, script: str, cid: str, cgroups_path: str | None = None, resources: dict | None = None):
        from ocirun.specgen import default_spec
        spec = default_spec(args=["sh", "-c", script], terminal=False)
        spec["root"] = {"path": self.rootfs, "readonly": True}
        if cgroups_path is not None:
            spec["linux"]["cgroupsPath"] = cgroups_path
        if resources:
            spec["linux"].setdefault("resources", {}).update(resources)
        b = self.tmp / f"bundle-{cid}"
        b.mkdir()
        (b / "config.json").write_text(json.dumps(spec))
        return str(b)

    def create(self, cid: str, script: str = "sleep 1000", start: bool = True, **kw):
        b = self.bundle(script, cid, **kw)
        self.made.append(cid)
        r = self("create", "--bundle", b, cid)
        assert r.returncode == 0, r.stderr
        if start:
            r = self("start", cid)
            assert r.returncode == 0, r.stderr
        return json.loads(self("state", cid).stdout)


@pytest.fixture
def soci(sd, tmp_path, rootfs):
    o = SdOci(sd, tmp_path, rootfs)
    yield o
    for cid in o.made:
        o("delete", "--force", cid)
    assert not os.path.exists(o.root) or os.listdir(o.root) == []


def _name() -> str:
    return uuid.uuid4().hex[:10]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_scope_with_properties_and_limits(sd, soci):
    n = _name()
    unit = f"ocirun-{n}.scope"
    st = soci.create("c1", cgroups_path=f"system.slice:ocirun:{n}",
                     resources={"memory": {"limit": 100 * 1024 * 1024}, "pids": {"limit": 42},
                                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}})
    p = sd.show(unit, "ActiveState", "Slice", "Delegate", "MemoryLimit", "TasksMax", "CPUShares",
                "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "ControlGroup", "Description", "DevicePolicy",
                "DeviceAllow", "MemoryAccounting", "TasksAccounting")
    assert p["ActiveState"] == "active" and p["Slice"] == "system.slice" and p["Delegate"] == "yes"
    assert p["ControlGroup"] == f"/system.slice/{unit}" and p["Description"] == "ocirun container c1"
    assert p["MemoryLimit"] == str(100 * 1024 * 1024) and p["TasksMax"] == "42" and p["CPUShares"] == "512"
    assert p["CPUQuotaPerSecUSec"] == "500ms" and p["CPUQuotaPeriodUSec"] == "100ms"
    assert p["MemoryAccounting"] == "yes" and p["TasksAccounting"] == "yes"
    # the default device list, told to systemd as well
    assert p["DevicePolicy"] == "strict"
    assert {"/dev/char/1:3 rwm", "/dev/char/5:2 rwm", "char-pts rwm"} <= set(p["DeviceAllow"])
    # the same limits in the cgroup files, also in the hierarchies systemd does not manage (cpuset, freezer)
    assert _read(sd.host_dir("memory", unit) + "/memory.limit_in_bytes") == str(100 * 1024 * 1024)
    assert _read(sd.host_dir("pids", unit) + "/pids.max") == "42"
    assert _read(sd.host_dir("cpu", unit) + "/cpu.cfs_quota_us") == "50000"
    assert _read(sd.host_dir("cpuset", unit) + "/cpuset.cpus") == "0"
    assert "c 1:3 rwm" in _read(sd.host_dir("devices", unit) + "/devices.list").splitlines()
    host_pid = int(_read(sd.host_dir("freezer", unit) + "/cgroup.procs").split()[0])
    assert host_pid > 0
    r = soci("exec", "c1", "cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert f"memory:/system.slice/{unit}" in r.stdout and f"freezer:/system.slice/{unit}" in r.stdout
    assert st["status"] == "running"


def test_update_pause_ps_events(sd, soci):
    n = _name()
    unit = f"ocirun-{n}.scope"
    st = soci.create("c1", cgroups_path=f"system.slice:ocirun:{n}", resources={"pids": {"limit": 20}})
    r = soci("update", "--memory", "200000000", "--pids-limit", "50", "--cpu-quota", "20000", "c1")
    assert r.returncode == 0, r.stderr
    p = sd.show(unit, "MemoryLimit", "TasksMax", "CPUQuotaPerSecUSec")
    assert p == {"MemoryLimit": "200000000", "TasksMax": "50", "CPUQuotaPerSecUSec": "200ms"}
    assert _read(sd.host_dir("pids", unit) + "/pids.max") == "50"
    assert _read(sd.host_dir("cpu", unit) + "/cpu.cfs_quota_us") == "20000"
    ps = soci("ps", "--format", "json", "c1")
    assert json.loads(ps.stdout) == [st["pid"]]
    assert soci("pause", "c1").returncode == 0
    assert json.loads(soci("state", "c1").stdout)["status"] == "paused"
    assert _read(sd.host_dir("freezer", unit) + "/freezer.state") == "FROZEN"
    assert soci("resume", "c1").returncode == 0
    ev = json.loads(soci("events", "--stats", "c1").stdout)
    assert ev["data"]["pids"] == {"current": 1, "limit": 50}
    assert ev["data"]["memory"]["usage"]["limit"] == 199999488       # page-aligned by the kernel


def test_delete_stops_the_unit_and_removes_every_directory(sd, soci):
    n = _name()
    unit = f"ocirun-{n}.scope"
    soci.create("c1", cgroups_path=f"system.slice:ocirun:{n}")
    dirs = [sd.host_dir(h, unit) for h in ("memory", "pids", "cpuset", "freezer", "systemd")
            if os.path.isdir(os.path.join(CG, h))]
    assert all(os.path.isdir(d) for d in dirs)
    r = soci("delete", "--force", "c1")
    assert r.returncode == 0, r.stderr
    assert sd.show(unit, "LoadState", "ActiveState") == {"LoadState": "not-found", "ActiveState": "inactive"}
    assert [d for d in dirs if os.path.exists(d)] == []


def test_default_cgroups_path_and_nested_slice(sd, soci):
    st = soci.create("dflt-" + _name())
    cid = st["id"]
    assert sd.show(f"ocirun-{cid}.scope", "ActiveState", "Slice") == {"ActiveState": "active",
                                                                       "Slice": "system.slice"}
    n = _name()
    soci.create("nest", cgroups_path=f"ocirun-test.slice:pfx:{n}")
    unit = f"pfx-{n}.scope"
    assert sd.show(unit, "ControlGroup")["ControlGroup"] == f"/ocirun.slice/ocirun-test.slice/{unit}"
    assert os.path.isdir(sd.host_dir("pids", unit, "ocirun.slice/ocirun-test.slice"))


def test_same_unit_twice_is_refused_and_leaves_the_first_alone(sd, soci):
    n = _name()
    unit = f"ocirun-{n}.scope"
    soci.create("first", cgroups_path=f"system.slice:ocirun:{n}")
    b = soci.bundle("true", "second", cgroups_path=f"system.slice:ocirun:{n}")
    r = soci("run", "--bundle", b, "second")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == (
        f"ocirun: systemd: start {unit}: org.freedesktop.systemd1.UnitExists: Unit {unit} was already loaded "
        "or has a fragment file.")
    assert sorted(os.listdir(soci.root)) == ["first"]
    assert sd.show(unit, "ActiveState")["ActiveState"] == "active"
    assert json.loads(soci("state", "first").stdout)["status"] == "running"


def test_bad_systemd_paths(sd, soci):
    for path, msg in [("nocolons", 'expected cgroupsPath to be of format "slice:prefix:name"'),
                      ("a--b.slice:p:n", "empty component between dashes"),
                      ("system.slice:p:x.slice", "a slice as the container's unit is not supported")]:
        b = soci.bundle("true", "bad-" + _name(), cgroups_path=path)
        r = soci("run", "--bundle", b, "x")
        assert r.returncode != 0 and msg in r.stderr, r.stderr
        assert not os.path.exists(soci.root) or os.listdir(soci.root) == []


def test_no_systemd_here_is_one_clear_line(oci):
    if _systemd_is_pid1():
        pytest.skip("systemd runs this host")
    spec = oci.config(args=("true",))
    spec["linux"]["cgroupsPath"] = "system.slice:ocirun:nosd"
    oci.write(spec)
    r = oci("--systemd-cgroup", "run", "--bundle", oci.bundle, "c1")
    assert r.returncode == 1
    assert r.stderr == ("ocirun: systemd cgroup driver: systemd is not running (no /run/systemd/system); cannot "
                        "create ocirun-nosd.scope in system.slice: use the cgroupfs driver (drop --systemd-cgroup)\n")
    assert oci.ids() == []


def test_the_test_systemd_cannot_touch_the_host(sd, tmp_path):
    # / is read-only in its namespaces (only the pytest directory is writable) and sysinit.target is masked
    probe = "/var/tmp/ocirun-sdtest-probe"
    r = sd.run("touch", probe)
    assert r.returncode != 0 and "Read-only file system" in r.stderr and not os.path.exists(probe)
    assert sd.run("touch", str(tmp_path / "ok")).returncode == 0 and (tmp_path / "ok").exists()
    assert sd.show("sysinit.target", "LoadState") == {"LoadState": "masked"}
    r = sd.run("systemctl", "start", "systemd-tmpfiles-setup.service")
    assert r.returncode != 0 and "masked" in r.stderr
    active = sd.run("systemctl", "list-units", "--state=active", "--no-legend", "--plain").stdout.split("\n")
    assert [u for u in active if ".service" in u or ".socket" in u or ".timer" in u] == []


def test_the_test_systemd_has_a_cgroup_tmpfs_of_its_own(sd):
    """systemd remounts /sys/fs/cgroup read-only once it has set it up, and makes the controller
    directories it wants (``cpu,cpuacct``, ``net_cls,net_prio`` and their symlinks, ``hugetlb``...).
    A remount changes the superblock, which a bind or a private mount namespace still shares: with
    the host's tmpfs, the host's /sys/fs/cgroup became read-only and got those entries (issue 11).
    Its own tmpfs takes all of it, with the host's hierarchies mounted in it again."""
    inside = [m for m in mountinfo.read(f"/proc/{sd.pid}/mountinfo") if m.mountpoint == CG][-1]
    entries, device, readonly = _cgroup_fs_state()
    assert inside.fstype == "tmpfs" and inside.device != device
    assert (entries, device, readonly) == sd.host_cgroup_fs
    assert readonly is False
    r = sd.run("ls", CG)
    assert r.returncode == 0 and {os.path.basename(m.mountpoint) for m in sd.mounts} <= set(r.stdout.split())


def test_through_the_system_bus(sd, soci):
    """The same driver through a dbus-daemon (Hello, AddMatch for JobRemoved) instead of the private socket."""
    if not shutil.which("dbus-daemon"):
        pytest.skip("needs dbus-daemon")
    r = sd.run("systemctl", "start", "dbus.socket", "dbus.service")
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 10

        def owned() -> bool:    # listed with a pid, not just "(activatable)"
            out = sd.run("busctl", "--system", "list", "--no-legend").stdout
            return any(line.split()[:2] == ["org.freedesktop.systemd1", "1"] for line in out.splitlines())

        while not owned():
            assert time.monotonic() < deadline, "systemd did not join the bus"
            time.sleep(0.1)
        n = _name()
        unit = f"ocirun-{n}.scope"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "OCIRUN_SYSTEMD_BUS": "unix:path=/run/dbus/system_bus_socket"}
        b = soci.bundle("sleep 1000", "bus", cgroups_path=f"system.slice:ocirun:{n}",
                        resources={"pids": {"limit": 7}})
        soci.made.append("bus")
        r = sd.run(OCIRUN, "--root", soci.root, "--systemd-cgroup", "create", "--bundle", b, "bus", env=env)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(soci.root, "bus", "state.json")) as f:
            cg = json.load(f)["cgroup"]
        assert cg["bus"] == "unix:path=/run/dbus/system_bus_socket" and cg["is_bus"] is True
        assert sd.show(unit, "ActiveState", "TasksMax") == {"ActiveState": "active", "TasksMax": "7"}
        r = soci("delete", "--force", "bus")           # no override: the bus is taken from the state
        assert r.returncode == 0, r.stderr
        assert sd.show(unit, "LoadState")["LoadState"] == "not-found"
        assert not os.path.exists(sd.host_dir("pids", unit))
    finally:
        sd.run("systemctl", "stop", "dbus.service", "dbus.socket")
