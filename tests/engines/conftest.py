"""Engine integration suite: the real podman (+conmon) driving ocirun, and runc for comparison.

Not part of the default run: everything here is skipped unless ``OCIRUN_ENGINE_TESTS=1``.
Run it with ``OCIRUN_ENGINE_TESTS=1 .venv/bin/pytest tests/engines`` (root, see docs/engines.md).

The session installs podman/conmon when missing (apt), then works in a private temporary
directory only: its own containers.conf and storage.conf (graphroot, runroot, tmp_dir,
static_dir, file locks, network config dir, events log), a private cgroup parent, and an
offline busybox image imported from :func:`ocirun.bundle.make_rootfs`.  The finalizer
removes every container and image, resets the store, unmounts what is left under the
directory, removes the cgroup parent and the directory.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest

from ocirun import mountinfo

from ..procutil import run_to_files

ENABLED = os.environ.get("OCIRUN_ENGINE_TESTS") == "1"
#: Seconds one test may take (podman calls have their own, shorter, timeouts).
TEST_TIMEOUT = int(os.environ.get("OCIRUN_ENGINE_TEST_TIMEOUT", "120"))
IMAGE = "localhost/bb:latest"
#: Runtime binaries compared by the suite (podman's --runtime takes the path).
RUNTIMES = {
    "ocirun": os.environ.get("OCIRUN_ENGINE_OCIRUN", "/usr/local/bin/ocirun"),
    "runc": os.environ.get("OCIRUN_ENGINE_RUNC", "/usr/sbin/runc"),
}
_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="engine tests: set OCIRUN_ENGINE_TESTS=1 (see docs/engines.md)")
    for item in items:
        if str(item.fspath).startswith(_HERE + os.sep):
            item.add_marker(skip)


class TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A per-test wall-clock limit (no pytest-timeout in the venv): SIGALRM in the main thread."""
    if not str(item.fspath).startswith(_HERE + os.sep):
        yield
        return

    def _expired(signum, frame):
        raise TestTimeout(f"test exceeded {TEST_TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- setup helpers

def _apt_install(*pkgs: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", *pkgs]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"apt-get install {' '.join(pkgs)} failed: {proc.stderr[-2000:]}")


def _ensure_podman() -> None:
    missing = [p for p in ("podman", "conmon") if shutil.which(p) is None]
    if missing:
        _apt_install("podman", "conmon")


def _write(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def _mounts_under(prefix: str) -> list[str]:
    return [m.mountpoint for m in mountinfo.read()
            if m.mountpoint == prefix or m.mountpoint.startswith(prefix + "/")]


def _cgroup_dirs(parent: str) -> list[str]:
    """Every directory of the cgroup ``parent`` in every mounted hierarchy, deepest first."""
    found = []
    for m in mountinfo.read(fstypes=("cgroup", "cgroup2")):
        if m.mountpoint.startswith("/sys/fs/cgroup"):
            top = m.mountpoint + parent
            if os.path.isdir(top):
                for dirpath, _dirs, _files in os.walk(top):
                    found.append(dirpath)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def run_engine(argv: list[str], env: dict, cwd: str, timeout: float = 60, input=None):
    """An engine's client, stdin closed unless ``input`` is given; stdout/stderr to files, not pipes
    (tests/procutil.py): the engines' monitors (conmon, shims) and the containers keep them open."""
    return run_to_files(argv, stdin=subprocess.DEVNULL if input is None else None, input=input,
                        env=env, timeout=timeout, cwd=cwd)


def wait_for(predicate, timeout=15.0, interval=0.1):
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; its last value."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


def stop_process(proc: subprocess.Popen | None, timeout: float) -> bool:
    """SIGTERM, wait, SIGKILL; True when the process had to be killed."""
    if proc is None or proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return True


def sweep(base: str, cgroup_parent: str, pids: list[int] = (), expected_mounts=()) -> list[str]:
    """After an engine stopped: kill what still runs from ``base`` (and ``pids``), unmount what is
    left under it, remove the cgroup parent.  Returns what was found (the caller prints it)."""
    problems = []
    for pid in sorted(set(pids) | set(_pids_mentioning(base))):
        problems.append(f"process {pid} still running from {base}; killed")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for mnt in reversed(_mounts_under(base)):
        if mnt not in expected_mounts:
            problems.append(f"leftover mount {mnt}")
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    for _ in range(20):
        left = [d for d in _cgroup_dirs(cgroup_parent) if not _try_rmdir(d)]
        if not left:
            break
        time.sleep(0.25)
    else:
        problems.append(f"cgroup dirs left: {left}")
    return problems


def image_rootfs(path: str) -> str:
    """The busybox rootfs every engine's image is made from, with a ``user`` (1000:1000)."""
    from ocirun.bundle import make_rootfs

    rootfs = make_rootfs(path)
    with open(os.path.join(rootfs, "etc", "passwd"), "a") as f:
        f.write("user:x:1000:1000:user:/home:/bin/sh\n")
    with open(os.path.join(rootfs, "etc", "group"), "a") as f:
        f.write("user:x:1000:\n")
    return rootfs


#: The repository's own launcher, what /usr/local/bin/ocirun links to after scripts/install.
REPO_OCIRUN = os.path.join(os.path.dirname(os.path.dirname(_HERE)), ".venv", "bin", "ocirun")


def runtime_path(name: str) -> str:
    """The binary for ``name``; a dangling default /usr/local/bin/ocirun falls back to the
    repository's launcher (same code), unless OCIRUN_ENGINE_OCIRUN names a path."""
    path = RUNTIMES[name]
    if (name == "ocirun" and "OCIRUN_ENGINE_OCIRUN" not in os.environ and not os.access(path, os.X_OK)
            and os.access(REPO_OCIRUN, os.X_OK)):
        return REPO_OCIRUN
    return path


# --------------------------------------------------------------------------- the engine

class Engine:
    """The private podman installation shared by the session."""

    def __init__(self, base: str):
        self.base = base
        self.root = os.path.join(base, "root")
        self.runroot = os.path.join(base, "runroot")
        self.cgroup_parent = f"/ocirun-engines-{os.getpid()}"
        for d in ("root", "runroot", "tmp", "net", "volumes", "data"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        self.containers_conf = _write(os.path.join(base, "containers.conf"), f"""\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[network]
network_config_dir = "{base}/net"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
lock_type = "file"
tmp_dir = "{base}/tmp"
static_dir = "{base}/root/libpod"
volume_path = "{base}/volumes"
runtime_supports_json = ["ocirun", "runc", "crun"]

[engine.runtimes]
ocirun = ["{RUNTIMES['ocirun']}"]
""")
        self.storage_conf = _write(os.path.join(base, "storage.conf"), f"""\
[storage]
driver = "overlay"
graphroot = "{self.root}"
runroot = "{self.runroot}"
""")
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.path.join(base, "data"),
            "CONTAINERS_CONF": self.containers_conf,
            "CONTAINERS_STORAGE_CONF": self.storage_conf,
            "TMPDIR": os.path.join(base, "tmp"),
            "LANG": "C.UTF-8",
        }

    def global_flags(self, runtime: str | None) -> list[str]:
        flags = ["--root", self.root, "--runroot", self.runroot,
                 "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        if runtime:
            flags += ["--runtime", runtime]
        return flags

    def call(self, args, runtime=None, timeout=60, input=None):
        return run_engine(["podman", *self.global_flags(runtime), *args], self.env, self.base,
                          timeout, input)

    def import_image(self) -> None:
        rootfs = image_rootfs(os.path.join(self.base, "rootfs"))
        tarball = os.path.join(self.base, "rootfs.tar")
        with tarfile.open(tarball, "w") as tar:
            for name in sorted(os.listdir(rootfs)):
                tar.add(os.path.join(rootfs, name), arcname=name)
        proc = self.call(["import", "--change", "CMD=/bin/sh", tarball, IMAGE], timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"podman import failed: {proc.stderr}")
        shutil.rmtree(rootfs, ignore_errors=True)
        os.unlink(tarball)

    def cleanup(self) -> list[str]:
        problems = []
        self.call(["rm", "-af", "-t", "0"], timeout=120)
        self.call(["rmi", "-af"], timeout=120)
        proc = self.call(["system", "reset", "-f"], timeout=120)
        if proc.returncode != 0:
            problems.append(f"podman system reset: {proc.stderr.strip()}")
        # conmon (or anything else) still running from our private directory: ours, stop it.
        problems += sweep(self.base, self.cgroup_parent)
        # conmon writes ``<controller>/<parent>/conmon/tasks`` for every controller named in
        # /proc/self/cgroup, also where the controller is not mounted (hugetlb, net_cls,
        # perf_event on this VM): plain files on the /sys/fs/cgroup tmpfs, ours to remove.
        for top in _tmpfs_cgroup_dirs(self.cgroup_parent):
            shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)
        return problems


def _tmpfs_cgroup_dirs(parent: str) -> list[str]:
    """``/sys/fs/cgroup/<name><parent>`` where ``<name>`` is a plain directory of the tmpfs
    (not a cgroup mount point), so removing it touches no real cgroup."""
    mounted = {m.mountpoint for m in mountinfo.read()}
    try:
        names = os.listdir("/sys/fs/cgroup")
    except OSError:
        return []
    found = []
    for name in names:
        top = f"/sys/fs/cgroup/{name}"
        if top in mounted or os.path.islink(top) or not os.path.isdir(top + parent):
            continue
        found.append(top + parent)
    return found


def _try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _cgroup_tmpfs_hygiene():
    """The engines (conmon, dockerd, the shims' runc) make <controller> directories and
    symlinks (``cpu,cpuacct``, ``net_cls -> net_cls,net_prio``) on the /sys/fs/cgroup tmpfs for
    controllers that are not mounted on this host.  Whatever is new, and not a mount, is
    removed when the engine suites end, so later tests see the host as it was."""
    root = "/sys/fs/cgroup"
    before = set(os.listdir(root)) if os.path.isdir(root) else set()
    yield
    if not before:
        return
    mounted = {m.mountpoint for m in mountinfo.read()}
    for name in set(os.listdir(root)) - before:
        top = f"{root}/{name}"
        if os.path.islink(top):
            os.unlink(top)
        elif top not in mounted:
            _try_rmdir(top)


@pytest.fixture(scope="session")
def engine():
    if os.geteuid() != 0:
        pytest.skip("engine tests need root")
    _ensure_podman()
    # Created by podman outside our directory (netavark's run dir is fixed): removed if new and empty.
    new_dirs = [d for d in ("/run/containers/networks", "/run/containers") if not os.path.exists(d)]
    base = tempfile.mkdtemp(prefix="ocirun-engines-", dir="/var/tmp")
    eng = Engine(base)
    try:
        eng.import_image()
        yield eng
    finally:
        problems = eng.cleanup()
        for d in new_dirs:
            _try_rmdir(d)
        if problems:
            print("\nengine cleanup:", *problems, sep="\n  ")


class Podman:
    """podman bound to one runtime (``--runtime PATH`` on every call)."""

    def __init__(self, engine: Engine, name: str, runtime: str):
        self.engine = engine
        self.name = name
        self.runtime = runtime

    def __call__(self, *args, timeout=60, input=None):
        return self.engine.call(list(args), runtime=self.runtime, timeout=timeout, input=input)

    def run(self, *args, timeout=60, input=None):
        """``podman run`` with the suite's defaults: no network, private cgroup parent."""
        return self("run", "--network", "none", "--cgroup-parent", self.engine.cgroup_parent,
                    *args, timeout=timeout, input=input)

    def ok(self, *args, timeout=60, input=None):
        proc = self(*args, timeout=timeout, input=input)
        assert proc.returncode == 0, _describe(self, args, proc)
        return proc

    def run_ok(self, *args, timeout=60):
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, _describe(self, ("run", *args), proc)
        return proc

    def explain(self, args, proc) -> str:
        return _describe(self, args, proc)

    def inspect(self, name: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, name).stdout.strip()

    wait_for = staticmethod(wait_for)

    def tty(self, *args, timeout=30) -> subprocess.CompletedProcess:
        """``podman ARGS`` on a pty (its stdin, stdout and controlling terminal)."""
        argv = ["podman", *self.engine.global_flags(self.runtime), *args]
        return run_on_pty(argv, self.engine.env, self.engine.base, timeout)


def run_on_pty(argv: list[str], env: dict, cwd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``argv`` with a fresh pty as its controlling terminal and stdin/stdout/stderr, and
    return everything it wrote.  Unlike ``script -qec`` with stdin at EOF, nothing here can
    hang up the pty before the engine has copied the container's output (seen with runc too:
    podman ``run -it`` returned 6 with an empty transcript under load)."""
    import pty
    import select

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                start_new_session=True, close_fds=True)
    finally:
        os.close(slave)
    chunks, end = [], time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:        # EIO: every holder of the slave has closed it
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
            raise subprocess.TimeoutExpired(argv, timeout)
        rc = proc.wait(timeout=max(1.0, end - time.monotonic()))
    finally:
        os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    return subprocess.CompletedProcess(argv, rc, out, "")


def _describe(pm: Podman, args, proc) -> str:
    return (f"[{pm.name}] podman {' '.join(args)} -> rc {proc.returncode}\n"
            f"stdout: {proc.stdout.strip()[-1500:]}\nstderr: {proc.stderr.strip()[-1500:]}")


@pytest.fixture(params=sorted(RUNTIMES, reverse=True))
def pm(request, engine):
    name = request.param
    path = RUNTIMES[name]
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} not installed at {path}")
    podman = Podman(engine, name, path)
    yield podman
    # Every test starts from an empty container list.
    engine.call(["rm", "-af", "-t", "0"], runtime=path, timeout=120)
