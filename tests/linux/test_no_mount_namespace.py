"""A container without a mount namespace inherits the runtime's (config-linux "Namespaces"), and
the runtime's mount table never holds one of its mounts (ocirun.rootfs.enter_runtime_namespace).

The runtime runs in a private mount namespace of this test (``unshare -m --propagation private``,
every command entered with ``nsenter``), so even a regression that mounted into "the runtime's
namespace" could not change the host's; the assertions compare against that namespace.
"""
import os
import subprocess

import pytest

from ..procutil import run_to_files
from .conftest import OCIRUN

pytestmark = pytest.mark.root


@pytest.fixture
def runtime_ns():
    """A private mount namespace held by a sleeping process: (pid, call) where call runs ocirun in it."""
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "600"])
    try:
        for _ in range(200):  # until unshare has exec'd sleep in the new namespace
            if os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
                break
            subprocess.run(["sleep", "0.01"])
        else:
            pytest.fail("unshare did not create a mount namespace")
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def _in_ns(pid, oci, *args, timeout=30):
    return run_to_files(["nsenter", "-t", str(pid), "-m", "--", OCIRUN, "--root", oci.root, *args], timeout=timeout)


def _mountinfo(pid, oci):
    """What the container could have changed in the runtime's mount table: mounts under its rootfs
    or bundle, and the root mount with its propagation.  (Not the whole table: other tests' mounts
    come and go, and a directory removed on the host detaches its mounts in every namespace.)"""
    with open(f"/proc/{pid}/mountinfo") as f:
        lines = f.read().splitlines()
    paths = (oci.rootfs, os.path.dirname(oci.bundle))
    return [line for line in lines if line.split()[4] == "/" or any(p in line for p in paths)]


def _no_mount_ns(spec):
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "mount"]
    return spec


def test_container_inherits_the_runtime_mount_namespace_and_leaves_its_table_alone(oci, runtime_ns, tmp_path):
    spec = _no_mount_ns(oci.config(args=("sleep", "60")))
    assert spec["linux"]["maskedPaths"] and spec["linux"]["readonlyPaths"] and spec["root"]["readonly"]
    oci.write(spec)
    before = _mountinfo(runtime_ns, oci)
    proc = _in_ns(runtime_ns, oci, "create", "-b", oci.bundle, "nomnt")
    assert proc.returncode == 0, proc.stderr
    assert _in_ns(runtime_ns, oci, "start", "nomnt").returncode == 0
    pid = oci.state("nomnt")["pid"]
    runtime_mnt = os.readlink(f"/proc/{runtime_ns}/ns/mnt")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == runtime_mnt  # inherited, not a new one
    for ns in ("pid", "net", "ipc", "uts"):  # the others asked for are still new
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    # The container's proc, dev, sys, cgroup, masks and read-only binds are not in the runtime's table.
    assert _mountinfo(runtime_ns, oci) == before

    script = ("echo mnt=$(readlink /proc/self/ns/mnt); echo comm1=$(cat /proc/1/comm); "
              f"test -e {tmp_path} && echo HOST-PATH-VISIBLE; test -x /bin/busybox && echo busybox=yes; "
              "test -c /dev/null && echo devnull=yes; cd /../../..; echo up=$(pwd)$(ls | wc -l)/$(ls / | wc -l); "
              "touch /probe 2>/dev/null || echo root=ro; "
              "(echo x > /proc/sys/kernel/domainname) 2>/dev/null || echo procsys=ro")
    proc = _in_ns(runtime_ns, oci, "exec", "nomnt", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split("=", 1) for line in proc.stdout.split() if "=" in line)
    assert "HOST-PATH-VISIBLE" not in proc.stdout  # exec lands in the container's root, not the host's
    assert out["mnt"] == runtime_mnt
    assert out["comm1"] == "sleep"  # a /proc of the container's pid namespace
    assert out["busybox"] == out["devnull"] == "yes"
    up = out["up"]
    assert up.startswith("/") and up[1:].split("/")[0] == up.split("/")[-1]  # `..` stops at the root
    assert out["root"] == "ro" and out["procsys"] == "ro"

    assert _in_ns(runtime_ns, oci, "delete", "--force", "nomnt").returncode == 0
    assert _mountinfo(runtime_ns, oci) == before
    assert oci.ids() == []


