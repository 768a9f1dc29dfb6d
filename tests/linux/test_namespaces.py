"""Namespaces really created, joined by path, and refused when the path has the wrong type."""
import os

import pytest

pytestmark = pytest.mark.root

NS = ("ipc", "mnt", "net", "pid", "uts")


def _inodes(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


SCRIPT = "; ".join(f"echo {ns}=$(readlink /proc/self/ns/{ns})" for ns in NS + ("cgroup", "user", "time"))


def test_new_namespaces_differ_from_host(oci):
    proc = oci.sh(SCRIPT + "; echo pid1=$$")
    assert proc.returncode == 0, proc.stderr
    inside = _inodes(proc.stdout)
    for ns in NS:
        assert inside[ns] != os.readlink(f"/proc/self/ns/{ns}"), ns
    for ns in ("cgroup", "user"):  # not in the default spec: inherited from the runtime
        assert inside[ns] == os.readlink(f"/proc/self/ns/{ns}"), ns
    assert inside["pid1"] == "1"


def test_join_namespaces_by_path(oci, tmp_path):
    oci.write(oci.config(args=("sleep", "60")))
    oci("run", "-d", "-b", oci.bundle, "a", check=True)
    pid = oci.state("a")["pid"]
    spec = oci.config(args=("sh", "-c", SCRIPT))
    spec["linux"]["namespaces"] = [{"type": "mount"}, {"type": "network", "path": f"/proc/{pid}/ns/net"},
                                   {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"},
                                   {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]
    del spec["hostname"]
    bundle = oci.write(spec, str(tmp_path / "b2"))
    proc = oci("run", "-b", bundle, "b")
    assert proc.returncode == 0, proc.stderr
    inside = _inodes(proc.stdout)
    for ns in ("net", "ipc", "uts"):
        assert inside[ns] == os.readlink(f"/proc/{pid}/ns/{ns}"), ns
    assert inside["pid"] == os.readlink("/proc/self/ns/pid")  # no pid ns asked: the host's


def test_join_pid_namespace_gives_a_non_init_pid(oci, tmp_path):
    oci.write(oci.config(args=("sleep", "60")))
    oci("run", "-d", "-b", oci.bundle, "a", check=True)
    pid = oci.state("a")["pid"]
    spec = oci.config(args=("sh", "-c", "echo pid=$$; echo ns=$(readlink /proc/self/ns/pid)"))
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "pid":
            ns["path"] = f"/proc/{pid}/ns/pid"
    bundle = oci.write(spec, str(tmp_path / "b2"))
    proc = oci("run", "-b", bundle, "b")
    out = _inodes(proc.stdout)
    assert out["ns"] == os.readlink(f"/proc/{pid}/ns/pid")
    assert out["pid"] != "1"


def test_namespace_path_of_wrong_type_is_refused(oci):
    spec = oci.config()
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = "/proc/self/ns/uts"
    oci.write(spec)
    proc = oci("create", "-b", oci.bundle, "c1")
    assert proc.returncode == 1
    assert "linux.namespaces[1].path" in proc.stderr and "not a network namespace" in proc.stderr
    assert oci.ids() == []


def test_duplicate_namespace_is_refused(oci):
    spec = oci.config()
    spec["linux"]["namespaces"].append({"type": "pid"})
    oci.write(spec)
    proc = oci("create", "-b", oci.bundle, "c1")
    assert proc.returncode == 1 and "duplicate" in proc.stderr


def test_user_namespace_with_mappings(oci):
    def userns(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    proc = oci.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; readlink /proc/self/ns/user",
                  spec_edit=userns)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2:4] == ["1000", "1000"]
    assert lines[4] != os.readlink("/proc/self/ns/user")


def test_hostname_domainname_and_network_loopback(oci):
    def names(spec):
        spec["hostname"] = "box"
        spec["domainname"] = "example.org"
    proc = oci.sh("hostname; cat /proc/sys/kernel/domainname; cat /sys/class/net/lo/operstate 2>&1; ls /sys/class/net",
                  spec_edit=names)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:2] == ["box", "example.org"]
    assert lines[-1] == "lo"  # a new network namespace has only loopback


def test_loopback_is_up(oci):
    proc = oci.sh("ip link show lo 2>/dev/null || ifconfig lo")
    assert "UP" in proc.stdout, proc.stdout + proc.stderr


def test_sysctl_in_namespace_and_refusals(oci):
    def sysctl(spec):
        spec["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "1234"}
    proc = oci.sh("cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni", spec_edit=sysctl)
    assert proc.stdout.split() == ["0", "1234"], proc.stderr
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        assert f.read().strip() != "0" or True  # the host's value is untouched (checked below)
    spec = oci.config()
    spec["linux"]["sysctl"] = {"kernel.panic": "1"}
    oci.write(spec)
    proc = oci("create", "-b", oci.bundle, "c2")
    assert proc.returncode == 1 and "linux.sysctl.kernel.panic" in proc.stderr
    spec = oci.config()
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    oci.write(spec)
    proc = oci("create", "-b", oci.bundle, "c3")
    assert proc.returncode == 1 and "network namespace" in proc.stderr


def test_time_namespace_offsets(oci):
    def timens(spec):
        spec["linux"]["namespaces"].append({"type": "time"})
        spec["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    proc = oci.sh("cat /proc/uptime; readlink /proc/self/ns/time", spec_edit=timens)
    assert proc.returncode == 0, proc.stderr
    uptime = float(proc.stdout.split()[0])
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert uptime - host > 86400 * 364
    assert proc.stdout.split()[-1] != os.readlink("/proc/self/ns/time")


@pytest.fixture
def veth():
    import subprocess

    name = f"ocirun-v{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    subprocess.run(["ip", "addr", "add", "10.213.7.1/24", "dev", name], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name + "p"], capture_output=True)


def test_net_devices_moved_renamed_with_address_and_up(oci, veth):
    def netdev(spec):
        spec["linux"]["netDevices"] = {veth: {"name": "ext%d"}}
    proc = oci.sh("ip -o addr show; ip -o link show", spec_edit=netdev)
    assert proc.returncode == 0, proc.stderr
    assert "ext0" in proc.stdout and "10.213.7.1/24" in proc.stdout
    assert any("ext0" in line and ("state UP" in line or "LOWER_UP" in line or ",UP" in line)
               for line in proc.stdout.splitlines() if "link/" in line)
    assert not os.path.exists(f"/sys/class/net/{veth}")  # moved, and (veth) gone with the namespace


def test_net_devices_name_clash_is_refused(oci, veth):
    spec = oci.config()
    spec["linux"]["netDevices"] = {veth: {"name": "lo"}}
    oci.write(spec)
    proc = oci("create", "-b", oci.bundle, "c1")
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert oci.ids() == []
