"""A private containerd for the engine suite: config, daemon, offline OCI image, ctr wrapper.

Why a helper module and not conftest.py: conftest.py holds the podman session; containerd needs
its own daemon (started here, killed at the end of the session) and nothing of podman's.
``test_containerd.py`` imports the fixtures ``ctrd`` and ``ctr`` from here.

Everything lives under one private directory ``/var/tmp/ocirun-ctrd-XXXX``: containerd's root,
state, gRPC/ttrpc sockets, the opt dir, the shims' runc root (``--runc-root``), ctr's fifo dir.
Containers run in the containerd namespace ``ocirun-ctrd-<pid>``, which also names their
cgroup parent (``--cgroup /ocirun-ctrd-<pid>/<id>``).  The only things containerd 1.6 puts
outside it are the shims' socket directory ``/run/containerd/s`` and an empty
``/run/containerd/runc/<namespace>`` (both hard-coded, see SHIM_SOCKET_DIRS); the finalizer removes
them (the shared parents only if the session created them and they are empty).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from .conftest import (RUNTIMES, _apt_install, _pids_mentioning, _try_rmdir, image_rootfs, run_engine, run_on_pty,
                       runtime_path, stop_process, sweep, wait_for)

IMAGE = "localhost/ocirun-bb:latest"
#: Plugins the suite does not need (CRI would want CNI and a pause image; the others are
#: snapshotters for filesystems this VM does not have). runtime.v1.linux stays: in 1.6 the
#: tasks service refuses to load without it.
DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
]
#: Fixed paths containerd 1.6 uses whatever its config says: the shims' sockets (/run/containerd/s),
#: and the default runc root: after a --uidmap container, containerd's cleanup after the shim exits
#: ("cleaning up after shim disconnected": `containerd-shim-runc-v2 delete`) leaves an empty
#: /run/containerd/runc/<ns>.  Removed at the end when empty (and new, for the shared ones).
SHIM_SOCKET_DIRS = ("/run/containerd/s", "/run/containerd/runc", "/run/containerd")


# --------------------------------------------------------------------------- the OCI image

def _blob(layout: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest.split(":")[1])
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": digest, "size": len(data)}


def _layer_tar(rootfs: str) -> bytes:
    """The rootfs as one uncompressed tar, root-owned, names relative, sorted (reproducible)."""
    buf = io.BytesIO()

    def _norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(dirpath, name)
                tar.add(full, arcname=os.path.relpath(full, rootfs), recursive=False, filter=_norm)
    return buf.getvalue()


def build_image_archive(workdir: str, ref: str = IMAGE) -> str:
    """Write an OCI image-layout tar (busybox from make_rootfs) and return its path."""
    rootfs = image_rootfs(os.path.join(workdir, "image-rootfs"))
    try:
        return oci_archive(workdir, rootfs, ref, {"Cmd": ["/bin/sh"]})
    finally:
        shutil.rmtree(rootfs)


def oci_archive(workdir: str, rootfs: str, ref: str, image_config: dict, name: str = "image") -> str:
    """Write ``rootfs`` as an OCI image-layout tar ``workdir/<name>.tar`` named ``ref``.

    One gzip layer; the config's ``rootfs.diff_ids`` is the digest of the uncompressed tar,
    the manifest names the compressed blob: containerd checks both on import/unpack.
    ``image_config`` (Cmd, Entrypoint, ...) goes into the image config next to Env and WorkingDir.
    """
    layer = _layer_tar(rootfs)
    layout = os.path.join(workdir, f"{name}-layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    layer_desc = _blob(layout, gzip.compress(layer, compresslevel=1, mtime=0))
    layer_desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "WorkingDir": "/", **image_config},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "ocirun.bundle.make_rootfs"}],
    }
    config_desc = _blob(layout, json.dumps(config, sort_keys=True).encode())
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    manifest_desc.update(mediaType="application/vnd.oci.image.manifest.v1+json",
                         annotations={"org.opencontainers.image.ref.name": ref},
                         platform={"architecture": "amd64", "os": "linux"})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [manifest_desc]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    archive = os.path.join(workdir, f"{name}.tar")
    with tarfile.open(archive, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout, entry), arcname=entry)
    shutil.rmtree(layout)
    return archive


# --------------------------------------------------------------------------- the daemon

class Containerd:
    """One private containerd daemon for the session."""

    disabled_plugins = DISABLED_PLUGINS

    def __init__(self, base: str):
        self.base = base
        self.address = os.path.join(base, "containerd.sock")
        self.namespace = f"ocirun-ctrd-{os.getpid()}"
        self.cgroup_parent = "/" + self.namespace
        self.runc_root = os.path.join(base, "runc-root")
        self.fifo_dir = os.path.join(base, "fifo")
        self.log_path = os.path.join(base, "containerd.log")
        for d in ("root", "state", "opt", "runc-root", "fifo", "tmp", "data"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        self.config = os.path.join(base, "config.toml")
        with open(self.config, "w") as f:
            f.write(self.config_text())
        self.env = dict(os.environ, TMPDIR=os.path.join(base, "tmp"))
        self.env.pop("CONTAINERD_ADDRESS", None)
        self.env.pop("CONTAINERD_NAMESPACE", None)
        self.proc: subprocess.Popen | None = None

    def config_text(self) -> str:
        """containerd's config.toml: every path under the private directory."""
        base = self.base
        return f"""\
version = 2
root = "{base}/root"
state = "{base}/state"
temp = "{base}/tmp"
disabled_plugins = {json.dumps(self.disabled_plugins)}

[grpc]
  address = "{self.address}"

[ttrpc]
  address = "{self.address}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{base}/runc-v1"
"""

    def start(self) -> None:
        log = open(self.log_path, "w")
        # Its own process group: the finalizer signals the daemon, never the test's group.
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.base, start_new_session=True)
        log.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"containerd exited {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(self.address) and self.ctr(["version"], timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        pytest.fail(f"containerd did not answer on {self.address}: {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def ctr(self, args, timeout=60, input=None, namespace=True):
        """Run ``ctr -a SOCK [-n NS] ARGS``; stdio to files (shims must not hold our pipes)."""
        argv = ["ctr", "-a", self.address, *(["-n", self.namespace] if namespace else []), *args]
        return run_engine(argv, self.env, self.base, timeout, input)

    def ctr_argv(self, *args) -> list[str]:
        return ["ctr", "-a", self.address, "-n", self.namespace, *args]

    def import_image(self) -> None:
        archive = build_image_archive(self.base)
        proc = self.ctr(["images", "import", archive], timeout=120)   # and unpack (overlayfs)
        if proc.returncode != 0 or IMAGE not in self.ctr(["images", "ls", "-q"]).stdout.split():
            pytest.fail(f"ctr images import failed: {proc.stdout} {proc.stderr}")
        os.unlink(archive)

    def remove_all(self) -> None:
        """Kill and delete every task and container of the namespace (between tests)."""
        proc = self.ctr(["containers", "list", "-q"], timeout=30)
        for cid in proc.stdout.split():
            self.ctr(["task", "kill", "-a", "-s", "SIGKILL", cid], timeout=30)
            self.ctr(["task", "rm", "-f", cid], timeout=30)
            self.ctr(["containers", "rm", cid], timeout=30)

    def shim_pids(self) -> list[int]:
        """containerd-shim-runc-v2 processes serving our daemon (their argv names our socket)."""
        return [p for p in _pids_mentioning(self.address) if self.proc is None or p != self.proc.pid]

    def stop(self) -> list[str]:
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.remove_all()
                self.ctr(["images", "rm", IMAGE], timeout=30)
            except subprocess.TimeoutExpired as e:
                problems.append(f"cleanup timed out: {e}")
            shim_sockets = self._shim_sockets()
            if stop_process(self.proc, 15):
                problems.append("containerd ignored SIGTERM; killed")
        else:
            shim_sockets = []
        problems += sweep(self.base, self.cgroup_parent, pids=self.shim_pids())
        for sock in shim_sockets:
            if os.path.exists(sock):
                os.unlink(sock)
        shutil.rmtree(self.base, ignore_errors=True)
        return problems

    def _shim_sockets(self) -> list[str]:
        """The /run/containerd/s sockets our shims listen on (their argv does not name them):
        the unix sockets among each shim's open fds, by inode, from /proc/<shim>/net/unix."""
        found = []
        for pid in self.shim_pids():
            try:
                with open(f"/proc/{pid}/net/unix") as f:
                    inodes = _socket_inodes(pid)
                    for line in f.readlines()[1:]:
                        fields = line.split()
                        if len(fields) >= 8 and fields[6] in inodes and fields[7].startswith("/run/containerd/s/"):
                            found.append(fields[7])
            except OSError:
                pass
        return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def ctrd():
    if os.geteuid() != 0:
        pytest.skip("engine tests need root")
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        _apt_install("containerd")
    new_dirs = [d for d in SHIM_SOCKET_DIRS if not os.path.exists(d)]
    base = tempfile.mkdtemp(prefix="ocirun-ctrd-", dir="/var/tmp")
    os.chmod(base, 0o711)   # a container in a user namespace (--uidmap) must reach its rootfs
    daemon = Containerd(base)
    try:
        daemon.start()
        daemon.import_image()
        yield daemon
    finally:
        problems = daemon.stop()
        _try_rmdir(os.path.join("/run/containerd/runc", daemon.namespace))
        for d in new_dirs:
            _try_rmdir(d)
        if problems:
            print("\ncontainerd cleanup:", *problems, sep="\n  ")


class Ctr:
    """ctr bound to one runtime: ``--runc-binary PATH --runc-root PRIVATE`` on run."""

    def __init__(self, daemon: Containerd, name: str, runtime: str):
        self.daemon = daemon
        self.name = name
        self.runtime = runtime
        self._n = 0

    def new_id(self, stem: str) -> str:
        self._n += 1
        return f"{stem}-{self.name}-{os.getpid()}-{self._n}"

    def __call__(self, *args, timeout=60, input=None):
        return self.daemon.ctr(list(args), timeout=timeout, input=input)

    def run_flags(self, cid: str) -> list[str]:
        return ["--runc-binary", self.runtime, "--runc-root", self.daemon.runc_root,
                "--fifo-dir", self.daemon.fifo_dir, "--cgroup", f"{self.daemon.cgroup_parent}/{cid}"]

    def run(self, cid: str, *opts, cmd=(), timeout=60, input=None):
        """``ctr run OPTS IMAGE CID CMD...`` with the runtime and the private dirs."""
        return self("run", *self.run_flags(cid), *opts, IMAGE, cid, *cmd, timeout=timeout, input=input)

    def ok(self, *args, timeout=60, input=None):
        proc = self(*args, timeout=timeout, input=input)
        assert proc.returncode == 0, self.explain(proc)
        return proc

    def explain(self, proc) -> str:
        args = proc.args[5:] if isinstance(proc.args, list) else [proc.args]   # after "-n NS"
        return (f"[{self.name}] ctr {' '.join(map(str, args))} -> rc {proc.returncode}\n"
                f"stdout: {proc.stdout.strip()[-1500:]}\nstderr: {proc.stderr.strip()[-1500:]}")

    def tty(self, *args, timeout=30):
        """``ctr ARGS`` with a pty on its stdin/stdout and as its controlling terminal."""
        return run_on_pty(self.daemon.ctr_argv(*args), self.daemon.env, self.daemon.base, timeout)

    def task_status(self, cid: str) -> str:
        for line in self.ok("task", "list").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[-1]
        return ""

    def task_pid(self, cid: str) -> int:
        for line in self.ok("task", "list").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise AssertionError(f"[{self.name}] no task {cid}")

    wait_for = staticmethod(wait_for)


@pytest.fixture(params=sorted(RUNTIMES, reverse=True))
def ctr(request, ctrd):
    name = request.param
    path = runtime_path(name)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} not installed at {path}")
    yield Ctr(ctrd, name, path)
    ctrd.remove_all()
