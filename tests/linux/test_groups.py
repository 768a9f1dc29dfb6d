"""``run.oci.keep_original_groups`` (podman ``--group-add keep-groups``): the container process keeps the
supplementary groups of whoever ran the runtime instead of ``user.additionalGids``; in init and exec."""
import os

import pytest

from ocirun.security import keeps_original_groups

from ..procutil import run_to_files
from .conftest import OCIRUN

pytestmark = pytest.mark.root

CALLER_GROUPS = [4242, 4343]


def _groups_line(text: str) -> list[int]:
    for line in text.splitlines():
        if line.startswith("Groups:"):
            return sorted(int(g) for g in line.split(":", 1)[1].split())
    raise AssertionError(f"no Groups: line in {text!r}")


def _call(oci, *args):
    """Run the CLI as a caller whose supplementary groups are CALLER_GROUPS."""
    return run_to_files([OCIRUN, "--root", oci.root, *args], extra_groups=CALLER_GROUPS, timeout=30)


def _spec(oci, args, annotate: str | None):
    spec = oci.config(args=args)
    spec["process"]["user"]["additionalGids"] = [7]
    if annotate is not None:
        spec["annotations"] = {"run.oci.keep_original_groups": annotate}
    return spec


@pytest.mark.parametrize("value,kept", [("1", True), ("0", False), (None, False)])
def test_init_keeps_or_sets_groups(oci, value, kept):
    cid = f"grp{os.getpid()}{value}"
    oci.write(_spec(oci, ("cat", "/proc/self/status"), value))
    proc = _call(oci, "run", "--bundle", oci.bundle, cid)
    assert proc.returncode == 0, proc.stderr
    assert _groups_line(proc.stdout) == (CALLER_GROUPS if kept else [7])


def test_exec_follows_the_container_annotation(oci):
    cid = f"grpx{os.getpid()}"
    oci.write(_spec(oci, ("sleep", "100"), "1"))
    assert _call(oci, "run", "-d", "--bundle", oci.bundle, cid).returncode == 0
    proc = _call(oci, "exec", cid, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert _groups_line(proc.stdout) == CALLER_GROUPS
    oci("delete", "--force", cid, check=True)


def test_annotation_values():
    assert keeps_original_groups({"run.oci.keep_original_groups": "1"})
    assert keeps_original_groups({"run.oci.keep_original_groups": "true"})
    assert not keeps_original_groups({"run.oci.keep_original_groups": "0"})
    assert not keeps_original_groups({})
    assert not keeps_original_groups(None)
