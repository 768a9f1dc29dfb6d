"""config-linux.md: namespaces, id mappings, time offsets, devices, sysctl, seccomp, personality;
config.md: hostname, domainname, annotations, extensibility, valid values, Linux process extras."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest

MUST = "MUST"
SHOULD = "SHOULD"
NEW_BY_DEFAULT = ["pid", "network", "ipc", "uts", "mount"]
ALL_TYPES = ["pid", "network", "ipc", "uts", "mount", "cgroup"]


def ns_inside(ctr, probe) -> dict[str, str]:
    from_probe = probe.parse_ns_listing(ctr.sh(probe.NS_PROBE))
    assert from_probe, "no namespace listing"
    return from_probe


# --------------------------------------------------------------------------- namespaces

@pytest.mark.req(MUST, "config-linux.md", "Namespaces")
@pytest.mark.parametrize("ns_type", ALL_TYPES)
def test_namespace_created(ctr, probe, ns_type):
    """If `path` is not specified, the runtime MUST create a new container namespace of type `type`."""
    ctr.add_namespace(ns_type)
    inside = ns_inside(ctr, probe)
    f = probe.NS_FILE[ns_type]
    assert inside[f] != os.readlink(f"/proc/self/ns/{f}")


@pytest.mark.req(MUST, "config-linux.md", "Namespaces")
@pytest.mark.parametrize("ns_type", ["pid", "network", "ipc", "uts", "cgroup", "user", "time"])
def test_namespace_inherited(ctr, probe, ns_type):
    """If a namespace type is not specified in the `namespaces` array, the container MUST inherit the
    runtime namespace of that type."""
    ctr.drop_namespace(ns_type)
    f = probe.NS_FILE[ns_type]
    host = f"/proc/self/ns/{f}"
    if not os.path.exists(host):
        pytest.skip(f"kernel has no {ns_type} namespace")
    inside = ns_inside(ctr, probe)
    assert inside[f] == os.readlink(host)


@pytest.mark.req(SHOULD, "config-linux.md", "Namespaces")
def test_namespace_user(ctr, probe):
    """The following namespace types SHOULD be supported: ... `user`: the container will be able to
    remap user and group IDs from the host to local users and groups within the container."""
    ctr.use_userns(200000, 65536)
    out = ctr.sh(probe.NS_PROBE + "; cat /proc/self/uid_map /proc/self/gid_map; id -u")
    inside = probe.parse_ns_listing(out)
    assert inside["user"] != os.readlink("/proc/self/ns/user")
    lines = [line.split() for line in out.splitlines() if not line.startswith("/proc")]
    assert lines[0] == ["0", "200000", "65536"] and lines[1] == ["0", "200000", "65536"]
    assert lines[2] == ["0"]


@pytest.mark.req(SHOULD, "config-linux.md", "Namespaces")
@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.deviates("runc", "runc 1.1 does not support the time namespace")
def test_namespace_time_offsets(ctr):
    """`time`: the container will be able to have its own clocks (SHOULD be supported); `timeOffsets`
    sets the offset for Time Namespace (all properties of config.json MUST be applied by create)."""
    ctr.add_namespace("time")
    ctr.linux["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0},
                                "monotonic": {"secs": 86400, "nanosecs": 0}}
    out = ctr.sh("cat /proc/uptime")
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert float(out.split()[0]) >= host + 864000 - 60


def _holder_flags(ns_type):
    return {"network": ["--net"], "ipc": ["--ipc"], "uts": ["--uts"], "pid": ["--pid", "--fork"],
            "cgroup": ["--cgroup"], "mount": ["--mount"]}[ns_type]


@pytest.mark.req(MUST, "config-linux.md", "Namespaces")
@pytest.mark.parametrize("ns_type", ["network", "ipc", "uts", "pid", "cgroup"])
def test_namespace_join_by_path(ctr, probe, ns_type):
    """`path` ... The runtime MUST place the container process in the namespace associated with that
    `path`."""
    holder = ctr.holder(*_holder_flags(ns_type))
    f = probe.NS_FILE[ns_type]
    path = f"/proc/{holder}/ns/{f}"
    ctr.add_namespace(ns_type, path)
    inside = ns_inside(ctr, probe)
    assert inside[f] == os.readlink(path)
    assert inside[f] != os.readlink(f"/proc/self/ns/{f}")


@pytest.mark.req(MUST, "config-linux.md", "Namespaces")
def test_namespace_path_wrong_type(ctr):
    """The runtime MUST generate an error if `path` is not associated with a namespace of type `type`."""
    holder = ctr.holder("--uts")
    ctr.add_namespace("network", f"/proc/{holder}/ns/uts")
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config-linux.md", "Namespaces")
def test_namespace_duplicated(ctr):
    """If a `namespaces` field contains duplicated namespaces with same `type`, the runtime MUST generate
    an error."""
    ctr.linux["namespaces"].append({"type": "ipc"})
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config.md", "Valid values")
def test_namespace_unknown_type(ctr):
    """Runtimes MUST generate an error when invalid or unsupported values are encountered (an unknown
    namespace type)."""
    ctr.linux["namespaces"].append({"type": "not-a-namespace"})
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(SHOULD, "config-linux.md", "User namespace mappings")
def test_userns_does_not_chown_rootfs(ctr):
    """The runtime SHOULD NOT modify the ownership of referenced filesystems to realize the mapping."""
    ctr.use_userns(300000, 65536)
    before = os.stat(os.path.join(ctr.rootfs, "bin", "busybox"))
    assert ctr.sh("echo ok") == "ok\n"
    after = os.stat(os.path.join(ctr.rootfs, "bin", "busybox"))
    root_dir = os.stat(ctr.rootfs)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid) == (0, 0)
    assert (root_dir.st_uid, root_dir.st_gid) == (0, 0)


# --------------------------------------------------------------------------- hostname, annotations, ...

@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config.md", "Hostname")
def test_hostname(ctr):
    """`hostname` specifies the container's hostname as seen by processes running inside the container."""
    ctr.config["hostname"] = "conformance-host"
    assert ctr.sh("hostname; cat /proc/sys/kernel/hostname") == "conformance-host\nconformance-host\n"


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config.md", "Domainname")
@pytest.mark.deviates("runc", "runc 1.1 does not set the domainname")
def test_domainname(ctr):
    """`domainname` specifies the container's domainname as seen by processes running inside the
    container."""
    ctr.config["domainname"] = "conformance.example"
    assert ctr.sh("cat /proc/sys/kernel/domainname") == "conformance.example\n"


