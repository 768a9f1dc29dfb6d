"""`ocirun inspect`: what the kernel shows of a real container, set against its config."""
import json
import os
import time

import pytest

pytestmark = pytest.mark.root

MIB = 1 << 20


def _inspect(oci, cid, fmt="json"):
    proc = oci("inspect", "--format", fmt, cid)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if fmt == "json" else proc.stdout


def _ns(info):
    return {ns["type"]: ns for ns in info["namespaces"]}


def _create(oci, cid, spec, bundle=None):
    bundle = oci.write(spec, bundle)
    oci("create", "--bundle", bundle, cid, check=True)
    return oci.state(cid)["pid"]


def test_new_namespaces_and_host_shared_ones(oci):
    spec = oci.config(args=("sleep", "60"))
    spec["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]  # no network
    pid = _create(oci, "c1", spec)
    info = _inspect(oci, "c1")
    assert info["status"] == "created" and info["pid"] == pid
    ns = _ns(info)
    for name in ("pid", "ipc", "uts", "mnt", "pid_for_children"):
        assert ns[name]["inode"] == os.stat(f"/proc/{pid}/ns/{name}").st_ino, name
        assert ns[name]["inode"] != os.stat(f"/proc/self/ns/{name}").st_ino, name
        assert ns[name]["sharedWithHost"] is False and ns[name]["configured"] == "new", name
    for name in ("net", "cgroup", "user"):  # not asked for: the runtime's (the host's) own
        assert ns[name]["sharedWithHost"] is True, name
        assert ns[name]["inode"] == os.stat(f"/proc/self/ns/{name}").st_ino, name
        assert ns[name]["configured"] is None, name
    assert info["idMappings"]["uid"] == [{"containerID": 0, "hostID": 0, "size": 4294967295}]
    table = _inspect(oci, "c1", "table")
    assert "net " in table and "host (shared)" in table


def test_namespace_shared_between_two_containers(oci, tmp_path):
    pid1 = _create(oci, "c1", oci.config(args=("sleep", "60")))
    spec = oci.config(args=("sleep", "60"))
    spec["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                                   {"type": "network", "path": f"/proc/{pid1}/ns/net"}, {"type": "ipc"}]
    _create(oci, "c2", spec, str(tmp_path / "b2"))
    ns2 = _ns(_inspect(oci, "c2"))
    assert ns2["net"]["sharedWith"] == ["c1"]
    assert ns2["net"]["sharedWithHost"] is False
    assert ns2["net"]["configured"] == f"/proc/{pid1}/ns/net"
    assert ns2["ipc"]["sharedWith"] == [] and ns2["ipc"]["configured"] == "new"
    ns1 = _ns(_inspect(oci, "c1"))
    assert ns1["net"]["sharedWith"] == ["c2"] and ns1["net"]["inode"] == ns2["net"]["inode"]
    assert "c2" in _inspect(oci, "c1", "table")


def test_memory_and_pids_limits_with_usage(oci):
    spec = oci.config(args=("sleep", "60"))
    spec["linux"]["resources"] = {"memory": {"limit": 64 * MIB}, "pids": {"limit": 50},
                                  "cpu": {"quota": 20000, "period": 100000}}
    _create(oci, "c1", spec)
    oci("start", "c1", check=True)
    cg = _inspect(oci, "c1")["cgroup"]
    assert cg["path"] == spec["linux"]["cgroupsPath"]
    assert cg["memory"]["limit"] == 64 * MIB
    assert 0 < cg["memory"]["usage"] < 64 * MIB
    assert cg["pids"]["limit"] == 50 and cg["pids"]["current"] >= 1
    assert cg["cpu"]["quotaUs"] == 20000 and cg["cpu"]["periodUs"] == 100000
    table = _inspect(oci, "c1", "table")
    assert "64.0 MiB" in table and "20000/100000 us" in table


def test_capabilities_seccomp_and_no_new_privs(oci):
    spec = oci.config(args=("sleep", "60"))
    caps = ["CAP_CHOWN", "CAP_KILL"]
    spec["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    spec["process"]["noNewPrivileges"] = True
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}]}
    _create(oci, "c1", spec)
    before = _inspect(oci, "c1")["process"]
    assert before["applied"] is False  # the waiting init still has the runtime's privileges
    assert before["configuredCapabilities"]["effective"] == caps
    oci("start", "c1", check=True)
    p = _inspect(oci, "c1")["process"]
    assert p["applied"] is True
    assert p["capabilities"]["effective"] == caps
    assert p["capabilities"]["bounding"] == caps
    assert p["capabilities"]["inheritable"] == [] and p["capabilities"]["ambient"] == []
    assert p["noNewPrivileges"] is True
    assert p["seccomp"]["mode"] == "filter" and p["seccomp"]["filters"] >= 1
    assert (p["seccomp"]["rules"], p["seccomp"]["syscalls"]) == (2, 3)
    table = _inspect(oci, "c1", "table")
    assert "chown kill" in table and "no_new_privs yes" in table


