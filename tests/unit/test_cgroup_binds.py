"""rootfs.cgroup_binds: which directory of each hierarchy the container's cgroup mount binds (v1/hybrid)."""
from __future__ import annotations

from ocirun.mountinfo import parse as parse_mountinfo
from ocirun.rootfs import cgroup_binds

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 /sub /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
50 23 0:40 / /mnt/other rw,relatime - cgroup cgroup rw,blkio
"""
#: /proc/self/cgroup as {controller list: path}
OWN = {"cpu,cpuacct": "/box/c", "memory": "/box/c", "name=systemd": "/box/c", "": "/box/c",
       "pids": "/elsewhere/c", "blkio": "/box/c"}


def test_each_hierarchy_binds_the_containers_own_directory():
    binds = dict(cgroup_binds(parse_mountinfo(MOUNTINFO), OWN))
    assert binds == {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/box/c", "memory": "/sys/fs/cgroup/memory/box/c",
                     "systemd": "/sys/fs/cgroup/systemd/box/c", "unified": "/sys/fs/cgroup/unified/box/c"}


def test_never_a_hierarchy_root_for_paths_read_inside_a_cgroup_namespace():
    """What the init read after unsharing its cgroup namespace (the bug): every own path is "/" and the
    host's mounts show roots like "/../..".  A mount whose root is above or beside our cgroup is left out,
    not replaced by the mount point (that was the hierarchy root: the host's whole tree)."""
    inside = MOUNTINFO.replace(" / /sys/fs/cgroup/", " /../.. /sys/fs/cgroup/")
    own = {k: "/" for k in OWN}
    assert cgroup_binds(parse_mountinfo(inside), own) == []
    # the pids mount shows /sub only, our cgroup is /elsewhere/c: nothing of it to show
    assert "pids" not in dict(cgroup_binds(parse_mountinfo(MOUNTINFO), OWN))


def test_a_mount_of_our_own_cgroup_and_a_hidden_mount():
    """Nested (the runtime itself in a container whose /sys/fs/cgroup/memory is a bind of its cgroup):
    the mount's root is our cgroup's parent; the later of two mounts on one point wins."""
    text = ("35 31 0:32 /box /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "36 31 0:32 /box/c /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    assert cgroup_binds(parse_mountinfo(text), {"memory": "/box/c"}) == [("memory", "/sys/fs/cgroup/memory")]
