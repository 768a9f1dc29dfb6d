"""ocirun.sync on a real socketpair: no fd is ever dropped or leaked silently.

An fd that comes with a message that does not announce it is closed, and recv raises; a control
message the kernel had to truncate (MSG_CTRUNC: it dropped fds) raises; ERROR raises, with the
peer's own text, whatever the caller expected."""
import _socket
import os
import sys

import pytest

from ocirun import sync


def _raw_send(sock, payload: bytes, fds: list[int]) -> None:
    """A message as a faulty or hostile peer sends it: bypasses sync.send's own checks."""
    data = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)] if fds else [])


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def _assert_closed(fds_before: set[int], fds_after: set[int]) -> None:
    leaked = fds_after - fds_before
    assert not leaked, f"fds left open: {sorted(leaked)}"


def test_fds_on_a_message_that_carries_none_are_closed(pair):
    parent, stage = pair
    r, w = os.pipe()
    try:
        _raw_send(stage, b'{"type": "pid", "pid": 42}', [r, w])
        before = _open_fds()
        with pytest.raises(sync.ProtocolError, match="message pid: 2 file descriptors arrived, 0 expected"):
            sync.recv(parent)
        _assert_closed(before, _open_fds())
    finally:
        os.close(r)
        os.close(w)


def test_the_received_fd_numbers_themselves_are_closed(pair, monkeypatch):
    """Not only "no new entry in /proc/self/fd": each number the kernel installed is closed (EBADF)."""
    parent, stage = pair
    installed: list[int] = []
    real_recvmsg = type(parent).recvmsg

    class Spy:
        def recvmsg(self, *a):
            data, anc, flags, addr = real_recvmsg(parent, *a)
            for _level, _typ, cdata in anc:
                installed.extend(int.from_bytes(cdata[i:i + 4], sys.byteorder, signed=True)
                                 for i in range(0, len(cdata), 4))
            return data, anc, flags, addr

    r, w = os.pipe()
    try:
        _raw_send(stage, b'{"type": "ready"}', [r, w, r])
        with pytest.raises(sync.ProtocolError, match="3 file descriptors arrived, 0 expected"):
            sync.recv(Spy(), sync.READY)
        assert len(installed) == 3 and not {r, w} & set(installed)
        for fd in installed:
            with pytest.raises(OSError) as e:
                os.fstat(fd)
            assert e.value.errno == 9  # EBADF
    finally:
        os.close(r)
        os.close(w)


def test_more_fds_than_announced_are_all_closed(pair):
    parent, stage = pair
    r, w = os.pipe()
    try:
        _raw_send(stage, b'{"type": "config", "nfds": 1}', [r, w])
        before = _open_fds()
        with pytest.raises(sync.ProtocolError, match="message config: 2 file descriptors arrived, 1 expected"):
            sync.recv(parent, sync.CONFIG)
        _assert_closed(before, _open_fds())
    finally:
        os.close(r)
        os.close(w)


def test_config_with_its_announced_fds_is_received(pair):
    parent, stage = pair
    r, w = os.pipe()
    got = []
    try:
        sync.send(parent, sync.CONFIG, fds=[r, w], spec={})
        msg, got = sync.recv(stage, sync.CONFIG)
        assert msg == {"type": sync.CONFIG, "spec": {}}  # nfds is the envelope's, not the caller's
        assert len(got) == 2
        os.write(w, b"x")
        assert os.read(got[0], 1) == b"x"
    finally:
        for fd in (r, w, *got):
            os.close(fd)


def test_send_refuses_fds_on_a_message_that_carries_none(pair):
    parent, _ = pair
    with pytest.raises(sync.ProtocolError, match="message pid carries no file descriptors"):
        sync.send(parent, sync.PID, fds=[0], pid=1)


def test_a_truncated_control_message_raises_and_closes_what_arrived(pair, monkeypatch):
    """More fds than the receiver's buffer holds: the kernel installs what fits, drops the rest and
    sets MSG_CTRUNC (the same happens, with any buffer, when the receiver's fd table is full)."""
    parent, stage = pair
    monkeypatch.setattr(sync, "MAX_FDS", 2)
    r, w = os.pipe()
    try:
        _raw_send(stage, b'{"type": "config", "nfds": 4}', [r, w, r, w])
        before = _open_fds()
        with pytest.raises(sync.ProtocolError, match="MSG_CTRUNC"):
            sync.recv(parent, sync.CONFIG)
        _assert_closed(before, _open_fds())
    finally:
        os.close(r)
        os.close(w)


def test_error_raises_with_the_peers_text_whatever_was_expected(pair):
    parent, stage = pair
    for expect in (None, sync.PID):
        sync.send(stage, sync.ERROR, msg="mount /proc: permission denied", hook=True)
        with pytest.raises(sync.PeerError) as e:
            sync.recv(parent, expect)
        assert str(e.value) == "mount /proc: permission denied"
        assert e.value.payload["hook"] is True


def test_a_warning_is_not_taken_for_the_expected_step(pair):
    parent, stage = pair
    sync.send(stage, sync.WARNING, msg="cap CAP_X unknown")
    with pytest.raises(sync.ProtocolError, match="expected cgroup-done, got warning"):
        sync.recv(parent, sync.CGROUP_DONE)
    sync.send(stage, sync.WARNING, msg="cap CAP_X unknown")
    msg, fds = sync.recv(parent)
    assert msg == {"type": sync.WARNING, "msg": "cap CAP_X unknown"} and fds == []


def test_fds_dropped_for_a_full_fd_table_raise(pair):
    """The other way the kernel truncates: the receiver may open no more fds (RLIMIT_NOFILE). It
    installs what it can and sets MSG_CTRUNC; the message must not pass as if complete.  In a
    forked child, whose limit we may lower; it exits 0 when recv raised as it should."""
    import resource

    parent, stage = pair
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: room for exactly one more fd (the lowest free number is the last below the limit)
        status = 3
        try:
            lowest_free = os.dup(0)
            os.close(lowest_free)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free + 1, resource.getrlimit(
                resource.RLIMIT_NOFILE)[1]))
            try:
                sync.recv(stage, sync.CONFIG)
                status = 1
            except sync.ProtocolError as e:
                status = 0 if "MSG_CTRUNC" in str(e) and "1 arrived" in str(e) else 2
        finally:
            os._exit(status)
    try:
        sync.send(parent, sync.CONFIG, fds=[r, w, r], spec={})
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(r)
        os.close(w)
