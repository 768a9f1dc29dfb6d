"""`pip install` gives a working `ocirun`: a wheel built from this checkout, installed into a throw-away
virtualenv, runs a container, finds its schemas inside the installed package, starts through the lean
launcher (bin/ocirun, not pip's console-script wrapper, which imports `re`), and passes the lifecycle
tests.  Before: every create failed with "No such file or directory: .../site-packages/spec/
config-schema.json" (ocirun.spec was not in the wheel)."""
import os
import shutil
import subprocess
import sys

import pytest

from ocirun.bundle import make_rootfs
from ocirun.specgen import default_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("pip")
    src = work / "src"
    shutil.copytree(REPO, src, ignore=SKIP)  # a clean tree: no stale build/ of the checkout's own
    run = lambda *a: subprocess.run(a, capture_output=True, text=True, timeout=600)  # noqa: E731
    r = run(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
            "-w", str(work / "wheel"), str(src))
    assert r.returncode == 0, r.stderr
    (wheel,) = (work / "wheel").iterdir()
    r = run(sys.executable, "-m", "venv", str(work / "venv"))
    assert r.returncode == 0, r.stderr
    r = run(str(work / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel))
    assert r.returncode == 0, r.stderr
    return work / "venv"


def test_installed_ocirun_runs_a_container(venv, tmp_path):
    bundle = tmp_path / "bundle"
    rootfs = make_rootfs(str(bundle / "rootfs"))
    spec = default_spec(args=["sh", "-c", "echo hello from $(hostname)"], terminal=False)
    spec["root"] = {"path": rootfs}
    import json

    (bundle / "config.json").write_text(json.dumps(spec))
    r = subprocess.run([str(venv / "bin/ocirun"), "--root", str(tmp_path / "state"), "run", "c1"],
                       cwd=bundle, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from ocirun\n"


def test_schemas_come_from_the_installed_package(venv):
    r = subprocess.run([str(venv / "bin/python"), "-c", "from ocirun import schema; print(schema.schema_dir())"],
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    assert path.startswith(str(venv)) and path.endswith("site-packages/ocirun/spec"), path
    assert os.path.isfile(os.path.join(path, "config-schema.json"))


def test_launcher_is_the_lean_script(venv):
    text = (venv / "bin/ocirun").read_text()
    assert text.startswith(f"#!{venv}/bin/python")
    assert "import re" not in text and "from ocirun.cli import main" in text


def test_installed_ocirun_passes_the_lifecycle_tests(venv):
    env = dict(os.environ, OCIRUN_CLI=str(venv / "bin/ocirun"))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:tests.hostguard",
                        os.path.join(REPO, "tests/linux/test_lifecycle.py")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert " passed" in r.stdout.splitlines()[-1]
