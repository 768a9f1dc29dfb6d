"""A private containerd with its CRI plugin, two runtime handlers, CNI, and a small CRI client.

What ``test_cri.py`` drives, as a kubelet would: the CRI gRPC API of containerd 1.6 (Debian 12),
with the runtime handlers ``runc`` (/usr/sbin/runc) and ``ocirun`` (the runtime under test), both
``io.containerd.runc.v2`` shims told the binary with ``BinaryName``.

Everything lives under one private directory ``/var/tmp/ocirun-cri-XXXX`` (root, state, sockets,
the shims' runtime roots, CNI config and IPAM data, the pods' network namespaces
(``netns_mounts_under_state_dir``), the pods' logs, the volumes).  What is outside it, and removed
at the end: the CNI bridge ``ocicri<N>`` (the bridge plugin never deletes it), libcni's cache
``/var/lib/cni`` (fixed in containerd 1.6; removed when the session created it), the shims'
``/run/containerd/s`` (as in containerd_env.py) and the pods' cgroups under ``/ocirun-cri-<pid>``.

The CRI client's Python code is generated at test time, into the private directory, from the CRI
API's ``api.proto`` (Debian 13's golang-github-kubernetes-cri-api-dev, fetched with a private apt
sources list as scripts/install-criu does) and the ``gogo.proto`` it imports (Debian 12's
golang-github-gogo-protobuf-dev); nothing generated or copied is kept.
"""
from __future__ import annotations

import base64
import importlib
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest

from . import containerd_env
from .conftest import _try_rmdir, image_rootfs, runtime_path

IMAGE = "localhost/ocirun-cri-bb:latest"
PAUSE_IMAGE = "localhost/ocirun-cri-pause:latest"
#: The two runtime handlers, in the order the tests run them.
HANDLERS = ("ocirun", "runc")
CRI_API_DEB = "golang-github-kubernetes-cri-api-dev"
GOGO_DEB = "golang-github-gogo-protobuf-dev"
API_PROTO = "k8s.io/cri-api/pkg/apis/runtime/v1/api.proto"
GOGO_PROTO = "github.com/gogo/protobuf/gogoproto/gogo.proto"
#: libcni's cache; containerd 1.6 gives no way to move it.
CNI_CACHE = "/var/lib/cni"

