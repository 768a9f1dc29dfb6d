"""Rootless operation for real: a throwaway user (with a /etc/subuid range) runs containers.

The user is made with useradd for this module and removed at the end.  ocirun runs as that user
through setpriv, from the system interpreter (the venv's may sit under /root, which the user cannot
enter) with XDG_RUNTIME_DIR pointing at a directory it owns; the bundle lives in a world-readable
directory of its own.  Every test checks that nothing is left: state dirs, processes, cgroups, mounts.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ocirun.bundle import make_rootfs

from ..procutil import run_to_files

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYS_PYTHON = "/usr/bin/python3"


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (to create the user)"
    for tool in ("useradd", "userdel", "setpriv"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    if not os.path.exists(SYS_PYTHON):
        return "no system python3 the test user can run"
    return None


class User:
    """A throwaway user, its XDG_RUNTIME_DIR and a world-readable work dir with a busybox rootfs."""

    def __init__(self):
        self.name = f"ocrl{os.getpid() % 100000}"
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", self.name], check=True,
                       capture_output=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.work = tempfile.mkdtemp(prefix="ocirun-rootless-", dir="/var/tmp")
        os.chmod(self.work, 0o755)
        self.xdg = os.path.join(self.work, "xdg")
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.rootfs = make_rootfs(os.path.join(self.work, "rootfs"))
        subprocess.run(["chmod", "-R", "a+rX", self.rootfs], check=True)
        self.cli = os.path.join(self.work, "ocirun")
        with open(self.cli, "w") as f:
            f.write(f"#!{SYS_PYTHON} -IS\nimport sys\nsys.path[:0] = [{REPO!r}]\n"
                    "from ocirun.cli import main\nmain()\n")
        os.chmod(self.cli, 0o755)
        self.serial = 0

    def subid(self, path: str) -> tuple[int, int] | None:
        with open(path) as f:
            for line in f:
                name, start, count = line.strip().split(":")
                if name == self.name:
                    return int(start), int(count)
        return None

    def bundle(self, edit=None) -> str:
        """A bundle made by `ocirun spec --rootless` run as the user (so the mapping is its own)."""
        self.serial += 1
        b = os.path.join(self.work, f"bundle{self.serial}")
        os.mkdir(b, 0o755)
        os.chown(b, self.uid, self.gid)
        self.ocirun("spec", "--rootless", "--bundle", b, check=True)
        with open(os.path.join(b, "config.json")) as f:
            spec = json.load(f)
        spec["root"]["path"] = self.rootfs
        spec["process"]["terminal"] = False
        if edit:
            edit(spec)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(spec, f)
        return b

    def ocirun(self, *args, check=False, timeout=30):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": self.xdg, "HOME": self.work,
               "USER": self.name}
        proc = run_to_files(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                             self.cli, *args], env=env, timeout=timeout, cwd=self.work, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ocirun {' '.join(args)} as {self.name} failed: {proc.stderr}")
        return proc

    def state_dir(self) -> str:
        return os.path.join(self.xdg, "ocirun")

    def leftovers(self) -> list[str]:
        out = []
        if os.path.isdir(self.state_dir()):
            out += [f"state:{n}" for n in os.listdir(self.state_dir())]
        for _ in range(50):  # zombies are the host init's to reap (it does so lazily here): not ours
            ps = subprocess.run(["ps", "-u", str(self.uid), "-o", "stat=,pid=,cmd="], capture_output=True,
                                text=True)
            live = [line.strip() for line in ps.stdout.splitlines() if line.strip() and line.split()[0][0] != "Z"]
            if not live:
                break
            time.sleep(0.02)
        out += [f"process:{line}" for line in live]
        with open("/proc/self/mountinfo") as f:
            out += [f"mount:{line.split()[4]}" for line in f if self.work in line]
        return out

    def remove(self):
        for n in os.listdir(self.state_dir()) if os.path.isdir(self.state_dir()) else []:
            self.ocirun("delete", "--force", n)
        subprocess.run(["pkill", "-KILL", "-u", str(self.uid)], capture_output=True)  # only this user's
        subprocess.run(["userdel", self.name], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture(scope="module")
def user():
    why = _usable()
    if why:
        pytest.skip(why)
    u = User()
    try:
        yield u
    finally:
        u.remove()
    assert subprocess.run(["id", u.name], capture_output=True).returncode != 0, "user not removed"
    assert u.subid("/etc/subuid") is None, "subuid range not removed with the user"


@pytest.fixture
def clean(user):
    yield user
    left = user.leftovers()
    assert not left, f"left behind: {left}"


def test_spec_rootless_matches_runc_shape(tmp_path):
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed")
    specs = {}
    for name, cmd in (("runc", [runc]), ("ocirun", [sys.executable, "-m", "ocirun"])):
        d = tmp_path / name
        d.mkdir()
        subprocess.run(cmd + ["spec", "--rootless"], cwd=d, check=True, env={**os.environ, "PYTHONPATH": REPO})
        specs[name] = json.loads((d / "config.json").read_text())
    for s in specs.values():
        s.pop("ociVersion")
        s.pop("hostname")
    assert specs["ocirun"] == specs["runc"]
    linux = specs["ocirun"]["linux"]
    assert {"type": "user"} in linux["namespaces"] and {"type": "network"} not in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]


def test_run_as_own_uid(clean):
    u = clean
    b = u.bundle(lambda s: s["process"].update(args=["sh", "-c", "id -u; cat /proc/self/uid_map "
                                                     "/proc/self/gid_map /proc/self/setgroups"]))
    proc = u.ocirun("run", "--bundle", b, "r1")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    assert lines == [["0"], ["0", str(u.uid), "1"], ["0", str(u.gid), "1"], ["deny"]]


def test_lifecycle_state_under_xdg_runtime_dir(clean):
    u = clean
    b = u.bundle(lambda s: s["process"].update(args=["sleep", "100"]))
    u.ocirun("create", "--bundle", b, "life", check=True)
    assert os.listdir(u.state_dir()) == ["life"]
    assert os.stat(os.path.join(u.state_dir(), "life")).st_uid == u.uid
    st = json.loads(u.ocirun("state", "life", check=True).stdout)
    assert st["status"] == "created" and st["pid"] > 0
    with open(f"/proc/{st['pid']}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(u.uid)] * 4  # on the host the container's root is the user
    u.ocirun("start", "life", check=True)
    assert json.loads(u.ocirun("state", "life", check=True).stdout)["status"] == "running"
    ex = u.ocirun("exec", "life", "sh", "-c", "id -u; cat /proc/self/setgroups")  # setgroups denied there
    assert ex.returncode == 0 and ex.stdout.split() == ["0", "deny"], ex.stderr
    u.ocirun("kill", "life", "KILL", check=True)
    for _ in range(100):
        if json.loads(u.ocirun("state", "life", check=True).stdout)["status"] == "stopped":
            break
    assert json.loads(u.ocirun("state", "life", check=True).stdout)["status"] == "stopped"
    u.ocirun("delete", "life", check=True)
    assert "life" in u.ocirun("state", "life").stderr  # container life does not exist


def test_ranges_through_newuidmap(clean):
    u = clean
    sub_u, sub_g = u.subid("/etc/subuid"), u.subid("/etc/subgid")
    if not (sub_u and sub_g and shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("no subuid/subgid range or no newuidmap/newgidmap (package uidmap)")

    def edit(s):
        s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": u.uid, "size": 1},
                                     {"containerID": 1, "hostID": sub_u[0], "size": 1000}]
        s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": u.gid, "size": 1},
                                     {"containerID": 1, "hostID": sub_g[0], "size": 1000}]
        s["process"]["user"] = {"uid": 100, "gid": 100, "additionalGids": [5, 7]}
        s["process"]["args"] = ["sh", "-c", "id -u; id -G; cat /proc/self/uid_map; cat /proc/self/setgroups"]
    proc = u.ocirun("run", "--bundle", u.bundle(edit), "r2")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    assert lines == [["100"], ["100", "5", "7"], ["0", str(u.uid), "1"], ["1", str(sub_u[0]), "1000"], ["allow"]]


def test_range_outside_subuid_is_refused(clean):
    u = clean

    def edit(s):
        s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]  # host root: never allowed
    proc = u.ocirun("run", "--bundle", u.bundle(edit), "r3")
    assert proc.returncode != 0
    assert "newuidmap" in proc.stderr and "/etc/subuid" in proc.stderr, proc.stderr


def test_additional_gids_refused_when_setgroups_denied(clean):
    u = clean
    b = u.bundle(lambda s: s["process"]["user"].update(additionalGids=[5]))
    proc = u.ocirun("run", "--bundle", b, "r4")
    assert proc.returncode != 0
    assert "cannot set any additional groups in a rootless container" in proc.stderr, proc.stderr


def test_limits_without_cgroup_delegation_are_an_error(clean):
    u = clean
    b = u.bundle(lambda s: s["linux"].update(resources={"memory": {"limit": 100 << 20}}))
    proc = u.ocirun("run", "--bundle", b, "r5")
    assert proc.returncode != 0
    assert "cannot set memory limit" in proc.stderr and "could not join or create cgroup" in proc.stderr, \
        proc.stderr
    found = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "3", "-user", str(u.uid)],
                           capture_output=True, text=True).stdout
    assert not found.strip(), found


def test_device_rules_alone_are_ignored_and_devices_bound(clean):
    """runc's rootless behaviour: a device cgroup it cannot write is skipped; /dev/null is bound
    from the host (no mknod without CAP_MKNOD in the initial namespace)."""
    u = clean

    def edit(s):
        s["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        s["process"]["args"] = ["sh", "-c", "echo x > /dev/null && grep ' /dev/null ' /proc/self/mountinfo"]
    proc = u.ocirun("run", "--bundle", u.bundle(edit), "r6")
    assert proc.returncode == 0, proc.stderr
    assert " /dev/null " in proc.stdout  # a bind mount, not a node made with mknod


def test_rootless_flag_values(clean):
    u = clean
    b = u.bundle(lambda s: s["process"].update(args=["true"]))
    assert u.ocirun("--rootless", "true", "run", "--bundle", b, "r7").returncode == 0
    bad = u.ocirun("--rootless", "maybe", "run", "--bundle", b, "r8")
    assert bad.returncode != 0 and "--rootless" in bad.stderr


def _as_user(u, *cmd):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": u.xdg, "HOME": u.work, "USER": u.name}
    return subprocess.run(["setpriv", f"--reuid={u.uid}", f"--regid={u.gid}", "--init-groups", *cmd],
                          capture_output=True, text=True, env=env, cwd=u.work, timeout=30)


def test_list_owner_is_the_state_dirs_owner(clean):
    """runc's list: OWNER (and json "owner") is the user name of the state dir's owner; `state` keeps ""."""
    u = clean
    b = u.bundle(lambda s: s["process"].update(args=["sleep", "100"]))
    u.ocirun("create", "--bundle", b, "own", check=True)
    try:
        table = u.ocirun("list", check=True).stdout.splitlines()
        assert table[0].split()[-1] == "OWNER" and table[1].split()[0] == "own"
        assert table[1].split()[-1] == u.name, table
        listed = json.loads(u.ocirun("list", "--format", "json", check=True).stdout)
        assert [c["owner"] for c in listed] == [u.name]
        assert json.loads(u.ocirun("state", "own", check=True).stdout)["owner"] == ""  # as runc's state
    finally:
        u.ocirun("delete", "--force", "own")


def test_list_owner_of_root_and_of_an_unnamed_uid(oci):
    oci.write(oci.config(args=("sleep", "100")))
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    assert oci("list", check=True).stdout.splitlines()[1].split()[-1] == "root"
    os.chown(os.path.join(oci.root, "c1"), 54329, -1)  # a uid with no passwd entry: "#uid", as runc
    assert pwd.getpwall() and all(p.pw_uid != 54329 for p in pwd.getpwall())
    assert json.loads(oci("list", "--format", "json", check=True).stdout)[0]["owner"] == "#54329"


def test_xdg_state_root_mode_matches_runc(clean):
    """runc makes $XDG_RUNTIME_DIR/runc 0700 with the sticky bit (kept by the XDG cleanup) on every
    command; ocirun does the same for $XDG_RUNTIME_DIR/ocirun, and repairs a wrong mode."""
    u = clean
    runc = shutil.which("runc")
    if runc:
        assert _as_user(u, runc, "list").returncode == 0
        assert os.stat(os.path.join(u.xdg, "runc")).st_mode & 0o7777 == 0o1700
        shutil.rmtree(os.path.join(u.xdg, "runc"))
    if os.path.isdir(u.state_dir()):
        os.chmod(u.state_dir(), 0o755)
    assert u.ocirun("list").returncode == 0
    st = os.stat(u.state_dir())
    assert (st.st_mode & 0o7777, st.st_uid) == (0o1700, u.uid)
    # an explicit --root is not touched by that rule; it is made 0700 at create, as runc's
    b = u.bundle(lambda s: s["process"].update(args=["true"]))
    explicit = os.path.join(u.xdg, "explicit")
    assert u.ocirun("--root", explicit, "run", "--bundle", b, "xr").returncode == 0
    assert os.stat(explicit).st_mode & 0o7777 == 0o700
    shutil.rmtree(explicit)


def test_system_state_root_mode_matches_runc(tmp_path, oci):
    spec = oci.config(args=("true",))
    oci.write(spec)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    subprocess.run([oci_cli(), "--root", str(ours), "run", "--bundle", oci.bundle, "m1"], check=True,
                   capture_output=True, timeout=30)
    assert os.stat(ours).st_mode & 0o7777 == 0o700
    runc = shutil.which("runc")
    if runc:
        spec["linux"]["cgroupsPath"] += "-runc"
        oci.write(spec)
        subprocess.run([runc, "--root", str(theirs), "run", "--bundle", oci.bundle, "m1"], check=True,
                       capture_output=True, timeout=30)
        assert os.stat(theirs).st_mode & 0o7777 == os.stat(ours).st_mode & 0o7777


def oci_cli():
    from .conftest import OCIRUN

    return OCIRUN
