"""rootfs.revealing_mounts: what --no-pivot detaches (or covers) before moving the rootfs over /."""
from __future__ import annotations

from ocirun.mountinfo import parse
from ocirun.rootfs import revealing_mounts

TABLE = """\
1 0 8:1 / / rw - ext4 /dev/sda1 rw
22 1 0:21 / /proc rw - proc proc rw
23 22 0:40 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw
24 1 0:22 / /sys rw - sysfs sysfs rw
25 24 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
26 1 0:30 /sys /mnt/procsys rw - proc proc rw
27 1 0:41 / /var/lib/other/rootfs/proc rw - proc proc rw
90 1 0:50 /bundle/rootfs /bundle/rootfs rw - ext4 /dev/sda1 rw
91 90 0:51 / /bundle/rootfs/proc rw - proc proc rw
92 90 0:52 / /bundle/rootfs/sys ro - sysfs sysfs ro
"""


def test_full_procfs_and_sysfs_outside_the_rootfs_shallowest_first():
    """The host's /proc and /sys (their sub-mounts go with them) and another tenant's procfs; not the
    container's own (below the rootfs mount, id 90); not a bind of a procfs subdirectory (the kernel
    only counts whole ones)."""
    assert revealing_mounts(parse(TABLE), 90) == [("/proc", "/"), ("/sys", "/"), ("/var/lib/other/rootfs/proc", "/")]


def test_a_covered_mount_is_done():
    """A tmpfs on the procfs mount's own mount point (its child) covers it: done on an earlier pass.
    A mount below it (on a subdirectory) does not."""
    covered = TABLE + "93 27 0:53 / /var/lib/other/rootfs/proc ro - tmpfs tmpfs ro\n"
    assert [p for p, _ in revealing_mounts(parse(covered), 90)] == ["/proc", "/sys"]
    below = TABLE + "93 27 0:53 / /var/lib/other/rootfs/proc/kcore ro - tmpfs tmpfs ro\n"
    assert [p for p, _ in revealing_mounts(parse(below), 90)] == ["/proc", "/sys", "/var/lib/other/rootfs/proc"]
