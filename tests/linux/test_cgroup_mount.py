"""The `cgroup` mount on a cgroup v1 / hybrid host: the container sees its own cgroup, nothing else.

Each hierarchy at /sys/fs/cgroup/<name> inside is a bind of the container's own cgroup directory in
that hierarchy (runc does the same, or mounts the hierarchy inside the cgroup namespace, whose root is
that directory).  A sibling cgroup made by the test next to the container's is the canary: it must not
be visible, nor may the hierarchy root (``cgroup.sane_behavior``, ``release_agent`` exist only there).
"""
from __future__ import annotations

import itertools
import os

import pytest

from ocirun.cgroups import MODE_UNIFIED, detect_mode

pytestmark = pytest.mark.skipif(detect_mode() == MODE_UNIFIED, reason="needs cgroup v1 or hybrid")

_SERIAL = itertools.count()


def _hierarchies() -> list[str]:
    """The hierarchies mounted at /sys/fs/cgroup/<name> (a stray directory on the tmpfs is none)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")]
    return sorted(p.rsplit("/", 1)[1] for p in points if p.rsplit("/", 1)[0] == "/sys/fs/cgroup")


@pytest.fixture
def parent():
    """A test-owned parent cgroup in every hierarchy holding a canary sibling; removed afterwards."""
    name = f"ocirun-cgmount-{os.getpid()}-{next(_SERIAL)}"
    made = []
    for h in _hierarchies():
        for d in (f"/sys/fs/cgroup/{h}/{name}", f"/sys/fs/cgroup/{h}/{name}/canary"):
            try:
                os.mkdir(d)
                made.append(d)
            except OSError:
                break
    yield name
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _listing(stdout: str) -> dict[str, list[str]]:
    out, cur = {}, None
    for line in stdout.splitlines():
        if line.startswith("== "):
            cur = out.setdefault(line[3:], [])
        elif cur is not None and line:
            cur.append(line)
    return out


@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroupns", "no-cgroupns"])
def test_cgroup_mount_shows_only_the_containers_cgroup(oci, parent, cgroupns):
    """runc 1.1.5, default config on this hybrid host: /sys/fs/cgroup holds blkio cpu cpuacct cpuset
    devices freezer memory pids systemd (no `unified`), each showing only the container's cgroup, with
    and without a cgroup namespace.  ocirun also binds `unified` (the container's cgroup2 directory).
    Before the fix, with a cgroup namespace every hierarchy showed the host's root: cgroup.sane_behavior,
    the parent of other tenants' cgroups."""
    spec = oci.config(args=("sh", "-c", "for h in /sys/fs/cgroup/*; do echo \"== ${h##*/}\"; ls -a $h; "
                                        "grep -qx 1 $h/cgroup.procs && echo OWN-PID-1; done"))
    spec["linux"]["cgroupsPath"] = f"/{parent}/c"
    nss = [n for n in spec["linux"]["namespaces"] if n["type"] != "cgroup"]
    spec["linux"]["namespaces"] = nss + ([{"type": "cgroup"}] if cgroupns else [])
    proc = oci.run(spec)
    assert proc.returncode == 0, proc.stderr
    seen = _listing(proc.stdout)
    assert set(_hierarchies()) <= set(seen), seen.keys()
    for h, names in seen.items():
        assert "cgroup.sane_behavior" not in names and "release_agent" not in names, (h, names)
        assert "canary" not in names and parent not in names and "c" not in names, (h, names)
        assert "OWN-PID-1" in names, (h, names)   # pid 1 of the container is in the cgroup shown
    assert "memory.limit_in_bytes" in seen["memory"]


def test_rw_cgroup_mount_writes_only_below_the_containers_cgroup(oci, parent):
    """With ``rw`` the container's root may make sub-cgroups of its own cgroup (as under runc), and
    reach nothing above it: ``..`` of the bind is the tmpfs, no release_agent is anywhere below
    /sys/fs/cgroup.  Before the fix (cgroup namespace) ``mkdir /sys/fs/cgroup/memory/x`` made a cgroup
    at the root of the host's memory hierarchy and the process could move itself there."""
    probe = f"ocirun-probe-{os.getpid()}"
    script = (f"mkdir /sys/fs/cgroup/memory/{probe} && echo $$ > /sys/fs/cgroup/memory/{probe}/cgroup.procs; "
              "grep ':memory:' /proc/self/cgroup; echo '== up'; ls -a /sys/fs/cgroup/memory/..; "
              "echo '== release'; find /sys/fs/cgroup -name release_agent; "
              "echo '== canary'; ls -d /sys/fs/cgroup/memory/../canary /sys/fs/cgroup/memory/canary 2>&1; true")
    spec = oci.config(args=("sh", "-c", script))
    spec["linux"]["cgroupsPath"] = f"/{parent}/c"
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "cgroup"] + \
        [{"type": "cgroup"}]
    for m in spec["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    try:
        proc = oci.run(spec)
        on_host_root = os.path.isdir(f"/sys/fs/cgroup/memory/{probe}")
    finally:
        try:
            os.rmdir(f"/sys/fs/cgroup/memory/{probe}")  # only there if the container escaped its cgroup
        except OSError:
            pass
    assert proc.returncode == 0, proc.stderr
    assert not on_host_root
    first, rest = proc.stdout.split("\n", 1)
    assert first.endswith(f":memory:/{probe}"), proc.stdout
    sections = _listing("== first\n" + rest)
    assert "memory" in sections["up"] and "cgroup.procs" not in sections["up"], sections["up"]
    assert sections["release"] == [], sections["release"]
    assert all("No such file" in line for line in sections["canary"]), sections["canary"]
