"""The shared default parent (/ocirun) removed by a concurrent `delete` while `create` walks down to
its own leaf: create must make the parent again, not fail with "mkdir …: No such file or directory"
(seen in the benchmark's two-parallel `run` throughput)."""
from __future__ import annotations

import os

from ocirun import cgroups
from ocirun.cgroups import base

from .test_cgroups_helpers import FakeHost


def test_create_remakes_parent_removed_meanwhile(tmp_path, monkeypatch):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"])
    parent = f"{h.root}/pids/ocirun"
    os.makedirs(parent)                        # another container's create made it
    real_mkdir = os.mkdir
    raced = []

    def mkdir(path, mode=0o777):
        if path == f"{parent}/c1" and not raced:
            raced.append(path)
            os.rmdir(parent)                   # the other container's delete: last one out removes it
        return real_mkdir(path, mode)

    monkeypatch.setattr(base.os, "mkdir", mkdir)
    m = cgroups.for_container(None, "c1", **h.kw())
    m.create()
    assert raced and os.path.isdir(f"{parent}/c1")
    assert m.created.count(parent) == 1 and f"{parent}/c1" in m.created
    m.destroy()
    assert not os.path.exists(parent)


def test_create_gives_up_when_parent_keeps_vanishing(tmp_path, monkeypatch):
    h = FakeHost(tmp_path, "v1", hierarchies=["pids"])
    parent = f"{h.root}/pids/ocirun"
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777):
        if path == f"{parent}/c2":
            os.rmdir(parent)
        return real_mkdir(path, mode)

    monkeypatch.setattr(base.os, "mkdir", mkdir)
    m = cgroups.for_container(None, "c2", **h.kw())
    try:
        m.create()
    except cgroups.CgroupError as e:
        assert "No such file or directory" in str(e)
    else:
        raise AssertionError("create succeeded although the parent vanished every time")


def test_setup_cgroup_removes_a_partial_create(tmp_path, monkeypatch):
    """create() failing in its second hierarchy (the race above, before the fix, or EACCES): what the
    first hierarchy got is removed, not left behind by the failed `create`."""
    from types import SimpleNamespace

    import pytest

    from ocirun import launcher
    from ocirun.errors import CgroupError

    h = FakeHost(tmp_path, "v1", hierarchies=["pids", "memory"])
    real_for = cgroups.for_container
    monkeypatch.setattr(cgroups, "for_container", lambda path, cid, **kw: real_for(path, cid, **h.kw()))
    real_mkdir = os.mkdir
    seen = []

    def mkdir(path, mode=0o777):
        top = os.path.relpath(path, h.root).split("/")[0]
        if seen and top != seen[0]:
            raise PermissionError(13, "Permission denied")
        seen.append(top)
        return real_mkdir(path, mode)

    monkeypatch.setattr(base.os, "mkdir", mkdir)
    spec = SimpleNamespace(linux=SimpleNamespace(cgroupsPath="/t/c"))
    opts = SimpleNamespace(systemd_cgroup=False, rootless=False)
    with pytest.raises(CgroupError):
        launcher.setup_cgroup(spec, "c", 12345, opts, SimpleNamespace(), {})
    assert seen  # one hierarchy got its directories before the failure ...
    assert not os.path.exists(f"{h.root}/{seen[0]}/t")  # ... and lost them again
