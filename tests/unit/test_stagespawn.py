"""ocirun.stagespawn: the stage the command line starts early is taken only by the command it was
started for, and one left untaken is killed and reaped, never left waiting for a CONFIG."""
from __future__ import annotations

import os
import socket

import pytest

from ocirun import stagefork, stagespawn


@pytest.fixture
def spawned(monkeypatch):
    """spawn() replaced by a real child that waits for ever (as a stage waits for CONFIG)."""
    children = []

    def spawn(mode, preserve_fds=0, stdio=None):
        ours, theirs = socket.socketpair()
        pid = os.posix_spawn("/bin/sleep", ["sleep", "60"], {})
        theirs.close()
        children.append((mode, preserve_fds, pid))
        return pid, ours

    monkeypatch.setattr(stagespawn, "spawn", spawn)
    monkeypatch.setattr(stagefork, "allowed", lambda: False)
    monkeypatch.setattr(stagespawn, "_early", None)
    yield children
    stagespawn.discard_unused()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_taken_by_the_command_it_was_started_for(spawned):
    stagespawn.early("init", 0)
    stagespawn.early("init", 0)  # once per process
    assert len(spawned) == 1
    pid, sock = stagespawn.take("init", 0, None)
    assert pid == spawned[0][2]
    assert stagespawn.take("init", 0, None) is None  # the caller owns it now
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sock.close()


@pytest.mark.parametrize("mode,preserve,stdio", [("exec", 0, None), ("init", 2, None), ("init", 0, (0, 1, 2))])
def test_not_taken_for_another_kind_fds_or_stdio(spawned, mode, preserve, stdio):
    stagespawn.early("init", 0)
    assert stagespawn.take(mode, preserve, stdio) is None
    pid = spawned[0][2]
    stagespawn.discard_unused()
    assert _gone(pid)  # killed and reaped: no zombie either (kill(0) on a zombie succeeds)


def test_nothing_spawned_when_the_stage_will_be_forked(spawned, monkeypatch):
    monkeypatch.setattr(stagefork, "allowed", lambda: True)
    stagespawn.early("exec", 0)
    assert spawned == [] and stagespawn.take("exec", 0, None) is None
    stagespawn.discard_unused()  # nothing to do


def test_a_failed_early_spawn_is_left_to_the_library(monkeypatch):
    def spawn(*a, **kw):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(stagespawn, "spawn", spawn)
    monkeypatch.setattr(stagefork, "allowed", lambda: False)
    monkeypatch.setattr(stagespawn, "_early", None)
    stagespawn.early("init", 0)
    assert stagespawn.take("init", 0, None) is None


def test_the_command_line_discards_what_a_failed_command_never_took(spawned, tmp_path, monkeypatch):
    """create of a bundle with no config.json: the early stage is gone once the command returns."""
    from ocirun.cgroups import warm
    from ocirun.cli import run_cli

    monkeypatch.setattr(warm, "start", lambda: None)

    code = run_cli(["--root", str(tmp_path / "root"), "create", "--bundle", str(tmp_path / "nothing"), "c1"])
    assert code != 0
    assert len(spawned) == 1 and _gone(spawned[0][2])
    assert stagespawn._early is None
