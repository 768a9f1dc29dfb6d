"""What the runtime binds from /dev and writes into /proc cannot be redirected.

* CVE-2025-31133: maskedPaths are covered by binding /dev/null; an image-planted /dev/null (a
  symlink, a regular file, another device) must not be what gets bound.
* CVE-2025-52565: runc bound the pty onto /dev/console; ocirun binds nothing there, and a
  /dev/console symlink in the image redirects nothing.
* CVE-2025-52881: sysctl and oom_score_adj writes must land in the container's real procfs, not in
  whatever a later mount put over the path (here: another procfs file, a victim's oom_score_adj).
"""
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def own_rootfs(tmp_path, rootfs):
    own = tmp_path / "image"
    shutil.copytree(rootfs, own, symlinks=True)
    return own


def _dev_from_volume(spec, devdir):
    """/dev from a shared volume instead of a tmpfs: the runtime then creates no device itself."""
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/dev"]
    spec["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": str(devdir), "options": ["rbind"]})


@pytest.mark.parametrize("plant", ["symlink-core-pattern", "symlink-host-path", "regular-file", "zero-device"])
def test_masked_paths_with_planted_dev_null(oci, tmp_path, own_rootfs, plant):
    devdir = tmp_path / "devvol"
    devdir.mkdir()
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    null = devdir / "null"
    if plant == "symlink-core-pattern":
        os.symlink("/proc/sys/kernel/core_pattern", null)
    elif plant == "symlink-host-path":
        os.symlink(str(secret), null)
        (own_rootfs / str(secret.parent).lstrip("/")).mkdir(parents=True)
        (own_rootfs / str(secret).lstrip("/")).write_text("image file\n")
    elif plant == "regular-file":
        null.write_text("planted\n")
    else:
        os.mknod(null, 0o666 | 0o020000, os.makedev(1, 5))
    spec = oci.config(args=("sh", "-c", "stat -Lc '%t:%T %F %i' /proc/kcore /proc/sys/kernel/core_pattern; "
                                        "cat /proc/timer_list 2>&1 | head -1"))
    spec["root"]["path"] = str(own_rootfs)
    spec["linux"]["maskedPaths"] = ["/proc/kcore", "/proc/timer_list"]
    _dev_from_volume(spec, devdir)
    core_before = open("/proc/sys/kernel/core_pattern").read()
    proc = oci.run(spec)
    assert open("/proc/sys/kernel/core_pattern").read() == core_before
    if proc.returncode != 0:
        assert "null" in proc.stderr, proc.stderr
        return
    kcore, core, timer = proc.stdout.splitlines()[:3]
    assert kcore.split()[0] == "1:3", f"/proc/kcore is not masked by the null device: {kcore}"
    assert kcore.split()[-1] != core.split()[-1]
    assert "secret" not in timer and "planted" not in timer and "image" not in timer


def test_dev_console_symlink_redirects_nothing(oci, tmp_path, own_rootfs):
    """/dev/console -> /proc/sys/kernel/core_pattern in a /dev the image controls: nothing is bound
    there or through it, with or without a terminal."""
    devdir = tmp_path / "devvol"
    devdir.mkdir()
    os.symlink("/proc/sys/kernel/core_pattern", devdir / "console")
    os.mknod(devdir / "null", 0o666 | 0o020000, os.makedev(1, 3))
    spec = oci.config(args=("sh", "-c", "awk '$5 ~ /console|core_pattern/' /proc/self/mountinfo | wc -l; "
                                        "readlink /dev/console"))
    spec["root"]["path"] = str(own_rootfs)
    _dev_from_volume(spec, devdir)
    core_before = open("/proc/sys/kernel/core_pattern").read()
    proc = oci.run(spec)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["0", "/proc/sys/kernel/core_pattern"]
    assert os.readlink(devdir / "console") == "/proc/sys/kernel/core_pattern"
    assert open("/proc/sys/kernel/core_pattern").read() == core_before


def _victim():
    """A host process whose oom_score_adj is the redirect target: writing it is harmless and visible."""
    p = subprocess.Popen(["sleep", "60"])
    return p


@pytest.mark.parametrize("how", ["procfs-file-bind", "tmpfs-over-proc-sys-net", "host-file-bind"])
def test_sysctl_write_not_redirected(oci, tmp_path, how):
    """A mount listed after /proc covers the sysctl's file; the write must fail or reach the real one."""
    victim = _victim()
    host_file = tmp_path / "host-file"
    host_file.write_text("untouched\n")
    try:
        key, path = "net.ipv4.ip_unprivileged_port_start", "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        mount = {
            "procfs-file-bind": {"destination": path, "type": "bind", "source": f"/proc/{victim.pid}/oom_score_adj",
                                 "options": ["bind"]},
            "tmpfs-over-proc-sys-net": {"destination": "/proc/sys/net", "type": "tmpfs", "source": "tmpfs"},
            "host-file-bind": {"destination": path, "type": "bind", "source": str(host_file), "options": ["bind"]},
        }[how]
        spec = oci.config(args=("cat", path))
        spec["linux"]["sysctl"] = {key: "999"}
        spec["linux"]["readonlyPaths"] = []
        spec["mounts"].append(mount)
        proc = oci.run(spec)
        with open(f"/proc/{victim.pid}/oom_score_adj") as f:
            assert f.read() == "0\n", "the sysctl value was written into another procfs file"
        assert host_file.read_text() == "untouched\n"
        if proc.returncode == 0:
            assert proc.stdout.strip() == "999", proc.stdout  # applied to the container's own procfs
    finally:
        victim.kill()
        victim.wait()


