"""linux.intelRdt on this machine: without resctrl, create fails with a clear error and leaves nothing.

(The resctrl work itself is tested on a fake tree in tests/unit/test_intelrdt.py; this kernel has
no resctrl, and the test says so if that changes.)
"""
import os

import pytest

from ocirun import intelrdt


def _resctrl_here() -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1:] == ["resctrl"] for line in f)


@pytest.mark.parametrize("rdt", [{"closID": "guaranteed_group", "schemata": ["L3:0=7f0"]}, {"enableMonitoring": True}])
def test_create_without_resctrl_fails_clearly_and_leaves_nothing(oci, rdt):
    if _resctrl_here():
        pytest.skip("this kernel has resctrl: the error path of a resctrl-less host cannot be shown here")
    spec = oci.config()
    spec["linux"]["intelRdt"] = rdt
    oci.write(spec)
    r = oci("create", "--bundle", oci.bundle, "rdt-none")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].endswith(
        "config.json: linux.intelRdt: Intel RDT is not available: this kernel has no resctrl filesystem "
        "(not listed in /proc/filesystems; needs CONFIG_X86_CPU_RESCTRL and RDT-capable hardware)")
    assert oci.ids() == []
    assert not os.path.exists(intelrdt.DEFAULT_MOUNT + "/guaranteed_group")
    with open("/proc/self/mountinfo") as f:
        assert " - resctrl " not in f.read()  # nothing was mounted on our behalf

