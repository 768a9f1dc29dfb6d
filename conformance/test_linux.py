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


@pytest.mark.req(MUST, "config-linux.md", "Namespaces")
def test_namespace_inherited_mount(ctr, probe):
    """If a namespace type is not specified in the `namespaces` array, the container MUST inherit the
    runtime namespace of that type (for `mount`)."""
    # The runtime runs in a private mount namespace of this test (held by a sleeping process and
    # entered with nsenter): runc mounts the container's filesystems into the runtime's namespace
    # and leaves them there, which must not reach the shared test host.  maskedPaths/readonlyPaths
    # go: runc refuses them without a mount namespace (its choice, not the spec's).
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "600"])
    runtime = ctr.runtime
    try:
        ns = f"/proc/{holder.pid}/ns/mnt"
        for _ in range(500):
            if os.readlink(ns) != os.readlink("/proc/self/ns/mnt"):
                break
            subprocess.run(["sleep", "0.01"])
        wrapper = os.path.join(ctr.workdir, "runtime-in-ns")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec nsenter -t {holder.pid} -m -- {runtime} "$@"\n')
        os.chmod(wrapper, 0o755)
        ctr.runtime = wrapper
        ctr.drop_namespace("mount")
        ctr.linux.pop("maskedPaths", None)
        ctr.linux.pop("readonlyPaths", None)
        inside = ns_inside(ctr, probe)
        assert inside["mnt"] == os.readlink(ns)
    finally:
        ctr.delete(force=True)
        ctr.runtime = runtime
        holder.kill()
        holder.wait()


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


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
@pytest.mark.deviates("runc", "runc accepts defaultErrnoRet with a defaultAction that takes no errno")
def test_seccomp_default_errno_on_allow_fails(ctr):
    """`defaultErrnoRet`: when the action doesn't support an errno, the runtime MUST print an error and
    fail."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
                            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    ctr.set_args("true")
    res = ctr.run()
    assert res.returncode != 0 and res.stderr.strip()


class _Agent:
    """A seccomp agent: a SOCK_STREAM AF_UNIX listener that records what each connection brought."""

    def __init__(self, path: str):
        import socket
        import threading

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.connections: list[dict] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import socket

        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            data, fds, calls = b"", [], 0
            while True:
                try:
                    msg, got, _, _ = socket.recv_fds(conn, 1 << 16, 16)
                except OSError:
                    break
                calls += 1
                if got:
                    fds.append((calls, got))
                if not msg:
                    break  # the runtime closed the connection
                data += msg
            kinds = []
            for _, group in fds:
                for fd in group:
                    try:
                        kinds.append(os.readlink(f"/proc/self/fd/{fd}"))
                    finally:
                        os.close(fd)  # the notified syscall then fails with ENOSYS: the container goes on
            self.connections.append({"data": data, "fds": fds, "kinds": kinds})

    def close(self):
        self.sock.close()
        self.thread.join(5)


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
@pytest.mark.req(MUST, "config-linux.md", "The Container Process State")
def test_seccomp_listener_gets_process_state(ctr):
    """`listenerPath`: the runtime MUST send exactly one container process state per connection; the
    connection MUST be closed after sending; the state is sent as JSON and the file descriptors MUST be
    sent using SCM_RIGHTS (`fds` names them: `seccompFd`); `metadata` carries `listenerMetadata`."""
    import json

    path = os.path.join(ctr.workdir, "agent.sock")
    agent = _Agent(path)
    try:
        ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                "listenerMetadata": "conformance-meta",
                                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
        out = ctr.sh("mkdir /tmp/notified 2>/dev/null; echo rc=$?")
        agent.thread.join(10)
    finally:
        agent.close()
    assert "rc=" in out
    assert len(agent.connections) == 1, "no connection (or more than one) reached the agent"
    conn = agent.connections[0]
    doc = json.loads(conn["data"])  # exactly one JSON document, then EOF
    assert doc["ociVersion"] and doc["metadata"] == "conformance-meta"
    assert doc["state"]["id"] == ctr.id and int(doc["pid"]) > 0
    assert doc["fds"] == ["seccompFd"]
    assert [c for c, _ in conn["fds"]] == [1], "file descriptors must come with the first sendmsg"
    assert len(conn["fds"][0][1]) == 1 and conn["kinds"] == ["anon_inode:seccomp notify"]


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
def test_seccomp_listener_unreachable_fails(ctr):
    """If sending to this socket fails, the runtime MUST generate an error."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": os.path.join(ctr.workdir, "none.sock"),
                            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config-linux.md", "Seccomp")
