"""Mount destinations and symlinks in the image or in a shared volume.

* CVE-2019-16884: the image's /proc is a symlink, so procfs lands where a later mount hides it and
  the runtime reads the image's files at /proc (here: a fake cap_last_cap that would leave
  capabilities in the bounding set).
* CVE-2019-19921: a volume destination that is a symlink to /proc puts the volume over procfs.
* CVE-2021-30465: a directory on a mount destination's path is swapped with a symlink to / by a
  process racing in a shared volume.
* CVE-2024-45310: the same race used to make the runtime create empty files/directories on the host.

The attacker owns the image and the volume's content, not the config (beyond choosing volumes).
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.root

#: CapBnd of runc's default capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE)
DEFAULT_BOUNDING = (1 << 29) | (1 << 5) | (1 << 10)


@pytest.fixture
def own_rootfs(tmp_path, rootfs):
    own = tmp_path / "image"
    shutil.copytree(rootfs, own, symlinks=True)
    return own


def _fake_proc(vol, name="p"):
    """What the attacker leaves in the volume: a /proc lookalike saying the kernel knows 6 caps."""
    d = vol / name / "sys" / "kernel"
    d.mkdir(parents=True)
    (d / "cap_last_cap").write_text("5\n")
    # The runtime mounts through /proc/self/fd/N after pivot_root (masked and read-only paths):
    # make those paths resolve, to a directory of the fake, so that nothing fails by accident.
    fd = vol / name / "self" / "fd"
    fd.mkdir(parents=True)
    (vol / name / "scratch").mkdir()
    for n in range(64):
        os.symlink("/proc/scratch", fd / str(n))
    return vol


def _docker_like(oci, own, vol, args=("sleep", "10")):
    spec = oci.config(args=args)
    spec["root"]["path"] = str(own)
    spec["process"]["noNewPrivileges"] = False  # Docker's default: execve may raise privileges
    spec["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind", "rw"]})
    return spec


def _bounding(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)


def _refused_or_bounded(oci, spec):
    oci.write(spec)
    proc = oci("run", "-d", "-b", oci.bundle, "c1")
    if proc.returncode != 0:  # refused (ocirun says why: "... procfs ...")
        assert oci.ids() == []
        return
    pid = oci.state("c1")["pid"]
    assert _bounding(pid) == DEFAULT_BOUNDING, (
        f"bounding set {_bounding(pid):#x}: the runtime believed a fake /proc (kept capabilities)")


def test_image_proc_symlink_into_a_volume(oci, tmp_path, own_rootfs):
    """CVE-2019-16884: /proc -> /vol/p in the image, the volume mounted after procfs."""
    vol = _fake_proc(tmp_path / "vol")
    os.rmdir(own_rootfs / "proc")
    os.symlink("/vol/p", own_rootfs / "proc")
    _refused_or_bounded(oci, _docker_like(oci, own_rootfs, vol))


def test_volume_destination_symlink_to_proc(oci, tmp_path, own_rootfs):
    """CVE-2019-19921: /vol -> /proc in the image: the volume would be mounted over procfs."""
    _fake_proc(tmp_path / "vol", name=".")
    os.symlink("/proc", own_rootfs / "vol")
    _refused_or_bounded(oci, _docker_like(oci, own_rootfs, tmp_path / "vol"))


def test_mount_over_proc_refused(oci, tmp_path):
    """Asked directly (no symlink), a volume over /proc or a tmpfs over /proc/sys is refused too."""
    vol = _fake_proc(tmp_path / "vol", name=".")
    for dest, extra in (("/proc", {"type": "bind", "source": str(vol), "options": ["rbind"]}),
                        ("/proc/sys", {"type": "tmpfs", "source": "tmpfs"}),
                        ("/proc/self/fd", {"type": "tmpfs", "source": "tmpfs"})):
        spec = oci.config(args=("true",))
        spec["mounts"].append({"destination": dest, **extra})
        proc = oci.run(spec)
        assert proc.returncode != 0 and "procfs" in proc.stderr, (dest, proc.stderr)
        assert oci.ids() == []


# --- the race --------------------------------------------------------------------------------------
RACER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, deadline = sys.argv[1].encode(), sys.argv[2].encode(), time.monotonic() + float(sys.argv[3])
n = 0
while time.monotonic() < deadline:
    if libc.renameat2(-100, a, -100, b, 2) != 0:  # RENAME_EXCHANGE: dir <-> symlink, atomically
        sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
    n += 1
print(n)
"""


def _host_mountpoints() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def test_destination_swapped_with_symlink_race(oci, tmp_path, own_rootfs):
    """CVE-2021-30465 / CVE-2024-45310: while containers are created, a process owning the shared
    volume swaps a directory on the destinations' path with a symlink out of the rootfs.  Every
    mount and every file/dir the runtime creates must stay inside the rootfs (or the volume)."""
    canary = tmp_path / "canary"  # what the symlink points at, seen from the host
    canary.mkdir()
    vol = tmp_path / "vol"
    (vol / "a").mkdir(parents=True)
    os.symlink(str(canary), vol / "a.swap")  # absolute: on the host it is the canary
    src = tmp_path / "src-file"
    src.write_text("bound file\n")
    before = {m for m in _host_mountpoints() if not m.startswith("/tmp/")}

    spec = oci.config(args=("true",))
    spec["root"]["path"] = str(own_rootfs)
    spec["mounts"] += [
        {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
        {"destination": "/vol/a/d1/d2", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]},
        {"destination": "/vol/a/f", "type": "bind", "source": str(src), "options": ["bind", "ro"]},
    ]
    oci.write(spec)
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(vol / "a"), str(vol / "a.swap"), "8"],
                             stdout=subprocess.PIPE, text=True)
    ok = failed = 0
    try:
        time.sleep(0.05)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and ok + failed < 40:
            proc = oci("run", "-b", oci.bundle, "c1")
            if proc.returncode == 0:
                ok += 1
            else:
                failed += 1
                oci("delete", "--force", "c1")
            assert not os.listdir(canary), f"the runtime created {os.listdir(canary)} on the host"
    finally:
        racer.kill()
        racer.communicate()
    assert ok + failed >= 10
    assert not os.listdir(canary)
    after = {m for m in _host_mountpoints() if not m.startswith("/tmp/")}
    # Only what this config mounts counts (engines running on the same host add their own).
    ours = {m for m in after - before if os.path.basename(m) in {"vol", "a", "d1", "d2", "f", "a.swap"}}
    assert ours == set(), f"new host mounts: {ours}"
    # followed in-root, the symlink leads to <rootfs>/<canary path>: that is where things went
    inside = own_rootfs / str(canary).lstrip("/")
    assert ok == 0 or inside.exists() or (vol / "a" / "d1").exists() or (vol / "a.swap" / "d1").exists()


def test_proc_through_a_symlink_refused_in_runcs_words(oci, own_rootfs):
    """runc 1.1.5, image with /proc -> realproc: `error mounting "proc" to rootfs at "/proc": filesystem
    "proc" must be mounted on ordinary directory`; runc's tests match the last words."""
    os.rmdir(own_rootfs / "proc")
    os.mkdir(own_rootfs / "realproc")
    os.symlink("realproc", own_rootfs / "proc")
    spec = oci.config()
    spec["root"]["path"] = str(own_rootfs)
    r = oci.run(spec)
    assert r.returncode == 1
    assert 'filesystem "proc" must be mounted on ordinary directory' in r.stderr
    assert oci.ids() == []
