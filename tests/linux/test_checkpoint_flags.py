"""runc's checkpoint/restore flags on real containers: --pre-dump/--parent-path, --page-server,
--lazy-pages/--status-fd, --auto-dedup, --empty-ns, the org.criu.config annotation, bind mounts whose
destination is a symlink in the image, nested bind mounts, and the Python API.

Each skips with CRIU's own reason where no working criu is found (see test_checkpoint.py), and a
flag whose kernel feature is missing here is tested for its refusal instead (this machine's kernel
has no soft-dirty tracking, so a pre-dump cannot be made; runc refuses it the same way).
"""
import os
import socket
import subprocess
import time

import pytest

from ocirun import criu
from ocirun.api import Runtime

from .conftest import OCIRUN
from .test_checkpoint import COUNTER, _count, _counter, _rt, _wait_count, criu_bin  # noqa: F401 (a fixture)

pytestmark = pytest.mark.root


def _cid(tag):
    return f"ck{tag}{os.getpid()}"


def _run_counter(oci, tmp_path, criu_bin, cid, limit=100000):
    count = _counter(oci, tmp_path, limit=limit)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    _wait_count(count, 3)
    return count


def _restore_and_check(oci, criu_bin, tmp_path, cid, images, count, *extra):
    frozen = _count(count)
    proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--image-path", str(images),
               "--work-path", str(tmp_path / "rwork"), *extra, cid)
    assert proc.returncode == 0, proc.stderr
    assert oci.state(cid)["status"] == "running"
    assert _wait_count(count, frozen + 3) < frozen + 60  # goes on from where it was
    oci("delete", "--force", cid, check=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- --pre-dump, --parent-path ------------------------------------------------------------------------
def test_parent_path_must_be_relative_and_exist(oci, tmp_path, criu_bin):
    cid = _cid("pp")
    _run_counter(oci, tmp_path, criu_bin, cid)
    images = tmp_path / "images"
    for parent, words in ((str(tmp_path / "parent"), "must be relative"), ("../parent", "no such file")):
        proc = _rt(oci, criu_bin, "checkpoint", "--parent-path", parent, "--image-path", str(images), cid)
        assert proc.returncode == 1
        assert "--parent-path" in proc.stderr and words in proc.stderr and proc.stderr.count("\n") == 1
    (tmp_path / "afile").write_text("")
    proc = _rt(oci, criu_bin, "checkpoint", "--parent-path", "../afile", "--image-path", str(images), cid)
    assert proc.returncode == 1 and "not a directory" in proc.stderr
    assert oci.state(cid)["status"] == "running"  # refused before CRIU touched it


def test_pre_dump_then_dump_on_its_parent(oci, tmp_path, criu_bin):
    cid = _cid("pd")
    count = _run_counter(oci, tmp_path, criu_bin, cid)
    parent = tmp_path / "parent"
    proc = _rt(oci, criu_bin, "checkpoint", "--pre-dump", "--image-path", str(parent), cid)
    if criu.missing_features(criu_bin, ["mem_track"]):
        # As runc: refused with the reason, before CRIU is asked to dump; the container runs on.
        assert proc.returncode == 1
        assert proc.stderr.startswith("ocirun: CRIU is missing features: memory tracking")
        assert oci.state(cid)["status"] == "running" and not list(parent.glob("*.img"))
        return
    assert proc.returncode == 0, proc.stderr
    assert oci.state(cid)["status"] == "running"  # a pre-dump leaves it running
    images = tmp_path / "images"
    proc = _rt(oci, criu_bin, "checkpoint", "--parent-path", "../parent", "--image-path", str(images), cid)
    assert proc.returncode == 0, proc.stderr
    assert (images / "parent").exists() and cid not in oci.ids()
    _restore_and_check(oci, criu_bin, tmp_path, cid, images, count)


# -- --page-server -------------------------------------------------------------------------------------
def test_page_server_receives_the_pages(oci, tmp_path, criu_bin):
    """The pages go to a `criu page-server`; the rest of the image to --image-path (the same directory
    here, so that restore finds both)."""
    cid = _cid("ps")
    count = _run_counter(oci, tmp_path, criu_bin, cid)
    images = tmp_path / "images"
    images.mkdir()
    port = _free_port()
    server = subprocess.Popen([criu_bin, "page-server", "--images-dir", str(images), "--port", str(port),
                               "--address", "127.0.0.1", "-o", "ps.log"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        proc = _rt(oci, criu_bin, "checkpoint", "--page-server", f"127.0.0.1:{port}", "--image-path", str(images),
                   "--work-path", str(tmp_path / "work"), cid)
        assert proc.returncode == 0, proc.stderr
        assert server.wait(30) == 0  # it exits once the dump is done
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert list(images.glob("pages-*.img"))
    _restore_and_check(oci, criu_bin, tmp_path, cid, images, count)


@pytest.mark.parametrize("value, words", [("nocolon", "ADDRESS:PORT"), (":27277", "ADDRESS:PORT"),
                                          ("host:", "ADDRESS:PORT"), ("host:http", "invalid port"),
                                          ("host:70000", "invalid port")])
def test_page_server_address_refused(oci, tmp_path, criu_bin, value, words):
    cid = _cid("pa")
    _run_counter(oci, tmp_path, criu_bin, cid)
    proc = _rt(oci, criu_bin, "checkpoint", "--page-server", value, "--image-path", str(tmp_path / "i"), cid)
    assert proc.returncode == 1 and words in proc.stderr and "--page-server" in proc.stderr
    assert oci.state(cid)["status"] == "running"


# -- --lazy-pages, --status-fd -------------------------------------------------------------------------
def test_lazy_pages_writes_nul_on_status_fd_once_serving(oci, tmp_path, criu_bin):
    """`checkpoint --lazy-pages --page-server --status-fd` writes one NUL byte there when CRIU serves the
    pages; the image (but the lazy pages) is then written.  Once the page client goes, `checkpoint` ends
    as CRIU ends: the container gone after a transfer, running on after a failed one.  (The whole lazy
    migration does not complete on this machine, for runc either: the dumping CRIU fails its splice
    when the lazy-pages daemon asks for pages.)"""
    if subprocess.run([criu_bin, "check", "--feature", "uffd-noncoop"], capture_output=True).returncode:
        pytest.skip("this criu/kernel has no lazy migration (uffd-noncoop)")
    cid = _cid("lz")
    _run_counter(oci, tmp_path, criu_bin, cid)
    images = tmp_path / "images"
    port = _free_port()
    r, w = os.pipe()
    cmd = [OCIRUN, "--root", oci.root, "--criu", criu_bin, "checkpoint", "--lazy-pages",
           "--page-server", f"127.0.0.1:{port}", "--status-fd", str(w), "--image-path", str(images), cid]
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, pass_fds=(w,))
    os.close(w)
    try:
        ready = os.read(r, 1)  # EOF (b"") if it failed before serving
        assert ready == b"\0", (tmp_path / "err").read_text()
        assert (images / "inventory.img").exists() and (images / "descriptors.json").exists()
        assert os.read(r, 1) == b""  # closed after the one byte (CRIU has no copy of it either)
        _end_transfer(port)
        code = proc.wait(60)
    finally:
        os.close(r)
        if proc.poll() is None:  # CRIU would serve on after us: ended through its socket first
            _end_transfer(port)
            proc.kill()
            proc.wait()
    if code == 0:  # CRIU counted the transfer as done: the container was dumped, and is gone
        assert cid not in oci.ids()
    else:  # failed: the container runs on
        assert code == 1 and "checkpoint failed" in (tmp_path / "err").read_text()
        assert oci.state(cid)["status"] == "running"


def _end_transfer(port):
    """A page client that goes away: CRIU's page server ends the transfer (and its process)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    except OSError:
        pass
    time.sleep(0.2)


def test_status_fd_must_be_open_for_writing(oci, tmp_path, criu_bin):
    cid = _cid("sf")
    _run_counter(oci, tmp_path, criu_bin, cid)
    base = ["checkpoint", "--lazy-pages", "--page-server", "127.0.0.1:1", "--image-path", str(tmp_path / "i")]
    proc = _rt(oci, criu_bin, *base, "--status-fd", "77", cid)
    assert proc.returncode == 1 and "invalid --status-fd 77: bad file descriptor" in proc.stderr
    r, w = os.pipe()
    try:
        proc = _rt(oci, criu_bin, *base, "--status-fd", str(r), cid, pass_fds=(r,))
    finally:
        os.close(r)
        os.close(w)
    assert proc.returncode == 1 and "not open for writing" in proc.stderr
    proc = _rt(oci, criu_bin, *base, "--status-fd", "x", cid)
    assert proc.returncode == 1 and "status-fd" in proc.stderr
    assert oci.state(cid)["status"] == "running"


# -- --auto-dedup, --empty-ns --------------------------------------------------------------------------
def test_auto_dedup_and_empty_ns_network(oci, tmp_path, criu_bin):
    cid = _cid("ad")
    count = _run_counter(oci, tmp_path, criu_bin, cid)
    images = tmp_path / "images"
    debug = tmp_path / "debug.log"
    proc = _rt(oci, criu_bin, "--debug", "--log", str(debug), "checkpoint", "--auto-dedup", "--empty-ns", "network",
               "--image-path", str(images), "--work-path", str(tmp_path / "work"), cid)
    assert proc.returncode == 0, proc.stderr
    text = debug.read_text()  # --debug names every option sent to CRIU
    assert "CRIU option auto_dedup with value True" in text
    assert f"CRIU option empty_ns with value {0x40000000}" in text
    _restore_and_check(oci, criu_bin, tmp_path, cid, images, count, "--auto-dedup", "--empty-ns", "network")


def test_empty_ns_other_than_network_refused(oci, tmp_path, criu_bin):
    cid = _cid("en")
    _run_counter(oci, tmp_path, criu_bin, cid)
    proc = _rt(oci, criu_bin, "checkpoint", "--empty-ns", "pid", "--image-path", str(tmp_path / "i"), cid)
    assert proc.returncode == 1 and "'pid' is not supported" in proc.stderr
    assert oci.state(cid)["status"] == "running"
    proc = _rt(oci, criu_bin, "restore", "--empty-ns", "ipc", "--bundle", oci.bundle, "--image-path",
               str(tmp_path / "i"), _cid("en2"))
    assert proc.returncode == 1 and oci.ids() == [cid]


# -- org.criu.config -----------------------------------------------------------------------------------
def test_criu_config_annotation_is_read_by_criu(oci, tmp_path, criu_bin):
    """The annotation names CRIU's configuration file (its settings override ours): its log-file is used."""
    cid = _cid("cc")
    conf = tmp_path / "criu.conf"
    conf.write_text("log-file=from-annotation.log\n")
    count = _counter(oci, tmp_path)
    spec = oci.config(args=("sh", "-c", COUNTER.format(limit=100000)))
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(count.parent),
                           "options": ["rbind", "rw"]})
    spec["annotations"] = {"org.criu.config": str(conf)}
    oci.write(spec)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    _wait_count(count, 3)
    work = tmp_path / "work"
    proc = _rt(oci, criu_bin, "checkpoint", "--work-path", str(work), "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    assert (work / "from-annotation.log").exists() and not (work / "dump.log").exists()
    (work / "from-annotation.log").unlink()
    proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--work-path", str(work), "--image-path",
               str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    assert (work / "from-annotation.log").exists() and not (work / "restore.log").exists()
    oci("delete", "--force", cid, check=True)


# -- mounts --------------------------------------------------------------------------------------------
def _own_rootfs(oci, tmp_path):
    """A writable copy of the busybox rootfs: these tests change the image."""
    import shutil

    root = tmp_path / "rootfs"
    shutil.copytree(oci.rootfs, root, symlinks=True)
    return root


def test_bind_mount_whose_destination_is_a_symlink_in_the_image(oci, tmp_path, criu_bin):
    root = _own_rootfs(oci, tmp_path)
    (root / "real" / "conf").mkdir(parents=True)
    os.symlink("/real/conf", root / "conf")
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("hi\n")
    cid = _cid("sl")
    spec = oci.config(args=("sleep", "1000"))
    spec["root"] = {"path": str(root), "readonly": False}
    spec["mounts"].append({"destination": "/conf", "source": str(src), "options": ["bind"]})
    oci.write(spec)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    for _ in range(2):
        proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(tmp_path / "img"), cid)
        assert proc.returncode == 0, proc.stderr
        proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--image-path", str(tmp_path / "img"), cid)
        assert proc.returncode == 0, proc.stderr
    assert oci("exec", cid, "cat", "/real/conf/hello").stdout == "hi\n"
    oci("delete", "--force", cid, check=True)


