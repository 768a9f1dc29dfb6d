"""The pure parts of the one teardown (issue 11 items 6 and 7; the real containers are in
tests/linux/test_teardown.py): what create records before it makes a cgroup, which frozen state
create refuses, signalling by pidfd only what a list still names, the init stage's comm marker."""
from __future__ import annotations

import os
import subprocess

import pytest

from ocirun import cgroups
from ocirun.kernel import process

from .test_cgroups_helpers import FakeHost, touch


@pytest.mark.parametrize("mode", ["v1", "hybrid", "unified"])
def test_plan_create_names_every_directory_before_create_makes_it(tmp_path, mode):
    """The record written before the first mkdir names exactly what create then makes (plus ocirun's
    shared default parent, by the same rule as create), and nothing that existed before it."""
    h = FakeHost(tmp_path, mode, hierarchies=["pids", "memory", "freezer"])
    existing = f"{h.root}/memory/a" if mode != "unified" else f"{h.root}/a"
    os.makedirs(existing)
    m = cgroups.for_container("/a/b/c", "c1", **h.kw())
    m.plan_create()
    planned = list(m.created)
    assert existing not in planned
    assert all(not os.path.exists(p) for p in planned)
    m2 = cgroups.for_container("/a/b/c", "c1", **h.kw())
    m2.create()
    assert sorted(m2.created) == sorted(planned)
    # a create killed right after the record: the reopened manager removes whatever exists of it
    reopened = cgroups.from_state(m.to_state())
    reopened.destroy()
    assert all(not os.path.exists(p) for p in planned)
    assert os.path.isdir(existing)


def test_plan_create_then_create_keeps_one_entry_per_directory(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"])
    m = cgroups.for_container(None, "c1", **h.kw())  # the default: ocirun's shared parent + the id
    m.plan_create()
    m.create()
    assert sorted(m.created) == sorted(set(m.created)) == [f"{h.root}/pids/ocirun", f"{h.root}/pids/ocirun/c1"]


def test_rootless_skip_forgets_what_was_planned_in_that_hierarchy(tmp_path, monkeypatch):
    """A rootless create skips a hierarchy it may not write: the record of it must go too, or delete
    would try (and fail) to rmdir directories that were never its own."""
    from ocirun.cgroups import base

    h = FakeHost(tmp_path, "v1", hierarchies=["pids", "memory"])
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777):
        if "/memory/" in path:
            raise PermissionError(13, "Permission denied")
        return real_mkdir(path, mode)

    monkeypatch.setattr(base.os, "mkdir", mkdir)
    m = cgroups.for_container("/x/c", "c1", rootless=True, **h.kw())
    m.plan_create()
    m.create()
    assert m.created == [f"{h.root}/pids/x", f"{h.root}/pids/x/c"]
    assert "memory" not in m.paths


def test_frozen_from_the_start_sees_a_frozen_ancestor(tmp_path):
    """v1: a new cgroup below a FROZEN one is born frozen; create refuses both cases."""
    h = FakeHost(tmp_path, "v1", hierarchies=["pids", "freezer"])
    m = cgroups.for_container("/p/c", "c1", **h.kw())
    assert not m.frozen_from_the_start()
    touch(f"{h.root}/freezer/p", {"freezer.state": "FROZEN\n"})
    assert m.frozen_from_the_start()
    touch(f"{h.root}/freezer/p", {"freezer.state": "THAWED\n"})
    touch(f"{h.root}/freezer/p/c", {"freezer.state": "FROZEN\n"})
    assert m.frozen_from_the_start()


def test_frozen_from_the_start_v2(tmp_path):
    h = FakeHost(tmp_path, "unified")
    m = cgroups.for_container("/p/c", "c1", **h.kw())
    touch(f"{h.root}/p", {"cgroup.events": "populated 0\nfrozen 0\n"})
    assert not m.frozen_from_the_start()
    touch(f"{h.root}/p", {"cgroup.events": "populated 0\nfrozen 1\n"})
    assert m.frozen_from_the_start()