def test_seccomp_listener_ignored_without_notify(ctr):
    """If the `SCMP_ACT_NOTIFY` action is not used this value (`listenerPath`) is ignored: no agent is
    listening, yet the container runs."""
    ctr.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": os.path.join(ctr.workdir, "none.sock"),
                            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    assert "Operation not permitted" in ctr.sh("busybox pwd 2>&1; true")


# --------------------------------------------------------------------------- memory policy

def _numa_policy(out: str) -> str:
    """The policy column of the first /proc/self/numa_maps line (the program's own text)."""
    first = out.strip().splitlines()[0]
    return first.split(" file=")[0].split(" ", 1)[1]


_NO_MEMPOLICY = "runc 1.1 ignores linux.memoryPolicy"


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Memory policy")
@pytest.mark.parametrize("policy,expected", [
    pytest.param({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0", marks=pytest.mark.deviates("runc", _NO_MEMPOLICY)),
    pytest.param({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
                 "interleave=static:0", marks=pytest.mark.deviates("runc", _NO_MEMPOLICY)),
    pytest.param({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]},
                 "weighted interleave=relative:0", marks=pytest.mark.deviates("runc", _NO_MEMPOLICY)),
    pytest.param({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0",
                 marks=pytest.mark.deviates("runc", _NO_MEMPOLICY)),
    pytest.param({"mode": "MPOL_PREFERRED_MANY", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
                 "prefer (many)=balancing:0", marks=pytest.mark.deviates("runc", _NO_MEMPOLICY)),
    pytest.param({"mode": "MPOL_LOCAL"}, "local", marks=pytest.mark.deviates("runc", _NO_MEMPOLICY)),
    pytest.param({"mode": "MPOL_DEFAULT"}, "default"),
], ids=["bind", "interleave-static", "weighted-relative", "preferred", "preferred-many-balancing", "local",
        "default"])
def test_memory_policy(ctr, policy, expected):
    """`memoryPolicy` sets the NUMA memory policy for the container (set_mempolicy(2)): `mode`, `nodes`
    and `flags` reach the container process (all properties MUST be applied by create)."""
    if not os.path.exists("/proc/self/numa_maps"):
        pytest.skip("kernel without NUMA support (/proc/self/numa_maps)")
    ctr.linux["memoryPolicy"] = policy
    ctr.set_args("head", "-1", "/proc/self/numa_maps")
    res = ctr.run()
    assert res.returncode == 0, res.stderr
    assert _numa_policy(res.stdout) == expected


@pytest.mark.req(MUST, "config.md", "Valid values")
@pytest.mark.req(MUST, "config-linux.md", "Memory policy")
@pytest.mark.parametrize("policy", [
    {"mode": "MPOL_NOSUCHMODE"},
    {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOSUCHFLAG"]},
    {"mode": "MPOL_BIND"},
    {"mode": "MPOL_LOCAL", "nodes": "0"},
    {"mode": "MPOL_BIND", "nodes": "0-"},
], ids=["unknown-mode", "unknown-flag", "bind-without-nodes", "local-with-nodes", "bad-nodes"])
@pytest.mark.deviates("runc", _NO_MEMPOLICY)
def test_memory_policy_invalid_fails(ctr, probe, policy):
    """Runtimes MUST generate an error when invalid or unsupported values are encountered (a mode or flag
    outside the list, or nodes the mode does not take: "Some modes require that there are no nodes ...
    Others that there is at least one node"); no container is left behind."""
    ctr.linux["memoryPolicy"] = policy
    ctr.set_args("true")
    assert ctr.run().returncode != 0
    assert ctr.state() is None
    assert probe.find_cgroups(ctr.id) == []


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config-linux.md", "Memory policy")
@pytest.mark.deviates("runc", _NO_MEMPOLICY)
def test_memory_policy_absent_node_fails(ctr, probe):
    """If the runtime cannot apply a property as specified in the configuration, it MUST generate an error
    and a new container MUST NOT be created (a node that does not exist)."""
    with open("/sys/devices/system/node/possible") as f:
        last = f.read().strip().replace("-", ",").split(",")[-1]
    ctr.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": str(int(last) + 1)}
    ctr.set_args("true")
    assert ctr.run().returncode != 0
    assert ctr.state() is None
    assert probe.find_cgroups(ctr.id) == []


# --------------------------------------------------------------------------- network devices (joined netns)

def _veth(ctr) -> str:
    """A host veth pair named after the test; the end returned is the one to move."""
    name = "ocrt" + ctr.id[-8:]
    if subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"]).returncode != 0:
        pytest.skip("cannot create a veth pair here")
    return name


def _del_links(*names: str) -> None:
    for n in names:
        subprocess.run(["ip", "link", "del", n], capture_output=True)


def _links_in(pid: int) -> str:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show"], capture_output=True,
                          text=True, check=True).stdout


def _netns_with_link(ctr, inner: str) -> int:
    """A network namespace (held by a sleeper) that already has an interface called ``inner``."""
    holder = ctr.holder("--net")
    tmp = "ocrx" + ctr.id[-8:]
    subprocess.run(["ip", "link", "add", tmp, "type", "veth", "peer", "name", tmp + "p"], check=True)
    subprocess.run(["ip", "link", "set", tmp, "netns", str(holder), "name", inner], check=True)
    return holder


@pytest.mark.req(MUST, "config-linux.md", "Network Devices")
@pytest.mark.req(MUST, "runtime.md", "Errors")
@pytest.mark.deviates("runc", "runc 1.1 ignores linux.netDevices")
def test_net_devices_name_clash_fails(ctr):
    """If a network device with the specified name already exists in the container namespace, the
    runtime MUST generate an error (and, as for any error, leave the host as it was: the device stays)."""
    name = _veth(ctr)
    try:
        holder = _netns_with_link(ctr, "ctr0")
        ctr.add_namespace("network", f"/proc/{holder}/ns/net")
        ctr.linux["netDevices"] = {name: {"name": "ctr0"}}
        ctr.set_args("true")
        assert ctr.run().returncode != 0
        assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0
    finally:
        _del_links(name, "ocrx" + ctr.id[-8:] + "p")


@pytest.mark.req(MUST, "config-linux.md", "Network Devices")
@pytest.mark.deviates("runc", "runc 1.1 ignores linux.netDevices")
def test_net_devices_template_name_allowed(ctr):
    """... unless the user has provided a template by appending `%d` to the new name. In that case, the
    runtime MUST allow the move, and the kernel will generate a unique name."""
    name = _veth(ctr)
    try:
        holder = _netns_with_link(ctr, "ctr0")
        ctr.add_namespace("network", f"/proc/{holder}/ns/net")
        ctr.linux["netDevices"] = {name: {"name": "ctr%d"}}
        names = {line.split(":")[1].strip().split("@")[0] for line in ctr.sh("ip -o link show").splitlines()}
        assert {"ctr0", "ctr1"} <= names
        assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0
    finally:
        _del_links(name, "ocrx" + ctr.id[-8:] + "p")


@pytest.mark.req(MUST, "config-linux.md", "Network Devices")
@pytest.mark.deviates("runc", "runc 1.1 ignores linux.netDevices")
def test_net_devices_not_moved_back_on_delete(ctr):
    """The runtime MUST NOT actively manage the interface's lifecycle ... MUST NOT attempt to move the
    interface out of the namespace before deletion (a joined namespace outlives the container: the
    device stays there)."""
    name = _veth(ctr)
    try:
        holder = ctr.holder("--net")
        ctr.add_namespace("network", f"/proc/{holder}/ns/net")
        ctr.linux["netDevices"] = {name: {"name": "kept0"}}
        ctr.sh("true")
        assert ctr.delete().returncode == 0 or ctr.state() is None
        assert "kept0" in {line.split(":")[1].strip().split("@")[0] for line in _links_in(holder).splitlines()}
        assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0
    finally:
        _del_links(name, name + "p")