def test_nested_bind_mounts_get_their_mount_points_back(oci, tmp_path, criu_bin):
    """The mount point of /test/for/nested lives in the source of /test: removed there after the
    checkpoint, restore makes it again (through the bind, as create made it), and leaves nothing mounted."""
    outer, inner = tmp_path / "outer", tmp_path / "inner"
    outer.mkdir()
    inner.mkdir()
    (inner / "deep").write_text("nested\n")
    cid = _cid("nb")
    spec = oci.config(args=("sleep", "1000"))
    spec["mounts"] += [{"destination": "/test", "type": "bind", "source": str(outer), "options": ["rw", "bind"]},
                       {"destination": "/test/for/nested", "type": "bind", "source": str(inner),
                        "options": ["rw", "bind"]}]
    oci.write(spec)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    assert (outer / "for" / "nested").is_dir()
    proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    import shutil

    shutil.rmtree(outer / "for")
    proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    assert oci("exec", cid, "cat", "/test/for/nested/deep").stdout == "nested\n"
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(outer) in line or str(inner) in line]
    oci("delete", "--force", cid, check=True)


# -- the Python API ------------------------------------------------------------------------------------
def test_api_checkpoint_and_restore_return_values(oci, tmp_path, criu_bin):
    cid = _cid("api")
    count = _run_counter(oci, tmp_path, criu_bin, cid)
    api = Runtime(root=oci.root)
    images = api.checkpoint(cid, str(tmp_path / "img"), criu=criu_bin, leave_running=True)
    assert images == str(tmp_path / "img") and api.state(cid).status == "running"
    api.delete(cid, force=True)
    frozen = _count(count)
    st = api.restore(cid, oci.bundle, images, criu=criu_bin, pid_file=str(tmp_path / "pid"))
    try:
        assert st.status == "running" and st.id == cid and int((tmp_path / "pid").read_text()) == st.pid
        assert frozen <= _wait_count(count, frozen + 2) < frozen + 60
        os.kill(st.pid, 9)
        _, status = os.waitpid(st.pid, 0)  # the restored init is the caller's child
        assert os.WIFSIGNALED(status)
    finally:
        api.delete(cid, force=True)
    assert api.list() == []


