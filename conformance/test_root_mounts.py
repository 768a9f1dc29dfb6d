"""config.md "Root" and "Mounts" (with the Linux mount options table); runtime-linux.md /dev links;
config-linux.md default filesystems, rootfs propagation, masked and read-only paths."""
from __future__ import annotations

import os
import subprocess

import pytest

MUST = "MUST"
SHOULD = "SHOULD"
MOUNTINFO = "cat /proc/self/mountinfo"


def mounts_of(ctr, probe) -> list[dict]:
    return probe.parse_mountinfo(ctr.sh(MOUNTINFO))


# --------------------------------------------------------------------------- root

@pytest.mark.req(MUST, "config.md", "Root")
def test_root_readonly(ctr, probe):
    """`readonly` (bool, OPTIONAL) If true then the root filesystem MUST be read-only inside the
    container."""
    ctr.config["root"]["readonly"] = True
    out = ctr.sh("touch /newfile 2>/dev/null && echo writable || echo readonly; " + MOUNTINFO)
    assert out.splitlines()[0] == "readonly"
    assert "ro" in probe.mount_at(probe.parse_mountinfo(out), "/")["opts"]
    assert not os.path.exists(os.path.join(ctr.rootfs, "newfile"))


@pytest.mark.req(MUST, "config.md", "Root")
def test_root_readonly_defaults_false(ctr):
    """`readonly` ... defaults to false."""
    ctr.config["root"].pop("readonly", None)
    assert ctr.sh("touch /newfile && echo writable") == "writable\n"
    assert os.path.exists(os.path.join(ctr.rootfs, "newfile"))


@pytest.mark.req(MUST, "config.md", "Root")
def test_root_absolute_path(ctr):
    """On POSIX platforms, `path` is either an absolute path or a relative path to the bundle."""
    ctr.config["root"]["path"] = ctr.rootfs
    assert ctr.sh("echo ok") == "ok\n"


@pytest.mark.req(MUST, "config.md", "Root")
def test_root_path_must_exist(ctr):
    """A directory MUST exist at the path declared by the field."""
    ctr.config["root"]["path"] = "no-such-rootfs"
    ctr.set_args("true")
    assert ctr.run().returncode != 0
    assert ctr.state() is None


# --------------------------------------------------------------------------- mounts

@pytest.mark.req(MUST, "config.md", "Mounts")
def test_mounts_in_listed_order(ctr, probe):
    """The runtime MUST mount entries in the listed order."""
    ctr.add_mount("/ordered", "tmpfs", "tmpfs", ["size=1m"])
    ctr.add_mount("/ordered/inner", "tmpfs", "tmpfs", ["size=2m"])
    ctr.add_mount("/ordered/inner", "tmpfs", "tmpfs", ["size=3m"])
    mounts = mounts_of(ctr, probe)
    points = [m["mountpoint"] for m in mounts]
    assert "/ordered" in points and "/ordered/inner" in points
    outer = probe.mount_at(mounts, "/ordered")
    inner = [m for m in mounts if m["mountpoint"] == "/ordered/inner"]
    assert inner[0]["parent"] == outer["id"]
    assert "size=2048k" in inner[0]["superopts"] and "size=3072k" in inner[-1]["superopts"]
    assert inner[-1]["parent"] == inner[0]["id"]


@pytest.mark.req(MUST, "config.md", "Mounts")
def test_mount_relative_destination(ctr, probe):
    """(destination) it MAY be a relative path, in which case it MUST be interpreted as relative to "/"."""
    ctr.add_mount("reldest", "tmpfs", "tmpfs", ["size=1m"])
    ctr.process["cwd"] = "/share"
    assert probe.mount_at(mounts_of(ctr, probe), "/reldest") is not None


@pytest.mark.req(MUST, "config.md", "Mounts")
def test_bind_mount_source_relative_to_bundle(ctr):
    """`source` ... Path values for bind mounts are either absolute or relative to the bundle."""
    os.makedirs(os.path.join(ctr.bundle, "data"))
    with open(os.path.join(ctr.bundle, "data", "f"), "w") as f:
        f.write("from-bundle\n")
    ctr.add_mount("/data", "none", "data", ["bind", "ro"])
    assert ctr.sh("cat /data/f") == "from-bundle\n"


