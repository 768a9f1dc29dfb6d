"""ocirun.mountinfo: the one mountinfo parser behind cgroup discovery, resctrl, checkpoint and `inspect`."""
from ocirun import mountinfo


def test_unescape_only_three_octal_digits():
    assert mountinfo.unescape("/a\\040b\\011c\\012d\\134e") == "/a b\tc\nd\\e"
    assert mountinfo.unescape("/plain") == "/plain"
    # not an escape: too short or not octal — left as it is, never an exception
    assert mountinfo.unescape("/x\\12") == "/x\\12"
    assert mountinfo.unescape("/x\\089") == "/x\\089"


def test_parse_fields_with_and_without_optional_tags():
    text = ("22 1 254:0 / / ro,relatime shared:1 master:2 - ext4 /dev/vda rw,errors=remount-ro\n"
            "24 22 0:6 /sub /mnt/with\\040space rw - tmpfs my\\134src rw\n"
            "garbage line\n"
            "25 22 0:7 / /p rw - proc\n")
    a, b, c = mountinfo.parse(text)
    assert (a.id, a.parent, a.device, a.root, a.mountpoint) == (22, 1, "254:0", "/", "/")
    assert a.options == "ro,relatime" and a.optional == ["shared:1", "master:2"]
    assert (a.fstype, a.source, a.super_options) == ("ext4", "/dev/vda", "rw,errors=remount-ro")
    assert (b.root, b.mountpoint, b.source, b.optional) == ("/sub", "/mnt/with space", "my\\src", [])
    assert (c.fstype, c.source, c.super_options) == ("proc", "", "")


def test_parse_only_the_asked_types():
    text = ("30 1 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "31 1 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
            "32 1 0:28 / /mnt rw - tmpfs tmpfs rw\n")
    assert [m.mountpoint for m in mountinfo.parse(text, ("cgroup", "cgroup2"))] == [
        "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"]
    assert [m.id for m in mountinfo.parse(text, ("resctrl",))] == []


def test_read_the_real_table():
    mounts = mountinfo.read()
    assert any(m.mountpoint == "/proc" and m.fstype == "proc" for m in mounts)