def test_masked_readonly_paths_hostname_rootfs(oci):
    spec = oci.config(args=("sleep", "60"), hostname="inspected")
    spec["linux"]["maskedPaths"] = ["/proc/keys", "/sys/firmware", "/nonexistent"]
    spec["linux"]["readonlyPaths"] = ["/proc/sys", "/tmp"]
    _create(oci, "c1", spec)
    info = _inspect(oci, "c1")
    assert info["hostname"] == {"configured": "inspected", "actual": "inspected"}
    assert info["rootfs"] == {"path": oci.rootfs, "readonly": True, "verified": True}
    masked = {e["path"]: e for e in info["maskedPaths"]}
    assert masked["/proc/keys"] == {"path": "/proc/keys", "verified": True, "how": "/dev/null"}
    assert masked["/sys/firmware"]["how"] == "read-only tmpfs" and masked["/sys/firmware"]["verified"]
    assert masked["/nonexistent"]["how"] == "absent"
    ro = {e["path"]: e for e in info["readonlyPaths"]}
    assert ro["/proc/sys"]["verified"] is True and ro["/tmp"]["verified"] is True
    mounts = {m["mountPoint"]: m for m in info["mounts"]}
    assert mounts["/proc"]["type"] == "proc" and "ro" in mounts["/proc/sys"]["options"]
    assert mounts["/"]["propagation"] == "private"


def test_paused_then_stopped(oci):
    _create(oci, "c1", oci.config(args=("sleep", "60")))
    oci("start", "c1", check=True)
    oci("pause", "c1", check=True)
    info = _inspect(oci, "c1")
    assert info["status"] == "paused" and info["cgroup"]["frozen"] is True
    assert info["namespaces"] and info["process"]["applied"] is True
    oci("resume", "c1", check=True)
    oci("kill", "c1", "KILL", check=True)
    for _ in range(200):
        if oci.state("c1")["status"] == "stopped":
            break
        time.sleep(0.01)
    info = _inspect(oci, "c1")
    assert info["status"] == "stopped" and info["pid"] == 0
    assert info["namespaces"] == [] and info["process"] is None and info["notes"]
    assert info["cgroup"]["path"]  # recorded at create, still there until delete
    assert all(e["verified"] is None for e in info["maskedPaths"])
    assert "not running" in _inspect(oci, "c1", "table")


def test_inspect_errors(oci):
    proc = oci("inspect", "nosuch")
    assert proc.returncode == 1 and "container nosuch does not exist" in proc.stderr
    proc = oci("inspect", "--format", "yaml", "nosuch")
    assert proc.returncode == 1 and "invalid format option: yaml" in proc.stderr
    proc = oci("inspect")
    assert proc.returncode == 1 and "requires exactly 1 argument" in proc.stderr


def test_user_namespace_id_maps(oci):
    spec = oci.config(args=("sleep", "60"))
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 1000}]
    pid = _create(oci, "c1", spec)
    oci("start", "c1", check=True)
    info = _inspect(oci, "c1")
    assert info["idMappings"] == {"uid": [{"containerID": 0, "hostID": 200000, "size": 65536}],
                                  "gid": [{"containerID": 0, "hostID": 300000, "size": 1000}]}
    ns = _ns(info)
    assert ns["user"]["sharedWithHost"] is False and ns["user"]["configured"] == "new"
    assert ns["user"]["inode"] == os.stat(f"/proc/{pid}/ns/user").st_ino
    p = info["process"]
    assert (p["uid"], p["containerUid"], p["gid"], p["containerGid"]) == (200000, 0, 300000, 0)
    assert info["hostname"]["actual"] == spec["hostname"]
    assert "0 200000 65536" in _inspect(oci, "c1", "table")
