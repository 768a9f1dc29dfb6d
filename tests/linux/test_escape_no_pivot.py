"""--no-pivot: the host's root stays beneath the container's, with the host's /proc and /sys on it.

The kernel lets a user namespace mount procfs (sysfs) only while a fully visible instance exists in
its mount namespace (mount_too_revealing).  The container's own /proc is not one (maskedPaths cover
files in it), but the host's /proc under the old root was: a container with CAP_SYS_ADMIN could
`unshare -mrpf sh -c 'mount -t proc none /proc'` and get a procfs without the masks.  ocirun now
detaches (or, where the kernel keeps them locked, covers) every full procfs/sysfs mount outside the
rootfs before it moves the rootfs over /, as runc's MS_MOVE path does.

What stays open under --no-pivot, in runc too: with CAP_SYS_ADMIN, `umount -l /` takes the
container's root off the host's and a setns to its own mount namespace lands on the host's root
(docs/security.md, "--no-pivot").
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

#: what `unshare -r` (write uid_map mapping uid 0) and `mount` need inside the container
CAPS = ["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"]
SCRIPT = ("unshare -mrpf sh -c 'mount -t proc none /proc && echo PROC-MOUNTED'; "
          "unshare -mrnf sh -c 'mount -t sysfs none /sys && echo SYSFS-MOUNTED'; echo done")


def _host_pseudo_mounts() -> set[tuple[str, str]]:
    """(mount id, mount point) of the host's /proc and /sys: they must still be there afterwards."""
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    return {(r[0], r[4]) for r in rows if r[4] in ("/proc", "/sys")}


def _spec(oci, userns: bool) -> dict:
    spec = oci.config(args=("sh", "-c", SCRIPT))
    caps = spec["process"]["capabilities"]
    for s in ("bounding", "effective", "permitted"):
        caps[s] = sorted(set(caps[s]) | set(CAPS))
    if userns:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    return spec


@pytest.mark.parametrize("userns", [False, True], ids=["host-userns", "container-userns"])
def test_no_pivot_refuses_a_fresh_procfs_in_a_nested_user_namespace(oci, userns):
    """runc 1.1.5, same bundle (host user namespace): "mount: permission denied (are you root?)" with
    and without --no-pivot.  ocirun before the fix: PROC-MOUNTED under --no-pivot (both cases; in a
    container user namespace the host's mounts are locked and get covered instead of detached)."""
    before = _host_pseudo_mounts()
    oci.write(_spec(oci, userns))
    proc = oci("run", "--no-pivot", "-b", oci.bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["done"], (proc.stdout, proc.stderr)
    assert proc.stderr.count("permission denied") == 2, proc.stderr
    assert _host_pseudo_mounts() == before   # the runtime's mount namespace is untouched


def test_pivot_root_refuses_it_too(oci):
    """The same attack under pivot_root (the default), for comparison: refused before and after."""
    oci.write(_spec(oci, False))
    proc = oci("run", "-b", oci.bundle, "c1")
    assert proc.stdout.splitlines() == ["done"], (proc.stdout, proc.stderr)


@pytest.fixture
def shared_procfs(tmp_path):
    """A procfs on a shared tmpfs of the host, both test-owned: what the container's detach must not reach."""
    import subprocess

    top = tmp_path / "shared"
    top.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "ocirun-test", str(top)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(top)], check=True)
        (top / "p").mkdir()
        subprocess.run(["mount", "-t", "proc", "proc", str(top / "p")], check=True)
        yield str(top / "p")
    finally:
        subprocess.run(["umount", "-R", "-l", str(top)], check=False)


def _is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_no_pivot_with_rshared_propagation_leaves_the_host_mounts(oci, shared_procfs):
    """rootfsPropagation rshared keeps the container's copies of the host's mounts in their peer
    groups: the detach of a procfs whose parent is shared with the host must not propagate there
    (its parent is made a slave first).  The attack is refused all the same."""
    spec = _spec(oci, False)
    spec["linux"]["rootfsPropagation"] = "rshared"
    oci.write(spec)
    proc = oci("run", "--no-pivot", "-b", oci.bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    assert _is_mounted(shared_procfs)
    assert proc.stdout.splitlines() == ["done"], (proc.stdout, proc.stderr)