@pytest.mark.req(MUST, "config.md", "Mounts")
def test_bind_mount_file(ctr):
    """A mount is a bind mount if it has either `bind` or `rbind` in the options (a file source)."""
    src = os.path.join(ctr.workdir, "afile")
    with open(src, "w") as f:
        f.write("file-content\n")
    ctr.add_mount("/etc/afile", "bind", src, ["bind"])
    assert ctr.sh("cat /etc/afile") == "file-content\n"


@pytest.mark.req(SHOULD, "config.md", "Linux mount options")
def test_unknown_options_are_fs_data(ctr, probe):
    """Runtimes SHOULD treat unknown options as filesystem-specific ones and pass those as a
    comma-separated string to the fifth (const void *data) argument of mount(2)."""
    ctr.add_mount("/fsdata", "tmpfs", "tmpfs", ["size=1m", "nr_inodes=777", "mode=0711", "nosuid"])
    m = probe.mount_at(mounts_of(ctr, probe), "/fsdata")
    assert {"size=1024k", "nr_inodes=777", "mode=711"} <= m["superopts"]
    assert "nosuid" in m["opts"]


def _opt(name, level, check):
    return pytest.param(name, check, id=name, marks=pytest.mark.req(level, "config.md", "Linux mount options"))


def _has(flag):
    return lambda m: flag in m["opts"] or flag in m["superopts"]


def _lacks(*flags):
    return lambda m: not any(f in m["opts"] or f in m["superopts"] for f in flags)


def _accepted(m):
    return True


SIMPLE_OPTIONS = [
    _opt("async", MUST, _lacks("sync")),
    _opt("atime", MUST, _lacks("noatime")),
    pytest.param("defaults", _lacks("ro"), id="defaults",
                 marks=[pytest.mark.req(MUST, "config.md", "Linux mount options"),
                        pytest.mark.deviates("runc", "runc 1.1 passes `defaults` to mount(2) as data (EINVAL)")]),
    _opt("dev", MUST, _lacks("nodev")),
    _opt("diratime", MUST, _lacks("nodiratime")),
    _opt("dirsync", MUST, _has("dirsync")),
    _opt("exec", MUST, _lacks("noexec")),
    _opt("iversion", MUST, _accepted),
    _opt("lazytime", MUST, _has("lazytime")),
    _opt("loud", MUST, _accepted),
    _opt("noatime", MUST, _has("noatime")),
    _opt("nodev", MUST, _has("nodev")),
    _opt("nodiratime", MUST, _has("nodiratime")),
    _opt("noexec", MUST, _has("noexec")),
    _opt("noiversion", MUST, _accepted),
    _opt("nolazytime", MUST, _lacks("lazytime")),
    _opt("norelatime", MUST, _accepted),
    _opt("nostrictatime", MUST, _has("relatime")),
    _opt("nosuid", MUST, _has("nosuid")),
    _opt("nosymfollow", SHOULD, _has("nosymfollow")),
    _opt("relatime", MUST, _has("relatime")),
    _opt("ro", MUST, _has("ro")),
    _opt("rw", MUST, _lacks("ro")),
    _opt("silent", MUST, _accepted),
    _opt("strictatime", MUST, _lacks("relatime", "noatime")),
    _opt("suid", MUST, _lacks("nosuid")),
    _opt("symfollow", SHOULD, _lacks("nosymfollow")),
    _opt("sync", MUST, _has("sync")),
]


@pytest.mark.parametrize("option,check", SIMPLE_OPTIONS)
def test_mount_option(ctr, probe, option, check):
    """Runtimes MUST/SHOULD implement the following option strings for Linux (config.md table),
    corresponding to mount(8)."""
    ctr.add_mount("/opt-test", "tmpfs", "tmpfs", ["size=1m", option])
    m = probe.mount_at(mounts_of(ctr, probe), "/opt-test")
    assert m is not None, "mount missing"
    assert check(m), (option, m["opts"], m["superopts"])