@pytest.mark.req(MUST, "config.md", "Extensibility")
def test_unknown_properties_ignored(ctr):
    """Runtimes MAY log unknown properties but MUST otherwise ignore them.  That includes not
    generating errors if they encounter an unknown property."""
    ctr.config["org.example.unknown"] = {"nested": [1, 2]}
    ctr.process["org.example.unknownProcessField"] = True
    ctr.linux["org.example.unknownLinuxField"] = "x"
    ctr.config["root"]["org.example.unknownRootField"] = 1
    assert ctr.sh("echo ok") == "ok\n"


@pytest.mark.req(MUST, "config.md", "Annotations")
def test_unknown_annotations_accepted(ctr):
    """Runtimes MUST handle unknown annotation keys like any other unknown property.  Values MAY be an
    empty string."""
    ctr.config["annotations"] = {"com.example.whatever": "1", "org.example.empty": ""}
    assert ctr.sh("echo ok") == "ok\n"


@pytest.mark.req(MUST, "config.md", "Specification version")
@pytest.mark.req(MUST, "config.md", "Valid values")
@pytest.mark.deviates("runc", "runc does not check ociVersion")
@pytest.mark.parametrize("version", ["not-semver", "2.0.0"])
def test_oci_version_rejected(ctr, version):
    """`ociVersion` MUST be in SemVer v2.0.0 format ... (a configuration for an unsupported major
    version is not compatible; runtimes MUST generate an error when invalid or unsupported values are
    encountered)."""
    ctr.config["ociVersion"] = version
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config.md", "Specification version")
@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.2.0"])
def test_oci_version_1x_accepted(ctr, version):
    """Compatible with all runtimes that support any 1.x or later release of this specification (any
    1.x config runs)."""
    ctr.config["ociVersion"] = version
    assert ctr.sh("echo ok") == "ok\n"


# --------------------------------------------------------------------------- devices

DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7), "/dev/random": (1, 8),
                   "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


@pytest.mark.req(MUST, "config-linux.md", "Default Devices")
def test_default_devices(ctr):
    """In addition to any devices configured with this setting, the runtime MUST also supply: /dev/null,
    /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty, /dev/ptmx."""
    paths = " ".join(DEFAULT_DEVICES)
    out = ctr.sh(f"for d in {paths}; do stat -c '%n %F %t %T' $d; done")
    got = {}
    for line in out.splitlines():
        name, rest = line.split(" ", 1)
        got[name] = rest
    for path, (major, minor) in DEFAULT_DEVICES.items():
        assert got[path] == f"character special file {major:x} {minor:x}", path


