"""The forked stages (ocirun.stagefork): taken only with the interpreter on read-only mounts, and the
escape tests' assertions hold there as on the re-exec path.

The host's interpreter lies on a writable mount here, so these tests run the CLI in a private mount
namespace (``unshare -m``, propagation private) where the directories of the interpreter and of every
shared object it maps are read-only binds of themselves: nothing of the host's mounts changes.
"""
from __future__ import annotations

import inspect
import os
import shlex
import sys

import pytest

from ocirun.stagefork import mapped_dirs

from . import conftest, test_escape_exe, test_escape_fds

pytestmark = pytest.mark.root


@pytest.fixture
def read_only_cli(tmp_path) -> str:
    """A wrapper that runs the CLI with its interpreter's directories read-only (private mount ns)."""
    binds = " && ".join(f"mount --bind {shlex.quote(d)} {shlex.quote(d)} && "
                        f"mount -o remount,bind,ro {shlex.quote(d)}" for d in mapped_dirs())
    script = tmp_path / "ocirun-ro"
    inner = shlex.quote(binds + ' && exec "$0" "$@"')
    cli = shlex.quote(conftest.OCIRUN)
    script.write_text(f'#!/bin/sh\nexec unshare -m --propagation private sh -c {inner} {cli} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def forked(oci, read_only_cli, monkeypatch):
    """``oci`` driving the CLI through :func:`read_only_cli`."""
    monkeypatch.setattr(conftest, "OCIRUN", read_only_cli)
    monkeypatch.setattr(test_escape_fds, "OCIRUN", read_only_cli)
    return oci


def test_fork_path_taken_on_read_only_mounts(forked):
    forked.write(forked.config(args=("true",)))
    proc = forked("--debug", "create", "-b", forked.bundle, "c1", check=True)
    assert "init stage" in proc.stderr and "forked (" in proc.stderr, proc.stderr
    proc = forked("--debug", "exec", "c1", "true")
    assert proc.returncode == 0, proc.stderr
    assert "exec stage" in proc.stderr and "forked (" in proc.stderr, proc.stderr


def test_reexec_on_a_writable_mount(oci):
    if os.statvfs(os.path.realpath(sys.executable)).f_flag & 1:  # ST_RDONLY
        pytest.skip("the interpreter is on a read-only mount here: the fork path is the normal one")
    oci.write(oci.config(args=("true",)))
    proc = oci("--debug", "create", "-b", oci.bundle, "c1", check=True)
    assert "init stage" in proc.stderr and "forked (" not in proc.stderr, proc.stderr


def test_forked_init_hides_the_callers_environment_and_arguments(forked):
    forked.write(forked.config(args=("true",)))
    env = dict(os.environ, OCIRUN_TEST_SECRET="hunter2-in-the-environment")
    forked("create", "-b", forked.bundle, "c1", check=True, env=env)
    pid = forked.state("c1")["pid"]
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert f.read().strip(b"\0") == b""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = [a for a in f.read().split(b"\0") if a]
    assert len(args) == 1 and forked.bundle.encode() not in args[0], args  # argv[0] alone
    with open(f"/proc/{pid}/status") as f:
        assert "ocirun:[init]" in f.read()
    forked("start", "c1", check=True)  # the caller's lock on the state dir is not held by the init


ESCAPE_TESTS = [f for mod in (test_escape_exe, test_escape_fds)
                for name, f in sorted(vars(mod).items()) if name.startswith("test_")]


@pytest.mark.parametrize("case", ESCAPE_TESTS, ids=lambda f: f"{f.__module__.rsplit('.', 1)[-1]}::{f.__name__}")
def test_escape_assertions_hold_on_the_fork_path(case, forked, tmp_path):
    given = {"oci": forked, "tmp_path": tmp_path}
    case(**{name: given[name] for name in inspect.signature(case).parameters})
