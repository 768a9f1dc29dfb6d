"""cgroups.warm: the cgroup.procs file of our own cgroup, or none (a write anywhere else would move us)."""
from __future__ import annotations

import os

from ocirun.cgroups.warm import own_procs_file

from .test_cgroups_helpers import FakeHost


def test_unified_mount_preferred_in_hybrid_mode(tmp_path):
    h = FakeHost(tmp_path, "hybrid", own={"": "/user.slice/session-1.scope", "pids": "/user.slice"})
    assert own_procs_file(**h.kw()) == os.path.join(h.root, "unified/user.slice/session-1.scope/cgroup.procs")


def test_unified_root(tmp_path):
    h = FakeHost(tmp_path, "unified", own={"": "/"})
    assert own_procs_file(**h.kw()) == os.path.join(h.root, "cgroup.procs")


def test_v1_our_own_cgroup_in_the_first_hierarchy(tmp_path):
    h = FakeHost(tmp_path, "v1", own={"cpu,cpuacct": "/a/b"})
    assert own_procs_file(**h.kw()) == os.path.join(h.root, "cpu,cpuacct/a/b/cgroup.procs")


def test_mount_of_a_subtree_inside_it(tmp_path):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"], own={"pids": "/ns/x"}, mount_roots={"pids": "/ns"})
    assert own_procs_file(**h.kw()) == os.path.join(h.root, "pids/x/cgroup.procs")


def test_our_cgroup_outside_the_mount_gives_nothing(tmp_path):
    """The mount shows another subtree: its root is not our cgroup, and writing there would move us."""
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"], own={"pids": "/elsewhere"}, mount_roots={"pids": "/ns"})
    assert own_procs_file(**h.kw()) is None


def test_started_once_and_seen_alive_while_it_runs(monkeypatch):
    """The command line starts the thread as soon as it knows the command, the library again: one
    thread; and the fork check tells it from an embedder's thread while it waits in the kernel."""
    import threading
    import time

    from ocirun import stagefork
    from ocirun.cgroups import warm

    monkeypatch.setattr(warm, "_started", False)
    monkeypatch.setattr(warm, "_running", None)
    release, calls = threading.Event(), []

    def fake_write():
        calls.append(1)
        release.wait(10)

    monkeypatch.setattr(warm, "_write_own_procs", fake_write)
    before = threading.active_count()
    warm.start()
    warm.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.001)
    assert calls == [1]
    assert warm.alive()
    if before == 1:  # pytest without helper threads: the fork check sees only warm's
        assert stagefork.single_threaded()
    release.set()
    while warm.alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not warm.alive()
    assert calls == [1]

