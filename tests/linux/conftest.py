"""Fixtures for the real-container tests: the ocirun CLI, a shared busybox rootfs, per-test bundles.

Every test gets its own ``--root`` state directory; at teardown every container
left in it is force-deleted and the test fails if a mount mentioning its
bundle, or a state directory, survived.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import sys

import pytest

from ocirun.bundle import make_rootfs
from ocirun.specgen import default_spec

from ..procutil import run_to_files

#: The CLI under test; OCIRUN_CLI points the suite at another build (e.g. an installed one).
OCIRUN = os.environ.get("OCIRUN_CLI") or os.path.join(os.path.dirname(sys.executable), "ocirun")

pytestmark = pytest.mark.root
_SERIAL = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _shared_cgroup_parent():
    """Remove the shared ``/ocirun-test`` parent the tests' cgroupsPath uses, at the end.

    ocirun removes a parent it created only while it is empty; when containers of several tests
    share it, the one that created it may go first and the last one did not create it (runc
    never removes parents at all).  The tests chose the shared parent, so they remove it."""
    yield
    import glob

    for path in sorted(glob.glob("/sys/fs/cgroup/*/ocirun-test") + glob.glob("/sys/fs/cgroup/ocirun-test")):
        try:
            os.rmdir(path)
        except OSError:
            pass  # not empty: a container still runs there, which the leak checks will report


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    return make_rootfs(str(tmp_path_factory.mktemp("rootfs") / "rootfs"))


class Ocirun:
    """Drive the CLI the way an engine does: a subprocess per call, its own state root."""

    def __init__(self, root: str, bundle: str, rootfs: str):
        self.root = root
        self.bundle = bundle
        self.rootfs = rootfs

    def __call__(self, *args, check=False, input=None, env=None, timeout=30, cwd=None, glob=()):
        # stdio goes to files, not pipes: a created container inherits the runtime's stdio, so a
        # pipe would not reach EOF until the container exits (as with runc).
        proc = run_to_files([OCIRUN, "--root", self.root, *glob, *args], input=input, env=env, timeout=timeout,
                            cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"ocirun {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def config(self, args=("true",), **changes) -> dict:
        spec = default_spec(args=list(args), terminal=False)
        spec["root"] = {"path": self.rootfs, "readonly": True}
        # A cgroup of its own: the default (/ocirun/<id>) would be shared by every test using "c1".
        spec["linux"]["cgroupsPath"] = f"/ocirun-test/{os.getpid()}-{next(_SERIAL)}"
        for key, value in changes.items():
            spec[key] = value
        return spec

    def write(self, spec: dict, bundle: str | None = None) -> str:
        bundle = bundle or self.bundle
        os.makedirs(bundle, exist_ok=True)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        return bundle

    def run(self, spec: dict, cid: str = "c1", **kw):
        self.write(spec)
        return self("run", "--bundle", self.bundle, cid, **kw)

    def sh(self, script: str, cid: str = "c1", spec_edit=None, **kw):
        """Run ``sh -c script`` in a default container; return the CompletedProcess."""
        spec = self.config(args=("sh", "-c", script))
        if spec_edit:
            spec_edit(spec)
        return self.run(spec, cid, **kw)

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).stdout)

    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root)]
        except FileNotFoundError:
            return []


@pytest.fixture
def oci(tmp_path, rootfs):
    o = Ocirun(str(tmp_path / "state"), str(tmp_path / "bundle"), rootfs)
    yield o
    for cid in o.ids():
        o("delete", "--force", cid)
    leftover = o.ids()
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if str(tmp_path) in line]
    assert not leftover, f"state dirs left behind: {leftover}"
    assert not mounts, f"mounts left behind: {mounts}"


def edit(spec: dict, path: str, value):
    """Set ``spec[a][b]...`` for a dotted path (creating dicts on the way)."""
    keys = path.split(".")
    cur = spec
    for key in keys[:-1]:
        cur = cur.setdefault(key, {})
    cur[keys[-1]] = copy.deepcopy(value)
    return spec
