"""security.check_caps: capabilities capset(2) would refuse after `start` are refused at `create` (no root)."""
import pytest

from ocirun import plan

from ocirun import security
from ocirun.config import Process
from ocirun.kernel.fake import FakeKernel

HELD = (1 << 41) - 1 & ~(1 << 24)  # every capability but CAP_SYS_RESOURCE, like root on a restricted host


def _masks(names):
    proc = Process.parse({"args": ["x"], "capabilities": {s: names for s in
                                                          ("bounding", "effective", "permitted")}})
    return plan.capability_sets(proc, 40)[0]


def test_caps_within_the_permitted_set_pass(monkeypatch):
    fk = FakeKernel(monkeypatch, {"capget": (HELD, HELD, 0)})
    security.check_caps(_masks(["CAP_KILL", "CAP_SYS_ADMIN"]))
    assert fk.names() == ["capget"]          # a check only: nothing is changed


def test_a_cap_the_runtime_lacks_is_refused_with_runc_wording(monkeypatch):
    FakeKernel(monkeypatch, {"capget": (HELD, HELD, 0)})
    with pytest.raises(OSError) as e:
        security.check_caps(_masks(["CAP_KILL", "CAP_SYS_RESOURCE"]))
    assert e.value.errno == 1
    assert "unable to apply caps: operation not permitted" in str(e.value)
    assert "CAP_SYS_RESOURCE" in str(e.value) and "CAP_KILL" not in str(e.value)
