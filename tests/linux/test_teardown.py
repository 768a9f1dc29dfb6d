"""One teardown (issue 11, items 6 and 7): whatever is in a container's cgroup is killed before its
cgroups are removed, a frozen cgroup is refused at create instead of hanging, a `create` killed at
any instant leaves nothing that `delete --force` cannot find, and the status comes from the kernel,
never from a file left over.

Each test's docstring says what runc 1.1.5 (/usr/sbin/runc) does on this machine with the same bundle.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from .conftest import OCIRUN


def _cgroup_dirs(cgroups_path: str) -> list[str]:
    """Every directory of ``cgroups_path`` that exists, in each v1 hierarchy and the unified one."""
    rel = cgroups_path.lstrip("/")
    found = [d for d in glob.glob(f"/sys/fs/cgroup/*/{rel}") if os.path.isdir(d)]
    if os.path.isdir(f"/sys/fs/cgroup/{rel}") and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        found.append(f"/sys/fs/cgroup/{rel}")  # pure v2
    return found


def _pids_in(cgroups_path: str) -> set[int]:
    pids = set()
    for d in _cgroup_dirs(cgroups_path):
        for top, _dirs, _files in os.walk(d):
            try:
                with open(os.path.join(top, "cgroup.procs")) as f:
                    pids.update(int(x) for x in f.read().split())
            except OSError:
                pass
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _wait_for(predicate, what: str, bound: float = 20.0):
    """Poll until ``predicate()`` is true (a bound against a hang, not a timing assertion)."""
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _without_pid_namespace(spec: dict) -> dict:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    return spec


def _freezer_dir(cgroups_path: str) -> tuple[str, str, str]:
    """(dir, control file, frozen value) of the freezer that governs ``cgroups_path`` on this host."""
    rel = cgroups_path.lstrip("/")
    if os.path.isdir("/sys/fs/cgroup/freezer"):
        return f"/sys/fs/cgroup/freezer/{rel}", "freezer.state", "FROZEN"
    return f"/sys/fs/cgroup/{rel}", "cgroup.freeze", "1"


def _thaw_and_remove(cgroups_path: str, extra: list[str] = ()) -> None:
    """Undo what a test made by hand in the cgroup tree (whatever the runtime did or did not)."""
    for d in [*extra, *_cgroup_dirs(cgroups_path)]:
        for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            try:
                with open(os.path.join(d, name), "w") as f:
                    f.write(value)
            except OSError:
                pass
    for pid in _pids_in(cgroups_path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _wait_for(lambda: not _pids_in(cgroups_path), "the test's processes gone")
    for d in sorted(_cgroup_dirs(cgroups_path) + list(extra), key=len, reverse=True):
        for top, dirs, _ in sorted(os.walk(d, topdown=False), key=lambda t: len(t[0]), reverse=True):
            try:
                os.rmdir(top)
            except OSError:
                pass


# -- item 6: a stopped container's leftovers ---------------------------------------------------------
def _stopped_with_background_child(oci) -> tuple[dict, int]:
    """A started container without a pid namespace whose program exits leaving `sleep` in its cgroup."""
    spec = _without_pid_namespace(oci.config(args=("sh", "-c", "sleep 1000 & exit 0")))
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    oci("start", "c1", check=True)
    _wait_for(lambda: oci.state("c1")["status"] == "stopped", "c1 stopped")
    _wait_for(lambda: _pids_in(spec["linux"]["cgroupsPath"]), "the background child in the cgroup")
    (child,) = _pids_in(spec["linux"]["cgroupsPath"])
    return spec, child


@pytest.mark.parametrize("args", [("delete",), ("delete", "--force")])
def test_delete_of_a_stopped_container_kills_what_its_process_left(oci, args):
    """runc 1.1.5: `runc delete` of the same stopped container kills the background `sleep` and
    removes the state and all 10 cgroups (hybrid host) in ~20 ms, exit 0.  Before: ocirun failed
    after ~13 s with `rmdir /sys/fs/cgroup/memory/...: Device or resource busy`, the child, the
    state dir and every cgroup left (`delete --force` the same)."""
    spec, child = _stopped_with_background_child(oci)
    try:
        r = oci(*args, "c1")
        assert r.returncode == 0, r.stderr
        assert not _alive(child)
        assert _cgroup_dirs(spec["linux"]["cgroupsPath"]) == []
        assert "c1" not in oci.ids()
    finally:
        _thaw_and_remove(spec["linux"]["cgroupsPath"])


def test_run_exit_removes_what_its_process_left(oci):
    """`run` of a program that leaves a background child (no pid namespace) exits with the program's
    status, and its teardown kills the child and removes every cgroup.
    runc 1.1.5: `runc run` exits 0 and leaves nothing (it kills the cgroup's processes at destroy).
    Before: ocirun's `run` reported `rmdir ...: Device or resource busy` after ~13 s and left all."""
    spec = _without_pid_namespace(oci.config(args=("sh", "-c", "sleep 1000 & exit 3")))
    try:
        r = oci.run(spec, "c1")
        assert r.returncode == 3, r.stderr
        assert "busy" not in r.stderr
        assert _pids_in(spec["linux"]["cgroupsPath"]) == set()
        assert _cgroup_dirs(spec["linux"]["cgroupsPath"]) == []
        assert "c1" not in oci.ids()
    finally:
        _thaw_and_remove(spec["linux"]["cgroupsPath"])


def test_kill_all_of_a_stopped_container_signals_what_is_left(oci):
    """runc 1.1.5: `runc kill --all c1 KILL` of a stopped container exits 0 and the leftover child
    dies (runc signals every process of the cgroup whatever the status).  Before: ocirun refused with
    `container not running` and the child lived on."""
    spec, child = _stopped_with_background_child(oci)
    try:
        r = oci("kill", "--all", "c1", "KILL")
        assert r.returncode == 0, r.stderr
        _wait_for(lambda: not _alive(child), "the child killed")
        r = oci("delete", "c1")
        assert r.returncode == 0, r.stderr
    finally:
        _thaw_and_remove(spec["linux"]["cgroupsPath"])


# -- item 6: create in a frozen or non-empty cgroup ---------------------------------------------------
@pytest.mark.parametrize("frozen", ["itself", "parent"])
def test_create_in_a_frozen_cgroup_is_refused_not_hung(oci, frozen):
    """runc 1.1.5 (cgroup frozen itself): `runc create failed: container's cgroup unexpectedly frozen`,
    exit 1, nothing left.  Before: ocirun's create hung for ever (the parent waited on a frozen init
    with no bound).  A frozen *parent* freezes the new cgroup the same way; refused too."""
    spec = oci.config(args=("sleep", "100"))
    if frozen == "parent":  # a parent of its own: the shared /ocirun-test holds other tests' containers
        spec["linux"]["cgroupsPath"] = f"/ocirun-teardown-{os.getpid()}/frozen/c1"
    path = spec["linux"]["cgroupsPath"]
    d, control, value = _freezer_dir(path)
    target = d if frozen == "itself" else os.path.dirname(d)
    os.makedirs(target)
    made = [target] if frozen == "itself" else [target, os.path.dirname(target)]
    try:
        with open(os.path.join(target, control), "w") as f:
            f.write(value)
        oci.write(spec)
        r = oci("create", "--bundle", oci.bundle, "c1", timeout=20)  # a guard against the old hang
        assert r.returncode == 1
        assert "container's cgroup unexpectedly frozen" in r.stderr
        assert "c1" not in oci.ids()
        assert not [p for p in _cgroup_dirs(path) if p not in made]
    finally:
        _thaw_and_remove(path, made)


def test_create_in_a_non_empty_cgroup_warns(oci):
    """runc 1.1.5: `level=warning msg="container's cgroup is not empty: 1 process(es) found"` (it
    looks at the devices hierarchy only on v1), then creates.  ocirun says the same and goes on."""
    spec = oci.config(args=("sleep", "100"))
    path = spec["linux"]["cgroupsPath"]
    d = f"/sys/fs/cgroup/pids/{path.lstrip('/')}" if os.path.isdir("/sys/fs/cgroup/pids") else \
        f"/sys/fs/cgroup/{path.lstrip('/')}"
    os.makedirs(d)
    squatter = subprocess.Popen(["sleep", "1000"])
    try:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(squatter.pid))
        oci.write(spec)
        r = oci("create", "--bundle", oci.bundle, "c1")
        assert r.returncode == 0, r.stderr
        assert "container's cgroup is not empty: 1 process(es) found" in r.stderr
        assert oci.state("c1")["status"] == "created"
    finally:
        squatter.kill()
        squatter.wait()
        oci("delete", "--force", "c1")
        _thaw_and_remove(path, [d])