@pytest.mark.skipif(not process.HAVE_PIDFD, reason="no pidfd_open on this kernel")
def test_signal_listed_signals_only_what_the_list_still_names():
    """A pid read from cgroup.procs whose process is no longer listed once its pidfd is open (it left, or
    the number is someone else's now) is not signalled; the others are, through their pidfds."""
    a = subprocess.Popen(["sleep", "100"])
    b = subprocess.Popen(["sleep", "100"])
    try:
        sent = process.signal_listed([a.pid, b.pid], 9, lambda: [b.pid])
        assert sent == 1
        assert b.wait(timeout=10) == -9
        assert a.poll() is None
        assert process.signal_listed([a.pid], 9, lambda: []) == 0
        assert a.poll() is None
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


@pytest.mark.skipif(not process.HAVE_PIDFD, reason="no pidfd_open on this kernel")
def test_signal_pid_checks_after_the_pidfd_is_open():
    a = subprocess.Popen(["sleep", "100"])
    try:
        assert not process.signal_pid(a.pid, 9, lambda pid: False)
        assert a.poll() is None
        assert process.signal_pid(a.pid, 9, lambda pid: True)
        assert a.wait(timeout=10) == -9
        assert not process.signal_pid(a.pid, 9, lambda pid: True)  # reaped: no pidfd, nothing sent
    finally:
        a.kill()
        a.wait()


def test_teardown_process_refuses_a_pid_with_another_start_time():
    """The init as recorded (pid + start time): a live pid with another start time is a stranger."""
    from ocirun.state import read_start_time
    from ocirun.teardown import Process

    a = subprocess.Popen(["sleep", "100"])
    try:
        stranger = Process(a.pid, (read_start_time(a.pid) or 0) + 1)
        assert not stranger.alive()
        stranger.kill()
        assert a.poll() is None
        ours = Process(a.pid, read_start_time(a.pid))
        assert ours.alive()
        ours.kill()
        assert a.wait(timeout=10) == -9
        ours.close()
    finally:
        a.kill()
        a.wait()


def test_init_stage_and_state_agree_on_the_comm_marker():
    from ocirun import state
    from ocirun.stage import common

    assert common.INIT_COMM == state.INIT_COMM
    assert len(state.INIT_COMM.encode()) <= 15  # TASK_COMM_LEN - 1: the kernel would cut it
    assert common.EXEC_COMM != common.INIT_COMM


def test_read_stat_gives_start_time_and_comm(tmp_path):
    from ocirun.state import read_stat

    d = tmp_path / "7"
    d.mkdir()
    fields = ["0"] * 20
    fields[19] = "4242"
    (d / "stat").write_text("7 (ocirun:[init]) S " + " ".join(fields[1:]) + "\n")
    assert read_stat(7, str(tmp_path)) == (4242, b"ocirun:[init]")
    (d / "stat").write_text("7 (a) b) (c) S " + " ".join(fields[1:]) + "\n")
    assert read_stat(7, str(tmp_path)) == (4242, b"a) b) (c")


def test_the_parent_stops_waiting_on_a_stage_frozen_in_its_cgroup(monkeypatch):
    """Every wait of create's parent on the init stage is bounded by the freezer: a silent stage in a
    frozen cgroup (frozen after the check at create, e.g. by its parent) is refused with runc's
    wording, not waited on for ever; a silent one in a thawed cgroup is waited on (hooks may be slow)."""
    import socket
    import threading

    from ocirun import launcher
    from ocirun.errors import InitError

    monkeypatch.setattr(launcher, "_INIT_CHECK", 0.01)

    class Cgroup:
        frozen = False
        checks = 0

        def is_frozen(self):
            self.checks += 1
            if self.checks == 3:
                self.frozen = True
            return self.frozen

    a, b = socket.socketpair()
    try:
        with pytest.raises(InitError, match="container's cgroup unexpectedly frozen"):
            launcher._wait_for_init(a, Cgroup())
        cg = Cgroup()
        cg.is_frozen = lambda: False
        t = threading.Timer(0.05, lambda: b.send(b"x"))
        t.start()
        launcher._wait_for_init(a, cg)  # returns once the stage speaks
        t.join()
    finally:
        a.close()
        b.close()