@pytest.mark.req(MUST, "config.md", "Linux mount options")
def test_mount_option_remount(ctr, probe):
    """`remount` (MUST): a second entry for the same destination with `remount` changes the flags of the
    existing mount instead of stacking a new one."""
    ctr.add_mount("/remounted", "tmpfs", "tmpfs", ["size=1m"])
    ctr.add_mount("/remounted", "tmpfs", "tmpfs", ["remount", "ro", "size=1m"])
    mounts = mounts_of(ctr, probe)
    found = [m for m in mounts if m["mountpoint"] == "/remounted"]
    assert len(found) == 1 and "ro" in found[0]["opts"]


@pytest.mark.req(MUST, "config.md", "Linux mount options")
@pytest.mark.parametrize("option,submounts", [("bind", False), ("rbind", True)])
def test_bind_and_rbind(ctr, probe, option, submounts):
    """`bind` (MUST): bind mount; `rbind` (MUST): recursive bind mount."""
    ctr.add_mount("/hostsys", "none", "/sys", [option, "ro"])
    mounts = mounts_of(ctr, probe)
    assert probe.mount_at(mounts, "/hostsys") is not None
    below = [m for m in mounts if m["mountpoint"].startswith("/hostsys/")]
    assert bool(below) == submounts


RECURSIVE = [
    ("rro", "ro", True), ("rrw", "ro", False), ("rnosuid", "nosuid", True), ("rsuid", "nosuid", False),
    ("rnodev", "nodev", True), ("rdev", "nodev", False), ("rnoexec", "noexec", True), ("rexec", "noexec", False),
    ("rnoatime", "noatime", True),
    pytest.param("ratime", "noatime", False, id="ratime", marks=pytest.mark.deviates(
        "runc", "runc 1.1 fails mount_setattr for `ratime` (EINVAL)")), ("rnodiratime", "nodiratime", True),
    ("rdiratime", "nodiratime", False), ("rrelatime", "relatime", True), ("rnorelatime", None, None),
    ("rstrictatime", "relatime", False),
    pytest.param("rnostrictatime", None, None, id="rnostrictatime", marks=pytest.mark.deviates(
        "runc", "runc 1.1 fails mount_setattr for `rnostrictatime` (EINVAL)")),
    ("rnosymfollow", "nosymfollow", True), ("rsymfollow", "nosymfollow", False),
]


@pytest.mark.req(SHOULD, "config.md", "Linux mount options")
@pytest.mark.parametrize("option,flag,present", [
    r if hasattr(r, "marks") else pytest.param(*r, id=r[0]) for r in RECURSIVE])
def test_recursive_mount_option(ctr, probe, option, flag, present):
    """Recursive options (`rro`, `rnosuid`, ... SHOULD): these AT_RECURSIVE options apply the flag to the
    whole mount tree (mount_setattr(2))."""
    ctr.add_mount("/hostsys", "none", "/sys", ["rbind", option])
    mounts = [m for m in mounts_of(ctr, probe) if m["mountpoint"] == "/hostsys" or
              m["mountpoint"].startswith("/hostsys/")]
    assert len(mounts) > 1
    if flag is None:
        return
    for m in mounts:
        assert (flag in m["opts"]) == present, (option, m["mountpoint"], m["opts"])


PROPAGATION = [("private", None), ("rprivate", None), ("shared", "shared:"), ("rshared", "shared:"),
               ("unbindable", "unbindable"), ("runbindable", "unbindable")]


@pytest.mark.req(MUST, "config.md", "Linux mount options")
@pytest.mark.parametrize("option,field", PROPAGATION, ids=[p[0] for p in PROPAGATION])
def test_mount_propagation_option(ctr, probe, option, field):
    """`private`, `rprivate`, `shared`, `rshared`, `unbindable`, `runbindable` (MUST): bind mount
    propagation."""
    ctr.add_mount("/prop", "tmpfs", "tmpfs", ["size=1m", option])
    m = probe.mount_at(mounts_of(ctr, probe), "/prop")
    optional = " ".join(m["optional"])
    if field is None:
        assert "shared:" not in optional and "master:" not in optional, optional
    else:
        assert field in optional, optional


