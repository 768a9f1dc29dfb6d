"""ocirun.stage.common: what the create and the exec stage share, and the one namespace table both use."""
import errno
import os
import subprocess
import sys

import pytest

from ocirun import plan, sync
from ocirun.errors import HookError
from ocirun.stage import common

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_both_stages_join_in_one_order_from_one_table():
    """create joins namespaces given by path in plan.JOIN_ORDER; exec opens /proc/<init>/ns/* in the
    same order, by entry name, and its stage maps each name back to the flag of the same table."""
    assert plan.PROC_JOIN_ORDER == tuple(plan.NAMESPACES[t][1] for t in plan.JOIN_ORDER)
    assert plan.PROC_JOIN_ORDER[0] == "user" and plan.PROC_JOIN_ORDER[-1] == "mnt"
    assert sorted(plan.JOIN_ORDER) == sorted(plan.NAMESPACES)
    assert {plan.PROC_NS_FLAGS[p] for p in plan.PROC_JOIN_ORDER} == {f for f, _ in plan.NAMESPACES.values()}


def _imported_after(**flags) -> set[str]:
    """The ocirun modules a fresh ``python -I -S`` (as the stage runs) holds after preimport."""
    code = ("import sys;sys.path.insert(0,%r);from ocirun.stage import common;"
            "common.preimport(**%r);print(' '.join(m for m in sys.modules if m.startswith('ocirun')))") % (REPO, flags)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_preimport_loads_what_is_asked_and_nothing_more():
    none = dict(terminal=False, seccomp=False, listener=False, scheduling=False, memory_policy=False)
    bare = _imported_after(**none)
    assert {"ocirun.lsm", "ocirun.pathsafe", "ocirun.security"} <= bare
    assert not bare & {"ocirun.terminal", "ocirun.seccomp", "ocirun.seccomp.notify", "ocirun.sched",
                       "ocirun.mempolicy"}
    full = _imported_after(**dict.fromkeys(none, True))
    assert {"ocirun.terminal", "ocirun.seccomp", "ocirun.seccomp.model", "ocirun.seccomp.notify",
            "ocirun.kernel.seccomp", "ocirun.sched", "ocirun.mempolicy"} <= full
    # the agent's module (json, socket: ≈5 ms) only with a listener
    assert "ocirun.seccomp.notify" not in _imported_after(**dict(none, seccomp=True))


def test_report_sends_one_line_with_the_path(pair):
    parent, stage = pair
    common.report(stage, OSError(errno.ENOENT, "open mount target", "/x"))
    with pytest.raises(sync.PeerError, match="^open mount target: /x$"):
        sync.recv(parent)


def test_report_marks_hook_errors_and_ignores_exit(pair):
    parent, stage = pair
    common.report(stage, SystemExit(0))  # a stage that exits on purpose says nothing
    common.report(stage, HookError("createContainer hook failed"))
    with pytest.raises(sync.PeerError) as e:
        sync.recv(parent)
    assert str(e.value) == "createContainer hook failed" and e.value.payload["hook"] is True
