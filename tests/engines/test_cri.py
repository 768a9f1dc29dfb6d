"""Kubernetes' view: the CRI API of a private containerd 1.6 driving ocirun, and runc for comparison.

Every test runs twice, once per runtime handler (``ocirun``, ``runc``): the pod is created with
``RunPodSandbox(runtime_handler=...)``, as the kubelet does for a pod whose RuntimeClass names the
handler, and every container of the pod then runs through the same handler.  The daemon, the images,
CNI, the CRI client and the cleanup are in cri_env.py; docs/kubernetes.md lists what each test proves.
"""
from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from . import cri_env
from .conftest import wait_for
from .cri_env import HANDLERS, STDERR, STDOUT, Cri, exec_exit_code, parse_cri_log, stream_exec

grpc = pytest.importorskip("grpc", reason="CRI suite: grpcio is not installed (pip install -e '.[test]')")
cri_daemon = cri_env.cri_daemon

SLEEP = ["sleep", "1000"]
LOOP = "trap 'echo bye; exit 3' TERM; echo started; echo oops >&2; while :; do sleep 0.1; done"


@pytest.fixture(params=HANDLERS)
def cri(request, cri_daemon):
    client = Cri(cri_daemon, request.param)
    yield client
    problems = client.remove_all_pods()
    assert not problems, problems


@pytest.fixture(scope="module")
def shared_volumes(cri_daemon):
    """``<base>/volumes`` as a shared mount of its own (the host's / is private here), so that
    HostToContainer and Bidirectional volumes can be made from it; unmounted at the end."""
    path = os.path.join(cri_daemon.base, "volumes")
    subprocess.run(["mount", "--bind", path, path], check=True, timeout=30)
    try:
        subprocess.run(["mount", "--make-shared", path], check=True, timeout=30)
        yield path
    finally:
        for mnt in reversed(_mounts_under(path)):
            subprocess.run(["umount", "-l", mnt], timeout=30)


def _mounts_under(prefix: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4]
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return found


def _pod(cri: Cri, stem: str, **opts):
    config = cri.pod_config(stem, **opts)
    return cri.run_pod(config), config


def _cgroup_file(cri: Cri, pod_config, cid: str, controller: str, name: str) -> str:
    with open(f"/sys/fs/cgroup/{controller}{pod_config.linux.cgroup_parent}/{cid}/{name}") as f:
        return f.read().strip()


def _log(cri: Cri, pod_config, container: str, attempt: int = 0) -> list[tuple[str, str, str]]:
    path = os.path.join(pod_config.log_directory, container, f"{attempt}.log")
    with open(path) as f:
        return parse_cri_log(f.read())


def _status_line(cri: Cri, cid: str, field: str, pid: str = "1") -> str:
    out = cri.sh(cid, f"grep '^{field}:' /proc/{pid}/status")
    return out.split(":", 1)[1].strip()


# --------------------------------------------------------------------------- the lifecycle

