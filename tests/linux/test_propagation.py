"""linux.rootfsPropagation in runc's forms, with what Kubernetes' mount propagation needs of it.

containerd's CRI sets ``rslave`` (a volume with HostToContainer propagation) or ``rshared``
(Bidirectional) together with the volume's own ``rslave``/``rshared`` option.  runc 1.1.5 on this machine,
same bundles: both accepted; with ``rshared`` a tmpfs mounted by the container under the volume appears
on the host, with ``rslave`` a mount made on the host after start appears in the container.  ocirun
refused both at validation before (the official schema lists only the four non-recursive words).
"""
import json
import os
import subprocess
import threading
import time

import pytest

from .conftest import edit


@pytest.fixture
def shared_src(tmp_path):
    """A host directory that is a shared mount (as kubelet's pod volume directories are)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    subprocess.run(["mount", "--make-shared", str(src)], check=True)
    try:
        yield src
    finally:
        subprocess.run(["umount", "-R", "-l", str(src)], check=False)


def _host_mounts_under(path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def _with_volume(oci, script: str, prop: str, src):
    spec = oci.config(args=("sh", "-c", script))
    edit(spec, "linux.rootfsPropagation", f"r{prop}")
    spec["mounts"].append({"destination": "/vol", "type": "bind", "source": str(src),
                           "options": ["rbind", f"r{prop}"]})
    for name in spec["process"]["capabilities"]:
        spec["process"]["capabilities"][name].append("CAP_SYS_ADMIN")
    return spec


def test_rshared_volume_propagates_container_mounts_to_the_host(oci, shared_src, tmp_path):
    spec = _with_volume(oci, "mount -t tmpfs none /vol/sub && echo mounted > /vol/sub/f && "
                             "while [ ! -e /vol/done ]; do sleep 0.05; done", "shared", shared_src)
    oci.write(spec)
    holder = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", oci("run", "--bundle", oci.bundle, "c1")))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not (shared_src / "sub" / "f").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (shared_src / "sub" / "f").read_text() == "mounted\n"
        assert str(shared_src / "sub") in _host_mounts_under(shared_src)
        # Only the volume's submount reached the host: none of the container's own mounts.
        assert not [m for m in _host_mounts_under("/") if "rootfs" in m and str(tmp_path) not in m
                    and m.startswith(str(oci.rootfs))]
    finally:
        (shared_src / "done").write_text("")
        t.join(30)
        subprocess.run(["umount", "-l", str(shared_src / "sub")], check=False)
    assert holder["r"].returncode == 0, holder["r"].stderr


def test_rslave_volume_sees_host_mounts_made_after_start(oci, shared_src):
    spec = _with_volume(oci, "while [ ! -e /vol/sub/hostfile ]; do sleep 0.05; done; cat /vol/sub/hostfile",
                        "slave", shared_src)
    oci.write(spec)
    holder = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", oci("run", "--bundle", oci.bundle, "c1")))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while "c1" not in oci.ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        subprocess.run(["mount", "-t", "tmpfs", "none", str(shared_src / "sub")], check=True)
        (shared_src / "sub" / "hostfile").write_text("from-host\n")
        t.join(30)
    finally:
        subprocess.run(["umount", "-l", str(shared_src / "sub")], check=False)
    assert holder["r"].returncode == 0, holder["r"].stderr
    assert holder["r"].stdout == "from-host\n"


@pytest.mark.parametrize("prop", ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable"])
def test_runc_propagation_words_run(oci, prop):
    """runc 1.1.5 runs each of these (``runbindable`` it refuses at the rootfs bind, EINVAL, and so does
    ocirun at the first bind under the unbindable root); shared and private show on the container's /."""
    spec = oci.config(args=("sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"))
    edit(spec, "linux.rootfsPropagation", prop)
    r = oci.run(spec)
    assert r.returncode == 0, r.stderr
    optional = r.stdout.split(" - ")[0].split()[6:]
    if prop.endswith("shared"):
        assert any(f.startswith("shared:") for f in optional), r.stdout
    if prop.endswith("private"):
        assert not optional, r.stdout
    if prop == "unbindable":
        assert "unbindable" in optional, r.stdout