@pytest.mark.req(MUST, "config.md", "Linux mount options")
@pytest.mark.parametrize("option", ["slave", "rslave"])
def test_mount_propagation_slave(ctr, probe, option):
    """`slave`, `rslave` (MUST): bind mount propagation — the mount receives events from its master."""
    src = os.path.join(ctr.workdir, "shared-src")
    os.makedirs(src)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "ocirun-test", src], check=True)
    try:
        subprocess.run(["mount", "--make-shared", src], check=True)
        ctr.add_mount("/slave", "none", src, ["rbind", option])
        m = probe.mount_at(mounts_of(ctr, probe), "/slave")
        optional = " ".join(m["optional"])
        assert "master:" in optional and "shared:" not in optional, optional
    finally:
        subprocess.run(["umount", "-l", src])


@pytest.mark.req(MUST, "config.md", "Linux mount options")
@pytest.mark.deviates("runc", "runc 1.1 does not know `idmap` and passes it to mount(2) as data; the mount "
                      "is made without error")
def test_idmap_without_userns_fails(ctr):
    """`idmap`: If there are no `uidMappings` and `gidMappings` specified and the container isn't using
    user namespaces, an error MUST be returned."""
    src = os.path.join(ctr.workdir, "idsrc")
    os.makedirs(src)
    ctr.add_mount("/idmapped", "none", src, ["bind", "idmap"])
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(SHOULD, "config.md", "Linux mount options")
@pytest.mark.req(SHOULD, "config.md", "POSIX-platform Mounts")
@pytest.mark.deviates("runc", "runc 1.1 does not support idmapped mounts")
def test_idmap_mount(ctr):
    """`idmap` (SHOULD): Indicates that the mount MUST have an idmapping applied. If `uidMappings` or
    `gidMappings` are specified for the mount, the runtime MUST use those values for the mount's
    mapping."""
    src = os.path.join(ctr.workdir, "idsrc")
    os.makedirs(src)
    with open(os.path.join(src, "f"), "w") as f:
        f.write("x")
    os.chown(os.path.join(src, "f"), 0, 0)
    mapping = [{"containerID": 0, "hostID": 1000, "size": 1}]  # on disk 0 shows as 1000 (as runc 1.2, crun)
    ctr.add_mount("/idmapped", "none", src, ["bind", "idmap"], uidMappings=mapping, gidMappings=mapping)
    assert ctr.sh("stat -c '%u %g' /idmapped/f") == "1000 1000\n"


@pytest.mark.req(MUST, "config.md", "POSIX-platform Mounts")
@pytest.mark.deviates("runc", "runc 1.1 ignores mount uidMappings/gidMappings")
def test_mount_uid_mappings_need_gid_mappings(ctr):
    """(mount `uidMappings`) If specified, it MUST be specified along with `gidMappings`."""
    src = os.path.join(ctr.workdir, "idsrc")
    os.makedirs(src)
    ctr.add_mount("/idmapped", "none", src, ["bind", "idmap"],
                  uidMappings=[{"containerID": 1000, "hostID": 0, "size": 1}])
    ctr.set_args("true")
    assert ctr.run().returncode != 0


# --------------------------------------------------------------------------- linux filesystems

@pytest.mark.req(SHOULD, "config-linux.md", "Default Filesystems")
def test_default_filesystems(ctr, probe):
    """The following filesystems SHOULD be made available in each container's filesystem: /proc (proc),
    /sys (sysfs), /dev/pts (devpts), /dev/shm (tmpfs)."""
    mounts = mounts_of(ctr, probe)
    for path, fstype in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev/pts", "devpts"), ("/dev/shm", "tmpfs")):
        m = probe.mount_at(mounts, path)
        assert m is not None and m["fstype"] == fstype, path


