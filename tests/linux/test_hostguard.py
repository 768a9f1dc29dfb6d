"""The host guard (tests/hostguard.py) on real leaks (root).

A throwaway pytest run, in a directory of its own and with only the guard as plugin, leaks a tmpfs
mount, a cgroup and a double-forked process (reparented away from pytest, so only the session's
marker variable ties it to the run): the run must fail although its test passed, naming each.  A
second throwaway run makes and removes the same things: it must pass with nothing reported.  This
test removes whatever the throwaway runs leaked.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ocirun import mountinfo

from ..procutil import run_to_files

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _a_cgroup_hierarchy() -> str:
    for m in mountinfo.read(fstypes=("cgroup", "cgroup2")):
        if m.mountpoint.startswith("/sys/fs/cgroup"):
            return m.mountpoint
    pytest.skip("no cgroup hierarchy under /sys/fs/cgroup")


def _throwaway_run(tmp_path, name: str, body: str) -> subprocess.CompletedProcess:
    d = tmp_path / name
    d.mkdir()
    (d / "pytest.ini").write_text("[pytest]\n")
    (d / "test_throwaway.py").write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=REPO)
    return run_to_files([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.hostguard", "-q",
                         "--basetemp", str(d / "tmp"), str(d / "test_throwaway.py")],
                        cwd=str(d), env=env, timeout=120)


def test_a_run_that_leaks_fails_naming_each_leak(tmp_path):
    mnt = tmp_path / "leaked-mount"
    mnt.mkdir()
    cgroup = os.path.join(_a_cgroup_hierarchy(), f"hostguard-leak-{os.getpid()}")
    pidfile = tmp_path / "leaked.pid"
    try:
        r = _throwaway_run(tmp_path, "leaky", f"""
            import os, subprocess

            def test_leaks():
                subprocess.run(["mount", "-t", "tmpfs", "hostguard-leak", {str(mnt)!r}], check=True)
                os.mkdir({cgroup!r})
                subprocess.run(["sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}"],
                               check=True)
            """)
        pid = int(pidfile.read_text())
        out = r.stdout
        assert r.returncode == 1, out + r.stderr
        assert "1 passed" in out and "host guard: the test run changed the host" in out
        guard = out[out.index("host guard"):]
        assert f"mount added: {mnt} (tmpfs hostguard-leak [" in guard
        assert f"cgroup left behind: {cgroup} (empty)" in guard
        line = next(li for li in guard.splitlines() if li.startswith(f"process left running: pid {pid} "))
        assert line.startswith(f"process left running: pid {pid} 'sleep 1000' (parent ")
        assert line.endswith("; carries OCIRUN_HOSTGUARD_SESSION)")
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if any(m.mountpoint == str(mnt) for m in mountinfo.read()):
            subprocess.run(["umount", str(mnt)], check=True)
        if os.path.isdir(cgroup):
            os.rmdir(cgroup)


def test_a_run_that_cleans_up_passes_quietly(tmp_path):
    mnt = tmp_path / "mount"
    mnt.mkdir()
    cgroup = os.path.join(_a_cgroup_hierarchy(), f"hostguard-clean-{os.getpid()}")
    r = _throwaway_run(tmp_path, "clean", f"""
        import os, subprocess

        def test_cleans_up():
            subprocess.run(["mount", "-t", "tmpfs", "hostguard-clean", {str(mnt)!r}], check=True)
            os.mkdir({cgroup!r})
            p = subprocess.Popen(["sleep", "1000"], start_new_session=True)
            p.kill()
            p.wait()
            os.rmdir({cgroup!r})
            subprocess.run(["umount", {str(mnt)!r}], check=True)
        """)
    assert r.returncode == 0 and "host guard" not in r.stdout, r.stdout + r.stderr
    assert "1 passed" in r.stdout