def test_oom_score_adj_not_redirected(oci, tmp_path):
    victim = _victim()
    try:
        spec = oci.config(args=("cat", "/proc/self/oom_score_adj"))
        spec["process"]["oomScoreAdj"] = 500
        spec["mounts"].append({"destination": "/proc/self/oom_score_adj", "type": "bind",
                               "source": f"/proc/{victim.pid}/oom_score_adj", "options": ["bind"]})
        proc = oci.run(spec)
        with open(f"/proc/{victim.pid}/oom_score_adj") as f:
            assert f.read() == "0\n", "oom_score_adj was written into another procfs file"
        if proc.returncode == 0:
            assert proc.stdout.strip() == "500"
    finally:
        victim.kill()
        victim.wait()


# ---- one verified procfs writer (ocirun.procfs) -------------------------------------------------
# Mounts in the config over /proc subpaths are refused (above), but a mount can still appear there
# between the procfs mount and the runtime's writes: from a createContainer hook, from a peer of a
# shared mount propagating in (the race of CVE-2025-52881), or in a mount namespace joined by path.
# A createContainer hook runs exactly in that window, so it stands in for all of them here.  The
# container reads the real values through a second procfs instance (/proc2) that nothing covers.

def _hook_binding(spec, pairs):
    """A createContainer hook that binds each (host source, path under the container's /proc)."""
    root = spec["root"]["path"]
    script = "set -e; " + "; ".join(f"mount --bind {src} {root}/proc/{dst}" for src, dst in pairs)
    spec.setdefault("hooks", {})["createContainer"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}]
    spec["mounts"].append({"destination": "/proc2", "type": "proc", "source": "proc"})


def test_sysctl_write_ignores_a_mount_stacked_after_proc(oci):
    victim = _victim()
    try:
        spec = oci.config(args=("sh", "-c", "cat /proc2/sys/net/ipv4/ip_unprivileged_port_start; "
                                            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"))
        spec["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "999"}
        _hook_binding(spec, [(f"/proc/{victim.pid}/oom_score_adj", "sys/net/ipv4/ip_unprivileged_port_start")])
        proc = oci.run(spec)
        with open(f"/proc/{victim.pid}/oom_score_adj") as f:
            assert f.read() == "0\n", "the sysctl value was written into the file mounted over the sysctl"
        assert proc.returncode == 0, proc.stderr
        real, covered = proc.stdout.split()
        assert covered == "0", "the hook's bind did not take: the test proves nothing"
        assert real == "999", "the sysctl did not reach the container's own procfs"
    finally:
        victim.kill()
        victim.wait()


def test_oom_score_adj_write_ignores_a_mount_stacked_after_proc(oci):
    """The init is pid 1 of its pid namespace: /proc/self/oom_score_adj is /proc/1/oom_score_adj."""
    victim = _victim()
    try:
        spec = oci.config(args=("sh", "-c", "cat /proc2/self/oom_score_adj /proc/1/oom_score_adj"))
        spec["process"]["oomScoreAdj"] = 500
        _hook_binding(spec, [(f"/proc/{victim.pid}/oom_score_adj", "1/oom_score_adj")])
        proc = oci.run(spec)
        with open(f"/proc/{victim.pid}/oom_score_adj") as f:
            assert f.read() == "0\n", "oom_score_adj was written into the file mounted over the init's"
        assert proc.returncode == 0, proc.stderr
        real, covered = proc.stdout.split()
        assert covered == "0", "the hook's bind did not take: the test proves nothing"
        assert real == "500", "oom_score_adj did not reach the container process"
    finally:
        victim.kill()
        victim.wait()


def test_procfs_handle_must_be_a_procfs_root():
    """A bind of a procfs *directory* onto /proc (here /proc/sys) is procfs by fstatfs, but paths
    under it name other files: the handle refuses it."""
    from ocirun import procfs
    from ocirun.kernel import linux as k

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            k.unshare(k.CLONE_NEWNS)
            k.mount(None, "/", None, k.MS_PRIVATE | k.MS_REC)
            k.mount("/proc/sys", "/proc", None, k.MS_BIND)
            try:
                procfs.Procfs().close()
                os.write(w, b"accepted")
            except OSError as e:
                os.write(w, str(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    assert "not the root of a procfs" in text, text