#: The sandbox's process: sleeps until TERM/INT (exit 0) and, as the pid 1 of a pod that shares its
#: pid namespace, reaps the orphans the containers leave.  Compiled with gcc -static at set-up.
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = quit;
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    for (;;) pause();
}
"""


# --------------------------------------------------------------------------- the CRI API stubs

def fetch_protos(workdir: str) -> str:
    """Unpack api.proto and gogo.proto under ``workdir/src`` (the protoc include root) and return it.

    A private apt state (lists, cache, sources) under ``workdir``: the system's apt is not touched.
    Raises RuntimeError with apt's last line when a package cannot be had."""
    src = os.path.join(workdir, "src")
    apt_dir = os.path.join(workdir, "apt")
    for d in ("lists/partial", "cache/archives/partial", "debs"):
        os.makedirs(os.path.join(apt_dir, d), exist_ok=True)
    sources = os.path.join(apt_dir, "sources.list")
    with open(sources, "w") as f:
        f.write("deb http://deb.debian.org/debian bookworm main\n"
                "deb http://deb.debian.org/debian trixie main\n")
    apt = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
           "-o", f"Dir::State::Lists={apt_dir}/lists", "-o", f"Dir::Cache={apt_dir}/cache",
           "-o", "APT::Sandbox::User=root"]
    steps = (["apt-get", *apt, "update", "-qq"],
             ["apt-get", *apt, "download", "-qq", f"{CRI_API_DEB}/trixie", f"{GOGO_DEB}/bookworm"])
    for argv in steps:
        proc = subprocess.run(argv, cwd=os.path.join(apt_dir, "debs"), capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
            raise RuntimeError(f"{' '.join(argv[:1] + argv[-3:])}: {last[0]}")
    for deb in sorted(os.listdir(os.path.join(apt_dir, "debs"))):
        subprocess.run(["dpkg-deb", "-x", os.path.join(apt_dir, "debs", deb), os.path.join(workdir, "deb")],
                       check=True, capture_output=True, timeout=60)
    gocode = os.path.join(workdir, "deb", "usr", "share", "gocode", "src")
    for rel in (API_PROTO, GOGO_PROTO):
        if not os.path.exists(os.path.join(gocode, rel)):
            raise RuntimeError(f"{rel} is not in the downloaded packages")
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        shutil.copy(os.path.join(gocode, rel), os.path.join(src, rel))
    shutil.rmtree(os.path.join(workdir, "deb"))
    shutil.rmtree(apt_dir)
    return src


def compile_stubs(src: str, out: str):
    """protoc (grpcio-tools) ``src``'s two protos into ``out``; return the modules (api_pb2, api_pb2_grpc)."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    os.makedirs(out, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{src}", f"-I{well_known}", f"--python_out={out}",
                      f"--grpc_python_out={out}", os.path.join(src, API_PROTO), os.path.join(src, GOGO_PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {API_PROTO} ({rc})")
    # The generated modules import each other by their proto paths (k8s.io/... -> k8s.io....,
    # namespace packages): ``out`` goes first on sys.path for as long as the session runs.
    sys.path.insert(0, out)
    module = API_PROTO[:-len(".proto")].replace("/", ".").replace("-", "_")
    return importlib.import_module(module + "_pb2"), importlib.import_module(module + "_pb2_grpc")


# --------------------------------------------------------------------------- images

def build_pause(workdir: str) -> str:
    """A one-file rootfs holding the static pause program; its directory."""
    rootfs = os.path.join(workdir, "pause-rootfs")
    os.makedirs(rootfs)
    source = os.path.join(workdir, "pause.c")
    with open(source, "w") as f:
        f.write(PAUSE_C)
    proc = subprocess.run(["gcc", "-static", "-Os", "-s", "-o", os.path.join(rootfs, "pause"), source],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"gcc -static pause.c failed: {proc.stderr.strip()[-500:]}")
    os.unlink(source)
    return rootfs


# --------------------------------------------------------------------------- CNI

def cni_conflist(name: str, bridge: str, subnet: str, ipam_dir: str) -> dict:
    """A bridge + host-local network that changes nothing else on the host: no gateway on the
    bridge (so the plugin leaves net.ipv4.ip_forward alone), no masquerade (no iptables rules)."""
    return {"cniVersion": "0.4.0", "name": name, "plugins": [{
        "type": "bridge", "bridge": bridge, "isGateway": False, "ipMasq": False, "hairpinMode": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": ipam_dir},
    }]}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (containerd 1.6's stream server builds its
    URLs from the configured port, so "0" cannot be used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the daemon

class CriContainerd(containerd_env.Containerd):
    """containerd with the CRI plugin on: namespace k8s.io, handlers ``runc`` and ``ocirun``."""

    disabled_plugins = [p for p in containerd_env.DISABLED_PLUGINS if p != "io.containerd.grpc.v1.cri"]

    def __init__(self, base: str):
        tag = os.getpid() % 100000
        self.bridge = f"ocicri{tag}"
        self.subnet = f"10.{200 + tag % 50}.{tag % 250}.0/24"
        self.stream_port = free_port()
        self.handlers = {name: runtime_path(name) for name in HANDLERS}
        for d in ("cni/net.d", "cni/ipam", "logs", "volumes", "proto"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        super().__init__(base)
        self.namespace = "k8s.io"
        self.cgroup_parent = f"/ocirun-cri-{os.getpid()}"
        with open(os.path.join(base, "cni", "net.d", "10-ocirun-cri.conflist"), "w") as f:
            json.dump(cni_conflist(f"ocirun-cri-{tag}", self.bridge, self.subnet,
                                   os.path.join(base, "cni", "ipam")), f, indent=1)
        self.channel = None

    def runtime_root(self, handler: str) -> str:
        return os.path.join(self.base, f"runtime-{handler}")

    def config_text(self) -> str:
        base = self.base
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = super().config_text() + f"""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "{self.stream_port}"
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  max_container_log_line_size = 16384
  # Containers' oom_score_adj no lower than containerd's own: the sandbox's -998 needs
  # CAP_SYS_RESOURCE, which root may lack (it does on the CI VM).
  restrict_oom_score_adj = true

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{base}/cni/net.d"
  max_conf_num = 1

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
"""
        for name, binary in self.handlers.items():
            text += f"""
[{cri}.containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
  Root = "{self.runtime_root(name)}"
"""
        return text

    def import_images(self) -> None:
        rootfs = image_rootfs(os.path.join(self.base, "image-rootfs"))
        try:
            archives = [containerd_env.oci_archive(self.base, rootfs, IMAGE, {"Cmd": ["/bin/sh"]}, "bb")]
        finally:
            shutil.rmtree(rootfs)
        pause = build_pause(self.base)
        try:
            archives.append(containerd_env.oci_archive(self.base, pause, PAUSE_IMAGE,
                                                       {"Entrypoint": ["/pause"]}, "pause"))
        finally:
            shutil.rmtree(pause)
        for archive in archives:
            proc = self.ctr(["images", "import", archive], timeout=120)
            if proc.returncode != 0:
                pytest.fail(f"ctr -n k8s.io images import {archive} failed: {proc.stdout} {proc.stderr}")
            os.unlink(archive)

    def stop(self) -> list[str]:
        problems = []
        if self.proc is not None and self.proc.poll() is None and self.channel is not None:
            try:
                problems += Cri(self, None).remove_all_pods()
            except Exception as e:   # noqa: BLE001 - the rest of the cleanup must run
                problems.append(f"removing the pods: {e}")
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            for ref in (IMAGE, PAUSE_IMAGE):
                self.ctr(["images", "rm", ref], timeout=30)
        problems += super().stop()
        return problems


def bridge_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def remove_host_network(daemon: CriContainerd, cache_was_there: bool) -> list[str]:
    """The bridge (and libcni's cache when the session made it)."""
    problems = []
    if bridge_exists(daemon.bridge):
        subprocess.run(["ip", "link", "del", daemon.bridge], capture_output=True, timeout=30)
        if bridge_exists(daemon.bridge):
            problems.append(f"could not delete bridge {daemon.bridge}")
    if not cache_was_there and os.path.isdir(CNI_CACHE):
        shutil.rmtree(CNI_CACHE, ignore_errors=True)
    return problems


def iptables_rules() -> str:
    proc = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30)
    return "\n".join(line for line in proc.stdout.splitlines() if line and line[0] not in "#:")


# --------------------------------------------------------------------------- the client

class Cri:
    """CRI calls for one runtime handler (``handler=None``: handler-neutral calls only)."""

    def __init__(self, daemon: CriContainerd, handler: str | None):
        import grpc

        self.daemon = daemon
        self.handler = handler
        self.pb = daemon.api_pb2
        if daemon.channel is None:
            daemon.channel = grpc.insecure_channel(f"unix://{daemon.address}")
        self.runtime = daemon.api_grpc.RuntimeServiceStub(daemon.channel)
        self.images = daemon.api_grpc.ImageServiceStub(daemon.channel)
        self._n = 0

    def new_name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}-{self.handler}-{self._n}"

    # ---- pods

    def pod_config(self, stem: str, *, network: str = "POD", pid: str = "CONTAINER", ipc: str = "POD",
                   hostname: str = "", sysctls: dict | None = None, privileged: bool = False,
                   cgroup_parent: str | None = None, **meta):
        pb = self.pb
        name = self.new_name(stem)
        uid = secrets.token_hex(8)
        log_dir = os.path.join(self.daemon.base, "logs", name)
        os.makedirs(log_dir, exist_ok=True)
        ns = pb.NamespaceOption(network=getattr(pb, network), pid=getattr(pb, pid), ipc=getattr(pb, ipc))
        linux = pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent or f"{self.daemon.cgroup_parent}/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns, privileged=privileged),
            sysctls=sysctls or {})
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="ocirun-cri", attempt=0),
            hostname="" if network == "NODE" else hostname or name,   # the kubelet's choice
            log_directory=log_dir, linux=linux, **meta)

    def run_pod(self, config) -> str:
        return self.runtime.RunPodSandbox(
            self.pb.RunPodSandboxRequest(config=config, runtime_handler=self.handler), timeout=120).pod_sandbox_id

    def pod_status(self, pod_id: str):
        return self.runtime.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id),
                                             timeout=30).status

    def stop_pod(self, pod_id: str) -> None:
        self.runtime.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)

    def remove_pod(self, pod_id: str) -> None:
        self.runtime.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)

    def pods(self) -> list:
        return list(self.runtime.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=30).items)

    def remove_all_pods(self) -> list[str]:
        """Stop and remove every pod (RemovePodSandbox removes its containers); what failed."""
        problems = []
        for pod in self.pods():
            try:
                self.stop_pod(pod.id)
                self.remove_pod(pod.id)
            except Exception as e:   # noqa: BLE001 - try every pod
                problems.append(f"pod {pod.metadata.name}: {e}")
        return problems

    # ---- containers

    def container_config(self, pod_config, stem: str, command: list[str], *, attempt: int = 0,
                         mounts=(), resources=None, security=None, envs: dict | None = None):
        pb = self.pb
        name = f"{stem}"
        security = security or pb.LinuxContainerSecurityContext()
        # As the kubelet does: every container states the pod's namespace modes again (containerd
        # reads the container's, not the sandbox's).
        security.namespace_options.CopyFrom(pod_config.linux.security_context.namespace_options)
        linux = pb.LinuxContainerConfig(resources=resources, security_context=security)
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt),
            image=pb.ImageSpec(image=IMAGE), command=command,
            envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
            log_path=f"{name}/{attempt}.log", mounts=list(mounts), linux=linux)

    def create(self, pod_id: str, pod_config, config) -> str:
        return self.runtime.CreateContainer(self.pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config), timeout=120).container_id

    def start(self, cid: str) -> None:
        self.runtime.StartContainer(self.pb.StartContainerRequest(container_id=cid), timeout=120)

    def run(self, pod_id: str, pod_config, stem: str, command: list[str], **opts) -> str:
        cid = self.create(pod_id, pod_config, self.container_config(pod_config, stem, command, **opts))
        self.start(cid)
        return cid

    def status(self, cid: str):
        return self.runtime.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid), timeout=30).status

    def state(self, cid: str) -> str:
        return self.pb.ContainerState.Name(self.status(cid).state)

    def wait_exited(self, cid: str, timeout: float = 30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status = self.status(cid)
            if status.state == self.pb.CONTAINER_EXITED:
                return status
            time.sleep(0.1)
        raise AssertionError(f"[{self.handler}] {cid[:12]} still {self.state(cid)} after {timeout}s")

    def stop(self, cid: str, timeout: int = 10) -> None:
        self.runtime.StopContainer(self.pb.StopContainerRequest(container_id=cid, timeout=timeout), timeout=120)

    def remove(self, cid: str) -> None:
        self.runtime.RemoveContainer(self.pb.RemoveContainerRequest(container_id=cid), timeout=120)

    def exec_sync(self, cid: str, command: list[str], timeout: int = 30):
        """(exit code, stdout, stderr)."""
        resp = self.runtime.ExecSync(self.pb.ExecSyncRequest(container_id=cid, cmd=command, timeout=timeout),
                                     timeout=timeout + 30)
        return resp.exit_code, resp.stdout.decode(), resp.stderr.decode()

    def sh(self, cid: str, script: str) -> str:
        """ExecSync ``sh -c script``: its stdout; a non-zero exit fails the test."""
        rc, out, err = self.exec_sync(cid, ["sh", "-c", script])
        assert rc == 0, f"[{self.handler}] exec {script!r} -> {rc}: {out} {err}"
        return out

    def exec_url(self, cid: str, command: list[str], stdin: bool = False) -> str:
        return self.runtime.Exec(self.pb.ExecRequest(container_id=cid, cmd=command, stdin=stdin, stdout=True,
                                                     stderr=True), timeout=30).url

    def stats(self, cid: str):
        return self.runtime.ContainerStats(self.pb.ContainerStatsRequest(container_id=cid), timeout=30).stats

    def update(self, cid: str, resources) -> None:
        self.runtime.UpdateContainerResources(
            self.pb.UpdateContainerResourcesRequest(container_id=cid, linux=resources), timeout=60)

    def reopen_log(self, cid: str) -> None:
        self.runtime.ReopenContainerLog(self.pb.ReopenContainerLogRequest(container_id=cid), timeout=30)


# --------------------------------------------------------------------------- Exec streaming

#: The kubelet streaming protocol over WebSocket (k8s.io/apiserver's wsstream): every binary
#: message starts with its channel byte.
STDIN, STDOUT, STDERR, ERROR = 0, 1, 2, 3


def ws_frame(payload: bytes, opcode: int = 2, mask: bytes | None = None) -> bytes:
    """One final, masked client frame (RFC 6455 5.2)."""
    mask = mask if mask is not None else os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read_frame(read) -> tuple[int, bytes]:
    """(opcode, payload) of one server frame; ``read(n)`` returns exactly n bytes."""
    b0, b1 = read(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read(8))[0]
    mask = read(4) if b1 & 0x80 else None
    data = read(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


def stream_exec(url: str, stdin: bytes | None = None, timeout: float = 30) -> dict[int, bytes]:
    """Run a CRI Exec URL over WebSocket (``v4.channel.k8s.io``): every channel's bytes, by channel.

    With ``stdin``, it is sent on channel 0 and then closed (v4 has no half-close: the command
    must end by itself, e.g. ``head -c N``)."""
    parts = urllib.parse.urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    conn = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        conn.sendall((f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                raise AssertionError(f"stream server closed during the handshake: {buf!r}")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"no WebSocket upgrade: {head.decode(errors='replace')}")

        def read(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            data, buf = buf[:n], buf[n:]
            return data

        if stdin is not None:
            conn.sendall(ws_frame(bytes([STDIN]) + stdin))
        out: dict[int, bytes] = {}
        while True:
            try:
                opcode, data = ws_read_frame(read)
            except EOFError:
                break
            if opcode == 8:          # close
                break
            if opcode in (1, 2) and data:
                out[data[0]] = out.get(data[0], b"") + data[1:]
        return out
    finally:
        conn.close()


def exec_exit_code(channels: dict[int, bytes]) -> int:
    """The exit code the error channel reports (a v1 Status; Success means 0)."""
    raw = channels.get(ERROR, b"")
    if not raw:
        return 0
    status = json.loads(raw)
    if status.get("status") == "Success":
        return 0
    for cause in status.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    raise AssertionError(f"exec failed: {status}")


def parse_cri_log(text: str) -> list[tuple[str, str, str]]:
    """CRI log lines ``<RFC3339Nano> <stdout|stderr> <F|P> <text>`` as (stream, tag, text)."""
    entries = []
    for line in text.splitlines():
        _ts, stream, tag, msg = (line.split(" ", 3) + [""])[:4]
        entries.append((stream, tag, msg))
    return entries


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def cri_daemon():
    if os.geteuid() != 0:
        pytest.skip("engine tests need root")
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("CRI suite: grpcio and grpcio-tools are not installed (pip install -e '.[test]')")
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        containerd_env._apt_install("containerd")
    if not os.path.exists("/usr/lib/cni/bridge"):
        containerd_env._apt_install("containernetworking-plugins")
    new_dirs = [d for d in containerd_env.SHIM_SOCKET_DIRS if not os.path.exists(d)]
    cache_was_there = os.path.exists(CNI_CACHE)
    rules_before = iptables_rules()
    base = tempfile.mkdtemp(prefix="ocirun-cri-", dir="/var/tmp")
    os.chmod(base, 0o711)
    daemon = CriContainerd(base)
    try:
        try:
            src = fetch_protos(os.path.join(base, "proto"))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"CRI suite: the CRI API's api.proto cannot be had ({e})")
        daemon.api_pb2, daemon.api_grpc = compile_stubs(src, os.path.join(base, "proto", "py"))
        daemon.start()
        daemon.import_images()
        yield daemon
    finally:
        problems = daemon.stop()
        problems += remove_host_network(daemon, cache_was_there)
        _try_rmdir(os.path.join("/run/containerd/runc", daemon.namespace))
        for d in new_dirs:
            _try_rmdir(d)
        out = os.path.join(base, "proto", "py")
        if out in sys.path:
            sys.path.remove(out)
        if iptables_rules() != rules_before:
            problems.append("iptables rules changed during the CRI suite")
        if problems:
            print("\nCRI cleanup:", *problems, sep="\n  ")