# -- create's launch path: hooks -----------------------------------------------------------------------
def test_restore_runs_create_hooks_with_the_restored_pid(oci, tmp_path, criu_bin):
    """prestart and createRuntime run on CRIU's setup-namespaces notification, as create runs them (and
    runc on restore): state "creating", the pid of the process being restored."""
    import json

    cid = _cid("hk")
    count = _counter(oci, tmp_path)
    spec = oci.config(args=("sh", "-c", COUNTER.format(limit=100000)))
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(count.parent),
                           "options": ["rbind", "rw"]})
    oci.write(spec)
    assert _rt(oci, criu_bin, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    _wait_count(count, 3)
    proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    spec["hooks"] = {phase: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {tmp_path}/{phase}.json"]}]
                     for phase in ("prestart", "createRuntime")}
    oci.write(spec)
    proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    pid = oci.state(cid)["pid"]
    for phase in ("prestart", "createRuntime"):
        state = json.loads((tmp_path / f"{phase}.json").read_text())
        assert state["id"] == cid and state["status"] == "creating" and state["pid"] == pid
    oci("delete", "--force", cid, check=True)


def test_restore_with_a_failing_hook_leaves_nothing(oci, tmp_path, criu_bin):
    cid = _cid("hf")
    _run_counter(oci, tmp_path, criu_bin, cid)
    proc = _rt(oci, criu_bin, "checkpoint", "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 0, proc.stderr
    spec = oci.config(args=("sh", "-c", COUNTER.format(limit=100000)))
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(tmp_path / "out"),
                           "options": ["rbind", "rw"]})
    spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    oci.write(spec)
    proc = _rt(oci, criu_bin, "restore", "-d", "--bundle", oci.bundle, "--image-path", str(tmp_path / "img"), cid)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert oci.ids() == []
    time.sleep(0.3)
    before = _count(tmp_path / "out" / "count")
    time.sleep(0.4)
    assert _count(tmp_path / "out" / "count") == before  # nothing restored runs on
