"""``--pidfd-socket`` on create/run/exec: the caller receives a pidfd of the container's process over
its unix socket (SCM_RIGHTS) and can signal exactly that process with pidfd_send_signal."""
import os
import signal
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.root


class Listener:
    """A test-side unix stream socket that accepts one connection and keeps the fd it is sent."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.fd = None
        self.data = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.sock.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 64, 1)
            self.data = data
            self.fd = fds[0] if fds else None

    def received(self):
        self.thread.join(20)
        self.sock.close()
        return self.fd

    def close(self):
        self.sock.close()
        if self.fd is not None:
            os.close(self.fd)


def _fd_pid(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise AssertionError("not a pidfd")


def _wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(f"/proc/{pid}")


def test_create_sends_a_pidfd_of_the_init(oci, tmp_path):
    cid = f"pfd{os.getpid()}"
    lis = Listener(str(tmp_path / "pidfd.sock"))
    try:
        oci.write(oci.config(args=("sleep", "100")))
        oci("create", "--bundle", oci.bundle, "--pidfd-socket", lis.path, cid, check=True)
        fd = lis.received()
        assert fd is not None and lis.data == b"pidfd"
        pid = oci.state(cid)["pid"]
        assert _fd_pid(fd) == pid
        oci("start", cid, check=True)
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while oci.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert oci.state(cid)["status"] == "stopped"
    finally:
        lis.close()


def test_exec_sends_a_pidfd_of_the_new_process(oci, tmp_path):
    cid = f"pfdx{os.getpid()}"
    oci.write(oci.config(args=("sleep", "100")))
    oci("run", "-d", "--bundle", oci.bundle, cid, check=True)
    lis = Listener(str(tmp_path / "pidfd.sock"))
    try:
        pidfile = tmp_path / "exec.pid"
        oci("exec", "-d", "--pid-file", str(pidfile), "--pidfd-socket", lis.path, cid, "sleep", "99", check=True)
        fd = lis.received()
        assert fd is not None
        pid = int(pidfile.read_text())
        assert _fd_pid(fd) == pid and pid != oci.state(cid)["pid"]
        signal.pidfd_send_signal(fd, signal.SIGTERM)
        assert _wait_gone(pid)
        assert oci.state(cid)["status"] == "running"  # only the exec'd process was signalled
    finally:
        lis.close()


def test_unreachable_pidfd_socket_fails_create_and_leaves_nothing(oci, tmp_path):
    cid = f"pfdbad{os.getpid()}"
    oci.write(oci.config(args=("true",)))
    proc = oci("create", "--bundle", oci.bundle, "--pidfd-socket", str(tmp_path / "nope.sock"), cid)
    assert proc.returncode != 0
    assert "pidfd socket" in proc.stderr and proc.stderr.count("\n") == 1
    assert oci.ids() == []


def test_run_detached_sends_a_pidfd(oci, tmp_path):
    cid = f"pfdr{os.getpid()}"
    lis = Listener(str(tmp_path / "pidfd.sock"))
    try:
        oci.write(oci.config(args=("sleep", "100")))
        oci("run", "-d", "--bundle", oci.bundle, "--pidfd-socket", lis.path, cid, check=True)
        fd = lis.received()
        assert fd is not None and _fd_pid(fd) == oci.state(cid)["pid"]
    finally:
        lis.close()
