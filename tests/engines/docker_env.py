"""A private Docker daemon for the engine suite: Debian's dockerd 20.10 on its own containerd.

Why a private pair and not dockerd's supervised containerd: dockerd 20.10 silently uses the
system containerd when ``/run/containerd/containerd.sock`` exists, so the suite starts its own
containerd (config, root, state and sockets under the session directory) and passes
``--containerd``.  dockerd gets its own ``--data-root``, ``--exec-root``, ``--pidfile``,
``--config-file`` and socket, no bridge and no iptables, the cgroupfs driver under a private
``--cgroup-parent``, and the two runtimes under test as ``--add-runtime`` entries (``runc`` is
a reserved name in dockerd, hence ``refrunc``).

The image is written here in Python as a ``docker save`` tarball (manifest.json, config, one
layer) from :func:`ocirun.bundle.make_rootfs`, and loaded with ``docker load``: no registry.

Paths the daemons use outside the session directory (fixed in their code): dockerd's plugin
dir ``/run/docker/plugins`` and the shims' sockets in ``/run/containerd/s``.  They are removed at
the end when they did not exist before and are empty.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import time

import pytest

from .conftest import _apt_install, _try_rmdir, image_rootfs, run_engine, runtime_path, stop_process, sweep

DOCKERD = "/usr/sbin/dockerd"
#: Debian's client (API 1.41); /usr/local/bin/docker may be a newer stand-alone client.
DOCKER = "/usr/bin/docker"
CONTAINERD = "/usr/bin/containerd"
IMAGE = "ocirun-bb:latest"
#: dockerd runtime name -> binary.  ``runc`` itself is reserved by dockerd.
DOCKER_RUNTIMES = {
    "ocirun": ("ocirun", runtime_path("ocirun")),
    "runc": ("refrunc", runtime_path("runc")),
}
#: Fixed paths the daemons create outside the session directory.
OUTSIDE_DIRS = ("/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ensure_docker() -> None:
    """Install docker.io (dockerd, client, containerd) when missing, like the podman suite."""
    if not all(os.access(p, os.X_OK) for p in (DOCKERD, DOCKER, CONTAINERD)):
        _apt_install("docker.io")


def _wait_socket(path: str, proc: subprocess.Popen, what: str, log: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > end:
            with open(log, errors="replace") as f:
                tail = f.read()[-3000:]
            pytest.fail(f"{what} did not start (rc {proc.poll()}): {tail}")
        time.sleep(0.05)


def image_tarball(rootfs: str, tag: str) -> bytes:
    """A ``docker save`` archive of ``rootfs`` as one layer, tagged ``tag``, CMD /bin/sh."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    layer_bytes = layer.getvalue()
    layer_id = hashlib.sha256(layer_bytes).hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": [f"PATH={_PATH}"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "ocirun.bundle.make_rootfs"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": [f"{layer_id}/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((f"{layer_id}/layer.tar", layer_bytes), (config_name, config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Dockerd:
    """containerd + dockerd private to one test session, and the client bound to them."""

    def __init__(self, base: str):
        self.base = base
        self.cgroup_parent = f"/ocirun-docker-{os.getpid()}"
        self.ctr_dir = os.path.join(base, "containerd")
        self.ctr_sock = os.path.join(self.ctr_dir, "containerd.sock")
        self.data_root = os.path.join(base, "data")
        self.exec_root = os.path.join(base, "exec")
        self.sock = os.path.join(base, "docker.sock")
        for d in (self.ctr_dir, self.data_root, self.exec_root, "client", "tmp"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        self.env = {"PATH": _PATH, "HOME": os.path.join(base, "client"), "LANG": "C.UTF-8",
                    "TMPDIR": os.path.join(base, "tmp"),
                    "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": os.path.join(base, "client")}
        self.containerd: subprocess.Popen | None = None
        self.dockerd: subprocess.Popen | None = None
        self.outside_new = [d for d in OUTSIDE_DIRS if not os.path.exists(d)]

    # ------------------------------------------------------------------ daemons

    def start(self) -> None:
        c = self.ctr_dir
        with open(os.path.join(c, "config.toml"), "w") as f:
            f.write(f"""\
version = 2
root = "{c}/root"
state = "{c}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.ctr_sock}"
[ttrpc]
  address = "{self.ctr_sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{c}/opt"
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{c}/runc-v1"
""")
        with open(os.path.join(c, "containerd.log"), "w") as log:
            self.containerd = subprocess.Popen(
                [CONTAINERD, "--config", os.path.join(c, "config.toml")], cwd=c, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_socket(self.ctr_sock, self.containerd, "containerd", os.path.join(c, "containerd.log"))
        config_file = os.path.join(self.base, "daemon.json")
        with open(config_file, "w") as f:
            f.write("{}\n")
        argv = [DOCKERD, "--config-file", config_file, "--data-root", self.data_root,
                "--exec-root", self.exec_root, "--pidfile", os.path.join(self.base, "dockerd.pid"),
                "-H", f"unix://{self.sock}", "--containerd", self.ctr_sock,
                "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
                "--userland-proxy=false", "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent]
        for name, path in DOCKER_RUNTIMES.values():
            argv += ["--add-runtime", f"{name}={path}"]
        log_path = os.path.join(self.base, "dockerd.log")
        with open(log_path, "w") as log:
            self.dockerd = subprocess.Popen(argv, cwd=self.base, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_socket(self.sock, self.dockerd, "dockerd", log_path)
        end = time.monotonic() + 30
        while (proc := self.call(["version", "--format", "{{.Server.Version}}"])).returncode != 0:
            if time.monotonic() > end or self.dockerd.poll() is not None:
                pytest.fail(f"dockerd not answering: {proc.stderr}")
            time.sleep(0.1)

    def call(self, args, timeout=60, input=None) -> subprocess.CompletedProcess:
        return run_engine([DOCKER, *args], self.env, self.base, timeout, input)

    def load_image(self) -> None:
        rootfs = image_rootfs(os.path.join(self.base, "rootfs"))
        tarball = os.path.join(self.base, "image.tar")
        with open(tarball, "wb") as f:
            f.write(image_tarball(rootfs, IMAGE))
        shutil.rmtree(rootfs)
        proc = self.call(["load", "-i", tarball], timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"docker load failed: {proc.stderr}")
        os.unlink(tarball)

    # ------------------------------------------------------------------ cleanup

    def remove_containers(self) -> None:
        ids = self.call(["ps", "-aq"]).stdout.split()
        if ids:
            self.call(["rm", "-f", "-v", *ids], timeout=120)

    def cleanup(self) -> list[str]:
        """Stop everything started by the session and remove what it left; return what was left."""
        problems = []
        if self.dockerd is not None and self.dockerd.poll() is None:
            self.remove_containers()
            self.call(["volume", "prune", "-f"], timeout=60)
            self.call(["rmi", "-f", IMAGE], timeout=60)
        if stop_process(self.dockerd, 30):
            problems.append("dockerd did not stop on SIGTERM; killed")
        if stop_process(self.containerd, 30):
            problems.append("containerd did not stop on SIGTERM; killed")
        # shims (their -address is under base); dockerd bind-mounts its data root on itself
        # (shared propagation): expected, not a leak.
        problems += sweep(self.base, self.cgroup_parent, expected_mounts=(self.data_root,))
        shutil.rmtree(self.base, ignore_errors=True)
        for d in self.outside_new:
            _try_rmdir(d)
        return problems