def test_lifecycle(cri):
    """RunPodSandbox, Create/Start, ContainerStatus, ExecSync, Exec (streamed), ContainerStats,
    UpdateContainerResources, StopContainer (TERM, exit 3), the log file, RemoveContainer,
    StopPodSandbox, RemovePodSandbox."""
    pb = cri.pb
    pod, config = _pod(cri, "life")
    status = cri.pod_status(pod)
    assert status.state == pb.SANDBOX_READY
    assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(cri.daemon.subnet), status.network

    cid = cri.create(pod, config, cri.container_config(config, "main", ["sh", "-c", LOOP]))
    assert cri.state(cid) == "CONTAINER_CREATED"
    cri.start(cid)
    assert cri.state(cid) == "CONTAINER_RUNNING"
    assert wait_for(lambda: ("stdout", "F", "started") in _log(cri, config, "main"), 10)

    assert cri.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 5"]) == (5, "out\n", "err\n")
    assert cri.sh(cid, "hostname").strip() == config.hostname
    with pytest.raises(grpc.RpcError) as missing:
        cri.exec_sync(cid, ["/nonexistent"])
    assert "no such file or directory" in missing.value.details().lower(), missing.value.details()

    channels = stream_exec(cri.exec_url(cid, ["sh", "-c", "echo streamed; echo e >&2; exit 4"]))
    assert channels.get(STDOUT) == b"streamed\n" and channels.get(STDERR) == b"e\n", channels
    assert exec_exit_code(channels) == 4
    channels = stream_exec(cri.exec_url(cid, ["head", "-c", "5"], stdin=True), stdin=b"hello")
    assert channels.get(STDOUT) == b"hello" and exec_exit_code(channels) == 0, channels

    stats = cri.stats(cid)
    assert stats.attributes.id == cid
    assert stats.memory.working_set_bytes.value > 0 and stats.cpu.usage_core_nano_seconds.value > 0, stats

    cri.update(cid, pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_period=100000,
                                               cpu_quota=30000, cpu_shares=256))
    assert _cgroup_file(cri, config, cid, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert _cgroup_file(cri, config, cid, "cpu", "cpu.cfs_quota_us") == "30000"
    assert _cgroup_file(cri, config, cid, "cpu", "cpu.shares") == "256"
    assert cri.status(cid).resources.linux.memory_limit_in_bytes == 96 << 20

    cri.stop(cid, timeout=10)
    status = cri.status(cid)
    assert (pb.ContainerState.Name(status.state), status.exit_code, status.reason) == \
        ("CONTAINER_EXITED", 3, "Error"), status
    log = _log(cri, config, "main")
    assert ("stdout", "F", "started") in log and ("stderr", "F", "oops") in log and ("stdout", "F", "bye") in log
    assert status.log_path == os.path.join(config.log_directory, "main", "0.log")

    cri.remove(cid)
    assert cid not in [c.id for c in cri.runtime.ListContainers(pb.ListContainersRequest()).containers]
    cri.stop_pod(pod)
    assert cri.pod_status(pod).state == pb.SANDBOX_NOTREADY
    cri.remove_pod(pod)
    assert pod not in [p.id for p in cri.pods()]
    netns = os.path.join(cri.daemon.base, "state")
    assert not [m for m in _mounts_under(netns) if "/netns/" in m], _mounts_under(netns)
    assert not os.path.exists(f"/sys/fs/cgroup/memory{config.linux.cgroup_parent}/{cid}")


def test_log_rotation_and_long_lines(cri):
    """ReopenContainerLog after the log was renamed (what the kubelet's rotation does), and a line
    longer than max_container_log_line_size (16 KiB) split into partial (P) entries."""
    pod, config = _pod(cri, "logs")
    script = "head -c 20000 /dev/zero | tr '\\0' x; echo; i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.1; done"
    cid = cri.run(pod, config, "talker", ["sh", "-c", script])
    path = os.path.join(config.log_directory, "talker", "0.log")
    assert wait_for(lambda: any(m == "line-2" for _s, _t, m in _log(cri, config, "talker")), 10)
    log = _log(cri, config, "talker")
    assert log[0][1] == "P" and log[1][1] == "F", [(s, t, len(m)) for s, t, m in log[:3]]
    assert len(log[0][2]) + len(log[1][2]) == 20000
    os.rename(path, path + ".1")
    cri.reopen_log(cid)
    assert wait_for(lambda: os.path.exists(path) and any(m.startswith("line-") for _s, _t, m in _log(cri, config, "talker")), 10)


# --------------------------------------------------------------------------- namespaces

@pytest.mark.parametrize("pid_mode", ["POD", "CONTAINER"])
def test_two_containers_share_the_pod(cri, pid_mode):
    """Two containers of one pod share its network, IPC and UTS namespaces; the pid namespace
    only with shareProcessNamespace (NamespaceMode POD), where the pause process is pid 1."""
    pod, config = _pod(cri, f"share-{pid_mode.lower()}", pid=pid_mode)
    a = cri.run(pod, config, "a", ["sleep", "1001"])
    b = cri.run(pod, config, "b", ["sleep", "1002"])
    for ns in ("net", "ipc", "uts"):
        assert cri.sh(a, f"readlink /proc/self/ns/{ns}") == cri.sh(b, f"readlink /proc/self/ns/{ns}"), ns
    assert cri.sh(a, "hostname") == cri.sh(b, "hostname") == config.hostname + "\n"
    ip = cri.pod_status(pod).network.ip
    assert f"inet {ip}/" in cri.sh(b, "ip -4 addr show eth0")
    ps_a = cri.sh(a, "ps -o pid,args")
    if pid_mode == "POD":
        assert cri.sh(a, "readlink /proc/self/ns/pid") == cri.sh(b, "readlink /proc/self/ns/pid")
        assert "sleep 1002" in ps_a and cri.sh(a, "cat /proc/1/cmdline").rstrip("\0") == "/pause"
    else:
        assert cri.sh(a, "readlink /proc/self/ns/pid") != cri.sh(b, "readlink /proc/self/ns/pid")
        assert "sleep 1002" not in ps_a and cri.sh(a, "cat /proc/1/cmdline").startswith("sleep")


def test_host_namespaces(cri):
    """hostNetwork, hostPID, hostIPC: NamespaceMode NODE for all three; no CNI address."""
    pod, config = _pod(cri, "host", network="NODE", pid="NODE", ipc="NODE")
    assert cri.pod_status(pod).network.ip == ""
    cid = cri.run(pod, config, "main", SLEEP)
    for ns in ("net", "pid", "ipc"):
        assert cri.sh(cid, f"readlink /proc/self/ns/{ns}").strip() == os.readlink(f"/proc/self/ns/{ns}"), ns
    assert str(os.getpid()) in cri.sh(cid, "ps -o pid").split()


# --------------------------------------------------------------------------- security context

def _caps(hexmask: str) -> set[int]:
    value = int(hexmask, 16)
    return {bit for bit in range(64) if value >> bit & 1}


CAP_CHOWN, CAP_NET_ADMIN, CAP_SYS_ADMIN = 0, 12, 21


def test_users_and_groups(cri):
    pb = cri.pb
    pod, config = _pod(cri, "users")
    sc = pb.LinuxContainerSecurityContext(run_as_user=pb.Int64Value(value=1000),
                                          run_as_group=pb.Int64Value(value=1000),
                                          supplemental_groups=[2000, 3000])
    cid = cri.run(pod, config, "main", SLEEP, security=sc)
    assert cri.sh(cid, "id -u; id -g; id -G").split("\n")[:3] == ["1000", "1000", "1000 2000 3000"]
    assert _status_line(cri, cid, "Uid").split() == ["1000"] * 4


def test_read_only_rootfs_caps_nnp_seccomp(cri):
    """readOnlyRootFilesystem, capabilities add NET_ADMIN / drop CHOWN, noNewPrivs, seccomp
    RuntimeDefault (filter mode 2), then Unconfined (0)."""
    pb = cri.pb
    pod, config = _pod(cri, "secure")
    sc = pb.LinuxContainerSecurityContext(
        readonly_rootfs=True, no_new_privs=True,
        capabilities=pb.Capability(add_capabilities=["NET_ADMIN"], drop_capabilities=["CHOWN"]),
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    cid = cri.run(pod, config, "locked", SLEEP, security=sc)
    rc, _out, err = cri.exec_sync(cid, ["touch", "/x"])
    assert rc != 0 and "read-only file system" in err.lower(), err
    caps = _caps(_status_line(cri, cid, "CapEff"))
    assert CAP_NET_ADMIN in caps and CAP_CHOWN not in caps and CAP_SYS_ADMIN not in caps, caps
    assert _status_line(cri, cid, "NoNewPrivs") == "1"
    assert _status_line(cri, cid, "Seccomp") == "2"
    rc, _out, err = cri.exec_sync(cid, ["unshare", "-U", "true"])   # refused by the default profile
    assert rc != 0, err

    sc = pb.LinuxContainerSecurityContext(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))
    free = cri.run(pod, config, "free", SLEEP, security=sc)
    assert _status_line(cri, free, "Seccomp") == "0"
    assert _status_line(cri, free, "NoNewPrivs") == "0"
    assert cri.exec_sync(free, ["touch", "/x"])[0] == 0


def test_privileged(cri):
    """A privileged container of a privileged pod: every capability the host's root has, no
    seccomp, a writable cgroupfs, the host's devices."""
    pb = cri.pb
    pod, config = _pod(cri, "priv", privileged=True)
    cid = cri.run(pod, config, "main", SLEEP, security=pb.LinuxContainerSecurityContext(privileged=True))
    with open("/proc/self/status") as f:
        host_bnd = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    assert _caps(_status_line(cri, cid, "CapEff")) == _caps(host_bnd)
    assert _status_line(cri, cid, "Seccomp") == "0"
    # containerd 1.6 keeps /sys read-only even here (runc and ocirun alike); the cgroupfs is writable.
    mounts = cri.sh(cid, "cat /proc/mounts")
    assert " /sys/fs/cgroup/memory cgroup rw," in mounts, [m for m in mounts.splitlines() if "sys" in m]
    host_devs = {d for d in os.listdir("/dev") if d.startswith(("vd", "loop"))}
    assert host_devs <= set(cri.sh(cid, "ls /dev").split()), host_devs


def test_sysctls(cri):
    pod, config = _pod(cri, "sysctl", sysctls={"net.ipv4.ip_unprivileged_port_start": "1024",
                                                "kernel.shm_rmid_forced": "1"})
    cid = cri.run(pod, config, "main", SLEEP)
    assert cri.sh(cid, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced"
                  ).split() == ["1024", "1"]


# --------------------------------------------------------------------------- resources

def test_cpu_memory_limits(cri):
    pb = cri.pb
    pod, config = _pod(cri, "limits")
    res = pb.LinuxContainerResources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                     memory_limit_in_bytes=64 << 20)
    cid = cri.run(pod, config, "main", SLEEP, resources=res)
    assert _cgroup_file(cri, config, cid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file(cri, config, cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert _cgroup_file(cri, config, cid, "cpu", "cpu.shares") == "512"
    assert _cgroup_file(cri, config, cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cri.sh(cid, "grep :memory: /proc/self/cgroup").strip().endswith(f"{config.linux.cgroup_parent}/{cid}")


def test_pod_pids_limit(cri):
    """The kubelet's podPidsLimit is pids.max on the pod's cgroup (the CRI has no pids field):
    containers placed under ``cgroup_parent`` cannot fork past it."""
    parent = f"{cri.daemon.cgroup_parent}/pids-{cri.handler}"
    os.makedirs(f"/sys/fs/cgroup/pids{parent}")
    with open(f"/sys/fs/cgroup/pids{parent}/pids.max", "w") as f:
        f.write("12")
    pod, config = _pod(cri, "pids", cgroup_parent=parent)
    cid = cri.run(pod, config, "main", SLEEP)
    script = "for i in $(seq 20); do sleep 30 </dev/null >/dev/null 2>&1 & done; echo forked $(jobs -p | wc -l)"
    rc, out, err = cri.exec_sync(cid, ["sh", "-c", script])
    with open(f"/sys/fs/cgroup/pids{parent}/pids.current") as f:
        current = int(f.read())
    assert rc != 0 and "can't fork" in err and current <= 12, (rc, out, err, current)


def test_oom_killed(cri):
    pb = cri.pb
    pod, config = _pod(cri, "oom")
    cid = cri.run(pod, config, "hog", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                  resources=pb.LinuxContainerResources(memory_limit_in_bytes=16 << 20))
    status = cri.wait_exited(cid)
    # The shim sends /tasks/oom (from its watch on memory.oom_control) and /tasks/exit (from its
    # reaper) on their own: the reason can turn to OOMKilled just after the exit is seen (runc too).
    status = wait_for(lambda: (s := cri.status(cid)).reason == "OOMKilled" and s, 5) or cri.status(cid)
    assert (status.exit_code, status.reason) == (137, "OOMKilled"), status


# --------------------------------------------------------------------------- volumes

def test_volume_propagation(cri, shared_volumes):
    """One host directory mounted three times: mountPropagation None (private), HostToContainer
    (rslave) and Bidirectional (rshared, privileged).  A host mount below it reaches the last two;
    a mount the Bidirectional container makes reaches the host and the HostToContainer container."""
    pb = cri.pb
    src = os.path.join(shared_volumes, cri.handler)
    os.makedirs(os.path.join(src, "fromhost"))
    os.makedirs(os.path.join(src, "fromc"))
    pod, config = _pod(cri, "vol", privileged=True)
    mounts = {"none": pb.PROPAGATION_PRIVATE, "h2c": pb.PROPAGATION_HOST_TO_CONTAINER,
              "bidi": pb.PROPAGATION_BIDIRECTIONAL}
    cids = {}
    for name, propagation in mounts.items():
        mount = pb.Mount(container_path=f"/{name}", host_path=src, propagation=propagation)
        security = pb.LinuxContainerSecurityContext(privileged=name == "bidi")
        cids[name] = cri.run(pod, config, name, SLEEP, mounts=[mount], security=security)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "fromhost", os.path.join(src, "fromhost")], check=True)
        seen = {n: "fromhost" in cri.sh(c, f"grep ' /{n}/fromhost ' /proc/self/mountinfo || true")
                for n, c in cids.items()}
        assert seen == {"none": False, "h2c": True, "bidi": True}, seen
        cri.sh(cids["bidi"], "mount -t tmpfs fromc /bidi/fromc")
        assert wait_for(lambda: os.path.join(src, "fromc") in _mounts_under(src), 5), _mounts_under(src)
        seen = {n: "fromc" in cri.sh(c, f"grep ' /{n}/fromc ' /proc/self/mountinfo || true")
                for n, c in cids.items()}
        assert seen == {"none": False, "h2c": True, "bidi": True}, seen
        cri.sh(cids["none"], "touch /none/written")
        assert os.path.exists(os.path.join(src, "written"))
    finally:
        for mnt in reversed(_mounts_under(src)):
            subprocess.run(["umount", "-l", mnt], timeout=30)


# --------------------------------------------------------------------------- restarts

def test_restart_in_same_sandbox(cri):
    """What the kubelet does when a container exits: a new container with the same name and
    attempt + 1, in the same sandbox (same network namespace, same IP), with its own log file."""
    pb = cri.pb
    pod, config = _pod(cri, "restart")
    first = cri.run(pod, config, "app", ["sh", "-c", "echo run-0; readlink /proc/self/ns/net; exit 1"])
    status = cri.wait_exited(first)
    assert (status.exit_code, status.reason) == (1, "Error"), status
    second = cri.run(pod, config, "app", ["sh", "-c", "echo run-1; readlink /proc/self/ns/net; sleep 1000"],
                     attempt=1)
    assert cri.state(second) == "CONTAINER_RUNNING"
    assert wait_for(lambda: len(_log(cri, config, "app", 1)) >= 2, 10)
    log0, log1 = _log(cri, config, "app", 0), _log(cri, config, "app", 1)
    assert log0[0][2] == "run-0" and log1[0][2] == "run-1"
    assert log0[1][2] == log1[1][2], (log0, log1)   # the sandbox's network namespace, both times
    listed = {(c.metadata.name, c.metadata.attempt): pb.ContainerState.Name(c.state)
              for c in cri.runtime.ListContainers(pb.ListContainersRequest(
                  filter=pb.ContainerFilter(pod_sandbox_id=pod))).containers}
    assert listed == {("app", 0): "CONTAINER_EXITED", ("app", 1): "CONTAINER_RUNNING"}
    cri.remove(first)
    assert cri.state(second) == "CONTAINER_RUNNING"
    assert cri.pod_status(pod).state == pb.SANDBOX_READY