@pytest.mark.req(MUST, "config-linux.md", "Default Devices")
def test_default_devices_usable(ctr):
    """The default devices are supplied usable (the device cgroup lets the container use them)."""
    out = ctr.sh("echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; "
                 "head -c 5 /dev/urandom | wc -c; head -c 5 /dev/random | wc -c; "
                 "(echo x > /dev/full) 2>&1 | grep -qi 'space' && echo full-ok")
    assert out.split() == ["null-ok", "5", "5", "5", "full-ok"]


@pytest.mark.req(MUST, "config-linux.md", "Default Devices")
def test_default_ptmx(ctr):
    """/dev/ptmx: a bind-mount or symlink of the container's /dev/pts/ptmx."""
    out = ctr.sh("readlink /dev/ptmx || stat -c '%t:%T' /dev/ptmx; stat -c '%t:%T' /dev/pts/ptmx")
    first, second = out.split()
    assert first in ("pts/ptmx", "/dev/pts/ptmx") or first == second


@pytest.mark.req(MUST, "config-linux.md", "Devices")
def test_devices_created(ctr):
    """`devices` (array of objects, OPTIONAL) lists devices that MUST be available in the container
    (type, major/minor, fileMode (decimal), uid and gid in the container namespace)."""
    ctr.linux["devices"] = [
        {"path": "/dev/testnull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o646, "uid": 1000, "gid": 1001},
        {"path": "/dev/testblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0},
        {"path": "/dev/testfifo", "type": "p", "fileMode": 0o666},
    ]
    ctr.linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    out = ctr.sh("for d in /dev/testnull /dev/testblk /dev/testfifo; do stat -c '%n|%F|%t|%T|%a|%u|%g' $d; done;"
                 " echo x > /dev/testnull && echo usable")
    lines = out.splitlines()
    assert lines[0] == "/dev/testnull|character special file|1|3|646|1000|1001"
    assert lines[1] == "/dev/testblk|block special file|7|c8|600|0|0"
    assert lines[2].startswith("/dev/testfifo|fifo|")
    assert lines[3] == "usable"


@pytest.mark.req(MUST, "config-linux.md", "Devices")
def test_device_outside_dev(ctr):
    """The path MAY be anywhere in the container filesystem, notably outside of /dev."""
    ctr.linux["devices"] = [{"path": "/devices-elsewhere/mynull", "type": "c", "major": 1, "minor": 3,
                             "fileMode": 0o666}]
    assert ctr.sh("stat -c '%F %t %T' /devices-elsewhere/mynull") == "character special file 1 3\n"


@pytest.mark.req(MUST, "config-linux.md", "Devices")
@pytest.mark.deviates("runc", "runc replaces an existing file at a device path instead of failing")
def test_device_path_conflict(ctr):
    """If a file already exists at `path` that does not match the requested device, the runtime MUST
    generate an error."""
    ctr.linux["devices"] = [{"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    ctr.set_args("true")
    assert ctr.run().returncode != 0


def _tun_rules(*rules):
    return [{"allow": False, "access": "rwm"}] + [
        {"allow": allow, "type": "b", "major": 7, "minor": 250, "access": "rw"} for allow in rules]


@pytest.mark.req(MUST, "config-linux.md", "Allowed Device list")
@pytest.mark.parametrize("rules,allowed", [((), False), ((True,), True), ((True, False), False),
                                           ((False, True), True)], ids=["none", "allow", "allow-deny", "deny-allow"])
def test_device_allowlist_order(ctr, probe, rules, allowed):
    """`devices` configures the allowed device list.  The runtime MUST apply entries in the listed
    order."""
    if not probe.has_controller("devices") and not probe.cgroup_v2():
        pytest.skip("no devices cgroup")
    # The node is made in the rootfs by the test (not listed in linux.devices, which a runtime may
    # allow on its own): only the cgroup rules decide whether it can be opened.
    # A block device no runtime allows by default; opening a missing minor fails with ENXIO when
    # the cgroup lets it through, with EPERM when it does not.
    os.mknod(os.path.join(ctr.rootfs, "testblk"), 0o666 | stat.S_IFBLK, os.makedev(7, 250))
    ctr.linux["resources"]["devices"] = _tun_rules(*rules)
    out = ctr.sh("(exec 3< /testblk) 2>&1; true")
    denied = "Operation not permitted" in out
    assert denied == (not allowed), out


# --------------------------------------------------------------------------- sysctl, seccomp, personality

@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Sysctl")
def test_sysctl(ctr):
    """`sysctl` allows kernel parameters to be modified at runtime for the container (all properties of
    config.json MUST be applied)."""
    ctr.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4242", "net.ipv4.tcp_syncookies": "0"}
    out = ctr.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax /proc/sys/net/ipv4/tcp_syncookies")
    assert out.split() == ["1", "4242", "0"]


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
def test_seccomp_errno(ctr):
    """Seccomp configuration allows one to configure actions to take for matched syscalls (`errnoRet`:
    the errno return code to use; the default is EPERM)."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
    ]}
    out = ctr.sh("busybox pwd 2>&1; mkdir /share/d 2>&1; echo done")
    assert "Operation not permitted" in out
    assert "No space left on device" in out
    assert not os.path.exists(os.path.join(ctr.share, "d"))


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
def test_seccomp_kill(ctr):
    """`SCMP_ACT_KILL` kills the process on a matching syscall."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    ctr.set_args("busybox", "pwd")
    res = ctr.run()
    assert res.returncode != 0 and res.stdout == ""


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
@pytest.mark.deviates("runc", "runc accepts errnoRet on SCMP_ACT_ALLOW")
def test_seccomp_errno_on_allow_fails(ctr):
    """`errnoRet` ... When the action doesn't support an errno, the runtime MUST print and error and
    fail."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
@pytest.mark.deviates("runc", "runc accepts a seccomp rule with an empty `names` list")
def test_seccomp_names_not_empty(ctr):
    """`names` MUST contain at least one entry."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [], "action": "SCMP_ACT_ERRNO"}]}
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
@pytest.mark.req(MUST, "config.md", "Valid values")
def test_seccomp_unknown_action(ctr):
    """Runtimes MUST generate an error when invalid or unsupported values are encountered (an unknown
    seccomp action)."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_NOT_AN_ACTION"}
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Personality")
@pytest.mark.deviates("runc", "runc 1.1 ignores linux.personality")
def test_personality_linux32(ctr):
    """`personality` sets the Linux execution personality ... `LINUX32` will set the uname system call to
    show a 32 bit CPU type, such as i686."""
    if os.uname().machine != "x86_64":
        pytest.skip("LINUX32 check written for x86_64")
    ctr.linux["personality"] = {"domain": "LINUX32"}
    assert ctr.sh("uname -m").strip() in ("i686", "i386")


@pytest.mark.req(MUST, "runtime.md", "Start")
@pytest.mark.req(MUST, "config.md", "Linux Process")
@pytest.mark.deviates("runc", "runc 1.1 ignores process.scheduler")
def test_scheduler_policy(ctr):
    """`scheduler` ... `policy` represents the scheduling policy; `nice` is the nice value for the process
    (start MUST run the program as specified by process)."""
    ctr.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    out = ctr.sh("grep -E '^policy|^prio' /proc/self/sched")
    fields = dict(line.replace(" ", "").split(":") for line in out.splitlines())
    assert fields["policy"] == "3" and fields["prio"] == "125"


@pytest.mark.req(MUST, "runtime.md", "Start")
@pytest.mark.req(MUST, "config.md", "Linux Process")
@pytest.mark.deviates("runc", "runc 1.1 ignores process.ioPriority")
def test_io_priority(ctr):
    """`ioPriority` configures the I/O priority settings for the container's processes (class and
    priority)."""
    ctr.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    assert ctr.sh("ionice -p $$").strip() == "best-effort: prio 6"


# --------------------------------------------------------------------------- netDevices

@pytest.mark.req(MUST, "config-linux.md", "Network Devices")
@pytest.mark.deviates("runc", "runc 1.1 ignores linux.netDevices")
def test_net_devices_moved_and_up(ctr):
    """`netDevices`: a set of network devices that MUST be made available in the container; the runtime
    MUST preserve permanent global addresses and MUST set the network device state to "up"."""
    name = "ocrt" + ctr.id[-8:]
    peer = name + "p"
    if subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer]).returncode != 0:
        pytest.skip("cannot create a veth pair here")
    try:
        subprocess.run(["ip", "addr", "add", "192.0.2.77/24", "dev", name], check=True)
        ctr.linux["netDevices"] = {name: {"name": "ctr0"}}
        out = ctr.sh("ip -o addr show dev ctr0; ip -o link show dev ctr0")
        assert "192.0.2.77/24" in out
        assert "UP" in out.split("<", 1)[1].split(">", 1)[0] if "<" in out else False
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", peer], capture_output=True)
