"""Terminals: the console socket of `exec` (the pty master over SCM_RIGHTS, as conmon and the shim get
it), and the foreground terminal of `run` / `exec -t` bridged by ocirun.tty (a test pty as the caller's
terminal)."""
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import termios
import time

import pytest

from .conftest import OCIRUN

pytestmark = pytest.mark.root

C = f"tty{os.getpid()}"  # unique: parallel runs share the default cgroup path /ocirun/<id>


@pytest.fixture
def box(oci):
    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    return oci


def run_on_pty(argv, answer=None, size=(33, 101), timeout=20):
    """Run ``argv`` with a new pty's slave as its stdio (the caller's terminal).  ``answer``:
    (trigger bytes, reply bytes) typed once the trigger shows.  Returns (rc, output, restored)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    before = termios.tcgetattr(slave)
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                out += data
                if answer and answer[0] in out:
                    os.write(master, answer[1])
                    answer = None
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=5)
        return rc, out.decode(errors="replace"), termios.tcgetattr(slave) == before
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


class ConsoleSocket:
    """The caller's side of --console-socket: a listening unix socket that receives the pty master."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(20)

    def master(self):
        conn, _ = self.sock.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 1024, 4)
        assert len(fds) == 1
        return name.decode(), fds[0]

    def close(self):
        self.sock.close()


def read_until(fd, marker: bytes, timeout=10.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    return out


def test_exec_console_socket_receives_master(box, tmp_path):
    cs = ConsoleSocket(tmp_path / "console.sock")
    try:
        pidfile = tmp_path / "p.pid"
        proc = box("exec", "--detach", "--tty", "--console-socket", cs.path, "--pid-file", str(pidfile), C,
                   "sh", "-c", "tty; stty size; echo from-the-tty; sleep 5")
        assert proc.returncode == 0, proc.stderr
        name, master = cs.master()
        try:
            assert name.startswith("/dev/pts/")
            out = read_until(master, b"from-the-tty")
            lines = out.decode().splitlines()
            assert lines[0] == name  # the slave is the process's stdio and its name in the container
            assert "from-the-tty" in lines[-1]
            pid = int(pidfile.read_text())
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            assert fields[2] == str(pid) and fields[3] == str(pid)  # session leader (setsid)...
            assert int(fields[4]) != 0  # ...with the pty as its controlling terminal
        finally:
            os.close(master)
    finally:
        cs.close()


def test_exec_process_terminal_ctr_shape(box, tmp_path):
    """containerd's shim: terminal:true in the process JSON, --console-socket, --detach, no --tty."""
    cs = ConsoleSocket(tmp_path / "pty.sock")
    process = {"user": {"uid": 0, "gid": 0, "additionalGids": [0]}, "terminal": True,
               "consoleSize": {"height": 20, "width": 60},
               "args": ["sh", "-c", "stty size; echo ctr-ok"], "cwd": "/",
               "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "noNewPrivileges": True}
    path = tmp_path / "runc-process1"
    path.write_text(json.dumps(process))
    try:
        proc = box("exec", "--process", str(path), "--console-socket", cs.path, "--detach",
                   "--pid-file", str(tmp_path / "e.pid"), C)
        assert proc.returncode == 0, proc.stderr
        _, master = cs.master()
        try:
            out = read_until(master, b"ctr-ok").decode()
            assert "20 60" in out and "ctr-ok" in out
        finally:
            os.close(master)
    finally:
        cs.close()


def test_terminal_flag_checks(box, tmp_path):
    proc = box("exec", "-d", "-t", C, "true")
    assert proc.returncode == 255
    assert "cannot allocate tty if runc will detach without setting console socket" in proc.stderr
    proc = box("exec", "--console-socket", str(tmp_path / "x"), C, "true")
    assert "cannot use console socket if runc will not detach or allocate tty" in proc.stderr


def test_exec_tty_in_the_foreground(box):
    rc, out, restored = run_on_pty([OCIRUN, "--root", box.root, "exec", "-t", C, "sh", "-c",
                                    "tty; stty size; read x; echo got $x; exit 3"],
                                   answer=(b"33 101", b"typed\r"))
    assert rc == 3, out
    assert "/dev/pts/" in out and "33 101" in out and "got typed" in out
    assert restored  # the caller's terminal is back in its own mode


def test_run_terminal_in_the_foreground(oci):
    spec = oci.config(args=("sh", "-c", "tty; stty size; read x; echo got $x; exit 5"))
    spec["process"]["terminal"] = True
    oci.write(spec)
    rc, out, restored = run_on_pty([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, C],
                                   answer=(b"33 101", b"hello\r"))
    assert rc == 5, out
    assert "/dev/pts/0" in out and "got hello" in out
    assert restored
    assert oci.ids() == []  # run removed the container


def test_run_terminal_signal_exit(oci):
    """Ctrl-C typed on the caller's terminal reaches the process through the pty (raw mode)."""
    # sh is pid 1 of the container: it only reacts to signals it has a handler for
    spec = oci.config(args=("sh", "-c", 'trap "exit 9" INT; echo armed; while :; do sleep 0.1; done'))
    spec["process"]["terminal"] = True
    oci.write(spec)
    rc, out, restored = run_on_pty([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, C],
                                   answer=(b"armed", b"\x03"))
    assert rc == 9, out  # the ^C byte became SIGINT inside the container
    assert restored