# -- item 6: record before make ----------------------------------------------------------------------
def test_a_create_killed_at_any_instant_leaves_nothing_delete_force_misses(oci):
    """`create` is SIGKILLed at delays spread over its whole run (0–120 ms, two passes), then
    `delete --force` runs: no cgroup directory of the container may remain in any hierarchy, nor its
    state dir, nor a mount.  Before: about one kill in four left cgroup directories that no state
    named (made before the state was first written).  runc 1.1.5 has the same window: `runc create`
    killed at 0–60 ms then `runc delete --force` (exit 0) left cgroup directories in 4 runs of 16
    (1 or all 10 hierarchies, at the 8–20 ms kills), no state dir naming them."""
    spec = oci.config(args=("sleep", "100"))
    oci.write(spec)
    base = spec["linux"]["cgroupsPath"]
    left = []
    paths = []
    try:
        for i in range(32):
            cid = f"k{i}"
            path = f"{base}-{i}"
            paths.append(path)
            spec["linux"]["cgroupsPath"] = path
            oci.write(spec)
            p = subprocess.Popen([OCIRUN, "--root", oci.root, "create", "--bundle", oci.bundle, cid],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep((i % 16) * 0.008)
            p.send_signal(signal.SIGKILL)
            p.wait()
            r = oci("delete", "--force", cid)
            assert r.returncode == 0 or "does not exist" in r.stderr, r.stderr
            if _cgroup_dirs(path) or cid in oci.ids():
                left.append((i, _cgroup_dirs(path), oci.ids()))
        assert left == []
        with open("/proc/self/mountinfo") as f:
            assert not [line for line in f if oci.root in line or oci.bundle in line]
    finally:
        for path in paths:
            _thaw_and_remove(path)


# -- item 7: status from the kernel ------------------------------------------------------------------
def _leftover_start_socket(oci, cid: str) -> None:
    """What a `start` killed mid-way leaves: a socket file at exec.sock that nobody listens on."""
    path = os.path.join(oci.root, cid, "exec.sock")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


def test_a_leftover_start_socket_does_not_make_a_running_container_created(oci):
    """runc 1.1.5 (an `exec.fifo` re-made by hand, mkfifo, in a running container's state dir): `runc
    state` says "created" (it trusts the fifo's existence), and `runc start` then hangs on the fifo.
    ocirun: `state` says "running" (the init has exec'd: its comm is no longer the init stage's
    marker); `start` refuses, the container still running.  Before: `state` said "created" and
    `start` destroyed the running container."""
    spec = oci.config(args=("sleep", "1000"))
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    oci("start", "c1", check=True)
    pid = oci.state("c1")["pid"]
    _wait_for(lambda: open(f"/proc/{pid}/comm").read().strip() == "sleep", "the program exec'd")
    _leftover_start_socket(oci, "c1")
    assert oci.state("c1")["status"] == "running"
    r = oci("start", "c1")
    assert r.returncode != 0
    assert _alive(pid)
    assert oci.state("c1")["status"] == "running"


def test_start_never_tears_down_a_container_it_did_not_wake(oci):
    """A created container whose start socket was replaced by one nobody listens on: `start` cannot
    wake the init, reports it, and leaves the container created (its init alive).
    runc 1.1.5 (its exec.fifo replaced by a regular file): `runc start` fails, exit 1, with `cannot
    start an already running container`, and the container stays created.
    Before: ocirun's `start` killed and removed the container it had not woken."""
    spec = oci.config(args=("sleep", "1000"))
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    pid = oci.state("c1")["pid"]
    _leftover_start_socket(oci, "c1")
    r = oci("start", "c1")
    assert r.returncode != 0
    assert "connect to the container's init" in r.stderr
    assert _alive(pid)
    assert oci.state("c1")["status"] == "created"
    assert _cgroup_dirs(spec["linux"]["cgroupsPath"])


def test_delete_force_never_descends_into_a_mount_below_the_state_dir(oci, tmp_path):
    """A `restore` killed mid-way leaves its bind of the rootfs at <state>/<id>/criu-root.  `delete
    --force` unmounts it and removes the state dir; the files of the bound tree are left alone.
    Before: the walk of the state dir went into the mount and unlinked the rootfs's files, then
    failed on the mount point.  (runc's restore has no such mount in its state dir.)"""
    spec = oci.config(args=("sleep", "1000"))
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "precious").write_text("keep me")
    target = os.path.join(oci.root, "c1", "criu-root")
    os.mkdir(target)
    subprocess.run(["mount", "--bind", str(tree), target], check=True)
    try:
        r = oci("delete", "--force", "c1")
        assert r.returncode == 0, r.stderr
        assert (tree / "precious").read_text() == "keep me"
        assert "c1" not in oci.ids()
    finally:
        subprocess.run(["umount", "-l", target], stderr=subprocess.DEVNULL)
