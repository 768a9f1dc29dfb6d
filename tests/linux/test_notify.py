"""NOTIFY_SOCKET passthrough (podman --sdnotify=container): the container sees NOTIFY_SOCKET at
/run/notify/notify.sock, its READY=1 reaches the runtime caller's socket, with MAINPID and a barrier."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from .conftest import OCIRUN

pytestmark = pytest.mark.root

# busybox's nc has no -U: a 10-line static sender is the container's sd_notify.
HELPER_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (!path || argc < 2 || s < 0) return 2;
    strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
    return sendto(s, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&a, sizeof(a)) < 0 ? 1 : 0;
}
"""


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the container's sd_notify sender")
    d = tmp_path_factory.mktemp("sdnotify")
    (d / "sdnotify.c").write_text(HELPER_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "sdnotify"), str(d / "sdnotify.c")], check=True)
    return str(d / "sdnotify")


class Manager:
    """The service manager's side: a datagram socket that collects messages and acks barriers."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 4096, 4)
            except TimeoutError:
                continue
            except OSError:
                return
            for fd in fds:  # BARRIER=1: closing the pipe is the acknowledgement
                os.close(fd)
            self.messages.append(data)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def _spec(oci, helper, script):
    spec = oci.config(args=("sh", "-c", script))
    spec["mounts"].append({"destination": "/sdnotify", "type": "bind", "source": helper,
                           "options": ["bind", "ro"]})
    return spec


def _call(oci, env, *args):
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run([OCIRUN, "--root", oci.root, *args], stdout=out, stderr=out, env=env, timeout=60)
        out.seek(0)
        proc.stdout = out.read()
    return proc


def test_ready_reaches_the_host_socket_with_mainpid(oci, helper, tmp_path):
    cid = f"ntf{os.getpid()}"
    mgr = Manager(str(tmp_path / "host-notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=mgr.path)
    try:
        spec = _spec(oci, helper, 'echo "$NOTIFY_SOCKET" > /dev/shm/env; grep " /run/notify " /proc/self/mountinfo '
                                  '> /dev/shm/mnt; sleep 0.5; /sdnotify "STATUS=starting"; '
                                  '/sdnotify "READY=1"; sleep 100')
        spec["mounts"].append({"destination": "/dev/shm", "type": "bind", "source": str(tmp_path),
                               "options": ["bind", "rw"]})
        oci.write(spec)
        assert _call(oci, env, "create", "--bundle", oci.bundle, cid).returncode == 0
        assert os.path.isdir(os.path.join(oci.root, cid, "notify"))
        t0 = time.monotonic()
        proc = _call(oci, env, "start", cid)
        waited = time.monotonic() - t0
        assert proc.returncode == 0, proc.stdout
        assert waited >= 0.4  # `start` returned only once the container was ready
        pid = oci.state(cid)["pid"]
        assert mgr.messages[:3] == [b"READY=1\n", f"MAINPID={pid}\n".encode(), b"BARRIER=1"]
        assert (tmp_path / "env").read_text().strip() == "/run/notify/notify.sock"
        mnt = (tmp_path / "mnt").read_text().split()
        assert "ro" in mnt[5].split(",") and "nosuid" in mnt[5].split(",")
    finally:
        mgr.close()


def test_run_detached_relays_and_dead_init_does_not_hang(oci, helper, tmp_path):
    mgr = Manager(str(tmp_path / "host-notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=mgr.path)
    try:
        cid = f"ntfr{os.getpid()}"
        oci.write(_spec(oci, helper, "/sdnotify READY=1; sleep 100"))
        assert _call(oci, env, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
        assert mgr.messages[0] == b"READY=1\n"
        # An init that exits without READY: `run` must come back (no message is sent).
        cid2 = f"ntfd{os.getpid()}"
        oci.write(_spec(oci, helper, "exit 3"))
        count = len(mgr.messages)
        proc = _call(oci, env, "run", "--bundle", oci.bundle, cid2)
        assert proc.returncode == 3
        assert len(mgr.messages) == count
    finally:
        mgr.close()


def test_without_notify_socket_nothing_is_added(oci, tmp_path):
    cid = f"ntfn{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    oci.write(oci.config(args=("sh", "-c", 'test -z "$NOTIFY_SOCKET" && ! grep -q /run/notify /proc/self/mountinfo')))
    assert _call(oci, env, "run", "--bundle", oci.bundle, cid).returncode == 0
