"""send_listener: the container process state + the fd over SCM_RIGHTS (no root: any fd will do)."""
from __future__ import annotations

import os
import socket
import threading

import pytest

from ocirun import SPEC_VERSION
from ocirun.errors import SeccompError
from ocirun.seccomp.notify import process_state, receive_state, send_listener

STATE = {"ociVersion": SPEC_VERSION, "id": "c1", "status": "creating", "pid": 4422,
         "bundle": "/containers/redis", "annotations": {"myKey": "myValue"}}


class Agent(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.got = []

    def run(self):
        for _ in range(self.expect):
            conn, _ = self.srv.accept()
            with conn:
                msg, fds = receive_state(conn)
                tail = conn.recv(1)  # the runtime closed the connection after one state
                self.got.append((msg, fds, tail))


@pytest.fixture
def agent(tmp_path):
    def start(expect=1):
        a = Agent(str(tmp_path / "agent.sock"))
        a.expect = expect
        a.start()
        return a
    return start


def test_state_and_fd_reach_the_agent(agent, tmp_path):
    a = agent()
    r, w = os.pipe()
    send_listener(str(tmp_path / "agent.sock"), w, STATE, "MKNOD=/dev/null")
    a.join(5)
    msg, fds, tail = a.got[0]
    assert msg == {"ociVersion": SPEC_VERSION, "fds": ["seccompFd"], "pid": 4422,
                   "metadata": "MKNOD=/dev/null", "state": STATE}
    assert tail == b""
    # the agent holds a duplicate of our fd
    os.write(fds["seccompFd"], b"hi")
    os.close(fds["seccompFd"])
    os.close(w)
    assert os.read(r, 10) == b"hi"
    os.close(r)


def test_metadata_is_optional_and_pid_overridable():
    msg = process_state(STATE, None, pid=7)
    assert "metadata" not in msg and msg["pid"] == 7 and msg["state"]["pid"] == 4422


def test_large_state(agent, tmp_path):
    a = agent()
    big = dict(STATE, annotations={f"k{i}": "v" * 100 for i in range(3000)})
    r, w = os.pipe()
    send_listener(str(tmp_path / "agent.sock"), w, big)
    a.join(5)
    msg, fds, _ = a.got[0]
    assert msg["state"] == big and list(fds) == ["seccompFd"]
    for fd in (r, w, fds["seccompFd"]):
        os.close(fd)


def test_no_agent_is_an_error(tmp_path):
    r, w = os.pipe()
    with pytest.raises(SeccompError) as ei:
        send_listener(str(tmp_path / "nobody.sock"), w, STATE)
    assert str(ei.value) == (f"failed to connect with seccomp agent at {tmp_path}/nobody.sock "
                             "(linux.seccomp.listenerPath): No such file or directory")
    os.close(r)
    os.close(w)
