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
