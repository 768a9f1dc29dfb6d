"""A pytest plugin that fails the run when the run left the host different from how it found it.

At session start it snapshots the host's shared state (``tests/hoststate.py``: the /sys/fs/cgroup
listing and flags, the mount table, /dev/null, processes, cgroups, network namespaces and
interfaces) and exports :data:`~tests.hoststate.MARKER_VAR` so that everything the run starts can
be recognised later, even once reparented to init.  When the session ends (after the last fixture
was torn down) it snapshots again; whatever differs is printed, one line per change, under
``host guard``, and the exit status becomes 1 even if every test passed.

Loaded by ``tests/conftest.py`` and ``conformance/conftest.py``, so every run of the suite has it.
It assumes one test run at a time on the machine: a second run's containers and mounts would be
taken for this one's.  ``-p no:tests.hostguard`` turns it off.  It costs a few milliseconds at each
end; it only reads /proc, /sys, /run/netns and /dev/null.
"""
from __future__ import annotations

import getpass
import os
import secrets
import sys
import tempfile
import time

import pytest

from tests import hoststate

_STATE = pytest.StashKey[dict]()
#: How long a difference may take to go away on its own before it counts: a container killed by
#: the last test's teardown can still be exiting, and its cgroup is removed after it exits.
SETTLE_SECONDS = 2.0


def _temp_root() -> str:
    """Where pytest makes every run's basetemp (``<tmp>/pytest-of-<user>``), as pytest computes it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    temproot = os.path.realpath(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir())
    return os.path.join(temproot, f"pytest-of-{user}")


def _context(config, state: dict) -> hoststate.Context:
    """Known only at the end: this run's basetemp (pytest makes it when a test first asks)."""
    factory = getattr(config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None) or config.option.basetemp
    temp_root = state["temp_root"]
    own = []
    if basetemp:
        own.append(os.path.realpath(str(basetemp)))
        if own[0].startswith(temp_root + "/"):
            # as the root of a mount shows it when /tmp is a filesystem of its own
            own.append(own[0][len(os.path.dirname(temp_root)):])
    return hoststate.Context(pytest_pid=os.getpid(), token=state["token"], own_paths=tuple(own),
                             foreign_paths=(temp_root, "/" + os.path.basename(temp_root)),
                             vanishing_mounts_under=(temp_root,))


def pytest_sessionstart(session) -> None:
    state = {"previous_marker": os.environ.get(hoststate.MARKER_VAR), "temp_root": _temp_root(),
             "token": f"{os.getpid()}-{secrets.token_hex(4)}", "before": hoststate.take()}
    os.environ[hoststate.MARKER_VAR] = state["token"]
    session.config.stash[_STATE] = state


@pytest.hookimpl(trylast=True)      # after runner's own sessionfinish, which tears the fixtures down
def pytest_sessionfinish(session, exitstatus) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    if state["previous_marker"] is None:
        os.environ.pop(hoststate.MARKER_VAR, None)
    else:
        os.environ[hoststate.MARKER_VAR] = state["previous_marker"]
    lines = changes(state["before"], _context(session.config, state))
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "host guard: the test run changed the host", red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("host guard: the test run changed the host:", *lines, sep="\n  ", file=sys.stderr)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def changes(before: hoststate.Snapshot, ctx: hoststate.Context, settle: float = SETTLE_SECONDS) -> list[str]:
    """The differences that are still there once the host had ``settle`` seconds to finish what
    was under way; on a clean host, one snapshot and no wait."""
    deadline = time.monotonic() + settle
    while True:
        lines = hoststate.differences(before, hoststate.take(before), ctx)
        if not lines or time.monotonic() >= deadline:
            return lines
        time.sleep(0.1)