def test_run_without_mount_namespace_in_the_runtime_namespace(oci, runtime_ns):
    """`run`, with every namespace inherited (what runtime-tools' linux_ns_itype creates)."""
    spec = oci.config(args=("sh", "-c", "readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; "
                                        "cat /proc/self/mountinfo | wc -l; ls /proc/self/fd >/dev/null && echo ok"))
    spec["linux"]["namespaces"] = []
    del spec["hostname"]
    oci.write(spec)
    before = _mountinfo(runtime_ns, oci)
    proc = _in_ns(runtime_ns, oci, "run", "-b", oci.bundle, "nomnt-run")
    assert proc.returncode == 0, proc.stderr
    mnt, pidns, count, ok = proc.stdout.split()
    assert mnt == os.readlink(f"/proc/{runtime_ns}/ns/mnt")
    assert pidns == os.readlink("/proc/self/ns/pid")
    # Its mounts live in a detached tree: the namespace's table lists none of them to the container.
    assert count == "0" and ok == "ok"
    assert _mountinfo(runtime_ns, oci) == before
    assert oci.ids() == []


def test_user_namespace_without_mount_namespace_is_refused(oci):
    spec = _no_mount_ns(oci.config())
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    oci.write(spec)
    proc = oci("create", "-b", oci.bundle, "c1")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("ocirun: config.json: linux.namespaces: a user namespace needs a mount")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert oci.ids() == []


def test_chroot_escape_stops_at_the_detached_root(oci, runtime_ns):
    """The classic chroot escape (chroot into a subdirectory, walk `..` from the cwd left outside it,
    chroot there), tried by a process entering the container's root as a CAP_SYS_CHROOT process in
    the container would be: with runc's chroot inside the runtime's tree it reaches the host's `/`."""
    spec = _no_mount_ns(oci.config(args=("sleep", "60")))
    oci.write(spec)
    assert _in_ns(runtime_ns, oci, "run", "-d", "-b", oci.bundle, "nomnt-esc").returncode == 0
    pid = oci.state("nomnt-esc")["pid"]
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.close(r)
            fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY)
            os.fchdir(fd)
            os.chroot(".")
            os.chdir("/")
            inside = sorted(os.listdir("/"))
            os.makedirs("/dev/escape", exist_ok=True)  # /dev is the container's tmpfs (the root is read-only)
            os.chroot("/dev/escape")
            for _ in range(64):
                os.chdir("..")
            os.chroot(".")
            os.write(w, ("\n".join(inside) + "\n--\n" + "\n".join(sorted(os.listdir("/")))).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        inside, after = f.read().split("\n--\n")
    os.waitpid(child, 0)
    assert "bin" in inside.split() and "work" not in inside.split()  # the container's root, not ours
    assert after == inside  # still the container's root
    assert sorted(os.listdir("/")) != after.split()
    assert _in_ns(runtime_ns, oci, "delete", "--force", "nomnt-esc").returncode == 0


def test_terminal_without_mount_namespace(oci, runtime_ns):
    """process.terminal: the console is bound onto /dev/console before the return to the runtime's
    namespace (a mount on the detached tree is not possible from there)."""
    from .test_terminal import run_on_pty

    spec = _no_mount_ns(oci.config(args=("sh", "-c", "tty; readlink /proc/self/ns/mnt; test -c /dev/console "
                                                     "&& echo console=yes")))
    spec["process"]["terminal"] = True
    oci.write(spec)
    before = _mountinfo(runtime_ns, oci)
    rc, out, _ = run_on_pty(["nsenter", "-t", str(runtime_ns), "-m", "--", OCIRUN, "--root", oci.root,
                             "run", "-b", oci.bundle, "nomnt-tty"])
    assert rc == 0, out
    assert "/dev/pts/0" in out and "console=yes" in out
    assert os.readlink(f"/proc/{runtime_ns}/ns/mnt") in out
    assert _mountinfo(runtime_ns, oci) == before