@pytest.mark.req(MUST, "runtime-linux.md", "Dev symbolic links")
def test_dev_symlinks(ctr):
    """While creating the container, runtimes MUST create the following symlinks if the source file
    exists after processing mounts: /dev/fd → /proc/self/fd, /dev/stdin → /proc/self/fd/0,
    /dev/stdout → /proc/self/fd/1, /dev/stderr → /proc/self/fd/2."""
    out = ctr.sh("for l in fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done")
    assert out.splitlines() == ["fd /proc/self/fd", "stdin /proc/self/fd/0",
                                "stdout /proc/self/fd/1", "stderr /proc/self/fd/2"]


@pytest.mark.req(MUST, "runtime-linux.md", "Dev symbolic links")
def test_dev_symlinks_work(ctr):
    """The /dev symlinks resolve (to the process's own descriptors)."""
    assert ctr.sh("echo via-stdout > /dev/stdout; ls /dev/fd/ | grep -c '^[0-9]'").splitlines()[0] == "via-stdout"


@pytest.mark.req(MUST, "config-linux.md", "Rootfs Mount Propagation")
@pytest.mark.parametrize("value,field", [
    pytest.param("shared", "shared:", marks=pytest.mark.deviates(
        "runc", "with rootfsPropagation=shared runc leaves the container's / mount private")),
    ("private", None),
    pytest.param("unbindable", "unbindable", marks=pytest.mark.deviates(
        "runc", "runc fails to create the container with rootfsPropagation=unbindable (EINVAL binding the rootfs)")),
    ("slave", None)])
def test_rootfs_propagation(ctr, probe, value, field):
    """`rootfsPropagation` sets the rootfs's mount propagation: `shared` (a new peer group), `slave`,
    `private`, `unbindable` (a private mount that cannot be bind-mounted)."""
    ctr.linux["rootfsPropagation"] = value
    root = probe.mount_at(mounts_of(ctr, probe), "/")
    optional = " ".join(root["optional"])
    if field is None:
        assert "shared:" not in optional, optional
    else:
        assert field in optional, optional


@pytest.mark.req(MUST, "config-linux.md", "Masked Paths")
def test_masked_paths(ctr):
    """`maskedPaths` will mask over the provided paths inside the container so that they cannot be
    read."""
    ctr.linux["maskedPaths"] = ["/proc/keys", "/proc/acpi", "/etc/group", "/no/such/path"]
    out = ctr.sh("wc -c < /proc/keys; ls -A /proc/acpi | wc -l; wc -c < /etc/group; echo end")
    assert out.split() == ["0", "0", "0", "end"]


@pytest.mark.req(MUST, "config-linux.md", "Masked Paths")
@pytest.mark.req(MUST, "config.md", "Valid values")
@pytest.mark.deviates("runc", "runc accepts relative maskedPaths (and ignores them)")
def test_masked_paths_must_be_absolute(ctr):
    """The values MUST be absolute paths in the container namespace."""
    ctr.linux["maskedPaths"] = ["proc/kcore"]
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config-linux.md", "Readonly Paths")
def test_readonly_paths(ctr):
    """`readonlyPaths` will set the provided paths as readonly inside the container."""
    ctr.config["root"]["readonly"] = False
    ctr.add_mount("/rw", "tmpfs", "tmpfs", ["size=1m"])
    ctr.linux["readonlyPaths"] = ["/proc/sys", "/rw", "/etc"]
    out = ctr.sh("for p in /rw/x /etc/x /proc/sys/kernel/hostname /tmp/x; do "
                 "(echo 1 > $p) 2>/dev/null && echo $p:rw || echo $p:ro; done")
    assert out.split() == ["/rw/x:ro", "/etc/x:ro", "/proc/sys/kernel/hostname:ro", "/tmp/x:rw"]


@pytest.mark.req(MUST, "config-linux.md", "Readonly Paths")
@pytest.mark.req(MUST, "config.md", "Valid values")
@pytest.mark.deviates("runc", "runc accepts relative readonlyPaths")
def test_readonly_paths_must_be_absolute(ctr):
    """The values MUST be absolute paths in the container namespace."""
    ctr.linux["readonlyPaths"] = ["proc/sys"]
    ctr.set_args("true")
    assert ctr.run().returncode != 0
