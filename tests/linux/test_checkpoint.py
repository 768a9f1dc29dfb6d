"""checkpoint / restore through CRIU's swrk RPC: a counting container is checkpointed, restored, and its
count goes on from where it stopped.  Skips with CRIU's own error when no working criu is found.

criu: $OCIRUN_CRIU, else .venv/criu/criu (scripts/install-criu: Debian 13's 4.1.1, which works on
kernel 6.18), else `criu` on PATH (Debian 12's 3.17.1 fails here: "Unexpected rt vDSO area bounds").
"""
import os
import subprocess
import tempfile
import time

import pytest

from ocirun import criu
from ocirun.checkpoint import cgroup_binds

from .conftest import OCIRUN

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The count is replaced by a rename, never truncated in place: a container killed mid-write (delete --force
# after a checkpoint) must leave the last number, not an empty file.
COUNTER = ("i=0; while [ $i -lt {limit} ]; do i=$((i+1)); echo $i > /out/count.new; mv /out/count.new /out/count; "
           "sleep 0.1; done; exit 7")


def _find_criu():
    for cand in (os.environ.get("OCIRUN_CRIU"), os.path.join(REPO, ".venv", "criu", "criu")):
        if cand and os.access(cand, os.X_OK):
            return cand
    try:
        return criu.find_binary(None)
    except criu.CriuError as e:
        return str(e)


@pytest.fixture(scope="module")
def criu_bin():
    binary = _find_criu()
    if not os.path.isabs(binary):
        pytest.skip(binary)
    try:
        criu.check(binary)
    except criu.CriuError as e:
        pytest.skip(f"{binary}: {e}")
    return binary


def _rt(oci, criu_bin, *args, **kw):
    """The CLI with --criu.  A container started by `run -d`/`create` inherits our stdio: it gets
    /dev/null only (CRIU cannot dump an fd on a host file the container's mounts do not show)."""
    starts = args[0] in ("run", "create")
    with tempfile.TemporaryFile("w+") as err:  # a file: a pipe would stay open in a detached container
        proc = subprocess.run([OCIRUN, "--root", oci.root, "--criu", criu_bin, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if starts else err, text=True,
                              timeout=120, **kw)
        err.seek(0)
        proc.stderr = err.read()
    return proc


def _counter(oci, tmp_path, limit=100000):
    out = tmp_path / "out"
    out.mkdir()
    spec = oci.config(args=("sh", "-c", COUNTER.format(limit=limit)))
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind", "rw"]})
    oci.write(spec)
    return out / "count"


def _count(path) -> int:
    for _ in range(50):
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):  # not written yet / caught mid-write
            time.sleep(0.02)
    raise AssertionError(f"{path} never held a number")


def _wait_count(path, at_least, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and _count(path) >= at_least:
            return _count(path)
        time.sleep(0.05)
    raise AssertionError(f"count did not reach {at_least}")


def test_checkpoint_then_restore_continues_the_count(oci, tmp_path, criu_bin):
    cid = f"ckpt{os.getpid()}"
    count = _counter(oci, tmp_path)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    _wait_count(count, 5)
    images = tmp_path / "images"
    proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(images), cid)
    assert proc.returncode == 0, proc.stderr
    assert cid not in oci.ids()  # without --leave-running the container is gone
    frozen = _count(count)
    time.sleep(0.4)
    assert _count(count) == frozen  # nothing counts any more
    assert (images / "descriptors.json").exists() and list(images.glob("pages-*.img"))

    proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--image-path", str(images),
               "--pid-file", str(tmp_path / "pid"), cid)
    assert proc.returncode == 0, proc.stderr
    st = oci.state(cid)
    assert st["status"] == "running" and int((tmp_path / "pid").read_text()) == st["pid"]
    after = _wait_count(count, frozen + 3)
    assert frozen < after < frozen + 60  # continued from where it stopped, not from 1
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"/out/count" in f.read()
    with open(f"/proc/{st['pid']}/cgroup") as f:
        assert oci.config()["linux"]["cgroupsPath"].rsplit("-", 1)[0] in f.read()  # back in its cgroup
    oci("delete", "--force", cid, check=True)
    with open("/proc/self/mountinfo") as f:  # restore's bind of the rootfs under our state dir is gone
        assert not [line for line in f if oci.root in line and "criu-root" in line]


def test_leave_running_and_foreground_restore_exit_status(oci, tmp_path, criu_bin):
    cid = f"ckptl{os.getpid()}"
    count = _counter(oci, tmp_path, limit=40)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    _wait_count(count, 3)
    images = tmp_path / "images"
    proc = _rt(oci, criu_bin, "checkpoint", "--leave-running", "--manage-cgroups-mode", "soft",
               "--image-path", str(images), "--work-path", str(tmp_path / "work"), cid)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "work" / "dump.log").exists()
    assert oci.state(cid)["status"] == "running"
    oci("delete", "--force", cid, check=True)
    # Restored in the foreground: `restore` waits and exits with the container's status.
    proc = _rt(oci, criu_bin, "restore", "--bundle", oci.bundle, "--image-path", str(images), cid)
    assert proc.returncode == 7, proc.stderr
    assert _count(count) == 40
    assert cid not in oci.ids()


