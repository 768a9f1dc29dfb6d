"""update, pause/resume, ps, events and kill --all on real containers, through the CLI (root).

Each container gets its own cgroup ``/ocirun-test/<unique>``; limits are checked in the cgroup files from the
host side and, where it means something, from inside the container (through a read-only cgroup mount,
reported into a bind-mounted directory).  Teardown (the ``oci`` fixture) force-deletes what is left; this
file also fails a test whose cgroup directories survive.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import time
import uuid

import pytest

from ocirun import cgroups
from ocirun.errors import CgroupError

from .conftest import OCIRUN

pytestmark = pytest.mark.root

ROOT = "/sys/fs/cgroup"


def _mode():
    try:
        return cgroups.detect_mode()
    except CgroupError:
        return None


MODE = _mode()
V1 = MODE in ("v1", "hybrid")
need_v1 = pytest.mark.skipif(not V1, reason="checks cgroup v1 files")
SWAP = os.path.exists(f"{ROOT}/memory/memory.memsw.limit_in_bytes")


class Box:
    """One detached container with its own cgroup, an /out dir shared with the host."""

    def __init__(self, oci, tmp_path, script: str, cid: str = "c1", resources: dict | None = None,
                 start: bool = True, cgroup_mount: bool = True):
        self.oci = oci
        self.cid = cid
        self.name = f"ocirun-test-{uuid.uuid4().hex[:10]}"
        self.out = str(tmp_path / f"out-{cid}")
        os.makedirs(self.out, exist_ok=True)
        spec = oci.config(args=("sh", "-c", script))
        spec["linux"]["cgroupsPath"] = f"/ocirun-test/{self.name}"
        if resources:
            spec["linux"].setdefault("resources", {}).update(resources)
        spec["mounts"].append({"destination": "/out", "type": "bind", "source": self.out,
                               "options": ["rbind", "rw"]})
        if cgroup_mount:
            spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                   "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
        self.bundle = oci.write(spec, bundle=str(tmp_path / f"bundle-{cid}"))
        oci("create", "--bundle", self.bundle, cid, check=True)
        if start:
            oci("start", cid, check=True)
        self.pid = oci.state(cid)["pid"]

    def cg(self, ctrl: str, name: str = "") -> str:
        if V1:
            return os.path.join(ROOT, ctrl, "ocirun-test", self.name, name)
        return os.path.join(ROOT, "ocirun-test", self.name, name)

    def read(self, ctrl: str, name: str) -> str:
        with open(self.cg(ctrl, name)) as f:
            return f.read().strip()

    def procs(self) -> list[int]:
        return sorted(int(x) for x in self.read("pids" if V1 else "", "cgroup.procs").split())

    def wait_file(self, name: str, timeout: float = 10.0, pred=bool) -> str:
        path = os.path.join(self.out, name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    text = f.read().strip()
                if pred(text):
                    return text
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{path} did not appear (or never matched) within {timeout}s")

    def status(self) -> str:
        return self.oci.state(self.cid)["status"]

    def wait_status(self, want: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status() == want:
                return
            time.sleep(0.05)
        raise AssertionError(f"status is {self.status()}, wanted {want}")

    def leftovers(self) -> list[str]:
        return glob.glob(f"{ROOT}/*/ocirun-test/{self.name}") + glob.glob(f"{ROOT}/ocirun-test/{self.name}")


@pytest.fixture
def box(oci, tmp_path):
    made: list[Box] = []

    def make(script: str = "sleep 1000", **kw) -> Box:
        b = Box(oci, tmp_path, script, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        oci("delete", "--force", b.cid)
    left = [d for b in made for d in b.leftovers()]
    assert left == [], f"cgroups left behind: {left}"


# A container that reports its own cgroup files into /out, over and over.
REPORT = ("while true; do "
          "cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /out/mem.tmp && mv /out/mem.tmp /out/mem; "
          "cat /sys/fs/cgroup/pids/pids.max > /out/pids.tmp && mv /out/pids.tmp /out/pids; "
          "sleep 0.05; done")


# ---- update -----------------------------------------------------------------------------------------------
@need_v1
def test_update_flags_host_and_inside(box):
    b = box(REPORT, resources={"memory": {"limit": 100 * 1024 * 1024}})
    assert b.wait_file("mem") == str(100 * 1024 * 1024)
    r = b.oci("update", "--memory", "64M", "--memory-reservation", "32m", "--cpu-share", "512",
              "--cpu-quota", "20000", "--cpu-period", "50000", "--pids-limit", "42", b.cid)
    assert r.returncode == 0, r.stderr
    assert b.read("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert b.read("memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert b.read("cpu", "cpu.shares") == "512"
    assert b.read("cpu", "cpu.cfs_quota_us") == "20000"
    assert b.read("cpu", "cpu.cfs_period_us") == "50000"
    assert b.read("pids", "pids.max") == "42"
    # the container sees its own cgroup's new values
    assert b.wait_file("mem", pred=lambda t: t == str(64 << 20)) == str(64 << 20)
    assert b.wait_file("pids", pred=lambda t: t == "42") == "42"
    # --cpu-shares is accepted as an alias of runc's --cpu-share; -1 means unlimited
    assert b.oci("update", "--cpu-shares", "256", "--pids-limit", "-1", b.cid).returncode == 0
    assert b.read("cpu", "cpu.shares") == "256"
    assert b.read("pids", "pids.max") == "max"
    assert b.read("cpu", "cpu.cfs_quota_us") == "20000"  # untouched


@need_v1
def test_update_from_file_podman_shape(box, tmp_path):
    b = box()
    f = tmp_path / "podman123"
    limit, swap = 128 << 20, 256 << 20
    f.write_text(json.dumps({"memory": {"limit": limit, "swap": swap if SWAP else 0}}))
    r = b.oci("update", f"--resources={f}", b.cid)
    assert r.returncode == 0, r.stderr
    assert b.read("memory", "memory.limit_in_bytes") == str(limit)
    if SWAP:
        assert b.read("memory", "memory.memsw.limit_in_bytes") == str(swap)
    # -r FILE, and the other flags are ignored when a file is given (as runc does)
    f.write_text(json.dumps({"pids": {"limit": 77}}))
    assert b.oci("update", "-r", str(f), "--pids-limit", "5", b.cid).returncode == 0
    assert b.read("pids", "pids.max") == "77"
    assert b.read("memory", "memory.limit_in_bytes") == str(limit)


@need_v1
def test_update_from_stdin_docker_shape_zeros_unchanged(box):
    b = box(resources={"cpu": {"shares": 300, "quota": 30000, "period": 100000}})
    assert b.read("cpu", "cpu.shares") == "300"
    swap = 268435456 if SWAP else 0
    doc = {"memory": {"limit": 134217728, "reservation": 0, "swap": swap, "kernel": 0},
           "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}}
    r = b.oci("update", "--resources", "-", b.cid, input=json.dumps(doc))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""   # no warning for a zero kernel limit
    assert b.read("memory", "memory.limit_in_bytes") == "134217728"
    if SWAP:
        assert b.read("memory", "memory.memsw.limit_in_bytes") == "268435456"
    assert b.read("cpu", "cpu.shares") == "300"
    assert b.read("cpu", "cpu.cfs_quota_us") == "30000"
    # what was applied is kept for later updates
    with open(os.path.join(b.oci.root, b.cid, "resources.json")) as f:
        saved = json.load(f)
    assert saved["memory"]["limit"] == 134217728
    assert "cpu" not in saved and "blockIO" not in saved


@need_v1
def test_update_merges_successive_updates(box):
    b = box()
    assert b.oci("update", "--memory", "100M", b.cid).returncode == 0
    assert b.oci("update", "--cpu-quota", "40000", b.cid).returncode == 0
    assert b.oci("update", "--pids-limit", "9", b.cid).returncode == 0
    assert b.read("memory", "memory.limit_in_bytes") == str(100 << 20)
    assert b.read("cpu", "cpu.cfs_quota_us") == "40000"
    with open(os.path.join(b.oci.root, b.cid, "resources.json")) as f:
        assert json.load(f) == {"memory": {"limit": 100 << 20}, "cpu": {"quota": 40000}, "pids": {"limit": 9}}


def test_update_kernel_memory_warns_and_is_ignored(box):
    b = box()
    r = b.oci("update", "--kernel-memory", "10M", b.cid)
    assert r.returncode == 0
    assert "Kernel memory settings are ignored and will be removed" in r.stderr
    if V1 and os.path.exists(b.cg("memory", "memory.kmem.limit_in_bytes")):
        assert int(b.read("memory", "memory.kmem.limit_in_bytes")) > 10 << 20


def test_update_refusals(box, oci, tmp_path):
    b = box()
    r = oci("update", "--l3-cache-schema", "L3:0=f", b.cid)
    assert r.returncode == 1 and "Intel RDT/CAT: l3 cache schema is not enabled" in r.stderr
    r = oci("update", "--mem-bw-schema", "MB:0=50", b.cid)
    assert r.returncode == 1 and "Intel RDT/MBA: memory bandwidth schema is not enabled" in r.stderr
    r = oci("update", "--memory", "abc", b.cid)
    assert r.returncode == 1 and "invalid value for memory: invalid size: 'abc'" in r.stderr
    r = oci("update", "--cpu-quota", "x", b.cid)
    assert r.returncode == 1 and "invalid value for cpu-quota" in r.stderr
    r = oci("update", "--pids-limit", "x", b.cid)
    assert r.returncode == 1 and 'invalid value "x" for flag -pids-limit' in r.stderr
    r = oci("update", "-r", "-", b.cid, input='{"memory": {"limit": "x"}}')
    assert r.returncode == 1 and 'memory.limit: "x" is not of type "integer"' in r.stderr
    r = oci("update", "-r", "-", b.cid, input='{"memory": ')
    assert r.returncode == 1 and "invalid JSON" in r.stderr
    r = oci("update", "-r", str(tmp_path / "missing.json"), b.cid)
    assert r.returncode == 1 and "missing.json: no such file or directory" in r.stderr
    r = oci("update", "--memory", "10M")
    assert r.returncode == 1 and '"update" requires exactly 1 argument(s)' in r.stderr
    r = oci("update", "--memory", "10M", "nosuch")
    assert r.returncode == 1 and "container nosuch does not exist" in r.stderr


def test_update_refused_on_stopped_container(box):
    b = box("exit 0")
    b.wait_status("stopped")
    r = b.oci("update", "--memory", "64M", b.cid)
    assert r.returncode == 1
    assert r.stderr.strip().endswith("container not running")
    assert not os.path.exists(os.path.join(b.oci.root, b.cid, "resources.json"))


# ---- pause / resume ----------------------------------------------------------------------------------------
COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /out/n.tmp; mv /out/n.tmp /out/n; sleep 0.02; done"


def test_pause_resume_freezes_the_process(box):
    b = box(COUNTER)
    b.wait_file("n")
    assert b.oci("pause", b.cid).returncode == 0
    assert b.status() == "paused"
    if V1:
        assert b.read("freezer", "freezer.state") == "FROZEN"
    else:
        assert b.read("", "cgroup.freeze") == "1"
    n1 = b.wait_file("n")
    time.sleep(0.3)
    assert b.wait_file("n") == n1, "the counter moved while paused"
    # runc's wording for the wrong states
    r = b.oci("pause", b.cid)
    assert r.returncode == 1 and r.stderr.strip().endswith("container not running")
    assert b.oci("resume", b.cid).returncode == 0
    assert b.status() == "running"
    if V1:
        assert b.read("freezer", "freezer.state") == "THAWED"
    b.wait_file("n", pred=lambda t: int(t) > int(n1) + 2)
    r = b.oci("resume", b.cid)
    assert r.returncode == 1 and r.stderr.strip().endswith("container not paused")


def test_pause_created_container(box):
    b = box(start=False)
    assert b.oci("pause", b.cid).returncode == 0
    if V1:
        assert b.read("freezer", "freezer.state") == "FROZEN"
    r = b.oci("ps", "--format", "json", b.cid)
    assert json.loads(r.stdout) == [b.pid]
    assert b.oci("resume", b.cid).returncode == 0
    assert b.status() == "created"


def test_pause_resume_errors(box, oci):
    b = box("exit 0")
    b.wait_status("stopped")
    r = oci("pause", b.cid)
    assert r.returncode == 1 and r.stderr.strip().endswith("container not running")
    r = oci("resume", b.cid)
    assert r.returncode == 1 and r.stderr.strip().endswith("container not paused")
    r = oci("pause", "nosuch")
    assert r.returncode == 1 and "container nosuch does not exist" in r.stderr
    r = oci("pause")
    assert r.returncode == 1 and '"pause" requires exactly 1 argument(s)' in r.stderr


def test_kill_sigkill_of_paused_container(box):
    b = box()
    assert b.oci("pause", b.cid).returncode == 0
    assert b.oci("kill", b.cid, "9").returncode == 0
    b.wait_status("stopped")   # runc thaws the cgroup for SIGKILL, or the frozen init would never die


def test_delete_force_of_paused_container(box):
    b = box()
    assert b.oci("pause", b.cid).returncode == 0
    r = b.oci("delete", b.cid)
    assert r.returncode == 1 and "that is not stopped: paused" in r.stderr
    assert b.oci("delete", "--force", b.cid).returncode == 0
    assert b.leftovers() == []


# ---- ps -----------------------------------------------------------------------------------------------------
FAMILY = "sleep 1000 & sleep 1001 & echo ready > /out/ready; wait"


def test_ps_json_is_the_cgroup_pids(box):
    b = box(FAMILY)
    b.wait_file("ready")
    deadline = time.monotonic() + 5
    while len(b.procs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = b.oci("ps", "--format", "json", b.cid)
    assert r.returncode == 0, r.stderr
    pids = json.loads(r.stdout)
    assert pids == b.procs()
    assert len(pids) == 3 and b.pid in pids
    assert r.stdout == json.dumps(pids, separators=(",", ":")) + "\n"   # compact, as runc prints
    assert json.loads(b.oci("ps", "-f", "json", b.cid).stdout) == pids


def test_ps_table_filters_by_pid_column(box):
    b = box(FAMILY)
    b.wait_file("ready")
    r = b.oci("ps", b.cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    pids = {int(line.split()[1]) for line in lines[1:]}
    assert pids == set(b.procs())
    # ps options after the id; "--" keeps the parser from reading them as ocirun's flags
    r = b.oci("ps", b.cid, "--", "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in lines[1:]) == ["sh", "sleep", "sleep"]
    r = b.oci("ps", b.cid, "--", "-o", "comm")
    assert r.returncode == 1 and "couldn't find PID field in ps output" in r.stderr
    r = b.oci("ps", "--format", "xml", b.cid)
    assert r.returncode == 1 and "invalid format option" in r.stderr


def test_ps_options_after_id_runc_spelling(box):
    b = box()
    r = b.oci("ps", b.cid, "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["PID", "COMMAND"]


def test_ps_of_stopped_container(box):
    b = box("exit 0")
    b.wait_status("stopped")
    r = b.oci("ps", "-f", "json", b.cid)
    assert r.returncode == 0 and r.stdout == "null\n"   # runc encodes no pids as null
    r = b.oci("ps", b.cid)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1


# ---- events -------------------------------------------------------------------------------------------------
STATS_KEYS = ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]


@need_v1
def test_events_stats_once(box):
    b = box(FAMILY, resources={"memory": {"limit": 90 * 1024 * 1024}, "pids": {"limit": 20}})
    b.wait_file("ready")
    r = b.oci("events", "--stats", b.cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1
    ev = json.loads(r.stdout)
    assert list(ev) == ["type", "id", "data"]
    assert ev["type"] == "stats" and ev["id"] == b.cid
    data = ev["data"]
    assert list(data) == STATS_KEYS
    assert data["intel_rdt"] == {} and data["network_interfaces"] is None
    assert list(data["cpu"]) == ["usage", "throttling"]
    assert data["cpu"]["usage"]["total"] > 0
    assert {"kernel", "user"} <= set(data["cpu"]["usage"])
    assert data["memory"]["usage"]["limit"] == 90 * 1024 * 1024
    assert list(data["memory"])[-5:] == ["usage", "swap", "kernel", "kernelTCP", "raw"]
    assert data["memory"]["usage"]["usage"] > 0
    assert data["pids"] == {"current": 3, "limit": 20}
    assert data["cpuset"]["cpus"] and "cpu_exclusive" in data["cpuset"]
    assert list(data["memory"]["raw"]) == sorted(data["memory"]["raw"])
    assert r.stdout.startswith('{"type":"stats","id":')   # compact, Go's encoder


def test_events_errors(box, oci):
    b = box("exit 0")
    b.wait_status("stopped")
    r = oci("events", "--stats", b.cid)
    assert r.returncode == 1 and f"container with id {b.cid} is not running" in r.stderr
    r = oci("events", "--interval", "0", b.cid)
    assert r.returncode == 1 and "duration interval must be greater than 0" in r.stderr
    r = oci("events", "--interval", "abc", b.cid)
    assert r.returncode == 1 and 'invalid value "abc" for flag -interval: parse error' in r.stderr


def _events_proc(oci, tmp_path, *args):
    out = open(tmp_path / "events.out", "w+")
    err = open(tmp_path / "events.err", "w+")
    p = subprocess.Popen([OCIRUN, "--root", oci.root, "events", *args], stdout=out, stderr=err,
                         stdin=subprocess.DEVNULL)
    return p, out, err


def _records(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines() if line]


def test_events_interval_streams_until_the_container_stops(box, oci, tmp_path):
    b = box()
    p, out, err = _events_proc(oci, tmp_path, "--interval", "200ms", b.cid)
    try:
        deadline = time.monotonic() + 10
        while len(_records(tmp_path / "events.out")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        recs = _records(tmp_path / "events.out")
        assert len(recs) >= 3, open(tmp_path / "events.err").read()
        assert all(r["type"] == "stats" and r["id"] == b.cid and list(r["data"]) == STATS_KEYS for r in recs)
        assert p.poll() is None
        assert b.oci("kill", b.cid, "KILL").returncode == 0
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.close()
        err.close()


@need_v1
def test_events_reports_oom(box, oci, tmp_path):
    limit = 24 << 20
    mem = {"limit": limit}
    if SWAP:
        mem["swap"] = limit
    # tail buffers /dev/zero's endless "line" until the OOM killer takes it
    b = box("while [ ! -e /out/go ]; do sleep 0.05; done; tail /dev/zero; echo done > /out/oomed; sleep 1000",
            resources={"memory": mem})
    p, out, err = _events_proc(oci, tmp_path, "--interval", "10s", b.cid)
    try:
        time.sleep(0.5)   # let events register its notification
        open(os.path.join(b.out, "go"), "w").close()
        b.wait_file("oomed", timeout=30)
        deadline = time.monotonic() + 10
        while not _records(tmp_path / "events.out") and time.monotonic() < deadline:
            time.sleep(0.05)
        recs = _records(tmp_path / "events.out")
        assert {"type": "oom", "id": b.cid} in recs, (recs, open(tmp_path / "events.err").read())
        with open(tmp_path / "events.out") as f:
            assert '{"type":"oom","id":"%s"}\n' % b.cid in f.read()
        assert b.oci("kill", b.cid, "KILL").returncode == 0
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.close()
        err.close()


# ---- kill --all ---------------------------------------------------------------------------------------------
def test_kill_all_signals_every_process(box):
    b = box(FAMILY)
    b.wait_file("ready")
    deadline = time.monotonic() + 5
    while len(b.procs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = b.procs()
    assert len(pids) == 3
    r = b.oci("kill", "--all", b.cid, "9")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while b.procs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.procs() == []
    b.wait_status("stopped")
    if V1:
        assert b.read("freezer", "freezer.state") == "THAWED"
    for pid in pids:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split(") ")[1][0] in "ZX"
        except ProcessLookupError:
            pass


def test_kill_all_of_paused_container(box):
    b = box(FAMILY)
    b.wait_file("ready")
    assert b.oci("pause", b.cid).returncode == 0
    assert b.oci("kill", "-a", b.cid, "KILL").returncode == 0
    b.wait_status("stopped")
    assert b.procs() == []


# ---- the pure helpers (no container needed) ----------------------------------------------------------------
def test_helpers_sizes_durations_and_pruning():
    from ocirun import update as U
    from ocirun.commands import inspect as I, update as C
    from ocirun.commands.argv import Usage
    from ocirun.errors import ConfigError

    assert C.ram_in_bytes("512") == 512
    assert C.ram_in_bytes("64m") == C.ram_in_bytes("64MiB") == C.ram_in_bytes("64 MB") == 64 << 20
    assert C.ram_in_bytes("1.5g") == 3 << 29
    for bad in ("abc", "-5", "1.2.3m", "10x"):
        with pytest.raises(ConfigError, match="invalid size"):
            C.ram_in_bytes(bad)
    assert I.parse_duration("5s") == 5 and I.parse_duration("250ms") == 0.25
    assert I.parse_duration("1m30s") == 90 and I.parse_duration("0") == 0
    assert I.parse_duration("-1s") == -1
    with pytest.raises(Usage, match='invalid value "5" for flag -interval'):
        I.parse_duration("5")
    docker = {"memory": {"limit": 134217728, "reservation": 0, "swap": 268435456, "kernel": 0},
              "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}}
    assert U.prune_unchanged(docker) == {"memory": {"limit": 134217728, "swap": 268435456}}
    # zero stays meaningful where runc's field is a pointer
    assert U.prune_unchanged({"memory": {"swappiness": 0}, "cpu": {"idle": 0}, "pids": {"limit": 0}}) == \
        {"memory": {"swappiness": 0}, "cpu": {"idle": 0}}
    assert U.merge({"memory": {"limit": 1, "swap": 2}}, {"memory": {"limit": 3}, "pids": {"limit": 4}}) == \
        {"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 4}}
    flags = {"memory": "-1", "cpu-share": "512", "cpu-quota": "-1", "pids-limit": "-1", "cpuset-cpus": "0"}
    assert C.resources_from_flags(flags) == {"memory": {"limit": -1}, "cpu": {"cpus": "0", "shares": 512,
                                                                                  "quota": -1},
                                             "pids": {"limit": -1}}
    with pytest.raises(ConfigError, match="invalid value for cpu-share"):
        C.resources_from_flags({"cpu-share": "-5"})


def test_runc_stats_shape_of_an_empty_record():
    from ocirun.events import runc_stats

    data = runc_stats({})
    assert list(data) == STATS_KEYS
    assert data["cpu"] == {"usage": {"kernel": 0, "user": 0}, "throttling": {}}
    assert list(data["cpuset"]) == ["cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                                    "memory_spread_page", "memory_spread_slab", "memory_pressure",
                                    "sched_load_balance", "sched_relax_domain_level"]
    assert data["memory"] == {k: {"limit": 0, "failcnt": 0} for k in ("usage", "swap", "kernel", "kernelTCP")}
    assert data["pids"] == {} and data["blkio"] == {} and data["hugetlb"] == {}
    assert json.dumps(data, separators=(",", ":")).endswith('"intel_rdt":{},"network_interfaces":null}')
