"""Idmapped bind mounts, with and without a container user namespace: who owns what, on disk.

The mapping of a mount is read as runc (1.2+, tests/integration/idmap.bats) and crun read it: like a
user namespace's own ``uid_map`` line, ``containerID`` is the id *on disk* and ``hostID`` the id the
mount shows in the initial namespace; a container's user namespace then maps that as usual.  So a
mount mapped exactly like the container (0:100000:65536 both) shows the disk's root as the
container's root, and what the container's root creates lands on disk as uid 0.  runc 1.1.5 (the
reference binary here) has no idmapped mounts: it ignores mounts[].uidMappings (plain bind).

The sources live in a world-traversable directory: the init of a user-namespaced container opens
them as host uid 100000.
"""
import os
import shutil
import tempfile

import pytest

pytestmark = pytest.mark.root

CONTAINER_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.fixture
def src():
    top = tempfile.mkdtemp(prefix="ocirun-idmap-", dir="/var/tmp")
    os.chmod(top, 0o755)
    d = os.path.join(top, "src")
    os.mkdir(d)
    os.chmod(d, 0o777)
    os.chown(d, 1000, 1000)  # mapped by every mapping below (the kernel refuses writes into a dir whose owner is not)
    for name, owner in (("disk0", 0), ("disk1000", 1000), ("disk100000", 100000)):
        with open(os.path.join(d, name), "w") as f:
            f.write(name)
        os.chown(os.path.join(d, name), owner, owner)
    yield d
    shutil.rmtree(top)


def _spec(oci, src, script, userns=True, mount_map=None, options=("bind",)):
    spec = oci.config(args=("sh", "-c", script))
    if userns:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = CONTAINER_MAP
        spec["linux"]["gidMappings"] = CONTAINER_MAP
    m = {"destination": "/home", "type": "bind", "source": src, "options": list(options)}
    if mount_map is not None:
        m["uidMappings"] = m["gidMappings"] = mount_map
    spec["mounts"].append(m)
    return spec


def _owner(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


STAT = "stat -c '%n %u %g' /home/disk0 /home/disk1000 /home/disk100000"


def test_mount_mapped_like_the_container_keeps_disk_ids(oci, src):
    """userns 0:100000 + mount 0:100000: the container sees disk ids as they are, and writes them so."""
    script = (f"{STAT}; touch /home/made-by-root && mkdir /home/dir && chown 1000:1000 /home/dir && "
              "stat -c '%n %u %g' /home/made-by-root /home/dir")
    spec = _spec(oci, src, script, mount_map=CONTAINER_MAP)
    for kind in ("bounding", "effective", "permitted"):
        spec["process"]["capabilities"][kind].append("CAP_CHOWN")
    proc = oci.run(spec)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "/home/disk0 0 0", "/home/disk1000 1000 1000", "/home/disk100000 65534 65534",  # 100000 is unmapped
        "/home/made-by-root 0 0", "/home/dir 1000 1000"]
    assert _owner(os.path.join(src, "made-by-root")) == (0, 0)  # the container's root is the disk's root
    assert _owner(os.path.join(src, "dir")) == (1000, 1000)


def test_mount_mapping_other_than_the_containers(oci, src):
    """userns 0:100000 + mount 1000:100000:1: the container's root (host 100000) is disk uid 1000."""
    one = [{"containerID": 1000, "hostID": 100000, "size": 1}]
    proc = oci.run(_spec(oci, src, f"{STAT}; touch /home/new && stat -c '%u %g' /home/new", mount_map=one))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "/home/disk0 65534 65534", "/home/disk1000 0 0", "/home/disk100000 65534 65534", "0 0"]
    assert _owner(os.path.join(src, "new")) == (1000, 1000)


def test_idmap_option_alone_takes_the_containers_mapping(oci, src):
    proc = oci.run(_spec(oci, src, f"{STAT}; touch /home/new", options=("bind", "idmap")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["/home/disk0 0 0", "/home/disk1000 1000 1000"]
    assert _owner(os.path.join(src, "new")) == (0, 0)


def test_without_userns_disk_ids_are_shifted_and_root_cannot_write(oci, src):
    """runc's "[no userns]" cases: disk 0 shows as 100000; the container's (unmapped) root gets EOVERFLOW."""
    proc = oci.run(_spec(oci, src, f"{STAT}; touch /home/new", userns=False, mount_map=CONTAINER_MAP))
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["/home/disk0 100000 100000", "/home/disk1000 101000 101000"], proc.stderr
    assert proc.returncode != 0 and "Value too large" in proc.stderr + proc.stdout
    assert not os.path.exists(os.path.join(src, "new"))


def test_plain_bind_in_userns_for_contrast(oci, src):
    """Without a mapping the container's root creates files as host uid 100000 (what runc 1.1.5 does
    for every one of the cases above, ignoring the mappings)."""
    proc = oci.run(_spec(oci, src, "touch /home/new && stat -c '%u' /home/disk0 /home/new"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["65534", "0"]
    assert _owner(os.path.join(src, "new")) == (100000, 100000)