def test_refusals_are_one_line_and_leave_nothing(oci, tmp_path, criu_bin):
    cid = f"ckptr{os.getpid()}"
    oci.write(oci.config(args=("sleep", "100")))
    assert _rt(oci, criu_bin, "create", "--bundle", oci.bundle, cid).returncode == 0
    proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(tmp_path / "i"), cid)
    assert proc.returncode == 1 and "not running" in proc.stderr
    proc = _rt(oci, criu_bin, "checkpoint", "--manage-cgroups-mode", "bogus", cid)
    assert proc.returncode == 1
    oci("delete", "--force", cid, check=True)
    proc = _rt(oci, criu_bin, "restore", "--bundle", oci.bundle, "--image-path", str(tmp_path / "none"), cid)
    assert proc.returncode == 1 and "descriptors.json" in proc.stderr and proc.stderr.count("\n") == 1
    assert oci.ids() == []


def test_a_criu_that_cannot_work_is_reported_with_its_own_error(oci, tmp_path):
    """Debian 12's criu on this kernel: `criu check` fails; checkpoint says why and changes nothing."""
    broken = "/usr/sbin/criu"
    if not os.access(broken, os.X_OK):
        pytest.skip("no /usr/sbin/criu")
    check = subprocess.run([broken, "check"], capture_output=True, text=True, timeout=60)
    if check.returncode == 0:
        pytest.skip(f"{broken} works on this kernel")
    cid = f"ckptb{os.getpid()}"
    oci.write(oci.config(args=("sleep", "100")))
    oci("run", "-d", "--bundle", oci.bundle, cid, check=True)
    proc = _rt(oci, broken, "checkpoint", "--image-path", str(tmp_path / "i"), cid)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ocirun: criu check failed, CRIU cannot work here: ")
    assert criu.check_reason(check.stdout + check.stderr) in proc.stderr
    assert oci.state(cid)["status"] == "running"


# -- pure: the protobuf subset and helpers -------------------------------------------------------------
def test_protobuf_round_trip():
    data = criu.encode_fields([(1, "v", 2), (2, "m", criu.encode_opts({"pid": -5, "root": "/r", "shell_job": True,
                                                                        "ext_mnt": [criu.ext_mount("/a", "/b")]}))])
    top = criu.decode(data)
    assert top[1] == [2]
    opts = criu.decode(top[2][0])
    assert criu._int32(opts[2][0]) == -5 and opts[13] == [b"/r"] and opts[7] == [1]
    assert criu.decode(opts[23][0]) == {1: [b"/a"], 2: [b"/b"]}
    assert criu._varint(300) == b"\xac\x02"


def test_check_reason_takes_criu_error_line():
    out = ("Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n"
           "Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n")
    assert criu.check_reason(out) == "vdso: Unexpected rt vDSO area bounds"


def test_cgroup_binds_match_host_hierarchies(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "42").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(
        "30 25 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
        "31 25 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    (tmp_path / "42" / "mountinfo").write_text(
        "176 175 0:29 /x/c1 /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"
        "197 175 0:38 /x/c1 /sys/fs/cgroup/unified ro - cgroup2 cgroup2 rw\n"
        "198 175 0:40 / /proc rw - proc proc rw\n")
    assert cgroup_binds(42, proc=str(tmp_path)) == {"/sys/fs/cgroup/cpu": "/sys/fs/cgroup/cpu/x/c1",
                                                    "/sys/fs/cgroup/unified": "/sys/fs/cgroup/unified/x/c1"}


def test_terminal_container_restored_onto_a_new_console_socket(oci, tmp_path, criu_bin):
    """The pty goes through CRIU's orphan-pts-master notification to restore's --console-socket."""
    import select
    import socket

    def listener(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(1)
        s.settimeout(30)
        return s

    def master(lis):
        conn, _ = lis.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 256, 1)
        lis.close()
        return fds[0]

    def talk(fd, line):
        os.write(fd, line.encode() + b"\n")
        out, deadline = b"", time.monotonic() + 5
        while b"got:" + line.encode() not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                out += os.read(fd, 4096)
        return out

    cid = f"ckptt{os.getpid()}"
    spec = oci.config(args=("sh", "-c", "while read l; do echo got:$l; done"))
    spec["process"]["terminal"] = True
    oci.write(spec)
    lis = listener(str(tmp_path / "c1.sock"))
    run = subprocess.Popen([OCIRUN, "--root", oci.root, "--criu", criu_bin, "run", "-d", "--bundle", oci.bundle,
                            "--console-socket", str(tmp_path / "c1.sock"), cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = master(lis)
    assert run.wait(30) == 0
    assert b"got:one" in talk(m, "one")
    proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(tmp_path / "img"), cid)
    os.close(m)
    assert proc.returncode == 0, proc.stderr
    lis = listener(str(tmp_path / "c2.sock"))
    with open(tmp_path / "restore.err", "w") as err:
        restore = subprocess.Popen([OCIRUN, "--root", oci.root, "--criu", criu_bin, "restore", "-d",
                                    "--bundle", oci.bundle, "--console-socket", str(tmp_path / "c2.sock"),
                                    "--image-path", str(tmp_path / "img"), cid],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        m = master(lis)
    except IndexError:  # restore failed before it had a terminal to send: say why
        raise AssertionError((tmp_path / "restore.err").read_text()) from None
    try:
        assert restore.wait(60) == 0
        assert b"got:two" in talk(m, "two")  # the same shell, answering on the new console
    finally:
        os.close(m)
